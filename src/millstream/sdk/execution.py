"""What ``execute(context)`` does for the built-in kinds of task: call a Python function,
run a Bash command, poke a sensor until it is satisfied.

Every task, decorated or an operator class, runs through ``execute``; these are the
bodies that :class:`~millstream.sdk.task.Task`, ``BashOperator`` and
``BaseSensorOperator`` share. Output goes to ``sys.stdout``, which the worker points at
the attempt's log.
"""

from __future__ import annotations

import inspect
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from millstream.errors import SkipTask
from millstream.sdk.xcom import PokeReturnValue


def call_arguments(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], context: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Airflow's rule for what a Python callable receives: its own arguments, plus every
    context value it names as a parameter (all of them if it takes ``**kwargs``)."""
    out_args = list(args)
    out = dict(kwargs)
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for k, v in context.items():
            out.setdefault(k, v)
    else:
        for name in params:
            if name in context and name not in out:
                out[name] = context[name]
    # Positional arguments already given must not be passed twice by name.
    positional = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for name in positional[: len(out_args)]:
        out.pop(name, None)
    return out_args, out


# -- bash ---------------------------------------------------------------------------------


def airflow_ctx_vars(context: Mapping[str, Any]) -> dict[str, str]:
    """The ``AIRFLOW_CTX_*`` variables Airflow gives every Bash command."""
    ti = context.get("ti")
    ld = context.get("logical_date")
    out = {
        "AIRFLOW_CTX_DAG_ID": str(getattr(context.get("dag"), "dag_id", "")),
        "AIRFLOW_CTX_TASK_ID": str(getattr(ti, "task_id", "")),
        "AIRFLOW_CTX_DAG_RUN_ID": str(context.get("run_id") or ""),
        "AIRFLOW_CTX_TRY_NUMBER": str(getattr(ti, "try_number", "")),
    }
    if ld is not None:
        out["AIRFLOW_CTX_LOGICAL_DATE"] = ld.isoformat()
    owner = getattr(context.get("task"), "owner", None)
    if owner:
        out["AIRFLOW_CTX_DAG_OWNER"] = str(owner)
    return out


def run_bash(
    command: str,
    *,
    env: Mapping[str, str] | None,
    append_env: bool = False,
    cwd: str | None = None,
    output_encoding: str = "utf-8",
    skip_on_exit_code: int | Sequence[int] | None = 99,
    context: Mapping[str, Any] | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> str:
    """Run ``command`` with ``bash -c`` and return its last line of output.

    The command gets its own process group, so that stopping the attempt (``on_kill``:
    :func:`terminate`) stops everything it started; ``on_start`` is given the process.

    As in Airflow, ``env`` *replaces* the worker's environment unless ``append_env`` is
    true; with no ``env`` the command inherits it. An exit code in ``skip_on_exit_code``
    (99 by default) ends the task as skipped.
    """
    if not command or not command.strip():
        raise ValueError("bash_command is empty; give it the command to run")
    if cwd is not None and not os.path.isdir(cwd):
        raise FileNotFoundError(f"cwd {cwd!r} of the bash command is not an existing folder")
    base = dict(os.environ) if env is None or append_env else {}
    full_env = {**base, **(dict(env) if env else {}), **airflow_ctx_vars(context or {})}
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    if on_start is not None:
        on_start(proc)
    last = ""
    assert proc.stdout is not None
    out = sys.stdout
    for raw in proc.stdout:
        line = raw.decode(output_encoding, errors="backslashreplace")
        out.write(line)
        if line.strip():
            last = line.rstrip("\n")
    out.flush()
    code = proc.wait()
    skips = (
        ()
        if skip_on_exit_code is None
        else (skip_on_exit_code,)
        if isinstance(skip_on_exit_code, int)
        else tuple(skip_on_exit_code)
    )
    if code in skips:
        raise SkipTask(f"bash command exited with code {code}, one of skip_on_exit_code {list(skips)}")
    if code != 0:
        raise RuntimeError(f"bash command failed: it exited with code {code}")
    return last


def terminate(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """Stop a command started by :func:`run_bash` and all it started: SIGTERM to its
    process group, then SIGKILL if it has not ended within ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    print(f"sending SIGTERM to the bash command's process group {proc.pid}", flush=True)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)
    except ProcessLookupError:
        pass


# -- sensors ------------------------------------------------------------------------------


class SensorTimeout(Exception):  # noqa: N818 - the name Airflow users know
    """A sensor was not satisfied within its timeout."""


class Reschedule(Exception):  # noqa: N818 - control flow, not an error
    """A sensor in reschedule mode gives its worker slot back until ``at``."""

    def __init__(self, at: datetime) -> None:
        super().__init__(at.isoformat())
        self.at = at


def sensor_interval(cfg: Mapping[str, Any], elapsed: float) -> float:
    """Seconds until the next poke. With exponential backoff the interval doubles after
    each poke (1, 2, 4 ... times poke_interval, with some jitter), computed from the time
    already spent so that reschedule mode needs no counter, and capped by max_wait."""
    base = float(cfg["poke_interval"])
    if not cfg["exponential_backoff"] or base <= 0:
        return base
    pokes = int(math.log2(elapsed / base + 1)) if elapsed > 0 else 0
    interval: float = base * 2**pokes * random.uniform(0.9, 1.1)
    return min(interval, float(cfg["max_wait"])) if cfg["max_wait"] else interval


def run_sensor(
    poke: Callable[[], Any], cfg: Mapping[str, Any], context: Mapping[str, Any], task_id: str
) -> Any:
    """Poke until done, the timeout passes, or (reschedule mode) the next poke is due
    later; returns a :class:`PokeReturnValue`'s ``xcom_value``, else None."""
    first = getattr(context.get("ti"), "sensor_started_at", None) or datetime.now(UTC)
    out = sys.stdout
    while True:
        result = poke()
        done = bool(result.is_done) if isinstance(result, PokeReturnValue) else bool(result)
        now = datetime.now(UTC)
        if done:
            print("sensor condition met", file=out)
            return result.xcom_value if isinstance(result, PokeReturnValue) else None
        elapsed = (now - first).total_seconds()
        if elapsed >= cfg["timeout"]:
            raise SensorTimeout(
                f"sensor {task_id!r} not satisfied after {elapsed:.1f}s (timeout {cfg['timeout']:g}s)"
            )
        wait = min(sensor_interval(cfg, elapsed), cfg["timeout"] - elapsed)
        print(f"[{now.isoformat()}] not yet; poking again in {wait:.1f}s", file=out)
        if cfg["mode"] == "reschedule":
            raise Reschedule(now + timedelta(seconds=wait))
        time.sleep(wait)
