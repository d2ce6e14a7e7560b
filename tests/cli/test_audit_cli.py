"""`aictl audit` through the CLI: listing, verification exit codes, export, checkpoint."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aictl.workspace import Workspace, initialise
from tests.cli.conftest import Result
from tests.gitrepo import git_init


@pytest.fixture
def aictl(aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """The runner, with a short history: two tasks, one of them claimed and completed."""
    monkeypatch.setenv("AICTL_ACTOR", "tester")
    aictl("task", "create", "a", "--path", "src/**")
    aictl("task", "create", "b", "--depends-on", "1")
    token = aictl("task", "claim", "--as", "w1", "-q")[1].strip()
    aictl("task", "start", "1", "--lease", token)
    aictl("task", "complete", "1", "--lease", token)
    return aictl


def corrupt(workspace: Workspace, sql: str) -> None:
    with sqlite3.connect(workspace.db_path) as connection:
        connection.execute("DROP TRIGGER audit_log_no_update")
        connection.execute("DROP TRIGGER audit_log_no_delete")
        connection.execute(sql)
    connection.close()


def test_log_forms_and_filters(aictl: Callable[..., Result]) -> None:
    code, out, _ = aictl("audit", "log", "--kind", "task", "--json")
    events = json.loads(out)
    assert code == 0
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("task.created", "tester"), ("task.created", "tester"), ("task.claimed", "w1"),
        ("task.started", "w1"), ("task.completed", "w1"),
    ]  # fmt: skip
    assert set(events[0]) == {"seq", "at", "kind", "actor", "task_id", "data", "prev_hash", "hash"}
    only_2 = json.loads(aictl("audit", "log", "--task", "2", "--json")[1])
    assert [e["kind"] for e in only_2] == ["task.created", "policy.decision"]
    everything = json.loads(aictl("audit", "log", "--json")[1])
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    claims = json.loads(aictl("audit", "log", "--kind", "task.claimed", "--json")[1])
    assert len(claims) == 1 and claims[0]["data"]["epoch"] == 1
    assert json.loads(aictl("audit", "log", "--since", "1h", "--json")[1]) == everything
    assert json.loads(aictl("audit", "log", "--since", "2999-01-01T00:00:00Z", "--json")[1]) == []
    code, out, _ = aictl("audit", "log")
    assert code == 0 and "task.completed" in out and "SEQ" in out
    code, _, err = aictl("audit", "log", "--since", "yesterday-ish")
    assert code == 2 and "invalid --since 'yesterday-ish'" in err


def rows(aictl: Callable[..., Result]) -> list[dict[str, object]]:
    return list(json.loads(aictl("audit", "log", "--json")[1]))


def test_verify_exit_codes(aictl: Callable[..., Result], workspace: Workspace) -> None:
    count = len(rows(aictl))
    code, out, _ = aictl("audit", "verify")
    assert code == 0 and out.startswith(f"audit log intact: {count} rows")
    assert json.loads(aictl("audit", "verify", "--json")[1])["rows"] == count
    claimed = next(row["seq"] for row in rows(aictl) if row["kind"] == "task.claimed")
    corrupt(workspace, f"UPDATE audit_log SET actor = 'mallory' WHERE seq = {claimed}")
    code, _, err = aictl("audit", "verify")
    assert code == 1
    assert f"Error: audit log does not verify: row {claimed} (task.claimed) was changed" in err


def test_checkpoint_then_truncation(
    aictl: Callable[..., Result], workspace: Workspace, tmp_path: Path
) -> None:
    count = len(rows(aictl))
    mark = tmp_path / "mark.json"
    code, out, _ = aictl("audit", "checkpoint", "-o", str(mark), "--json")
    assert code == 0 and json.loads(out)["seq"] == count
    assert json.loads(mark.read_text())["rows"] == count
    assert aictl("audit", "checkpoint")[0] == 0  # the default file, used by verify from now on
    corrupt(workspace, f"DELETE FROM audit_log WHERE seq = {count}")
    code, _, err = aictl("audit", "verify", "--checkpoint", str(mark))
    assert code == 1 and "the tail was truncated" in err
    code, _, err = aictl("audit", "verify")
    assert code == 1 and "the tail was truncated" in err
    mark.write_text("not json")
    code, _, err = aictl("audit", "verify", "--checkpoint", str(mark))
    assert code == 2 and "is not an audit checkpoint" in err


def test_export_jsonl(aictl: Callable[..., Result], tmp_path: Path) -> None:
    count = len(rows(aictl))
    code, out, err = aictl("audit", "export")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == count and f"exported {count} rows" in err
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines))
    target = tmp_path / "audit.jsonl"
    assert aictl("audit", "export", "-o", str(target))[0] == 0
    assert target.read_text().splitlines() == out.splitlines()
    assert aictl("audit", "export", "--format", "csv")[0] == 2


def test_since_with_an_offset_is_compared_in_utc(aictl: Callable[..., Result]) -> None:
    everything = rows(aictl)
    plus_two = timezone(timedelta(hours=2))
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).astimezone(plus_two)
    since = an_hour_ago.isoformat(timespec="seconds")  # e.g. 2026-11-21T12:00:00+02:00
    assert json.loads(aictl("audit", "log", "--since", since, "--json")[1]) == everything
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).astimezone(plus_two)
    since = in_an_hour.isoformat(timespec="seconds")
    assert json.loads(aictl("audit", "log", "--since", since, "--json")[1]) == []


def test_verify_json_reports_a_broken_chain_and_still_exits_1(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    ok = json.loads(aictl("audit", "verify", "--json")[1])
    assert ok["ok"] is True and ok["bad_seq"] is None and ok["problem"] is None
    corrupt(workspace, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    code, out, err = aictl("audit", "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert set(report) == set(ok)
    assert (report["ok"], report["rows"], report["bad_seq"]) == (False, 1, 2)
    assert "row 2 (policy.decision) was changed" in report["problem"]
    assert f"Error: audit log does not verify: {report['problem']}" in err


def test_an_empty_log_checkpoint_holds_after_later_writes(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    """The checkpoint `aictl init` users take first, before anything happened."""
    empty = git_init(workspace.root / "empty")
    fresh, _ = initialise(empty)
    db = ["--db", str(fresh.db_path)]
    assert aictl(*db, "audit", "checkpoint", "--json")[0] == 0
    assert aictl(*db, "task", "create", "later")[0] == 0
    code, out, err = aictl(*db, "audit", "verify")
    assert code == 0, err
    assert out.startswith("audit log intact")


@pytest.mark.parametrize(
    ("command", "target"),
    [("export", "/nonexistent/dir/a.jsonl"), ("checkpoint", "/nonexistent/c.json")],
)
def test_output_files_that_cannot_be_written_are_named(
    aictl: Callable[..., Result], command: str, target: str
) -> None:
    code, out, err = aictl("audit", command, "-o", target)
    assert (code, out) == (2, "")
    assert f"Error: cannot write {target}: No such file or directory" in err
