-- V9 and V10 both added a BRIN index on session_events.received_at; V10's
-- (received_at, occurred_at) serves the health checks' received_at ranges as
-- well, so the single-column one only costs ingest.
DROP INDEX IF EXISTS session_events_received_brin;
