-- Maintenance mode: an app in an environment (app = '' for the whole
-- environment) whose routes socle's proxy answers with a 503 page until it
-- is resumed. Times are INTEGER microseconds since the Unix epoch (UTC);
-- retry_after is in seconds.
CREATE TABLE pauses (
    app         TEXT    NOT NULL,
    env         TEXT    NOT NULL CHECK (env <> ''),
    message     TEXT    NOT NULL,
    retry_after INTEGER NOT NULL CHECK (retry_after >= 0),
    paused_by   TEXT    NOT NULL CHECK (paused_by <> ''),
    paused_at   INTEGER NOT NULL,
    PRIMARY KEY (env, app)
);
