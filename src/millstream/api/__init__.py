"""The REST API and web UI: FastAPI over control.py and the store's queries."""

from millstream.api.app import create_app

__all__ = ["create_app"]
