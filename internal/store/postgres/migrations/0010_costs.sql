-- The tables of package cost (internal/cost), as store/sqlite's migrations
-- 0010 to 0012 leave them: daily cost aggregates per (source, billing
-- period, view) so that a restated month replaces the old one; the imports
-- that brought them; the allocation coverage per day; the budget alerts,
-- each raised once per (budget, month, threshold, kind).
--
-- Days are text 'YYYY-MM-DD' and months 'YYYY-MM', compared bytewise as
-- package cost writes and reads them. Amounts are numeric: exact, and
-- summed exactly by sum(), in any number of rows.

CREATE TABLE cost_imports (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL,
    charges bigint NOT NULL,
    files   jsonb  NOT NULL, -- [{name, sha256, format, charges}]
    periods jsonb  NOT NULL  -- ["source period", …]
);

CREATE TABLE cost_import_files (
    import_id bigint NOT NULL REFERENCES cost_imports (id) ON DELETE CASCADE,
    sha256    text   NOT NULL
);
CREATE INDEX cost_import_files_sha256 ON cost_import_files (sha256);

-- billed_w and effective_w say which costs a view supplies: when both
-- Azure views of a period are stored, billed and list cost come from the
-- actual one and effective cost from the amortized one; otherwise a view
-- supplies all three. Queries multiply amounts by them.
CREATE TABLE cost_periods (
    id          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text    COLLATE "C" NOT NULL,
    period      text    COLLATE "C" NOT NULL,
    view        text    COLLATE "C" NOT NULL DEFAULT '' CHECK (view IN ('', 'actual', 'amortized')),
    charges     bigint  NOT NULL,
    import_id   bigint  NOT NULL REFERENCES cost_imports (id),
    billed_w    integer NOT NULL DEFAULT 1 CHECK (billed_w IN (0, 1)),
    effective_w integer NOT NULL DEFAULT 1 CHECK (effective_w IN (0, 1)),
    UNIQUE (source, period, view)
);
CREATE INDEX cost_periods_import ON cost_periods (import_id);

CREATE TABLE cost_daily (
    period_id bigint NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    day       text COLLATE "C" NOT NULL,
    provider  text COLLATE "C" NOT NULL,
    account   text COLLATE "C" NOT NULL,
    service   text COLLATE "C" NOT NULL,
    region    text COLLATE "C" NOT NULL,
    category  text COLLATE "C" NOT NULL,
    currency  text COLLATE "C" NOT NULL,
    team      text COLLATE "C" NOT NULL,
    app       text COLLATE "C" NOT NULL,
    env       text COLLATE "C" NOT NULL,
    zone      text COLLATE "C" NOT NULL,
    billed    numeric NOT NULL,
    effective numeric NOT NULL,
    list      numeric NOT NULL
);
CREATE INDEX cost_daily_day ON cost_daily (day);
CREATE INDEX cost_daily_period ON cost_daily (period_id);

-- cost_monthly sums cost_daily by calendar month (of the day, not of the
-- billing period), written with it: reports over whole months read 30 times
-- fewer rows.
CREATE TABLE cost_monthly (
    period_id bigint NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    month     text COLLATE "C" NOT NULL,
    provider  text COLLATE "C" NOT NULL,
    account   text COLLATE "C" NOT NULL,
    service   text COLLATE "C" NOT NULL,
    region    text COLLATE "C" NOT NULL,
    category  text COLLATE "C" NOT NULL,
    currency  text COLLATE "C" NOT NULL,
    team      text COLLATE "C" NOT NULL,
    app       text COLLATE "C" NOT NULL,
    env       text COLLATE "C" NOT NULL,
    zone      text COLLATE "C" NOT NULL,
    billed    numeric NOT NULL,
    effective numeric NOT NULL,
    list      numeric NOT NULL
);
CREATE INDEX cost_monthly_month ON cost_monthly (month);
CREATE INDEX cost_monthly_period ON cost_monthly (period_id);

CREATE TABLE cost_coverage (
    period_id bigint NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    day       text COLLATE "C" NOT NULL,
    dim       text COLLATE "C" NOT NULL,
    method    text COLLATE "C" NOT NULL,
    currency  text COLLATE "C" NOT NULL,
    charges   bigint  NOT NULL,
    billed    numeric NOT NULL,
    effective numeric NOT NULL,
    list      numeric NOT NULL
);
CREATE INDEX cost_coverage_period ON cost_coverage (period_id);
CREATE INDEX cost_coverage_day ON cost_coverage (day);

-- The files whose charges a stored view holds, so that appending a part
-- counted already is refused; a view replaced takes its list along.
CREATE TABLE cost_period_files (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period_id bigint NOT NULL REFERENCES cost_periods (id) ON DELETE CASCADE,
    sha256    text   NOT NULL,
    name      text   NOT NULL
);
CREATE INDEX cost_period_files_period ON cost_period_files (period_id);
CREATE INDEX cost_period_files_sha256 ON cost_period_files (sha256);

CREATE TABLE cost_alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    budget      text COLLATE "C" NOT NULL,
    month       text COLLATE "C" NOT NULL,
    threshold   double precision NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('actual', 'forecast')),
    currency    text NOT NULL,
    amount      numeric NOT NULL,
    actual      numeric NOT NULL,
    forecast    numeric NOT NULL,
    notify      jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    notified_at timestamptz,
    UNIQUE (budget, month, threshold, kind)
);
