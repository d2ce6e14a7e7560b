-- Workflow runs and the records of their steps. A step's work is an ordinary task (tasks.id);
-- these rows hold what the workflow decided about it: started, skipped (with the values that
-- decided it), finished, retried, and for a loop its rounds.

CREATE TABLE workflow_runs (
    id            INTEGER PRIMARY KEY,
    workflow      TEXT    NOT NULL,
    -- the definition as validated when the run started: a resumed run runs what was started
    definition    TEXT    NOT NULL,
    hash          TEXT    NOT NULL,
    inputs        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(inputs)),
    status        TEXT    NOT NULL DEFAULT 'running' CHECK (status IN
                      ('running', 'waiting', 'done', 'failed', 'cancelled')),
    reason        TEXT,
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    finished_at   TEXT,
    CHECK ((status IN ('done', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);

CREATE INDEX workflow_runs_workflow ON workflow_runs (workflow, id);

CREATE TABLE workflow_steps (
    run_id      INTEGER NOT NULL REFERENCES workflow_runs (id),
    step        TEXT    NOT NULL,
    -- 0 for a top-level step; the loop round (from 1) for a step inside a loop
    iteration   INTEGER NOT NULL DEFAULT 0 CHECK (iteration >= 0),
    status      TEXT    NOT NULL CHECK (status IN
                    ('pending', 'started', 'looping', 'done', 'failed', 'skipped', 'cancelled')),
    task_id     INTEGER REFERENCES tasks (id),
    -- a goto made this step ready whatever its needs
    forced      INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
    retries     INTEGER NOT NULL DEFAULT 0 CHECK (retries >= 0),
    executions  INTEGER NOT NULL DEFAULT 0 CHECK (executions >= 0),
    rounds      INTEGER NOT NULL DEFAULT 0 CHECK (rounds >= 0),
    -- why it was skipped or how a loop ended: the condition and the values that decided it
    decided     TEXT CHECK (decided IS NULL OR json_valid(decided)),
    outcome     TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(outcome)),
    started_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (run_id, step, iteration),
    CHECK ((status = 'started') <= (task_id IS NOT NULL))
) WITHOUT ROWID;

CREATE INDEX workflow_steps_task ON workflow_steps (task_id) WHERE task_id IS NOT NULL;
