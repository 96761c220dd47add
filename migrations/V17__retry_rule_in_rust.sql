-- The retry rule has one owner, crates/delivery/src/retry.rs: it decides a
-- row's next status, retry count, due time and dead-letter reason; the SQL
-- below only writes what it decided (set-based, for rows the sender still
-- holds). claim_deliveries also returns max_retries, which the rule needs.

DROP FUNCTION claim_deliveries(uuid, integer, integer, boolean, bigint[], timestamptz);
CREATE FUNCTION claim_deliveries(owner uuid, lease_seconds integer, max_rows integer,
                                 due_only boolean, only_ids bigint[],
                                 attempted_before timestamptz)
RETURNS TABLE (id bigint, destination_id uuid, destination text, config jsonb, event_id text,
               event_name text, event_time double precision, event_payload jsonb,
               user_data jsonb, retry_count integer, max_retries integer)
LANGUAGE sql AS $$
    WITH picked AS (
        SELECT d.id
          FROM conversion_deliveries d
          JOIN client_destinations c ON c.id = d.destination_id AND c.enabled
         WHERE d.status IN ('pending', 'retrying')
           AND (NOT due_only OR d.next_retry_at <= now())
           AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())
           AND (only_ids IS NULL OR d.id = ANY (only_ids))
           AND (d.last_attempt_at IS NULL OR d.last_attempt_at < attempted_before)
         ORDER BY d.next_retry_at, d.id
         LIMIT max_rows
         FOR UPDATE OF d SKIP LOCKED
    ),
    claimed AS (
        UPDATE conversion_deliveries d
           SET lease_owner = owner,
               lease_expires_at = now() + make_interval(secs => lease_seconds),
               updated_at = now()
          FROM picked
         WHERE d.id = picked.id
     RETURNING d.id, d.destination_id, d.destination, d.event_id, d.event_name,
               extract(epoch FROM d.event_time)::float8 AS event_time, d.event_payload,
               d.user_data, d.retry_count, d.max_retries
    )
    SELECT cl.id, cl.destination_id, cl.destination, c.config, cl.event_id, cl.event_name,
           cl.event_time, cl.event_payload, cl.user_data, cl.retry_count, cl.max_retries
      FROM claimed cl
      JOIN client_destinations c ON c.id = cl.destination_id
     ORDER BY cl.destination_id, cl.id
$$;

-- Records attempts made by `lease_owner`: `results` = [{id, outcome
-- ('resolved'|'retry'|'dead_letter', for the attempts log), http_status,
-- error, latency_ms, status, retry_count, retry_in_secs, dead_letter_reason}]
-- as crates/delivery/src/retry.rs decided them. Rows whose lease was lost
-- (expired and taken by another run) are left alone. Returns the new status
-- of each row it updated.
CREATE OR REPLACE FUNCTION record_delivery_outcomes(lease_owner uuid, trigger text, results jsonb)
RETURNS TABLE (id bigint, status text)
LANGUAGE sql AS $$
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(results) AS r(id bigint, outcome text,
            http_status integer, error text, latency_ms integer, status text,
            retry_count integer, retry_in_secs double precision, dead_letter_reason text)
    ),
    updated AS (
        UPDATE conversion_deliveries d SET
            status = r.status,
            retry_count = r.retry_count,
            dead_letter_reason = r.dead_letter_reason,
            next_retry_at = CASE WHEN r.retry_in_secs IS NOT NULL
                THEN now() + make_interval(secs => r.retry_in_secs)
                ELSE d.next_retry_at END,
            last_error = CASE WHEN r.outcome = 'resolved' THEN d.last_error ELSE r.error END,
            last_http_status = r.http_status,
            first_attempt_at = coalesce(d.first_attempt_at, now()),
            last_attempt_at = now(),
            resolved_at = CASE WHEN r.status = 'resolved' THEN now() ELSE NULL END,
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
