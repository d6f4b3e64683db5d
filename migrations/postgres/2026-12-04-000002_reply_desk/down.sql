DROP INDEX customer_handles_handle;
DROP INDEX customers_crm_ref;
ALTER TABLE customers DROP COLUMN merged_into;
DROP INDEX inbound_at_risk;
ALTER TABLE inbound_messages DROP COLUMN settled_at;
ALTER TABLE inbound_messages DROP COLUMN breached_noted_at;
ALTER TABLE inbound_messages DROP COLUMN at_risk_noted_at;
ALTER TABLE inbound_messages DROP COLUMN at_risk_at;
