"""``/api/v2/version`` and ``/api/v2/monitor/health``, open to everyone as in Airflow.

Millstream's scheduler embeds the triggerer and the DAG-file processor, so all three report
the newest heartbeat of a live scheduler."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from millstream.api.deps import SettingsDep, StoreDep
from millstream.store import schedulers as schedulers_q

router = APIRouter()


class VersionInfo(BaseModel):
    version: str
    git_version: str | None


class BaseInfo(BaseModel):
    status: str | None


class SchedulerInfo(BaseInfo):
    latest_scheduler_heartbeat: datetime | None


class TriggererInfo(BaseInfo):
    latest_triggerer_heartbeat: datetime | None


class DagProcessorInfo(BaseInfo):
    latest_dag_processor_heartbeat: datetime | None


class HealthInfo(BaseModel):
    metadatabase: BaseInfo
    scheduler: SchedulerInfo
    triggerer: TriggererInfo
    dag_processor: DagProcessorInfo | None = None


@router.get("/version", response_model=VersionInfo, tags=["Version"], summary="Get Version")
def get_version() -> VersionInfo:
    """Millstream's version (not Airflow's: this is the server that answers)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return VersionInfo(version=version("millstream"), git_version=None)
    except PackageNotFoundError:
        return VersionInfo(version="0", git_version=None)


@router.get("/monitor/health", response_model=HealthInfo, tags=["Monitor"], summary="Get Health")
def get_health(store: StoreDep, settings: SettingsDep) -> HealthInfo:
    try:
        with store.read() as conn:
            rows = schedulers_q.list_all(conn)
    except Exception:  # noqa: BLE001 - health reports the database being down, it does not fail
        return HealthInfo(
            metadatabase=BaseInfo(status="unhealthy"),
            scheduler=SchedulerInfo(status=None, latest_scheduler_heartbeat=None),
            triggerer=TriggererInfo(status=None, latest_triggerer_heartbeat=None),
            dag_processor=DagProcessorInfo(status=None, latest_dag_processor_heartbeat=None),
        )
    now = datetime.now(UTC)
    live = [r["heartbeat_at"] for r in rows if r["stopped_at"] is None]
    latest = max(live, default=None)
    healthy = latest is not None and (now - latest).total_seconds() < settings.heartbeat_timeout
    status = "healthy" if healthy else "unhealthy"
    return HealthInfo(
        metadatabase=BaseInfo(status="healthy"),
        scheduler=SchedulerInfo(status=status, latest_scheduler_heartbeat=latest),
        triggerer=TriggererInfo(status=status, latest_triggerer_heartbeat=latest),
        dag_processor=DagProcessorInfo(status=status, latest_dag_processor_heartbeat=latest),
    )
