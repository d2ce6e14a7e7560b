-- Comments on tasks (issue 15): append-only notes by people and agents, shown by `task show`.
-- Each one is also a `task.commented` audit row carrying its text, written in the same
-- transaction; the triggers keep the table append-only as the decision records are.
CREATE TABLE task_comments (
    id         INTEGER PRIMARY KEY,
    task_id    INTEGER NOT NULL REFERENCES tasks(id),
    author     TEXT NOT NULL CHECK (author <> ''),
    body       TEXT NOT NULL CHECK (body <> ''),
    created_at TEXT NOT NULL
);

CREATE INDEX task_comments_task ON task_comments(task_id, id);

CREATE TRIGGER task_comments_no_update BEFORE UPDATE ON task_comments
BEGIN
    SELECT RAISE(ABORT, 'task comments are append-only');
END;

CREATE TRIGGER task_comments_no_delete BEFORE DELETE ON task_comments
BEGIN
    SELECT RAISE(ABORT, 'task comments are append-only');
END;
