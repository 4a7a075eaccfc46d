"""Health (the one endpoint open to all), tokens, who am I, and users."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, SettingsDep, StoreDep
from millstream.api.query import STRICT
from millstream.api.schemas import Health, Page, TokenBody, TokenOut, UserBody, UserOut
from millstream.store import schedulers as schedulers_q
from millstream.store import users as users_q

router = APIRouter(dependencies=STRICT)


@router.get("/health", response_model=Health, tags=["System"], summary="Liveness, open to everyone")
def health(store: StoreDep, settings: SettingsDep) -> Health | JSONResponse:
    now = datetime.now(UTC)
    try:
        with store.read() as conn:
            rows = schedulers_q.list_all(conn)
    except Exception as e:  # noqa: BLE001 - health reports the database being down, it does not fail
        body = Health(status="degraded", database=f"unreachable: {type(e).__name__}", schedulers=[])
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    schedulers = [
        {
            "id": r["id"],
            "hostname": r["hostname"],
            "heartbeat_at": r["heartbeat_at"].isoformat(),
            "alive": r["stopped_at"] is None
            and (now - r["heartbeat_at"]).total_seconds() < settings.heartbeat_timeout,
        }
        for r in rows[:20]
    ]
    return Health(status="ok", database="ok", schedulers=schedulers)


@router.post(
    "/auth/token", response_model=TokenOut, status_code=201, tags=["Users"], summary="Get a bearer token"
)
def token(body: TokenBody, store: StoreDep, request: Request) -> TokenOut:
    """Exchanges a username and password for a token (shown once); open to everyone, as a
    login is. Too many wrong passwords for a username make it wait (429)."""
    throttle = request.app.state.throttle
    if not users_q.valid_username(body.username):  # cannot exist: no try to count
        raise HTTPException(401, "wrong username or password")
    throttle.attempt(body.username)
    with store.begin() as conn:
        user = users_q.authenticate(conn, body.username, body.password)
        if user is None:
            raise HTTPException(401, "wrong username or password")
        throttle.succeeded(body.username)
        return TokenOut(token=users_q.create_token(conn, user["username"], body.name))


@router.get("/me", response_model=UserOut, tags=["Users"], summary="Who the credentials belong to")
def me(store: StoreDep, who: User) -> UserOut:
    with store.read() as conn:
        return UserOut(**users_q.get_user(conn, who.username))


@router.get("/users", response_model=Page[UserOut], tags=["Users"], summary="List users (admin)")
def list_users(store: StoreDep, who: Admin, page: PagingDep) -> Page[UserOut]:
    with store.read() as conn:
        rows = users_q.list_users(conn)
    items = [UserOut(**r) for r in page.window(rows)]
    return page.of(items, len(rows))


@router.post(
    "/users", response_model=UserOut, status_code=201, tags=["Users"], summary="Create a user (admin)"
)
def create_user(body: UserBody, store: StoreDep, who: Admin) -> UserOut:
    with store.begin() as conn:
        users_q.create_user(conn, body.username, body.password, body.role)
        return UserOut(**users_q.get_user(conn, body.username))
