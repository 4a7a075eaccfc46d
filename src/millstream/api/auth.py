"""Who is asking: a bearer token (scripts) or a signed session cookie (the web UI).

Only ``/api/v1/health`` and the login page answer without one. Viewers may read
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


def resolve(request: Request) -> Principal | None:
    """The caller, or None when the request carries no valid credentials."""
    store = get_store(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        with store.read() as conn:
            row = users_q.user_for_token(conn, token.strip())
        return Principal(row["id"], row["username"], row["role"], "token") if row else None
    uid = request.session.get("uid") if "session" in request.scope else None
    if not isinstance(uid, int):
        return None
    with store.read() as conn:
        row = users_q.user_by_id(conn, uid)
    if (
        row is None
        or row["username"] != request.session.get("user")
        or row["session_epoch"] != request.session.get("epoch")
    ):
        return None  # deleted, logged out, or its password changed since this session began
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
    auto_error=False, description="A token from POST /api/v1/auth/token or `millstream users token`."
)


def current_user(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Principal:
    # The bearer dependency only documents the scheme in OpenAPI; resolve() reads the header.
    who = resolve(request)
    if who is None:
        raise HTTPException(
            401,
            "authentication required: send `Authorization: Bearer <token>` "
            "(`millstream users token USERNAME` makes one) or log in to the web UI",
            headers={"WWW-Authenticate": "Bearer"},
        )
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
