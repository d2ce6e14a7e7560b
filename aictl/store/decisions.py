"""Policy Decision Records and recorded policy overrides.

A record is written by ``record`` inside the caller's transaction, the same one as the action
it authorises (or refuses), together with a ``policy.decision`` audit event: both or neither.
The event carries the record's digest (``decision_digest``); the table refuses updates, deletes
and replacements (migration 0008).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from aictl.domain.redact import digest, redact
from aictl.domain.sha import sha256_hex
from aictl.domain.tasks import check_text, format_time, parse_time
from aictl.store.audit import AuditLog, canonical

COLUMNS = (
    "id, at, action, subject, task_id, resource, effect, rules, warnings, layers, policy_hash,"
    " input, input_digest, redacted, lease_epoch"
)


COLUMN_NAMES = tuple(name.strip() for name in COLUMNS.split(","))


def decision_digest(stored: Sequence[Any]) -> str:
    """SHA-256 of a decision record exactly as stored: the canonical JSON object of its
    columns (``COLUMN_NAMES``, in that order) with their stored values, JSON columns kept as
    their stored text. Kept in the record's ``policy.decision`` audit row, so that ``audit
    verify`` sees a record changed after it was written (its effect, its rules, anything)."""
    return sha256_hex(canonical(dict(zip(COLUMN_NAMES, stored, strict=True))).encode())


class Ruling(NamedTuple):
    """A decision ready to be enforced and recorded: the effect, a one-line reason naming the
    deciding rule, and the remaining keyword arguments of ``DecisionStore.record``."""

    effect: str
    reason: str
    fields: dict[str, Any]

    def denied_by_aictl(self, rule: str, denial: str) -> Ruling:
        """This ruling turned into a denial by aictl's own ``rule`` (``aictl:<rule>``: the
        task's paths, the lease, reads...), keeping the policy's context (its hashes and the
        rules that applied) in the record."""
        fields = dict(self.fields)
        fields["rules"] = [
            {
                "layer": "aictl",
                "id": rule,
                "qualified_id": f"aictl:{rule}",
                "effect": "deny",
                "reason": denial,
                "error": None,
            },
            *fields.get("rules", []),
        ]
        return Ruling("deny", f"aictl:{rule}: {denial}", fields)


class DecisionRecord(NamedTuple):
    id: str
    at: datetime
    action: str
    subject: str
    task_id: int | None
    resource: dict[str, Any]
    effect: str
    rules: list[dict[str, Any]]
    warnings: list[Any]
    layers: dict[str, str]
    policy_hash: str
    input: dict[str, Any]
    input_digest: str
    redacted: list[str]
    lease_epoch: int | None

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["at"] = format_time(self.at)
        return data


class Override(NamedTuple):
    key: str
    ai: str
    value: Any
    reason: str
    set_by: str
    set_at: datetime
    expires_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["set_at"] = format_time(self.set_at)
        data["expires_at"] = format_time(self.expires_at) if self.expires_at else None
        return data


class DecisionStore:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.audit = AuditLog(connection)

    def record(
        self,
        *,
        at: datetime,
        action: str,
        subject: str,
        effect: str,
        rules: Sequence[Mapping[str, Any]],
        layers: Mapping[str, str],
        policy_hash: str,
        request: Mapping[str, Any],
        task_id: int | None = None,
        resource: Mapping[str, Any] | None = None,
        warnings: Sequence[Any] = (),
        lease_epoch: int | None = None,
    ) -> DecisionRecord:
        """Write one decision record and its audit event (call inside a write transaction).

        ``request`` is stored with secrets redacted; the redacted paths are listed and the
        digest is taken over the redacted form.
        """
        clean, redacted = redact(dict(request))
        record = DecisionRecord(
            id=f"d-{os.urandom(8).hex()}",  # not uuid: the hook pays for its import
            at=at,
            action=action,
            subject=subject,
            task_id=task_id,
            resource=dict(resource or {}),
            effect=effect,
            rules=[dict(rule) for rule in rules],
            warnings=list(warnings),
            layers=dict(layers),
            policy_hash=policy_hash,
            input=clean,
            input_digest=digest(clean),
            redacted=redacted,
            lease_epoch=lease_epoch,
        )
        stored = (
            record.id,
            format_time(at),
            action,
            subject,
            task_id,
            json.dumps(record.resource),
            effect,
            json.dumps(record.rules, default=str),
            json.dumps(record.warnings, default=str),
            json.dumps(record.layers),
            policy_hash,
            json.dumps(clean, default=str),
            record.input_digest,
            json.dumps(redacted),
            lease_epoch,
        )
        self.connection.execute(
            f"INSERT INTO decisions ({COLUMNS}) VALUES ({', '.join('?' * 15)})", stored
        )
        self.audit.append(
            at,
            "policy.decision",
            subject,
            task_id,
            {
                "decision": record.id,
                "action": action,
                "effect": effect,
                "rules": [rule.get("id") for rule in record.rules],
                "policy_hash": policy_hash,
                "digest": decision_digest(stored),
            },
        )
        return record

    def enforce(
        self,
        ruling: Ruling,
        *,
        at: datetime,
        task_id: int | None,
        lease_epoch: int | None = None,
        effect: str | None = None,
    ) -> DecisionRecord:
        """Record ``ruling`` (optionally with the effect actually enforced, e.g. ``allow`` for a
        require_approval that an approval satisfied)."""
        fields = dict(ruling.fields)
        return self.record(
            at=at,
            task_id=task_id,
            lease_epoch=lease_epoch,
            effect=effect or ruling.effect,
            **fields,
        )

    def repeats(self, ruling: Ruling, *, task_id: int, effect: str) -> bool:
        """Whether exactly this decision (same subject, action, effect, policy and request,
        which includes the task's state) is already recorded for ``task_id``."""
        clean, _ = redact(dict(ruling.fields["request"]))
        row = self.connection.execute(
            "SELECT 1 FROM decisions WHERE task_id = ? AND subject = ? AND action = ?"
            " AND effect = ? AND policy_hash = ? AND input_digest = ? LIMIT 1",
            (
                task_id,
                ruling.fields["subject"],
                ruling.fields["action"],
                effect,
                ruling.fields["policy_hash"],
                digest(clean),
            ),
        ).fetchone()
        return row is not None

    def records(
        self,
        *,
        task_id: int | None = None,
        subject: str | None = None,
        effect: str | None = None,
        action: str | None = None,
    ) -> list[DecisionRecord]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("task_id", task_id),
            ("subject", subject),
            ("effect", effect),
            ("action", action),
        ):
            if value is not None:
                if isinstance(value, str):
                    check_text(value, {"subject": "--ai"}.get(column, f"--{column}"))
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {COLUMNS} FROM decisions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.connection.execute(sql + " ORDER BY at, rowid", params).fetchall()
        return [_record(row) for row in rows]

    # overrides

    def set_override(
        self,
        *,
        key: str,
        ai: str,
        value: Any,
        reason: str,
        set_by: str,
        at: datetime,
        expires_at: datetime | None,
    ) -> Override:
        check_text(reason, "reason")
        self.connection.execute(
            "INSERT INTO policy_overrides (key, ai, value, reason, set_by, set_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key, ai) DO UPDATE SET"
            " value = excluded.value, reason = excluded.reason, set_by = excluded.set_by,"
            " set_at = excluded.set_at, expires_at = excluded.expires_at",
            (
                key,
                ai,
                json.dumps(value),
                reason,
                set_by,
                format_time(at),
                format_time(expires_at) if expires_at else None,
            ),
        )
        self.audit.append(
            at,
            "policy.override.set",
            set_by,
            None,
            {
                "key": key,
                "ai": ai,
                "value": value,
                "reason": reason,
                "expires_at": format_time(expires_at) if expires_at else None,
            },
        )
        return Override(key, ai, value, reason, set_by, at, expires_at)

    def unset_override(self, *, key: str, ai: str, reason: str, by: str, at: datetime) -> bool:
        """Delete the override; False when there was none (another process removed it first)."""
        check_text(reason, "reason")
        removed = self.connection.execute(
            "DELETE FROM policy_overrides WHERE key = ? AND ai = ?", (key, ai)
        ).rowcount
        if removed:
            self.audit.append(
                at, "policy.override.unset", by, None, {"key": key, "ai": ai, "reason": reason}
            )
        return bool(removed)

    def overrides(self, *, now: datetime | None = None) -> list[Override]:
        """Overrides in force (not expired at ``now``), or all of them when ``now`` is None."""
        sql = "SELECT key, ai, value, reason, set_by, set_at, expires_at FROM policy_overrides"
        params: list[Any] = []
        if now is not None:
            sql += " WHERE expires_at IS NULL OR expires_at > ?"
            params.append(format_time(now))
        return [
            Override(
                r[0],
                r[1],
                json.loads(r[2]),
                r[3],
                r[4],
                parse_time(r[5]),
                parse_time(r[6]) if r[6] else None,
            )
            for r in self.connection.execute(sql + " ORDER BY key, ai", params)
        ]


def _record(row: sqlite3.Row) -> DecisionRecord:
    return DecisionRecord(
        id=row[0],
        at=parse_time(row[1]),
        action=row[2],
        subject=row[3],
        task_id=row[4],
        resource=json.loads(row[5]),
        effect=row[6],
        rules=json.loads(row[7]),
        warnings=json.loads(row[8]),
        layers=json.loads(row[9]),
        policy_hash=row[10],
        input=json.loads(row[11]),
        input_digest=row[12],
        redacted=json.loads(row[13]),
        lease_epoch=row[14],
    )
