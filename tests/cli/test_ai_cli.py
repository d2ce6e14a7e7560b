"""`aictl ai` and `aictl route explain` through the CLI: exit codes, JSON, and audit events."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.workspace import Workspace
from tests.cli.conftest import Result
from tests.real_claude import claude_binary

Aictl = Callable[..., Result]


def ok(aictl: Aictl, *args: str) -> str:
    code, out, err = aictl(*args)
    assert code == 0, err
    return out


def register(aictl: Aictl, ai_id: str, *extra: str) -> None:
    ok(aictl, "ai", "register", ai_id, "--connector", "claude-code", "--no-check", *extra)


def audit_kinds(aictl: Aictl) -> list[str]:
    entries = json.loads(ok(aictl, "audit", "log", "--json"))
    return [entry["kind"] for entry in entries if entry["kind"].startswith("ai.")]


@pytest.fixture
def no_claude(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No `claude` anywhere: a configured path that does not exist and an empty PATH."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    missing = tmp_path / "nowhere" / "claude"
    monkeypatch.setenv("AICTL_CLAUDE_BIN", str(missing))
    monkeypatch.setenv("PATH", str(empty))
    return missing


# ----------------------------------------------------------------------------- registry


def test_register_list_show_remove_with_audit_events(aictl: Aictl) -> None:
    register(
        aictl,
        "claude-1",
        "--label",
        "team=web",
        "--capability",
        "python",
        "--capability",
        "git",
        "--max-concurrency",
        "2",
        "--model",
        "sonnet",
    )
    register(aictl, "claude-0")
    listed = json.loads(ok(aictl, "ai", "list", "--json"))
    assert [item["id"] for item in listed] == ["claude-0", "claude-1"]
    first = listed[1]
    assert first["labels"] == {"team": "web"}
    assert first["capabilities"] == ["git", "python"]
    assert (first["max_concurrency"], first["model"], first["status"]) == (2, "sonnet", "available")
    assert first["health"]["consecutive_failures"] == 0
    assert ok(aictl, "ai", "list", "-q").split() == ["claude-0", "claude-1"]
    table = ok(aictl, "ai", "list")
    assert "claude-1" in table and "team=web" in table and "CONNECTOR" in table
    assert json.loads(ok(aictl, "ai", "show", "claude-1", "--json")) == first
    assert "sonnet" in ok(aictl, "ai", "show", "claude-1")
    assert "Removed AI claude-0" in ok(aictl, "ai", "remove", "claude-0")
    assert ok(aictl, "ai", "list", "-q").split() == ["claude-1"]
    assert audit_kinds(aictl) == ["ai.registered", "ai.registered", "ai.removed"]
    code, _, err = aictl("ai", "show", "claude-0")
    assert code == 2 and "no AI 'claude-0'" in err


def test_duplicate_id_exits_2_unless_replace(aictl: Aictl) -> None:
    register(aictl, "claude-1", "--max-concurrency", "1")
    code, _, err = aictl("ai", "register", "claude-1", "--connector", "claude-code", "--no-check")
    assert code == 2 and "already registered" in err and "--replace" in err
    register(aictl, "claude-1", "--max-concurrency", "3", "--replace")
    assert json.loads(ok(aictl, "ai", "show", "claude-1", "--json"))["max_concurrency"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad id!", "--connector", "claude-code"], "invalid AI id"),
        (["a", "--connector", "claude-code", "--max-concurrency", "0"], "--max-concurrency 0"),
        (["a", "--connector", "claude-code", "--label", "nolabel"], "invalid label"),
    ],
)
def test_bad_registration_input_exits_2(aictl: Aictl, args: list[str], message: str) -> None:
    code, _, err = aictl("ai", "register", *args, "--no-check")
    assert code == 2 and message in err
    assert ok(aictl, "ai", "list", "-q") == ""


def test_unknown_connector_lists_the_valid_ones(aictl: Aictl) -> None:
    code, _, err = aictl("ai", "register", "x", "--connector", "gpt-cli", "--no-check")
    assert code == 2
    assert "unknown connector 'gpt-cli'" in err
    assert "known connectors: claude-code" in err


def test_missing_binary_is_a_clear_error(aictl: Aictl, no_claude: Path) -> None:
    code, _, err = aictl("ai", "register", "claude-1", "--connector", "claude-code")
    assert code == 2
    # a configured path that does not exist is reported as such, not silently bypassed
    assert "the Claude Code CLI (claude) was not found" in err and str(no_claude) in err
    assert "pip install claude-agent-sdk" in err
    assert ok(aictl, "ai", "list", "-q") == ""
    # --no-check registers anyway, with no version recorded
    register(aictl, "claude-1")
    assert json.loads(ok(aictl, "ai", "show", "claude-1", "--json"))["health"]["version"] is None


def test_a_binary_that_fails_its_version_call_is_refused(
    aictl: Aictl, no_claude: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "claude"
    broken.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("AICTL_CLAUDE_BIN", str(broken))
    code, _, err = aictl("ai", "register", "claude-1", "--connector", "claude-code")
    assert code == 2 and "--version` failed (exit 3): cannot start" in err


def test_real_binary_is_found_and_its_version_recorded(
    aictl: Aictl, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_claude = claude_binary()
    monkeypatch.setenv("AICTL_CLAUDE_BIN", str(real_claude))
    out = ok(aictl, "ai", "register", "claude-1", "--connector", "claude-code", "--json")
    health = json.loads(out)["health"]
    assert health["binary"] == str(real_claude)
    assert re.fullmatch(r"\d+\.\d+\.\d+", health["version"]), health["version"]


# ----------------------------------------------------------------------------- label, status


def test_label_add_overwrite_and_remove(aictl: Aictl) -> None:
    register(aictl, "claude-1", "--label", "team=api", "--label", "gpu=yes")
    out = ok(aictl, "ai", "label", "claude-1", "team=web", "zone=eu", "gpu-", "--json")
    assert json.loads(out)["labels"] == {"team": "web", "zone": "eu"}
    assert "zone=eu" in ok(aictl, "ai", "label", "claude-1", "zone=eu")
    code, _, err = aictl("ai", "label", "claude-1", "=bad")
    assert code == 2 and "invalid label" in err
    assert audit_kinds(aictl) == ["ai.registered", "ai.labelled", "ai.labelled"]


def test_status_shows_and_sets_only_available_or_offline(aictl: Aictl) -> None:
    register(aictl, "claude-1")
    assert ok(aictl, "ai", "status", "claude-1", "-q").strip() == "available"
    assert "claude-1: offline" in ok(aictl, "ai", "status", "claude-1", "--set", "offline")
    assert ok(aictl, "ai", "list", "--status", "offline", "-q").split() == ["claude-1"]
    for status in ("busy", "quarantined"):
        code, _, err = aictl("ai", "status", "claude-1", "--set", status)
        assert code == 2 and "by hand" in err
    code, _, err = aictl("ai", "status", "claude-1", "--set", "asleep")
    assert code == 2 and "unknown AI status" in err
    assert ok(aictl, "ai", "status", "claude-1", "-q").strip() == "offline"
    assert audit_kinds(aictl) == ["ai.registered", "ai.status"]


def test_setting_available_ends_a_quarantine_and_clears_counters(
    aictl: Aictl, workspace: Workspace
) -> None:
    from aictl.clock import SystemClock
    from aictl.domain.ais import AIStatus
    from aictl.store.ais import AIStore
    from aictl.store.db import Database

    register(aictl, "claude-1")
    db = Database(workspace.db_path)
    try:
        store = AIStore(db, SystemClock(), actor="aictl")
        health = {**store.get("claude-1").health, "consecutive_failures": 3, "last_error": "500"}
        store.set_status("claude-1", AIStatus.QUARANTINED, health=health)
    finally:
        db.close()
    shown = json.loads(ok(aictl, "ai", "status", "claude-1", "--json"))
    assert shown["status"] == "quarantined" and shown["health"]["consecutive_failures"] == 3
    after = json.loads(ok(aictl, "ai", "status", "claude-1", "--set", "available", "--json"))
    assert after["status"] == "available"
    assert after["health"]["consecutive_failures"] == 0
    assert after["health"]["last_error"] is None


def test_remove_is_refused_while_holding_a_lease(aictl: Aictl) -> None:
    register(aictl, "claude-1")
    ok(aictl, "task", "create", "one")
    ok(aictl, "task", "create", "two")
    ok(aictl, "task", "claim", "2", "--as", "claude-1")
    code, _, err = aictl("ai", "remove", "claude-1")
    assert code == 4 and "holds the lease of task 2" in err
    assert ok(aictl, "ai", "list", "-q").split() == ["claude-1"]
    ok(aictl, "task", "cancel", "2")
    ok(aictl, "ai", "remove", "claude-1")
    assert audit_kinds(aictl) == ["ai.registered", "ai.removed"]


# ----------------------------------------------------------------------------- route explain


def test_route_explain_json_gives_every_ai_its_reasons(aictl: Aictl) -> None:
    register(aictl, "api-1", "--capability", "python", "--label", "team=api")
    register(aictl, "web-1", "--capability", "python", "--label", "team=web")
    register(
        aictl, "web-2", "--capability", "python", "--label", "team=web", "--max-concurrency", "2"
    )
    register(aictl, "web-3", "--label", "team=web")
    ok(aictl, "ai", "status", "web-1", "--set", "offline")
    ok(aictl, "task", "create", "busy work")
    ok(aictl, "task", "claim", "1", "--as", "web-2")
    ok(aictl, "task", "create", "feature", "--requires", "python", "--label", "ai.team=web")
    result = json.loads(ok(aictl, "route", "explain", "2", "--json"))
    assert result["task_id"] == 2 and result["ai"] == "web-2"
    by_ai = {item["ai"]: item for item in result["candidates"]}
    assert list(by_ai) == ["api-1", "web-1", "web-2", "web-3"]
    assert by_ai["api-1"]["reasons"] == ["label team=web required, has team=api"]
    assert by_ai["web-1"]["reasons"] == ["offline"]
    assert by_ai["web-2"]["load"] == 1 and by_ai["web-2"]["chosen"]
    assert by_ai["web-2"]["reasons"] == ["load 1/2", "chosen: the only eligible AI"]
    assert by_ai["web-3"]["reasons"] == ["missing capability python"]
    table = ok(aictl, "route", "explain", "2")
    assert table.startswith("Task 2 → web-2")
    assert "label team=web required, has team=api" in table
    code, _, err = aictl("route", "explain", "99")
    assert code == 2 and "no task 99" in err


def test_route_explain_with_no_eligible_ai(aictl: Aictl) -> None:
    ok(aictl, "task", "create", "x", "--label", "ai=ghost")
    assert json.loads(ok(aictl, "route", "explain", "1", "--json"))["ai"] is None
    register(aictl, "claude-1")
    out = ok(aictl, "route", "explain", "1")
    assert "no eligible AI" in out and "task is pinned to ghost" in out


# ----------------------------------------------------------------------------- policy validate


def test_validate_warns_about_unknown_ais_only_once_the_registry_has_one(
    aictl: Aictl, workspace: Workspace
) -> None:
    policies = workspace.root / ".ai" / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "ghost.yaml").write_text("version: 1\n")
    (workspace.root / ".ai" / "policy.yaml").write_text(
        "version: 1\nais:\n  claude-1: {max_turns: 3}\n  phantom: {max_turns: 3}\n"
    )
    report = json.loads(ok(aictl, "policy", "validate", "--json"))
    assert report["warnings"] == 0, report["issues"]
    register(aictl, "claude-1")
    report = json.loads(ok(aictl, "policy", "validate", "--json"))
    messages = [issue["message"] for issue in report["issues"]]
    assert any("per-AI file for unknown AI 'ghost'" in text for text in messages), messages
    assert any("settings for unknown AI 'phantom'" in text for text in messages), messages
    assert not any("'claude-1'" in text.split(";")[0] for text in messages)
    # explicit files are checked against the registry too
    report = json.loads(ok(aictl, "policy", "validate", str(policies / "ghost.yaml"), "--json"))
    assert report["warnings"] == 1


def test_edit_changes_labels_capabilities_concurrency_and_model(aictl: Aictl) -> None:
    register(aictl, "claude-1", "--capability", "python", "--label", "team=web")
    ok(aictl, "ai", "status", "claude-1", "--set", "offline")
    out = ok(
        aictl,
        *("ai", "edit", "claude-1", "--capability", "rust", "--remove-capability", "python"),
        *("--label", "gpu=yes", "--label", "team-", "--max-concurrency", "3"),
        *("--model", "sonnet", "--json"),
    )
    ai = json.loads(out)
    assert ai["capabilities"] == ["rust"]
    assert ai["labels"] == {"gpu": "yes"}
    assert ai["max_concurrency"] == 3
    assert ai["model"] == "sonnet"
    assert ai["status"] == "offline"  # an edit leaves the status alone
    edited = [
        e for e in json.loads(ok(aictl, "audit", "log", "--json")) if e["kind"] == "ai.edited"
    ]
    assert edited[0]["data"]["max_concurrency"] == 3
    assert ok(aictl, "audit", "verify")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to change"),
        (("--max-concurrency", "0"), "must be 1 or more"),
        (("--capability", "bad cap"), "invalid capability"),
        (("--model", " "), "--model must not be empty"),
    ],
)
def test_edit_refuses_bad_values_and_changes_nothing(
    aictl: Aictl, args: tuple[str, ...], message: str
) -> None:
    register(aictl, "claude-1", "--capability", "python")
    before = ok(aictl, "ai", "show", "claude-1", "--json")
    code, _, err = aictl("ai", "edit", "claude-1", *args)
    assert code == 2
    assert message in err
    assert ok(aictl, "ai", "show", "claude-1", "--json") == before
    code, _, err = aictl("ai", "edit", "nobody", "--model", "x")
    assert code == 2
