"""The tamper-evident audit log: append-only rows, each carrying the hash of the one before.

A row's hash is SHA-256 over a canonical JSON header (sequence number, time, kind, actor, task,
previous hash) followed by the row's data exactly as stored. So `verify` detects a changed
byte (the hash no longer matches), a deleted row (a gap in the sequence, or a broken link) and
a reordering (the sequence number is hashed). Truncating the tail leaves a valid shorter chain:
a checkpoint written earlier (`aictl audit checkpoint`) catches that. The table refuses updates,
deletes and any insert that does not extend the head (`INSERT OR REPLACE` included: migration
0008); whether the tasks and decisions agree with the chain is `aictl.store.integrity`'s part.

Rows are appended inside the caller's transaction, so an event exists exactly when the change
it records was committed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from aictl.domain.sha import sha256_hex
from aictl.domain.tasks import format_time, parse_time

GENESIS = "0" * 64


def canonical(value: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(
    seq: int, at: str, kind: str, actor: str, task_id: int | None, data: str, prev_hash: str
) -> str:
    header = canonical(
        {"seq": seq, "at": at, "kind": kind, "actor": actor, "task_id": task_id, "prev": prev_hash}
    )
    return sha256_hex(f"{header}\n{data}".encode())


class Entry(NamedTuple):
    seq: int
    at: datetime
    kind: str
    actor: str
    task_id: int | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": format_time(self.at),
            "kind": self.kind,
            "actor": self.actor,
            "task_id": self.task_id,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Verification:
    """The outcome of walking the chain (and, from the service, of comparing the state with
    it). ``bad_seq`` is the first row that fails, ``bad_task`` or ``bad_decision`` the first
    task or decision record that differs from the chain; ``notes`` say what older rows or an
    unsigned checkpoint could not vouch for."""

    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    bad_seq: int | None = None
    bad_task: int | None = None
    bad_decision: str | None = None
    tasks: int | None = None
    decisions: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "bad_seq": self.bad_seq,
            "bad_task": self.bad_task,
            "bad_decision": self.bad_decision,
            "tasks": self.tasks,
            "decisions": self.decisions,
            "problem": self.problem,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "rows": self.rows}


class AuditLog:
    """Appends to and reads the ``audit_log`` table of one connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def append(
        self,
        at: datetime | str,
        kind: str,
        actor: str,
        task_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append one event; call inside a write transaction (the head is read under its lock).

        In a concurrent PostgreSQL transaction the row is appended at its COMMIT instead
        (``PgConnection.defer_audit``): still in the same transaction, so still an event
        exactly when its change is committed.
        """
        stamp = at if isinstance(at, str) else format_time(at)
        text = canonical(data or {})
        defer = getattr(self.connection, "defer_audit", None)  # only PgConnection has it
        if defer is not None and defer((stamp, kind, actor, task_id, text)):
            return
        head = self.connection.execute(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        digest = row_hash(seq, stamp, kind, actor, task_id, text, prev)
        self.connection.execute(
            "INSERT INTO audit_log (seq, at, kind, actor, task_id, data, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, stamp, kind, actor, task_id, text, prev, digest),
        )

    def entries(
        self,
        *,
        task_id: int | None = None,
        since: datetime | None = None,
        kinds: tuple[str, ...] = (),
        limit: int | None = None,
    ) -> list[Entry]:
        """Events in order; ``kinds`` match exactly or by prefix (``task`` matches ``task.*``)."""
        where: list[str] = []
        params: list[Any] = []
        if task_id is not None:
            where.append("task_id = ?")
            params.append(task_id)
        if since is not None:
            where.append("at >= ?")
            params.append(format_time(since))
        if kinds:
            where.append("(" + " OR ".join("kind = ? OR kind LIKE ?" for _ in kinds) + ")")
            for kind in kinds:
                params += [kind, f"{kind}.%"]
        sql = "SELECT seq, at, kind, actor, task_id, data, prev_hash, hash FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace(' ORDER BY seq', ' ORDER BY seq DESC')}"
            sql += " LIMIT ?) AS recent ORDER BY seq"
            params.append(limit)
        return [
            Entry(r[0], parse_time(r[1]), r[2], r[3], r[4], json.loads(r[5]), r[6], r[7])
            for r in self.connection.execute(sql, params)
        ]

    def _raw(self) -> Iterator[tuple[Any, ...]]:
        yield from self.connection.execute(
            "SELECT seq, at, kind, actor, task_id, data, prev_hash, hash FROM audit_log"
            " ORDER BY seq"
        )

    def verify(self, checkpoint: Checkpoint | None = None) -> Verification:
        """Walk the whole chain and report the first row that does not hold."""
        expected_seq, prev_hash, rows = 1, GENESIS, 0
        for seq, at, kind, actor, task_id, data, stored_prev, stored_hash in self._raw():
            if seq != expected_seq:
                return self._bad(
                    rows,
                    expected_seq - 1,
                    prev_hash,
                    expected_seq,
                    f"row {expected_seq} is missing (the next row is {seq}): rows were deleted",
                )
            if stored_prev != prev_hash:
                return self._bad(
                    rows,
                    seq - 1,
                    prev_hash,
                    seq,
                    f"row {seq} does not follow row {seq - 1} (previous-hash mismatch): rows "
                    "were deleted, inserted or reordered",
                )
            if row_hash(seq, at, kind, actor, task_id, data, stored_prev) != stored_hash:
                return self._bad(
                    rows,
                    seq - 1,
                    prev_hash,
                    seq,
                    f"row {seq} ({kind}) was changed after it was written (hash mismatch)",
                )
            expected_seq, prev_hash, rows = seq + 1, stored_hash, rows + 1
        head_seq = expected_seq - 1
        if checkpoint is not None:
            problem = self._against(checkpoint, head_seq)
            if problem:
                return Verification(False, rows, head_seq, prev_hash, problem, checkpoint.seq)
        return Verification(True, rows, head_seq, prev_hash)

    def _against(self, checkpoint: Checkpoint, head_seq: int) -> str | None:
        if checkpoint.seq == 0:
            # A checkpoint of the empty log: there is no row 0 to compare, and every chain
            # starts from the genesis hash, so any chain extends it.
            if checkpoint.hash == GENESIS:
                return None
            return "the checkpoint records row 0 with a hash other than the genesis hash"
        if head_seq < checkpoint.seq:
            return (
                f"the log ends at row {head_seq} but the checkpoint recorded row "
                f"{checkpoint.seq}: the tail was truncated"
            )
        row = self.connection.execute(
            "SELECT hash FROM audit_log WHERE seq = ?", (checkpoint.seq,)
        ).fetchone()
        if row is None or row[0] != checkpoint.hash:
            return f"row {checkpoint.seq} differs from the checkpoint: the log was rewritten"
        return None

    @staticmethod
    def _bad(rows: int, seq: int, head: str, bad: int, problem: str) -> Verification:
        return Verification(False, rows, seq, head, problem, bad)

    def head_seq(self) -> int:
        """The last row's sequence number (0 for an empty log): one index lookup."""
        row = self.connection.execute("SELECT max(seq) FROM audit_log").fetchone()
        return int(row[0] or 0)

    def checkpoint(self) -> Checkpoint:
        head = self.connection.execute(
            "SELECT seq, hash, (SELECT count(*) FROM audit_log) FROM audit_log"
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return Checkpoint(head[0], head[1], head[2]) if head else Checkpoint(0, GENESIS, 0)
