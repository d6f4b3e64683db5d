DROP TABLE channel_state;
ALTER TABLE inbound_messages DROP COLUMN visibility;
ALTER TABLE drafts DROP COLUMN post_url;
DROP INDEX jobs_channel;
ALTER TABLE jobs DROP COLUMN channel;
