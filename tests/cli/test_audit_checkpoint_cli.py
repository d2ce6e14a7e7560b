"""Signed checkpoints through the CLI: `audit checkpoint --to FILE|URL` and `audit verify
--checkpoint FILE` (good, chain rewritten, checkpoint tampered, bad signature, unsigned), the
key's rules, and atomic writes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from aictl.services import checkpoints
from aictl.store.audit import row_hash
from aictl.workspace import Workspace
from tests.cli.conftest import Result


@pytest.fixture
def aictl(aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """The runner, with a short history: a task claimed, started and completed."""
    monkeypatch.setenv("AICTL_ACTOR", "tester")
    aictl("task", "create", "a", "--path", "src/**")
    token = aictl("task", "claim", "--as", "w1", "-q")[1].strip()
    aictl("task", "start", "1", "--lease", token)
    aictl("task", "complete", "1", "--lease", token, "--result", "shipped")
    return aictl


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the repository (which is tmp_path/repo)."""
    folder = tmp_path / "anchors"
    folder.mkdir()
    return folder


def key_file() -> Path:
    return Path(os.environ["AICTL_AUDIT_KEY_FILE"])


def raw(workspace: Workspace) -> sqlite3.Connection:
    connection = sqlite3.connect(workspace.db_path, isolation_level=None)
    for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_extend_head"):
        connection.execute(f"DROP TRIGGER IF EXISTS {name}")
    return connection


def rewrite_consistently(workspace: Workspace, seq: int, actor: str) -> None:
    """Change row ``seq`` and recompute every hash from there: a chain that verifies alone."""
    with closing(raw(workspace)) as connection:
        rows = connection.execute(
            "SELECT seq, at, kind, actor, task_id, data, prev_hash FROM audit_log"
            " WHERE seq >= ? ORDER BY seq",
            (seq,),
        ).fetchall()
        prev = rows[0][6]
        for number, at, kind, old_actor, task_id, data, _ in rows:
            who = actor if number == seq else old_actor
            digest = row_hash(number, at, kind, who, task_id, data, prev)
            connection.execute(
                "UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (who, prev, digest, number),
            )
            prev = digest


def test_a_signed_checkpoint_holds_until_the_chain_is_rewritten(
    aictl: Callable[..., Result], workspace: Workspace, outside: Path
) -> None:
    anchor = outside / "repo.json"
    code, out, err = aictl("audit", "checkpoint", "--to", str(anchor), "--json")
    assert code == 0, err
    written = json.loads(anchor.read_text())
    assert json.loads(out)["seq"] == written["seq"] and json.loads(out)["path"] == str(anchor)
    assert written["format"] == checkpoints.FORMAT and len(written["signature"]) == 64
    assert stat.S_IMODE(key_file().stat().st_mode) == 0o600  # made on first use, owner only
    aictl("task", "create", "later")  # the chain grows past the checkpoint: still fine
    code, out, err = aictl("audit", "verify", "--checkpoint", str(anchor))
    assert code == 0, err
    assert out.startswith("audit log intact") and "2 task(s) and" in out
    rewrite_consistently(workspace, 3, "mallory")
    assert aictl("audit", "verify")[0] == 0  # a consistent rewrite fools the chain alone...
    code, _, err = aictl("audit", "verify", "--checkpoint", str(anchor))
    assert code == 1  # ...not the checkpoint held outside
    assert f"row {written['seq']} differs from the checkpoint: the log was rewritten" in err


def test_rows_deleted_after_the_checkpoint_are_caught(
    aictl: Callable[..., Result], workspace: Workspace, outside: Path
) -> None:
    anchor = outside / "repo.json"
    assert aictl("audit", "checkpoint", "--to", str(anchor))[0] == 0
    seq = json.loads(anchor.read_text())["seq"]
    with closing(raw(workspace)) as connection:
        connection.execute("DELETE FROM audit_log WHERE seq >= ?", (seq - 1,))
    code, _, err = aictl("audit", "verify", "--checkpoint", str(anchor), "--json")
    assert code == 1 and "the tail was truncated" in err


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"seq": 2}, "does not match: the checkpoint was altered or forged"),
        ({"hash": "f" * 64}, "does not match: the checkpoint was altered or forged"),
        ({"signature": "0" * 64}, "does not match: the checkpoint was altered or forged"),
        ({"key_id": "0" * 16}, "was signed with another key"),
    ],
)
def test_a_tampered_checkpoint_fails_its_signature(
    aictl: Callable[..., Result], outside: Path, change: dict[str, object], words: str
) -> None:
    anchor = outside / "repo.json"
    assert aictl("audit", "checkpoint", "--to", str(anchor))[0] == 0
    anchor.write_text(json.dumps({**json.loads(anchor.read_text()), **change}))
    code, out, err = aictl("audit", "verify", "--checkpoint", str(anchor), "--json")
    assert code == 1 and words in err
    report = json.loads(out)
    assert report["ok"] is False and words in report["problem"]


