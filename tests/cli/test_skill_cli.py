"""`aictl skill` and the skill options of `aictl task` and `aictl route`, through the CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Result

Aictl = Callable[..., Result]

SCRIPT = (
    "import json, sys\n"
    "data = json.load(sys.stdin)\n"
    "print('hello', data['inputs'].get('who', 'nobody'))\n"
)


def make_skill(
    where: Path,
    name: str,
    version: str = "1.0",
    *,
    requires: dict[str, str] | None = None,
    checks: str = "",
    script: bool = False,
) -> Path:
    folder = where / f"{name}-{version}"
    folder.mkdir(parents=True)
    lines = [f"name: {name}", f"version: '{version}'", f"description: {name} for tests"]
    if requires:
        lines.append("requires:")
        lines += [f"  {key}: '{value}'" for key, value in requires.items()]
    if script:
        lines.append(f"script:\n  command: {json.dumps([sys.executable, 'run.py'])}")
        (folder / "run.py").write_text(SCRIPT)
    (folder / "skill.yaml").write_text("\n".join(lines) + "\n" + checks)
    (folder / "instructions.md").write_text(f"{name} {version}: INSTRUCTIONS-{name.upper()}\n")
    return folder


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return tmp_path / "sources"


def ok(result: Result) -> str:
    code, out, err = result
    assert code == 0, err
    return out


def test_add_copies_validates_and_enables(aictl: Aictl, sources: Path) -> None:
    out = ok(aictl("skill", "add", str(make_skill(sources, "review")), "--json"))
    added = json.loads(out)
    assert added["name"] == "review" and added["folder"].endswith(".ai/skills/review/1.0")
    assert Path(added["folder"], "instructions.md").is_file()
    rows = json.loads(ok(aictl("skill", "list", "--json")))
    assert [(r["name"], r["version"], r["enabled"], r["scope"]) for r in rows] == [
        ("review", "1.0", True, "")
    ]
    ok(aictl("skill", "add", str(make_skill(sources, "review", "2.0"))))
    text = ok(aictl("skill", "list"))
    assert "review  1.0" in text and "review  2.0" in text
    code, _, err = aictl("skill", "add", str(sources / "review-1.0"))
    assert code == 2 and "review 1.0 is already in .ai/skills/review/1.0" in err
    assert "--replace" in err
    ok(aictl("skill", "add", str(sources / "review-1.0"), "--replace"))
    events = json.loads(ok(aictl("audit", "export")).splitlines()[-1])
    assert events["kind"] == "skill.added"


def test_an_invalid_skill_is_refused_with_every_error_and_nothing_copied(
    aictl: Aictl, sources: Path, workspace: object
) -> None:
    bad = sources / "bad"
    bad.mkdir(parents=True)
    (bad / "skill.yaml").write_text("name: Bad\nversion: 1.0\ncolour: red\n")
    code, out, err = aictl("skill", "add", str(bad))
    assert code == 2 and out == ""
    assert "invalid skill (5 errors)" in err
    for expected in (
        "skill.yaml:1: name: invalid skill name 'Bad'",
        "skill.yaml:2: version: expected text, got 1.0",
        "skill.yaml:3: colour: unknown field 'colour'",
        "skill.yaml:1: missing required field 'description'",
        "no instructions",
    ):
        assert expected in err, err
    assert json.loads(ok(aictl("skill", "list", "--json"))) == []


def test_enable_and_disable_per_project_and_per_ai(aictl: Aictl, sources: Path) -> None:
    ok(aictl("ai", "register", "claude-1", "--connector", "claude-code", "--no-check"))
    ok(aictl("skill", "add", str(make_skill(sources, "review"))))
    assert "Disabled skill review for claude-1" in ok(
        aictl("skill", "disable", "review", "--ai", "claude-1")
    )
    mine = json.loads(ok(aictl("skill", "list", "--ai", "claude-1", "--json")))
    project = json.loads(ok(aictl("skill", "list", "--json")))
    assert mine[0]["enabled"] is False and project[0]["enabled"] is True
    ok(aictl("skill", "enable", "review", "--ai", "claude-1"))
    assert json.loads(ok(aictl("skill", "list", "--ai", "claude-1", "--json")))[0]["enabled"]
    shown = json.loads(ok(aictl("skill", "show", "review", "--json")))
    assert shown["settings"] == {"project": True, "claude-1": True}
    code, _, err = aictl("skill", "enable", "ghost")
    assert code == 2 and "no valid skill named 'ghost'" in err
    code, _, err = aictl("skill", "enable", "review", "--ai", "nobody")
    assert code == 2 and "no AI 'nobody'" in err


def test_a_per_ai_skill_overrides_the_shared_one_for_that_ai(aictl: Aictl, sources: Path) -> None:
    for ai in ("claude-1", "claude-2"):
        ok(aictl("ai", "register", ai, "--connector", "claude-code", "--no-check"))
    ok(aictl("skill", "add", str(make_skill(sources, "review", "2.0"))))
    own = make_skill(sources / "own", "review", "0.5")
    out = ok(aictl("skill", "add", str(own), "--ai", "claude-1"))
    assert "Added skill review 0.5 for claude-1" in out
    listed = json.loads(ok(aictl("skill", "list", "--ai", "claude-1", "--json")))
    assert [(r["version"], r["scope"], r["overridden"]) for r in listed] == [
        ("2.0", "", True),
        ("0.5", "claude-1", False),
    ]
    one = json.loads(ok(aictl("skill", "show", "review", "--ai", "claude-1", "--json")))
    two = json.loads(ok(aictl("skill", "show", "review", "--ai", "claude-2", "--json")))
    assert one["resolved"] == ["review 0.5"] and "INSTRUCTIONS-REVIEW" in one["instructions"]
    assert two["resolved"] == ["review 2.0"]
    ok(aictl("task", "create", "Review", "--skill", "review"))
    route = json.loads(ok(aictl("route", "explain", "1", "--json")))
    reasons = {c["ai"]: c["reasons"] for c in route["candidates"]}
    assert reasons["claude-1"][0] == "skills ready: review 0.5"
    assert reasons["claude-2"][0] == "skills ready: review 2.0"


def test_a_task_names_skills_and_the_router_requires_them(aictl: Aictl, sources: Path) -> None:
    ok(aictl("ai", "register", "claude-1", "--connector", "claude-code", "--no-check"))
    ok(aictl("ai", "register", "claude-2", "--connector", "claude-code", "--no-check"))
    ok(aictl("skill", "add", str(make_skill(sources, "lib"))))
    ok(aictl("skill", "add", str(make_skill(sources, "app", requires={"lib": ">=1"}))))
    ok(aictl("skill", "disable", "lib", "--ai", "claude-1"))
    created = json.loads(
        ok(aictl("task", "create", "T", "--skill", "app", "--skill", "app", "--json"))
    )
    assert created["skills"] == ["app"]
    assert any(
        line.split() == ["skills", "app"] for line in ok(aictl("task", "show", "1")).splitlines()
    )
    route = json.loads(ok(aictl("route", "explain", "1", "--json")))
    assert route["ai"] == "claude-2"
    reasons = {c["ai"]: c["reasons"] for c in route["candidates"]}
    assert reasons["claude-1"] == ["skill lib is not enabled"]
    assert reasons["claude-2"][0] == "skills ready: lib 1.0, app 1.0"
    table = ok(aictl("route", "explain", "1"))
    assert "skill lib is not enabled" in table
    code, _, err = aictl("task", "create", "T", "--skill", "Not_Valid")
    assert code == 2 and "invalid skill name 'Not_Valid'" in err


def test_skill_test_shows_what_the_agent_receives_and_runs_the_checks(
    aictl: Aictl, sources: Path
) -> None:
    checks = (
        "checks:\n  - name: greets\n    input: {who: world}\n    expect: hello world\n"
        "  - name: wrong\n    expect: goodbye\n"
    )
    ok(aictl("skill", "add", str(make_skill(sources, "lib"))))
    folder = make_skill(sources, "greet", requires={"lib": "*"}, checks=checks, script=True)
    ok(aictl("skill", "add", str(folder)))
    code, out, err = aictl("skill", "test", "greet")
    assert code == 1, err
    assert "resolves to: lib 1.0, greet 1.0" in out
    assert "INSTRUCTIONS-LIB" in out and "INSTRUCTIONS-GREET" in out
    assert "check greets: pass" in out
    assert "check wrong: FAIL: output does not contain 'goodbye'" in out
    code, out, _ = aictl("skill", "test", "greet", "--json")
    report = json.loads(out)
    assert code == 1 and report["passed"] is False
    assert report["checks"][0]["run"]["output"] == "hello world"
    assert "# Skills provided by aictl for this task" in report["context"]
    records = json.loads(ok(aictl("policy", "decisions", "--action", "tool", "--json")))
    assert len(records) == 4 and {r["subject"] for r in records} == {"skill-test"}
    code, out, _ = aictl("skill", "test", "lib")
    assert code == 0 and "no checks" in out


def test_skill_test_refuses_an_invalid_or_unresolvable_skill(
    aictl: Aictl, sources: Path, workspace: object
) -> None:
    from aictl.workspace import Workspace

    assert isinstance(workspace, Workspace)
    ok(aictl("skill", "add", str(make_skill(sources, "a", requires={"b": ">=2"}))))
    ok(aictl("skill", "add", str(make_skill(sources, "b"))))
    code, _, err = aictl("skill", "test", "a")
    assert (
        code == 2 and "no version of skill b satisfies every range: >=2 (task -> a 1.0 -> b)" in err
    )
    broken = workspace.state_dir / "skills" / "b" / "1.0" / "skill.yaml"
    broken.write_text(broken.read_text() + "colour: red\n")
    code, _, err = aictl("skill", "test", "b")
    assert code == 2 and "b/1.0/skill.yaml:4: colour: unknown field 'colour'" in err
    code, _, err = aictl("skill", "list")
    assert code == 0 and "warning: skipped an invalid skill" in err
    shown = json.loads(ok(aictl("skill", "show", "b", "--json")))
    assert shown["versions"] == [] and shown["issues"][0]["field"] == "colour"
    code, _, err = aictl("skill", "show", "ghost")
    assert code == 2 and "no skill named 'ghost'" in err


def test_claude_code_skills_are_added_as_they_are(aictl: Aictl, sources: Path) -> None:
    folder = sources / "checklist"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        "---\nname: checklist\ndescription: The release checklist\nallowed-tools: Read\n---\n"
        "Tag, build, publish.\n"
    )
    ok(aictl("skill", "add", str(folder)))
    shown = ok(aictl("skill", "show", "checklist"))
    assert "claude" in shown and "Tag, build, publish." in shown
    assert "resolves to: checklist 0" in shown
