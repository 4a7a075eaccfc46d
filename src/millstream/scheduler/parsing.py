"""Parsing DAG files in a child process, so a broken or hanging file cannot hurt the
scheduler: a file that does not finish importing within the timeout is killed and
reported, and the others are parsed on."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from millstream.core.model import DagSpec
from millstream.sdk.loader import ImportErrorInfo, dag_files, load_file


@dataclass
class Parsed:
    """One file's outcome: its DAG specs, or the error that stopped it."""

    filename: str
    specs: list[DagSpec] = field(default_factory=list)
    error: ImportErrorInfo | None = None
    source: str | None = None  # the file's text its specs came from (the code a run pins)
    duration: float | None = None  # seconds its import took, seen from the parent (metrics)


def _child_main() -> None:
    """Entry point of the parsing child: paths in on stdin, JSON lines out."""
    import json
    import sys

    # User code may print at import time; keep the protocol channel clean.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    paths = json.loads(sys.stdin.readline())
    seed = json.loads(sys.stdin.readline() or "{}")
    from millstream.sdk import secrets

    # The store is the last secrets backend; it is imported (0.2 s) only when a DAG file
    # reads a Variable or Connection at its top level, not for every parse.
    secrets.register_metastore(_metastore)
    from millstream.settings import Settings

    settings = Settings.load()
    ttl = settings.cache_ttl_seconds if settings.use_cache else 0.0
    with secrets.parse_cache(ttl, {k: (v[0], v[1]) for k, v in seed.items()}) as cache:
        _parse_each(paths, proto)
        if ttl:
            proto.write(json.dumps({"secrets": cache}) + "\n")
    proto.write(json.dumps({"end": True}) + "\n")


def _metastore() -> Any:
    from millstream.store import default_metastore

    return default_metastore()


def _parse_each(paths: list[str], proto: Any) -> None:
    for path in paths:
        proto.write(json.dumps({"start": path}) + "\n")
        result = load_file(path)
        specs: list[str] = []
        error = result.error
        if error is None:
            try:
                specs = [d.to_spec().to_json() for d in result.dags.values()]
            except Exception as e:  # noqa: BLE001 - a DAG that cannot be described is an import error
                error = ImportErrorInfo(path, None, f"{type(e).__name__}: {e}")
        err = None if error is None else [error.filename, error.lineno, error.message, error.stacktrace]
        proto.write(json.dumps({"done": path, "specs": specs, "error": err, "source": result.source}) + "\n")


class _Lines:
    """Lines from a child's stdout with a deadline.

    Reads the raw file descriptor: a buffered reader could hold a second line in its
    buffer while select() reports nothing more to read, and we would wait for nothing.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self, deadline: float) -> str | None:
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


#: Variable and Connection lookups that parsing children made, with when each expires
#: ([secrets] cache_ttl_seconds): each child is a fresh process, so this process keeps
#: them and hands them to the next child, and a ``Variable.get`` at the top of a DAG file
#: does not query the store on every parse. They live in memory and pipes only.
_secrets_cache: dict[str, tuple[float, str | None]] = {}


def parse_files(paths: list[str], timeout: float) -> list[Parsed]:
    """Parse ``paths`` in child processes; each file gets ``timeout`` seconds."""
    todo = list(paths)
    out: list[Parsed] = []
    while todo:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from millstream.scheduler.parsing import _child_main; _child_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        now = time.time()
        for key in [k for k, v in _secrets_cache.items() if v[0] <= now]:
            del _secrets_cache[key]
        proc.stdin.write(json.dumps(todo) + "\n" + json.dumps(_secrets_cache) + "\n")
        proc.stdin.flush()
        lines = _Lines(proc.stdout.fileno())
        current: str | None = None
        began = time.monotonic()
        deadline = began + timeout + 30  # the child's own start-up is not the file's fault
        timed_out = False
        while True:
            line = lines.next(deadline)
            if line is None:
                timed_out = time.monotonic() >= deadline
                break
            msg: dict[str, Any] = json.loads(line)
            if "start" in msg:
                current = msg["start"]
                began = time.monotonic()
                deadline = began + timeout
            elif "done" in msg:
                err = msg["error"]
                error = None if err is None else ImportErrorInfo(err[0], err[1], err[2], err[3])
                specs = [DagSpec.from_json(s) for s in msg["specs"]]
                out.append(Parsed(msg["done"], specs, error, msg.get("source"), time.monotonic() - began))
                todo.remove(msg["done"])
                current = None
            elif "secrets" in msg:
                _secrets_cache.update({k: (v[0], v[1]) for k, v in msg["secrets"].items()})
            else:
                break
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        if current is not None and current in todo:
            if timed_out:
                text = (
                    f"importing the DAG file took longer than {timeout:g}s and was stopped; "
                    "move slow work (network calls, big computations) from the top level of "
                    "the file into tasks, or raise MILLSTREAM_DAG_FILE_TIMEOUT"
                )
            else:
                text = f"the DAG file crashed its parsing process (exit code {proc.returncode})"
            out.append(Parsed(current, [], ImportErrorInfo(current, None, text)))
            todo.remove(current)
        elif todo and current is None and len(out) == 0 and proc.returncode not in (0, None):
            first = todo.pop(0)
            out.append(
                Parsed(
                    first,
                    [],
                    ImportErrorInfo(first, None, f"parsing process died (exit code {proc.returncode})"),
                )
            )
    return out


class DagFolder:
    """Finds DAG files whose modification time changed since the last look."""

    def __init__(self, folder: str | os.PathLike[str], timeout: float) -> None:
        # Resolved as ``dag_files`` resolves the files, so "is this file in the folder"
        # is a prefix test even when the folder's path goes through a symlink.
        self.folder = os.path.realpath(folder)
        self.timeout = timeout
        self._mtimes: dict[str, float] = {}
        self._lock = threading.Lock()  # the watcher thread looks, the loop thread forgets

    def files(self) -> list[str]:
        return dag_files(self.folder)

    def changed(self) -> tuple[list[str], list[str]]:
        """(files to parse, all current files)."""
        files = self.files()
        changed = []
        with self._lock:
            for f in files:
                try:
                    m = os.stat(f).st_mtime
                except FileNotFoundError:
                    continue
                if self._mtimes.get(f) != m:
                    self._mtimes[f] = m
                    changed.append(f)
            for gone in set(self._mtimes) - set(files):
                del self._mtimes[gone]
        return changed, files

    def forget(self, files: list[str]) -> None:
        """Parse ``files`` again on the next look although they did not change (a DAG
        they lost to another file is free again)."""
        with self._lock:
            for f in files:
                self._mtimes.pop(f, None)

    def parse(self, files: list[str]) -> list[Parsed]:
        return parse_files(files, self.timeout)
