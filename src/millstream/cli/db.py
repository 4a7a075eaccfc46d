"""``millstream db``: the database schema, created or upgraded by Alembic."""

from __future__ import annotations

import click

from millstream.cli.env import safe_url
from millstream.cli.output import console, handle_errors
from millstream.settings import Settings
from millstream.store import Store


@click.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@handle_errors
def db_migrate() -> None:
    """Create or upgrade the database schema to the newest revision."""
    settings = Settings.load()
    store = Store(settings.database_url)
    rev = store.migrate()
    console.print(f"Database at revision {rev}: {safe_url(settings.database_url)}")
