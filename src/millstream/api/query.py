"""Query parameters an endpoint does not take are refused (422 naming them), not ignored.

FastAPI drops them silently, so ``?stat=failed`` (a typo) or Airflow's ``order_by`` (which
Millstream does not have) would answer a different question from the one asked, with a 200
that looks right. A parameter given twice that takes one value is refused for the same
reason: which of the two counts is not something a client should have to guess.

Every router of the API declares :data:`STRICT` as a dependency. It runs before the
endpoint's own dependencies, authentication among them: so that an anonymous caller does
not learn an endpoint's parameters from the message, a request that is not authenticated
is left to the 401 that follows.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import field_annotation_is_sequence
from fastapi.exceptions import RequestValidationError

from millstream.api.auth import Principal, authenticate, current_user


def _declared(dependant: Dependant) -> tuple[dict[str, bool], bool]:
    """The endpoint's query parameters (name -> takes several values), and whether it
    needs credentials; sub-dependencies (paging, the caller) included."""
    names: dict[str, bool] = {}
    needs_auth = False
    stack = [dependant]
    while stack:
        d = stack.pop()
        for f in d.query_params:
            names[f.alias] = field_annotation_is_sequence(f.field_info.annotation)
        needs_auth = needs_auth or d.call is current_user
        stack.extend(d.dependencies)
    return names, needs_auth


def known_query(request: Request) -> None:
    given = request.query_params
    if not given:
        return
    route: Any = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    names, needs_auth = _declared(route.dependant)
    errors = []
    takes = f"it takes: {', '.join(sorted(names))}" if names else "it takes no query parameters"
    for key in dict.fromkeys(given.keys()):
        if key not in names:
            errors.append(
                {
                    "loc": ("query", key),
                    "msg": f"not a parameter of this endpoint ({takes})",
                    "type": "extra_forbidden",
                }
            )
        elif not names[key] and len(given.getlist(key)) > 1:
            errors.append(
                {
                    "loc": ("query", key),
                    "msg": "given more than once; it takes one value",
                    "type": "value_error",
                }
            )
    if not errors:
        return
    if needs_auth and not isinstance(authenticate(request), Principal):
        return  # the endpoint's authentication answers 401 next
    raise RequestValidationError(errors)


#: The dependency every API router declares.
STRICT = [Depends(known_query)]