def test_a_checkpoint_signed_with_another_key_is_refused(
    aictl: Callable[..., Result], outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor = outside / "repo.json"
    assert aictl("audit", "checkpoint", "--to", str(anchor))[0] == 0
    monkeypatch.setenv("AICTL_AUDIT_KEY_FILE", str(outside / "other.key"))
    assert aictl("audit", "checkpoint", "--to", str(outside / "other.json"))[0] == 0
    code, _, err = aictl("audit", "verify", "--checkpoint", str(anchor))
    assert code == 1 and "was signed with another key" in err
    monkeypatch.setenv("AICTL_AUDIT_KEY_FILE", str(outside / "missing.key"))
    code, _, err = aictl("audit", "verify", "--checkpoint", str(anchor))
    assert code == 2 and "no audit key at" in err


def test_an_explicit_unsigned_checkpoint_is_refused_and_a_legacy_default_one_noted(
    aictl: Callable[..., Result], workspace: Workspace, outside: Path
) -> None:
    anchor = outside / "repo.json"
    assert aictl("audit", "checkpoint", "--to", str(anchor))[0] == 0
    record = json.loads(anchor.read_text())
    unsigned = {key: record[key] for key in ("seq", "hash", "rows")}
    anchor.write_text(json.dumps(unsigned))
    code, _, err = aictl("audit", "verify", "--checkpoint", str(anchor))
    assert code == 2 and "is not signed" in err
    (workspace.state_dir / "audit-checkpoint.json").write_text(json.dumps(unsigned))
    code, out, err = aictl("audit", "verify")
    assert code == 0 and out.startswith("audit log intact")
    assert "is unsigned (written by an older aictl)" in err


def test_a_checkpoint_inside_the_repository_is_refused(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    code, _, err = aictl("audit", "checkpoint", "--to", str(workspace.root / "cp.json"))
    assert code == 2 and "is inside the repository" in err
    assert not (workspace.root / "cp.json").exists()
    assert aictl("audit", "checkpoint")[0] == 0  # .ai/ is aictl's own folder: allowed
    assert aictl("audit", "verify")[0] == 0


def test_the_key_must_be_outside_the_repository_and_private(
    aictl: Callable[..., Result],
    workspace: Workspace,
    outside: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AICTL_AUDIT_KEY_FILE", str(workspace.root / "audit.key"))
    code, _, err = aictl("audit", "checkpoint", "--to", str(outside / "a.json"))
    assert code == 2 and "is inside the repository" in err
    assert not (workspace.root / "audit.key").exists()
    shared = outside / "shared.key"
    shared.write_text("a" * 64)
    shared.chmod(0o644)
    monkeypatch.setenv("AICTL_AUDIT_KEY_FILE", str(shared))
    code, _, err = aictl("audit", "checkpoint", "--to", str(outside / "a.json"))
    assert code == 2 and "can be read by others (mode 644)" in err and "chmod 600" in err


class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"bodies": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/checkpoints", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_checkpoint_posted_to_a_webhook_verifies_once_stored(
    aictl: Callable[..., Result], outside: Path, receiver: tuple[str, type[Receiver]]
) -> None:
    url, handler = receiver
    code, out, err = aictl("audit", "checkpoint", "--to", url)
    assert code == 0, err
    assert url in out
    [body] = handler.bodies
    stored = outside / "received.json"
    stored.write_bytes(body)
    assert json.loads(body)["signature"]
    assert aictl("audit", "verify", "--checkpoint", str(stored))[0] == 0
    handler.status = 500
    code, _, err = aictl("audit", "checkpoint", "--to", url)
    assert code == 1 and f"POST {url} refused the checkpoint: HTTP 500" in err


def test_a_failed_write_leaves_the_earlier_checkpoint_whole(
    aictl: Callable[..., Result], outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while writing: the old checkpoint survives intact, no temporary is left,
    and verify still uses it (before: the file was truncated to nothing and verify exited 2)."""
    anchor = outside / "repo.json"
    assert aictl("audit", "checkpoint", "--to", str(anchor))[0] == 0
    before = anchor.read_bytes()
    aictl("task", "create", "more")

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(checkpoints.os, "fsync", disk_full)
        code, _, err = aictl("audit", "checkpoint", "--to", str(anchor))
    assert code == 2 and f"cannot write {anchor}: No space left on device" in err
    assert anchor.read_bytes() == before
    assert [path.name for path in outside.iterdir()] == ["repo.json"]
    assert aictl("audit", "verify", "--checkpoint", str(anchor))[0] == 0


def test_state_tampering_fails_verify_through_the_cli(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    with closing(sqlite3.connect(workspace.db_path, isolation_level=None)) as connection:
        connection.execute("UPDATE tasks SET result = 'forged' WHERE id = 1")
    code, out, err = aictl("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["bad_task"] == 1 and report["ok"] is False
    assert "Error: audit log does not verify: task 1 has result a different value" in err


def test_the_policy_setting_is_validated(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    policy = workspace.state_dir / "policy.yaml"
    policy.write_text(
        "version: 1\nsettings:\n  audit_checkpoint:\n    to: ftp://x\n    every: never\n"
        "    events: 0\n"
    )
    code, out, err = aictl("policy", "validate")
    text = out + err
    assert code == 2
    assert "settings.audit_checkpoint.to: a checkpoint goes to a file or an http(s)://" in text
    assert "settings.audit_checkpoint.every: invalid duration 'never'" in text
    assert "settings.audit_checkpoint.events" in text
    policy.write_text(
        "version: 1\nsettings:\n  audit_checkpoint:\n    to: /anchors/cp.json\n    events: 50\n"
    )
    assert aictl("policy", "validate")[0] == 0
