"""Every `millstream …` command in docs/deployment.md is one the CLI accepts, so the
guide cannot drift from the code (the integration tests run the same commands)."""

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from millstream.cli import main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("millstream ")]


def test_the_guide_has_the_commands_the_tests_run():
    cmds = commands()
    for expected in ("millstream db migrate", "millstream scheduler", "millstream celery status"):
        assert expected in cmds
    assert any(c.startswith("millstream celery worker --queues") for c in cmds)


@pytest.mark.parametrize("command", commands())
def test_each_command_parses(command):
    """Parsed up to its options (an unknown command or option fails); ``--help`` stops it
    before it would do anything."""
    result = CliRunner().invoke(main, [*shlex.split(command)[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: main" in result.output and "Commands:" not in result.output  # a command, not a group
