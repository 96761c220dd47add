-- Per destination over the last 24 hours: attempts, success rate and latency
-- percentiles (the health summary). Its own function so that the sort gets
-- the memory it needs without raising work_mem for every statement, and
-- without JIT, whose compile time costs more than it saves here.
CREATE FUNCTION destination_delivery_stats_24h()
RETURNS TABLE (destination_id uuid, destination text, attempts bigint, success_rate double precision,
               p50 double precision, p90 double precision, p99 double precision)
LANGUAGE sql STABLE
SET work_mem = '64MB'
SET jit = off
AS $$
    SELECT a.destination_id, a.destination, count(*), avg((a.outcome = 'resolved')::int)::float8,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms)::float8,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY a.latency_ms)::float8,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY a.latency_ms)::float8
      FROM delivery_attempts a
     WHERE a.attempted_at > now() - interval '24 hours'
     GROUP BY a.destination_id, a.destination
$$;
