-- Event ingest: clients, the raw event stream, sessions, rejected events.

CREATE TABLE clients (
    id              uuid PRIMARY KEY,
    name            text        NOT NULL,
    client_type     text        NOT NULL DEFAULT 'client'
                    CHECK (client_type IN ('client', 'onboarding', 'test', 'demo', 'former')),
    enabled         boolean     NOT NULL DEFAULT true,
    -- Events must come from pages on this domain or its subdomains.
    root_domain     text,
    -- Test clients may also send from localhost.
    allow_localhost boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- CORS preflights find clients by the candidate roots of an Origin's host.
CREATE INDEX clients_by_root_domain ON clients (root_domain) WHERE enabled;

-- One row per accepted event. Partitioned by month of occurred_at so that
-- retention drops whole partitions and time-bounded queries touch only the
-- months they need. Only client_id, person_id, event_name, occurred_at,
-- widget_displayed_at and duration_s are needed to insert (imports, backfills).
CREATE TABLE session_events (
    event_id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    client_id           uuid        NOT NULL REFERENCES clients (id),
    person_id           text        NOT NULL,
    session_id          text,
    event_name          text        NOT NULL,
    occurred_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    widget_displayed_at bigint,
    duration_s          double precision,
    page_url            text,
    domain              text,
    referrer            text,
    referrer_domain     text,
    utm_source          text,
    utm_medium          text,
    utm_campaign        text,
    utm_term            text,
    utm_content         text,
    gclid               text,
    fbclid              text,
    fbc                 text,
    device_type         text,
    browser             text,
    os                  text,
    is_bot              boolean     NOT NULL DEFAULT false,
    -- Truncated (/24, /48) unless the ip_storage variable says otherwise.
    client_ip           text,
    properties          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- A partitioned table's unique key must contain the partition key: an
    -- event is identified by its id and its timestamp, which a retry repeats.
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Per-client time ranges (analytics, "today" reads) and per-client counts of
-- one event name over a window (the tracking-health detector).
CREATE INDEX session_events_client_time ON session_events (client_id, occurred_at);
CREATE INDEX session_events_client_name_time ON session_events (client_id, event_name, occurred_at);

-- Rows outside every monthly partition (old imports) land here rather than fail.
CREATE TABLE session_events_default PARTITION OF session_events DEFAULT;

-- Creates the monthly partitions of session_events for `months` months from
-- the month of `from_month`; returns how many it created. Idempotent.
CREATE FUNCTION ensure_session_events_partitions(from_month date, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    start_month date := date_trunc('month', from_month)::date;
    m date;
    name text;
    created integer := 0;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        m := (start_month + make_interval(months => i))::date;
        name := format('session_events_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF session_events FOR VALUES FROM (%L) TO (%L)',
                name, m::timestamptz, (m + interval '1 month')::timestamptz);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

-- Twelve months back (imports) to three ahead; the heartbeat job keeps
-- creating months ahead.
SELECT ensure_session_events_partitions((now() - interval '12 months')::date, 16);

-- One row per session: first/last seen, counts, first-touch attribution, device.
CREATE TABLE widget_sessions (
    client_id       uuid        NOT NULL REFERENCES clients (id),
    session_id      text        NOT NULL,
    person_id       text        NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    event_count     integer     NOT NULL DEFAULT 0,
    landing_page    text,
    referrer        text,
    referrer_domain text,
    utm_source      text,
    utm_medium      text,
    utm_campaign    text,
    utm_term        text,
    utm_content     text,
    gclid           text,
    fbclid          text,
    fbc             text,
    device_type     text,
    browser         text,
    browser_version text,
    os              text,
    os_version      text,
    is_bot          boolean     NOT NULL DEFAULT false,
    locale          text,
    screen          text,
    chat_started    boolean     NOT NULL DEFAULT false,
    form_submitted  boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (client_id, session_id)
);

-- Server-side sessionization looks up a visitor's latest session.
CREATE INDEX widget_sessions_by_person ON widget_sessions (client_id, person_id, last_seen_at DESC);
CREATE INDEX widget_sessions_by_last_seen ON widget_sessions (client_id, last_seen_at DESC);

-- Events the ingest rejected, with why and the raw payload, so nothing is
-- silently dropped. Capped per client per hour (rejected_events_cap_per_hour).
CREATE TABLE rejected_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   uuid        NOT NULL REFERENCES clients (id),
    received_at timestamptz NOT NULL DEFAULT now(),
    event_index integer     NOT NULL,
    event_id    text,
    field       text        NOT NULL,
    reason      text        NOT NULL,
    payload     jsonb       NOT NULL
);

CREATE INDEX rejected_events_by_client ON rejected_events (client_id, received_at DESC);
