-- check-tracking-health: threshold alerts with one open alert per problem,
-- their notifications, and a log of checks for the summary.

-- Recent deliveries (EMQ over the last 24 hours) and new dead letters.
CREATE INDEX conversion_deliveries_by_created ON conversion_deliveries (created_at);
CREATE INDEX conversion_deliveries_dead_letters ON conversion_deliveries (updated_at)
    WHERE status = 'dead_letter';
CREATE INDEX conversion_deliveries_queued ON conversion_deliveries (destination_id)
    WHERE status IN ('pending', 'retrying');
-- Platform-wide ingest volume by arrival time: BRIN stays tiny and cheap to
-- maintain because rows arrive in received_at order.
CREATE INDEX session_events_received_brin ON session_events USING brin (received_at);

CREATE TABLE tracking_health_alerts (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_type     text        NOT NULL CHECK (alert_type IN
                   ('emq_low', 'failed_events_backlog', 'delivery_error_rate', 'dead_letters', 'ingest_silence')),
    -- 'global', 'client:<uuid>' or 'destination:<uuid>'.
    scope          text        NOT NULL,
    client_id      uuid,
    destination_id uuid,
    severity       text        NOT NULL CHECK (severity IN ('warning', 'critical')),
    message        text        NOT NULL,
    metric_value   double precision,
    threshold      double precision,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    resolution     text        CHECK (resolution IN ('auto', 'manual')),
    resolved_by    text,
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
-- At most one unresolved alert per problem; checks upsert against it.
CREATE UNIQUE INDEX tracking_health_alerts_one_open
    ON tracking_health_alerts (alert_type, scope) WHERE resolved_at IS NULL;
CREATE INDEX tracking_health_alerts_recent ON tracking_health_alerts (created_at);

-- One message per alert transition, sent to the alert webhook; unsent ones
-- are retried by the next check, sent ones never again.
CREATE TABLE alert_notifications (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint      NOT NULL REFERENCES tracking_health_alerts (id),
    transition  text        NOT NULL CHECK (transition IN ('opened', 'escalated', 'resolved')),
    text        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    -- 'sent' | 'no_webhook' once settled.
    outcome     text,
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text
);
CREATE INDEX alert_notifications_unsent ON alert_notifications (id) WHERE sent_at IS NULL;

-- One row per check: when, and every metric it computed (the summary's source).
CREATE TABLE tracking_health_checks (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checked_at timestamptz NOT NULL DEFAULT now(),
    results    jsonb       NOT NULL
);
CREATE INDEX tracking_health_checks_latest ON tracking_health_checks (checked_at);

-- The metrics of a check, one row per (alert_type, scope) evaluated, with the
-- severity it breaches (null: fine) — every threshold is a parameter.
-- EMQ weights (sum 10) are documented in docs/EMQ.md.
CREATE FUNCTION tracking_health_metrics(
    emq_warning double precision, emq_critical double precision, emq_min_events integer,
    backlog_critical integer, error_rate_critical double precision, error_rate_min_attempts integer,
    silence_minutes integer, silence_min_expected integer, since_last_check timestamptz)
RETURNS TABLE (alert_type text, scope text, client_id uuid, destination_id uuid,
               metric_value double precision, threshold double precision, volume bigint,
               severity text, message text)
LANGUAGE sql STABLE AS $$
    WITH meta AS (
        SELECT d.client_id,
               (CASE WHEN d.user_data ? 'em' THEN 3.0 ELSE 0 END
              + CASE WHEN d.user_data ? 'ph' THEN 2.0 ELSE 0 END
              + CASE WHEN d.user_data ? 'fbc' THEN 1.0 ELSE 0 END
              + CASE WHEN d.user_data ? 'external_id' THEN 1.0 ELSE 0 END
              + CASE WHEN d.user_data ? 'client_ip_address' AND d.user_data ? 'client_user_agent' THEN 1.0 ELSE 0 END
              + CASE WHEN d.user_data ? 'fbp' THEN 0.5 ELSE 0 END
              + CASE WHEN d.user_data ? 'fn' THEN 0.25 ELSE 0 END
              + CASE WHEN d.user_data ? 'ln' THEN 0.25 ELSE 0 END
              + CASE WHEN d.user_data ? 'ct' THEN 0.25 ELSE 0 END
              + CASE WHEN d.user_data ? 'st' THEN 0.25 ELSE 0 END
              + CASE WHEN d.user_data ? 'zp' THEN 0.25 ELSE 0 END
              + CASE WHEN d.user_data ? 'country' THEN 0.25 ELSE 0 END) AS score
          FROM conversion_deliveries d
         WHERE d.created_at > now() - interval '24 hours' AND d.destination = 'meta_capi'
    ),
    emq AS (
        SELECT 'global' AS scope, NULL::uuid AS client_id, avg(score) AS value, count(*) AS n FROM meta
        UNION ALL
        SELECT 'client:' || m.client_id, m.client_id, avg(score), count(*) FROM meta m GROUP BY m.client_id
    ),
    backlog AS (
        SELECT 'global' AS scope, NULL::uuid AS destination_id, count(*) AS n
          FROM conversion_deliveries WHERE status IN ('pending', 'retrying')
        UNION ALL
        SELECT 'destination:' || q.destination_id, q.destination_id, count(*)
          FROM conversion_deliveries q WHERE q.status IN ('pending', 'retrying') GROUP BY q.destination_id
    ),
    attempts AS (
        SELECT a.destination_id, a.outcome <> 'resolved' AS failed
          FROM delivery_attempts a WHERE a.attempted_at > now() - interval '1 hour'
    ),
    errors AS (
        SELECT 'global' AS scope, NULL::uuid AS destination_id, count(*) FILTER (WHERE failed) AS failed, count(*) AS n FROM attempts
        UNION ALL
        SELECT 'destination:' || t.destination_id, t.destination_id, count(*) FILTER (WHERE t.failed), count(*)
          FROM attempts t GROUP BY t.destination_id
    ),
    dead AS (
        SELECT 'global' AS scope, NULL::uuid AS destination_id, count(*) AS n
          FROM conversion_deliveries WHERE status = 'dead_letter' AND updated_at > since_last_check
        UNION ALL
        SELECT 'destination:' || x.destination_id, x.destination_id, count(*)
          FROM conversion_deliveries x WHERE x.status = 'dead_letter' AND x.updated_at > since_last_check
         GROUP BY x.destination_id
    ),
    ingest AS (
        SELECT (SELECT count(*) FROM session_events
                 WHERE received_at > now() - make_interval(mins => silence_minutes)) AS recent,
               (SELECT count(*) FROM session_events
                 WHERE received_at > now() - interval '7 days' - make_interval(mins => silence_minutes)
                   AND received_at <= now() - interval '7 days') AS week_ago
    )
    SELECT 'emq_low', e.scope, e.client_id, NULL::uuid, round(e.value::numeric, 2)::float8,
           CASE WHEN e.value < emq_critical THEN emq_critical ELSE emq_warning END, e.n,
           CASE WHEN e.n < emq_min_events THEN NULL
                WHEN e.value < emq_critical THEN 'critical'
                WHEN e.value < emq_warning THEN 'warning' END,
           format('Estimated Meta match quality %s/10 over %s events in 24 h (%s)',
                  round(e.value::numeric, 1), e.n, e.scope)
      FROM emq e
    UNION ALL
    SELECT 'failed_events_backlog', b.scope, NULL, b.destination_id, b.n, backlog_critical, b.n,
           CASE WHEN b.n > backlog_critical THEN 'critical' END,
           format('%s conversions waiting for delivery (%s)', b.n, b.scope)
      FROM backlog b
    UNION ALL
    SELECT 'delivery_error_rate', r.scope, NULL, r.destination_id,
           round((r.failed::numeric / nullif(r.n, 0)), 4)::float8, error_rate_critical, r.n,
           CASE WHEN r.n >= error_rate_min_attempts
                 AND r.failed::float8 / r.n > error_rate_critical THEN 'critical' END,
           format('%s of %s delivery attempts failed in the last hour (%s)', r.failed, r.n, r.scope)
      FROM errors r
    UNION ALL
    SELECT 'dead_letters', x.scope, NULL, x.destination_id, x.n, 0, x.n,
           CASE WHEN x.n > 0 THEN 'warning' END,
           format('%s conversions dead-lettered since the last check (%s)', x.n, x.scope)
      FROM dead x
    UNION ALL
    SELECT 'ingest_silence', 'global', NULL, NULL, i.recent, silence_min_expected, i.week_ago,
           CASE WHEN i.recent = 0 AND i.week_ago >= silence_min_expected THEN 'critical' END,
           format('%s events accepted in the last %s minutes (%s in the same minutes a week ago)',
                  i.recent, silence_minutes, i.week_ago)
      FROM ingest i
$$;

-- Applies a check's metrics to the alerts in one statement's transaction:
-- opens breached problems, updates open ones (value, last_seen_at, severity
-- up to critical), auto-resolves open alerts of the evaluated types that are
-- no longer breached, queues one notification per transition, and logs the
-- check. Returns the counts.
CREATE FUNCTION apply_tracking_health_check(metrics jsonb)
RETURNS TABLE (opened integer, updated integer, escalated integer, resolved integer, check_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n_opened integer; n_updated integer; n_escalated integer; n_resolved integer; new_check bigint;
BEGIN
    -- Checks apply one at a time (cron and HTTP share a job lock too), so
    -- "was it open before?" is read after any concurrent check committed.
    PERFORM pg_advisory_xact_lock(hashtextextended('apply_tracking_health_check', 0));
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.breached (
        alert_type text, scope text, client_id uuid, destination_id uuid,
        metric_value double precision, threshold double precision, severity text, message text
    ) ON COMMIT DROP;
    TRUNCATE pg_temp.breached;
    INSERT INTO pg_temp.breached
    SELECT m.alert_type, m.scope, m.client_id, m.destination_id, m.metric_value, m.threshold,
           m.severity, m.message
      FROM jsonb_to_recordset(metrics) AS m(alert_type text, scope text, client_id uuid,
           destination_id uuid, metric_value double precision, threshold double precision,
           severity text, message text)
     WHERE m.severity IS NOT NULL;

    -- Open alerts before this check, to tell new from updated and escalated.
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.was_open (id bigint, alert_type text, scope text, severity text)
        ON COMMIT DROP;
    TRUNCATE pg_temp.was_open;
    INSERT INTO pg_temp.was_open
    SELECT a.id, a.alert_type, a.scope, a.severity FROM tracking_health_alerts a
     WHERE a.resolved_at IS NULL FOR UPDATE;

    WITH up AS (
        INSERT INTO tracking_health_alerts AS a (alert_type, scope, client_id, destination_id,
                                                 severity, message, metric_value, threshold)
        SELECT b.alert_type, b.scope, b.client_id, b.destination_id, b.severity, b.message,
               b.metric_value, b.threshold
          FROM pg_temp.breached b
        ON CONFLICT (alert_type, scope) WHERE resolved_at IS NULL DO UPDATE
           SET metric_value = excluded.metric_value,
               threshold = excluded.threshold,
               message = excluded.message,
               last_seen_at = now(),
               severity = CASE WHEN a.severity = 'critical' OR excluded.severity = 'critical'
                               THEN 'critical' ELSE 'warning' END
        RETURNING a.id, a.alert_type, a.scope, a.severity, a.message
    ),
    classified AS (
        SELECT up.*, w.severity AS old_severity, w.id IS NULL AS is_new FROM up
          LEFT JOIN pg_temp.was_open w ON w.id = up.id
    ),
    notified AS (
        INSERT INTO alert_notifications (alert_id, transition, text)
        SELECT c.id, CASE WHEN c.is_new THEN 'opened' ELSE 'escalated' END,
               format('%s %s alert %s: %s', CASE WHEN c.severity = 'critical' THEN ':red_circle:' ELSE ':warning:' END,
                      c.severity, CASE WHEN c.is_new THEN 'opened' ELSE 'escalated' END, c.message)
          FROM classified c
         WHERE c.is_new OR (c.old_severity = 'warning' AND c.severity = 'critical')
    )
    SELECT count(*) FILTER (WHERE is_new),
           count(*) FILTER (WHERE NOT is_new),
           count(*) FILTER (WHERE NOT is_new AND old_severity = 'warning' AND severity = 'critical')
      INTO n_opened, n_updated, n_escalated
      FROM classified;

    WITH evaluated AS (
        SELECT DISTINCT m.alert_type FROM jsonb_to_recordset(metrics) AS m(alert_type text)
    ),
    cleared AS (
        UPDATE tracking_health_alerts a
           SET resolved_at = now(), resolution = 'auto'
          FROM pg_temp.was_open w
         WHERE a.id = w.id
           AND a.alert_type IN (SELECT alert_type FROM evaluated)
           AND NOT EXISTS (SELECT 1 FROM pg_temp.breached b
                            WHERE b.alert_type = a.alert_type AND b.scope = a.scope)
        RETURNING a.id, a.alert_type, a.scope
    ),
    notified AS (
        INSERT INTO alert_notifications (alert_id, transition, text)
        SELECT c.id, 'resolved', format(':white_check_mark: %s alert resolved (%s): the condition cleared',
                                        c.alert_type, c.scope)
          FROM cleared c
    )
    SELECT count(*) INTO n_resolved FROM cleared;

    INSERT INTO tracking_health_checks (results) VALUES (metrics) RETURNING id INTO new_check;
    RETURN QUERY SELECT n_opened, n_updated, n_escalated, n_resolved, new_check;
END
$$;

-- Resolves an alert by hand; queues its notification. Returns the alert's
-- state: NULL when there is no such alert.
CREATE FUNCTION resolve_tracking_health_alert(alert bigint, by_whom text)
RETURNS TABLE (id bigint, was_open boolean)
LANGUAGE plpgsql AS $$
DECLARE
    open_before boolean;
BEGIN
    SELECT a.resolved_at IS NULL INTO open_before FROM tracking_health_alerts a WHERE a.id = alert FOR UPDATE;
    IF open_before IS NULL THEN
        RETURN;
    END IF;
    IF open_before THEN
        UPDATE tracking_health_alerts a
           SET resolved_at = now(), resolution = 'manual', resolved_by = by_whom
         WHERE a.id = alert;
        INSERT INTO alert_notifications (alert_id, transition, text)
        SELECT a.id, 'resolved', format(':white_check_mark: %s alert resolved by hand (%s) by %s',
                                        a.alert_type, a.scope, coalesce(by_whom, 'an admin'))
          FROM tracking_health_alerts a WHERE a.id = alert;
    END IF;
    RETURN QUERY SELECT alert, open_before;
END
$$;
