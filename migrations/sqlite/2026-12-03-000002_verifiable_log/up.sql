-- The verifiable log (spec/audit.md): the stored Merkle tree, the log's identity, and
-- triggers that refuse every way of rewriting an entry that SQLite offers.

-- Perfect subtrees above the leaves: node (level, idx) is the RFC 6962 hash of the 2^level
-- leaves from leaf idx * 2^level. Level 0 is audit_entries.leaf_hash. Written in the
-- transaction of the entry that completes the subtree.
CREATE TABLE audit_tree (
    level INTEGER NOT NULL CHECK (level >= 1 AND level < 64),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END;
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END;
-- REPLACE deletes the old row without firing a DELETE trigger: refuse it on insert.
CREATE TRIGGER audit_tree_no_replace BEFORE INSERT ON audit_tree
WHEN EXISTS (SELECT 1 FROM audit_tree WHERE level = NEW.level AND idx = NEW.idx)
BEGIN SELECT RAISE(ABORT, 'the audit tree is append-only'); END;

-- How many leaves the stored tree covers; equal to size except while a log written before
-- this migration is being filled in.
ALTER TABLE audit_head ADD COLUMN tree_size BIGINT NOT NULL DEFAULT 0;

-- An entry takes exactly the next seq: no REPLACE over an old one, no seq 0 or below, no
-- gap. (The head moves after the insert, in the same transaction.)
CREATE TRIGGER audit_entries_next_seq BEFORE INSERT ON audit_entries
WHEN NEW.seq IS NOT (SELECT size FROM audit_head WHERE id = 1) + 1
BEGIN SELECT RAISE(ABORT, 'an audit entry must take the next seq'); END;

-- The head moves forward one entry at a time, onto an entry that exists.
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
WHEN NEW.id IS NOT OLD.id
  OR NEW.size < OLD.size OR NEW.size > OLD.size + 1
  OR NEW.tree_size < OLD.tree_size OR NEW.tree_size > NEW.size
  OR (NEW.size = OLD.size + 1 AND NOT EXISTS (SELECT 1 FROM audit_entries WHERE seq = NEW.size))
BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward, one entry at a time'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END;
CREATE TRIGGER audit_head_no_insert BEFORE INSERT ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit head cannot be replaced'); END;

CREATE TRIGGER audit_checkpoints_no_replace BEFORE INSERT ON audit_checkpoints
WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE tree_size = NEW.tree_size)
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
-- A checkpoint names a size the log has: 0 to the head.
CREATE TRIGGER audit_checkpoints_in_log BEFORE INSERT ON audit_checkpoints
WHEN NEW.tree_size < 0 OR NEW.tree_size > (SELECT size FROM audit_head WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'a checkpoint must name a size of the log'); END;

-- The log's identity, recorded at its first start: the checkpoints' origin and verifier
-- key, and the retention period, which may grow but never shrink.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    origin          TEXT NOT NULL,
    verifier_key    TEXT NOT NULL,
    retention_years INTEGER NOT NULL CHECK (retention_years >= 1),
    created_at      TIMESTAMP NOT NULL
);
CREATE TRIGGER audit_log_fixed BEFORE UPDATE ON audit_log
WHEN NEW.id IS NOT OLD.id OR NEW.origin IS NOT OLD.origin
  OR NEW.verifier_key IS NOT OLD.verifier_key OR NEW.created_at IS NOT OLD.created_at
  OR NEW.retention_years < OLD.retention_years
BEGIN SELECT RAISE(ABORT, 'the log''s origin and key are fixed, and retention never shrinks'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the log''s identity cannot be deleted'); END;
CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
WHEN EXISTS (SELECT 1 FROM audit_log)
BEGIN SELECT RAISE(ABORT, 'the log''s identity cannot be replaced'); END;

-- An approval stops counting when the text found at posting time is not the one approved
-- (post.refused) or, later, when it expires: the row stays, as the log's entries do.
ALTER TABLE reviews ADD COLUMN voided_at TIMESTAMP;
