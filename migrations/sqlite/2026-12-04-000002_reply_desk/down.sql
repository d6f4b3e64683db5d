DROP INDEX inbound_at_risk;
ALTER TABLE inbound_messages DROP COLUMN settled_at;
ALTER TABLE inbound_messages DROP COLUMN breached_noted_at;
ALTER TABLE inbound_messages DROP COLUMN at_risk_noted_at;
ALTER TABLE inbound_messages DROP COLUMN at_risk_at;
