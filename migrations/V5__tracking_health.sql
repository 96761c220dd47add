-- The nightly tracking-health detector (seed 000): per-client signals, the
-- stats view the backoffice reads, today's verdicts and their history.

-- The detector's input signals for windows ending at `as_of` (bots excluded):
--   widget_visitors_30d  distinct visitors with a widget_impression shown
--                        (widget_displayed_at > 0) for more than 10 s, in (as_of − 30 d, as_of]
--   conversation_visitors_30d  distinct visitors with chat_started, same window
--   form_submits_30d     client_form_submitted events, same window
--   widget_prior_23d     distinct visitors with any widget_impression in (as_of − 30 d, as_of − 7 d)
--   widget_last_7d       distinct visitors with any widget_impression in [as_of − 7 d, as_of]
-- Every eligible client gets a row, with zeros when it has no events.
CREATE FUNCTION client_tracking_signals(as_of timestamptz)
RETURNS TABLE (client_id uuid, widget_visitors_30d bigint, conversation_visitors_30d bigint,
               form_submits_30d bigint, widget_prior_23d bigint, widget_last_7d bigint)
LANGUAGE sql STABLE AS $$
    SELECT c.id,
           count(DISTINCT e.person_id) FILTER (WHERE e.event_name = 'widget_impression'
                                                 AND e.widget_displayed_at > 0 AND e.duration_s > 10),
           count(DISTINCT e.person_id) FILTER (WHERE e.event_name = 'chat_started'),
           count(*) FILTER (WHERE e.event_name = 'client_form_submitted'),
           count(DISTINCT e.person_id) FILTER (WHERE e.event_name = 'widget_impression'
                                                 AND e.occurred_at < as_of - interval '7 days'),
           count(DISTINCT e.person_id) FILTER (WHERE e.event_name = 'widget_impression'
                                                 AND e.occurred_at >= as_of - interval '7 days')
      FROM clients c
      LEFT JOIN session_events e
        ON e.client_id = c.id
       AND e.event_name IN ('widget_impression', 'chat_started', 'client_form_submitted')
       AND e.occurred_at > as_of - interval '30 days'
       AND e.occurred_at <= as_of
       AND NOT e.is_bot
     WHERE c.enabled AND c.client_type IN ('client', 'onboarding', 'test')
     GROUP BY c.id
$$;

-- The backoffice's 30-day stats, refreshed (CONCURRENTLY, so readers are
-- never blocked) by the detector before it classifies.
CREATE MATERIALIZED VIEW mv_client_stats_30d AS
SELECT s.client_id,
       s.widget_visitors_30d       AS widget_visitors,
       s.conversation_visitors_30d AS conversation_visitors,
       s.form_submits_30d          AS form_submits_total,
       s.widget_prior_23d,
       s.widget_last_7d,
       extract(epoch FROM now())::int8 AS refreshed_at_epoch
  FROM client_tracking_signals(now()) s;

CREATE UNIQUE INDEX mv_client_stats_30d_client ON mv_client_stats_30d (client_id);

-- Today's verdict per flagged client (healthy clients have no row).
CREATE TABLE client_tracking_health (
    client_id                 uuid PRIMARY KEY REFERENCES clients (id),
    outcome                   text        NOT NULL CHECK (outcome IN
                              ('widget_stopped', 'widget_not_in_prod', 'widget_not_used', 'form_tracking_lost')),
    color                     text        NOT NULL CHECK (color IN ('red', 'amber')),
    widget_visitors_30d       bigint      NOT NULL,
    conversation_visitors_30d bigint      NOT NULL,
    form_submits_30d          bigint      NOT NULL,
    widget_prior_23d          bigint      NOT NULL,
    widget_last_7d            bigint      NOT NULL,
    detected_at               timestamptz NOT NULL,
    -- First day of the current streak of this outcome.
    since                     date        NOT NULL
);

