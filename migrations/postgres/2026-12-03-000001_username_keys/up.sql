-- Usernames are compared in a canonical form (NFKC + case folding) and refused when their
-- confusable skeletons (Unicode TR39, taken after and before case folding) meet another
-- user's. SQL cannot compute either, so
-- the service fills both columns for existing users at start (app::users::fill_username_keys);
-- a user whose forms clash with an earlier user's keeps NULL until renamed, and the service
-- refuses to start while any does.
ALTER TABLE users ADD COLUMN username_canonical TEXT;
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
ALTER TABLE users ADD COLUMN username_skeleton_cased TEXT;
CREATE UNIQUE INDEX users_username_canonical ON users(username_canonical);
CREATE UNIQUE INDEX users_username_skeleton ON users(username_skeleton);
CREATE UNIQUE INDEX users_username_skeleton_cased ON users(username_skeleton_cased);
