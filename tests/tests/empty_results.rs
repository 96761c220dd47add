//! Every route and job answers when nothing matches. Under Spin 4.0.0–4.0.2 a
//! Postgres `query` that returns no row never returns (spinframework/spin#3671);
//! the local host refuses such a query, so each request here would fail if
//! one were issued on its path: a new visitor, a client without destinations,
//! an IP the geo data does not know, empty lists, unknown ids, an empty outbox.

use chrono::Utc;
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    app.get(path).admin().send().await
}

async fn post(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    app.post(path)
        .admin()
        .json(&body)
        .headers(headers)
        .send()
        .await
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> u16 {
    app.options(path).header("origin", origin).status().await
}

/// A batch of one impression on shop.example now.
fn batch(client: Uuid, visitor: &str) -> Value {
    let event = widget_event("widget_impression", Utc::now(), "https://shop.example/");
    widget_batch(client, visitor, vec![event])
}

#[tokio::test]
async fn every_route_answers_when_nothing_matches() {
    let db = TestDb::new().await;
    let app = serve_admin_app(&db, &[("trusted_proxies", "127.0.0.1/32")]).await;
    let unknown = Uuid::new_v4();

    // No client at all.
    let (status, body) = get(&app, "/admin/clients/tracking-health").await;
    assert_eq!((status, &body["count"]), (200, &json!(0)), "{body}");
    let (status, body) = get(&app, "/admin/tracking-health/summary").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["open_alerts"], json!([]));
    assert_eq!(body["destinations_24h"], json!([]));
    assert_eq!(body["last_check_at"], Value::Null);
    let (status, body) = get(&app, "/admin/failed-events").await;
    assert_eq!((status, &body["items"]), (200, &json!([])), "{body}");
    assert_eq!(body["counts"]["pending"], 0);
    let (status, body) = post(
        &app,
        "/admin/failed-events/retry",
        json!({"retry_all": true}),
        &[],
    )
    .await;
    assert_eq!((status, &body["processed"]), (200, &json!(0)), "{body}");
    let (status, body) = post(
        &app,
        "/admin/failed-events/retry",
        json!({"ids": [4242]}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_ids")),
        "{body}"
    );
    let (status, body) = post(
        &app,
        "/admin/tracking-health/alerts/999/resolve",
        json!({}),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_alert")),
        "{body}"
    );
    let (status, body) = get(&app, &format!("/admin/analytics/{unknown}/summary")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_client")),
        "{body}"
    );
    let (status, body) = post(&app, "/v1/events", batch(unknown, "v1"), &[]).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_client")),
        "{body}"
    );
    let lead = json!({ "client_id": unknown, "event_id": "lead-0", "email": "a@b.example" });
    let (status, body) = post(&app, "/v1/leads", lead, &[]).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_client")),
        "{body}"
    );
    assert_eq!(
        preflight(&app, "/v1/events", "https://nobody.example").await,
        403
    );
    assert_eq!(
        preflight(
            &app,
            &format!("/v1/events?client_id={unknown}"),
            "https://nobody.example"
        )
        .await,
        403
    );
    assert_eq!(
        preflight(&app, "/v1/leads", "https://nobody.example").await,
        403
    );

    // Jobs over empty tables.
    for path in [
        "/admin/tracking-health/check",
        "/admin/tracking-health/detect",
    ] {
        let (status, body) = post(&app, path, json!({}), &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let yesterday = (Utc::now() - chrono::Duration::days(1)).date_naive();
    let (status, body) = post(
        &app,
        "/admin/analytics/rollup",
        json!({ "from": yesterday.to_string(), "to": yesterday.to_string() }),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let now = Utc::now().timestamp() as u64;
    for job in [
        "heartbeat",
        "retry-failed-events",
        "tracking-health-check",
        "tracking-health-detect",
        "analytics-rollup",
    ] {
        let ran = app.app.run_cron(job, now).await.unwrap();
        assert_eq!(ran, Ok(()), "{job}");
    }

    // A client without destinations, events or sessions.
    let client = ClientSpec::new()
        .root_domain("shop.example")
        .insert(&db)
        .await;
    for endpoint in ["summary", "trends", "events", "traffic-sources", "devices"] {
        let (status, body) = get(&app, &format!("/admin/analytics/{client}/{endpoint}")).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
    }
    let (status, body) = get(&app, &format!("/admin/analytics/{client}/active")).await;
    assert_eq!((status, &body["sessions"]), (200, &json!([])), "{body}");
    let (status, body) = get(&app, &format!("/admin/analytics/{client}/sessions")).await;
    assert_eq!((status, &body["sessions"]), (200, &json!([])), "{body}");
    let (status, body) = get(&app, "/admin/failed-events?status=dead_letter").await;
    assert_eq!((status, &body["items"]), (200, &json!([])), "{body}");
    let (status, body) = get(&app, "/admin/clients/tracking-health?needs_attention=true").await;
    assert_eq!((status, &body["count"]), (200, &json!(0)), "{body}");

    // A new visitor: no earlier session to continue.
    let batch = batch(client, "new-visitor");
    let (status, body) = post(&app, "/v1/events", batch.clone(), &[]).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    // The same batch again inserts nothing.
    let (status, body) = post(&app, "/v1/events", batch, &[]).await;
    assert_eq!(status, 200, "{body}");

    // A lead for a client without destinations, from an IP the (empty)
    // embedded geo data does not know.
    let lead = json!({ "client_id": client, "event_id": "lead-1", "email": "a@b.example" });
    let (status, body) = post(&app, "/v1/leads", lead, &[("x-forwarded-for", "8.8.8.8")]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["deliveries"], json!([]));
    assert_eq!(body["geo_lookup"]["outcome"], "not_found", "{body}");
    assert_eq!(
        preflight(&app, "/v1/leads", "https://shop.example").await,
        204
    );
    assert_eq!(
        preflight(
            &app,
            &format!("/v1/events?client_id={client}"),
            "https://shop.example"
        )
        .await,
        204
    );

    let (status, body) = get(&app, "/healthz").await;
    assert_eq!(status, 200, "{body}");
}
