-- Reply deadlines in business time: when a message becomes at risk (computed at receipt,
-- like due_at), when each of at-risk and breached was recorded (once each), and when the
-- message left the open queue (answered or closed), which freezes its deadline state.
ALTER TABLE inbound_messages ADD COLUMN at_risk_at TIMESTAMP;
UPDATE inbound_messages SET at_risk_at = due_at - INTERVAL '30 minutes';
ALTER TABLE inbound_messages ALTER COLUMN at_risk_at SET NOT NULL;
ALTER TABLE inbound_messages ADD COLUMN at_risk_noted_at TIMESTAMP;
ALTER TABLE inbound_messages ADD COLUMN breached_noted_at TIMESTAMP;
ALTER TABLE inbound_messages ADD COLUMN settled_at TIMESTAMP;
CREATE INDEX inbound_at_risk ON inbound_messages(state, at_risk_at);

-- Customers: a merged-away record points at the one it was merged into (GET follows it).
ALTER TABLE customers ADD COLUMN merged_into TEXT REFERENCES customers(id);
CREATE INDEX customers_crm_ref ON customers(crm_ref);
CREATE INDEX customer_handles_handle ON customer_handles(handle);

-- Users managed over the API: a disabled user cannot sign in; a set-password link holds a
-- one-time token, stored hashed, valid 24 hours, used once.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE password_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX password_tokens_user ON password_tokens(user_id);
