-- One round trip per audit entry while the head row is locked (issue 19): the service
-- sends the entry's canonical body around the two values only the database knows at that
-- moment (the time, raised to the last entry's, and seq), and this function takes the head
-- lock, fills them in, inserts the entry with its leaf hash SHA-256(0x00 || body), stores
-- the perfect subtrees the leaf completes (RFC 6962: SHA-256(0x01 || left || right)) and
-- moves the head: what db::audit::flush_pending does statement by statement on SQLite.
-- The triggers of the audit tables still check every step. SECURITY INVOKER: it runs with
-- the rights of the role that calls it.
CREATE FUNCTION audit_append(
    p_at TIMESTAMP, p_actor TEXT, p_action TEXT, p_subject TEXT,
    p_head TEXT, p_middle TEXT, p_tail TEXT
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    h_size BIGINT;
    h_tree BIGINT;
    last_at TIMESTAMP;
    v_at TIMESTAMP;
    v_seq BIGINT;
    v_body TEXT;
    v_leaf BYTEA;
    v_hash BYTEA;
    v_sibling BYTEA;
    v_level INTEGER := 0;
    v_i BIGINT;
BEGIN
    UPDATE audit_head SET size = size WHERE id = 1 RETURNING size, tree_size INTO h_size, h_tree;
    IF h_size IS NULL THEN
        RAISE EXCEPTION 'the audit head row is missing';
    END IF;
    -- A statement of its own, so it sees the entry committed while this one waited.
    SELECT at INTO last_at FROM audit_entries WHERE seq = h_size;
    v_at := GREATEST(p_at, last_at);
    v_seq := h_size + 1;
    v_body := p_head || to_char(v_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || p_middle
        || v_seq::TEXT || p_tail;
    v_leaf := sha256('\x00'::BYTEA || convert_to(v_body, 'UTF8'));
    INSERT INTO audit_entries (seq, at, actor, action, subject, body, leaf_hash)
        VALUES (v_seq, v_at, p_actor, p_action, p_subject, v_body, encode(v_leaf, 'hex'));
    IF h_tree = h_size THEN
        v_i := h_size;
        v_hash := v_leaf;
        WHILE v_i % 2 = 1 LOOP
            IF v_level = 0 THEN
                SELECT decode(leaf_hash, 'hex') INTO v_sibling FROM audit_entries WHERE seq = v_i;
            ELSE
                SELECT hash INTO v_sibling FROM audit_tree WHERE level = v_level AND idx = v_i - 1;
            END IF;
            IF v_sibling IS NULL THEN
                RAISE EXCEPTION 'the audit tree lacks node (%, %)', v_level, v_i - 1;
            END IF;
            v_hash := sha256('\x01'::BYTEA || v_sibling || v_hash);
            v_level := v_level + 1;
            v_i := v_i / 2;
            INSERT INTO audit_tree (level, idx, hash) VALUES (v_level, v_i, v_hash);
        END LOOP;
        h_tree := v_seq;
    END IF;
    UPDATE audit_head SET size = v_seq, tree_size = h_tree WHERE id = 1;
    RETURN v_seq;
END;
$$;
