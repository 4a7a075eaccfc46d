"""The command line as a user runs it: a real process with its own home and DAG folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def make_cli(home: Path, dags: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run(*args, ok=True)``: ``millstream *args`` with this home and DAG folder;
    ``ok`` asserts a zero exit code. ``run.home`` and ``run.dags`` are the folders."""

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        # The environment as it is at the call (a test may set a variable in between).
        env = {**os.environ, "MILLSTREAM_HOME": str(home), "MILLSTREAM_DAGS_FOLDER": str(dags)}
        p = subprocess.run(
            [sys.executable, "-m", "millstream.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert p.returncode == 0, p.stderr + p.stdout
        return p

    runner: Any = run
    runner.dags = dags
    runner.home = home
    return runner
