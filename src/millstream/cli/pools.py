"""``millstream pools``: named slots shared by every DAG."""

from __future__ import annotations

import click

from millstream.cli.env import Env
from millstream.cli.output import console, echo_json, handle_errors, output_option, plain_table


@click.group()
def pools() -> None:
    """Named slots shared by every DAG (``pool=`` on a task)."""


@pools.command("list")
@output_option
@handle_errors
def pools_list(output: str) -> None:
    """Pools with their slots and how many are taken."""
    from millstream.store import pools as pools_q

    with Env(None).store.read() as conn:
        rows = pools_q.list_pools(conn)
    if output == "json":
        echo_json(
            [
                {"pool": r["name"], "slots": r["slots"], "used": r["used"], "description": r["description"]}
                for r in rows
            ]
        )
        return
    table = plain_table("pool", "slots", "used", "description")
    for r in rows:
        table.add_row(str(r["name"]), str(r["slots"]), str(r["used"]), str(r["description"]))
    console.print(table)


@pools.command("set")
@click.argument("name")
@click.argument("slots", type=int)
@click.option("--description", default=None)
@handle_errors
def pools_set(name: str, slots: int, description: str | None) -> None:
    """Create pool NAME or change its number of SLOTS."""
    from millstream.store import pools as pools_q

    env = Env(None)
    with env.store.begin() as conn:
        pools_q.set_pool(conn, name, slots, description)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Pool {name}: {slots} slots")


@pools.command("delete")
@click.argument("name")
@handle_errors
def pools_delete(name: str) -> None:
    """Delete pool NAME (tasks using it wait until it exists again)."""
    from millstream.store import pools as pools_q

    with Env(None).store.begin() as conn:
        pools_q.delete_pool(conn, name)
    console.print(f"Deleted pool {name}")
