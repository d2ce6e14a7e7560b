-- The lease holder's hot path as server-side functions (issue 14): the claim of the next ready
-- task, start and complete each run as ONE statement, so one round trip and one transaction
-- each, with the same locks, fences and audit rows as the store's Python path (which SQLite,
-- and every other write, still use). aictl/store/tasks.py calls them; aictl/store/postgres.py
-- describes the locks, whose numbers are repeated here (a test checks they agree):
--   1634296692 the writer lock (taken shared), 1634296693 the audit chain's head,
--   1634296694 the claims' lock.
-- Decisions stay in Python: which statuses an event may leave (the `allowed` arrays), the
-- audit rows' data of start and complete, whether two globs overlap (glob_pairs below).
-- SQLite's migration 0012 changes nothing: the numbers stay the same on both backends.

-- Whether two canonical globs overlap, as aictl's glob automata decided it
-- (aictl.domain.globs.globs_intersect), one row per unordered pair (a <= b). A memo of a pure
-- function, filled by the store when the claim below meets a pair it does not know yet; so
-- the claim checks path locks exactly without running the automata in SQL. Each row names the
-- version of the answers (globs.OVERLAP_VERSION): the claim trusts only the caller's, so an
-- aictl whose glob semantics changed asks again instead of reading an old answer.
CREATE TABLE glob_pairs (
    version INTEGER NOT NULL,
    a       TEXT    NOT NULL,
    b       TEXT    NOT NULL,
    overlap BOOLEAN NOT NULL,
    PRIMARY KEY (version, a, b),
    CHECK (a <= b)
);

-- The first tests of aictl.domain.globs._overlap, which settle most pairs without automata:
-- globs whose literal prefixes (up to the first *, ? or [) diverge are disjoint; a glob
-- overlaps itself and ** overlaps everything; two different literal paths are disjoint.
-- NULL: the automata must decide (glob_pairs).
CREATE FUNCTION aictl_quick_overlap(a TEXT, b TEXT) RETURNS BOOLEAN LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN NOT (starts_with(pa, pb) OR starts_with(pb, pa)) THEN false
        WHEN a = b OR a = '**' OR b = '**' THEN true
        WHEN pa = a AND pb = b THEN false
    END
    FROM (SELECT substring(a FROM '^[^*?\[]*'), substring(b FROM '^[^*?\[]*')) AS p (pa, pb)
$$;

-- The latest stamp in the chain, for the claim below: one step down this index.
CREATE INDEX audit_log_at ON audit_log (at);

-- One audit row appended at the head, under the audit lock (held to COMMIT, which follows
-- within the same message or statement: never across a round trip), hashed by the server
-- exactly as aictl.store.audit.row_hash hashes it: SHA-256 of the canonical JSON header
-- (sorted keys, no spaces, UTF-8 kept; to_json escapes text as Python's json.dumps does)
-- followed by a newline and the data as stored.
CREATE FUNCTION aictl_audit_append(p_at TEXT, p_kind TEXT, p_actor TEXT, p_task BIGINT, p_data TEXT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head_seq  BIGINT;
    head_hash TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(1634296693);
    SELECT seq, hash INTO head_seq, head_hash FROM audit_log ORDER BY seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0) + 1;
    head_hash := coalesce(head_hash, repeat('0', 64));
    INSERT INTO audit_log (seq, at, kind, actor, task_id, data, prev_hash, hash)
    VALUES (head_seq, p_at, p_kind, p_actor, p_task, p_data, head_hash, encode(sha256(convert_to(
        '{"actor":' || to_json(p_actor)::text || ',"at":' || to_json(p_at)::text
        || ',"kind":' || to_json(p_kind)::text || ',"prev":"' || head_hash
        || '","seq":' || head_seq || ',"task_id":' || coalesce(p_task::text, 'null') || '}'
        || chr(10) || p_data, 'UTF8')), 'hex'));
END $$;

-- Start: the fenced move to running and its audit row; the row as written, or no row when
-- the fence refused it (the store then reads why).
CREATE FUNCTION aictl_start(
    p_task BIGINT, p_epoch BIGINT, p_secret TEXT, p_stamp TEXT, p_allowed TEXT[],
    p_actor TEXT, p_data TEXT
) RETURNS SETOF tasks LANGUAGE plpgsql AS $$
DECLARE
    r tasks;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1634296692);
    UPDATE tasks SET status = 'running', started_at = p_stamp, heartbeat_at = p_stamp,
        updated_at = p_stamp
    WHERE id = p_task AND lease_epoch = p_epoch AND lease_secret_hash = p_secret
        AND lease_expires_at > p_stamp AND status = ANY (p_allowed)
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM aictl_audit_append(p_stamp, 'task.started',
        coalesce(nullif(r.lease_holder, ''), p_actor), r.id, p_data);
    RETURN NEXT r;
END $$;

-- Complete: the fenced move to done, its path locks dropped, one unmet dependency fewer for
-- each dependent, its audit row and the NOTIFY that wakes the daemons (sent at COMMIT).
CREATE FUNCTION aictl_complete(
    p_task BIGINT, p_epoch BIGINT, p_secret TEXT, p_stamp TEXT, p_allowed TEXT[],
    p_actor TEXT, p_data TEXT, p_result TEXT, p_evidence TEXT
) RETURNS SETOF tasks LANGUAGE plpgsql AS $$
DECLARE
    r tasks;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1634296692);
    UPDATE tasks SET status = 'done', lease_expires_at = NULL, finished_at = p_stamp,
        updated_at = p_stamp, result = p_result, evidence = p_evidence, failure_reason = NULL
    WHERE id = p_task AND lease_epoch = p_epoch AND lease_secret_hash = p_secret
        AND lease_expires_at > p_stamp AND status = ANY (p_allowed)
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM path_locks WHERE task_id = p_task;
    UPDATE tasks SET unmet_deps = unmet_deps - 1, updated_at = p_stamp
    WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = p_task);
    PERFORM aictl_audit_append(p_stamp, 'task.completed',
        coalesce(nullif(r.lease_holder, ''), p_actor), r.id, p_data);
    PERFORM pg_notify('aictl_work', 'completed');
    RETURN NEXT r;
