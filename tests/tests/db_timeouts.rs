//! The database ends what a hung or killed instance leaves behind
//! (migrations/V16): a transaction left open is ended by Postgres and its
//! locks released, and a statement that waits too long is cancelled and
//! answered 503. The tests shorten the timeouts on their own database; the
//! mechanism is the one production runs with.

use std::time::Duration;

use chrono::Utc;
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

async fn setting(db: &TestDb, name: &str) -> String {
    db.value(&format!("SHOW {name}")).await
}

async fn set_database(db: &TestDb, name: &str, value: &str) {
    db.exec(&format!(
        "ALTER DATABASE \"{}\" SET {name} = '{value}'",
        db.name
    ))
    .await;
}

async fn client(db: &TestDb) -> Uuid {
    ClientSpec::new()
        .root_domain("shop.example")
        .insert(db)
        .await
}

async fn send_event(app: &TestApp, client: Uuid, visitor: &str) -> (u16, Value) {
    let event = widget_event("widget_impression", Utc::now(), "https://shop.example/");
    app.post_json("/v1/events", &widget_batch(client, visitor, vec![event]))
        .await
}

/// How many sessions of this database are idle inside a transaction.
async fn idle_in_transaction(db: &TestDb) -> i64 {
    let admin = {
        let (c, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    };
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'idle in transaction'",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn every_connection_gets_the_documented_timeouts() {
    let db = TestDb::new().await;
    assert_eq!(
        setting(&db, "idle_in_transaction_session_timeout").await,
        "1min"
    );
    assert_eq!(setting(&db, "statement_timeout").await, "2min");
}

#[tokio::test]
async fn a_transaction_left_open_is_ended_and_its_visitor_lock_released() {
    let db = TestDb::new().await;
    set_database(&db, "idle_in_transaction_session_timeout", "1s").await;
    let app = serve_app(&db, &[]).await;
    let client = client(&db).await;

    // What a hung instance leaves: a transaction holding the visitor's
    // sessionization lock, idle.
    let hung = db.client().await;
    hung.batch_execute(&format!(
        "BEGIN; SELECT * FROM lock_visitor_last_session('{client}', 'visitor-1')"
    ))
    .await
    .unwrap();
    assert_eq!(idle_in_transaction(&db).await, 1);

    // The visitor's next batch waits for the lock, which Postgres frees by
    // ending the idle transaction.
    let (status, body) = send_event(&app, client, "visitor-1").await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    let error = hung.simple_query("SELECT 1").await.unwrap_err();
    assert!(
        error.is_closed() || error.to_string().contains("idle-in-transaction"),
        "{error}"
    );
    assert_eq!(idle_in_transaction(&db).await, 0);
}

#[tokio::test]
async fn a_statement_that_waits_too_long_is_cancelled_with_a_503() {
    let db = TestDb::new().await;
    set_database(&db, "statement_timeout", "1s").await;
    let app = serve_app(&db, &[]).await;
    let client = client(&db).await;

    // A busy (not idle) session holding the visitor's lock for 4 s.
    let busy = db.client().await;
    busy.batch_execute(&format!(
        "SET statement_timeout = 0; BEGIN; SELECT * FROM lock_visitor_last_session('{client}', 'visitor-2')"
    ))
    .await
    .unwrap();
    let holder = tokio::spawn(async move {
        busy.batch_execute("SELECT pg_sleep(4); COMMIT")
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, body) = send_event(&app, client, "visitor-2").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    // Postgres' words ("canceling statement due to statement timeout") are
    // logged under the request id, not answered.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("(request ") && !message.contains("canceling"),
        "{body}"
    );

    // Nothing was stored; once the lock is free the resend is accepted.
    holder.await.unwrap();
    let (status, body) = send_event(&app, client, "visitor-2").await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
}
