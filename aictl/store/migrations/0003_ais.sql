-- The AI registry: the agent instances the router can hand tasks to.

-- `id` is also the lease holder name of the tasks an AI works on (same name rules as holders,
-- checked by the service; the CHECK here only keeps the length in bounds).
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

