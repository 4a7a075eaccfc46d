"""Settings: one declared list, read from ``millstream.toml`` and the environment.

Each setting lives in a section (``[core]``, ``[scheduler]``, ...) and can be given, from
strongest to weakest:

1. ``MILLSTREAM__SECTION__KEY`` in the environment (``MILLSTREAM__CORE__PARALLELISM=8``);
2. its short variable, kept for the settings that had one (``MILLSTREAM_PARALLELISM``);
3. ``millstream.toml`` (``$MILLSTREAM_CONFIG``, else ``$MILLSTREAM_HOME/millstream.toml``);
4. the default below.

``docs/configuration.md`` is generated from :data:`SETTINGS` (a test fails if it drifts),
and ``millstream config show`` prints the effective values with where each came from.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from millstream.errors import MillstreamError


class ConfigError(MillstreamError):
    """A setting with a value that cannot be used; the message names where it came from."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _positive_int(value: Any) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a whole number, got {value!r}")
    n = int(value)
    if n < 0:
        raise ValueError(f"must be >= 0, got {n}")
    return n


def _seconds(value: Any) -> float:
    n = float(value)
    if not math.isfinite(n) or n <= 0:
        raise ValueError(f"must be a positive number of seconds, got {value!r}")
    return n


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = str
    env: str | None = None  # the short MILLSTREAM_* variable, for settings that had one
    secret: bool = False  # masked by `config show` (a URL keeps all but its password)

    @property
    def env_name(self) -> str:
        return f"MILLSTREAM__{self.section.upper()}__{self.key.upper()}"

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


