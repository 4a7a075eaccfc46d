"""Settings: millstream.toml, MILLSTREAM__SECTION__KEY, the generated reference, `config show`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from millstream.settings import ConfigError, Settings, mask, reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_precedence_env_over_short_env_over_toml_over_default(tmp_path):
    (tmp_path / "millstream.toml").write_text(
        "[core]\nparallelism = 3\nmax_map_length = 10\n[scheduler]\nheartbeat_timeout = 12\n"
    )
    env = {
        "MILLSTREAM_HOME": str(tmp_path),
        "MILLSTREAM_PARALLELISM": "5",
        "MILLSTREAM__CORE__MAX_MAP_LENGTH": "20",
        "MILLSTREAM_MAX_MAP_LENGTH": "99",
    }
    s = Settings.load(environ=env)
    assert s.parallelism == 5 and s.sources["core.parallelism"] == "env MILLSTREAM_PARALLELISM"
    assert (
        s.max_map_length == 20 and s.sources["core.max_map_length"] == "env MILLSTREAM__CORE__MAX_MAP_LENGTH"
    )
    assert (
        s.heartbeat_timeout == 12
        and s.sources["scheduler.heartbeat_timeout"] == "millstream.toml [scheduler]"
    )
    assert s.lease_timeout == 30 and s.sources["worker.lease_timeout"] == "default"
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'millstream.db'}"
    assert s.config_file == tmp_path / "millstream.toml"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[core]\nparalelism = 3\n", {}, "unknown setting [core] paralelism; known in [core]: dags_folder"),
        ("[core\n", {}, "not valid TOML"),
        (
            "",
            {"MILLSTREAM__SCHEDULER__EXECUTOR": "kubernetes"},
            "scheduler.executor (from env MILLSTREAM__SCHEDULER__EXECUTOR): choose one of local, celery",
        ),
        (
            "[worker]\nlease_timeout = -1\n",
            {},
            "worker.lease_timeout (from millstream.toml [worker]): must be a positive",
        ),
        ("", {"MILLSTREAM_PAUSED_ON_CREATION": "maybe"}, "expected true or false"),
        (
            "[core]\nparallelism = inf\n",
            {},
            "core.parallelism (from millstream.toml [core]): must be a whole number",
        ),
        ("", {"MILLSTREAM__SCHEDULER__HEARTBEAT_TIMEOUT": "nan"}, "must be a positive number of seconds"),
    ],
)
def test_bad_settings_name_the_setting_and_where_it_came_from(tmp_path, toml, env, message):
    (tmp_path / "millstream.toml").write_text(toml)
    with pytest.raises(
        ConfigError, match=message.replace("[", "\\[").replace("(", "\\(").replace(")", "\\)")
    ):
        Settings.load(environ={"MILLSTREAM_HOME": str(tmp_path), **env})


def test_secrets_are_masked():
    assert mask("postgresql://ms:s3cret@db/ms") == "postgresql://ms:***@db/ms"
    assert mask("postgresql://app:s3cr#t/pw?x@db.internal/prod") == "postgresql://app:***@db.internal/prod"
    assert mask("redis://:pw@cache:6379/1") == "redis://:***@cache:6379/1"
    assert mask("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask("hunter2") == "***"


def test_the_reference_page_is_generated_from_the_code():
    assert (ROOT / "docs" / "configuration.md").read_text() == reference_markdown(), (
        "docs/configuration.md is stale: run `millstream config reference --write docs/configuration.md`"
    )


def test_config_show(tmp_path):
    (tmp_path / "millstream.toml").write_text('[celery]\nbroker_url = "redis://:pw@cache:6379/1"\n')
    env = {
        **os.environ,
        "MILLSTREAM_HOME": str(tmp_path),
        "MILLSTREAM__CORE__DATABASE_URL": "postgresql://ms:topsecret@db/ms",
    }
    out = subprocess.run(
        [sys.executable, "-m", "millstream.cli", "config", "show", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {r["setting"]: r for r in json.loads(out)}
    assert rows["core.database_url"] == {
        "setting": "core.database_url",
        "value": "postgresql://ms:***@db/ms",
        "source": "env MILLSTREAM__CORE__DATABASE_URL",
    }
    assert rows["celery.broker_url"]["value"] == "redis://:***@cache:6379/1"
    assert rows["celery.broker_url"]["source"] == "millstream.toml [celery]"
    assert "topsecret" not in out and "pw@" not in out
    bad = subprocess.run(
        [sys.executable, "-m", "millstream.cli", "config", "show"],
        env={**env, "MILLSTREAM__CORE__PARALLELISM": "many"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "core.parallelism (from env MILLSTREAM__CORE__PARALLELISM)" in bad.stderr
