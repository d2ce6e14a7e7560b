-- Each attempt of a task run in its own git worktree: where it ran, on which branch, from
-- which commit of which target branch, and how far its integration got. One row per attempt,
-- written when the worktree is made and updated at each step (committed, integrating, merged,
-- kept, refused, failed), so that `aictl task integrate`, `aictl worktree list` and `prune`
-- know every worktree aictl made, including those of runs that were killed.
--
-- `status`:
--   running      the agent works in the worktree (or the run was killed: nothing committed)
--   empty        the run changed nothing: there is nothing to integrate
--   committed    aictl committed the run's changes on the branch; not integrated yet
--   integrating  a merge commit was built and is being put on the target (recorded first, so
--                that a run killed between the ref update and this table can be finished)
--   merged       the task's commit is in the target branch
--   kept         `integrate: branch`: the branch is left for review
--   refused      integration was refused (the user's uncommitted changes, a conflict): the
--                branch is kept and `aictl task integrate` retries
--   failed       the run failed (outside its globs, tests, the agent): nothing to integrate
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
