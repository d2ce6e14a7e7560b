-- The tamper-evident audit log, policy decision records, overrides, and approvals.

-- Append-only and hash-chained: each row's hash covers its own content, its sequence number
-- and the previous row's hash, so a changed byte, a deleted row or a reordering breaks the
-- chain at a row `aictl audit verify` can name. The triggers refuse ordinary updates and
-- deletes; someone with the file can still drop them, which is what the chain is for.
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

-- Rows are written on every state change, inside the write lock: one index only (by task,
-- for `audit log --task`). Filtering by kind or time scans, which an audit query can afford.
CREATE INDEX audit_log_task ON audit_log (task_id, seq) WHERE task_id IS NOT NULL;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- One row per enforced policy decision, written in the transaction of the action it decides.
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

CREATE INDEX decisions_task ON decisions (task_id, at) WHERE task_id IS NOT NULL;
CREATE INDEX decisions_subject ON decisions (subject, at);

-- Recorded policy overrides: a layer on top of the files. `ai` is '' for all AIs.
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

-- Approval state of a task that policy gated with require_approval.
ALTER TABLE tasks ADD COLUMN approval TEXT CHECK (approval IN ('pending', 'approved', 'rejected'));
ALTER TABLE tasks ADD COLUMN approval_by TEXT;
