"""Who is asking: a bearer token (scripts) or a signed session cookie (the web UI).

Only ``/api/v1/health``, ``POST /api/v1/auth/token`` and the login page answer without one.
Basic authentication (``curl -u user:password``) is not taken, as in Airflow 3: a password
is exchanged once for a token at ``POST /api/v1/auth/token``, so that scripts do not send
it (and pay Argon2's cost) on every request. A refusal says which case it is — no
credentials, a scheme other than Bearer, a token this server does not know, a session that
has ended — with a ``WWW-Authenticate`` challenge as RFC 6750 describes. Viewers may read
everything; changing anything (trigger, clear, mark, pause, backfills, pools, assets)
needs an admin. A request authenticated by the session cookie that changes something must
also carry the session's CSRF token in ``X-CSRF-Token``, so another site cannot make a
logged-in browser act.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from millstream.api import jwt_tokens
from millstream.api.deps import get_store
from millstream.store import users as users_q

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    id: int
    username: str
    role: str
    via: str  # token | session

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


#: Where a token comes from, in every refusal.
GET_TOKEN = (
    'get a token from POST /api/v1/auth/token (JSON {"username": ..., "password": ...}) '
    "and send `Authorization: Bearer <token>`"
)
_CHALLENGE = 'Bearer realm="millstream"'


@dataclass(frozen=True)
class Refusal:
    """Why a request is not authenticated: the 401's message and its challenge."""

    message: str
    challenge: str = _CHALLENGE  # no error code when no bearer token was sent (RFC 6750 3.1)
    kind: str = "none"  # none | scheme | empty | invalid | expired | session: /api/v2 answers by it


NO_CREDENTIALS = Refusal(f"no credentials: {GET_TOKEN}, or log in to the web UI")
SESSION_ENDED = Refusal(
    "your session has ended (you logged out, your password changed or your user was removed): log in again",
    kind="session",
)
INVALID_TOKEN = Refusal(
    "invalid or expired token: this server did not issue it, or it was revoked (a new password "
    f"revokes a user's tokens); {GET_TOKEN}",
    f'{_CHALLENGE}, error="invalid_token", error_description="invalid or expired token"',
    kind="invalid",
)
EXPIRED_TOKEN = Refusal(
    f"the token has expired: {GET_TOKEN} (or POST /auth/token for a JWT)",
    f'{_CHALLENGE}, error="invalid_token", error_description="the token has expired"',
    kind="expired",
)
EMPTY_TOKEN = Refusal(
    f"no token after 'Bearer' in the Authorization header: {GET_TOKEN}",
    f'{_CHALLENGE}, error="invalid_request", error_description="no token after Bearer"',
    kind="empty",
)


def unsupported(scheme: str) -> Refusal:
    return Refusal(f"unsupported auth scheme {scheme[:40]!r}: {GET_TOKEN}", kind="scheme")


def resolve(request: Request) -> Principal | None:
    """The caller, or None when the request carries no valid credentials."""
    who = authenticate(request)
    return who if isinstance(who, Principal) else None


def authenticate(request: Request) -> Principal | Refusal:
    """The caller, or why the request is not authenticated. Basic credentials are refused
    without looking at them: a right password and a wrong one get the same answer."""
    store = get_store(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return unsupported(scheme)
        if not token.strip():
            return EMPTY_TOKEN
        token = token.strip()
        if jwt_tokens.looks_like_jwt(token):
            with store.read() as conn:
                checked = jwt_tokens.check(conn, token)
            if checked.user is None:
                return EXPIRED_TOKEN if checked.problem == "expired" else INVALID_TOKEN
            user = checked.user
            return Principal(user["id"], user["username"], user["role"], "token")
        with store.read() as conn:
            row = users_q.user_for_token(conn, token)
        return Principal(row["id"], row["username"], row["role"], "token") if row else INVALID_TOKEN
    uid = request.session.get("uid") if "session" in request.scope else None
    if uid is None:
        return NO_CREDENTIALS
    if not isinstance(uid, int):
        return SESSION_ENDED
    with store.read() as conn:
        row = users_q.user_by_id(conn, uid)
    if (
        row is None
        or row["username"] != request.session.get("user")
        or row["session_epoch"] != request.session.get("epoch")
    ):
        return SESSION_ENDED  # deleted, logged out, or its password changed since it began
    return Principal(row["id"], row["username"], row["role"], "session")


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def start_session(request: Request, user_id: int, username: str, epoch: int) -> None:
    request.session.clear()
    request.session.update(
        {"uid": user_id, "user": username, "epoch": epoch, "csrf": secrets.token_urlsafe(24)}
    )


_bearer = HTTPBearer(
    auto_error=False,
    description="A token from POST /api/v1/auth/token (or `millstream users token` on the server).",
)


def current_user(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Principal:
    # The bearer dependency only documents the scheme in OpenAPI; resolve() reads the header.
    who = authenticate(request)
    if isinstance(who, Refusal):
        raise HTTPException(401, who.message, headers={"WWW-Authenticate": who.challenge})
    if who.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token", "")
        if not sent or not secrets.compare_digest(sent, str(request.session.get("csrf", ""))):
            raise HTTPException(
                403, "missing or wrong X-CSRF-Token header for a session-authenticated change"
            )
    return who


def admin_user(who: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, f"user {who.username!r} is a viewer; this needs the admin role")
    return who


User = Annotated[Principal, Depends(current_user)]
Admin = Annotated[Principal, Depends(admin_user)]
