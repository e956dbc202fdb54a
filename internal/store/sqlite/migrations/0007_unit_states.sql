-- The engine's record of each unit (kind, name, environment or zone)
-- besides its desired state: the operation in progress as a persisted
-- state machine (a rollout: its release, target, phase, step, when the
-- step began and what it keeps, such as a canary's analysis baseline), the
-- target whose operation failed (not retried until the desired state
-- changes), and the status last reported. Times are INTEGER microseconds
-- since the Unix epoch (UTC).

CREATE TABLE unit_states (
    kind               TEXT    NOT NULL CHECK (kind <> ''),
    name               TEXT    NOT NULL CHECK (name <> ''),
    env                TEXT    NOT NULL CHECK (env <> ''),
    -- The operation in progress: op_phase is NULL when there is none, and
    -- then so is every op_ column.
    op_phase           TEXT    CHECK (op_phase IS NULL OR op_phase <> ''),
    op_release         INTEGER REFERENCES releases (id),
    op_revision        TEXT,
    op_artifact        TEXT,
    op_config          TEXT,
    op_step            INTEGER CHECK (op_step IS NULL OR op_step >= 0),
    op_step_started_at INTEGER,
    op_step_data       TEXT    CHECK (op_step_data IS NULL OR json_valid(op_step_data)),
    -- The failed target: failed_revision is NULL when there is none.
    failed_release     INTEGER REFERENCES releases (id),
    failed_revision    TEXT,
    failed_artifact    TEXT,
    failed_config      TEXT,
    status             TEXT    CHECK (status IS NULL OR json_valid(status)),
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (kind, env, name),
    CONSTRAINT unit_states_operation_whole CHECK ((op_phase IS NULL) = (op_step IS NULL) AND (op_phase IS NULL) = (op_revision IS NULL))
);
