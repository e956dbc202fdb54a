-- The store's first schema: revisions, desired state, plans and the event log.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC). JSON documents are
-- TEXT that the database checks with json_valid, as PostgreSQL's jsonb would.
-- Text is ordered bytewise (SQLite's BINARY collation; COLLATE "C" in
-- PostgreSQL).

CREATE TABLE revisions (
    -- seq is the recording order: it breaks ties between revisions seen at
    -- the same instant and makes (seen_at, seq) a keyset pagination key.
    seq          INTEGER PRIMARY KEY,
    sha          TEXT    NOT NULL UNIQUE CHECK (sha <> ''),
    author       TEXT    NOT NULL,
    email        TEXT    NOT NULL,
    committed_at INTEGER NOT NULL,
    message      TEXT    NOT NULL,
    valid        INTEGER NOT NULL CHECK (valid IN (0, 1)),
    problems     TEXT    CONSTRAINT revisions_problems_json_array
                         CHECK (problems IS NULL OR (json_valid(problems) AND json_type(problems) = 'array')),
    seen_at      INTEGER NOT NULL
);
CREATE INDEX revisions_seen ON revisions (seen_at, seq);
CREATE INDEX revisions_good_seen ON revisions (seen_at, seq) WHERE valid = 1;

CREATE TABLE desired (
    app        TEXT    NOT NULL CHECK (app <> ''),
    env        TEXT    NOT NULL CHECK (env <> ''),
    revision   TEXT    NOT NULL REFERENCES revisions (sha),
    hash       TEXT    NOT NULL,
    spec       TEXT    NOT NULL CONSTRAINT desired_spec_json CHECK (json_valid(spec)),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (app, env)
);
CREATE INDEX desired_revision ON desired (revision);

CREATE TABLE plans (
    -- AUTOINCREMENT: an ID is never reused, even once old plans are pruned.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    revision    TEXT    NOT NULL REFERENCES revisions (sha),
    created_at  INTEGER NOT NULL,
    n_create    INTEGER NOT NULL CHECK (n_create >= 0),
    n_update    INTEGER NOT NULL CHECK (n_update >= 0),
    n_delete    INTEGER NOT NULL CHECK (n_delete >= 0),
    n_unchanged INTEGER NOT NULL CHECK (n_unchanged >= 0),
    body        TEXT    CONSTRAINT plans_body_json CHECK (body IS NULL OR json_valid(body))
);
CREATE INDEX plans_revision ON plans (revision, id);

CREATE TABLE events (
    -- AUTOINCREMENT: IDs are cursors for followers of the log and must never
    -- be reused, even once old events are pruned.
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    time     INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind <> ''),
    app      TEXT    NOT NULL,
    env      TEXT    NOT NULL,
    revision TEXT    NOT NULL,
    message  TEXT    NOT NULL,
    data     TEXT    CONSTRAINT events_data_json CHECK (data IS NULL OR json_valid(data))
);
CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_app_env ON events (app, env, id);
