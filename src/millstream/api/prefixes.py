"""Where each API lives, for the parts that answer by API (error bodies, the two OpenAPI
documents) without importing the routes."""

from __future__ import annotations

V1 = "/api/v1"
V2 = "/api/v2"


def is_v2(path: str) -> bool:
    """Whether a request is Airflow's REST API (``/api/v2`` and its login, ``/auth/token``),
    answered with Airflow's error bodies."""
    return path.startswith((V2 + "/", "/auth/token")) or path == V2
