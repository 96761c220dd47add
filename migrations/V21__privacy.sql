-- Privacy and data lifecycle (issue 16): a retention for every table that
-- grows, erasing and exporting one person, an append-only log of those
-- requests, consent, and the full IP kept for Meta dropped once a delivery
-- is settled. docs/PRIVACY.md says what is stored where and for how long.

-- What a client does with events whose visitor refused analytics consent
-- (`context.consent.analytics = false`): store them without identifiers
-- ('anonymous': counts stay right, no visitor, IP or click id is kept), or
-- not at all ('drop').
ALTER TABLE clients ADD COLUMN refused_consent_events text NOT NULL DEFAULT 'anonymous'
    CHECK (refused_consent_events IN ('anonymous', 'drop'));

-- One row per erase or export: who asked, for which client, what was done;
-- the person only as SHA-256 hashes of the identifiers given. Append-only.
CREATE TABLE privacy_requests (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind IN ('erase', 'export')),
    client_id         uuid        NOT NULL,
    identifier_hashes jsonb       NOT NULL,
    outcome           jsonb       NOT NULL,
    requested_by      text,
    requested_at      timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION privacy_requests_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'privacy_requests is append-only';
END $$;
CREATE TRIGGER privacy_requests_append_only BEFORE UPDATE OR DELETE ON privacy_requests
    FOR EACH ROW EXECUTE FUNCTION privacy_requests_append_only();