#: Every setting. Defaults that depend on the home folder are filled in by :meth:`Settings.load`.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "core",
        "dags_folder",
        None,
        "Folder (or file) of DAG files. Default: `$MILLSTREAM_HOME/dags`.",
        env="MILLSTREAM_DAGS_FOLDER",
    ),
    Setting(
        "core",
        "database_url",
        None,
        "SQLAlchemy URL of the store. Default: `sqlite:///$MILLSTREAM_HOME/millstream.db`; "
        "PostgreSQL as `postgresql://user:password@host/db` (extra `postgres`).",
        env="MILLSTREAM_DATABASE_URL",
        secret=True,
    ),
    Setting(
        "core",
        "parallelism",
        0,
        "Worker processes of the local executor (0: the number of cores, at least 2).",
        _positive_int,
        env="MILLSTREAM_PARALLELISM",
    ),
    Setting(
        "core",
        "max_map_length",
        100_000,
        "Most instances one mapped task may expand into.",
        _positive_int,
        env="MILLSTREAM_MAX_MAP_LENGTH",
    ),
    Setting(
        "core",
        "dag_file_timeout",
        30.0,
        "Seconds a DAG file may take to import.",
        _seconds,
        env="MILLSTREAM_DAG_FILE_TIMEOUT",
    ),
    Setting(
        "core",
        "paused_on_creation",
        True,
        "New DAGs start paused (manual triggers still run).",
        _bool,
        env="MILLSTREAM_PAUSED_ON_CREATION",
    ),
    Setting(
        "core",
        "cron_data_intervals",
        False,
        "Airflow 2 semantics: cron and timedelta runs cover the interval that just ended.",
        _bool,
        env="MILLSTREAM_CRON_DATA_INTERVALS",
    ),
    Setting(
        "core",
        "airflow_imports",
        "false",
        "Load DAG files that import from `airflow` through Millstream's import hook: `true`, `false`, "
        "or `force` (use the hook even where apache-airflow itself is installed).",
        lambda v: _choice("true" if v is True else "false" if v is False else v, ("true", "false", "force")),
    ),
    Setting(
        "core",
        "test_connection",
        "Disabled",
        "Airflow's setting: `Enabled` lets admins test a connection through "
        "`POST /api/v2/connections/test` (the hook reaches the system from the API server); "
        "`Disabled` (default) or `Hidden` answer 403, as Airflow does.",
        lambda v: _choice(v, ("disabled", "enabled", "hidden")),
    ),
    Setting(
        "scheduler",
        "dag_refresh_interval",
        5.0,
        "Seconds between looks at the DAG folder for changes.",
        _seconds,
        env="MILLSTREAM_DAG_REFRESH_INTERVAL",
    ),
    Setting(
        "scheduler",
        "poll_interval",
        1.0,
        "Seconds between looks at the store while runs are active (idle: up to 5 s; "
        "triggers and user actions wake the scheduler at once).",
        _seconds,
        env="MILLSTREAM_POLL_INTERVAL",
    ),
    Setting(
        "scheduler",
        "heartbeat_timeout",
        30.0,
        "Seconds without a heartbeat before other schedulers adopt a scheduler's running runs.",
        _seconds,
    ),
    Setting(
        "scheduler",
        "executor",
        "local",
        "Where task instances run: `local` (a pool of worker "
        "processes beside the scheduler) or `celery` (Celery workers; extra `celery`).",
        lambda v: _choice(v, ("local", "celery")),
    ),
    Setting(
        "worker",
        "lease_timeout",
        30.0,
        "Seconds without a heartbeat before a running attempt is given up and retried.",
        _seconds,
        env="MILLSTREAM_LEASE_TIMEOUT",
    ),
    Setting(
        "celery",
        "broker_url",
        "redis://127.0.0.1:6379/0",
        "Celery broker (Redis or RabbitMQ URL).",
        secret=True,
    ),
    Setting("celery", "default_queue", "default", "Queue of tasks that set no `queue=`."),
    Setting(
        "results",
        "object_store_url",
        None,
        "Where results too large for the database go: any fsspec URL (`s3://bucket/prefix`, "
        "`file:///data/results`). Default: `$MILLSTREAM_HOME/results`.",
    ),
    Setting(
        "results",
        "inline_limit",
        65536,
        "Results larger than this many bytes (as JSON) go to the "
        "object store; only a reference stays in the database.",
        _positive_int,
    ),
    Setting(
        "api",
        "host",
        "127.0.0.1",
        "Address the API server and web UI listen on (`0.0.0.0` for every interface).",
    ),
    Setting("api", "port", 8080, "Port of the API server and web UI.", _positive_int),
    Setting(
        "api",
        "secure_cookies",
        False,
        "Send the UI's session cookie over HTTPS only: set it when the UI is served behind TLS.",
        _bool,
    ),
    Setting(
        "api",
        "jwt_expiration_time",
        86400,
        "Seconds a JWT from POST /auth/token stays valid (Airflow's setting of the same name).",
        _positive_int,
    ),
    Setting(
        "smtp", "smtp_host", "localhost", "SMTP server for task mail (`email_on_failure`, `email_on_retry`)."
    ),
    Setting("smtp", "smtp_port", 25, "Port of the SMTP server.", _positive_int),
    Setting("smtp", "smtp_starttls", False, "Upgrade the SMTP connection with STARTTLS.", _bool),
    Setting("smtp", "smtp_ssl", False, "Connect to the SMTP server over TLS from the start.", _bool),
    Setting("smtp", "smtp_user", None, "SMTP login (none: send without logging in)."),
    Setting("smtp", "smtp_password", None, "SMTP password.", secret=True),
    Setting("smtp", "smtp_mail_from", "millstream@localhost", "The From address of task mail."),
    Setting("smtp", "smtp_timeout", 30.0, "Seconds to wait for the SMTP server.", float),
    Setting(
        "triggerer",
        "triggerer_capacity",
        10_000,
        "How many deferred tasks' triggers the scheduler's embedded triggerer runs at once; 0 "
        "leaves them to `millstream triggerer` processes.",
        _positive_int,
    ),
    Setting(
        "core",
        "fernet_key",
        None,
        "Fernet key that encrypts Variables and Connection passwords and extras at rest; several, "
        "comma-separated, newest first, while rotating (`millstream rotate-fernet-key`). Default: "
        "`$MILLSTREAM_HOME/fernet.key`, generated on first start. Every process of a deployment "
        "(schedulers, workers, API servers) needs the same key.",
        secret=True,
    ),
    Setting(
        "secrets",
        "backend",
        "",
        "A secrets backend asked after the environment and before the store: `local_filesystem` "
        "(Airflow's class path works too), or a class path of your own (a `SecretsBackend`).",
    ),
    Setting(
        "secrets",
        "backend_kwargs",
        "",
        'JSON keyword arguments of the backend, e.g. `{"variables_file_path": "/etc/ms/vars.json"}`.',
        secret=True,
    ),
    Setting(
        "secrets",
        "use_cache",
        True,
        "Cache Variable and Connection lookups made while DAG files are parsed.",
        _bool,
    ),
    Setting(
        "secrets",
        "cache_ttl_seconds",
        900.0,
        "How long a parse-time lookup is kept (a changed Variable reaches top-level DAG code after this).",
        _seconds,
    ),
    Setting(
        "metrics",
        "metrics_enabled",
        True,
        "Prometheus metrics at `/metrics` of the API server (store gauges) and, in the scheduler, its "
        "event counters and histograms (`docs/metrics.md`). Off: no `/metrics`, nothing recorded.",
        _bool,
    ),
    Setting(
        "metrics",
        "metrics_require_auth",
        False,
        "`/metrics` asks for the API's Bearer token like every other endpoint. Off by default, as "
        "Prometheus scrapers expect; set it when the API is reachable from networks that should not "
        "see DAG and task ids.",
        _bool,
    ),
    Setting(
        "metrics",
        "statsd_on",
        False,
        "Also send the metrics to StatsD, under Airflow's StatsD names (the Airflow Helm chart's "
        "statsd_exporter mappings apply unchanged).",
        _bool,
    ),
    Setting("metrics", "statsd_host", "localhost", "StatsD server (UDP)."),
    Setting("metrics", "statsd_port", 8125, "StatsD port.", _positive_int),
    Setting("metrics", "statsd_prefix", "airflow", "Prefix of every StatsD name (Airflow's default)."),
    Setting(
        "traces",
        "otel_on",
        False,
        "Send OpenTelemetry traces (extra `otel`): a span per DAG run, per task instance and per attempt, "
        "the task's own spans under its attempt. Where to: the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` "
        "or `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP over HTTP), else `otel_host`.",
        _bool,
    ),
    Setting(
        "traces",
        "otel_host",
        None,
        "Host of the OTLP/HTTP collector, when no `OTEL_EXPORTER_OTLP_*ENDPOINT` variable is set "
        "(none of the three: `localhost:4318`, OpenTelemetry's default).",
    ),
    Setting(
        "traces",
        "otel_port",
        4318,
        "Port of `otel_host` (OTLP/HTTP's standard port; Airflow's default is 8889).",
        _positive_int,
    ),
    Setting("traces", "otel_ssl_active", False, "Reach `otel_host` over HTTPS.", _bool),
    Setting(
        "traces",
        "otel_service",
        "millstream",
        "The traces' `service.name` (`OTEL_SERVICE_NAME` wins when set).",
    ),
    Setting(
        "logging",
        "json_logs",
        False,
        "Log one JSON object per line (`timestamp`, `level`, `logger`, `event`, and `dag_id`, `run_id`, "
        "`task_id`, `map_index`, `try_number` on lines about a task) from the scheduler, API server, "
        "triggerer and workers, and in task logs' logging records.",
        _bool,
    ),
    Setting(
        "logging",
        "format",
        "text",
        "`json` is the same as `json_logs = true` (either one turns JSON lines on); `text` leaves "
        "`json_logs` to decide.",
        lambda v: _choice(v, ("text", "json")),
    ),
)


