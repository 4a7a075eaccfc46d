"""A real `millstream standalone` (scheduler, workers, API, web UI) driven by Playwright in
Debian's Chromium. The browser is the system's (/usr/bin/chromium, `apt install chromium`);
Playwright never downloads one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = os.environ.get("MILLSTREAM_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("MILLSTREAM_REQUIRE_SERVICES") == "1"
#: What the machine's network and sandbox need (see the environment notes in the README).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LABELLED = """
from millstream import dag, task


@dag(schedule=None, tags=["example"])
def labelled_files():
    @task
    def names():
        return ["north.csv", "south.csv", "east.csv", "west.csv"]

    @task(map_index_template="{{ name }}")
    def load(name):
        print(f"loading {name}")

    load.expand(name=names())


labelled_files()
"""


TALKATIVE = """
import os
import time
from pathlib import Path

from millstream import dag, task

GATE = Path(os.environ["MILLSTREAM_HOME"]) / "talk-gate"


@dag(schedule=None)
def talkative():
    @task
    def talk():
        print("first line", flush=True)
        deadline = time.monotonic() + 60
        while not GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        print("second line", flush=True)

    talk()


talkative()
"""


GROUPED = """
from millstream import TaskGroup, dag, task


@dag(schedule=None)
def grouped():
    @task
    def start():
        return 1

    with TaskGroup("clean") as clean:

        @task
        def a(x):
            return x

        @task
        def b(x):
            return x

        b(a(1))

    start() >> clean


grouped()
"""


TEMPLATED = """
from millstream import BashOperator, dag


@dag(schedule=None, params={"region": "eu"})
def templated():
    BashOperator(
        task_id="say",
        bash_command="echo region={{ params.region }} run={{ run_id }}",
        env={"API_TOKEN": "tok-{{ ds_nodash }}", "PLAIN": "{{ params.region }}"},
    )


templated()
"""


@dataclass
class Server:
    url: str
    home: Path
    password: str
    output: list[str]
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [sys.executable, "-m", "millstream.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        return p


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ui")
    home, dags = tmp / "home", tmp / "dags"
    dags.mkdir()
    for name in ("process_daily_files.py", "daily_report.py", "temp_workspace.py", "csv_arrivals.py"):
        shutil.copy(EXAMPLES / name, dags)
    (dags / "labelled_files.py").write_text(LABELLED)
    (dags / "talkative.py").write_text(TALKATIVE)
    (dags / "grouped.py").write_text(GROUPED)
    (dags / "templated.py").write_text(TEMPLATED)
    port = free_port()
    env = {**os.environ, "MILLSTREAM_HOME": str(home), "MILLSTREAM_DAGS_FOLDER": str(dags)}
    env["MILLSTREAM__API__PORT"] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "millstream.cli", "standalone", "--unpause", "labelled_files"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 60
    password = None
    while password is None:
        for line in list(output):
            m = re.search(r"login\s+admin / (\S+)", line)
            if m:
                password = m.group(1)
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("standalone did not print the admin password:\n" + "".join(output))
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", home, password, output, env)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium` (make test does it)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots with MILLSTREAM_SCREENSHOTS=1 (`make screenshots`)."""
    if os.environ.get("MILLSTREAM_SCREENSHOTS") == "1":
        out = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path
