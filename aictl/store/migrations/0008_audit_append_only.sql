-- Close the holes an append-only guard of UPDATE and DELETE leaves open.
--
-- `INSERT OR REPLACE` of an existing row deletes it and inserts the new one, and that delete
-- fires no DELETE trigger (unless `PRAGMA recursive_triggers` is on, which the writer of the
-- REPLACE decides, not us). So a REPLACE could rewrite the head row in place with the guards
-- still standing. A row is accepted only if it extends the head: its sequence number is one
-- past the last, and its previous hash is the last row's hash (the genesis hash on an empty
-- log). A BEFORE trigger runs before the REPLACE's conflict resolution, so the row it would
-- replace is still there to compare with.
CREATE TRIGGER audit_log_extend_head BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT coalesce(
       (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
       '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: a new row must extend the head');
END;

-- Decision records are written once and never changed: the same guards, REPLACE included.
-- Each record's digest is also kept in its `policy.decision` audit row (see
-- aictl/store/decisions.py), so a record changed with the guards dropped is still caught.
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decision records are append-only');
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
