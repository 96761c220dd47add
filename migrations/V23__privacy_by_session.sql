-- The erase and the export read a person's events session by session, each
-- one time span of the (client_id, occurred_at) index. Measured by
-- `bench privacy` on a client with 10 M events: V21's join of all the
-- person's sessions with session_events at once was planned as a hash join
-- over a sequential scan of every partition (1.7 s); see docs/BENCHMARKS.md.

CREATE OR REPLACE FUNCTION privacy_erase(p_client uuid, p_anonymous_id text, p_email text, p_phone text,
                              p_identifier_hashes jsonb, p_requested_by text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    who record;
    s record;
    busy double precision;
    counts jsonb;
    n bigint;
BEGIN
    SELECT * INTO who FROM privacy_person(p_client, p_anonymous_id, p_email, p_phone);
    -- Lock the outbox rows: no run can claim them until this commits.
    PERFORM 1 FROM conversion_deliveries WHERE lead_id = ANY (who.lead_ids) FOR UPDATE;
    SELECT max(extract(epoch FROM lease_expires_at - now())) INTO busy
      FROM conversion_deliveries
     WHERE lead_id = ANY (who.lead_ids) AND lease_expires_at > now();
    IF busy IS NOT NULL THEN
        RETURN jsonb_build_object('in_flight_seconds', ceil(busy));
    END IF;

    counts := '{}';
    -- Session by session: each delete reads one time span of the client's
    -- (client_id, occurred_at) index (a join over all sessions at once let
    -- the planner hash-join a seq scan of every partition instead).
    n := 0;
    FOR s IN SELECT person_id, first_seen_at, last_seen_at FROM widget_sessions
              WHERE client_id = p_client AND person_id = ANY (who.anonymous_ids)
    LOOP
        WITH gone AS (
            DELETE FROM session_events e
             WHERE e.client_id = p_client AND e.person_id = s.person_id
               AND e.occurred_at >= s.first_seen_at AND e.occurred_at <= s.last_seen_at
            RETURNING e.event_id
        ), keys AS (
            DELETE FROM event_keys k
             WHERE k.client_id = p_client AND k.event_id = ANY (ARRAY(SELECT event_id FROM gone))
        )
        SELECT n + count(*) INTO n FROM gone;
    END LOOP;
    counts := counts || jsonb_build_object('session_events', n);
    DELETE FROM widget_sessions WHERE client_id = p_client AND person_id = ANY (who.anonymous_ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('widget_sessions', n);
    DELETE FROM analytics_visitors WHERE client_id = p_client AND person_id = ANY (who.anonymous_ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('analytics_visitors', n);
    DELETE FROM conversion_deliveries WHERE lead_id = ANY (who.lead_ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('conversion_deliveries', n);
    DELETE FROM leads WHERE id = ANY (who.lead_ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('leads', n);
    DELETE FROM rejected_events r
     WHERE r.client_id = p_client
       AND EXISTS (SELECT 1 FROM unnest(who.anonymous_ids || p_email || p_phone) x
                    WHERE x IS NOT NULL AND strpos(r.payload::text, x) > 0);
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts || jsonb_build_object('rejected_events', n);

    INSERT INTO privacy_requests (kind, client_id, identifier_hashes, outcome, requested_by)
    VALUES ('erase', p_client, p_identifier_hashes, counts, p_requested_by);
    RETURN jsonb_build_object('erased', counts);
END $$;


CREATE OR REPLACE FUNCTION privacy_export(p_client uuid, p_anonymous_id text, p_email text, p_phone text,
                               p_identifier_hashes jsonb, p_requested_by text, p_max_events integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    who record;
    doc jsonb;
BEGIN
    SELECT * INTO who FROM privacy_person(p_client, p_anonymous_id, p_email, p_phone);
    SELECT jsonb_build_object(
        'anonymous_ids', to_jsonb(who.anonymous_ids),
        'leads', (SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.created_at), '[]')
                    FROM leads l WHERE l.id = ANY (who.lead_ids)),
        'conversion_deliveries', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'id', d.id, 'destination', d.destination, 'event_id', d.event_id,
                       'event_name', d.event_name, 'event_time', d.event_time, 'status', d.status,
                       'event_payload', d.event_payload, 'user_data', d.user_data,
                       'created_at', d.created_at, 'resolved_at', d.resolved_at) ORDER BY d.id), '[]')
              FROM conversion_deliveries d WHERE d.lead_id = ANY (who.lead_ids)),
        'widget_sessions', (
            SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.first_seen_at), '[]')
              FROM widget_sessions s
             WHERE s.client_id = p_client AND s.person_id = ANY (who.anonymous_ids)),
        'session_events', (
            SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.occurred_at DESC), '[]')
              FROM (SELECT e.* FROM widget_sessions s
                     CROSS JOIN LATERAL (
                            SELECT * FROM session_events x
                             WHERE x.client_id = p_client AND x.person_id = s.person_id
                               AND x.occurred_at >= s.first_seen_at
                               AND x.occurred_at <= s.last_seen_at) e
                     WHERE s.client_id = p_client AND s.person_id = ANY (who.anonymous_ids)
                     ORDER BY e.occurred_at DESC LIMIT p_max_events) e),
        'analytics_visitors', (
            SELECT coalesce(jsonb_agg(to_jsonb(v)), '[]') FROM analytics_visitors v
             WHERE v.client_id = p_client AND v.person_id = ANY (who.anonymous_ids)),
        'rejected_events', (
            SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id), '[]') FROM rejected_events r
             WHERE r.client_id = p_client
               AND EXISTS (SELECT 1 FROM unnest(who.anonymous_ids || p_email || p_phone) x
                            WHERE x IS NOT NULL AND strpos(r.payload::text, x) > 0)))
      INTO doc;
    INSERT INTO privacy_requests (kind, client_id, identifier_hashes, outcome, requested_by)
    VALUES ('export', p_client, p_identifier_hashes,
            jsonb_build_object('leads', jsonb_array_length(doc->'leads'),
                               'session_events', jsonb_array_length(doc->'session_events'),
                               'widget_sessions', jsonb_array_length(doc->'widget_sessions')),
            p_requested_by);
    RETURN doc;
END $$;

