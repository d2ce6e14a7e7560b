"""What agent runs cost: one row per run in ``run_spend``, summed by day and by AI.

The executor records each run when it ends (any outcome: a run that failed still spent its
money). The daily budget reads ``spent_since`` before a claim, the daemon's metrics read
``totals_by_ai``. A run is keyed by task and attempt (the run's folder number under
``.ai/runs/``); recording it again replaces the row, so a repeated write does not count twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from aictl.domain.tasks import format_time
from aictl.store.db import Database

_RECORD = """
INSERT INTO run_spend (task_id, attempt, ai, finished_at, cost_usd, input_tokens, output_tokens)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (task_id, attempt) DO UPDATE SET
    ai = excluded.ai, finished_at = excluded.finished_at, cost_usd = excluded.cost_usd,
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens
"""
#: A range of the index run_spend_day, summed from the index alone (it covers cost_usd).
_SPENT_SINCE = "SELECT total(cost_usd) FROM run_spend WHERE finished_at >= ?"
_BY_AI = """
SELECT ai, total(cost_usd), sum(input_tokens), sum(output_tokens) FROM run_spend
GROUP BY ai ORDER BY ai
"""


class Spend(NamedTuple):
    """Cost (USD) and tokens of some runs."""

    cost_usd: float
    input_tokens: int
    output_tokens: int


class SpendStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        *,
        task_id: int,
        attempt: int,
        ai: str,
        at: datetime,
        cost_usd: float | None,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        """Record (or replace) what run ``attempt`` of ``task_id`` cost, in one transaction.
        Unknown figures (a run that ended before reporting any) count as 0."""
        with self.db.transaction() as connection:
            connection.execute(
                _RECORD,
                (
                    task_id,
                    attempt,
                    ai,
                    format_time(at),
                    max(cost_usd or 0.0, 0.0),
                    max(input_tokens or 0, 0),
                    max(output_tokens or 0, 0),
                ),
            )

    def spent_since(self, start: datetime) -> float:
        """USD spent by runs that ended at or after ``start``."""
        row = self.db.connection.execute(_SPENT_SINCE, (format_time(start),)).fetchone()
        return float(row[0])

    def totals_by_ai(self) -> dict[str, Spend]:
        """Everything each AI's runs ever cost, by AI id."""
        rows = self.db.connection.execute(_BY_AI)
        return {row[0]: Spend(float(row[1]), int(row[2] or 0), int(row[3] or 0)) for row in rows}
