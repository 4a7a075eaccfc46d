"""Airflow's ``common.sql`` ``DbApiHook`` and its PostgreSQL, MySQL/MariaDB and SQLite hooks.

SQLAlchemy builds the URL and opens connections (psycopg 3, PyMySQL, sqlite3); statements run on
the driver's own DB-API cursor, so DAGs keep Airflow's parameter styles (``%s`` / ``%(name)s``;
``?`` / ``:name`` for SQLite) and get the driver's rows and exceptions. PostgreSQL binds on the
client, as psycopg2 (Airflow's driver) does. As with Airflow's ``get_conn()``, each call opens its
own connection and really closes it, so nothing lingers after a task; only SQLite ``:memory:``
keeps its one connection per thread, or each call would see an empty database.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from millstream.errors import MillstreamError
from millstream.sdk.connection import Connection
from millstream.sdk.hooks.base import BaseHook

T = TypeVar("T")
Params = Iterable[Any] | Mapping[str, Any] | None
Description = Sequence[Sequence[Any]] | None

#: Placeholders a connection's ``placeholder`` extra may choose (Airflow's SQL_PLACEHOLDERS).
SQL_PLACEHOLDERS = frozenset({"%s", "?"})
#: PostgreSQL extras that are Airflow's own settings, not libpq connection parameters.
_PG_OWN = (
    "iam redshift redshift-serverless cursor cluster-identifier workgroup-name aws_conn_id azure_conn_id"
)
_PG_NOT_CONNECT_ARGS = frozenset(
    f"{_PG_OWN} sqlalchemy_scheme sqlalchemy_query enable_log_db_messages".split()
)
_PARAM_ERRORS = ("placeholder", "number of bindings", "arguments converted", "parameters were")
_DRIVERS = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}


class OptionalFeatureError(MillstreamError, ImportError):
    """A feature needs a package that is not installed (AirflowOptionalProviderFeatureException)."""


def _fetch(cursor: Any, how: str) -> Any:
    if not hasattr(cursor, "description"):
        raise RuntimeError(
            "The database we interact with does not support DBAPI 2.0: use a handler made for it"
        )
    return getattr(cursor, how)() if cursor.description is not None else None


def fetch_all_handler(cursor: Any) -> list[tuple[Any, ...]] | None:
    """All rows of the statement just run, or None if it returns no rows (DDL, DML)."""
    return _fetch(cursor, "fetchall")  # type: ignore[no-any-return]


def fetch_one_handler(cursor: Any) -> tuple[Any, ...] | None:
    """The first row of the statement just run, or None if it returns no rows."""
    return _fetch(cursor, "fetchone")  # type: ignore[no-any-return]


def return_single_query_results(sql: str | Iterable[str], return_last: bool, split: bool | None) -> bool:
    """Whether ``run`` returns one result (for one string, unless split with return_last=False)."""
    return isinstance(sql, str) and (return_last or not split)


# Text that may hold a ";" that ends nothing: quoted strings and identifiers (doubled
# quotes and, as sqlparse reads them, backslashes escape) and PostgreSQL $tag$ bodies.
_QUOTED = (
    r"'(?:[^'\\]|\\.|'')*'?|\"(?:[^\"\\]|\\.|\"\")*\"?|`(?:[^`]|``)*`?"
    r"|(?<![\w$])(?P<tag>\$(?:[A-Za-z_]\w*)?\$).*?(?:(?P=tag)|\Z)"
)
_COMMENT = r"--[^\n]*|/\*.*?(?:\*/|\Z)"
_HASH = r"|#[^\n]*"
_LEXERS = {
    h: re.compile(rf"(?P<comment>{_COMMENT}{_HASH if h else ''})|(?P<text>{_QUOTED})|(?P<end>;)", re.S)
    for h in (0, 1)
}


def split_sql_string(sql: str, strip_semicolon: bool = False, *, hash_comments: bool = False) -> list[str]:
    """``sql`` as its statements, comments removed, each ending in ``;`` unless ``strip_semicolon``,
    with sqlparse as Airflow does if installed, else keeping ``;`` inside quotes and ``$$`` bodies.
    ``hash_comments``: ``#`` starts a comment (MySQL; in PostgreSQL it is an operator)."""
    try:
        import sqlparse  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        # A statement's end is marked with NUL, which SQL text never holds.
        ends = {"comment": " ", "end": ";\0"}
        parts = (
            _LEXERS[int(hash_comments)].sub(lambda m: ends.get(m.lastgroup or "", m.group()), sql).split("\0")
        )
    else:  # pragma: no cover - sqlparse is not a dependency
        parts = sqlparse.split(sql=sqlparse.format(sql, strip_comments=True))
    out = [p.strip().rstrip(";").rstrip() if strip_semicolon else p.strip() for p in parts]
    return [s for s in out if s and s != ";"]


