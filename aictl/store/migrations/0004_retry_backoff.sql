-- Retry backoff: a requeued task is not claimed before `not_before` (NULL = at once).
--
-- The claim walk still uses the partial index tasks_ready and filters on this column per row:
-- tasks in backoff are few, so the walk stays short.
ALTER TABLE tasks ADD COLUMN not_before TEXT;
