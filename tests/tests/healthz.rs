//! `GET /healthz` through the local host against Postgres.

use integration_tests::*;
use serde_json::Value;

#[tokio::test]
async fn healthz_answers_200_with_version_when_postgres_answers() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let res = app.get("/healthz").response().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["database"]["ok"], true);
    assert!(body["database"]["latency_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn healthz_answers_503_when_the_database_url_points_nowhere() {
    let db = TestDb::new().await;
    // Port 1 on localhost: nothing listens there.
    let nowhere = "postgres://postgres@localhost:1/nothing?sslmode=disable";
    let app = serve_app(
        &db,
        &[("database_url", nowhere), ("database_host", "localhost:1")],
    )
    .await;
    let res = app.get("/healthz").response().await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"]["ok"], false);
    let error = body["database"]["error"].as_str().unwrap();
    assert!(error.starts_with("connection failed"), "{error}");
}

#[tokio::test]
async fn healthz_is_refused_a_postgres_host_not_in_allowed_outbound_hosts() {
    let db = TestDb::new().await;
    // Same server, spelled 127.0.0.1, while the component may reach localhost:5432 only.
    let url = db.url.replace("localhost", "127.0.0.1");
    let app = serve_app(&db, &[("database_url", &url)]).await;
    let res = app.get("/healthz").response().await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["database"]["error"],
        "connection failed: address postgres://127.0.0.1:5432 is not permitted"
    );
}

#[tokio::test]
async fn healthz_rejects_other_methods_and_unmatched_routes_get_404() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let res = app.post("/healthz").response().await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let res = app.get("/no/such/route").response().await;
    // Every path no route matches: a JSON 404 in the one error shape.
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let res = app.get("/healthzz").response().await;
    assert_eq!(res.status(), 404);
}
