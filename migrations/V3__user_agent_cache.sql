-- Parsed user agents, so the ingest component parses each distinct user-agent
-- string once: a component instance lives for one request, and compiling the
-- parser's rules costs ~2 ms of CPU per instance, while the lookup rides on
-- the client query ingest makes anyway.
CREATE TABLE user_agents (
    user_agent      text PRIMARY KEY,
    device_type     text        NOT NULL,
    browser         text,
    browser_version text,
    os              text,
    os_version      text,
    is_bot          boolean     NOT NULL,
    -- Which parser produced the row; rows of an older parser are re-parsed.
    parser          text        NOT NULL,
    parsed_at       timestamptz NOT NULL DEFAULT now()
);
