-- The summary and trends sum the numeric columns of one client's days. The
-- rollup writes a day for every client at once, so one client's rows are
-- spread over as many heap pages as it has days (730 for two years); this
-- covering index lets a range read them as one contiguous index-only scan.
CREATE INDEX widget_daily_stats_totals ON widget_daily_stats (client_id, day)
    INCLUDE (sessions, unique_visitors, new_visitors, returning_visitors, events, impressions,
             opens, chats_started, messages, forms_submitted, converted_sessions,
             total_session_seconds, bot_sessions, bot_visitors, bot_events);