def _driver(conn: Any) -> Any:
    """The driver's connection behind ``conn`` (SQLite ``:memory:`` lends a pooled one)."""
    return getattr(conn, "driver_connection", None) or conn


class DbApiHook(BaseHook):
    """Runs SQL on a PostgreSQL, MySQL/MariaDB or SQLite connection with Airflow's ``DbApiHook``
    API. ``from_connection`` (what ``Connection.get_hook()`` uses) returns the subclass for the
    connection's type: :class:`PostgresHook`, :class:`MySqlHook` or :class:`SqliteHook`."""

    conn_name_attr = "conn_id"
    default_conn_name = "default_conn_id"
    conn_type = ""
    hook_name = "Database"
    supports_autocommit = True
    supports_executemany = True
    strip_semicolon = False
    _placeholder: str | None = None
    _test_connection_sql = "select 1"

    def __init__(self, *args: Any, schema: str | None = None, log_sql: bool = True, **kwargs: Any) -> None:
        super().__init__()
        connection: Connection | None = kwargs.pop("connection", None)
        if len(args) > 1:
            raise TypeError(f"{type(self).__name__} takes one connection id, got {args!r}")
        conn_id = args[0] if args else kwargs.pop(self.conn_name_attr, None)
        if conn_id is None:
            conn_id = connection.conn_id if connection is not None else self.default_conn_name
        setattr(self, self.conn_name_attr, conn_id)
        self.schema = schema
        self.database: str | None = kwargs.pop("database", None)
        self.log_sql = log_sql
        self.descriptions: list[Description] = []
        pop = kwargs.pop
        self._insert_statement_format: str = pop("insert_statement_format", "INSERT INTO {} {} VALUES ({})")
        self._replace_statement_format: str = pop(
            "replace_statement_format", "REPLACE INTO {} {} VALUES ({})"
        )
        self._escape_word_format: str | None = pop("escape_word_format", None)
        self._escape_column_names: bool = pop("escape_column_names", False)
        self._connection = connection
        self._engine: Engine | None = None
        if kwargs:
            self.log.warning("%s(%r) ignores %s", type(self).__name__, conn_id, ", ".join(kwargs))

    @classmethod
    def from_connection(cls, conn: Connection, **hook_params: Any) -> DbApiHook:
        """The hook for ``conn`` (the subclass for its type when called on DbApiHook)."""
        klass = _HOOKS_BY_TYPE.get(conn.conn_type or "", cls) if cls is DbApiHook else cls
        params = {**hook_params, klass.conn_name_attr: conn.conn_id}
        return klass(connection=conn, **params)

    def get_conn_id(self) -> str:
        return str(getattr(self, self.conn_name_attr))

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.get_connection(self.get_conn_id())
        return self._connection

    @connection.setter
    def connection(self, value: Connection) -> None:
        self._connection, self._engine = value, None

    @property
    def connection_extra(self) -> dict[str, Any]:
        return self.connection.extra_dejson

    @property
    def dialect_name(self) -> str:
        """``postgres``, ``mysql`` or ``sqlite``: which database this hook talks to."""
        kind = (self.conn_type or self.connection.conn_type or "").replace("mariadb", "mysql")
        if kind not in ("postgres", "mysql", "sqlite"):
            raise MillstreamError(
                f"connection {self.get_conn_id()!r} has conn_type {kind!r}: {type(self).__name__} serves "
                "postgres, mysql, mariadb and sqlite; change its type or use the hook made for it"
            )
        return kind

    @property
    def placeholder(self) -> str:
        """The marker ``insert_rows`` writes: the ``placeholder`` extra if allowed, else the driver's."""
        chosen = self.connection_extra.get("placeholder")
        if chosen in SQL_PLACEHOLDERS:
            return str(chosen)
        if chosen:
            self.log.warning("connection %r: placeholder %r is not one of %%s, ?", self.get_conn_id(), chosen)
        return self._placeholder or ("?" if self.dialect_name == "sqlite" else "%s")

    @property
    def last_description(self) -> Description:
        return self.descriptions[-1] if self.descriptions else None

    def _sqlite_path(self) -> str:
        path = self.connection.host or self.connection.schema
        if not path:
            raise MillstreamError(
                f"connection {self.get_conn_id()!r} (sqlite) names no database file: set its host"
            )
        return path

    @property
    def sqlalchemy_url(self) -> URL:
        """The connection as a SQLAlchemy URL (``postgresql+psycopg``, ``mysql+pymysql`` or
        ``sqlite``); as in Airflow, the ``sqlalchemy_query`` extra is its query and the
        ``sqlalchemy_scheme`` extra replaces the driver."""
        conn, kind, extra = self.connection, self.dialect_name, self.connection_extra
        query = extra.get("sqlalchemy_query", {})
        if not isinstance(query, dict):
            raise MillstreamError(
                f"connection {self.get_conn_id()!r}: extra 'sqlalchemy_query' must be an object"
            )
        if kind == "sqlite":
            path = self._sqlite_path()
            return URL.create("sqlite", database=None if path == ":memory:" else path, query=query)
        database = self.database or self.schema or conn.schema or None
        driver = str(extra.get("sqlalchemy_scheme") or _DRIVERS[kind])
        return URL.create(
            driver, conn.login or None, conn.password or None, conn.host or None, conn.port, database, query
        )

    def _connect_args(self) -> dict[str, Any]:
        """Driver arguments from the connection's extra (Airflow's per-hook ``get_conn``)."""
        return {}

    def get_sqlalchemy_engine(self, engine_kwargs: Mapping[str, Any] | None = None) -> Engine:
        """The SQLAlchemy engine; the one without ``engine_kwargs`` is made once per hook."""
        if self._engine is not None and not engine_kwargs:
            return self._engine
        kwargs = dict(engine_kwargs or {})
        in_memory = self.dialect_name == "sqlite" and self._sqlite_path() == ":memory:"
        if "poolclass" not in kwargs and not in_memory:
            kwargs["poolclass"] = NullPool
        kwargs["connect_args"] = {**self._connect_args(), **kwargs.get("connect_args", {})}
        engine = sa.create_engine(self.sqlalchemy_url, **kwargs)
        if not engine_kwargs:
            self._engine = engine
        return engine

    def get_uri(self) -> str:
        """The SQLAlchemy URL, password included (as Airflow's ``get_uri``)."""
        return self.sqlalchemy_url.render_as_string(hide_password=False)

    def get_conn(self) -> Any:
        """A new connection of the driver (psycopg, PyMySQL, sqlite3), the caller's to close.
        For SQLite ``:memory:`` it is the engine's kept connection, which closing gives back."""
        engine = self.get_sqlalchemy_engine()
        try:
            pooled = engine.raw_connection()
        except Exception as e:  # noqa: BLE001 - noted and raised again
            orig = e.orig if isinstance(e, sa.exc.DBAPIError) else None  # the driver's own error
            error: BaseException = orig if isinstance(orig, BaseException) else e
            error.add_note(
                f"while connecting to {engine.url!r} for connection {self.get_conn_id()!r}: check the "
                "connection's host, port, login, password and schema, and that the server is up"
            )
            raise error from None
        if isinstance(engine.pool, NullPool):
            raw = pooled.driver_connection
            pooled.detach()  # closing it closes it; SQLAlchemy no longer tracks it
            return raw
        return pooled

    def get_cursor(self) -> Any:
        return self.get_conn().cursor()

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        raw = _driver(conn)
        if isinstance(raw, sqlite3.Connection):
            raw.isolation_level = None if autocommit else ""  # type: ignore[assignment]
        elif callable(getattr(raw, "autocommit", None)):  # PyMySQL: a method
            raw.autocommit(autocommit)
        else:
            raw.autocommit = autocommit

    def get_autocommit(self, conn: Any) -> bool:
        raw = _driver(conn)
        if isinstance(raw, sqlite3.Connection):
            return self.supports_autocommit and raw.isolation_level is None
        getter = getattr(raw, "get_autocommit", None)  # PyMySQL's
        return self.supports_autocommit and bool(
            getter() if callable(getter) else getattr(raw, "autocommit", 0)
        )

    @contextmanager
    def _create_autocommit_connection(self, autocommit: bool = False) -> Iterator[Any]:
        with closing(self.get_conn()) as conn:
            if self.supports_autocommit:
                self.set_autocommit(conn, autocommit)
            try:
                yield conn
            finally:  # a kept connection goes back as it came
                if autocommit and _driver(conn) is not conn:
                    self.set_autocommit(conn, False)

    def split_sql_string(self, sql: str, strip_semicolon: bool = False) -> list[str]:
        return split_sql_string(sql, strip_semicolon, hash_comments=self.dialect_name == "mysql")

    def _make_common_data_structure(self, result: Any) -> Any:  # these drivers already give tuples
        return result

    def _hint(self, error: BaseException) -> str:
        text = str(error)
        if "one statement at a time" in text:
            return "; this is several statements: pass split_statements=True or a list of statements"
        if any(m in text for m in _PARAM_ERRORS):
            style = "? or :name" if self.dialect_name == "sqlite" else "%s or %(name)s"
            return f"; this driver marks parameters with {style} (a literal % is %% when passing parameters)"
        return ""

    def _run_command(self, cur: Any, sql_statement: str, parameters: Any) -> None:
        if self.log_sql:
            self.log.info("Running statement: %s, parameters: %s", sql_statement, parameters)
        try:
            if parameters:
                cur.execute(sql_statement, parameters)
            else:
                cur.execute(sql_statement)
        except Exception as e:
            where = f"connection {self.get_conn_id()!r} ({self.dialect_name})"
            shown = sql_statement if len(sql_statement) <= 500 else sql_statement[:500] + "..."
            e.add_note(f"while running on {where}: {shown}{self._hint(e)}")
            raise
        if getattr(cur, "rowcount", -1) >= 0:
            self.log.info("Rows affected: %s", cur.rowcount)

    def run(
        self,
        sql: str | Iterable[str],
        autocommit: bool = False,
        parameters: Params = None,
        handler: Callable[[Any], T] | None = None,
        split_statements: bool = False,
        return_last: bool = True,
    ) -> T | list[T] | None:
        """Run ``sql`` (a string, or a list of statements, each given ``parameters``) on one
        connection, committing at the end unless ``autocommit``. Without a ``handler`` it
        returns None; with one, the handler's result for the last statement, or a list of
        results per statement when ``sql`` is a list or is split with ``return_last=False``."""
        self.descriptions = []
        statements: list[str]
        if isinstance(sql, str):
            if split_statements:
                statements = self.split_sql_string(sql, strip_semicolon=self.strip_semicolon)
            else:
                statements = [sql] if sql.strip() else []
        else:
            statements = list(sql)
        if not statements:
            raise ValueError(f"List of SQL statements is empty (connection {self.get_conn_id()!r})")
        single = return_single_query_results(sql, return_last, split_statements)
        results: list[T] = []
        last: T | None = None
        last_description: Description = None
        with self._create_autocommit_connection(autocommit) as conn:
            with closing(conn.cursor()) as cur:
                for statement in statements:
                    self._run_command(cur, statement, parameters)
                    if handler is None:
                        continue
                    result = self._make_common_data_structure(handler(cur))
                    if single:
                        last, last_description = result, cur.description
                    else:
                        results.append(result)
                        self.descriptions.append(cur.description)
            if not self.get_autocommit(conn):
                conn.commit()
        if handler is None:
            return None
        if single:
            self.descriptions = [last_description]
            return last
        return results

    def get_records(self, sql: str | list[str], parameters: Params = None) -> Any:
        """Every row of ``sql`` (for a list of statements, a list of row lists)."""
        return self.run(sql=sql, parameters=parameters, handler=fetch_all_handler)

    def get_first(self, sql: str | list[str], parameters: Params = None) -> Any:
        """The first row of ``sql``, or None when it has none."""
        return self.run(sql=sql, parameters=parameters, handler=fetch_one_handler)

    def test_connection(self) -> tuple[bool, str]:
        """Run ``select 1``: (whether it worked, what happened)."""
        try:
            ok = bool(self.get_first(self._test_connection_sql))
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            return False, str(e)
        return ok, "Connection successfully tested" if ok else ""

    def _escape_word(self, word: str) -> str:
        fmt = self._escape_word_format or ("`{}`" if self.dialect_name == "mysql" else '"{}"')
        return fmt.format(word)

    @staticmethod
    def _serialize_cell(cell: object, conn: Any = None) -> Any:
        """A cell as inserted: its text, as Airflow's DbApiHook (so its SqliteHook) sends it."""
        if cell is None:
            return None
        return cell.isoformat() if isinstance(cell, datetime) else str(cell)

    def _serialize_cells(self, row: Iterable[Any], conn: Any = None) -> tuple[Any, ...]:
        return tuple(self._serialize_cell(cell, conn) for cell in row)

    def _generate_insert_sql(
        self, table: str, values: Sequence[Any], target_fields: Iterable[str] | None, replace: bool, **kw: Any
    ) -> str:
        fields = ""
        if target_fields:
            names = [self._escape_word(f) if self._escape_column_names else f for f in target_fields]
            fields = f"({', '.join(names)})"
        fmt = self._replace_statement_format if replace else self._insert_statement_format
        return fmt.format(table, fields, ",".join([self.placeholder] * len(values)))

    def insert_rows(
        self,
        table: str,
        rows: Iterable[Iterable[Any]],
        target_fields: Iterable[str] | None = None,
        commit_every: int = 1000,
        replace: bool = False,
        *,
        autocommit: bool = False,
        **kwargs: Any,
    ) -> None:
        """Insert ``rows`` (``replace=True``: REPLACE INTO, or PostgreSQL's upsert on ``replace_index``)
        in batches of ``commit_every`` rows, committing after each (0: one batch)."""
        kwargs.pop("executemany", None)  # always: every driver here batches executemany well
        fields = list(target_fields) if target_fields is not None else None
        size = commit_every if commit_every and commit_every > 0 else None
        total = 0
        with self._create_autocommit_connection(autocommit) as conn:
            conn.commit()
            with closing(conn.cursor()) as cur:
                remaining = iter(rows)
                while batch := list(itertools.islice(remaining, size)):
                    chunk = [self._serialize_cells(row, conn) for row in batch]
                    sql = self._generate_insert_sql(table, chunk[0], fields, replace, **kwargs)
                    try:
                        cur.executemany(sql, chunk)
                    except Exception as e:
                        where = f"rows {total + 1}-{total + len(chunk)} into {table}"
                        e.add_note(f"while inserting {where} on connection {self.get_conn_id()!r}: {sql}")
                        raise
                    conn.commit()
                    total += len(chunk)
                    self.log.info("Loaded %s rows into %s so far", total, table)
        self.log.info("Done loading. Loaded a total of %s rows into %s", total, table)

    def get_df(
        self, sql: str | list[str], parameters: Params = None, *, df_type: str = "pandas", **kwargs: Any
    ) -> Any:
        """The result of ``sql`` as a pandas (or, with ``df_type="polars"``, polars) frame."""
        if df_type not in ("pandas", "polars"):
            raise ValueError(f"df_type must be 'pandas' or 'polars', got {df_type!r}")
        try:
            if df_type == "pandas":
                import pandas as pd  # type: ignore[import-untyped, unused-ignore]

                return pd.read_sql(sql, con=self.get_sqlalchemy_engine(), params=parameters, **kwargs)
            import polars as pl  # type: ignore[import-not-found, unused-ignore]
        except ImportError as e:
            if e.name != df_type:
                raise
            raise OptionalFeatureError(
                f"{df_type} library not installed, run: pip install {df_type}"
            ) from None
        options = None if parameters is None else {"parameters": parameters}
        with closing(self.get_conn()) as conn:
            return pl.read_database(sql, connection=_driver(conn), execute_options=options, **kwargs)

    def get_pandas_df(self, sql: str | list[str], parameters: Params = None, **kwargs: Any) -> Any:
        return self.get_df(sql, parameters, df_type="pandas", **kwargs)


