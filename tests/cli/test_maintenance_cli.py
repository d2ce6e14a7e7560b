"""`aictl backup`, `restore` and `prune` through the CLI: exit codes, JSON, and that a refused
restore leaves the state as it was."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from aictl.services.executor import runs_dir
from aictl.workspace import Workspace
from tests.cli.conftest import Result

Aictl = Callable[..., Result]


def ok(aictl: Aictl, *args: str) -> str:
    code, out, err = aictl(*args)
    assert code == 0, err
    return out


def titles(aictl: Aictl) -> list[str]:
    return [task["title"] for task in json.loads(ok(aictl, "task", "list", "--json"))]


def test_backup_then_restore_round_trip(aictl: Aictl, tmp_path: Path) -> None:
    ok(aictl, "task", "create", "kept")
    made = json.loads(ok(aictl, "backup", str(tmp_path / "b.db"), "--json"))
    assert made["verified"] is True
    assert made["tasks"] == 1
    code, _, err = aictl("backup", str(tmp_path / "b.db"))
    assert code == 2
    assert "exists" in err
    ok(aictl, "task", "create", "lost by the restore")
    done = json.loads(ok(aictl, "restore", str(tmp_path / "b.db"), "--json"))
    assert Path(done["previous_saved_to"]).is_file()
    assert titles(aictl) == ["kept"]
    assert ok(aictl, "backup", str(tmp_path / "c.db"), "-q").strip() == str(tmp_path / "c.db")
    saved = Path(ok(aictl, "restore", str(tmp_path / "c.db"), "-q").strip())
    assert saved.parent.name == "backups"
    assert saved.is_file()
    ok(aictl, "audit", "verify")


def test_a_tampered_backup_is_refused_exit_1(aictl: Aictl, tmp_path: Path) -> None:
    ok(aictl, "task", "create", "genuine")
    ok(aictl, "backup", str(tmp_path / "b.db"))
    connection = sqlite3.connect(tmp_path / "b.db")
    connection.execute("UPDATE tasks SET priority = 99")
    connection.commit()
    connection.close()
    ok(aictl, "task", "create", "second")
    code, _, err = aictl("restore", str(tmp_path / "b.db"))
    assert code == 1
    assert "does not verify: task 1 has priority 99" in err
    assert titles(aictl) == ["genuine", "second"]


def test_prune_reports_what_it_removes(aictl: Aictl, workspace: Workspace) -> None:
    for title in ("cancelled first", "queued", "cancelled last"):
        ok(aictl, "task", "create", title, "-q")
    ok(aictl, "task", "cancel", "1")
    ok(aictl, "task", "cancel", "3")
    for task_id in (1, 2, 3):
        (runs_dir(workspace) / str(task_id) / "1").mkdir(parents=True)
    out = ok(aictl, "prune", "--json")
    assert json.loads(out)["removed"] == []  # no retention: nothing goes
    (workspace.state_dir / "policy.yaml").write_text(
        "version: 1\ndefault: allow\nsettings:\n  retention:\n    runs: 1\n", encoding="utf-8"
    )
    plan = json.loads(ok(aictl, "prune", "--dry-run", "--json"))
    assert [row["task_id"] for row in plan["removed"]] == [1]
    assert {row["task_id"]: row["reason"] for row in plan["kept"]}[2] == "task is queued"
    assert (runs_dir(workspace) / "1").exists()
    assert ok(aictl, "prune", "-q").split() == ["1"]
    assert not (runs_dir(workspace) / "1").exists()
    assert (runs_dir(workspace) / "2").exists()
    assert (runs_dir(workspace) / "3").exists()
