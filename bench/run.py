"""`make bench`: every benchmark, each printing its figures against its target."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

import bench_api_v2  # noqa: E402
import bench_assets  # noqa: E402
import bench_backfill  # noqa: E402
import bench_deferred  # noqa: E402
import bench_foundation  # noqa: E402
import bench_mapping  # noqa: E402
import bench_observability  # noqa: E402
import bench_render  # noqa: E402
import bench_scaleout  # noqa: E402
import bench_ui  # noqa: E402
from common import RESULTS  # noqa: E402


def main() -> None:
    print(f"{'benchmark':<60} {'value':>10} {'unit':<6} {'target':<14} verdict")
    bench_foundation.main()
    bench_mapping.main()
    bench_render.main()
    bench_deferred.main()
    bench_backfill.main()
    bench_assets.main()
    bench_scaleout.main()
    bench_ui.main()
    bench_api_v2.main()
    bench_observability.main()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(RESULTS, indent=2))
    missed = [r["name"] for r in RESULTS if r["verdict"] == "MISSED"]
    print(f"\n{len(RESULTS)} figures, {len(missed)} missed target" + (f": {missed}" if missed else ""))


if __name__ == "__main__":
    main()
