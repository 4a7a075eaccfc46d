"""Settings, read from ``MILLSTREAM_*`` environment variables with documented defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    home: Path
    dags_folder: Path
    database_url: str
    parallelism: int
    max_map_length: int
    dag_file_timeout: float  # seconds a DAG file may take to import
    dag_refresh_interval: float  # seconds between checks of the DAG folder for changes
    poll_interval: float  # seconds between checks for triggers made by other processes
    paused_on_creation: bool
    lease_timeout: float  # seconds without a heartbeat before a running attempt is lost

    @property
    def logs_folder(self) -> Path:
        return self.home / "logs"

    @classmethod
    def from_env(cls, *, dags_folder: str | os.PathLike[str] | None = None) -> Settings:
        env = os.environ
        home = Path(env.get("MILLSTREAM_HOME", "~/millstream")).expanduser().resolve()
        folder = dags_folder or env.get("MILLSTREAM_DAGS_FOLDER") or home / "dags"
        return cls(
            home=home,
            dags_folder=Path(folder).expanduser().resolve(),
            database_url=env.get("MILLSTREAM_DATABASE_URL") or f"sqlite:///{home / 'millstream.db'}",
            parallelism=int(env.get("MILLSTREAM_PARALLELISM", "0")) or max(2, os.cpu_count() or 2),
            max_map_length=int(env.get("MILLSTREAM_MAX_MAP_LENGTH", "100000")),
            dag_file_timeout=float(env.get("MILLSTREAM_DAG_FILE_TIMEOUT", "30")),
            dag_refresh_interval=float(env.get("MILLSTREAM_DAG_REFRESH_INTERVAL", "5")),
            poll_interval=float(env.get("MILLSTREAM_POLL_INTERVAL", "1")),
            paused_on_creation=_bool(env.get("MILLSTREAM_PAUSED_ON_CREATION", "true")),
            lease_timeout=float(env.get("MILLSTREAM_LEASE_TIMEOUT", "30")),
        )
