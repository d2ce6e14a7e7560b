"""Skill scripts for a task's run, on a real SQLite file and real processes: a chain passes
output along, a script past its timeout is stopped and recorded, a command the policy forbids
is not run and its decision is recorded, the environment is scrubbed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.domain.tasks import Task
from aictl.services.ais import AIService
from aictl.services.skills import SkillService
from aictl.services.tasks import TaskService
from aictl.skills.registry import skills_root
from aictl.workspace import Workspace

PRINT_INPUT = (
    "import json, os, sys\n"
    "data = json.load(sys.stdin)\n"
    "previous = data['previous']['output'] if data['previous'] else 'nothing'\n"
    "print(f\"{data['skill']['name']} saw task {data['task']['id']} and got [{previous}]\")\n"
    "print('inputs', json.dumps(data['inputs'], sort_keys=True))\n"
    "print('secret', os.environ.get('SECRET_TOKEN', 'absent'), 'home', os.environ['HOME'])\n"
)


def add_skill(
    root: Path,
    name: str,
    *,
    requires: str = "",
    script: str | None = PRINT_INPUT,
    command: str | None = None,
    timeout: str = "20s",
    extra: str = "",
    scope: str = "",
) -> None:
    folder = skills_root(root) / scope / name / "1.0"
    folder.mkdir(parents=True)
    manifest = f"name: {name}\nversion: '1.0'\ndescription: the {name} skill\n{requires}{extra}"
    if script is not None or command is not None:
        manifest += f"script:\n  command: {command or json.dumps([sys.executable, 'run.py'])}\n"
        manifest += f"  timeout: {timeout}\n"
    (folder / "skill.yaml").write_text(manifest)
    (folder / "instructions.md").write_text(f"{name.upper()}-INSTRUCTIONS\n")
    if script is not None:
        (folder / "run.py").write_text(script)


@pytest.fixture
def skills(
    workspace: Workspace, service: TaskService, clock: ManualClock
) -> Iterator[SkillService]:
    ais = AIService(workspace, clock=clock, db=service.db)
    ais.register("claude-1", connector="claude-code", check=False)
    skill_service = SkillService(
        workspace, tasks=service, environ={"PATH": "/usr/bin:/bin", "SECRET_TOKEN": "s3cret"}
    )
    yield skill_service


def claimed(service: TaskService, *skill_names: str, labels: tuple[str, ...] = ()) -> Task:
    task = service.create("Use skills", skills=list(skill_names), labels=list(labels))
    return service.claim("claude-1", task_id=task.id).task


def test_a_chain_of_two_skills_passes_output_to_the_next(
    workspace: Workspace, service: TaskService, skills: SkillService, tmp_path: Path
) -> None:
    add_skill(workspace.root, "first")
    add_skill(
        workspace.root,
        "second",
        requires="requires:\n  first: '>=1'\n",
        extra="inputs:\n  - name: target\n    default: dev\n",
    )
    for name in ("first", "second"):
        skills.enable(name)
    task = claimed(service, "second", labels=("second.target=prod",))
    prepared = skills.prepare_run(task, "claude-1", tmp_path / "run")
    scripts = prepared.evidence["scripts"]
    assert [(run["skill"], run["status"]) for run in scripts] == [("first", "ok"), ("second", "ok")]
    first_line = f"first saw task {task.id} and got [nothing]"
    assert scripts[0]["output"].splitlines()[0] == first_line
    assert (
        scripts[1]["output"]
        .splitlines()[0]
        .startswith(f"second saw task {task.id} and got [{first_line}")
    )
    assert 'inputs {"target": "prod"}' in scripts[1]["output"]
    assert (
        "secret absent home " + str(tmp_path / "run" / "skills" / "first") in scripts[0]["output"]
    )
    assert prepared.evidence["skills"] == [
        {"name": "first", "version": "1.0", "scope": ""},
        {"name": "second", "version": "1.0", "scope": ""},
    ]
    context = prepared.context or ""
    assert "FIRST-INSTRUCTIONS" in context and "SECOND-INSTRUCTIONS" in context
    assert f"Output of the second script:\n\nsecond saw task {task.id}" in context
    decisions = service.store.decisions.records(task_id=task.id, action="tool")
    assert [record.effect for record in decisions] == ["allow", "allow"]
    assert decisions[0].subject == "claude-1" and decisions[0].lease_epoch == task.lease_epoch


def test_a_script_past_its_timeout_is_stopped_and_recorded(
    workspace: Workspace, service: TaskService, skills: SkillService, tmp_path: Path
) -> None:
    add_skill(workspace.root, "slow", script="import time\ntime.sleep(60)\n", timeout="300ms")
    add_skill(workspace.root, "after", requires="requires:\n  slow: '*'\n")
    skills.enable("slow")
    skills.enable("after")
    task = claimed(service, "after")
    prepared = skills.prepare_run(task, "claude-1", tmp_path / "run")
    slow, after = prepared.evidence["scripts"]
    assert slow["status"] == "timed_out"
    assert slow["reason"] == "stopped after its timeout of 0.3s"
    assert after["status"] == "not_run" and after["reason"] == "slow did not succeed"
    assert "Output of the slow script" not in (prepared.context or "")


def test_a_script_the_policy_forbids_is_not_run_and_is_recorded(
    workspace: Workspace, service: TaskService, skills: SkillService, tmp_path: Path
) -> None:
    (workspace.state_dir / "policy.yaml").write_text(
        "version: 1\nrules:\n  - id: no-marker\n    actions: [tool]\n"
        '    when: tool.name == "Bash" && get(tool.input, "command", "").contains("marker")\n'
        "    effect: deny\n    reason: no marker files\n"
    )
    marker = workspace.root / "marker"
    command = json.dumps(["/bin/sh", "-c", f"echo ran > {marker}"])
    add_skill(workspace.root, "forbidden", script=None, command=command)
    skills.enable("forbidden")
    task = claimed(service, "forbidden")
    prepared = skills.prepare_run(task, "claude-1", tmp_path / "run")
    [run] = prepared.evidence["scripts"]
    assert run["status"] == "denied" and run["decision"] == "deny"
    assert "no marker files" in run["reason"]
    assert not marker.exists()
    [record] = service.store.decisions.records(task_id=task.id, action="tool")
    assert record.effect == "deny" and record.rules[0]["id"] == "no-marker"
    assert record.input["tool"]["input"]["command"].endswith(f"'echo ran > {marker}'")


def test_a_task_without_skills_gets_nothing(
    service: TaskService, skills: SkillService, tmp_path: Path
) -> None:
    task = claimed(service)
    prepared = skills.prepare_run(task, "claude-1", tmp_path / "run")
    assert prepared.context is None
    assert prepared.evidence == {"skills": [], "scripts": [], "problems": []}


def test_a_required_input_without_a_value_keeps_the_script_from_running(
    workspace: Workspace, service: TaskService, skills: SkillService, tmp_path: Path
) -> None:
    add_skill(workspace.root, "needs", extra="inputs:\n  - name: target\n    required: true\n")
    skills.enable("needs")
    task = claimed(service, "needs")
    [run] = skills.prepare_run(task, "claude-1", tmp_path / "run").evidence["scripts"]
    assert run["status"] == "not_run"
    assert run["reason"] == "missing input target (set it with a task label needs.target=VALUE)"


def test_a_failing_or_missing_program_is_recorded(
    workspace: Workspace, service: TaskService, skills: SkillService, tmp_path: Path
) -> None:
    add_skill(workspace.root, "fails", script="import sys\nprint('bad')\nsys.exit(4)\n")
    add_skill(workspace.root, "absent", script=None, command="[/nonexistent/program]")
    skills.enable("fails")
    skills.enable("absent")
    task = claimed(service, "fails")
    [run] = skills.prepare_run(task, "claude-1", tmp_path / "a").evidence["scripts"]
    assert (run["status"], run["exit_code"], run["output"]) == ("failed", 4, "bad")
    task2 = claimed(service, "absent")
    [run] = skills.prepare_run(task2, "claude-1", tmp_path / "b").evidence["scripts"]
    assert run["status"] == "error" and "cannot start /nonexistent/program" in run["reason"]
