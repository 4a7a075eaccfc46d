"""JSON Web Tokens, as Airflow 3's ``POST /auth/token`` issues them, for the existing users.

Airflow's clients (``apache-airflow-client``, ``airflowctl``, curl scripts) log in once and
then send ``Authorization: Bearer <jwt>``. Millstream's own opaque tokens (``ms_…``, kept
as digests in the store) stay for ``/api/v1`` and ``millstream users token``; a JWT is
taken by both APIs, with the same roles.

A JWT is not stored: it is signed with a key derived from the store's session secret, so
every API server on one database accepts the others' tokens. It carries a fingerprint of
the user's password hash, so a new password (or a deleted user) voids every JWT issued
before, as it revokes the opaque tokens; a logout of the web UI does not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import Connection

from millstream.store import users as users_q

ALGORITHM = "HS512"
AUDIENCE = "apache-airflow"  # the audience Airflow's own tokens carry
ISSUER = "millstream"


def _key(conn: Connection) -> bytes:
    secret = users_q.session_secret(conn)
    return hmac.new(
        secret.encode(), b"millstream jwt signing key", hashlib.sha512
    ).digest()  # 64 bytes, as HS512 wants


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith(users_q.TOKEN_PREFIX)


def issue(conn: Connection, user: Any, lifetime: int, now: datetime | None = None) -> str:
    """A signed token for ``user`` (a row of the user table), valid ``lifetime`` seconds."""
    now = now or datetime.now(UTC)
    claims = {
        "sub": str(user["id"]),
        "username": user["username"],
        "role": user["role"],
        "pwd": _fingerprint(user["password_hash"]),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=lifetime),
        "jti": secrets.token_hex(16),
    }
    return jwt.encode(claims, _key(conn), algorithm=ALGORITHM)


@dataclass(frozen=True)
class Checked:
    """The outcome of reading a JWT: the user row, or why not (``expired`` or ``invalid``)."""

    user: Any = None
    problem: str = ""


def check(conn: Connection, token: str) -> Checked:
    try:
        claims = jwt.decode(
            token,
            _key(conn),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "pwd"]},
        )
    except jwt.ExpiredSignatureError:
        return Checked(problem="expired")
    except jwt.InvalidTokenError:
        return Checked(problem="invalid")
    try:
        user = users_q.user_by_id(conn, int(claims["sub"]))
    except (TypeError, ValueError):
        return Checked(problem="invalid")
    if user is None or not hmac.compare_digest(_fingerprint(user["password_hash"]), str(claims["pwd"])):
        return Checked(problem="invalid")  # user removed, or its password changed since
    return Checked(user=user)
