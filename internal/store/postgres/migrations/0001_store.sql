-- The store's schema: revisions, desired state, plans, the event log,
-- releases, approvals, the audit trail, API tokens and the engine's unit
-- states: what store/sqlite builds in its migrations 0001 to 0007, in
-- PostgreSQL's types. Times are timestamptz (microseconds, as the store's
-- contract keeps them); JSON documents are jsonb, which rejects what does
-- not parse. Names compared and ordered are COLLATE "C": bytewise, as
-- SQLite's BINARY collation, whatever the database's locale.

CREATE TABLE revisions (
    -- seq is the recording order: it breaks ties between revisions seen at
    -- the same instant and makes (seen_at, seq) a keyset pagination key.
    seq          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha          text    COLLATE "C" NOT NULL UNIQUE CHECK (sha <> ''),
    author       text    NOT NULL,
    email        text    NOT NULL,
    committed_at timestamptz NOT NULL,
    message      text    NOT NULL,
    valid        boolean NOT NULL,
    problems     jsonb   CONSTRAINT revisions_problems_json_array
                         CHECK (problems IS NULL OR jsonb_typeof(problems) = 'array'),
    seen_at      timestamptz NOT NULL
);
CREATE INDEX revisions_seen ON revisions (seen_at, seq);
CREATE INDEX revisions_good_seen ON revisions (seen_at, seq) WHERE valid;

CREATE TABLE desired (
    app        text COLLATE "C" NOT NULL CHECK (app <> ''),
    env        text COLLATE "C" NOT NULL CHECK (env <> ''),
    revision   text COLLATE "C" NOT NULL REFERENCES revisions (sha),
    hash       text NOT NULL,
    spec       jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (app, env)
);
CREATE INDEX desired_revision ON desired (revision);

CREATE TABLE plans (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision    text COLLATE "C" NOT NULL REFERENCES revisions (sha),
    created_at  timestamptz NOT NULL,
    n_create    integer NOT NULL CHECK (n_create >= 0),
    n_update    integer NOT NULL CHECK (n_update >= 0),
    n_delete    integer NOT NULL CHECK (n_delete >= 0),
    n_unchanged integer NOT NULL CHECK (n_unchanged >= 0),
    body        jsonb
);
CREATE INDEX plans_revision ON plans (revision, id);

-- IDs are cursors for followers of the log. A sequence never hands out a
-- number twice; that the numbers become visible in increasing order is the
-- writers' doing: each appends under the events advisory lock (see the
-- package documentation).
CREATE TABLE events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time     timestamptz NOT NULL,
    kind     text COLLATE "C" NOT NULL CHECK (kind <> ''),
    app      text COLLATE "C" NOT NULL,
    env      text COLLATE "C" NOT NULL,
    revision text NOT NULL,
    message  text NOT NULL,
    data     jsonb
);
CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_app_env ON events (app, env, id);

CREATE TABLE releases (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app          text COLLATE "C" NOT NULL CHECK (app <> ''),
    env          text COLLATE "C" NOT NULL CHECK (env <> ''),
    revision     text NOT NULL CHECK (revision <> ''),
    -- NULL if unknown. Not a reference to revisions: a release may pin a
    -- revision socle has not recorded.
    committed_at timestamptz,
    artifact     text NOT NULL,
    config_hash  text NOT NULL,
    strategy     text NOT NULL,
    trigger_kind text NOT NULL CHECK (trigger_kind <> ''),
    author       text NOT NULL,
    status       text COLLATE "C" NOT NULL CHECK (status <> ''),
    reason       text NOT NULL,
    previous     bigint REFERENCES releases (id),
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    notes        jsonb,
    emergency    text NOT NULL DEFAULT '',
    CONSTRAINT releases_finished_when_final CHECK ((status = 'Progressing') = (finished_at IS NULL))
);
-- At most one rollout of a unit at a time.
CREATE UNIQUE INDEX releases_progressing ON releases (app, env) WHERE status = 'Progressing';
CREATE INDEX releases_unit ON releases (app, env, status, id);
CREATE INDEX releases_finished ON releases (finished_at);

CREATE TABLE approvals (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app      text COLLATE "C" NOT NULL CHECK (app <> ''),
    env      text COLLATE "C" NOT NULL CHECK (env <> ''),
    revision text NOT NULL,
    artifact text COLLATE "C" NOT NULL CHECK (artifact <> ''),
    approver text COLLATE "C" NOT NULL CHECK (approver <> ''),
    comment  text NOT NULL,
    at       timestamptz NOT NULL,
    UNIQUE (app, env, artifact, approver)
);

-- The audit trail, chained by prev_hash as package internal/audit defines.
-- seq is one more than the last, assigned under the audit advisory lock;
-- the hash covers it, so a gap or a renumbering shows. detail is canonical
-- JSON text, kept as written (the hash covers its bytes: not jsonb).
CREATE TABLE audit (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    at        timestamptz NOT NULL,
    actor     text NOT NULL CHECK (actor <> ''),
    action    text NOT NULL CHECK (action <> ''),
    app       text NOT NULL,
    env       text NOT NULL,
    revision  text NOT NULL,
    detail    text CONSTRAINT audit_detail_json CHECK (detail IS NULL OR detail::json IS NOT NULL),
    prev_hash text NOT NULL,
    hash      text NOT NULL UNIQUE
);

-- Append-only: socle never changes or removes a record. The trigger stops
-- mistakes; tampering by someone who can drop it is what the chain shows.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- API tokens: the hash of each secret, never the secret. NULL: never.
CREATE TABLE tokens (
    id          text COLLATE "C" PRIMARY KEY CHECK (id <> ''),
    owner       text COLLATE "C" NOT NULL CHECK (owner <> ''),
    hash        text NOT NULL CHECK (hash <> ''),
    description text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    last_used   timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX tokens_owner ON tokens (owner, created_at);

-- The engine's record of each unit besides its desired state (see
-- store.UnitState): the operation in progress, the failed target, the
-- status last reported.
CREATE TABLE unit_states (
    kind               text COLLATE "C" NOT NULL CHECK (kind <> ''),
    name               text COLLATE "C" NOT NULL CHECK (name <> ''),
    env                text COLLATE "C" NOT NULL CHECK (env <> ''),
    -- op_phase is NULL when there is no operation, and then so is every op_ column.
    op_phase           text CHECK (op_phase IS NULL OR op_phase <> ''),
    op_release         bigint REFERENCES releases (id),
    op_revision        text,
    op_artifact        text,
    op_config          text,
    op_step            integer CHECK (op_step IS NULL OR op_step >= 0),
    op_step_started_at timestamptz,
    op_step_data       jsonb,
    -- failed_revision is NULL when there is no failed target.
    failed_release     bigint REFERENCES releases (id),
    failed_revision    text,
    failed_artifact    text,
    failed_config      text,
    status             jsonb,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (kind, env, name),
    CONSTRAINT unit_states_operation_whole CHECK ((op_phase IS NULL) = (op_step IS NULL) AND (op_phase IS NULL) = (op_revision IS NULL))
);