class PostgresHook(DbApiHook):
    """PostgreSQL through psycopg 3. Extras other than Airflow's settings are libpq parameters
    (``sslmode``, ``options``…); ``cursor`` (``dictcursor``, ``namedtuplecursor``…) picks the rows."""

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    conn_type = "postgres"
    hook_name = "Postgres"
    _placeholder = "%s"

    def __init__(self, *args: Any, options: str | None = None, **kwargs: Any) -> None:
        self.enable_log_db_messages: bool = kwargs.pop("enable_log_db_messages", False)
        super().__init__(*args, **kwargs)
        self.options = options

    def _connect_args(self) -> dict[str, Any]:
        import psycopg
        from psycopg import rows

        extra = self.connection_extra
        args: dict[str, Any] = {k: v for k, v in extra.items() if k not in _PG_NOT_CONNECT_ARGS}
        args["cursor_factory"] = psycopg.ClientCursor  # psycopg2's client-side binding
        if self.options:
            args["options"] = self.options
        d, n = rows.dict_row, rows.namedtuple_row
        factories = {"dictcursor": d, "realdictcursor": d, "namedtuplecursor": n}
        if extra.get("cursor"):
            args["row_factory"] = _choose(self, "cursor", str(extra["cursor"]).lower(), factories)
        return args

    _serialize_cell = staticmethod(lambda cell, conn=None: cell)  # the driver adapts values itself

    def _generate_insert_sql(
        self, table: str, values: Sequence[Any], target_fields: Iterable[str] | None, replace: bool, **kw: Any
    ) -> str:
        """``INSERT``, or with ``replace=True`` an ``ON CONFLICT (replace_index) DO UPDATE``."""
        fields = list(target_fields or [])
        sql = super()._generate_insert_sql(table, values, fields, False)
        if not replace:
            return sql
        if not fields:
            raise ValueError("PostgreSQL ON CONFLICT upsert syntax requires column names")
        index = kw.get("replace_index")
        if not index:
            raise ValueError("PostgreSQL ON CONFLICT upsert syntax requires an unique index (replace_index=)")
        keys = [index] if isinstance(index, str) else list(index)
        sql += f" ON CONFLICT ({', '.join(map(self._escape_word, keys))})"
        update = [self._escape_word(f) for f in fields if f not in keys]
        if update:
            return sql + " DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)
        return sql + " DO NOTHING"

    def _run_command(self, cur: Any, sql_statement: str, parameters: Any) -> None:
        super()._run_command(cur, sql_statement, parameters)
        # psycopg 3 stops at a multi-statement string's first result, psycopg2 (Airflow's) at its last.
        while cur.nextset():
            pass


