-- Countersign schema, PostgreSQL flavour. Ids are UUIDv7 strings; timestamps are UTC.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    email         TEXT,
    roles         TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE login_failures (
    id          TEXT PRIMARY KEY NOT NULL,
    username    TEXT NOT NULL,
    remote_addr TEXT NOT NULL,
    at          TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_username ON login_failures(username, at);
CREATE INDEX login_failures_addr ON login_failures(remote_addr, at);

CREATE TABLE customers (
    id         TEXT PRIMARY KEY NOT NULL,
    crm_ref    TEXT,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE customer_handles (
    channel          TEXT NOT NULL,
    handle           TEXT NOT NULL,
    customer_id      TEXT NOT NULL REFERENCES customers(id),
    external_user_id TEXT,
    created_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (channel, handle)
);
CREATE INDEX customer_handles_customer ON customer_handles(customer_id);

CREATE TABLE inbound_messages (
    id            TEXT PRIMARY KEY NOT NULL,
    channel       TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    customer_id   TEXT NOT NULL REFERENCES customers(id),
    author_handle TEXT NOT NULL,
    text          TEXT NOT NULL,
    received_at   TIMESTAMP NOT NULL,
    due_at        TIMESTAMP NOT NULL,
    state         TEXT NOT NULL,
    closed_reason TEXT,
    created_at    TIMESTAMP NOT NULL,
    UNIQUE (channel, external_id)
);
CREATE INDEX inbound_state_due ON inbound_messages(state, due_at);
CREATE INDEX inbound_customer ON inbound_messages(customer_id);

CREATE TABLE drafts (
    id               TEXT PRIMARY KEY NOT NULL,
    inbound_id       TEXT NOT NULL REFERENCES inbound_messages(id),
    author_id        TEXT NOT NULL REFERENCES users(id),
    state            TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    text             TEXT NOT NULL,
    check_report     TEXT NOT NULL,
    approvals_needed INTEGER NOT NULL,
    post_id          TEXT,
    posted_at        TIMESTAMP,
    post_error       TEXT,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX drafts_state ON drafts(state, updated_at);
CREATE INDEX drafts_inbound ON drafts(inbound_id);

CREATE TABLE draft_revisions (
    draft_id     TEXT NOT NULL REFERENCES drafts(id),
    revision     INTEGER NOT NULL,
    text         TEXT NOT NULL,
    author_id    TEXT NOT NULL REFERENCES users(id),
    check_report TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (draft_id, revision)
);

CREATE TABLE reviews (
    id          TEXT PRIMARY KEY NOT NULL,
    draft_id    TEXT NOT NULL REFERENCES drafts(id),
    revision    INTEGER NOT NULL,
    reviewer_id TEXT NOT NULL REFERENCES users(id),
    decision    TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX reviews_draft ON reviews(draft_id, revision);

-- The outbox: a post job is written in the transaction that approves the draft.
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

-- One row: the size of the audit log. Every write transaction locks it first, which
-- serialises appends (seq stays gap-free) and, on SQLite, takes the write lock up front.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO audit_head (id, size) VALUES (1, 0);

CREATE TABLE audit_entries (
    seq       BIGINT PRIMARY KEY NOT NULL,
    at        TIMESTAMP NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT,
    body      TEXT NOT NULL,
    leaf_hash TEXT NOT NULL
);
CREATE INDEX audit_actor ON audit_entries(actor, seq);
CREATE INDEX audit_action ON audit_entries(action, seq);
CREATE INDEX audit_subject ON audit_entries(subject, seq);
CREATE INDEX audit_at ON audit_entries(at);

CREATE TABLE audit_checkpoints (
    tree_size  BIGINT PRIMARY KEY NOT NULL,
    root_hash  TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit tables are append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
