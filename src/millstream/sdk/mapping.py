"""What ``.expand()`` accepts, checked where the DAG file calls it.

Shared by tasks and mapped task groups, which both expand over the same kinds of value.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from millstream.errors import DagDefinitionError
from millstream.sdk._location import caller_location
from millstream.sdk.xcom import ConcatArg, MapArg, XComArg, ZipArg

#: The argument name that stands for "a whole dict of arguments" (``expand_kwargs``).
KWARGS_ARG = "**"

_MAPPABLE = (XComArg, MapArg, ZipArg, ConcatArg, list, tuple, dict)


def validate_mapped(fn_name: str, fn: Callable[..., Any] | None, mapped: Mapping[str, Any]) -> None:
    filename, lineno = caller_location()
    if not mapped:
        raise DagDefinitionError(
            f"{fn_name}.expand() needs at least one keyword argument to map over",
            filename=filename,
            lineno=lineno,
        )
    params = inspect.signature(fn).parameters if fn else {}
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in mapped.items():
        if name == KWARGS_ARG:
            continue
        if fn is not None and name not in params and not takes_kwargs:
            raise DagDefinitionError(
                f"{fn_name}.expand() got argument {name!r}, which {fn_name}() does not take",
                filename=filename,
                lineno=lineno,
            )
        if not isinstance(value, _MAPPABLE) or any(
            not isinstance(p, _MAPPABLE) for p in getattr(value, "parts", ())
        ):
            raise DagDefinitionError(
                f"{fn_name}.expand(): argument {name!r} must be a list, a dict or the output "
                f"of a task, got {type(value).__name__}",
                filename=filename,
                lineno=lineno,
            )
