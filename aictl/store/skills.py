"""Skill settings: enabled or disabled, per project (scope ``""``) or per AI.

Each change is one write transaction with its audit event (``skill.enabled``,
``skill.disabled``, ``skill.added``), appended in the same transaction.
"""

from __future__ import annotations

from typing import Any

from aictl.clock import Clock
from aictl.domain.tasks import format_time
from aictl.store.audit import AuditLog
from aictl.store.db import Database

_UPSERT = """
INSERT INTO skill_settings (scope, name, enabled, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (scope, name) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at
"""


class SkillStore:
    def __init__(self, db: Database, clock: Clock, *, actor: str = "user") -> None:
        self.db = db
        self.clock = clock
        self.actor = actor
        self.audit = AuditLog(db.connection)

    def settings(self) -> dict[tuple[str, str], bool]:
        """Every setting, as (scope, name) → enabled."""
        rows = self.db.connection.execute("SELECT scope, name, enabled FROM skill_settings")
        return {(row[0], row[1]): bool(row[2]) for row in rows}

    def set_enabled(
        self, name: str, enabled: bool, *, scope: str = "", extra: dict[str, Any] | None = None
    ) -> None:
        """Enable or disable ``name`` for ``scope`` ("" = the project), with its audit event."""
        with self.db.transaction() as connection:
            now = format_time(self.clock.now())
            connection.execute(_UPSERT, (scope, name, int(enabled), now))
            self.audit.append(
                now,
                "skill.enabled" if enabled else "skill.disabled",
                self.actor,
                None,
                {"skill": name, "ai": scope or None, **(extra or {})},
            )

    def record_added(self, name: str, version: str, folder: str, *, scope: str = "") -> None:
        """A skill copied into the repository, enabled for its scope, in one transaction."""
        with self.db.transaction() as connection:
            now = format_time(self.clock.now())
            connection.execute(_UPSERT, (scope, name, 1, now))
            self.audit.append(
                now,
                "skill.added",
                self.actor,
                None,
                {"skill": name, "version": version, "folder": folder, "ai": scope or None},
            )
