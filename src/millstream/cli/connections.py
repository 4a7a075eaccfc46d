"""``millstream connections``: Airflow's Connections from the command line (same commands
and arguments as ``airflow connections``), and ``rotate-fernet-key``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from millstream.cli.env import Env
from millstream.cli.output import console, echo_json, handle_errors, output_option, plain_table
from millstream.errors import ConflictError, NotFoundError

_FIELDS = ("conn_type", "host", "login", "password", "schema", "port", "extra", "description")


@click.group()
def connections() -> None:
    """Connections: where external systems are and how to log in (BaseHook.get_connection)."""


def _public(c: Any) -> dict[str, Any]:
    from millstream.sdk.masking import MASK, redact_names

    d = c.to_dict()
    d["password"] = MASK if c.password else None
    d["extra"] = redact_names(c.extra_dejson) if c.extra_dejson else (c.extra if c.extra is None else MASK)
    d["description"] = c.description
    return dict(d)


@connections.command("list")
@output_option
@handle_errors
def connections_list(output: str) -> None:
    """Every connection in the store (passwords never shown)."""
    from millstream.store import secret_values as sv

    with Env(None).store.read() as conn:
        items = sv.list_connections(conn)
    if output == "json":
        echo_json([_public(c) for c in items])
        return
    table = plain_table("conn_id", "conn_type", "host", "port", "schema", "login", "description")
    for c in items:
        table.add_row(
            c.conn_id,
            c.conn_type or "",
            c.host or "",
            str(c.port or ""),
            c.schema or "",
            c.login or "",
            c.description or "",
        )
    console.print(table)


@connections.command("get")
@click.argument("conn_id")
@output_option
@handle_errors
def connections_get(conn_id: str, output: str) -> None:
    """One connection as tasks see it (environment, secrets backend, store); password shown as ***."""
    from millstream.sdk.connection import Connection, ConnectionNotFoundError

    Env(None).store  # noqa: B018 - make sure the store exists and is migrated
    try:
        c = Connection.get(conn_id)
    except ConnectionNotFoundError as e:
        raise NotFoundError(str(e)) from None
    public = _public(c)
    if output == "json":
        echo_json(public)
        return
    table = plain_table("field", "value")
    for k, v in public.items():
        table.add_row(k, "" if v is None else json.dumps(v) if isinstance(v, dict) else str(v))
    console.print(table)


@connections.command("add")
@click.argument("conn_id")
@click.option(
    "--conn-uri", default=None, help="The connection as a URI (conn-type://login:password@host:port/schema)."
)
@click.option("--conn-json", default=None, help="The connection as a JSON object.")
@click.option("--conn-type", default=None)
@click.option("--conn-host", default=None)
@click.option("--conn-login", default=None)
@click.option("--conn-password", default=None)
@click.option("--conn-schema", default=None)
@click.option("--conn-port", default=None)
@click.option("--conn-extra", default=None, help="Extra as a JSON object.")
@click.option("--conn-description", default=None)
@click.option("--overwrite", is_flag=True, help="Replace a connection of the same id.")
@handle_errors
def connections_add(
    conn_id: str, conn_uri: str | None, conn_json: str | None, overwrite: bool, **fields: Any
) -> None:
    """Add connection CONN_ID (encrypted at rest)."""
    from millstream.sdk.connection import Connection
    from millstream.store import secret_values as sv

    given = {k[len("conn_") :]: v for k, v in fields.items() if v is not None}
    if sum(x is not None for x in (conn_uri, conn_json)) + bool(given and (conn_uri or conn_json)) > 1:
        raise ConflictError("give one of --conn-uri, --conn-json, or the separate --conn-* fields")
    if conn_uri:
        c = Connection.from_uri(conn_uri, conn_id)
    elif conn_json:
        c = Connection.from_json(conn_json, conn_id)
    else:
        if "type" not in given:
            raise ConflictError(
                f"connection {conn_id!r}: --conn-type is required without --conn-uri or --conn-json"
            )
        extra = given.pop("extra", None)
        if extra is not None:
            try:
                json.loads(extra)
            except ValueError as e:
                raise ConflictError(f"connection {conn_id!r}: --conn-extra is not JSON: {e}") from None
        c = Connection(
            conn_id=conn_id,
            conn_type=given.get("type"),
            host=given.get("host"),
            login=given.get("login"),
            password=given.get("password"),
            schema=given.get("schema"),
            port=given.get("port"),
            extra=extra,
            description=given.get("description"),
        )
    if conn_uri and fields.get("conn_description"):
        c.description = fields["conn_description"]
    with Env(None).store.begin() as conn:
        sv.set_connection(conn, c, replace=overwrite)
    console.print(f"Successfully added `conn_id`={conn_id} : {c.conn_type}://{c.host or ''}")


@connections.command("delete")
@click.argument("conn_id")
@handle_errors
def connections_delete(conn_id: str) -> None:
    """Delete connection CONN_ID from the store."""
    from millstream.store import secret_values as sv

    with Env(None).store.begin() as conn:
        sv.delete_connection(conn, conn_id)
    console.print(f"Successfully deleted connection with `conn_id`={conn_id}")


@connections.command("test")
@click.argument("conn_id")
@handle_errors
def connections_test(conn_id: str) -> None:
    """Reach the system behind CONN_ID with its hook; exit 1 if that fails."""
    from millstream.sdk.connection import Connection, ConnectionNotFoundError

    Env(None).store  # noqa: B018
    try:
        c = Connection.get(conn_id)
    except ConnectionNotFoundError as e:
        raise NotFoundError(str(e)) from None
    ok, message = c.test_connection()
    if not ok:
        raise ConflictError(f"Connection {conn_id} failed: {message}")
    console.print(f"Connection success! {message}")


@connections.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--file-format", type=click.Choice(["json", "yaml", "env"]), default=None)
@click.option(
    "--serialization-format", type=click.Choice(["uri", "json"]), default=None, help="For .env files."
)
@handle_errors
def connections_export(file: Path, file_format: str | None, serialization_format: str | None) -> None:
    """Write every connection of the store to FILE (passwords in the clear: keep it safe)."""
    from millstream.store import secret_values as sv

    fmt = file_format or {".yaml": "yaml", ".yml": "yaml", ".env": "env"}.get(file.suffix.lower(), "json")
    with Env(None).store.read() as conn:
        items = sv.list_connections(conn)
    if fmt == "env":
        ser = serialization_format or "uri"
        text = "".join(f"{c.conn_id}={c.get_uri() if ser == 'uri' else c.as_json()}\n" for c in items)
    else:
        data = {c.conn_id: {k: v for k, v in c.to_dict().items() if k != "conn_id"} for c in items}
        if fmt == "yaml":
            import yaml

            text = yaml.safe_dump(data, sort_keys=True)
        else:
            text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    file.write_text(text, encoding="utf-8")
    file.chmod(0o600)
    console.print(f"Connections successfully exported to {file} ({len(items)})")


@connections.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace connections that already exist.")
@handle_errors
def connections_import(file: Path, overwrite: bool) -> None:
    """Add every connection of a JSON, YAML or .env file, all in one transaction."""
    from millstream.sdk.connection import Connection
    from millstream.sdk.secrets import parse_secrets_file
    from millstream.store import secret_values as sv

    if not file.is_file():
        raise NotFoundError(f"{file}: no such file")
    try:
        raw = parse_secrets_file(file)
    except Exception as e:  # noqa: BLE001 - a ConfigError naming the file
        raise ConflictError(str(e)) from None
    items = []
    for conn_id, value in raw.items():
        try:
            items.append(
                Connection.parse(value, conn_id)
                if isinstance(value, str)
                else Connection.from_json(value, conn_id)
            )
        except ValueError as e:
            raise ConflictError(f"{file}: {e}; nothing was imported") from None
    with Env(None).store.begin() as conn:
        n = sv.import_connections(conn, items, overwrite=overwrite)
    console.print(f"Imported {n} connection(s) from {file}")


@click.command("rotate-fernet-key")
@click.option("--generate", is_flag=True, help="Only print a new key to put first in core.fernet_key.")
@handle_errors
def rotate_fernet_key(generate: bool) -> None:
    """Re-encrypt every Variable and Connection secret with the first key of core.fernet_key.

    To rotate: set core.fernet_key to "NEW,OLD" on every process, run this, then drop OLD.
    """
    from millstream.store import crypto
    from millstream.store import secret_values as sv

    if generate:
        click.echo(crypto.generate())
        return
    with Env(None).store.begin() as conn:
        nv, nc = sv.rotate(conn)
    console.print(f"Re-encrypted {nv} variable(s) and {nc} connection(s) with the first key")
