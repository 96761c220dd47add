-- Every run of a scheduled or on-demand job, so the backoffice can see when
-- each job last ran and whether it failed (crates/platform/src/jobs.rs writes it).
CREATE TABLE job_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_name     text        NOT NULL,
    trigger      text        NOT NULL CHECK (trigger IN ('cron', 'http')),
    -- The cron trigger's timestamp for scheduled runs.
    scheduled_at timestamptz,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    outcome      text        NOT NULL DEFAULT 'running'
                 CHECK (outcome IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned')),
    -- Counts and figures on success, {"error": ...} on failure.
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    app_version  text,
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);

CREATE INDEX job_runs_by_job ON job_runs (job_name, started_at DESC);

-- The backoffice's view: per job, its latest run and its latest failure.
CREATE VIEW job_status AS
SELECT j.job_name,
       last.id          AS last_run_id,
       last.started_at  AS last_started_at,
       last.finished_at AS last_finished_at,
       last.outcome     AS last_outcome,
       last.detail      AS last_detail,
       fail.started_at  AS last_failed_at,
       fail.detail      AS last_failure_detail
FROM (SELECT DISTINCT job_name FROM job_runs) j
CROSS JOIN LATERAL (
    SELECT * FROM job_runs r WHERE r.job_name = j.job_name
    ORDER BY started_at DESC LIMIT 1) last
LEFT JOIN LATERAL (
    SELECT * FROM job_runs r WHERE r.job_name = j.job_name AND r.outcome = 'failed'
    ORDER BY started_at DESC LIMIT 1) fail ON true;
