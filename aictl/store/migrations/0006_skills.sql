-- Skills: which skills are enabled, for the whole project (scope '') or for one AI (scope =
-- its id), and the skills a task needs.
--
-- No row means "not set": an AI's own row wins over the project's, and a skill set nowhere is
-- disabled. The skills themselves live in files (.ai/skills/), not here.
CREATE TABLE skill_settings (
    scope      TEXT    NOT NULL DEFAULT '' CHECK (length(scope) <= 128),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

ALTER TABLE tasks ADD COLUMN skills TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(skills));
