CREATE TABLE post_jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    draft_id        TEXT NOT NULL UNIQUE REFERENCES drafts(id),
    channel         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until    TIMESTAMP,
    last_error      TEXT,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX post_jobs_due ON post_jobs(state, next_attempt_at);
INSERT INTO post_jobs
SELECT id, payload::json->>'draft_id', payload::json->>'channel',
       CASE state WHEN 'cancelled' THEN 'refused' WHEN 'failed' THEN 'pending' ELSE state END,
       attempts, next_attempt_at, lease_expires_at, last_error, created_at, updated_at
FROM jobs WHERE kind = 'post';
DROP TABLE jobs;
