-- Azure exports the same charges twice, as actual and as amortized cost;
-- socle keeps both as two views of one (source, billing period), so a
-- period is now identified by (source, period, view). The view is '' for
-- the exports that carry every cost in every row.
--
-- billed_w and effective_w say which costs a view supplies: when both
-- Azure views of a period are stored, billed and list cost (and the
-- charges of the coverage) come from the actual one and effective cost from
-- the amortized one, so that they are never added; otherwise a view
-- supplies all three. Queries multiply amounts by them.
--
-- Coverage is kept per day of the charges, so that a report over some days
-- describes exactly the charges it sums; rows from before this migration,
-- kept per period only, are put on the period's first day.
--
-- cost_period_files lists the files whose charges a stored view holds, so
-- that appending a part counted already is refused; a view replaced takes
-- its list along. Before this migration a period knew only the import that
-- wrote it: its files are taken for the period's.
--
-- SQLite cannot change a UNIQUE constraint in place: the period table and
-- the tables that reference it are built anew and copied, children first
-- dropped so that no ON DELETE CASCADE fires, then renamed (SQLite rewrites
-- the references to the renamed parent).

CREATE TABLE cost_periods_new (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    period      TEXT    NOT NULL,
    view        TEXT    NOT NULL DEFAULT '' CHECK (view IN ('', 'actual', 'amortized')),
    charges     INTEGER NOT NULL,
    import_id   INTEGER NOT NULL REFERENCES cost_imports (id),
    billed_w    INTEGER NOT NULL DEFAULT 1 CHECK (billed_w IN (0, 1)),
    effective_w INTEGER NOT NULL DEFAULT 1 CHECK (effective_w IN (0, 1)),
    UNIQUE (source, period, view)
);
INSERT INTO cost_periods_new (id, source, period, charges, import_id)
    SELECT id, source, period, charges, import_id FROM cost_periods;

CREATE TABLE cost_daily_new (
    period_id INTEGER NOT NULL REFERENCES cost_periods_new (id) ON DELETE CASCADE,
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
INSERT INTO cost_daily_new SELECT * FROM cost_daily;

CREATE TABLE cost_monthly_new (
    period_id INTEGER NOT NULL REFERENCES cost_periods_new (id) ON DELETE CASCADE,
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
INSERT INTO cost_monthly_new SELECT * FROM cost_monthly;

CREATE TABLE cost_coverage_new (
    period_id INTEGER NOT NULL REFERENCES cost_periods_new (id) ON DELETE CASCADE,
    day       TEXT    NOT NULL,
    dim       TEXT    NOT NULL,
    method    TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    charges   INTEGER NOT NULL,
    billed    REAL    NOT NULL,
    effective REAL    NOT NULL,
    list      REAL    NOT NULL
);
INSERT INTO cost_coverage_new (period_id, day, dim, method, currency, charges, billed, effective, list)
    SELECT c.period_id, p.period || '-01', c.dim, c.method, c.currency, c.charges, c.billed, c.effective, c.list
    FROM cost_coverage c JOIN cost_periods p ON p.id = c.period_id;

DROP TABLE cost_coverage;
DROP TABLE cost_monthly;
DROP TABLE cost_daily;
DROP TABLE cost_periods;

ALTER TABLE cost_periods_new RENAME TO cost_periods;
ALTER TABLE cost_daily_new RENAME TO cost_daily;
ALTER TABLE cost_monthly_new RENAME TO cost_monthly;
ALTER TABLE cost_coverage_new RENAME TO cost_coverage;

CREATE TABLE cost_period_files (
    period_id INTEGER NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    sha256    TEXT    NOT NULL,
    name      TEXT    NOT NULL
);
INSERT INTO cost_period_files (period_id, sha256, name)
    SELECT p.id, json_extract(f.value, '$.sha256'), json_extract(f.value, '$.name')
    FROM cost_periods p JOIN cost_imports i ON i.id = p.import_id, json_each(i.files) f
    WHERE json_extract(f.value, '$.sha256') IS NOT NULL;
CREATE INDEX cost_period_files_period ON cost_period_files (period_id);
CREATE INDEX cost_period_files_sha256 ON cost_period_files (sha256);

CREATE INDEX cost_periods_import ON cost_periods (import_id);
CREATE INDEX cost_daily_day ON cost_daily (day);
CREATE INDEX cost_daily_period ON cost_daily (period_id);
CREATE INDEX cost_monthly_month ON cost_monthly (month);
CREATE INDEX cost_monthly_period ON cost_monthly (period_id);
CREATE INDEX cost_coverage_period ON cost_coverage (period_id);
CREATE INDEX cost_coverage_day ON cost_coverage (day);