-- Finding a person's leads by what a data subject can tell us.
CREATE INDEX leads_by_email ON leads (client_id, email) WHERE email IS NOT NULL;
CREATE INDEX leads_by_phone ON leads (client_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX leads_by_anonymous_id ON leads (client_id, anonymous_id) WHERE anonymous_id IS NOT NULL;
CREATE INDEX leads_by_created ON leads (created_at);

-- Retention scans by age.
CREATE INDEX conversion_deliveries_resolved ON conversion_deliveries (resolved_at)
    WHERE status = 'resolved';
CREATE INDEX alert_notifications_by_created ON alert_notifications (created_at);
CREATE INDEX tracking_health_alerts_resolved ON tracking_health_alerts (resolved_at)
    WHERE resolved_at IS NOT NULL;
CREATE INDEX rejected_events_received ON rejected_events USING brin (received_at);
CREATE INDEX user_agents_parsed ON user_agents (parsed_at);

-- Meta needs the visitor's full IP to match; once a delivery is settled
-- (delivered or dead-lettered) the outbox no longer keeps it. A dead letter
-- replayed later goes without it.
CREATE FUNCTION conversion_deliveries_drop_ip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.user_data := NEW.user_data - 'client_ip_address';
    RETURN NEW;
END $$;
CREATE TRIGGER conversion_deliveries_drop_ip BEFORE UPDATE OF status ON conversion_deliveries
    FOR EACH ROW WHEN (NEW.status IN ('resolved', 'dead_letter') AND NEW.user_data ? 'client_ip_address')
    EXECUTE FUNCTION conversion_deliveries_drop_ip();
-- Rows settled before this migration.
UPDATE conversion_deliveries SET user_data = user_data - 'client_ip_address'
 WHERE status IN ('resolved', 'dead_letter') AND user_data ? 'client_ip_address';

-- One batch of one retention: deletes at most p_batch rows of `p_what`
-- older than p_before and returns how many. Each call is its own short
-- transaction; the nightly job (crates/privacy) calls it until a batch
-- comes back short.
CREATE FUNCTION retention_delete_batch(p_what text, p_before timestamptz, p_batch integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    CASE p_what
    WHEN 'resolved_deliveries' THEN
        -- Their attempts go with them (ON DELETE CASCADE).
        DELETE FROM conversion_deliveries WHERE id = ANY (ARRAY(
            SELECT id FROM conversion_deliveries
             WHERE status = 'resolved' AND resolved_at < p_before LIMIT p_batch));
    WHEN 'dead_letters' THEN
        DELETE FROM conversion_deliveries WHERE id = ANY (ARRAY(
            SELECT id FROM conversion_deliveries
             WHERE status = 'dead_letter' AND updated_at < p_before LIMIT p_batch));
    WHEN 'delivery_attempts' THEN
        DELETE FROM delivery_attempts WHERE id = ANY (ARRAY(
            SELECT id FROM delivery_attempts WHERE attempted_at < p_before LIMIT p_batch));
    WHEN 'alert_notifications' THEN
        -- Sent (or settled) ones only: an unsent message still waits for its webhook.
        DELETE FROM alert_notifications WHERE id = ANY (ARRAY(
            SELECT id FROM alert_notifications
             WHERE created_at < p_before AND sent_at IS NOT NULL LIMIT p_batch));
    WHEN 'resolved_alerts' THEN
        DELETE FROM tracking_health_alerts a WHERE a.id = ANY (ARRAY(
            SELECT x.id FROM tracking_health_alerts x
             WHERE x.resolved_at < p_before
               AND NOT EXISTS (SELECT 1 FROM alert_notifications n WHERE n.alert_id = x.id)
             LIMIT p_batch));
    WHEN 'health_checks' THEN
        DELETE FROM tracking_health_checks WHERE id = ANY (ARRAY(
            SELECT id FROM tracking_health_checks WHERE checked_at < p_before LIMIT p_batch));
    WHEN 'rejected_events' THEN
        DELETE FROM rejected_events WHERE id = ANY (ARRAY(
            SELECT id FROM rejected_events WHERE received_at < p_before LIMIT p_batch));
    WHEN 'user_agents' THEN
        -- A cached parse; a user agent seen again is parsed again.
        DELETE FROM user_agents WHERE user_agent = ANY (ARRAY(
            SELECT user_agent FROM user_agents WHERE parsed_at < p_before LIMIT p_batch));
    WHEN 'leads' THEN
        -- With their deliveries, once none of them is still queued.
        WITH old AS (
            SELECT l.id FROM leads l
             WHERE l.created_at < p_before
               AND NOT EXISTS (SELECT 1 FROM conversion_deliveries d
                                WHERE d.lead_id = l.id AND d.status IN ('pending', 'retrying'))
             LIMIT p_batch
        ), deliveries AS (
            DELETE FROM conversion_deliveries d USING old WHERE d.lead_id = old.id
        )
        DELETE FROM leads l USING old WHERE l.id = old.id;
    ELSE
        RAISE EXCEPTION 'unknown retention %', p_what;
    END CASE;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- A person of a client: the leads that name them (normalized email or
-- E.164 phone, as delivery normalizes them, or their anonymous id), and
-- every anonymous id those leads carry.
CREATE FUNCTION privacy_person(p_client uuid, p_anonymous_id text, p_email text, p_phone text)
RETURNS TABLE (lead_ids uuid[], anonymous_ids text[]) LANGUAGE sql STABLE AS $$
    WITH l AS (
        SELECT id, anonymous_id FROM leads WHERE client_id = p_client AND email = p_email
        UNION
        SELECT id, anonymous_id FROM leads WHERE client_id = p_client AND phone = p_phone
        UNION
        SELECT id, anonymous_id FROM leads WHERE client_id = p_client AND anonymous_id = p_anonymous_id
    )
    SELECT coalesce(array_agg(DISTINCT l.id), '{}'),
           ARRAY(SELECT DISTINCT x FROM unnest(array_agg(l.anonymous_id) || p_anonymous_id) x
                  WHERE x IS NOT NULL)
      FROM l
$$;

-- Erases a person of a client in one transaction: their events (found
-- through their sessions' time spans, with the (client_id, occurred_at)
-- index), sessions, visitor registry rows, event keys, leads, the outbox
-- rows of those leads (with their attempts) and rejected payloads that name
-- them. The daily rollups stay (they hold no identifier). If a delivery of
-- theirs is leased to a sender right now, nothing is erased and the answer
-- says for how long (the caller retries): a cancelled event is never sent.
CREATE FUNCTION privacy_erase(p_client uuid, p_anonymous_id text, p_email text, p_phone text,
                              p_identifier_hashes jsonb, p_requested_by text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    who record;
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
    WITH s AS (
        SELECT person_id, first_seen_at, last_seen_at FROM widget_sessions
         WHERE client_id = p_client AND person_id = ANY (who.anonymous_ids)
    ), gone AS (
        DELETE FROM session_events e USING s
         WHERE e.client_id = p_client AND e.person_id = s.person_id
           AND e.occurred_at >= s.first_seen_at AND e.occurred_at <= s.last_seen_at
        RETURNING e.event_id
    ), keys AS (
        DELETE FROM event_keys k USING (SELECT DISTINCT event_id FROM gone) g
         WHERE k.client_id = p_client AND k.event_id = g.event_id
    )
    SELECT count(*) INTO n FROM gone;
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

-- Everything stored about a person of a client, as one JSON document (an
-- access request). Events are listed up to p_max_events, newest first.
CREATE FUNCTION privacy_export(p_client uuid, p_anonymous_id text, p_email text, p_phone text,
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
                      JOIN session_events e
                        ON e.client_id = p_client AND e.person_id = s.person_id
                       AND e.occurred_at >= s.first_seen_at AND e.occurred_at <= s.last_seen_at
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

-- ingest_context also says what the client does with consent-refused events.
DROP FUNCTION ingest_context(text, text, text, text);
CREATE FUNCTION ingest_context(p_client_id text, p_user_agent text, p_parser text, p_person_id text)
RETURNS TABLE (enabled boolean, root_domain text, allow_localhost boolean,
               device_type text, browser text, browser_version text, os text, os_version text,
               is_bot boolean, session_id text, last_seen_us bigint, utm_campaign text,
               refused_consent_events text)
LANGUAGE sql STABLE AS $$
    SELECT c.enabled, c.root_domain, c.allow_localhost,
           u.device_type, u.browser, u.browser_version, u.os, u.os_version,
           coalesce(u.is_bot, false), s.session_id, s.last_seen_us, s.utm_campaign,
           c.refused_consent_events
      FROM clients c
      LEFT JOIN user_agents u ON u.user_agent = p_user_agent AND u.parser = p_parser
      LEFT JOIN LATERAL (
            SELECT ws.session_id, (extract(epoch FROM ws.last_seen_at) * 1000000)::int8 AS last_seen_us,
                   ws.utm_campaign
              FROM widget_sessions ws
             WHERE ws.client_id = c.id AND ws.person_id = p_person_id
             ORDER BY ws.last_seen_at DESC
             LIMIT 1) s ON p_person_id IS NOT NULL
     WHERE c.id = p_client_id::uuid
$$;
