"""Agents as peers against a real database: MCP sessions, the PreToolUse hook, prime, setup."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.errors import InvalidInput, LeaseLost, NothingReady
from aictl.hook import pre_tool_use_main
from aictl.services import claude_setup
from aictl.services.peers import PeerSession, pre_tool_use, prime
from aictl.services.tasks import TaskService
from aictl.store.db import connect
from aictl.workspace import Workspace


@pytest.fixture
def sessions(workspace: Workspace, clock: ManualClock) -> Iterator[list[PeerSession]]:
    def make(agent: str) -> PeerSession:
        service = TaskService(workspace, clock=clock, db=connect(workspace.database, handoff=True))
        return PeerSession(workspace, agent, ttl="30s", service=service)

    opened = [make("a1"), make("b2")]
    yield opened
    for session in opened:
        session.close()


def test_a_session_claims_starts_and_completes_without_seeing_a_token(
    service: TaskService, sessions: list[PeerSession]
) -> None:
    a1 = sessions[0]
    task = service.create("api", paths=["src/api/**"])
    claimed = a1.claim()
    assert claimed["id"] == task.id and claimed["status"] == "running"
    assert not [value for value in claimed.values() if isinstance(value, str) and ":" in value]
    done = a1.complete(task.id, "shipped", {"files": ["src/api/a.py"]})
    assert done["status"] == "done" and service.get(task.id).result == "shipped"
    assert a1.leases == {}


def test_two_sessions_never_get_the_same_task(
    service: TaskService, sessions: list[PeerSession]
) -> None:
    a1, b2 = sessions
    service.create("one", paths=["a/**"])
    assert a1.claim()["id"] == 1
    with pytest.raises(NothingReady):
        b2.claim()
    with pytest.raises(LeaseLost, match="b2 holds no lease on task 1"):
        b2.complete(1, "stolen")
    assert service.get(1).status == "running" and service.get(1).lease_holder == "a1"


def test_heartbeats_keep_the_lease_and_a_dead_session_loses_it(
    service: TaskService, sessions: list[PeerSession], clock: ManualClock
) -> None:
    a1, b2 = sessions
    service.create("one", paths=["a/**"])
    a1.claim()
    for _ in range(5):  # the session lives: a beat every third of the TTL
        clock.advance(timedelta(seconds=10))
        assert a1.heartbeat() == []
    assert service.get(1).lease_holder == "a1"
    clock.advance(timedelta(seconds=31))  # the session died: no beat for longer than the TTL
    assert b2.claim()["id"] == 1
    assert a1.heartbeat() == [1] and a1.leases == {}
    with pytest.raises(LeaseLost, match="holds no lease"):
        a1.complete(1, "late")
    b2.complete(1, "finished")
    completed = service.db.connection.execute(
        "SELECT count(*) FROM audit_log WHERE kind = 'task.completed' AND task_id = 1"
    ).fetchone()[0]
    assert completed == 1


def test_create_check_show_and_ready(service: TaskService, sessions: list[PeerSession]) -> None:
    a1, b2 = sessions
    created = a1.create("api", paths=["src/api/**"], priority=5)
    a1.create("after", depends_on=[created["id"]])
    assert [task["id"] for task in a1.ready()["ready"]] == [1]
    a1.claim(1)
    conflicts = b2.check_paths(["src/**"])["conflicts"]
    assert conflicts == [{"glob": "src/**", "task_id": 1, "held": "src/api/**", "holder": "a1"}]
    assert a1.check_paths(["src/**"]) == {"conflicts": []}
    assert b2.show(1)["holder"] == "a1" and a1.ready()["held"][0]["id"] == 1
    with pytest.raises(InvalidInput):
        a1.create("bad", paths=["../outside"])


def event(tool: str, **tool_input: str) -> dict[str, object]:
    return {"hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": tool_input}


def decisions(service: TaskService) -> list[tuple[str, str]]:
    rows = service.db.connection.execute(
        "SELECT effect, subject FROM decisions WHERE action = 'tool' ORDER BY at, rowid"
    )
    return [(row[0], row[1]) for row in rows]


def test_the_hook_allows_own_paths_denies_others_and_records_each(
    workspace: Workspace, service: TaskService, sessions: list[PeerSession], clock: ManualClock
) -> None:
    a1, b2 = sessions
    service.create("api", paths=["src/api/**"])
    service.create("web", paths=["src/web/**"])
    a1.claim(1)
    b2.claim(2)
    root = str(workspace.root)
    mine = pre_tool_use(workspace, "a1", event("Write", file_path=f"{root}/src/api/a.py"), clock)
    theirs = pre_tool_use(workspace, "a1", event("Edit", file_path="src/web/a.ts"), clock)
    nowhere = pre_tool_use(workspace, "c3", event("Write", file_path="free.txt"), clock)
    other_tool = pre_tool_use(workspace, "a1", event("Read", file_path="x"), clock)
    assert mine.decision == "allow"
    assert theirs.decision == "deny" and "task 2" in theirs.reason and "b2" in theirs.reason
    assert nowhere.decision == "deny" and "c3 holds no task" in nowhere.reason
    assert other_tool.decision is None
    assert decisions(service) == [("allow", "a1"), ("deny", "a1"), ("deny", "c3")]
    clock.advance(timedelta(seconds=31))  # both sessions died: their leases no longer count
    after = pre_tool_use(workspace, "a1", event("Write", file_path="src/api/a.py"), clock)
    assert after.decision == "deny" and "a1 holds no task" in after.reason


def test_bash_is_decided_by_the_policy_tool_rules(
    workspace: Workspace, service: TaskService
) -> None:
    policy = workspace.state_dir / "policy.yaml"
    policy.write_text(
        policy.read_text() + "\nrules:\n  - id: agents-never-push\n    actions: [tool]\n"
        '    when: tool.name == "Bash" && get(tool.input, "command", "").contains("git push")\n'
        "    effect: deny\n    reason: pushing is for people\n"
    )
    denied = pre_tool_use(workspace, "a1", event("Bash", command="git push origin main"))
    allowed = pre_tool_use(workspace, "a1", event("Bash", command="ls"))
    assert allowed.decision == "allow"
    assert denied.decision == "deny" and "pushing is for people" in denied.reason


def test_the_hook_process_fails_closed_outside_a_repository(tmp_path: Path) -> None:
    out = io.StringIO()
    stdin = io.StringIO(json.dumps({**event("Write", file_path="x"), "cwd": str(tmp_path)}))
    assert pre_tool_use_main(stdin, out, {"AICTL_AGENT": "a1"}) == 0
    answer = json.loads(out.getvalue())["hookSpecificOutput"]
    assert (
        answer["permissionDecision"] == "deny"
        and "not inside an aictl" in answer["permissionDecisionReason"]
    )


HOOK_PROCESS = """
import sys
already = set(sys.modules)  # what the interpreter (and coverage, under make test) loaded first
from aictl.entry import main
try:
    main()