END $$;

-- A JSON array of text as Python's canonical form writes it: no spaces, UTF-8 kept.
CREATE FUNCTION aictl_canonical_array(items TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT '[' || coalesce(string_agg(to_json(item)::text, ',' ORDER BY place), '') || ']'
    FROM jsonb_array_elements_text(items::jsonb) WITH ORDINALITY AS listed (item, place)
$$;

-- Take one ready task for p_holder: the fenced move to claimed, its path locks and its audit
-- row; NULL when it is no longer ready or another claim holds its row (skipped, never waited
-- for: a claim of the store's Python path holds it from before its policy decides). Stamped no
-- earlier than any audit row committed before it: the caller read its clock before it found
-- the task ready (and perhaps waited for the claims' lock), and a complete that released a
-- path lock or a dependency may have committed meanwhile with a later stamp. So a claim's time
-- follows every change it depends on, as the Python path's clock read after its locks does
-- (audit_log_at). The lease then runs its full TTL from that stamp: p_expires is the
-- caller's now + TTL, moved by as much as the stamp was.
CREATE FUNCTION aictl_claim_take(
    p_task BIGINT, p_holder TEXT, p_secret TEXT, p_ttl DOUBLE PRECISION, p_ttl_json TEXT,
    p_expires TEXT, p_stamp TEXT
) RETURNS tasks LANGUAGE plpgsql AS $$
DECLARE
    stamp   TEXT;
    expires TEXT;
    r       tasks;
BEGIN
    PERFORM FROM tasks WHERE id = p_task AND status = 'queued' AND unmet_deps = 0
        FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- read after the candidate (each statement reads the latest commits): the complete that
    -- made it ready or released a lock it needed is then in the chain
    stamp := greatest(p_stamp, (SELECT max(at) FROM audit_log));
    expires := CASE WHEN stamp = p_stamp THEN p_expires ELSE to_char(
        stamp::timestamp + p_ttl * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END;
    UPDATE tasks SET status = 'claimed', lease_holder = p_holder,
        lease_epoch = lease_epoch + 1, lease_secret_hash = p_secret,
        lease_ttl_seconds = p_ttl, lease_expires_at = expires, heartbeat_at = stamp,
        claimed_at = stamp, started_at = NULL, not_before = NULL, attempts = attempts + 1,
        updated_at = stamp
    WHERE id = p_task
    RETURNING * INTO r;
    INSERT INTO path_locks (task_id, glob, holder, lease_epoch, acquired_at)
    SELECT r.id, glob, p_holder, r.lease_epoch, stamp
    FROM jsonb_array_elements_text(r.paths::jsonb) AS glob;
    PERFORM aictl_audit_append(stamp, 'task.claimed', p_holder, r.id,
        '{"attempt":' || r.attempts || ',"epoch":' || r.lease_epoch
        || ',"expires_at":' || to_json(expires)::text
        || ',"paths":' || CASE r.paths WHEN '[]' THEN '[]' ELSE aictl_canonical_array(r.paths) END
        || ',"ttl_seconds":' || p_ttl_json || '}');
    RETURN r;
END $$;

-- Claim the first ready task (priority, then age) whose globs overlap no held lock, and take
-- its path locks, in one transaction holding the writer lock shared, as the store's Python
-- claim does. outcome:
--   'taken'   task is the claimed row;
--   'sweep'   a lease has expired: the store sweeps (an exclusive write) and calls again;
--   'unknown' a candidate's overlap with a held glob is not in glob_pairs yet (as answered by
--             aictl's glob semantics of version p_overlaps): missing holds
--             the pairs (a1, b1, a2, b2, ...); the store decides them and calls again;
--   'none'    nothing claimable; locked counts the ready tasks that path locks kept back.
-- A head of the queue with no paths is taken at once: it takes no path lock, so no other
-- claim's choice depends on it, and its row lock (SKIP LOCKED) keeps the other claims off it.
-- Any other claim walks the queue holding the claims' lock, as the Python path does, skipping
-- rows other claims hold; the row lock of a head with paths is let go first (the
-- subtransaction's rollback), so that no claim ever waits for the claims' lock holding a row.
CREATE FUNCTION aictl_claim(
    p_holder TEXT, p_secret TEXT, p_ttl DOUBLE PRECISION, p_ttl_json TEXT, p_expires TEXT,
    p_stamp TEXT, p_overlaps BIGINT, OUT outcome TEXT, OUT locked BIGINT, OUT missing TEXT[],
    OUT task tasks
) LANGUAGE plpgsql AS $$
DECLARE
    held      TEXT[];
    candidate RECORD;
    blocked   BOOLEAN;
    unknown   TEXT[];
BEGIN
    locked := 0;
    IF EXISTS (SELECT 1 FROM tasks WHERE status IN ('claimed', 'running')
               AND lease_expires_at <= p_stamp) THEN
        outcome := 'sweep';
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1634296692);
    BEGIN
        SELECT id, paths INTO candidate FROM tasks
        WHERE status = 'queued' AND unmet_deps = 0 AND (not_before IS NULL OR not_before <= p_stamp)
        ORDER BY priority DESC, id LIMIT 1
        FOR NO KEY UPDATE SKIP LOCKED;
        IF FOUND AND candidate.paths = '[]' THEN
            task := aictl_claim_take(candidate.id, p_holder, p_secret, p_ttl, p_ttl_json,
                                     p_expires, p_stamp);
            outcome := 'taken';
            RETURN;
        END IF;
        RAISE SQLSTATE 'AICTL';  -- let the head's row lock go
    EXCEPTION WHEN SQLSTATE 'AICTL' THEN
        NULL;
    END;
    PERFORM pg_advisory_xact_lock(1634296694);
    held := ARRAY(SELECT glob FROM path_locks);
    FOR candidate IN
        SELECT id, paths FROM tasks
        WHERE status = 'queued' AND unmet_deps = 0 AND (not_before IS NULL OR not_before <= p_stamp)
        ORDER BY priority DESC, id
    LOOP
        IF candidate.paths <> '[]' AND cardinality(held) > 0 THEN
            SELECT coalesce(bool_or(verdict), false),
                   coalesce(array_agg(ARRAY[least(wanted, glob), greatest(wanted, glob)])
                       FILTER (WHERE verdict IS NULL), '{}')
            INTO blocked, unknown
            FROM (
                SELECT wanted, glob, coalesce(aictl_quick_overlap(wanted, glob), pair.overlap)
                FROM jsonb_array_elements_text(candidate.paths::jsonb) AS wanted
                CROSS JOIN unnest(held) AS glob
                LEFT JOIN glob_pairs AS pair
                    ON pair.version = p_overlaps AND pair.a = least(wanted, glob)
                    AND pair.b = greatest(wanted, glob)
            ) AS pairs (wanted, glob, verdict);
            IF blocked THEN
                locked := locked + 1;
                CONTINUE;
            END IF;
            IF cardinality(unknown) > 0 THEN
                outcome := 'unknown';
                missing := ARRAY(SELECT unnest(unknown));
                RETURN;
            END IF;
        END IF;
        task := aictl_claim_take(candidate.id, p_holder, p_secret, p_ttl, p_ttl_json,
                                 p_expires, p_stamp);
        IF task.id IS NOT NULL THEN
            outcome := 'taken';
            RETURN;
        END IF;
    END LOOP;
    task := NULL;
    outcome := 'none';
END $$;
