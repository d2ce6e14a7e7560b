"""The AI registry's persistence: every change is one write transaction with its audit event.

Events: ``ai.registered``, ``ai.labelled``, ``ai.edited``, ``ai.status``, ``ai.removed`` and
``ai.quarantined`` (the circuit breaker opened), each appended in the
transaction of the change it records (``AuditLog.append``), so an event exists exactly when
its change was committed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from aictl.clock import Clock
from aictl.domain.ais import AI, AIStatus
from aictl.domain.backoff import should_quarantine
from aictl.domain.tasks import LEASED, format_time, parse_time
from aictl.errors import Contention, InvalidInput
from aictl.store.audit import AuditLog
from aictl.store.db import Database

_COLUMNS = (
    "id, connector, labels, capabilities, max_concurrency, model, status, health, "
    "created_at, updated_at"
)
_UPSERT = f"""
INSERT INTO ais ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    connector = excluded.connector, labels = excluded.labels,
    capabilities = excluded.capabilities, max_concurrency = excluded.max_concurrency,
    model = excluded.model, status = excluded.status, health = excluded.health,
    updated_at = excluded.updated_at
RETURNING {_COLUMNS}
"""
_JSON_FIELDS = ("labels", "capabilities")
_LEASED = ", ".join(f"'{status}'" for status in LEASED)
# Both queries match the partial index tasks_leased (status IN ('claimed', 'running')).
#: Live leases only: an expired one (its holder crashed) is nobody's load, or a crashed run
#: would keep its AI at capacity until something returned the lease.
_LOAD = f"""
SELECT lease_holder, count(*) FROM tasks
WHERE status IN ({_LEASED}) AND lease_holder IS NOT NULL AND lease_expires_at > ?
GROUP BY lease_holder
"""
#: available <-> busy from each AI's load; never touches offline or quarantined AIs.
_REFRESH_BUSY = f"""
UPDATE ais SET status = CASE
    WHEN (SELECT count(*) FROM tasks WHERE status IN ({_LEASED}) AND lease_holder = ais.id
          AND lease_expires_at > ?) >= max_concurrency THEN 'busy' ELSE 'available' END
