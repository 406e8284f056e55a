"""The runbooks exist, are linked from the README, and name only commands that exist."""
from __future__ import annotations

import re
from pathlib import Path

import click

from app.cli import cli

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks.md"


def test_readme_links_the_runbooks_and_they_cover_the_procedures():
    assert "(docs/runbooks.md)" in (REPO / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    assert headings == ["Deploy", "Upgrade, with migrations", "Backups", "Restore",
                        "Scale out", "ENCRYPTION_KEY"]


def test_every_openwa_command_in_the_runbooks_exists():
    text = RUNBOOKS.read_text()
    used = set(re.findall(r"\bopenwa ((?:[a-z]+)(?: [a-z]+)?)", text))
    assert {"backup", "backups list", "restore", "db upgrade"} <= used
    # `with`: FlaskGroup pushes an app context onto the click context; it must be popped,
    # or every later test would run inside that app.
    with click.Context(cli) as ctx:
        for phrase in sorted(used):
            words = phrase.split()
            command = cli.get_command(ctx, words[0])
            assert command is not None, f"`openwa {words[0]}` does not exist"
            if isinstance(command, click.Group) and len(words) > 1:
                assert command.get_command(ctx, words[1]) is not None, f"`openwa {phrase}`"


def test_every_variable_in_the_runbooks_is_one_the_code_reads():
    from tests.test_env_example import variables_read_by_the_code

    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})(?:=[^`]*)?`", RUNBOOKS.read_text()))
    compose_only = {"POSTGRES_PASSWORD", "API_REPLICAS", "HOST_REPLICAS", "NGINX_CERTS_DIR",
                    "OPENWA_TAG", "TMPDIR", "FLOWER_BASIC_AUTH"}
    unknown = named - variables_read_by_the_code() - compose_only
    assert not unknown, f"the runbooks name variables nothing reads: {sorted(unknown)}"
