-- save-lead: leads, the ad platforms each client sends conversions to, and
-- the delivery outbox with its attempt log.

-- Whether a lead needs a valid email or phone. When false, an invalid email or
-- phone is kept out of matching (and reported back) instead of refusing the lead.
ALTER TABLE clients ADD COLUMN lead_contact_required boolean NOT NULL DEFAULT true;
-- The client's market (ISO 3166-1 alpha-2): reads phone numbers written
-- without a country code when the lead's address gives no country.
ALTER TABLE clients ADD COLUMN default_country text
    CHECK (default_country ~ '^[A-Z]{2}$');

-- Raw PII lives here and nowhere else; deliveries carry hashes.
CREATE TABLE leads (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id      uuid        NOT NULL REFERENCES clients (id),
    -- The widget's id for this submission: the idempotency key, and the
    -- event_id ad platforms deduplicate on.
    event_id       text        NOT NULL,
    anonymous_id   text,
    session_id     text,
    email          text,
    -- E.164.
    phone          text,
    first_name     text,
    last_name      text,
    city           text,
    -- Two-letter code for US states and Canadian provinces.
    state          text,
    zip            text,
    -- ISO 3166-1 alpha-2.
    country        text,
    -- Where the address came from: the least trusted source that supplied any
    -- of city/state/zip/country (user > ai > ip); null when there is none.
    geo_source     text        CHECK (geo_source IN ('user', 'ai', 'ip')),
    -- Per field: {"city": "user", "state": "ip", ...}.
    geo_sources    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- What the IP lookup did: provider, outcome, duration.
    geo_lookup     jsonb,
    ai_context     jsonb,
    page_url       text,
    fbc            text,
    fbp            text,
    gclid          text,
    consent        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    fields         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- Contact fields that failed validation when the client accepts such leads.
    invalid_fields jsonb       NOT NULL DEFAULT '[]'::jsonb,
    -- Stored per the ip_storage variable, like events.
    client_ip      text,
    user_agent     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, event_id)
);

-- Where a client's conversions go. `config` holds credentials: no endpoint
-- returns it and nothing logs it.
CREATE TABLE client_destinations (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id  uuid        NOT NULL REFERENCES clients (id),
    kind       text        NOT NULL CHECK (kind IN ('meta_capi', 'google_ec', 'gtm_server', 'webhook')),
    name       text,
    config     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled    boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX client_destinations_by_client ON client_destinations (client_id) WHERE enabled;

-- The delivery outbox: one row per conversion per destination, whatever its
-- state. The seed's `tracking_failed_events` is this table seen when
-- deliveries fail (the view below); its status names are kept.
CREATE TABLE conversion_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id        uuid        NOT NULL REFERENCES clients (id),
    destination_id   uuid        NOT NULL REFERENCES client_destinations (id),
    destination      text        NOT NULL CHECK (destination IN ('meta_capi', 'google_ec', 'gtm_server', 'webhook')),
    lead_id          uuid        REFERENCES leads (id),
    -- Stable across retries: the platforms deduplicate on it.
    event_id         text        NOT NULL,
    event_name       text        NOT NULL,
    event_time       timestamptz NOT NULL,
    -- The destination's event without user data and without credentials.
    event_payload    jsonb       NOT NULL,
    -- Normalized and hashed per the destination's rules (IP, user agent and
    -- click ids unhashed, as the platforms require).
    user_data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'retrying', 'resolved', 'dead_letter')),
    retry_count      integer     NOT NULL DEFAULT 0,
    max_retries      integer     NOT NULL DEFAULT 5,
    next_retry_at    timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    last_http_status integer,
    -- e.g. 'expired', 'rejected', 'max_retries'.
    dead_letter_reason text,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    resolved_at      timestamptz,
    -- A sender holds a row while it delivers it; a lease that expires (the
    -- sender died) makes the row deliverable again.
    lease_owner      uuid,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- One delivery of one conversion per destination, however often it is submitted.
    UNIQUE (destination_id, event_id)
);
CREATE INDEX conversion_deliveries_due ON conversion_deliveries (next_retry_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX conversion_deliveries_by_client ON conversion_deliveries (client_id, created_at);
CREATE INDEX conversion_deliveries_by_lead ON conversion_deliveries (lead_id);

CREATE VIEW tracking_failed_events AS
    SELECT * FROM conversion_deliveries WHERE status <> 'resolved';

-- One row per delivery attempt (inline, cron or manual): feeds health checks.
CREATE TABLE delivery_attempts (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id    bigint      NOT NULL REFERENCES conversion_deliveries (id) ON DELETE CASCADE,
    destination_id uuid        NOT NULL,
    destination    text        NOT NULL,
    trigger        text        NOT NULL CHECK (trigger IN ('inline', 'cron', 'manual')),
    attempted_at   timestamptz NOT NULL DEFAULT now(),
    -- resolved | retry | dead_letter
    outcome        text        NOT NULL,
    http_status    integer,
    latency_ms     integer,
    error          text
);
CREATE INDEX delivery_attempts_by_time ON delivery_attempts (attempted_at);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id);

-- A remote provider that answered 429 is left alone until paused_until, so a
-- rate limit costs one request, not one per lead.
CREATE TABLE geo_provider_pauses (
    provider     text        PRIMARY KEY,
    paused_until timestamptz NOT NULL,
    reason       text        NOT NULL
);

