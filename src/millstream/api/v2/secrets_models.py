"""Bodies and answers of ``/api/v2``'s Variables, Connections and Pools, and what the three
share: Airflow's bulk body (``PATCH`` on the collection), its ``*_pattern`` filters and the
way it masks secrets in answers.

The models copy Airflow 3.3.2's datamodels (``core_api/datamodels/{common,variables,
connections,pools}.py``): the same field names, aliases, defaults and validation messages,
so its client and UI read Millstream's answers as they read Airflow's. Where Millstream
keeps less than Airflow (no teams, no unlimited pools), the field is still there and holds
the honest value; a request that asks for what Millstream lacks is refused by the routes.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import HTTPException, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    field_validator,
    model_validator,
)

from millstream.api.schemas import _utf8
from millstream.api.v2.common import split_terms
from millstream.sdk import masking

T = TypeVar("T")

TEAM_ERROR = "team_name cannot be set when multi_team mode is disabled. Please contact your administrator."
Text = Annotated[str, AfterValidator(_utf8)]


class Strict(BaseModel):
    """Airflow's ``StrictBaseModel``: a request body with an unknown field is a 422."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True, extra="forbid")


class Answer(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


def _no_team(team_name: str | None) -> None:
    # Millstream has no multi-team mode: Airflow's answer when it is off.
    if team_name is not None:
        raise ValueError(TEAM_ERROR)


# -- masking, as Airflow's secrets masker does it ------------------------------------------


def _hidden_name(name: str | None) -> bool:
    """Airflow's ``should_hide_value_for_key``: the name lower-cased, runs of non-word
    characters as ``_`` (``API-Key`` is ``api_key``), then Millstream's sensitive words."""
    return bool(name) and masking.is_sensitive(re.sub(r"\W+", "_", str(name).strip().lower()))


def _redact_all(item: Any) -> Any:
    if isinstance(item, str):
        return masking.MASK
    if isinstance(item, dict):
        return {k: _redact_all(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [_redact_all(v) for v in item]
    return item


def redact(item: Any, name: str | None = None) -> Any:
    """Airflow's ``redact``: under a sensitive name every string becomes ``***`` (the
    structure and numbers stay); elsewhere dicts are walked by key and registered
    secrets are masked inside strings."""
    if _hidden_name(name):
        return _redact_all(item)
    if isinstance(item, dict):
        return {k: redact(v, str(k)) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [redact(v) for v in item]
    if isinstance(item, str):
        return masking.mask_text(item)
    return item


def merge(new: Any, old: Any, name: str | None = None, *, sensitive: bool = False) -> Any:
    """Airflow's ``merge``: ``new`` with each ``***`` that stands for a hidden value of
    ``old`` put back (what a client sends when it edits a masked answer)."""
    sensitive = sensitive or _hidden_name(name)
    if isinstance(new, dict) and isinstance(old, dict):
        return {
            k: merge(v, old[k], None if sensitive else k, sensitive=sensitive) if k in old else v
            for k, v in new.items()
        }
    if isinstance(new, list) and isinstance(old, list):
        return [
            old[i] if sensitive and v == masking.MASK else merge(v, old[i], sensitive=sensitive)
            for i, v in enumerate(new[: len(old)])
        ] + new[len(old) :]
    if sensitive and new == masking.MASK:
        return old
    return new


# -- filters and ordering ----------------------------------------------------------------


def _like(pattern: str) -> re.Pattern[str]:
    """SQL ``LIKE`` as a regular expression: ``%`` any text, ``_`` one character, ``\\``
    escapes the next character (PostgreSQL's default)."""
    out, chars = [], iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _trimmed(term: str) -> str:
    while term and not term[-1].isalnum():
        term = term[:-1]
    return term


#: The ``*_pattern`` and ``*_prefix_pattern`` query parameters that :func:`pattern_filter` takes.
NamePattern = Annotated[
    str | None, Query(description="Case-insensitive substring match (SQL `ILIKE`); `|` for OR.")
]
NamePrefix = Annotated[str | None, Query(description="Case-sensitive prefix match; `|` for OR.")]


def pattern_filter(pattern: str | None, prefix: str | None) -> Callable[[str], bool]:
    """Airflow's ``*_pattern`` (case-insensitive ``ILIKE '%term%'``, ``~`` for everything)
    and ``*_prefix_pattern`` (case-sensitive prefix, trailing punctuation dropped as Airflow
    drops it, ``~`` for everything) as one test of a name."""
    tests: list[Callable[[str], bool]] = []
    if pattern is not None:
        regexes = [_like(f"%{t}%") for t in split_terms("%" if pattern == "~" else pattern)]
        tests.append(lambda name: any(r.fullmatch(name) for r in regexes))
    if prefix is not None:
        starts = [_trimmed(t) for t in split_terms("" if prefix == "~" else prefix)]
        tests.append(lambda name: any(name.startswith(s) for s in starts))
    return lambda name: all(t(name) for t in tests)


def renamed(values: Sequence[str] | None, names: Mapping[str, str]) -> list[str] | None:
    """``order_by`` values with Airflow's aliases replaced (``connection_id`` is ``conn_id``)."""
    if values is None:
        return None
    out = []
    for v in values:
        desc, name = v.startswith("-"), v.lstrip("-")
        out.append(("-" if desc else "") + names.get(name, name))
    return out


def with_tiebreak(keys: list[tuple[str, bool]], primary: str) -> list[tuple[str, bool]]:
    """Airflow's order: the fields asked for, then the primary key in the first field's direction."""
    return [*keys, (primary, bool(keys and keys[0][1]))]


def id_set(names: Iterable[str]) -> str:
    """A set of names as Airflow's messages print one (``{'a', 'b'}``), in a stable order."""
    return "{" + ", ".join(repr(n) for n in sorted(names)) + "}"


# -- bulk ----------------------------------------------------------------------------------


class BulkAction(enum.StrEnum):
    """Bulk Action to be performed on the used model."""

    CREATE = "create"
    DELETE = "delete"
    UPDATE = "update"


class BulkActionOnExistence(enum.Enum):
    """Bulk Action to be taken if the entity already exists or not."""

    FAIL = "fail"
    SKIP = "skip"
    OVERWRITE = "overwrite"


class BulkActionNotOnExistence(enum.Enum):
    """Bulk Action to be taken if the entity does not exist."""

    FAIL = "fail"
    SKIP = "skip"


class BulkCreateAction(Strict, Generic[T]):
    """Bulk Create entity serializer for request bodies."""

    action: Literal[BulkAction.CREATE] = Field(description="The action to be performed on the entities.")
    entities: list[T] = Field(..., description="A list of entities to be created.")
    action_on_existence: BulkActionOnExistence = BulkActionOnExistence.FAIL


class BulkUpdateAction(Strict, Generic[T]):
    """Bulk Update entity serializer for request bodies."""

    action: Literal[BulkAction.UPDATE] = Field(description="The action to be performed on the entities.")
    entities: list[T] = Field(..., description="A list of entities to be updated.")
    update_mask: list[str] | None = Field(
        default=None,
        description="A list of field names to update for each entity."
        "Only these fields will be applied from the request body to the database model."
        "Any extra fields provided will be ignored.",
    )
    action_on_non_existence: BulkActionNotOnExistence = BulkActionNotOnExistence.FAIL


class BulkDeleteAction(Strict, Generic[T]):
    """Bulk Delete entity serializer for request bodies."""

    action: Literal[BulkAction.DELETE] = Field(description="The action to be performed on the entities.")
    entities: list[str | T] = Field(
        ..., description="A list of entity id/key or entity objects to be deleted."
    )
    action_on_non_existence: BulkActionNotOnExistence = BulkActionNotOnExistence.FAIL


def _action_discriminator(action: Any) -> str | None:
    """Which action model reads an entry (none for an unknown ``action``: a 422)."""
    raw = action.get("action") if isinstance(action, dict) else getattr(action, "action", None)
    try:
        return BulkAction(str(raw)).value
    except ValueError:
        return None


class BulkBody(Strict, Generic[T]):
    """Serializer for bulk entity operations."""

    actions: list[
        Annotated[
            Annotated[BulkCreateAction[T], Tag("create")]
            | Annotated[BulkUpdateAction[T], Tag("update")]
            | Annotated[BulkDeleteAction[T], Tag("delete")],
            Discriminator(_action_discriminator),
        ]
    ]


class BulkActionResponse(Answer):
    """The outcome of one kind of action: the ids it changed and the errors it met."""

    success: list[str] = Field(
        default=[], description="A list of unique id/key representing successful operations."
    )
    errors: list[dict[str, Any]] = Field(
        default=[],
        description="A list of errors encountered during the operation, each containing details about the issue.",
    )


class BulkResponse(Answer):
    """What each kind of action requested did (``null`` for a kind not requested)."""

    create: BulkActionResponse | None = None
    update: BulkActionResponse | None = None
    delete: BulkActionResponse | None = None


Handler = Callable[[Any, BulkActionResponse], None]


def run_bulk(body: BulkBody[Any], create: Handler, update: Handler, delete: Handler) -> BulkResponse:
    """Each action in order, as Airflow's ``BulkService`` runs them: an action that fails
    (409 exists, 404 missing, 400 refused) is an error of its kind in the answer, the
    others still apply. The caller holds one transaction around all of it, so a request
    that fails as a whole (a 422) changes nothing."""
    results: dict[str, BulkActionResponse] = {}
    handlers = {"create": create, "update": update, "delete": delete}
    for action in body.actions:
        kind = action.action.value
        res = results.setdefault(kind, BulkActionResponse())
        try:
            handlers[kind](action, res)
        except HTTPException as e:
            res.errors.append({"error": f"{e.detail}", "status_code": e.status_code})
    return BulkResponse(**results)


def entity_ids(entities: Iterable[Any], field: str) -> list[str]:
    """A delete action's entities: ids, or bodies whose ``field`` is the id."""
    return list(dict.fromkeys(e if isinstance(e, str) else str(getattr(e, field)) for e in entities))


def fail_if_existing(action: Any, matched: Iterable[str], what: str) -> None:
    """A create action whose ``action_on_existence`` is ``fail``, when ``matched`` (the ids
    that exist) is not empty: Airflow's 409, ``The <what>: {...} already exist.``."""
    matched = set(matched)
    if action.action_on_existence == BulkActionOnExistence.FAIL and matched:
        raise HTTPException(409, f"The {what}: {id_set(matched)} already exist.")


def fail_if_missing(action: Any, missing: Iterable[str], what: str) -> None:
    """An update or delete action whose ``action_on_non_existence`` is ``fail``, when
    ``missing`` is not empty: Airflow's 404, ``The <what>: {...} were not found.``."""
    missing = set(missing)
    if action.action_on_non_existence == BulkActionNotOnExistence.FAIL and missing:
        raise HTTPException(404, f"The {what}: {id_set(missing)} were not found.")


def refusal(detail: str) -> HTTPException:
    """What Millstream cannot do as asked: a 400 that says why."""
    return HTTPException(400, detail)


# -- variables -----------------------------------------------------------------------------


class VariableResponse(Answer):
    """Variable serializer for responses."""

    key: str
    val: str | None = Field(alias="value", default=None)
    description: str | None
    is_encrypted: bool
    team_name: str | None = None

    @model_validator(mode="after")
    def redact_val(self) -> VariableResponse:
        """Airflow's masking: a JSON value is walked (and re-dumped), other text masked whole
        when the key is sensitive."""
        if self.val is None:
            return self
        try:
            self.val = json.dumps(redact(json.loads(self.val), self.key))
        except json.JSONDecodeError:
            self.val = str(redact(self.val, self.key))
        return self


class VariableBody(Strict):
    """Variable serializer for bodies."""

    key: str = Field(max_length=250)
    value: JsonValue = Field(serialization_alias="val")
    description: Text | None = Field(default=None)
    team_name: str | None = Field(max_length=50, default=None)

    @field_validator("value", mode="after")
    @classmethod
    def serialize_non_string_value(cls, value: JsonValue) -> str:
        """Stored as text: a value that is not a string is kept as its JSON (indent 2, as Airflow)."""
        text = value if isinstance(value, str) else json.dumps(value, indent=2)
        return _utf8(text)

    @model_validator(mode="after")
    def validate_team_name(self) -> VariableBody:
        _no_team(self.team_name)
        return self


class VariableCollectionResponse(Answer):
    variables: list[VariableResponse]
    total_entries: int


# -- connections ---------------------------------------------------------------------------


class ConnectionResponse(Answer):
    """Connection serializer for responses: the password is ``***`` when one is set."""

    connection_id: str = Field(serialization_alias="connection_id", validation_alias="conn_id")
    conn_type: str
    description: str | None
    host: str | None
    login: str | None
    schema_: str | None = Field(alias="schema")
    port: int | None
    password: str | None
    extra: str | None
    team_name: str | None = None

    @field_validator("password", mode="after")
    @classmethod
    def redact_password(cls, v: str | None) -> str | None:
        return None if v is None else str(redact(v, "password"))

    @field_validator("extra", mode="before")
    @classmethod
    def redact_extra(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return v
        try:
            return json.dumps(redact(json.loads(v)))
        except json.JSONDecodeError:
            # Airflow never stores such an extra; one written by Millstream's CLI or an
            # import could be any text, which cannot be searched for secrets: hidden whole.
            return masking.MASK


class ConnectionBody(Strict):
    """Connection Serializer for requests body."""

    connection_id: str = Field(serialization_alias="conn_id", max_length=200, pattern=r"^[\w.-]+$")
    conn_type: Text
    description: Text | None = Field(default=None)
    host: Text | None = Field(default=None)
    login: Text | None = Field(default=None)
    schema_: Text | None = Field(None, alias="schema")
    port: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] | None = Field(default=None)
    password: Text | None = Field(default=None)
    extra: Text | None = Field(default=None)
    team_name: str | None = Field(max_length=50, default=None)

    @field_validator("extra")
    @classmethod
    def validate_extra(cls, v: str | None) -> str | None:
        """Airflow's rule: ``extra`` is a JSON object as text (``""`` is ``{}``)."""
        if v is None:
            return v
        if v == "":
            return "{}"
        try:
            extra_dict = json.loads(v)
        except json.JSONDecodeError:
            raise ValueError(
                "The `extra` field must be a valid JSON object (e.g., {'key': 'value'}), "
                "but encountered non-JSON in `extra` field"
            ) from None
        if not isinstance(extra_dict, dict):
            raise ValueError("The `extra` field must be a valid JSON object (e.g., {'key': 'value'})")
        return v

    @model_validator(mode="after")
    def validate_team_name(self) -> ConnectionBody:
        _no_team(self.team_name)
        return self


class ConnectionCollectionResponse(Answer):
    connections: list[ConnectionResponse]
    total_entries: int


class ConnectionTestResponse(Answer):
    """Connection Test serializer for synchronous test responses."""

    status: bool
    message: str


# -- pools ---------------------------------------------------------------------------------

PoolSlots = Annotated[int, Field(ge=-1, description="Number of slots. Use -1 for unlimited.")]


class BasePool(Answer):
    """Airflow's ``BasePool``: what a pool update must hold (checked as Airflow checks it)."""

    pool: str = Field(serialization_alias="name")
    slots: PoolSlots
    description: str | None = Field(default=None)
    include_deferred: bool


class PoolResponse(Answer):
    """Pool serializer for responses."""

    name: str
    slots: int
    description: str | None = None
    include_deferred: bool = False
    occupied_slots: int
    running_slots: int
    queued_slots: int
    scheduled_slots: int
    open_slots: int
    deferred_slots: int
    team_name: str | None = None


class PoolCollectionResponse(Answer):
    pools: list[PoolResponse]
    total_entries: int


class PoolPatchBody(Strict):
    """Pool serializer for patch bodies."""

    name: Text | None = Field(default=None, alias="pool")
    slots: PoolSlots | None = None
    description: Text | None = None
    include_deferred: bool | None = None
    team_name: str | None = Field(max_length=50, default=None)

    @model_validator(mode="after")
    def validate_team_name(self) -> PoolPatchBody:
        _no_team(self.team_name)
        return self


class PoolBody(Strict):
    """Pool serializer for post bodies."""

    pool: Text = Field(alias="name", max_length=256)
    slots: PoolSlots
    description: Text | None = None
    include_deferred: bool = False
    team_name: str | None = Field(max_length=50, default=None)

    @model_validator(mode="after")
    def validate_team_name(self) -> PoolBody:
        _no_team(self.team_name)
        return self
