-- API tokens: the hash of each secret, never the secret. Times are INTEGER
-- microseconds since the Unix epoch (UTC); 0 means never.

CREATE TABLE tokens (
    id          TEXT    PRIMARY KEY CHECK (id <> ''),
    user        TEXT    NOT NULL CHECK (user <> ''),
    hash        TEXT    NOT NULL CHECK (hash <> ''),
    description TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    last_used   INTEGER NOT NULL,
    revoked_at  INTEGER NOT NULL
);

CREATE INDEX tokens_user ON tokens (user, created_at);