WHERE status IN ('available', 'busy')
RETURNING id, status
"""
_HELD_BY = f"SELECT id FROM tasks WHERE status IN ({_LEASED}) AND lease_holder = ? ORDER BY id"


class AINotFound(InvalidInput):
    """An AI id that names no registered AI."""


class AIExists(InvalidInput):
    """Registering an id that is already registered, without ``replace``."""


class AIHoldsLeases(Contention):
    """Removing an AI that still holds the lease of a claimed or running task."""


def _ai(row: sqlite3.Row) -> AI:
    return AI(
        id=row["id"],
        connector=row["connector"],
        labels=json.loads(row["labels"]),
        capabilities=json.loads(row["capabilities"]),
        max_concurrency=row["max_concurrency"],
        model=row["model"],
        status=AIStatus(row["status"]),
        health=json.loads(row["health"]),
        created_at=parse_time(row["created_at"]),
        updated_at=parse_time(row["updated_at"]),
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class AIStore:
    """The ``ais`` table behind a narrow interface."""

    def __init__(self, db: Database, clock: Clock, *, actor: str = "user") -> None:
        self.db = db
        self.clock = clock
        self.actor = actor
        self.audit = AuditLog(db.connection)

    # ----------------------------------------------------------------- reading

    def get(self, ai_id: str) -> AI:
        row = self.db.connection.execute(
            f"SELECT {_COLUMNS} FROM ais WHERE id = ?", (ai_id,)
        ).fetchone()
        if row is None:
            raise AINotFound(f"no AI {ai_id!r}", hint="`aictl ai list` shows the registered AIs")
        return _ai(row)

    def list_ais(self, *, status: AIStatus | None = None) -> list[AI]:
        sql, params = f"SELECT {_COLUMNS} FROM ais", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status.value]
        return [_ai(row) for row in self.db.connection.execute(sql + " ORDER BY id", params)]

    def ids(self) -> list[str]:
        return [row[0] for row in self.db.connection.execute("SELECT id FROM ais ORDER BY id")]

    def load(self) -> dict[str, int]:
        """Claimed and running tasks per lease holder (AI id) whose lease is live, for the
        router."""
        now = format_time(self.clock.now())
        return {row[0]: row[1] for row in self.db.connection.execute(_LOAD, (now,))}

    def held_tasks(self, ai_id: str) -> list[int]:
        """Ids of the claimed or running tasks whose lease ``ai_id`` holds."""
        return [row[0] for row in self.db.connection.execute(_HELD_BY, (ai_id,))]

    # ----------------------------------------------------------------- writing

    def refresh_busy(self) -> dict[str, str]:
        """Set each available or busy AI to ``busy`` when its load has reached its
        ``max_concurrency``, else ``available``; returns the statuses it wrote. Busy is derived
        from the leases, so it is refreshed (not audited) whenever a run starts or ends and
        before routing: a crashed run cannot leave an AI busy for good."""
        now = format_time(self.clock.now())
        with self.db.transaction() as connection:
            return {row[0]: row[1] for row in connection.execute(_REFRESH_BUSY, (now,))}

    def register(self, ai: AI, *, replace: bool = False) -> AI:
        """Insert ``ai`` (its times are set here). An existing id raises ``AIExists`` unless
        ``replace``, which overwrites every field but ``created_at``."""
        with self.db.transaction() as connection:
            now = format_time(self.clock.now())
            existing = connection.execute("SELECT 1 FROM ais WHERE id = ?", (ai.id,)).fetchone()
            if existing and not replace:
                raise AIExists(
                    f"AI {ai.id!r} is already registered",
                    hint="pass --replace to overwrite it, or `aictl ai remove` it first",
                )
            row = connection.execute(
                _UPSERT,
                (
                    ai.id,
                    ai.connector,
                    _json(ai.labels),
                    _json(ai.capabilities),
                    ai.max_concurrency,
                    ai.model,
                    ai.status.value,
                    _json(ai.health),
                    now,
                    now,
                ),
            ).fetchone()
            stored = _ai(row)
            data = stored.to_dict()
            data["replaced"] = bool(existing)
            self.audit.append(now, "ai.registered", self.actor, data=data)
        return stored

    def set_labels(self, ai_id: str, add: Mapping[str, str], remove: Sequence[str]) -> AI:
        """Add or overwrite ``add``, then delete the keys in ``remove`` (absent keys are fine)."""
        with self.db.transaction() as connection:
            ai = self.get(ai_id)
            labels = {**ai.labels, **add}
            for key in remove:
                labels.pop(key, None)
            now = format_time(self.clock.now())
            row = connection.execute(
                f"UPDATE ais SET labels = ?, updated_at = ? WHERE id = ? RETURNING {_COLUMNS}",
                (_json(labels), now, ai_id),
            ).fetchone()
            self.audit.append(
                now,
                "ai.labelled",
                self.actor,
                data={"ai": ai_id, "added": dict(add), "removed": list(remove), "labels": labels},
            )
        return _ai(row)

    def update(self, ai_id: str, **fields: Any) -> AI:
        """Set some of ``labels``, ``capabilities``, ``max_concurrency`` and ``model`` (the
        service validated them), with an ``ai.edited`` audit row naming the new values."""
        columns = {name: _json(v) if name in _JSON_FIELDS else v for name, v in fields.items()}
        unknown = set(columns) - {"labels", "capabilities", "max_concurrency", "model"}
        if unknown or not columns:
            raise InvalidInput(f"cannot edit {', '.join(sorted(unknown)) or 'nothing'} of an AI")
        with self.db.transaction() as connection:
            self.get(ai_id)
            now = format_time(self.clock.now())
            assignments = "".join(f"{name} = ?, " for name in columns)
            row = connection.execute(
                f"UPDATE ais SET {assignments}updated_at = ? WHERE id = ? RETURNING {_COLUMNS}",
                (*columns.values(), now, ai_id),
            ).fetchone()
            self.audit.append(now, "ai.edited", self.actor, data={"ai": ai_id, **fields})
        return _ai(row)

    def set_status(
        self, ai_id: str, status: AIStatus, *, health: Mapping[str, Any] | None = None
    ) -> AI:
        """Set the status (any of them: the service decides what a person may set) and, when
        given, replace the health record."""
        with self.db.transaction() as connection:
            ai = self.get(ai_id)
            new_health = dict(health) if health is not None else ai.health
            now = format_time(self.clock.now())
            row = connection.execute(
                f"UPDATE ais SET status = ?, health = ?, updated_at = ? WHERE id = ?"
                f" RETURNING {_COLUMNS}",
                (status.value, _json(new_health), now, ai_id),
            ).fetchone()
            self.audit.append(
                now,
                "ai.status",
                self.actor,
                data={
                    "ai": ai_id,
                    "from": ai.status.value,
                    "to": status.value,
                    "health": new_health,
                },
            )
        return _ai(row)

    def record_run(
        self, ai_id: str, *, failed: bool, error: str | None = None, quarantine_after: int = 0
    ) -> AI:
        """Record one run's outcome on the AI's health: a success resets
        ``consecutive_failures``, a failure increments it and sets ``last_error``. When the
        failures reach ``quarantine_after`` (0: never) the AI is quarantined, with an
        ``ai.quarantined`` event naming the failures, in the same transaction."""
        with self.db.transaction() as connection:
            ai = self.get(ai_id)
            health = dict(ai.health)
            failures = int(health.get("consecutive_failures") or 0)
            if failed:
                failures += 1
                health["last_error"] = error
            else:
                failures = 0
            health["consecutive_failures"] = failures
            status = ai.status
            trip = (
                failed
                and should_quarantine(failures, quarantine_after)
                and ai.status is not AIStatus.QUARANTINED
            )
            if trip:
                status = AIStatus.QUARANTINED
            now = format_time(self.clock.now())
            row = connection.execute(
                f"UPDATE ais SET status = ?, health = ?, updated_at = ? WHERE id = ?"
                f" RETURNING {_COLUMNS}",
                (status.value, _json(health), now, ai_id),
            ).fetchone()
            if trip:
                self.audit.append(
                    now,
                    "ai.quarantined",
                    "aictl",
                    data={
                        "ai": ai_id,
                        "from": ai.status.value,
                        "consecutive_failures": failures,
                        "quarantine_after": quarantine_after,
                        "last_error": error,
                    },
                )
        return _ai(row)

    def remove(self, ai_id: str) -> AI:
        """Delete the AI. Refused (``AIHoldsLeases``, exit 4) while it holds a lease: the
        check and the delete share the write lock, so no claim can slip in between."""
        with self.db.transaction() as connection:
            ai = self.get(ai_id)
            held = self.held_tasks(ai_id)
            if held:
                listed = ", ".join(map(str, held))
                raise AIHoldsLeases(
                    f"AI {ai_id!r} holds the lease of task{'s' if len(held) > 1 else ''} {listed}",
                    hint="wait for them to finish, or release or cancel them first "
                    "(`aictl task cancel ID`)",
                )
            connection.execute("DELETE FROM ais WHERE id = ?", (ai_id,))
            now = format_time(self.clock.now())
            self.audit.append(now, "ai.removed", self.actor, data=ai.to_dict())
        return ai
