ALTER TABLE reviews DROP COLUMN step;
ALTER TABLE drafts DROP COLUMN route;
DROP TABLE review_group_members;
DROP TABLE review_groups;
