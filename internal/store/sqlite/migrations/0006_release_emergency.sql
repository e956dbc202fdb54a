-- A release made as an emergency change (it passed the soak, the windows
-- and the freezes) keeps the reason it was declared with, for its review
-- and the DORA figures; '' for every other release.

ALTER TABLE releases ADD COLUMN emergency TEXT NOT NULL DEFAULT '';
