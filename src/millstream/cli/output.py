"""How every command prints: tables, JSON, state colours, and errors as one line and exit 1.

One place so that ``-o json`` means the same shape of output everywhere, and so that an
error Millstream raises on purpose never reaches the user as a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from millstream.errors import MillstreamError

# Piped output (scripts, tests) must not be cut to 80 columns.
_WIDTH = None if sys.stdout.isatty() else 250
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)

STATE_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "dark_orange",
    "skipped": "magenta",
    "running": "cyan",
    "queued": "grey50",
    "scheduled": "tan",
    "up_for_retry": "yellow",
    "removed": "grey37",
    "none": "grey50",
}

_FORMAT = "millstream.output"


def _structured(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """YAML is JSON with another printer: a command branches on ``table`` or ``json``
    (structured data), and :func:`echo_json` prints the data in the format asked for, so
    every command with ``--output`` gets YAML without a branch of its own."""
    ctx.meta[_FORMAT] = value
    return "json" if value == "yaml" else value


output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    callback=_structured,
    help="Output format: a table to read, or JSON or YAML (the same data) for scripts.",
)


def output_format() -> str:
    """The ``--output`` given to the running command: table, json or yaml."""
    ctx = click.get_current_context(silent=True)
    return str(ctx.meta.get(_FORMAT, "table")) if ctx is not None else "table"


def styled(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def fmt_dt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def plain_table(*columns: str) -> Table:
    """A borderless table: it reads in a terminal and survives ``grep`` and ``awk``."""
    return Table(*columns, box=None)


def echo_json(data: Any) -> None:
    """``-o json`` (or ``-o yaml``): plain data on stdout, no colours, for scripts."""
    text = json.dumps(data, indent=2)
    if output_format() == "yaml":
        import yaml  # only when asked: most commands never print YAML

        # Through JSON first, so YAML holds exactly what JSON would (dates as the same strings).
        click.echo(yaml.safe_dump(json.loads(text), sort_keys=False, allow_unicode=True), nl=False)
        return
    click.echo(text)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors Millstream raises on purpose become one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MillstreamError as e:
            err_console.print(f"[red]Error:[/] {e}", markup=True, soft_wrap=True)
            sys.exit(1)

    return wrapper
