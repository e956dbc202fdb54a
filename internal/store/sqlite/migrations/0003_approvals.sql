-- Approvals of an artifact for an environment, for promotion gates: one per
-- user. Times are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE approvals (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    app      TEXT    NOT NULL CHECK (app <> ''),
    env      TEXT    NOT NULL CHECK (env <> ''),
    revision TEXT    NOT NULL,
    artifact TEXT    NOT NULL CHECK (artifact <> ''),
    approver TEXT    NOT NULL CHECK (approver <> ''),
    comment  TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    UNIQUE (app, env, artifact, approver)
);
