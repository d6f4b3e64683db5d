-- Real channels. A post job names the channel it posts on, so an instance that cannot post
-- there (its post log is not the recorded one) leaves the job to one that can.
ALTER TABLE jobs ADD COLUMN channel TEXT;
UPDATE jobs SET channel = payload::json ->> 'channel' WHERE kind = 'post';
CREATE INDEX jobs_channel ON jobs(state, channel);

-- What a network said about a posted reply: its address, beside the post id.
ALTER TABLE drafts ADD COLUMN post_url TEXT;

-- Mastodon replies keep the visibility of the post they answer (a direct mention is
-- answered directly, never in public). NULL for other channels.
ALTER TABLE inbound_messages ADD COLUMN visibility TEXT;

-- Each channel's own state, shared by every instance on this database: refreshed OAuth
-- tokens (rotating, single-use refresh tokens must never be spent twice), the last mention
-- read, the identity of the log channel's file.
CREATE TABLE channel_state (
    channel    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (channel, key)
);
