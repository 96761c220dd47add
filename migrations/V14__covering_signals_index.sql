-- The detector's signals read, per client, its widget_impression /
-- chat_started / client_form_submitted events of 30 days. Through the old
-- (client_id, event_name, occurred_at) index each row cost a heap page read
-- in random order: 5.5 M page reads at 10 M events, so the refresh grew 31×
-- from 1 M to 10 M events. Carrying the columns the signals need makes
-- them index-only scans (heap pages are not read once autovacuum has marked
-- them all-visible, which it does for insert-only tables): same key, so every
-- other use of the old index is served too.
CREATE INDEX session_events_client_name_time_signals ON session_events (client_id, event_name, occurred_at)
    INCLUDE (person_id, widget_displayed_at, duration_s, is_bot);
DROP INDEX session_events_client_name_time;
