-- What each agent run cost: one row per run (a task's attempt), written when the run ends,
-- whatever its outcome, so that a failed or cancelled run counts against the daily budget.
--
-- The daily budget sums the rows of one UTC day: the index on (finished_at, cost_usd) answers
-- that sum from the index alone. The metrics sum by AI (a few rows per run, read every few
-- seconds by the daemon).
CREATE TABLE run_spend (
    task_id       INTEGER NOT NULL REFERENCES tasks (id),
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    ai            TEXT    NOT NULL,
    finished_at   TEXT    NOT NULL,
    cost_usd      REAL    NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    input_tokens  INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;

CREATE INDEX run_spend_day ON run_spend (finished_at, cost_usd);
