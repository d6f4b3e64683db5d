-- When a draft was approved (or retried), for the approval's time to live
-- (COUNTERSIGN_APPROVAL_TTL_HOURS): an approval not posted within it goes back to review.
ALTER TABLE drafts ADD COLUMN approved_at TIMESTAMP;
UPDATE drafts SET approved_at = updated_at WHERE state = 'approved';
CREATE INDEX drafts_approved ON drafts(state, approved_at);
