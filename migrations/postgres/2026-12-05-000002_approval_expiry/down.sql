DROP INDEX drafts_approved;
ALTER TABLE drafts DROP COLUMN approved_at;
