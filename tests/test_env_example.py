"""`.env.example` lists every variable the code reads, and nothing else."""
from __future__ import annotations

import re
from pathlib import Path

from app.config import Config

ROOT = Path(__file__).resolve().parents[1]


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set(Config.variables())  # every setting of app/config.py
    # and what celeryconfig.py and the shared reader (app/common/env.py) read themselves
    for path in (ROOT / "celeryconfig.py", ROOT / "app" / "common" / "env.py"):
        names.update(re.findall(r'(?:env\.(?:text|opt|integer|number|flag|choice|csv)|os\.environ\.get)'
                                r'\("([A-Z][A-Z0-9_]+)"', path.read_text()))
    return names


def variables_in_env_example() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_variable_the_code_reads():
    missing = variables_read_by_the_code() - variables_in_env_example()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_lists_nothing_the_code_does_not_read():
    extra = variables_in_env_example() - variables_read_by_the_code()
    assert not extra, f"not read by the code: {sorted(extra)}"


def test_no_other_module_reads_the_environment_directly():
    offenders = []
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("tasks/**/*.py"), *ROOT.glob("engines/**/*.py")]:
        if path.name == "config.py":
            continue
        if re.search(r"os\.environ\.get|os\.getenv|os\.environ\[[^\]]+\](?!\s*=)", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"read configuration through app.config.Config: {offenders}"


def test_python_dotenv_parses_every_line_of_env_example(caplog):
    """`openwa` reads `.env` with python-dotenv; a copy of the example must load cleanly
    (a stray line like ``=======`` made it warn "could not parse statement")."""
    from dotenv import dotenv_values

    with caplog.at_level("WARNING", logger="dotenv.main"):
        values = dotenv_values(ROOT / ".env.example")
    assert not [r.getMessage() for r in caplog.records], "python-dotenv could not parse a line"
    uncommented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(),
                                 flags=re.MULTILINE))
    assert set(values) == uncommented
