-- retry-failed-events: claiming outbox rows, re-queueing dead letters,
-- releasing what a run did not get to.

CREATE INDEX conversion_deliveries_by_status ON conversion_deliveries (status, id);

-- Claims up to `max_rows` deliverable rows for `owner` for `lease_seconds`:
-- pending or retrying, due (unless `due_only` is false), not leased by a live
-- run, of an enabled destination, and among `only_ids` when given. FOR UPDATE
-- SKIP LOCKED lets concurrent claimers take disjoint rows without waiting;
-- the lease keeps them out of later claims until it is released or expires
-- (a run that died), so a row is never handed to two live runs. Rows
-- attempted since `attempted_before` (this run's start) are not taken again,
-- so a run that ignores due times still tries each row once.
CREATE FUNCTION claim_deliveries(owner uuid, lease_seconds integer, max_rows integer,
                                 due_only boolean, only_ids bigint[],
                                 attempted_before timestamptz)
RETURNS TABLE (id bigint, destination_id uuid, destination text, config jsonb, event_id text,
               event_name text, event_time double precision, event_payload jsonb,
               user_data jsonb, retry_count integer)
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
               d.user_data, d.retry_count
    )
    SELECT cl.id, cl.destination_id, cl.destination, c.config, cl.event_id, cl.event_name,
           cl.event_time, cl.event_payload, cl.user_data, cl.retry_count
      FROM claimed cl
      JOIN client_destinations c ON c.id = cl.destination_id
     ORDER BY cl.destination_id, cl.id
$$;

-- Gives back every row `owner` still holds (a run out of time or events):
-- they stay due and the next run takes them.
CREATE FUNCTION release_deliveries(owner uuid)
RETURNS integer LANGUAGE sql AS $$
    WITH released AS (
        UPDATE conversion_deliveries
           SET lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE lease_owner = owner
     RETURNING 1
    )
    SELECT count(*)::integer FROM released
$$;

-- Puts named dead letters back in the queue with a fresh retry budget (the
-- backoffice's retry of chosen events). Returns the ids it re-queued.
CREATE FUNCTION requeue_dead_letters(ids bigint[])
RETURNS TABLE (id bigint) LANGUAGE sql AS $$
    UPDATE conversion_deliveries d
       SET status = 'retrying', retry_count = 0, next_retry_at = now(),
           dead_letter_reason = NULL, updated_at = now()
     WHERE d.id = ANY (ids) AND d.status = 'dead_letter'
 RETURNING d.id
$$;

-- RFC 3339 in UTC: how endpoints return timestamps (Spin's Postgres
-- interface cannot read timestamptz values themselves).
CREATE FUNCTION rfc3339(t timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
