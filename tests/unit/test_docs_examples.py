"""Every YAML, TOML and JSON example on every page of the docs loads as what it is: a policy
with the policy loader, a workflow with the workflow loader, a skill's manifest with the skill
loader, a `task import` file with the import parser. A page that gains an example of a kind
nobody checks fails here until it is named.
(The pages' `aictl` commands are checked by tests/cli/test_docs_commands.py, the README's
quick start is run by tests/e2e/test_readme_quickstart.py.)"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(yaml|toml|json)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> list[tuple[str, int, str, str]]:
    """(page, line, language, text) of every fenced example in a checked language."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((page.relative_to(ROOT).as_posix(), line, match[1], match[2]))
    return found


def kind(document: object) -> str:
    if not isinstance(document, dict):
        return "unknown"
    if "steps" in document and "name" in document:
        return "workflow"
    if {"name", "version", "description"} <= set(document):
        return "skill"
    if set(document) == {"tasks"}:
        return "import"
    if set(document) == {"database"}:
        return "config"
    if document.get("version") == 1 and "name" not in document:
        return "policy"
    return "unknown"


def test_the_docs_have_examples_of_each_kind() -> None:
    kinds = {
        kind(yaml.safe_load(text)) for _, _, language, text in examples() if language == "yaml"
    }
    assert {"workflow", "policy", "skill", "import"} <= kinds


@pytest.mark.parametrize(
    ("page", "line", "language", "text"), examples(), ids=lambda v: str(v)[:40]
)
def test_every_example_loads_as_what_it_is(
    page: str, line: int, language: str, text: str, tmp_path: Path
) -> None:
    where = f"{page}:{line}"
    if language == "toml":
        assert tomllib.loads(text), where
        return
    if language == "json":
        json.loads(text)
        return
    document = yaml.safe_load(text)
    found = kind(document)
    if found == "policy":
        from aictl.policy.loader import load_text

        loaded = load_text(text, display=where)
        assert loaded.ok, [str(issue) for issue in loaded.issues]
    elif found == "workflow":
        from aictl.workflows.loader import load_text as load_workflow

        flow = load_workflow(text, display=where)
        assert flow.ok, [str(issue) for issue in flow.issues]
    elif found == "skill":
        from aictl.skills.loader import load_skill

        folder = tmp_path / str(document["name"])
        folder.mkdir()
        (folder / "skill.yaml").write_text(text)
        (folder / "instructions.md").write_text("x")
        for command in (document.get("script") or {}).get("command", [])[1:]:
            (folder / command).write_text("")  # the script file the manifest names
        skill = load_skill(folder, display=where)
        assert skill.ok, [str(issue) for issue in skill.issues]
    elif found == "import":
        from aictl.domain.imports import parse

        assert parse(text, name=where, format="aictl"), where  # raises naming the problem
    elif found == "config":
        from aictl.workspace import CONFIG, configured_database

        (tmp_path / CONFIG).write_text(text)
        assert configured_database(tmp_path) == document["database"], where  # raises if bad
    else:
        pytest.fail(f"{where}: an example of no known kind; teach this test what it is")
