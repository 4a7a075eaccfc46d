"""``millstream users``: accounts and bearer tokens of the API and web UI."""

from __future__ import annotations

import os

import click
from rich.markup import escape

from millstream.cli.env import Env
from millstream.cli.output import console, echo_json, fmt_dt, handle_errors, output_option, plain_table
from millstream.store import Store


@click.group()
def users() -> None:
    """Accounts of the API and web UI: admins change things, viewers read."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option(
    "--password",
    default=None,
    help="Default: asked for (or read from $MILLSTREAM_PASSWORD); never put it in shell history.",
)
@handle_errors
def users_create(username: str, role: str, password: str | None) -> None:
    """Create user USERNAME."""
    from millstream.store import users as users_q

    password = password or os.environ.get("MILLSTREAM_PASSWORD")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with Env(None).store.begin() as conn:
        users_q.create_user(conn, username, password, role)
    console.print(f"Created {role} {escape(username)}")


@users.command("list")
@output_option
@handle_errors
def users_list(output: str) -> None:
    """Users and their roles."""
    from millstream.store import users as users_q

    table = plain_table("user", "role", "created")
    with Env(None).store.read() as conn:
        rows = users_q.list_users(conn)
    if output == "json":
        echo_json(
            [
                {
                    "username": u["username"],
                    "role": u["role"],
                    "created_at": u["created_at"] and u["created_at"].isoformat(),
                }
                for u in rows
            ]
        )
        return
    for u in rows:
        table.add_row(escape(u["username"]), u["role"], fmt_dt(u["created_at"]))
    console.print(table)


@users.command("delete")
@click.argument("username")
@handle_errors
def users_delete(username: str) -> None:
    """Delete user USERNAME and its tokens."""
    from millstream.store import users as users_q

    with Env(None).store.begin() as conn:
        users_q.delete_user(conn, username)
    console.print(f"Deleted {escape(username)}")


@users.command("set-password")
@click.argument("username")
@handle_errors
def users_set_password(username: str) -> None:
    """Change USERNAME's password (its web sessions end and its tokens are revoked)."""
    from millstream.store import users as users_q

    password = os.environ.get("MILLSTREAM_PASSWORD") or click.prompt(
        "New password", hide_input=True, confirmation_prompt=True
    )
    with Env(None).store.begin() as conn:
        users_q.set_password(conn, username, password)
    console.print(f"Password of {escape(username)} changed")


@users.command("token")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@handle_errors
def users_token(username: str, name: str) -> None:
    """Make a bearer token for USERNAME and print it (once: only its hash is kept)."""
    from millstream.store import users as users_q

    with Env(None).store.begin() as conn:
        token = users_q.create_token(conn, username, name)
    click.echo(token)


@users.command("tokens")
@click.argument("username")
@handle_errors
def users_tokens(username: str) -> None:
    """USERNAME's tokens (their ids and names; the tokens themselves are not kept)."""
    from millstream.store import users as users_q

    table = plain_table("id", "name", "created")
    with Env(None).store.read() as conn:
        for t in users_q.list_tokens(conn, username):
            table.add_row(str(t["id"]), escape(t["name"]), fmt_dt(t["created_at"]))
    console.print(table)


@users.command("revoke")
@click.argument("username")
@click.argument("token_id", type=int)
@handle_errors
def users_revoke(username: str, token_id: int) -> None:
    """Revoke token TOKEN_ID of USERNAME (`users tokens` lists them)."""
    from millstream.store import users as users_q

    with Env(None).store.begin() as conn:
        users_q.revoke_token(conn, username, token_id)
    console.print(f"Revoked token {token_id} of {escape(username)}")


def first_admin(store: Store) -> str | None:
    """On a database with no users, create ``admin`` with a random password and return it."""
    import secrets

    from millstream.store import users as users_q

    with store.begin() as conn:
        if users_q.count_users(conn):
            return None
        password = secrets.token_urlsafe(12)
        users_q.create_user(conn, "admin", password, "admin")
    return password
