"""A state database that cannot be used is a clear error with its exit code, never "internal
error ... a bug": not SQLite, damaged, empty, another program's, from a newer aictl, full, on a
read-only mount; and numbers past SQLite's integers on the command line."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.store.db import latest_version
from aictl.workspace import Workspace
from tests.cli.conftest import Result

TOO_BIG = str(2**63)


def refused(result: Result, code: int, *words: str) -> str:
    exit_code, _, err = result
    assert exit_code == code, err
    assert "internal error" not in err and "Traceback" not in err
    assert err.startswith("Error: ")
    for word in words:
        assert word in err, err
    return err


def test_a_file_that_is_not_sqlite(aictl: Callable[..., Result], tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a database at all\n" * 10)
    err = refused(aictl("--db", str(bad), "task", "list"), 2, str(bad), "not an aictl")
    assert "Hint: " in err
    assert bad.read_text().startswith("hello")  # untouched


def test_a_damaged_database(aictl: Callable[..., Result], workspace: Workspace) -> None:
    assert aictl("task", "create", "one")[0] == 0
    damaged = workspace.root / "damaged.db"
    source = sqlite3.connect(workspace.db_path)
    source.execute(f"VACUUM INTO '{damaged}'")
    source.close()
    with damaged.open("r+b") as stream:
        stream.seek(4096)
        stream.write(b"\xff" * 8192)
    refused(aictl("--db", str(damaged), "task", "list"), 7, str(damaged), "damaged", "backup")


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as stream:
        stream.seek(offset)
        stream.write(data)


def checkpointed(aictl: Callable[..., Result], workspace: Workspace) -> Path:
    """The repository's own state database with some tasks, its log folded into the file."""
    for title in ("one", "two", "three"):
        assert aictl("task", "create", title * 500)[0] == 0
    connection = sqlite3.connect(workspace.db_path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return workspace.db_path


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (lambda db: overwrite(db, 0, b"X" * 16), "no longer SQLite"),  # header overwritten
        (lambda db: os.truncate(db, db.stat().st_size // 3), "malformed"),  # truncated
        (lambda db: overwrite(db, 4096 * 2, b"\0" * 4096 * 4), "malformed"),  # pages zeroed
        (lambda db: os.truncate(db, 0), "empty"),
    ],
    ids=["not-sqlite", "truncated", "malformed", "empty"],
)
def test_a_damaged_state_database_has_its_own_exit_code_and_a_way_back(
    aictl: Callable[..., Result],
    workspace: Workspace,
    damage: Callable[[Path], None],
    what: str,
) -> None:
    db = checkpointed(aictl, workspace)
    damage(db)
    err = refused(aictl("task", "list"), 7, str(db), "is damaged", what)
    assert "restore it from a backup" in err and "aictl doctor" in err
    code, out, _ = aictl("doctor", "--json")
    assert code == 1
    assert any("is damaged" in check["found"] for check in json.loads(out)["checks"])


def test_a_file_named_by_db_that_is_not_sqlite_stays_invalid_input(
    aictl: Callable[..., Result], tmp_path: Path
) -> None:
    wrong = tmp_path / "state.db"  # not in an .ai folder: the wrong file, not a damaged one
    wrong.write_bytes(b"X" * 8192)
    refused(aictl("--db", str(wrong), "task", "list"), 2, "not an aictl database")


def test_an_empty_file_is_not_made_a_database(aictl: Callable[..., Result], tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    refused(aictl("--db", str(empty), "task", "list"), 2, str(empty), "empty", "aictl init")
    assert empty.stat().st_size == 0


def test_another_programs_database_is_refused_untouched(
    aictl: Callable[..., Result], tmp_path: Path
) -> None:
    foreign = tmp_path / "app.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    connection.commit()
    connection.close()
    refused(aictl("--db", str(foreign), "task", "list"), 2, str(foreign), "customers")
    connection = sqlite3.connect(foreign)
    names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert names == {"customers"}


def test_a_database_from_a_newer_aictl_names_both_versions(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    connection = sqlite3.connect(workspace.db_path)
    connection.execute("PRAGMA user_version = 999")
    connection.close()
    refused(aictl("task", "list"), 1, "999", f"{latest_version()}", "newer")


@pytest.mark.parametrize(
    "args",
    [
        ["task", "show", TOO_BIG],
        ["task", "heartbeat", "1", "--lease", f"1:{TOO_BIG}:x"],
        ["task", "create", "x", "--depends-on", TOO_BIG],
        ["workflow", "status", TOO_BIG],
        ["audit", "log", "--task", TOO_BIG],
        ["task", "evidence", "1", "--attempt", TOO_BIG],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_numbers_past_sqlites_integers_are_invalid_input(
    aictl: Callable[..., Result], args: list[str]
) -> None:
    assert aictl("task", "create", "one")[0] == 0
    exit_code, _, err = aictl(*args)
    assert exit_code == 2, err
    assert "internal error" not in err
    assert TOO_BIG in err or "9223372036854775807" in err


def test_the_audit_chain_is_intact_after_every_refusal(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    assert aictl("task", "create", "one")[0] == 0
    aictl("task", "show", TOO_BIG)
    aictl("task", "heartbeat", "1", "--lease", f"1:{TOO_BIG}:x")
    exit_code, _, err = aictl("audit", "verify")
    assert exit_code == 0, err
    assert os.path.getsize(workspace.db_path) > 0


@pytest.mark.parametrize("damage", ["header", "pages"])
def test_the_way_back_works_restore_replaces_a_damaged_database(
    aictl: Callable[..., Result], workspace: Workspace, tmp_path: Path, damage: str
) -> None:
    db = checkpointed(aictl, workspace)
    backup = tmp_path / "backup.db"
    assert aictl("backup", str(backup))[0] == 0
    if damage == "header":
        overwrite(db, 0, b"X" * 16)
    else:
        overwrite(db, 4096 * 2, b"\0" * 4096 * 4)
    assert aictl("task", "list")[0] == 7
    code, out, err = aictl("restore", str(backup), "--json")
    assert code == 0, err
    kept = Path(json.loads(out)["previous_saved_to"])
    assert kept.stat().st_size > 0  # the damaged one is kept
    # Not SQLite any more: SQLite cannot copy it, so its file is moved aside as it was.
    assert kept.name.endswith("-damaged.db") == (damage == "header")
    code, out, _ = aictl("task", "list", "-q")
    assert (code, out) == (0, "1\n2\n3\n")