-- One verdict per eligible client per day (UTC), healthy included; a rerun
-- of the same day replaces it.
CREATE TABLE client_tracking_health_history (
    client_id                 uuid        NOT NULL REFERENCES clients (id),
    day                       date        NOT NULL,
    outcome                   text        NOT NULL CHECK (outcome IN
                              ('healthy', 'widget_stopped', 'widget_not_in_prod', 'widget_not_used', 'form_tracking_lost')),
    widget_visitors_30d       bigint      NOT NULL,
    conversation_visitors_30d bigint      NOT NULL,
    form_submits_30d          bigint      NOT NULL,
    widget_prior_23d          bigint      NOT NULL,
    widget_last_7d            bigint      NOT NULL,
    detected_at               timestamptz NOT NULL,
    PRIMARY KEY (client_id, day)
);

CREATE INDEX client_tracking_health_history_by_day ON client_tracking_health_history (day);

-- Classifies every eligible client for the day of `p_as_of` by walking the
-- tree top-down (one leaf each), replaces that day's history, and swaps the
-- current verdicts — all in the caller's one transaction, so readers see the
-- old verdicts or the new ones, never an empty or half-written table.
-- The signals come from the just-refreshed mv_client_stats_30d when
-- `p_from_stats` (a run as of now), else from the events (a replay as of an
-- earlier instant). Returns the number of clients per outcome.
CREATE FUNCTION detect_tracking_health(
    p_as_of timestamptz, p_min_prior_visitors bigint, p_min_widget_visitors bigint, p_min_chats bigint,
    p_from_stats boolean)
RETURNS TABLE (outcome text, clients bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_day date := (p_as_of AT TIME ZONE 'UTC')::date;
BEGIN
    DELETE FROM client_tracking_health_history h WHERE h.day = v_day;
    INSERT INTO client_tracking_health_history (
        client_id, day, outcome, widget_visitors_30d, conversation_visitors_30d,
        form_submits_30d, widget_prior_23d, widget_last_7d, detected_at)
    SELECT s.client_id, v_day,
           CASE
               WHEN s.widget_prior_23d >= p_min_prior_visitors AND s.widget_last_7d = 0 THEN 'widget_stopped'
               WHEN s.widget_visitors_30d < p_min_widget_visitors THEN 'widget_not_in_prod'
               WHEN s.conversation_visitors_30d < p_min_chats THEN 'widget_not_used'
               WHEN s.form_submits_30d = 0 THEN 'form_tracking_lost'
               ELSE 'healthy'
           END,
           s.widget_visitors_30d, s.conversation_visitors_30d, s.form_submits_30d,
           s.widget_prior_23d, s.widget_last_7d, p_as_of
      FROM (SELECT m.client_id, m.widget_visitors AS widget_visitors_30d,
                   m.conversation_visitors AS conversation_visitors_30d,
                   m.form_submits_total AS form_submits_30d, m.widget_prior_23d, m.widget_last_7d
              FROM mv_client_stats_30d m
             WHERE p_from_stats
            UNION ALL
            SELECT * FROM client_tracking_signals(p_as_of) WHERE NOT p_from_stats) s;

    DELETE FROM client_tracking_health;
    INSERT INTO client_tracking_health (
        client_id, outcome, color, widget_visitors_30d, conversation_visitors_30d,
        form_submits_30d, widget_prior_23d, widget_last_7d, detected_at, since)
    SELECT h.client_id, h.outcome,
           CASE WHEN h.outcome IN ('widget_stopped', 'form_tracking_lost') THEN 'red' ELSE 'amber' END,
           h.widget_visitors_30d, h.conversation_visitors_30d, h.form_submits_30d,
           h.widget_prior_23d, h.widget_last_7d, h.detected_at,
           -- The streak starts the day after the latest earlier day with
           -- another verdict, or on the first day this client was classified.
           coalesce(
               (SELECT max(p.day) + 1 FROM client_tracking_health_history p
                 WHERE p.client_id = h.client_id AND p.day < v_day AND p.outcome <> h.outcome),
               (SELECT min(p.day) FROM client_tracking_health_history p WHERE p.client_id = h.client_id))
      FROM client_tracking_health_history h
     WHERE h.day = v_day AND h.outcome <> 'healthy';

    RETURN QUERY
    SELECT h.outcome, count(*)::int8
      FROM client_tracking_health_history h
     WHERE h.day = v_day
     GROUP BY h.outcome
     ORDER BY h.outcome;
END $$;