-- Stores a lead and queues its deliveries in one statement, so either both are
-- written or neither. A second submission with the same (client_id, event_id)
-- writes nothing and returns the first lead. The new deliveries are leased to
-- `lease_owner` for `lease_seconds` (the inline attempt), so a concurrent retry
-- run does not send them too; if the sender dies the lease runs out.
-- `deliveries`: [{destination_id, destination, event_name, event_time (unix
-- seconds), event_payload, user_data}].
CREATE FUNCTION save_lead(lead jsonb, deliveries jsonb, lease_owner uuid, lease_seconds integer)
RETURNS TABLE (lead_id uuid, created boolean, queued jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    r leads;
    new_id uuid;
BEGIN
    r := jsonb_populate_record(NULL::leads, lead);
    INSERT INTO leads (id, client_id, event_id, anonymous_id, session_id, email, phone,
                       first_name, last_name, city, state, zip, country, geo_source,
                       geo_sources, geo_lookup, ai_context, page_url, fbc, fbp, gclid,
                       consent, fields, invalid_fields, client_ip, user_agent)
    VALUES (coalesce(r.id, gen_random_uuid()), r.client_id, r.event_id, r.anonymous_id,
            r.session_id, r.email, r.phone, r.first_name, r.last_name, r.city, r.state,
            r.zip, r.country, r.geo_source, coalesce(r.geo_sources, '{}'), r.geo_lookup,
            r.ai_context, r.page_url, r.fbc, r.fbp, r.gclid, coalesce(r.consent, '{}'),
            coalesce(r.fields, '{}'), coalesce(r.invalid_fields, '[]'), r.client_ip,
            r.user_agent)
    ON CONFLICT (client_id, event_id) DO NOTHING
    RETURNING id INTO new_id;

    IF new_id IS NULL THEN
        RETURN QUERY
            SELECT l.id, false, '[]'::jsonb FROM leads l
            WHERE l.client_id = r.client_id AND l.event_id = r.event_id;
        RETURN;
    END IF;

    RETURN QUERY
    WITH queued AS (
        INSERT INTO conversion_deliveries (client_id, destination_id, destination, lead_id,
                                           event_id, event_name, event_time, event_payload,
                                           user_data, lease_owner, lease_expires_at)
        SELECT r.client_id, d.destination_id, d.destination, new_id, r.event_id, d.event_name,
               to_timestamp(d.event_time), d.event_payload, d.user_data, lease_owner,
               now() + make_interval(secs => lease_seconds)
        FROM jsonb_to_recordset(deliveries) AS d(destination_id uuid, destination text,
             event_name text, event_time double precision, event_payload jsonb, user_data jsonb)
        ON CONFLICT (destination_id, event_id) DO NOTHING
        RETURNING id, destination_id
    )
    SELECT new_id, true,
           coalesce(jsonb_agg(jsonb_build_object('id', q.id, 'destination_id', q.destination_id)), '[]'::jsonb)
    FROM queued q;
END
$$;

-- Records the outcome of delivery attempts made by `lease_owner`, set-based:
-- `results` = [{id, outcome ('resolved'|'retry'|'dead_letter'), http_status,
-- error, latency_ms, retry_in_secs, dead_letter_reason}]. Rows whose lease was
-- lost (expired and taken by another run) are left alone. retry_count counts
-- retries: the first (inline) attempt does not increment it, each later one
-- does; a retry outcome at max_retries dead-letters the row. Returns the new
-- status of each row it updated.
CREATE FUNCTION record_delivery_outcomes(lease_owner uuid, trigger text, results jsonb)
RETURNS TABLE (id bigint, status text)
LANGUAGE sql AS $$
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(results) AS r(id bigint, outcome text,
            http_status integer, error text, latency_ms integer, retry_in_secs double precision,
            dead_letter_reason text)
    ),
    updated AS (
        UPDATE conversion_deliveries d SET
            retry_count = d.retry_count + CASE WHEN trigger = 'inline' THEN 0 ELSE 1 END,
            status = CASE
                WHEN r.outcome = 'resolved' THEN 'resolved'
                WHEN r.outcome = 'dead_letter' THEN 'dead_letter'
                WHEN d.retry_count + CASE WHEN trigger = 'inline' THEN 0 ELSE 1 END >= d.max_retries
                    THEN 'dead_letter'
                ELSE 'retrying' END,
            dead_letter_reason = CASE
                WHEN r.outcome = 'dead_letter' THEN coalesce(r.dead_letter_reason, 'rejected')
                WHEN r.outcome = 'retry'
                     AND d.retry_count + CASE WHEN trigger = 'inline' THEN 0 ELSE 1 END >= d.max_retries
                    THEN 'max_retries'
                ELSE NULL END,
            next_retry_at = CASE WHEN r.outcome = 'retry'
                THEN now() + make_interval(secs => coalesce(r.retry_in_secs, 300))
                ELSE d.next_retry_at END,
            last_error = CASE WHEN r.outcome = 'resolved' THEN d.last_error ELSE r.error END,
            last_http_status = r.http_status,
            first_attempt_at = coalesce(d.first_attempt_at, now()),
            last_attempt_at = now(),
            resolved_at = CASE WHEN r.outcome = 'resolved' THEN now() ELSE NULL END,
            lease_owner = NULL,
            lease_expires_at = NULL,
            updated_at = now()
        FROM r
        WHERE d.id = r.id AND d.lease_owner = record_delivery_outcomes.lease_owner
        RETURNING d.id, d.destination_id, d.destination, d.status, r.outcome, r.http_status,
                  r.latency_ms, r.error
    ),
    logged AS (
        INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, outcome,
                                       http_status, latency_ms, error)
        SELECT u.id, u.destination_id, u.destination, trigger, u.outcome, u.http_status,
               u.latency_ms, u.error
        FROM updated u
    )
    SELECT u.id, u.status FROM updated u
$$;
