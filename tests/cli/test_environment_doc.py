"""docs/environment.md lists every AICTL_* variable the code reads or sets, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bAICTL_[A-Z][A-Z_]*[A-Z]\b")
#: Names in the code that are not environment variables.
NOT_VARIABLES = {"AICTL_VERSION"}
#: Names the page shows as examples of a user's own choosing (policy `secret_env`/`url_env`).
EXAMPLES = {"AICTL_WEBHOOK_SECRET", "AICTL_SLACK_URL"}
#: Names the test suite reads (tests/conftest.py), documented for whoever runs it.
TEST_SUITE = {"AICTL_TEST_PG"}


def names_in_code() -> set[str]:
    found: set[str] = set()
    for package in ("aictl", "connectors"):
        for source in (ROOT / package).rglob("*.py"):
            found |= set(NAME.findall(source.read_text(encoding="utf-8")))
    return found - NOT_VARIABLES


def test_every_variable_in_the_code_is_documented() -> None:
    page = (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")
    missing = sorted(names_in_code() - set(NAME.findall(page)))
    assert not missing, f"docs/environment.md does not list {missing}"


def test_every_documented_variable_is_in_the_code() -> None:
    page = set(NAME.findall((ROOT / "docs" / "environment.md").read_text(encoding="utf-8")))
    stale = sorted(page - names_in_code() - EXAMPLES - TEST_SUITE)
    assert not stale, f"docs/environment.md lists {stale}, which the code no longer uses"
