//! The cron path: the heartbeat component run once, through the library and
//! through the `spin-local cron` subcommand, recorded in `job_runs`.

use integration_tests::*;

async fn runs(db: &TestDb) -> Vec<(String, String, String, serde_json::Value)> {
    db.rows("SELECT job_name, trigger, outcome, detail FROM job_runs ORDER BY id")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// `spin-local cron heartbeat` on the application, with `db` as its database.
fn heartbeat_command(db: &TestDb) -> std::process::Command {
    let mut command = std::process::Command::new(host_binary());
    command
        .args(["cron", "heartbeat", "-f"])
        .arg(app_manifest())
        .arg("--variable")
        .arg(format!("database_url={}", db.url));
    command
}

#[tokio::test]
async fn the_cron_subcommand_runs_the_job_and_records_it() {
    let db = TestDb::new().await;
    let out = heartbeat_command(&db)
        .arg("--timestamp")
        .arg("1790000000")
        .env_remove("SPIN_VARIABLE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = runs(&db).await;
    assert_eq!(runs.len(), 1);
    let (job, trigger, outcome, detail) = &runs[0];
    assert_eq!(
        (job.as_str(), trigger.as_str(), outcome.as_str()),
        ("heartbeat", "cron", "succeeded")
    );
    assert_eq!(detail["abandoned"], 0);
    let scheduled: f64 = db
        .one("SELECT extract(epoch FROM scheduled_at)::float8 FROM job_runs")
        .await
        .get(0);
    assert_eq!(scheduled, 1790000000.0);
}

#[tokio::test]
async fn heartbeat_marks_stale_runs_abandoned_and_prunes_old_ones() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO job_runs (job_name, trigger, started_at) VALUES ('stuck', 'cron', now() - interval '2 hours');
             INSERT INTO job_runs (job_name, trigger, started_at, finished_at, outcome)
               VALUES ('old', 'cron', now() - interval '100 days', now() - interval '100 days', 'succeeded');
             INSERT INTO job_runs (job_name, trigger, started_at) VALUES ('recent', 'cron', now() - interval '5 minutes');").await;
    let app = load(&app_manifest(), variables(Some(&db), &[]))
        .await
        .unwrap();
    app.run_cron("heartbeat", 1).await.unwrap().unwrap();
    let outcomes: Vec<(String, String)> = db
        .rows("SELECT job_name, outcome FROM job_runs ORDER BY id")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expect = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        outcomes,
        vec![
            expect("stuck", "abandoned"),
            expect("recent", "running"),
            expect("heartbeat", "succeeded")
        ]
    );
    let detail: serde_json::Value = db
        .value("SELECT detail FROM job_runs WHERE job_name = 'heartbeat'")
        .await;
    assert_eq!(
        detail,
        serde_json::json!({ "abandoned": 1, "deleted": 1, "partitions_created": 0 })
    );
}

#[tokio::test]
async fn a_second_copy_of_a_running_job_is_skipped() {
    let db = TestDb::new().await;
    // Another replica holds the job's lock.
    let holder = db.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('job:' || $1, 0))",
            &[&"heartbeat"],
        )
        .await
        .unwrap();
    let app = load(&app_manifest(), variables(Some(&db), &[]))
        .await
        .unwrap();
    app.run_cron("heartbeat", 1).await.unwrap().unwrap();
    holder.batch_execute("COMMIT").await.unwrap();
    app.run_cron("heartbeat", 2).await.unwrap().unwrap();
    let outcomes: Vec<String> = runs(&db).await.into_iter().map(|r| r.2).collect();
    assert_eq!(outcomes, vec!["skipped", "succeeded"]);
}

#[tokio::test]
async fn a_failing_job_is_recorded_and_the_subcommand_exits_non_zero() {
    let db = TestDb::new().await;
    let out = heartbeat_command(&db)
        .args(["--variable", "job_stale_after_minutes=soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cron component heartbeat failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("job_stale_after_minutes must be a whole number"),
        "{stderr}"
    );
    let runs = runs(&db).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].2, "failed");
    let error = runs[0].3["error"].as_str().unwrap();
    assert!(
        error.contains("job_stale_after_minutes must be a whole number"),
        "{error}"
    );
    let status: (String, Option<String>) = {
        let row = db.one("SELECT last_outcome, last_failure_detail->>'error' FROM job_status WHERE job_name = 'heartbeat'").await;
        (row.get(0), row.get(1))
    };
    assert_eq!(status.0, "failed");
    assert!(status.1.is_some());
}

#[tokio::test]
async fn a_job_without_a_database_fails_loudly() {
    let db = TestDb::new().await;
    let app = load(
        &app_manifest(),
        variables(
            Some(&db),
            &[
                (
                    "database_url",
                    "postgres://postgres@localhost:1/x?sslmode=disable",
                ),
                ("database_host", "localhost:1"),
            ],
        ),
    )
    .await
    .unwrap();
    let err = app.run_cron("heartbeat", 1).await.unwrap().unwrap_err();
    assert!(err.contains("job heartbeat: connection failed"), "{err}");
}

#[tokio::test]
async fn heartbeat_creates_the_coming_months_event_partitions() {
    let db = TestDb::new().await;
    // As if the migration had run long ago: next month's partition is missing.
    let next: String = db
        .value("SELECT format('session_events_%s', to_char(now() + interval '1 month', 'YYYY_MM'))")
        .await;
    db.exec(&format!("DROP TABLE {next}")).await;
    let app = load(&app_manifest(), variables(Some(&db), &[]))
        .await
        .unwrap();
    app.run_cron("heartbeat", 1).await.unwrap().unwrap();
    let detail: serde_json::Value = db
        .value("SELECT detail FROM job_runs WHERE job_name = 'heartbeat'")
        .await;
    assert_eq!(detail["partitions_created"], 1);
    let exists: bool = db
        .value(&format!("SELECT to_regclass('{next}') IS NOT NULL"))
        .await;
    assert!(exists);
}
