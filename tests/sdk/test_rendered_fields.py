"""Each attempt keeps its template fields as rendered, with secrets masked (by a sensitive
name, or a value registered with mask_secret), and only when a template was rendered."""

from datetime import UTC, datetime

import pytest

import millstream
from millstream import DAG, BaseOperator, BashOperator, mask_secret, task
from millstream.sdk import masking

DAY = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_secrets():
    masking.forget_secrets()
    yield
    masking.forget_secrets()


class Query(BaseOperator):
    template_fields = ("sql", "options")

    def __init__(self, *, sql, options, **kw):
        super().__init__(**kw)
        self.sql, self.options = sql, options

    def execute(self, context):
        return self.sql


def test_rendered_fields_are_kept_with_secrets_masked():
    with DAG("masked", schedule=None, start_date=DAY) as dag:
        Query(
            task_id="q",
            sql="select '{{ ds }}' -- key {{ params.key }}",
            options={
                "password": "{{ params.key }}",
                "nested": {"api_key": "k"},
                "rows": [1, "{{ ds_nodash }}"],
            },
            params={"key": "s3cr3t-value"},
        )

    run = dag.test(logical_date=DAY)
    assert run.state.value == "success"
    got = run.ti("q").rendered
    assert got == {
        "sql": "select '2026-03-04' -- key s3cr3t-value",  # not registered in this run's worker yet
        "options": {"password": "***", "nested": {"api_key": "***"}, "rows": [1, "20260304"]},
    }
    mask_secret("s3cr3t-value")  # dag.test's attempts run in this process: now it is known
    again = dag.test(logical_date=datetime(2026, 3, 5, tzinfo=UTC))
    assert again.ti("q").rendered["sql"] == "select '2026-03-05' -- key ***"


def test_nothing_is_kept_when_no_template_was_rendered_or_rendering_failed():
    with DAG("plain", schedule=None, start_date=DAY) as dag:

        @task
        def plain(a, b):
            return a + b

        plain(1, 2)
        BashOperator(task_id="static", bash_command="echo static")
        BashOperator(task_id="broken", bash_command="echo {{ params.missing }}")

    run = dag.test(logical_date=DAY)
    assert run.ti("plain").rendered is None
    assert run.ti("static").rendered is None
    assert run.ti("broken").state.value == "failed" and run.ti("broken").rendered is None


def test_long_fields_are_cut_and_say_so():
    with DAG("long", schedule=None, start_date=DAY) as dag:
        BashOperator(task_id="b", bash_command="echo {{ 'x' * 20000 }} > /dev/null")
    got = dag.test(logical_date=DAY).ti("b").rendered["bash_command"]
    assert got.startswith("echo xxx") and got.endswith("… (20017 characters in all)")
    assert len(got) == 16384 + len("… (20017 characters in all)")


def test_redact_rules():
    assert masking.redact({"DB_PASSWORD": "p", "user": "u", "Authorization": "Bearer x"}) == {
        "DB_PASSWORD": "***",
        "user": "u",
        "Authorization": "***",
    }
    mask_secret("abcd")  # too short to mask: it would hide ordinary words
    mask_secret({"conn": {"password": "hunter22", "host": "db"}})
    # "db" is too short to register; the password is masked wherever it appears.
    assert masking.redact("login with hunter22 at db; abcd") == "login with *** at db; abcd"
    assert masking.redact(["x hunter22", ("hunter22",)]) == ["x ***", ["***"]]
    assert millstream.mask_secret is mask_secret
