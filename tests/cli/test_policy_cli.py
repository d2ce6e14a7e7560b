"""`aictl policy validate|show|explain` through `run()`: output forms and exit codes."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.cli import run
from aictl.workspace import Workspace
from tests.cli.conftest import Result

POLICY = """\
version: 1
default: allow
settings:
  lease_ttl: 10m
ais:
  claude-1:
    denied_tools: [WebFetch]
rules:
  - id: migrations-need-approval
    actions: [claim]
    when: touches(task.paths, "db/migrations/**")
    effect: require_approval
    reason: database migrations are irreversible in production
  - id: no-prod
    actions: [claim, execute]
    when: task.labels.env == "prod"
    effect: deny
    reason: prod is off limits
  - id: no-push
    actions: [tool]
    when: tool.name == "Bash" && get(tool.input, "command", "").contains("git push")
    effect: deny
    reason: a person pushes
"""


def write_policy(workspace: Workspace, text: str = POLICY, name: str = "policy.yaml") -> Path:
    path = workspace.root / ".ai" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ----------------------------------------------------------------------------- validate


def test_validate_a_clean_repository(aictl: Callable[..., Result], workspace: Workspace) -> None:
    code, out, err = aictl("policy", "validate")
    assert (code, err) == (0, "")
    assert out == "1 policy file checked: valid\n"
    write_policy(workspace)
    code, out, err = aictl("policy", "validate")
    assert code == 0
    assert "warning: rules[1]: rule project:no-prod (deny) conflicts with" in err
    assert out == "1 policy file checked: valid, 0 errors, 1 warning\n"


def test_validate_reports_every_error_and_exits_2(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    write_policy(workspace, "version: 1\ndefault: maybe\nsettings:\n  max_attempts: 0\n")
    write_policy(workspace, "version: 1\nrules: [1]\n", name="policies/claude-1.yaml")
    code, out, err = aictl("policy", "validate")
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith(".ai/policy.yaml:2: error: default: unknown effect 'maybe'")
    assert lines[1].startswith(".ai/policy.yaml:4: error: settings.max_attempts:")
    assert lines[2] == ".ai/policies/claude-1.yaml:2: error: rules[0]: expected a mapping, got 1"
    assert out == "2 policy files checked: invalid, 3 errors, 0 warnings\n"


def test_validate_named_files_outside_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AICTL_DB", raising=False)
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - id: r\n    actions: [claim]\n    when: task.x\n")
    assert run(["policy", "validate", "good.yaml"]) == 0
    assert capsys.readouterr().out == "1 policy file checked: valid\n"
    assert run(["policy", "validate", "good.yaml", "bad.yaml", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert (report["files"], report["errors"], report["warnings"]) == (
        ["good.yaml", "bad.yaml"],
        3,
        0,
    )
    assert {issue["field"] for issue in report["issues"]} == {
        "rules[0].when",
        "rules[0].effect",
        "rules[0].reason",
    }
    assert all(issue["file"] == "bad.yaml" for issue in report["issues"])


def test_validate_without_any_policy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", "")
    assert run(["policy", "validate"]) == 0
    assert "no policy files found" in capsys.readouterr().out


# ----------------------------------------------------------------------------- show


def test_show_lists_layers_and_hashes(aictl: Callable[..., Result], workspace: Workspace) -> None:
    write_policy(workspace)
    write_policy(workspace, "version: 1\ndefault: deny\n", name="policies/claude-1.yaml")
    code, out, _ = aictl("policy", "show", "--json")
    assert code == 0
    data = json.loads(out)
    assert [layer["name"] for layer in data["layers"]] == ["project"]
    assert data["layers"][0]["rules"] == 3 and len(data["hash"]) == 64
    code, out, _ = aictl("policy", "show", "--ai", "claude-1", "--effective", "--json")
    data = json.loads(out)
    assert [layer["name"] for layer in data["layers"]] == ["project", "ai:claude-1"]
    assert (data["default"], data["default_source"]) == ("deny", "ai:claude-1")
    assert data["settings"] == {"lease_ttl": "10m"}
    assert data["ais"] == {"claude-1": {"denied_tools": ["WebFetch"]}}
    assert [rule["qualified_id"] for rule in data["rules"]] == [
        "project:migrations-need-approval",
        "project:no-prod",
        "project:no-push",
    ]


def test_show_as_tables(aictl: Callable[..., Result], workspace: Workspace) -> None:
    write_policy(workspace)
    code, out, _ = aictl("policy", "show", "--effective")
    assert code == 0
    assert "project  .ai/policy.yaml" in out and "effective policy hash: " in out
    assert "default: allow (from the project layer)" in out
    assert "lease_ttl" in out and '["WebFetch"]' in out
    assert 'touches(task.paths, "db/migrations/**")' in out
    assert "project:no-push" in out and "claim,execute" in out


def test_show_refuses_an_invalid_policy_with_every_error(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    write_policy(workspace, "version: 1\ndefault: maybe\nrules: 3\n")
    code, out, err = aictl("policy", "show")
    assert (code, out) == (2, "")
    assert "Error: invalid policy (2 errors):" in err
    assert ".ai/policy.yaml:3: rules: expected a list, got 3" in err


# ----------------------------------------------------------------------------- explain


def create_task(aictl: Callable[..., Result], *options: str) -> str:
    code, out, err = aictl("task", "create", "Migrate", "-q", *options)
    assert code == 0, err
    return out.strip()


def test_explain_json(aictl: Callable[..., Result], workspace: Workspace) -> None:
    write_policy(workspace)
    task_id = create_task(aictl, "--path", "db/migrations/0001.sql", "--label", "env=dev")
    code, out, _ = aictl(
        "policy", "explain", "--task", task_id, "--ai", "claude-1", "--action", "claim", "--json"
    )
    assert code == 0
    data = json.loads(out)
    decision = data["decision"]
    assert (decision["effect"], decision["decided_by"]) == (
        "require_approval",
        "project:migrations-need-approval",
    )
    assert decision["layer_hashes"] == {"project": data["layers"][0]["hash"]}
    assert decision["policy_hash"] == data["policy_hash"]
    outcomes = {rule["rule"]: rule["outcome"] for rule in data["rules"]}
    assert outcomes == {
        "project:migrations-need-approval": "matched",
        "project:no-prod": "condition false",
        "project:no-push": "action not listed",
    }
    assert data["request"]["ai"]["id"] == "claude-1"
    assert data["request"]["task"]["paths"] == ["db/migrations/0001.sql"]


def test_explain_as_text_names_the_deciding_rule(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    write_policy(workspace)
    task_id = create_task(aictl, "--label", "env=prod")
    code, out, _ = aictl("policy", "explain", "--task", task_id, "--action", "execute")
    assert code == 0
    assert "project:no-prod" in out and "matched" in out and "action not listed" in out
    assert out.rstrip().endswith("outcome: deny, decided by project:no-prod: prod is off limits")


def test_explain_shows_a_condition_error_failing_closed(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    write_policy(workspace)
    task_id = create_task(aictl)  # no env label: no-prod cannot be decided
    code, out, _ = aictl("policy", "explain", "--task", task_id, "--action", "claim")
    assert code == 0
    assert "condition error (fail closed: counts as matched): no such key: 'env'" in out
    assert "outcome: deny, decided by project:no-prod" in out


def test_explain_a_tool_call_and_the_default(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    write_policy(workspace)
    task_id = create_task(aictl)
    code, out, _ = aictl(
        "policy", "explain", "--task", task_id, "--ai", "claude-1", "--action", "tool",
        "--tool", "Bash", "--input", '{"command": "git push origin main"}', "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["decision"]["decided_by"] == "project:no-push"
    code, out, _ = aictl(
        "policy", "explain", "--task", task_id, "--action", "tool", "--tool", "Read",
        "--input", '{"file_path": "README.md"}',
    )  # fmt: skip
    assert code == 0
    assert "outcome: allow by default (no rule decided; the default is allow" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--action", "merge"], "unknown action 'merge'; valid actions: create, claim"),
        (["--action", "tool", "--input", "{bad"], "--input is not valid JSON"),
        (["--action", "tool", "--input", "[1]"], "--input must be a JSON object, not list"),
    ],
)
def test_explain_refuses_bad_input(
    aictl: Callable[..., Result], arguments: list[str], message: str
) -> None:
    task_id = create_task(aictl)
    code, out, err = aictl("policy", "explain", "--task", task_id, *arguments)
    assert (code, out) == (2, "")
    assert message in err


def test_explain_an_unknown_task(aictl: Callable[..., Result]) -> None:
    code, _, err = aictl("policy", "explain", "--task", "99", "--action", "claim")
    assert code == 2 and "99" in err
