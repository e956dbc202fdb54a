-- Money becomes exact: every amount of the cost tables, REAL until now,
-- is kept in two INTEGER columns, x_units and x_pico, its whole currency
-- units and the pico-units (10^-12) of the rest, both of the amount's sign
-- (store/sqlite/money.go says why; the aggregate money_sum adds them).
--
-- A REAL becomes the shortest decimal that reads back as the same double,
-- rounded half to even to 12 decimals (money_units and money_pico): what
-- an export wrote as 0.1 was stored as 0.1000000000000000055… and is 0.1
-- again. Sums stored as REAL keep the error float addition made, if any:
-- re-import a period to have it exact.
--
-- SQLite adds the columns, fills them, then drops the REAL ones (3.35 and
-- later rewrite the table; none of them is in an index or a constraint).

ALTER TABLE cost_daily ADD COLUMN billed_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_daily ADD COLUMN billed_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_daily ADD COLUMN effective_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_daily ADD COLUMN effective_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_daily ADD COLUMN list_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_daily ADD COLUMN list_pico  INTEGER NOT NULL DEFAULT 0;
UPDATE cost_daily SET
    billed_units = money_units(billed), billed_pico = money_pico(billed),
    effective_units = money_units(effective), effective_pico = money_pico(effective),
    list_units = money_units(list), list_pico = money_pico(list);
ALTER TABLE cost_daily DROP COLUMN billed;
ALTER TABLE cost_daily DROP COLUMN effective;
ALTER TABLE cost_daily DROP COLUMN list;

ALTER TABLE cost_monthly ADD COLUMN billed_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_monthly ADD COLUMN billed_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_monthly ADD COLUMN effective_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_monthly ADD COLUMN effective_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_monthly ADD COLUMN list_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_monthly ADD COLUMN list_pico  INTEGER NOT NULL DEFAULT 0;
UPDATE cost_monthly SET
    billed_units = money_units(billed), billed_pico = money_pico(billed),
    effective_units = money_units(effective), effective_pico = money_pico(effective),
    list_units = money_units(list), list_pico = money_pico(list);
ALTER TABLE cost_monthly DROP COLUMN billed;
ALTER TABLE cost_monthly DROP COLUMN effective;
ALTER TABLE cost_monthly DROP COLUMN list;

ALTER TABLE cost_coverage ADD COLUMN billed_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_coverage ADD COLUMN billed_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_coverage ADD COLUMN effective_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_coverage ADD COLUMN effective_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_coverage ADD COLUMN list_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_coverage ADD COLUMN list_pico  INTEGER NOT NULL DEFAULT 0;
UPDATE cost_coverage SET
    billed_units = money_units(billed), billed_pico = money_pico(billed),
    effective_units = money_units(effective), effective_pico = money_pico(effective),
    list_units = money_units(list), list_pico = money_pico(list);
ALTER TABLE cost_coverage DROP COLUMN billed;
ALTER TABLE cost_coverage DROP COLUMN effective;
ALTER TABLE cost_coverage DROP COLUMN list;

ALTER TABLE cost_alerts ADD COLUMN amount_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_alerts ADD COLUMN amount_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_alerts ADD COLUMN actual_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_alerts ADD COLUMN actual_pico  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_alerts ADD COLUMN forecast_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cost_alerts ADD COLUMN forecast_pico  INTEGER NOT NULL DEFAULT 0;
UPDATE cost_alerts SET
    amount_units = money_units(amount), amount_pico = money_pico(amount),
    actual_units = money_units(actual), actual_pico = money_pico(actual),
    forecast_units = money_units(forecast), forecast_pico = money_pico(forecast);
ALTER TABLE cost_alerts DROP COLUMN amount;
ALTER TABLE cost_alerts DROP COLUMN actual;
ALTER TABLE cost_alerts DROP COLUMN forecast;
