DROP INDEX users_username_skeleton_cased;
DROP INDEX users_username_skeleton;
DROP INDEX users_username_canonical;
ALTER TABLE users DROP COLUMN username_skeleton_cased;
ALTER TABLE users DROP COLUMN username_skeleton;
ALTER TABLE users DROP COLUMN username_canonical;