except SystemExit as done:
    assert done.code == 0, done.code
unneeded = ("typer", "mcp", "uuid", "secrets", "aictl.store.ais", "aictl.domain.audit_replay")
print([name for name in unneeded if name in sys.modules and name not in already])
"""


def test_the_hook_process_loads_nothing_it_does_not_need(workspace: Workspace) -> None:
    """The hook runs before every tool call: its process imports no CLI framework, no MCP and
    none of the modules only a claim, a completion or an approval needs (bench/peers.py)."""
    service = TaskService(workspace)
    try:
        service.create("api", paths=["src/api/**"])
        service.claim("a1", ttl="1h", task_id=1)
        root = str(workspace.root)
        done = subprocess.run(
            [sys.executable, "-c", HOOK_PROCESS, "hook", "pre-tool-use"],
            input=json.dumps({**event("Write", file_path=f"{root}/src/api/a.py"), "cwd": root}),
            env={**os.environ, "AICTL_AGENT": "a1"}, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == "[]\n"  # allowed (no denial printed), nothing unneeded loaded
        assert decisions(service) == [("allow", "a1")]
    finally:
        service.close()


def test_prime_is_short_even_with_many_ready_tasks(
    workspace: Workspace, service: TaskService
) -> None:
    for number in range(200):
        service.create(f"task number {number} " + "x" * 200, paths=[f"area{number}/**"])
    text = prime(workspace, "a1")
    assert "You are agent a1" in text and "task 1:" in text and "180 more" in text
    assert len(text) / 3 < 1500, "over 1,500 tokens even at 3 characters a token"


def test_setup_merges_with_what_the_user_has_and_is_idempotent(workspace: Workspace) -> None:
    root = workspace.root
    (root / ".claude").mkdir()
    user_settings = {
        "model": "opus",
        "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command",
                                                                 "command": "lint.sh"}]}]},
    }  # fmt: skip
    (root / ".claude" / "settings.json").write_text(json.dumps(user_settings))
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}}))
    dry = claude_setup.plan(root)
    assert all(change.changed for change in dry)
    assert '+            "command": "aictl hook pre-tool-use"' in dry[1].diff(root)
    assert json.loads((root / ".mcp.json").read_text()) == {
        "mcpServers": {"other": {"command": "x"}}
    }
    assert [change.name(root) for change in dry] == [
        ".mcp.json",
        ".claude/settings.json",
        ".claude/settings.local.json",
        ".git/info/exclude",
    ]
    assert len(claude_setup.apply(dry)) == 4
    settings = json.loads((root / ".claude" / "settings.json").read_text())
    mcp = json.loads((root / ".mcp.json").read_text())
    assert settings["model"] == "opus" and "aictl" in settings["enabledMcpjsonServers"]
    # `claude -p` honours an MCP allow rule only in the local file (tests/e2e prove it)
    local = json.loads((root / ".claude" / "settings.local.json").read_text())
    assert local == {"permissions": {"allow": ["mcp__aictl"]}} and "permissions" not in settings
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert ".claude/settings.json" in status and "settings.local.json" not in status
    commands = [h["command"] for e in settings["hooks"]["PreToolUse"] for h in e["hooks"]]
    assert commands == ["lint.sh", "aictl hook pre-tool-use"]
    assert settings["hooks"]["SessionStart"][0]["hooks"][0]["command"] == "aictl prime"
    assert mcp["mcpServers"]["other"] == {"command": "x"}
    assert mcp["mcpServers"]["aictl"] == {"command": "aictl", "args": ["mcp", "serve"]}
    assert not any(change.changed for change in claude_setup.plan(root))
    moved = claude_setup.plan(root, "/opt/bin/aictl")  # another command replaces ours
    apply = claude_setup.apply(moved)
    settings = json.loads((root / ".claude" / "settings.json").read_text())
    commands = [h["command"] for e in settings["hooks"]["PreToolUse"] for h in e["hooks"]]
    assert len(apply) == 2 and commands == ["lint.sh", "/opt/bin/aictl hook pre-tool-use"]


def test_setup_keeps_the_users_local_settings_and_skips_an_ignored_file(
    workspace: Workspace,
) -> None:
    root = workspace.root
    (root / ".claude").mkdir()
    (root / ".gitignore").write_text(".claude/settings.local.json\n")
    mine = {"permissions": {"allow": ["Bash(make test)"], "deny": ["Read(.env)"]}}
    (root / ".claude" / "settings.local.json").write_text(json.dumps(mine))
    changes = claude_setup.plan(root)
    assert [change.name(root) for change in changes][-1] == ".claude/settings.local.json"
    assert "info/exclude" not in "".join(change.diff(root) for change in changes)
    claude_setup.apply(changes)
    local = json.loads((root / ".claude" / "settings.local.json").read_text())
    assert local == {"permissions": {"allow": ["Bash(make test)", "mcp__aictl"],
                                     "deny": ["Read(.env)"]}}  # fmt: skip
    assert not any(change.changed for change in claude_setup.plan(root))


def test_setup_refuses_a_file_that_is_not_json(workspace: Workspace) -> None:
    (workspace.root / ".mcp.json").write_text("{not json")
    with pytest.raises(InvalidInput, match=r"\.mcp\.json: not valid JSON \(line 1"):
        claude_setup.plan(workspace.root)