def _choice(value: Any, options: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in options:
        raise ValueError(f"choose one of {', '.join(options)}, got {value!r}")
    return text


def mask(value: Any) -> str:
    """Hide a secret: a URL keeps its scheme, user and host, without its password."""
    text = str(value)
    if "://" not in text:
        return "***" if text else ""
    scheme, rest = text.split("://", 1)
    if "@" not in rest:
        return text  # a URL without credentials shows nothing secret
    # The password may hold '/', '#' or '?' (SQLAlchemy accepts that): everything between
    # the first ':' of the credentials and the last '@' is the password.
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else text


@dataclass(frozen=True)
class Settings:
    home: Path
    dags_folder: Path
    database_url: str
    parallelism: int
    max_map_length: int
    dag_file_timeout: float
    dag_refresh_interval: float
    poll_interval: float
    paused_on_creation: bool
    lease_timeout: float
    heartbeat_timeout: float = 30.0
    executor: str = "local"
    broker_url: str = "redis://127.0.0.1:6379/0"
    default_queue: str = "default"
    object_store_url: str = ""
    inline_limit: int = 65536
    cron_data_intervals: bool = False
    airflow_imports: str = "false"
    test_connection: str = "disabled"
    host: str = "127.0.0.1"
    port: int = 8080
    secure_cookies: bool = False
    jwt_expiration_time: int = 86400
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_mail_from: str = "millstream@localhost"
    smtp_timeout: float = 30.0
    triggerer_capacity: int = 10_000
    fernet_key: str | None = None
    backend: str = ""
    backend_kwargs: str = ""
    use_cache: bool = True
    cache_ttl_seconds: float = 900.0
    metrics_enabled: bool = True
    metrics_require_auth: bool = False
    statsd_on: bool = False
    statsd_host: str = "localhost"
    statsd_port: int = 8125
    statsd_prefix: str = "airflow"
    otel_on: bool = False
    otel_host: str | None = None
    otel_port: int = 4318
    otel_ssl_active: bool = False
    otel_service: str = "millstream"
    json_logs: bool = False
    format: str = "text"
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)  # setting name -> where it came from

    @property
    def logs_folder(self) -> Path:
        return self.home / "logs"

    @classmethod
    def load(
        cls, *, dags_folder: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MILLSTREAM_HOME", "~/millstream")).expanduser().resolve()
        config_file = Path(env.get("MILLSTREAM_CONFIG") or home / "millstream.toml").expanduser()
        toml = _read_toml(config_file)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for s in SETTINGS:
            raw, source = s.default, "default"
            section = toml.get(s.section, {})
            if s.key in section:
                raw, source = section[s.key], f"{config_file.name} [{s.section}]"
            if s.env and s.env in env:
                raw, source = env[s.env], f"env {s.env}"
            if s.env_name in env:
                raw, source = env[s.env_name], f"env {s.env_name}"
            if raw is not None:
                try:
                    raw = s.parse(raw)
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"setting {s.name} (from {source}): {e}") from None
            values[s.key], sources[s.name] = raw, source
        if dags_folder is not None:
            values["dags_folder"], sources["core.dags_folder"] = dags_folder, "--dags-folder"
        values["dags_folder"] = Path(values["dags_folder"] or home / "dags").expanduser().resolve()
        values["database_url"] = values["database_url"] or f"sqlite:///{home / 'millstream.db'}"
        values["parallelism"] = values["parallelism"] or max(2, os.cpu_count() or 2)
        values["object_store_url"] = values["object_store_url"] or str(home / "results")
        _unknown_keys(toml, config_file)
        if values["cron_data_intervals"] and environ is None:
            # DAG files read it when they are parsed, in child processes: hand it down.
            os.environ["MILLSTREAM_CRON_DATA_INTERVALS"] = "true"
        if values["airflow_imports"] != "false" and environ is None:
            os.environ["MILLSTREAM__CORE__AIRFLOW_IMPORTS"] = values["airflow_imports"]
        return cls(home=home, config_file=config_file if toml else None, sources=sources, **values)

    def effective(self) -> list[tuple[Setting, Any, str]]:
        """(setting, value, source) for every setting: what `config show` prints."""
        return [(s, getattr(self, s.key), self.sources.get(s.name, "default")) for s in SETTINGS]


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _unknown_keys(toml: Mapping[str, Any], path: Path) -> None:
    known = {(s.section, s.key) for s in SETTINGS}
    for section, body in toml.items():
        if not isinstance(body, Mapping):
            raise ConfigError(
                f"{path}: {section!r} must be a [section]; known sections: "
                + ", ".join(dict.fromkeys(s.section for s in SETTINGS))
            )
        for key in body:
            if (section, key) not in known:
                names = ", ".join(s.key for s in SETTINGS if s.section == section) or "none"
                raise ConfigError(f"{path}: unknown setting [{section}] {key}; known in [{section}]: {names}")


