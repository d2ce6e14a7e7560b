"""`aictl workflow`: create, list, show, execute, status, resume, approve, cancel, suggest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.workspace import Workspace
from tests.cli.conftest import Result
from tests.workflow_fakes import TEST_POLICY, install, register_ai

EXAMPLES = Path(__file__).resolve().parents[2] / "aictl/templates/workflows"
Run = Callable[..., Result]


@pytest.fixture
def flow(aictl: Run, workspace: Workspace) -> Run:
    (workspace.state_dir / "policy.yaml").write_text(TEST_POLICY)
    install()
    register_ai(workspace.db_path)
    return aictl


def test_create_reports_every_error_with_exit_2_and_writes_nothing(
    flow: Run, workspace: Workspace
) -> None:
    bad = workspace.root / "bad.yaml"
    bad.write_text(
        "version: 1\nname: bad\nsteps:\n  - id: a\n    task: {title: A}\n    needs: [b]\n"
        "    when: 'steps.a.nope'\n"
    )
    code, out, err = flow("workflow", "create", str(bad))
    assert code == 2 and out == ""
    assert "invalid workflow (2 errors)" in err
    assert "bad.yaml:6: steps[0].needs[0]: unknown step id 'b'" in err
    assert not (workspace.state_dir / "workflows" / "bad.yaml").exists()


def test_create_list_show(flow: Run) -> None:
    code, out, _ = flow("workflow", "create", str(EXAMPLES / "implement-and-fix.yaml"))
    assert code == 0 and "Registered workflow implement-and-fix" in out
    code, out, _ = flow("workflow", "list", "--json")
    assert json.loads(out)[0]["name"] == "implement-and-fix" and json.loads(out)[0]["valid"]
    code, out, _ = flow("workflow", "list", "-q")
    assert out.split() == ["implement-and-fix"]
    code, out, _ = flow("workflow", "show", "implement-and-fix")
    assert 'until steps.fix.tests == "passed" (at most 3 rounds)' in out
    code, out, _ = flow("workflow", "show", "implement-and-fix", "--json")
    assert json.loads(out)["steps"][1]["loop"]["max"] == 3
    code, _, err = flow("workflow", "show", "nope")
    assert code == 2 and "no workflow named 'nope'" in err


def test_execute_waits_at_the_gate_then_approve_and_resume_finish(flow: Run) -> None:
    flow("workflow", "create", str(EXAMPLES / "implement-and-fix.yaml"))
    install(["fail", "pass", "pass"])
    code, out, err = flow(
        "workflow", "execute", "implement-and-fix", "--input", "feature=login", "--json"
    )
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "waiting"
    assert "step implement: task 1 created" in err  # live progress on stderr
    assert "loop fix_loop done" in err
    code, out, _ = flow("workflow", "status", "1")
    assert "Run 1 of implement-and-fix: waiting" in out
    code, out, _ = flow("workflow", "approve", "1", "review")
    assert code == 0 and "Approved task" in out
    code, out, err = flow("workflow", "resume", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "done"
    code, out, _ = flow("workflow", "list", "--runs", "--json")
    assert [item["status"] for item in json.loads(out)] == ["done"]
    code, out, _ = flow("workflow", "list", "--runs")
    assert "implement-and-fix" in out
    code, _, err = flow("workflow", "resume", "1")
    assert code == 2 and "nothing to resume" in err


def test_a_failed_run_exits_1_and_cancel_of_a_waiting_run(flow: Run, workspace: Workspace) -> None:
    path = workspace.root / "strict.yaml"
    path.write_text("version: 1\nname: strict\nsteps:\n  - id: a\n    task: {title: A}\n")
    flow("workflow", "create", str(path))
    install(["fail"])
    code, out, _ = flow("workflow", "execute", "strict")
    assert code == 1 and "Run 1 of strict: failed" in out
    flow("workflow", "create", str(EXAMPLES / "gated-deploy.yaml"))
    code, out, _ = flow("workflow", "execute", "gated-deploy", "--json")
    assert json.loads(out)["status"] == "waiting"
    code, out, _ = flow("workflow", "cancel", "2", "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"


def test_suggest_produces_yaml_that_create_accepts(flow: Run, workspace: Workspace) -> None:
    code, out, err = flow("workflow", "suggest")
    assert code == 0, err
    path = workspace.root / "suggested.yaml"
    path.write_text(out)
    code, _, err = flow("workflow", "create", str(path))
    assert code == 0, err
    code, out, _ = flow("workflow", "suggest", "--json")
    assert json.loads(out)["reasons"]


def test_the_shipped_examples_are_listed_and_registered_by_name(flow: Run) -> None:
    code, out, _ = flow("workflow", "examples", "-q")
    assert code == 0 and out.split() == ["branch-on-tests", "gated-deploy", "implement-and-fix"]
    code, out, _ = flow("workflow", "examples", "--json")
    listed = {item["name"]: item for item in json.loads(out)}
    assert listed["implement-and-fix"]["steps"] == 3 and listed["gated-deploy"]["description"]
    code, out, _ = flow("workflow", "create", "--example", "gated-deploy")
    assert code == 0 and "Registered workflow gated-deploy" in out
    code, _, err = flow("workflow", "create", "--example", "implement-and-fixx")
    assert code == 2 and "did you mean `implement-and-fix`?" in err
    code, _, err = flow("workflow", "create")
    assert code == 2 and "give a workflow FILE or --example NAME" in err
    code, _, err = flow(
        "workflow", "create", str(EXAMPLES / "gated-deploy.yaml"), "--example", "gated-deploy"
    )
    assert code == 2 and "one of the two" in err


def test_an_example_runs_with_an_ai_that_has_no_capabilities(
    aictl: Run, workspace: Workspace
) -> None:
    """A user's plain `aictl ai register NAME --connector ...` is enough for every example:
    none requires a capability no command gave the AI."""
    (workspace.state_dir / "policy.yaml").write_text(TEST_POLICY)
    install(["pass"])
    register_ai(workspace.db_path, capabilities=())
    aictl("workflow", "create", "--example", "implement-and-fix")
    code, out, err = aictl(
        "workflow", "execute", "implement-and-fix", "--input", "feature=login", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "waiting"  # at the review gate: both steps before it ran
    code, out, _ = aictl("workflow", "approve", "1", "review")
    code, out, err = aictl("workflow", "resume", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "done"
