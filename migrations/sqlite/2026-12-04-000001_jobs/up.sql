-- One durable job queue for every background job (posting, e-mail, ...), replacing the
-- posting-only outbox. A job is written in the transaction of the change that causes it;
-- a worker leases it (owner + expiry), runs it outside any transaction, and ends or
-- reschedules it in the transaction that records the result.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    -- At most one job per key (a draft has one post job, re-armed by a new approval).
    unique_key       TEXT UNIQUE,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at  TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    last_error       TEXT,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX jobs_due ON jobs(state, next_attempt_at);
CREATE INDEX jobs_kind ON jobs(kind, created_at);

-- The outbox's jobs keep their ids: the id is the channel's idempotency key, so a post
-- made before the upgrade is still recognised on a retry after it.
INSERT INTO jobs (id, kind, unique_key, payload, state, attempts, max_attempts,
                  next_attempt_at, lease_owner, lease_expires_at, last_error,
                  created_at, updated_at)
SELECT id, 'post', 'post:' || draft_id, json_object('draft_id', draft_id, 'channel', channel),
       CASE state WHEN 'refused' THEN 'cancelled' ELSE state END,
       attempts, MAX(attempts, 0) + 8, next_attempt_at,
       CASE WHEN locked_until IS NULL THEN NULL ELSE 'outbox' END, locked_until, last_error,
       created_at, updated_at
FROM post_jobs;

DROP TABLE post_jobs;

-- A failed attempt now leaves the draft `approved` (retried); `post_failed` is final.
UPDATE drafts SET state = 'approved'
WHERE state = 'post_failed'
  AND id IN (SELECT json_extract(payload, '$.draft_id') FROM jobs WHERE kind = 'post' AND state = 'pending');
