CREATE TRIGGER audit_log_extend_head BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT coalesce(
       (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
       '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: a new row must extend the head');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decision records are append-only');
END;

CREATE TRIGGER decisions_no_replace BEFORE INSERT ON decisions
WHEN EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'decision records are append-only');
END;

CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decision records are append-only');
END;

CREATE TRIGGER task_comments_no_delete BEFORE DELETE ON task_comments
BEGIN
    SELECT RAISE(ABORT, 'task comments are append-only');
END;

CREATE TRIGGER task_comments_no_update BEFORE UPDATE ON task_comments
BEGIN
    SELECT RAISE(ABORT, 'task comments are append-only');
END;

CREATE TABLE ais (
    id              TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    connector       TEXT    NOT NULL CHECK (length(connector) > 0),
    labels          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    capabilities    TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(capabilities)),
    max_concurrency INTEGER NOT NULL DEFAULT 1 CHECK (max_concurrency >= 1),
    model           TEXT,
    status          TEXT    NOT NULL DEFAULT 'available' CHECK (status IN
                        ('available', 'busy', 'offline', 'quarantined')),
    -- consecutive_failures, last_error, the detected version and binary
    health          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(health)),
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    task_id   INTEGER,
    data      TEXT    NOT NULL CHECK (json_valid(data)),
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

CREATE TABLE decisions (
    id           TEXT    PRIMARY KEY,
    at           TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    task_id      INTEGER,
    resource     TEXT    NOT NULL CHECK (json_valid(resource)),
    effect       TEXT    NOT NULL CHECK (effect IN ('allow', 'deny', 'require_approval')),
    rules        TEXT    NOT NULL CHECK (json_valid(rules)),
    warnings     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(warnings)),
    layers       TEXT    NOT NULL CHECK (json_valid(layers)),
    policy_hash  TEXT    NOT NULL,
    input        TEXT    NOT NULL CHECK (json_valid(input)),
    input_digest TEXT    NOT NULL,
    redacted     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(redacted)),
    lease_epoch  INTEGER
);

CREATE TABLE path_locks (
    task_id     INTEGER NOT NULL REFERENCES tasks (id),
    glob        TEXT    NOT NULL,
    holder      TEXT    NOT NULL,
    lease_epoch INTEGER NOT NULL,
    acquired_at TEXT    NOT NULL,
    PRIMARY KEY (task_id, glob)
) WITHOUT ROWID;

CREATE TABLE policy_overrides (
    key        TEXT NOT NULL,
    ai         TEXT NOT NULL DEFAULT '',
    value      TEXT NOT NULL CHECK (json_valid(value)),
    reason     TEXT NOT NULL CHECK (length(reason) > 0),
    set_by     TEXT NOT NULL,
    set_at     TEXT NOT NULL,
    expires_at TEXT,
    PRIMARY KEY (key, ai)
) WITHOUT ROWID;

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

CREATE TABLE skill_settings (
    scope      TEXT    NOT NULL DEFAULT '' CHECK (length(scope) <= 128),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

CREATE TABLE task_branches (
    task_id        INTEGER NOT NULL REFERENCES tasks (id),
    attempt        INTEGER NOT NULL CHECK (attempt >= 1),
    branch         TEXT    NOT NULL,
    worktree       TEXT    NOT NULL,
    target         TEXT,
    base_commit    TEXT    NOT NULL,
    task_commit    TEXT,
    target_before  TEXT,
    merge_commit   TEXT,
    mode           TEXT    NOT NULL CHECK (mode IN ('merge', 'rebase', 'branch')),
    status         TEXT    NOT NULL CHECK (status IN (
        'running', 'empty', 'committed', 'integrating', 'merged', 'kept', 'refused', 'failed'
    )),
    reason         TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;

CREATE TABLE task_comments (
    id         INTEGER PRIMARY KEY,
    task_id    INTEGER NOT NULL REFERENCES tasks(id),
    author     TEXT NOT NULL CHECK (author <> ''),
    body       TEXT NOT NULL CHECK (body <> ''),
    created_at TEXT NOT NULL
);

CREATE TABLE task_deps (
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    depends_on INTEGER NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on),
    CHECK (task_id <> depends_on)
) WITHOUT ROWID;

CREATE TABLE tasks (
    id                 INTEGER PRIMARY KEY,
    title              TEXT    NOT NULL CHECK (length(title) > 0),
    description        TEXT    NOT NULL DEFAULT '',
    type               TEXT    NOT NULL DEFAULT 'task',
    priority           INTEGER NOT NULL DEFAULT 0,
    status             TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN
                           ('queued', 'claimed', 'running', 'done', 'failed', 'blocked', 'cancelled')),
    labels             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    requires           TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(requires)),
    paths              TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(paths)),
    -- dependencies not yet done: ready work is "queued and unmet_deps = 0", found by index
    unmet_deps         INTEGER NOT NULL DEFAULT 0 CHECK (unmet_deps >= 0),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts       INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    lease_holder       TEXT,
    lease_epoch        INTEGER NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0),
    lease_ttl_seconds  REAL,
    lease_expires_at   TEXT,
    heartbeat_at       TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    claimed_at         TEXT,
    started_at         TEXT,
    finished_at        TEXT,
    blocked_reason     TEXT,
    failure_reason     TEXT,
    result             TEXT,
    evidence           TEXT CHECK (evidence IS NULL OR json_valid(evidence)), approval TEXT CHECK (approval IN ('pending', 'approved', 'rejected')), approval_by TEXT, not_before TEXT, skills TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(skills)), lease_secret_hash TEXT,
    -- a task has a live lease exactly while it is claimed or running
    CHECK ((status IN ('claimed', 'running')) = (lease_expires_at IS NOT NULL)),
    CHECK ((status = 'blocked') = (blocked_reason IS NOT NULL))
);

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

CREATE INDEX audit_log_task ON audit_log (task_id, seq) WHERE task_id IS NOT NULL;

CREATE INDEX decisions_subject ON decisions (subject, at);

CREATE INDEX decisions_task ON decisions (task_id, at) WHERE task_id IS NOT NULL;

CREATE INDEX run_spend_day ON run_spend (finished_at, cost_usd);

CREATE INDEX task_comments_task ON task_comments(task_id, id);

CREATE INDEX task_deps_dependents ON task_deps (depends_on, task_id);

CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status IN ('claimed', 'running');

CREATE INDEX tasks_ready ON tasks (priority DESC, id) WHERE status = 'queued' AND unmet_deps = 0;

CREATE INDEX tasks_status ON tasks (status);

CREATE INDEX workflow_runs_workflow ON workflow_runs (workflow, id);

CREATE INDEX workflow_steps_task ON workflow_steps (task_id) WHERE task_id IS NOT NULL;
