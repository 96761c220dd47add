-- Fewer rows per range, for a cold cache (issue 17). A range's visitors are
-- the union of its whole months' sketches (V25) and of each day at its
-- edges: up to 60 day rows for a summary, each a random read of
-- widget_daily_stats when the cache is cold (13-18 ms on the 10 M bench).
-- Each client now also keeps the union of its days per week part: the days
-- of an ISO week inside one calendar month. Parts nest in months and never
-- overlap, so a range is covered exactly by its whole months, the whole
-- week parts at its edges, and at most six days at either end.
--
-- Months and week parts are one table, widget_period_sketches, kept by one
-- set of triggers (V25's invariant, for both): a client's period row is the
-- union of exactly its widget_daily_stats rows of that period.

-- The first and the last day of the period ('month' or 'week', a week part)
-- that holds p_day. Through timestamp, not timestamptz, so that they are
-- immutable and inline.
CREATE FUNCTION analytics_period_start(p_period text, p_day date)
RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_period
               WHEN 'month' THEN date_trunc('month', p_day::timestamp)::date
               WHEN 'week' THEN greatest(date_trunc('week', p_day::timestamp), date_trunc('month', p_day::timestamp))::date
           END
$$;

CREATE FUNCTION analytics_period_end(p_period text, p_day date)
RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_period
               WHEN 'month' THEN (date_trunc('month', p_day::timestamp) + interval '1 month')::date - 1
               WHEN 'week' THEN least(date_trunc('week', p_day::timestamp)::date + 6,
                                      (date_trunc('month', p_day::timestamp) + interval '1 month')::date - 1)
           END
$$;

CREATE TABLE widget_period_sketches (
    client_id                uuid   NOT NULL REFERENCES clients (id),
    period                   text   NOT NULL CHECK (period IN ('month', 'week')),
    first_day                date   NOT NULL CHECK (first_day = analytics_period_start(period, first_day)),
    visitors_sketch          hll,
    bot_visitors_sketch      hll,
    -- The days of the period without a sketch (rolled up before V24 with
    -- their raw events gone) add their own counts, as the readers do per day.
    unsketched_visitors      bigint NOT NULL,
    unsketched_bot_visitors  bigint NOT NULL,
    PRIMARY KEY (client_id, period, first_day)
);

DROP TRIGGER widget_month_sketches_insert ON widget_daily_stats;
DROP TRIGGER widget_month_sketches_update ON widget_daily_stats;
DROP TRIGGER widget_month_sketches_delete ON widget_daily_stats;
DROP TRIGGER widget_month_sketches_truncate ON widget_daily_stats;
DROP FUNCTION analytics_month_sketches_add();
DROP FUNCTION analytics_month_sketches_redo();
DROP FUNCTION analytics_month_sketches_truncate();

CREATE FUNCTION analytics_period_sketches_add()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO widget_period_sketches AS m
    SELECT a.client_id, p.period, analytics_period_start(p.period, a.day),
           hll_union_agg(a.visitors_sketch), hll_union_agg(a.bot_visitors_sketch),
           coalesce(sum(a.unique_visitors) FILTER (WHERE a.visitors_sketch IS NULL), 0),
           coalesce(sum(a.bot_visitors) FILTER (WHERE a.bot_visitors_sketch IS NULL), 0)
      FROM added a CROSS JOIN (VALUES ('month'), ('week')) p (period)
     GROUP BY 1, 2, 3
    ON CONFLICT (client_id, period, first_day) DO UPDATE
       SET visitors_sketch = analytics_hll_union(m.visitors_sketch, excluded.visitors_sketch),
           bot_visitors_sketch = analytics_hll_union(m.bot_visitors_sketch, excluded.bot_visitors_sketch),
           unsketched_visitors = m.unsketched_visitors + excluded.unsketched_visitors,
           unsketched_bot_visitors = m.unsketched_bot_visitors + excluded.unsketched_bot_visitors;
    RETURN NULL;
END $$;

-- A sketch cannot forget: a changed or removed day rebuilds its periods
-- from the days left.
CREATE FUNCTION analytics_period_sketches_redo()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE analytics_touched_periods ON COMMIT DROP AS
    SELECT DISTINCT r.client_id, p.period, analytics_period_start(p.period, r.day) AS first_day
      FROM removed r CROSS JOIN (VALUES ('month'), ('week')) p (period);
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO analytics_touched_periods
        SELECT DISTINCT a.client_id, p.period, analytics_period_start(p.period, a.day)
          FROM added a CROSS JOIN (VALUES ('month'), ('week')) p (period)
        EXCEPT SELECT * FROM analytics_touched_periods;
    END IF;
    DELETE FROM widget_period_sketches m
     USING analytics_touched_periods t
     WHERE m.client_id = t.client_id AND m.period = t.period AND m.first_day = t.first_day;
    -- Period by period through the (client_id, day) key: a join would hash
    -- the whole table.
    INSERT INTO widget_period_sketches
    SELECT t.client_id, t.period, t.first_day, d.visitors, d.bots, d.unsketched, d.unsketched_bots
      FROM analytics_touched_periods t
     CROSS JOIN LATERAL (
           SELECT count(*) AS days,
                  hll_union_agg(s.visitors_sketch) AS visitors, hll_union_agg(s.bot_visitors_sketch) AS bots,
                  coalesce(sum(s.unique_visitors) FILTER (WHERE s.visitors_sketch IS NULL), 0) AS unsketched,
                  coalesce(sum(s.bot_visitors) FILTER (WHERE s.bot_visitors_sketch IS NULL), 0) AS unsketched_bots
             FROM widget_daily_stats s
            WHERE s.client_id = t.client_id
              AND s.day >= t.first_day AND s.day <= analytics_period_end(t.period, t.first_day)) d
     WHERE d.days > 0;
    DROP TABLE analytics_touched_periods;
    RETURN NULL;
END $$;

-- A TRUNCATE fires no row or delete trigger (V27).
CREATE FUNCTION analytics_period_sketches_truncate()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE widget_period_sketches;
    RETURN NULL;
END $$;

-- Transition tables allow one event per trigger.
CREATE TRIGGER widget_period_sketches_insert AFTER INSERT ON widget_daily_stats
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_sketches_add();
CREATE TRIGGER widget_period_sketches_update AFTER UPDATE ON widget_daily_stats
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_sketches_redo();
CREATE TRIGGER widget_period_sketches_delete AFTER DELETE ON widget_daily_stats
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_sketches_redo();
CREATE TRIGGER widget_period_sketches_truncate AFTER TRUNCATE ON widget_daily_stats
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_sketches_truncate();

-- The months as they are, the week parts from the days rolled up so far.
INSERT INTO widget_period_sketches
SELECT m.client_id, 'month', m.month, m.visitors_sketch, m.bot_visitors_sketch,
       m.unsketched_visitors, m.unsketched_bot_visitors
  FROM widget_month_sketches m;
SET LOCAL work_mem = '256MB';
INSERT INTO widget_period_sketches
SELECT s.client_id, 'week', analytics_period_start('week', s.day),
       hll_union_agg(s.visitors_sketch), hll_union_agg(s.bot_visitors_sketch),
       coalesce(sum(s.unique_visitors) FILTER (WHERE s.visitors_sketch IS NULL), 0),
       coalesce(sum(s.bot_visitors) FILTER (WHERE s.bot_visitors_sketch IS NULL), 0)
  FROM widget_daily_stats s
 GROUP BY 1, 2, 3;
RESET work_mem;

-- The rolled-up part of one client's range p_from..p_to, for a union of
-- visitors, in at most 2 + 2 × 5 + 2 × 6 rows besides its whole months:
-- each calendar month wholly inside the range as its month row; in the
-- months at the range's ends, each whole week part as its row; the days
-- left (before the first whole part, after the last) as their day rows.
-- Nothing is read twice, so the unsketched counts add up. A plain SQL
-- function: the planner inlines it into the reader's statement. Each kind
-- of row is read as index ranges without a filter: a filter on a range
-- still fetches every heap row in it.
CREATE OR REPLACE FUNCTION analytics_range_sketches(p_client uuid, p_from date, p_to date)
RETURNS TABLE (visitors_sketch hll, bot_visitors_sketch hll,
               unsketched_visitors bigint, unsketched_bot_visitors bigint)
LANGUAGE sql STABLE AS $$
    -- Whole months: from the first month that starts in the range (m1) to
    -- the last that ends in it (before me). Whole week parts: from the first
    -- part that starts in the range (w1) to the last that ends in it (before
    -- we). The part holding p_from - 1 ends the day before w1.
    SELECT m.visitors_sketch, m.bot_visitors_sketch, m.unsketched_visitors, m.unsketched_bot_visitors
      FROM widget_period_sketches m
     WHERE m.client_id = p_client AND m.period = 'month'
       AND m.first_day >= analytics_period_end('month', p_from - 1) + 1
       AND m.first_day < analytics_period_start('month', p_to + 1)
    UNION ALL
    -- The week parts before m1 (all of them if there is no whole month),
    -- then those from me on.
    SELECT w.visitors_sketch, w.bot_visitors_sketch, w.unsketched_visitors, w.unsketched_bot_visitors
      FROM widget_period_sketches w
     WHERE w.client_id = p_client AND w.period = 'week'
       AND w.first_day >= analytics_period_end('week', p_from - 1) + 1
       AND w.first_day < least(analytics_period_end('month', p_from - 1) + 1,
                               analytics_period_start('week', p_to + 1))
    UNION ALL
    SELECT w.visitors_sketch, w.bot_visitors_sketch, w.unsketched_visitors, w.unsketched_bot_visitors
      FROM widget_period_sketches w
     WHERE w.client_id = p_client AND w.period = 'week'
       AND w.first_day >= greatest(analytics_period_start('month', p_to + 1),
                                   least(analytics_period_end('month', p_from - 1) + 1,
                                         analytics_period_start('week', p_to + 1)))
       AND w.first_day < analytics_period_start('week', p_to + 1)
    UNION ALL
    -- The days before w1 (all of them if there is no whole part), then those
    -- from we on.
    SELECT s.visitors_sketch, s.bot_visitors_sketch,
           CASE WHEN s.visitors_sketch IS NULL THEN s.unique_visitors ELSE 0 END,
           CASE WHEN s.bot_visitors_sketch IS NULL THEN s.bot_visitors ELSE 0 END
      FROM widget_daily_stats s
     WHERE s.client_id = p_client
       AND s.day >= p_from
       AND s.day < least(p_to + 1, analytics_period_end('week', p_from - 1) + 1)
    UNION ALL
    SELECT s.visitors_sketch, s.bot_visitors_sketch,
           CASE WHEN s.visitors_sketch IS NULL THEN s.unique_visitors ELSE 0 END,
           CASE WHEN s.bot_visitors_sketch IS NULL THEN s.bot_visitors ELSE 0 END
      FROM widget_daily_stats s
     WHERE s.client_id = p_client
       AND s.day >= greatest(analytics_period_start('week', p_to + 1),
                             analytics_period_end('week', p_from - 1) + 1)
       AND s.day <= p_to
$$;

DROP TABLE widget_month_sketches;