def _choose(hook: DbApiHook, extra: str, value: str, options: Mapping[str, Any]) -> Any:
    if value not in options:
        raise MillstreamError(
            f"connection {hook.get_conn_id()!r}: extra {extra}={value!r} is not one of {', '.join(options)}"
        )
    return options[value]


class MySqlHook(DbApiHook):
    """MySQL and MariaDB through PyMySQL, with Airflow's extras: ``charset``, ``cursor`` (``sscursor``,
    ``dictcursor``, ``ssdictcursor``), ``ssl``, ``unix_socket``, ``connect_timeout``, ``local_infile``."""

    conn_name_attr = "mysql_conn_id"
    default_conn_name = "mysql_default"
    conn_type = "mysql"
    hook_name = "MySQL"
    _placeholder = "%s"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.local_infile: bool = kwargs.pop("local_infile", False)
        self.init_command: str | None = kwargs.pop("init_command", None)
        super().__init__(*args, **kwargs)

    def _connect_args(self) -> dict[str, Any]:
        from pymysql import cursors

        extra = self.connection_extra
        args: dict[str, Any] = {k: extra[k] for k in ("charset", "unix_socket") if extra.get(k)}
        if extra.get("cursor"):
            c = cursors
            classes = {"sscursor": c.SSCursor, "dictcursor": c.DictCursor, "ssdictcursor": c.SSDictCursor}
            args["cursorclass"] = _choose(self, "cursor", str(extra["cursor"]).lower(), classes)
        if extra.get("ssl"):
            args["ssl"] = json.loads(extra["ssl"]) if isinstance(extra["ssl"], str) else extra["ssl"]
        if extra.get("connect_timeout"):
            args["connect_timeout"] = int(extra["connect_timeout"])
        if self.local_infile or str(extra.get("local_infile", "")).lower() == "true":
            args["local_infile"] = True
        if self.init_command or extra.get("init_command"):
            args["init_command"] = self.init_command or extra["init_command"]
        return args

    _serialize_cell = staticmethod(lambda cell, conn=None: cell)  # the driver adapts values itself


class SqliteHook(DbApiHook):
    """SQLite through sqlite3: the connection's host (or schema) is the file's path, or ``:memory:``."""

    conn_name_attr = "sqlite_conn_id"
    default_conn_name = "sqlite_default"
    conn_type = "sqlite"
    hook_name = "Sqlite"
    _placeholder = "?"


_HOOKS_BY_TYPE: dict[str, type[DbApiHook]] = dict(postgres=PostgresHook, mysql=MySqlHook, sqlite=SqliteHook)
_HOOKS_BY_TYPE["mariadb"] = MySqlHook
