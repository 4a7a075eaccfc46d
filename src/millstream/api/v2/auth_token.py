"""``POST /auth/token`` (and ``/auth/token/cli``): a JWT for an existing user, as Airflow's
simple auth manager answers it, so Airflow's clients log in unchanged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from millstream.api import jwt_tokens
from millstream.api.deps import SettingsDep, StoreDep
from millstream.store import users as users_q

router = APIRouter(tags=["Login"])


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str


class LoginResponse(BaseModel):
    access_token: str


async def _login_body(
    request: Request, content_type: Annotated[str, Header()] = "application/json"
) -> LoginBody:
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            data: Any = await request.json()
        elif kind == "application/x-www-form-urlencoded":
            form = await request.form()
            data = {"username": form.get("username"), "password": form.get("password")}
        else:
            raise HTTPException(415, "Unsupported Media Type")
        if not isinstance(data, dict):
            raise RequestValidationError(
                [{"type": "dict_type", "loc": ("body",), "msg": "Input should be an object", "input": data}]
            )
        return LoginBody(**data)
    except ValueError as e:  # a body that is not JSON
        if isinstance(e, ValidationError):
            raise RequestValidationError(e.errors(include_url=False)) from None
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": {}}]
        ) from None


def _token(store: Any, body: LoginBody, request: Request, lifetime: int) -> LoginResponse:
    if not body.username or not body.password:
        raise HTTPException(400, "Username and password must be provided")
    throttle = request.app.state.throttle
    if not users_q.valid_username(body.username):
        raise HTTPException(401, "Invalid credentials")
    throttle.attempt(body.username)
    with store.begin() as conn:
        user = users_q.authenticate(conn, body.username, body.password)
        if user is None:
            raise HTTPException(401, "Invalid credentials")
        throttle.succeeded(body.username)
        return LoginResponse(access_token=jwt_tokens.issue(conn, user, lifetime))


@router.post("/auth/token", status_code=201, response_model=LoginResponse, summary="Create Token")
def create_token(
    store: StoreDep, settings: SettingsDep, request: Request, body: Annotated[LoginBody, Depends(_login_body)]
) -> LoginResponse:
    """A JWT for a username and password (JSON or a form), valid ``[api] jwt_expiration_time``."""
    return _token(store, body, request, settings.jwt_expiration_time)


@router.post("/auth/token/cli", status_code=201, response_model=LoginResponse, summary="Create Token Cli")
def create_token_cli(
    store: StoreDep, settings: SettingsDep, request: Request, body: LoginBody
) -> LoginResponse:
    """The same for ``airflowctl auth login``."""
    return _token(store, body, request, settings.jwt_expiration_time)


@router.get("/auth/token", status_code=201, response_model=LoginResponse, summary="Create Token All Admins")
def create_token_all_admins() -> LoginResponse:
    """Airflow's no-password token for ``simple_auth_manager_all_admins``: Millstream has
    no such mode, every caller is a user with a password."""
    raise HTTPException(
        403,
        "This method is only allowed if ``[core] simple_auth_manager_all_admins`` is True; "
        "Millstream has no such mode: POST a username and password",
    )
