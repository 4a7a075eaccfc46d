"""``millstream variables``: Airflow's Variables from the command line (same commands and
arguments as ``airflow variables``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from millstream.cli.env import Env
from millstream.cli.output import console, echo_json, handle_errors, output_option, plain_table
from millstream.errors import ConflictError, NotFoundError


@click.group()
def variables() -> None:
    """Variables: named settings read by DAG files and tasks (Variable.get, {{ var.value.x }})."""


def _shown(key: str, value: str | None) -> str | None:
    from millstream.sdk.masking import MASK, is_sensitive

    return MASK if is_sensitive(key) and value else value


@variables.command("list")
@output_option
@handle_errors
def variables_list(output: str) -> None:
    """Every variable in the store (values of sensitive keys shown as ***)."""
    from millstream.store import secret_values as sv

    with Env(None).store.read() as conn:
        rows = sv.list_variables(conn)
    if output == "json":
        echo_json(
            [
                {"key": r["key"], "value": _shown(r["key"], r["value"]), "description": r["description"]}
                for r in rows
            ]
        )
        return
    table = plain_table("key", "value", "description")
    for r in rows:
        table.add_row(r["key"], _shown(r["key"], r["value"]) or "", r["description"] or "")
    console.print(table)


@variables.command("get")
@click.argument("key")
@click.option("--default", "default", default=None, help="Print this if the variable is not set.")
@click.option("-j", "--json", "as_json", is_flag=True, help="Parse the value as JSON and print it pretty.")
@handle_errors
def variables_get(key: str, default: str | None, as_json: bool) -> None:
    """Print the value of KEY, looked up as tasks do (environment, secrets backend, store)."""
    from millstream.sdk.variable import Variable, VariableNotFoundError

    Env(None).store  # noqa: B018 - make sure the store exists and is migrated
    try:
        value = Variable.get(key, deserialize_json=as_json)
    except VariableNotFoundError as e:
        if default is None:
            raise NotFoundError(str(e)) from None
        value = default
    click.echo(json.dumps(value, indent=2) if as_json and not isinstance(value, str) else value)


@variables.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--description", default=None)
@click.option(
    "-j", "--json", "as_json", is_flag=True, help="VALUE is JSON: check it and store it normalised."
)
@handle_errors
def variables_set(key: str, value: str, description: str | None, as_json: bool) -> None:
    """Set KEY to VALUE in the store (encrypted at rest)."""
    from millstream.store import secret_values as sv

    if as_json:
        try:
            value = json.dumps(json.loads(value), indent=2)
        except ValueError as e:
            raise ConflictError(f"variable {key!r}: --json was given but VALUE is not JSON: {e}") from None
    with Env(None).store.begin() as conn:
        sv.set_variable(conn, key, value, description)
    console.print(f"Variable {key} set")


@variables.command("delete")
@click.argument("key")
@handle_errors
def variables_delete(key: str) -> None:
    """Delete KEY from the store."""
    from millstream.store import secret_values as sv

    with Env(None).store.begin() as conn:
        if not sv.delete_variable(conn, key):
            raise NotFoundError(f"no variable {key!r} in the store; `millstream variables list` shows them")
    console.print(f"Deleted variable {key}")


def _read_mapping(path: Path) -> dict[str, Any]:
    from millstream.sdk.secrets import parse_secrets_file

    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    try:
        return parse_secrets_file(path)
    except Exception as e:  # noqa: BLE001 - a ConfigError naming the file and line
        raise ConflictError(str(e)) from None


@variables.command("import")
@click.argument("filepath", type=click.Path(path_type=Path))
@click.option(
    "--action-on-existing-key",
    type=click.Choice(["overwrite", "fail", "skip"]),
    default="overwrite",
    show_default=True,
)
@handle_errors
def variables_import(filepath: Path, action_on_existing_key: str) -> None:
    """Set every variable of a JSON (or YAML, .env) file, all in one transaction: if one
    cannot be set, none is."""
    from millstream.store import secret_values as sv

    values = _read_mapping(filepath)
    with Env(None).store.begin() as conn:
        if action_on_existing_key == "fail":
            taken = [k for k in values if sv.get_variable(conn, k) is not None]
            if taken:
                raise ConflictError(
                    f"{filepath}: variable(s) already set: {', '.join(sorted(taken))}; nothing was imported "
                    "(use --action-on-existing-key overwrite or skip)"
                )
        done, skipped = sv.import_variables(conn, values, overwrite=action_on_existing_key == "overwrite")
    console.print(
        f"Imported {done} variable(s) from {filepath}" + (f", skipped {skipped} existing" if skipped else "")
    )


@variables.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@handle_errors
def variables_export(file: Path) -> None:
    """Write every variable of the store to FILE as JSON (values in the clear: keep it safe)."""
    from millstream.store import secret_values as sv

    with Env(None).store.read() as conn:
        rows = sv.list_variables(conn)
    out: dict[str, Any] = {}
    for r in rows:
        try:
            out[r["key"]] = json.loads(r["value"]) if r["value"] is not None else None
        except ValueError:
            out[r["key"]] = r["value"]
    file.write_text(json.dumps(out, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    file.chmod(0o600)
    console.print(f"Exported {len(out)} variable(s) to {file}")
