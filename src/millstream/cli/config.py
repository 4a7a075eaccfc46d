"""``millstream config``: the settings in effect and where each came from."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from millstream.cli.output import console, echo_json, handle_errors, output_option, plain_table
from millstream.settings import Settings


@click.group()
def config() -> None:
    """Settings: millstream.toml and MILLSTREAM__SECTION__KEY variables."""


@config.command("show")
@output_option
@handle_errors
def config_show(output: str) -> None:
    """The effective settings, where each came from, secrets masked."""
    from millstream.settings import mask

    settings = Settings.load()
    rows = [
        (s.name, mask(value) if s.secret and value else ("" if value is None else str(value)), source)
        for s, value, source in settings.effective()
    ]
    if output == "json":
        echo_json([{"setting": n, "value": v, "source": src} for n, v, src in rows])
        return
    console.print(f"home {settings.home}; config file {settings.config_file or '(none)'}")
    table = plain_table("setting", "value", "source")
    for name, value, source in rows:
        table.add_row(name, escape(value), source)
    console.print(table)


@config.command("reference")
@click.option("--write", type=click.Path(dir_okay=False), default=None, help="Write it to this file.")
def config_reference(write: str | None) -> None:
    """The configuration reference page (docs/configuration.md), from the code."""
    from millstream.settings import reference_markdown

    text = reference_markdown()
    if write:
        Path(write).write_text(text)
    else:
        click.echo(text, nl=False)
