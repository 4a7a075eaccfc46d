"""Users, API tokens and the session key of the API and web UI.

Passwords are kept as Argon2 hashes and tokens as SHA-256 digests: a copy of the database
gives away neither. Hashing lives here (not in the API) so the CLI creates users the same way.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from millstream.errors import ConflictError, NotFoundError, ParamValidationError
from millstream.store.tables import api_secret, api_token, app_user

ROLES = ("admin", "viewer")
TOKEN_PREFIX = "ms_"
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,150}$")
_hasher = PasswordHasher()


def valid_username(username: str) -> bool:
    return bool(_USERNAME.match(username))


def _check(username: str, role: str, password: str) -> None:
    if not valid_username(username):
        raise ParamValidationError(
            f"username {username!r}: use 1 to 150 letters, digits and . _ @ - (no spaces)"
        )
    if role not in ROLES:
        raise ParamValidationError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ParamValidationError("the password must be at least 8 characters long")


def create_user(
    conn: Connection, username: str, password: str, role: str, now: datetime | None = None
) -> int:
    _check(username, role, password)
    try:
        with conn.begin_nested():
            return int(
                conn.execute(
                    app_user.insert().values(
                        username=username,
                        password_hash=_hasher.hash(password),
                        role=role,
                        created_at=now or datetime.now(UTC),
                    )
                ).inserted_primary_key[0]
            )
    except IntegrityError:
        raise ConflictError(f"user {username!r} already exists") from None


def set_password(conn: Connection, username: str, password: str) -> None:
    """A new password ends the user's UI sessions and revokes its tokens: whoever knew the
    old one keeps nothing."""
    _check(username, "viewer", password)
    user = get_user(conn, username)
    conn.execute(
        app_user.update()
        .where(app_user.c.id == user["id"])
        .values(password_hash=_hasher.hash(password), session_epoch=app_user.c.session_epoch + 1)
    )
    conn.execute(api_token.delete().where(api_token.c.user_id == user["id"]))


def end_sessions(conn: Connection, user_id: int) -> None:
    conn.execute(
        app_user.update().where(app_user.c.id == user_id).values(session_epoch=app_user.c.session_epoch + 1)
    )


def delete_user(conn: Connection, username: str) -> None:
    row = get_user(conn, username)
    conn.execute(api_token.delete().where(api_token.c.user_id == row["id"]))
    conn.execute(app_user.delete().where(app_user.c.id == row["id"]))


def get_user(conn: Connection, username: str) -> sa.RowMapping:
    row = conn.execute(sa.select(app_user).where(app_user.c.username == username)).mappings().first()
    if row is None:
        raise NotFoundError(f"no user {username!r}; `millstream users list` shows them")
    return row


def user_by_id(conn: Connection, user_id: int) -> sa.RowMapping | None:
    return conn.execute(sa.select(app_user).where(app_user.c.id == user_id)).mappings().first()


def list_users(conn: Connection) -> list[sa.RowMapping]:
    return list(conn.execute(sa.select(app_user).order_by(app_user.c.username)).mappings())


def count_users(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(app_user)).scalar_one())


def authenticate(conn: Connection, username: str, password: str) -> sa.RowMapping | None:
    """The user if the password is right, else None (the same None for an unknown user)."""
    if not valid_username(username):
        return None
    row = conn.execute(sa.select(app_user).where(app_user.c.username == username)).mappings().first()
    if row is None:
        # Hash anyway so that timing does not tell which usernames exist.
        _hasher.hash(password)
        return None
    try:
        _hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    return row


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, username: str, name: str, now: datetime | None = None) -> str:
    """A new bearer token for ``username``; the token itself is returned once and not kept."""
    user = get_user(conn, username)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        api_token.insert().values(
            user_id=user["id"],
            name=name[:150] or "token",
            token_hash=_digest(token),
            created_at=now or datetime.now(UTC),
        )
    )
    return token


def user_for_token(conn: Connection, token: str) -> sa.RowMapping | None:
    row = (
        conn.execute(
            sa.select(app_user)
            .join(api_token, api_token.c.user_id == app_user.c.id)
            .where(api_token.c.token_hash == _digest(token))
        )
        .mappings()
        .first()
    )
    return row


def list_tokens(conn: Connection, username: str) -> list[sa.RowMapping]:
    user = get_user(conn, username)
    q = sa.select(api_token.c.id, api_token.c.name, api_token.c.created_at).where(
        api_token.c.user_id == user["id"]
    )
    return list(conn.execute(q.order_by(api_token.c.id)).mappings())


def revoke_token(conn: Connection, username: str, token_id: int) -> None:
    user = get_user(conn, username)
    done = conn.execute(
        api_token.delete().where(api_token.c.id == token_id, api_token.c.user_id == user["id"])
    )
    if done.rowcount == 0:
        raise NotFoundError(f"user {username!r} has no token {token_id}")


def session_secret(conn: Connection) -> str:
    """The key that signs session cookies, made on first use and shared by all API servers."""
    row = conn.execute(sa.select(api_secret.c.secret).where(api_secret.c.id == 1)).first()
    if row is not None:
        return str(row[0])
    secret = secrets.token_hex(32)
    try:
        with conn.begin_nested():
            conn.execute(api_secret.insert().values(id=1, secret=secret))
    except IntegrityError:  # another server made it first
        return str(conn.execute(sa.select(api_secret.c.secret).where(api_secret.c.id == 1)).scalar_one())
    return secret
