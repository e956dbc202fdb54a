-- Releases: every rollout of a unit (app, environment), what it deployed and
-- how it ended, for history, release notes, recovery after a restart and
-- DORA figures. Times are INTEGER microseconds since the Unix epoch (UTC);
-- NULL where a time is unknown or not yet come.

CREATE TABLE releases (
    -- AUTOINCREMENT: an ID names a release in audit records and for
    -- rollbacks, and must never be reused.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app          TEXT    NOT NULL CHECK (app <> ''),
    env          TEXT    NOT NULL CHECK (env <> ''),
    revision     TEXT    NOT NULL CHECK (revision <> ''),
    -- The commit time of revision, for lead time; NULL if unknown. Not a
    -- reference to revisions: a release may pin a revision socle has not
    -- recorded.
    committed_at INTEGER,
    artifact     TEXT    NOT NULL,
    config_hash  TEXT    NOT NULL,
    strategy     TEXT    NOT NULL,
    trigger_kind TEXT    NOT NULL CHECK (trigger_kind <> ''),
    author       TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status <> ''),
    reason       TEXT    NOT NULL,
    previous     INTEGER REFERENCES releases (id),
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    notes        TEXT    CONSTRAINT releases_notes_json CHECK (notes IS NULL OR json_valid(notes)),
    CONSTRAINT releases_finished_when_final CHECK ((status = 'Progressing') = (finished_at IS NULL))
);
-- At most one rollout of a unit at a time.
CREATE UNIQUE INDEX releases_progressing ON releases (app, env) WHERE status = 'Progressing';
CREATE INDEX releases_unit ON releases (app, env, status, id);
CREATE INDEX releases_finished ON releases (finished_at);
