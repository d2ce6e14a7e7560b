"""Read-only queries the daemon needs for its metrics (SQL lives in the store)."""

from __future__ import annotations

from aictl.store.db import Database


def decisions_by_effect(db: Database) -> dict[str, int]:
    """How many decision records the database holds, by effect."""
    rows = db.connection.execute("SELECT effect, count(*) FROM decisions GROUP BY effect")
    return {row[0]: row[1] for row in rows}
