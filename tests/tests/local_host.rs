//! The local host's Spin behaviours, observed through the probe fixture
//! component (tests/fixtures/probe) and the `spin-local` binary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use integration_tests::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture_manifest() -> PathBuf {
    root().join("tests/fixtures/spin.toml")
}

/// A fake upstream on 127.0.0.1 answering `200 upstream-ok`; counts requests.
async fn fake_upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\nupstream-ok")
                .await;
        }
    });
    (port, hits)
}

async fn probe_app(db: &TestDb, upstream: &str) -> TestApp {
    serve(
        &fixture_manifest(),
        variables(Some(db), &[("upstream", upstream)]),
    )
    .await
}

#[tokio::test]
async fn requests_carry_spin_headers_and_the_most_specific_route_wins() {
    let db = TestDb::new().await;
    let app = probe_app(&db, "127.0.0.1:9").await;
    let res = http()
        .get(format!("{}/probe/a/b?x=1", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h: Value = res.json().await.unwrap();
    let host = app.url.trim_start_matches("http://");
    assert_eq!(h["spin-full-url"], format!("http://{host}/probe/a/b?x=1"));
    assert_eq!(h["spin-path-info"], "/a/b");
    assert_eq!(h["spin-matched-route"], "/probe/...");
    assert_eq!(h["spin-raw-component-route"], "/probe/...");
    assert_eq!(h["spin-component-route"], "/probe");
    assert_eq!(h["spin-base-path"], "/");
    let client_addr = h["spin-client-addr"].as_str().unwrap();
    assert!(client_addr.starts_with("127.0.0.1:"), "{client_addr}");

    // `/probe/exact` is routed to the other component even though the wildcard also matches.
    let h: Value = http()
        .get(format!("{}/probe/exact", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["spin-matched-route"], "/probe/exact");
    assert_eq!(h["spin-path-info"], "");

    let res = http()
        .get(format!("{}/elsewhere", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn outbound_http_is_limited_to_allowed_outbound_hosts() {
    let db = TestDb::new().await;
    let (port, hits) = fake_upstream().await;
    let app = probe_app(&db, &format!("127.0.0.1:{port}")).await;
    let fetch = |url: String| {
        let base = app.url.clone();
        async move {
            let res = http()
                .post(format!("{base}/probe/fetch"))
                .json(&json!({ "url": url }))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = fetch(format!("http://127.0.0.1:{port}/x")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["body"], "upstream-ok");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The same server spelled `localhost`, and another port: refused, never sent.
    for url in [
        format!("http://localhost:{port}/x"),
        format!("http://127.0.0.1:{}/x", port.wrapping_add(1)),
    ] {
        let (status, body) = fetch(url).await;
        assert_eq!(status, 502, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("HttpRequestDenied"),
            "{body}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

async fn pg_query(app: &TestApp, statement: &str, params: Value) -> (u16, Value) {
    let res = http()
        .post(format!("{}/probe/pg", app.url))
        .json(&json!({ "statement": statement, "params": params }))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn postgres_values_round_trip_through_pg4() {
    let db = TestDb::new().await;
    let app = probe_app(&db, "127.0.0.1:9").await;
    let (status, body) = pg_query(
        &app,
        "SELECT $1::bool, $2::int2, $3::int4, $4::int8, $5::float8, $6::text, $7::uuid, $8::jsonb,
                $9::numeric, $10::int4[], $11::int8[], $12::text[], $13::interval, $14::text,
                ($15::timestamptz AT TIME ZONE 'UTC'), 'abc'::varchar, '2026-11-22'::date, 'x'::bytea,
                ARRAY[1.5, NULL]::numeric[], 'a'::\"char\" IS NOT NULL, '1.2.3.4'::inet",
        json!([
            {"type": "bool", "value": true},
            {"type": "int16", "value": -7},
            {"type": "int32", "value": 2147483647},
            {"type": "int64", "value": 9007199254740993i64},
            {"type": "float64", "value": 0.25},
            {"type": "str", "value": "héllo"},
            {"type": "uuid", "value": "6f1c8b7e-1234-4a5b-9c8d-0123456789ab"},
            {"type": "jsonb", "value": {"a": [1, "two", null]}},
            {"type": "decimal", "value": "12345.678900"},
            {"type": "array-int32", "value": [1, null, 3]},
            {"type": "array-int64", "value": [4]},
            {"type": "array-str", "value": ["x", null]},
            {"type": "interval", "value": {"micros": 1500000, "days": 2, "months": 1}},
            {"type": "null"},
            {"type": "timestamp", "value": 1790000000},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let row = &body["rows"][0];
    let expected = json!([
        {"type": "bool", "value": true},
        {"type": "int16", "value": -7},
        {"type": "int32", "value": 2147483647},
        {"type": "int64", "value": 9007199254740993i64},
        {"type": "float64", "value": 0.25},
        {"type": "str", "value": "héllo"},
        {"type": "uuid", "value": "6f1c8b7e-1234-4a5b-9c8d-0123456789ab"},
        {"type": "jsonb", "value": {"a": [1, "two", null]}},
        {"type": "decimal", "value": "12345.678900"},
        {"type": "array-int32", "value": [1, null, 3]},
        {"type": "array-int64", "value": [4]},
        {"type": "array-str", "value": ["x", null]},
        {"type": "interval", "value": {"micros": 1500000, "days": 2, "months": 1}},
        {"type": "null", "value": null},
        {"type": "datetime", "value": [2026, 9, 21, 14, 13, 20, 0]},
        {"type": "str", "value": "abc"},
        {"type": "date", "value": [2026, 11, 22]},
        {"type": "binary", "value": [120]},
        {"type": "array-decimal", "value": ["1.5", null]},
        {"type": "bool", "value": true},
        {"type": "unsupported", "value": 8},
    ]);
    assert_eq!(row, &expected, "{body}");
    assert_eq!(body["columns"][0]["type"], "DbDataType::Boolean");
    assert_eq!(body["columns"][20]["type"], "DbDataType::Other(\"inet\")");
}

#[tokio::test]
async fn postgres_errors_read_as_they_do_under_spin() {
    let db = TestDb::new().await;
    let app = probe_app(&db, "127.0.0.1:9").await;
    // Spin cannot decode timestamptz columns; components must not rely on it.
    let (status, body) = pg_query(&app, "SELECT now()", json!([])).await;
    assert_eq!(status, 500);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("QueryFailed(QueryError::Text(")
            && error.contains("WrongType { postgres: Timestamptz"),
        "{error}"
    );
    // A database error carries its SQLSTATE.
    let (status, body) = pg_query(&app, "SELECT * FROM no_such_table", json!([])).await;
    assert_eq!(status, 500);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("DbError") && error.contains("42P01"),
        "{error}"
    );
    // A malformed parameter is a bad parameter.
    let (_, body) = pg_query(
        &app,
        "SELECT $1::uuid",
        json!([{"type": "uuid", "value": "nope"}]),
    )
    .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::BadParameter"),
        "{body}"
    );
}

#[tokio::test]
async fn a_query_that_returns_no_row_is_refused_unless_allowed() {
    let db = TestDb::new().await;
    // Spin 4.0.0-4.0.2 would never answer this (spinframework/spin#3671).
    let app = probe_app(&db, "127.0.0.1:9").await;
    let (status, body) = pg_query(
        &app,
        "SELECT 1 AS one WHERE $1::bool",
        json!([{"type": "bool", "value": false}]),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("returned no row")
            && error.contains("spinframework/spin#3671")
            && error.contains("SELECT 1 AS one WHERE $1::bool"),
        "{error}"
    );
    // A statement with no result set at all is a zero-row query too.
    let (status, _) = pg_query(&app, "CREATE TABLE zero_rows_probe (x int)", json!([])).await;
    assert_eq!(status, 500);
    // One row is fine.
    let (status, body) = pg_query(
        &app,
        "SELECT 1 AS one WHERE $1::bool",
        json!([{"type": "bool", "value": true}]),
    )
    .await;
    assert_eq!(
        (status, body["rows"].as_array().unwrap().len()),
        (200, 1),
        "{body}"
    );

    // Allowed, it answers the empty set with its columns, as fixed Spin releases do.
    let allowing = serve_with(
        &fixture_manifest(),
        variables(Some(&db), &[("upstream", "127.0.0.1:9")]),
        ZeroRowQueries::Allow,
    )
    .await;
    let (status, body) = pg_query(
        &allowing,
        "SELECT 1 AS one WHERE $1::bool",
        json!([{"type": "bool", "value": false}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([]));
    assert_eq!(body["columns"][0]["name"], "one");
}

#[test]
fn spin_local_up_takes_a_switch_for_zero_row_queries() {
    let out = std::process::Command::new(host_binary())
        .args(["up", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--allow-zero-row-queries") && help.contains("3671"),
        "{help}"
    );
}

/// Runs `spin-local up` expecting it to refuse to start; returns its stderr.
fn refused_start(manifest: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(host_binary())
        .args(["up", "--listen", "127.0.0.1:0", "--no-cron", "-f"])
        .arg(manifest)
        .args(args)
        .env_remove("SPIN_VARIABLE_DATABASE_URL")
        .env_remove("SPIN_VARIABLE_DATABASE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the host started");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    stderr
}

#[tokio::test]
async fn start_up_refuses_a_missing_required_variable() {
    let stderr = refused_start(&app_manifest(), &[]);
    assert!(
        stderr.contains("no provider resolved required variable(s): [\"database_url\"]")
            && stderr.contains("SPIN_VARIABLE_DATABASE_URL")
            && stderr.contains("spin.toml"),
        "{stderr}"
    );
}

#[tokio::test]
async fn start_up_refuses_an_unreachable_postgres() {
    let stderr = refused_start(
        &app_manifest(),
        &[
            "--variable",
            "database_url=postgres://postgres@localhost:1/x?sslmode=disable",
        ],
    );
    assert!(
        stderr.contains("Postgres unreachable at localhost:1"),
        "{stderr}"
    );
    assert!(stderr.contains("variable database_url"), "{stderr}");
}

fn write_manifest(dir: &std::path::Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn start_up_refuses_a_missing_wasm_a_malformed_manifest_and_a_five_field_cron() {
    let dir = std::env::temp_dir().join(format!("spinlocal-{}", uuid::Uuid::new_v4().simple()));
    let base = "spin_manifest_version = 2\n[application]\nname = \"t\"\n";
    let missing = write_manifest(
        &dir.join("missing"),
        &format!("{base}[[trigger.http]]\nroute = \"/x\"\ncomponent = \"x\"\n[component.x]\nsource = \"nowhere/x.wasm\"\n"),
    );
    let stderr = refused_start(&missing, &[]);
    assert!(
        stderr.contains("component `x`: source")
            && stderr.contains("nowhere/x.wasm does not exist"),
        "{stderr}"
    );

    let malformed = write_manifest(&dir.join("malformed"), &format!("{base}[[trigger.http]\n"));
    let stderr = refused_start(&malformed, &[]);
    assert!(
        stderr.contains("malformed manifest") && stderr.contains("spin.toml"),
        "{stderr}"
    );

    let cron = write_manifest(
        &dir.join("cron"),
        &format!("{base}[[trigger.cron]]\ncomponent = \"x\"\ncron_expression = \"0 3 * * *\"\n[component.x]\nsource = \"x.wasm\"\n"),
    );
    let stderr = refused_start(&cron, &[]);
    assert!(
        stderr.contains("invalid cron_expression \"0 3 * * *\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
