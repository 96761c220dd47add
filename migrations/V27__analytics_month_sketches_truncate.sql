-- widget_month_sketches is the union of its days (V25) whatever statement
-- changes widget_daily_stats: a TRUNCATE fires no row or delete trigger,
-- so it empties the months too.
CREATE FUNCTION analytics_month_sketches_truncate()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE widget_month_sketches;
    RETURN NULL;
END $$;

CREATE TRIGGER widget_month_sketches_truncate AFTER TRUNCATE ON widget_daily_stats
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_month_sketches_truncate();
