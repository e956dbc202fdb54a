-- The tables of package cost (internal/cost): daily cost aggregates, kept
-- per (source, billing period) so that a restated month replaces the old
-- one; the imports that brought them; how their costs were allocated; and
-- the budget alerts raised, each once per (budget, month, threshold, kind).
--
-- Days are TEXT 'YYYY-MM-DD' and months 'YYYY-MM' (DATE and a text month in
-- PostgreSQL); amounts are REAL, summed by SQLite with compensation; times
-- are INTEGER microseconds since the Unix epoch.

CREATE TABLE cost_imports (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    charges INTEGER NOT NULL,
    files   TEXT    NOT NULL CHECK (json_valid(files)),   -- [{name, sha256, format, charges}]
    periods TEXT    NOT NULL CHECK (json_valid(periods)) -- ["source period", …]
);

CREATE TABLE cost_import_files (
    import_id INTEGER NOT NULL REFERENCES cost_imports (id) ON DELETE CASCADE,
    sha256    TEXT    NOT NULL
);
CREATE INDEX cost_import_files_sha256 ON cost_import_files (sha256);

CREATE TABLE cost_periods (
    id        INTEGER PRIMARY KEY,
    source    TEXT    NOT NULL,
    period    TEXT    NOT NULL,
    charges   INTEGER NOT NULL,
    import_id INTEGER NOT NULL REFERENCES cost_imports (id),
    UNIQUE (source, period)
);
CREATE INDEX cost_periods_import ON cost_periods (import_id);

CREATE TABLE cost_daily (
    period_id INTEGER NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    day       TEXT    NOT NULL,
    provider  TEXT    NOT NULL,
    account   TEXT    NOT NULL,
    service   TEXT    NOT NULL,
    region    TEXT    NOT NULL,
    category  TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    team      TEXT    NOT NULL,
    app       TEXT    NOT NULL,
    env       TEXT    NOT NULL,
    zone      TEXT    NOT NULL,
    billed    REAL    NOT NULL,
    effective REAL    NOT NULL,
    list      REAL    NOT NULL
);
CREATE INDEX cost_daily_day ON cost_daily (day);
CREATE INDEX cost_daily_period ON cost_daily (period_id);

-- cost_monthly sums cost_daily by calendar month (of the day, not of the
-- billing period), written with it: reports over whole months read 30 times
-- fewer rows.
CREATE TABLE cost_monthly (
    period_id INTEGER NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    month     TEXT    NOT NULL,
    provider  TEXT    NOT NULL,
    account   TEXT    NOT NULL,
    service   TEXT    NOT NULL,
    region    TEXT    NOT NULL,
    category  TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    team      TEXT    NOT NULL,
    app       TEXT    NOT NULL,
    env       TEXT    NOT NULL,
    zone      TEXT    NOT NULL,
    billed    REAL    NOT NULL,
    effective REAL    NOT NULL,
    list      REAL    NOT NULL
);
CREATE INDEX cost_monthly_month ON cost_monthly (month);
CREATE INDEX cost_monthly_period ON cost_monthly (period_id);

CREATE TABLE cost_coverage (
    period_id INTEGER NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    dim       TEXT    NOT NULL,
    method    TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    charges   INTEGER NOT NULL,
    billed    REAL    NOT NULL,
    effective REAL    NOT NULL,
    list      REAL    NOT NULL
);
CREATE INDEX cost_coverage_period ON cost_coverage (period_id);

CREATE TABLE cost_alerts (
    id          INTEGER PRIMARY KEY,
    budget      TEXT    NOT NULL,
    month       TEXT    NOT NULL,
    threshold   REAL    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('actual', 'forecast')),
    currency    TEXT    NOT NULL,
    amount      REAL    NOT NULL,
    actual      REAL    NOT NULL,
    forecast    REAL    NOT NULL,
    notify      TEXT    NOT NULL CHECK (json_valid(notify)),
    created_at  INTEGER NOT NULL,
    notified_at INTEGER,
    UNIQUE (budget, month, threshold, kind)
);
