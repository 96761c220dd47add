-- ingest_context as PL/pgSQL (issue 14). As an inlined SQL function it was
-- planned again on every request: 0.35 ms of planning for 0.05 ms of work
-- (pg_stat_statements during `bench ingest`). PL/pgSQL keeps its statement's
-- plan per connection, as the write already does. Same arguments, same row.
--
-- A plan kept per connection is made for the table as it was then: on an
-- empty widget_sessions (a new database) the visitor lookup is a sequential
-- scan until autoanalyze invalidates it, as for lock_visitor_last_session
-- (V4) before. `bench ingest` starts on a base of sessions for that reason.

CREATE OR REPLACE FUNCTION ingest_context(p_client_id text, p_user_agent text, p_parser text, p_person_id text)
RETURNS TABLE (enabled boolean, root_domain text, allow_localhost boolean,
               device_type text, browser text, browser_version text, os text, os_version text,
               is_bot boolean, session_id text, last_seen_us bigint, utm_campaign text,
               refused_consent_events text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
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
     WHERE c.id = p_client_id::uuid;
END $$;
