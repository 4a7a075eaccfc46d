"""Cached virtual environments for ``PythonVirtualenvOperator`` and ``@task.virtualenv``.

An environment is named by a hash of what makes it: its requirements (sorted), Python
version, whether it sees the system site packages, and pip's options and index URLs. It
is built once — with ``uv`` when that is on the machine, else ``venv`` and pip — under a
file lock, so attempts that ask at the same moment wait for one build instead of racing;
it is marked ready only when complete, so a build that was killed half-way is started
over rather than used. Later attempts and runs reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

READY = ".millstream-ready"


class VirtualenvBuildError(RuntimeError):
    """The environment could not be built: what pip or uv said is in the message."""


def cache_root(venv_cache_path: str | os.PathLike[str] | None = None) -> Path:
    if venv_cache_path:
        return Path(venv_cache_path).expanduser()
    home = Path(os.environ.get("MILLSTREAM_HOME", "~/millstream")).expanduser()
    return Path(os.environ.get("MILLSTREAM_VENV_CACHE", home / "venvs")).expanduser()


def env_hash(
    requirements: Sequence[str],
    python_version: str | None,
    system_site_packages: bool,
    pip_install_options: Sequence[str],
    index_urls: Sequence[str],
) -> str:
    key = {
        "requirements": sorted({r.strip() for r in requirements if r.strip()}),
        "python": python_version or "",
        "system_site_packages": system_site_packages,
        "pip": list(pip_install_options),
        "index_urls": list(index_urls),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def find_python(python_version: str | None) -> str:
    """The interpreter to build from: this one, or ``pythonX.Y`` on PATH for another version."""
    if not python_version or str(python_version) == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    wanted = f"python{python_version}"
    found = shutil.which(wanted)
    if found is None:
        raise VirtualenvBuildError(
            f"python_version={python_version!r} asks for {wanted}, which is not on this machine's PATH; "
            "install that Python, or leave python_version out to use the worker's own"
        )
    return found


def environment(
    requirements: Sequence[str],
    *,
    python_version: str | None = None,
    system_site_packages: bool = True,
    pip_install_options: Sequence[str] = (),
    index_urls: Sequence[str] = (),
    venv_cache_path: str | os.PathLike[str] | None = None,
) -> Path:
    """The folder of a ready environment with ``requirements``: built now if needed."""
    root = cache_root(venv_cache_path)
    root.mkdir(parents=True, exist_ok=True)
    name = env_hash(requirements, python_version, system_site_packages, pip_install_options, index_urls)
    target = root / name
    if (target / READY).exists():
        return target
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build; the others wait and then reuse it
        if (target / READY).exists():
            return target
        if target.exists():
            shutil.rmtree(target)  # a build that died half-way
        try:
            # Built where it stays (a venv's scripts name their folder); READY comes last.
            _build(
                target, requirements, python_version, system_site_packages, pip_install_options, index_urls
            )
            (target / READY).write_text(json.dumps(sorted(requirements)))
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return target


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise VirtualenvBuildError(f"{what} failed (exit code {done.returncode}):\n{tail}")


def _build(
    folder: Path,
    requirements: Sequence[str],
    python_version: str | None,
    system_site_packages: bool,
    pip_install_options: Sequence[str],
    index_urls: Sequence[str],
) -> None:
    python = find_python(python_version)
    uv = shutil.which("uv")
    site = ["--system-site-packages"] if system_site_packages else []
    print(f"Creating the virtual environment {folder.name} with {'uv' if uv else 'venv and pip'}")
    if uv:
        _run([uv, "venv", "--quiet", "--python", python, *site, str(folder)], "uv venv")
    else:
        _run([python, "-m", "venv", *site, str(folder)], "python -m venv")
    reqs = [r for r in requirements if r.strip()]
    if not reqs:
        return
    index: list[str] = []
    if index_urls:
        index = ["--index-url", index_urls[0]] + [a for u in index_urls[1:] for a in ("--extra-index-url", u)]
    py = str(folder / "bin" / "python")
    print(f"Installing {', '.join(reqs)}")
    if uv:
        _run(
            [uv, "pip", "install", "--quiet", "--python", py, *index, *pip_install_options, *reqs],
            "uv pip install",
        )
    else:
        _run([py, "-m", "pip", "install", "--quiet", *index, *pip_install_options, *reqs], "pip install")
