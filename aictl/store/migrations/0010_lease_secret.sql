-- Lease tokens carry a random secret (issue 13): `<task>:<epoch>` alone can be guessed, so
-- every fenced write also compares the SHA-256 of the token's secret with this column. Only
-- the hash is stored; the secret itself is known to the holder alone. Leases granted before
-- this migration have no hash and so accept no token: they expire and return to the queue.
ALTER TABLE tasks ADD COLUMN lease_secret_hash TEXT;
