-- The verifiable log (spec/audit.md): the stored Merkle tree, the log's identity, and
-- checks that refuse rewriting an entry. The service's own role should also lack UPDATE,
-- DELETE and TRUNCATE on these tables (docs/operations.md).

-- Perfect subtrees above the leaves: node (level, idx) is the RFC 6962 hash of the 2^level
-- leaves from leaf idx * 2^level. Level 0 is audit_entries.leaf_hash.
CREATE TABLE audit_tree (
    level INTEGER NOT NULL CHECK (level >= 1 AND level < 64),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
CREATE TRIGGER audit_tree_no_change BEFORE UPDATE OR DELETE ON audit_tree
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

ALTER TABLE audit_head ADD COLUMN tree_size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_entries ADD CONSTRAINT audit_entries_seq_positive CHECK (seq > 0);

CREATE FUNCTION audit_next_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq IS DISTINCT FROM (SELECT size + 1 FROM audit_head WHERE id = 1) THEN
        RAISE EXCEPTION 'an audit entry must take the next seq (got %)', NEW.seq;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_entries_next_seq BEFORE INSERT ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_next_seq();

CREATE FUNCTION audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.id IS DISTINCT FROM OLD.id
       OR NEW.size < OLD.size OR NEW.size > OLD.size + 1
       OR NEW.tree_size < OLD.tree_size OR NEW.tree_size > NEW.size
       OR (NEW.size = OLD.size + 1
           AND NOT EXISTS (SELECT 1 FROM audit_entries WHERE seq = NEW.size)) THEN
        RAISE EXCEPTION 'the audit head only moves forward, one entry at a time';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_head_forward BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_size_positive
    CHECK (tree_size >= 0);
CREATE FUNCTION audit_checkpoint_in_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tree_size > (SELECT size FROM audit_head WHERE id = 1) THEN
        RAISE EXCEPTION 'a checkpoint must name a size of the log (got %)', NEW.tree_size;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_checkpoints_in_log BEFORE INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_in_log();

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    origin          TEXT NOT NULL,
    verifier_key    TEXT NOT NULL,
    retention_years INTEGER NOT NULL CHECK (retention_years >= 1),
    created_at      TIMESTAMP NOT NULL
);
CREATE FUNCTION audit_log_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.id IS DISTINCT FROM OLD.id
       OR NEW.origin IS DISTINCT FROM OLD.origin
       OR NEW.verifier_key IS DISTINCT FROM OLD.verifier_key
       OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.retention_years < OLD.retention_years THEN
        RAISE EXCEPTION 'the log''s origin and key are fixed, and retention never shrinks';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_fixed BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_fixed();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- An approval stops counting when the text found at posting time is not the one approved
-- (post.refused) or, later, when it expires: the row stays, as the log's entries do.
ALTER TABLE reviews ADD COLUMN voided_at TIMESTAMP;
