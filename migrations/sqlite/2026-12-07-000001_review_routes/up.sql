-- Review routes: reviewer groups that admins fill, the route a draft takes (its plan, as
-- JSON: steps, each a group and how many of it must approve), and the step an approval
-- counted for.
CREATE TABLE review_groups (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE review_group_members (
    group_id TEXT NOT NULL REFERENCES review_groups(id),
    user_id  TEXT NOT NULL REFERENCES users(id),
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX review_group_members_user ON review_group_members(user_id);

ALTER TABLE drafts ADD COLUMN route TEXT;
ALTER TABLE reviews ADD COLUMN step INTEGER;