def reference_markdown() -> str:
    """The configuration reference page (docs/configuration.md), generated from SETTINGS."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `millstream config reference` from src/millstream/settings.py; do not edit. -->",
        "",
        "Settings come from, strongest first: the environment variable `MILLSTREAM__SECTION__KEY`;",
        "the short variable where one exists; `millstream.toml` (at `$MILLSTREAM_CONFIG`, else",
        "`$MILLSTREAM_HOME/millstream.toml`); the default. `MILLSTREAM_HOME` (default `~/millstream`)",
        "is read from the environment only. `millstream config show` prints the effective values and",
        "where each came from, with secrets masked.",
        "",
        "```toml",
        "# millstream.toml",
        "[core]",
        'database_url = "postgresql://millstream@db.internal/millstream"',
        "",
        "[scheduler]",
        'executor = "celery"',
        "",
        "[celery]",
        'broker_url = "redis://redis.internal:6379/0"',
        "```",
        "",
    ]
    for section in dict.fromkeys(s.section for s in SETTINGS):
        lines += [f"## [{section}]", "", "| key | default | environment | meaning |", "|---|---|---|---|"]
        for s in (x for x in SETTINGS if x.section == section):
            env = f"`{s.env_name}`" + (f"<br>`{s.env}`" if s.env else "")
            default = (
                "(see meaning)"
                if s.default is None
                else f"`{str(s.default).lower() if isinstance(s.default, bool) else s.default}`"
            )
            secret = " Masked by `config show`." if s.secret else ""
            lines.append(f"| `{s.key}` | {default} | {env} | {s.help}{secret} |")
        lines.append("")
    return "\n".join(lines)
