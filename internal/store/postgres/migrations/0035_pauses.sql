-- Maintenance mode: an app in an environment (app = '' for the whole
-- environment) whose routes socle's proxy answers with a 503 page until it
-- is resumed; retry_after is in seconds.
CREATE TABLE pauses (
    app         text COLLATE "C" NOT NULL,
    env         text COLLATE "C" NOT NULL CHECK (env <> ''),
    message     text        NOT NULL,
    retry_after bigint      NOT NULL CHECK (retry_after >= 0),
    paused_by   text        NOT NULL CHECK (paused_by <> ''),
    paused_at   timestamptz NOT NULL,
    PRIMARY KEY (env, app)
);
