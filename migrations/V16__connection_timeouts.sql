-- Defaults for every connection to this database, the application's pooled
-- connections included (set here rather than in the URL's `options`, which
-- poolers such as PgBouncer refuse).
--
-- idle_in_transaction_session_timeout: a request whose instance hangs (Spin
-- 4.0.0-4.0.2 never return from a query with no row, spinframework/spin#3671)
-- or dies with a transaction open keeps that transaction, and the locks it
-- holds (a visitor's sessionization lock), until Postgres ends the session.
-- The application's own transactions are milliseconds long; the job lock,
-- which stays open for a whole job, sets its own (platform::jobs).
--
-- statement_timeout: a backstop against a statement that runs or waits far
-- longer than any request should; jobs raise it on their own connection
-- (platform::jobs::JOB_STATEMENT_TIMEOUT), `spin-local migrate` and the
-- native tools switch it off for theirs.
--
-- ALTER DATABASE needs the database's owner (or a superuser); it applies to
-- sessions that start afterwards.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L',
                   current_database(), '60s');
    EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L',
                   current_database(), '120s');
END $$;
