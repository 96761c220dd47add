//! Deliveries as the platforms expect them in 2026 (issue 13), end to end:
//! the real components on the local host, the platforms faked on 127.0.0.1.
//! Webhook signatures are checked with the Standard Webhooks reference
//! library (the `standardwebhooks` crate), not with our own signing code.

use integration_tests::fake::{Fake, Recorded, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

const SECRET_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Queues `n` due `Lead` rows `<prefix>-1..n` for `dest`, `age` old.
async fn queue(db: &TestDb, dest: Uuid, prefix: &str, n: usize, age: &str) {
    Deliveries::to(dest)
        .count(n)
        .event_ids(prefix)
        .event_age(age)
        .payload(json!({ "lead_id": "L" }))
        .user_data(json!({ "em": ["h"] }))
        .due()
        .insert(db)
        .await;
}

/// Checks a received request with the reference library and `secret`.
fn verify(secret: &str, r: &Recorded) -> Result<(), String> {
    let mut headers = hyper::HeaderMap::new();
    for (k, v) in &r.headers {
        headers.insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    standardwebhooks::Webhook::new(secret)
        .map_err(|e| e.to_string())?
        .verify(&r.body, &headers)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn webhooks_are_standard_webhooks_verified_by_the_reference_library_with_two_secrets() {
    let db = TestDb::new().await;
    let hook = Fake::start(|_| Reply::text(204, "")).await;
    let app = serve_admin_app(&db, &[LOOPBACK_DESTINATIONS]).await;
    let c = ClientSpec::new().insert(&db).await;
    // Mid-rotation: the old secret and the new one are both active.
    let d = destination(
        &db,
        c,
        "webhook",
        json!({ "url": format!("{}/hook", hook.url), "secret": SECRET_OLD, "secrets": [SECRET_NEW] }),
    )
    .await;
    queue(&db, d, "ev", 3, "1 hour").await;
    app.app
        .run_cron("retry-failed-events", 1)
        .await
        .unwrap()
        .unwrap();
    let received = hook.requests();
    assert_eq!(received.len(), 3, "one message per conversion");
    let mut ids = Vec::new();
    for r in &received {
        verify(SECRET_OLD, r).unwrap();
        verify(SECRET_NEW, r).unwrap();
        assert!(verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", r).is_err());
        let body = r.json();
        assert_eq!(body["type"], "conversion.created");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["data"]["payload"]["lead_id"], "L");
        ids.push((
            r.headers["webhook-id"].clone(),
            body["data"]["event_id"].as_str().unwrap().to_string(),
        ));
    }
    // webhook-id is the outbox row's: stable, one per conversion.
    let rows = db
        .client()
        .await
        .query(
            "SELECT 'delivery_' || id, event_id FROM conversion_deliveries ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let mut expected: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'")
            .await,
        3
    );
}

#[tokio::test]
async fn a_malformed_secret_dead_letters_naming_the_key_and_410_disables_the_destination() {
    let db = TestDb::new().await;
    let gone = Fake::start(|_| Reply::text(410, "unsubscribed")).await;
    let other = Fake::start(|_| Reply::text(200, "ok")).await;
    let app = serve_admin_app(&db, &[LOOPBACK_DESTINATIONS]).await;
    let c = ClientSpec::new().insert(&db).await;
    let bad = destination(
        &db,
        c,
        "webhook",
        json!({ "url": other.url, "secret": "not-a-whsec-secret" }),
    )
    .await;
    let g = destination(
        &db,
        c,
        "webhook",
        json!({ "url": gone.url, "secret": SECRET_NEW }),
    )
    .await;
    queue(&db, bad, "bad", 1, "1 hour").await;
    queue(&db, g, "gone", 4, "1 hour").await;
    app.app
        .run_cron("retry-failed-events", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.count(), 0, "nothing sent with a malformed secret");
    let r = db
        .client()
        .await
        .query_one(
            "SELECT status, dead_letter_reason, last_error FROM conversion_deliveries WHERE event_id = 'bad-1'",
            &[],
        )
        .await
        .unwrap();
    let (status, reason, error): (String, String, String) = (r.get(0), r.get(1), r.get(2));
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("dead_letter", "config")
    );
    assert!(error.contains("secret"), "{error}");
    assert!(
        !error.contains("not-a-whsec"),
        "the secret is not echoed: {error}"
    );

    // 410: one request, then the destination is disabled and every one of
    // its conversions is kept as a dead letter (`gone`) for a later replay.
    assert_eq!(gone.count(), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'gone-%' AND status = 'dead_letter' AND dead_letter_reason = 'gone'").await,
        4
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM client_destinations WHERE id = '{g}' AND NOT enabled"
        ))
        .await,
        1
    );
    // The check raises the dead_letters alert for that destination.
    let check = app
        .post("/admin/tracking-health/check")
        .admin()
        .status()
        .await;
    assert_eq!(check, 200);
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM tracking_health_alerts WHERE alert_type = 'dead_letters' AND scope = 'destination:{g}' AND resolved_at IS NULL")).await,
        1
    );
}

// ------------------------------------------------------------ Google Data Manager

/// A Google OAuth token endpoint: answers `reply` to `POST /token`.
async fn token_server(reply: Reply) -> Fake {
    Fake::start(move |r| {
        if r.path == "/token" && r.method == "POST" {
            reply.clone()
        } else {
            Reply::text(404, "")
        }
    })
    .await
}

fn token_reply(token: &str) -> Reply {
    Reply::json(
        200,
        json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" }),
    )
}

/// A Data Manager fake: refuses requests without `Bearer <token>` (401) and
/// any carrying a transactionId in `bad` (400), accepts the rest with the
/// request id `req-<operating account>`. `requestStatus:retrieve` (field
/// names from the `@google-ads/datamanager` protos) says operating account
/// 999's requests had an unknown gclid, and that the others succeeded.
async fn data_manager(token: &'static str, bad: &'static [&'static str]) -> Fake {
    Fake::start(move |r| {
        if r.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {token}"))
        {
            return Reply::json(401, json!({ "error": { "code": 401, "status": "UNAUTHENTICATED" } }));
        }
        if r.method == "GET" && r.path.starts_with("/v1/requestStatus:retrieve?requestId=") {
            let failed = r.path.ends_with("=req-999");
            let (status, counts) = if failed {
                ("FAILED", json!({ "errorInfo": { "errorCounts": [
                    { "recordCount": "1", "reason": "PROCESSING_ERROR_REASON_INVALID_GCLID" } ] } }))
            } else {
                ("SUCCESS", json!({}))
            };
            let mut d = json!({ "destination": {}, "requestStatus": status,
                                "eventsIngestionStatus": { "recordCount": "1" } });
            d.as_object_mut().unwrap().extend(counts.as_object().unwrap().clone());
            return Reply::json(200, json!({ "requestStatusPerDestination": [d] }));
        }
        let body = r.json();
        let refused = body["events"].as_array().into_iter().flatten().any(|e| {
            bad.contains(&e["transactionId"].as_str().unwrap_or(""))
        });
        if refused {
            Reply::json(400, json!({ "error": { "code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid event" } }))
        } else {
            let account = body["destinations"][0]["operatingAccount"]["accountId"].as_str().unwrap_or("");
            Reply::json(200, json!({ "requestId": format!("req-{account}") }))
        }
    })
    .await
}

fn dm_config(refresh_token: &str) -> Value {
    json!({ "operating_account_id": "123-456-7890", "conversion_action_id": "555",
            "refresh_token": refresh_token, "client_id": "cid.apps.googleusercontent.com",
            "client_secret": "CLIENT-SECRET" })
}

/// Queues `n` Data Manager conversions (a gclid and a hashed e-mail each).
async fn queue_dm(db: &TestDb, client: Uuid, dest: Uuid, prefix: &str, n: i32, age: &str) {
    db.client()
        .await
        .execute(
            "INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, user_data, next_retry_at)
             SELECT $1, $2, 'google_dm', $3 || '-' || g, 'Lead', now() - $5::text::interval,
                    jsonb_build_object('adIdentifiers', jsonb_build_object('gclid', 'gclid-' || g),
                                       'consent', '{\"adUserData\": \"CONSENT_GRANTED\"}'::jsonb),
                    jsonb_build_object('userIdentifiers', jsonb_build_array(
                        jsonb_build_object('emailAddress', encode(sha256(('u' || g || '@example.com')::bytea), 'hex')))),
                    now() - interval '1 second'
               FROM generate_series(1, $4) g",
            &[&client, &dest, &prefix, &n, &age],
        )
        .await
        .unwrap();
}

async fn dm_app(db: &TestDb, dm: &Fake, oauth: &Fake, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("google_datamanager_base_url", dm.url.as_str()),
        ("google_oauth_base_url", oauth.url.as_str()),
    ];
    vars.extend_from_slice(extra);
    serve_admin_app(db, &vars).await
}

async fn retry_all(app: &TestApp) -> Value {
    let (status, body) = app.retry_all().await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn data_manager_gets_one_request_per_batch_with_a_refreshed_token_and_bad_events_kept_out() {
    let db = TestDb::new().await;
    let oauth = token_server(token_reply("ya29.fresh")).await;
    let dm = data_manager("ya29.fresh", &["dm-7"]).await;
    let app = dm_app(&db, &dm, &oauth, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = destination(&db, c, "google_dm", dm_config("1//refresh")).await;
    queue_dm(&db, c, d, "dm", 20, "1 hour").await;
    // Would fail the whole request: nothing to match on. Never sent.
    db.client().await.execute("UPDATE conversion_deliveries SET user_data = '{\"userIdentifiers\": []}', event_payload = '{}' WHERE event_id = 'dm-3'", &[]).await.unwrap();
    // Past Google's 90 days: expired, never sent.
    queue_dm(&db, c, d, "old", 1, "91 days").await;

    let summary = retry_all(&app).await;
    assert_eq!(summary["processed"], 21, "{summary}");
    assert_eq!(oauth.count(), 1, "one token for the run");
    let token_request = String::from_utf8(oauth.requests()[0].body.clone()).unwrap();
    assert!(token_request.contains("grant_type=refresh_token"));
    assert!(token_request.contains("refresh_token=1%2F%2Frefresh"));
    let first = &dm.requests()[0];
    assert_eq!(first.path, "/v1/events:ingest");
    let body = first.json();
    assert_eq!(body["encoding"], "HEX");
    assert_eq!(
        body["destinations"][0]["operatingAccount"]["accountId"],
        "1234567890"
    );
    assert_eq!(body["destinations"][0]["productDestinationId"], "555");
    assert_eq!(
        body["events"].as_array().unwrap().len(),
        19,
        "all valid events in one request"
    );
    let e = &body["events"][0];
    assert!(e["transactionId"].as_str().unwrap().starts_with("dm-"));
    assert_eq!(
        e["userData"]["userIdentifiers"][0]["emailAddress"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(!String::from_utf8_lossy(&first.body).contains("CLIENT-SECRET"));
    // dm-7 made Google refuse the batch: bisection isolated it.
    let dead: Vec<(String, String)> = db
        .client()
        .await
        .query("SELECT event_id, dead_letter_reason FROM conversion_deliveries WHERE status = 'dead_letter' ORDER BY event_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        dead,
        vec![
            ("dm-3".to_string(), "invalid".to_string()),
            ("dm-7".to_string(), "rejected".to_string()),
            ("old-1".to_string(), "expired".to_string()),
        ]
    );
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'")
            .await,
        18
    );
    // The token is cached in Postgres: the next run asks Google for none.
    queue_dm(&db, c, d, "next", 2, "1 minute").await;
    retry_all(&app).await;
    assert_eq!(oauth.count(), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'next-%' AND status = 'resolved'").await,
        2
    );
    // Secrets stay out of the list endpoint.
    let (_, list) = app
        .get("/admin/failed-events?destination=google_dm")
        .admin()
        .send()
        .await;
    let text = list.to_string();
    assert!(
        !text.contains("CLIENT-SECRET") && !text.contains("1//refresh") && !text.contains("ya29"),
        "{text}"
    );
}

#[tokio::test]
async fn concurrent_runs_refresh_the_token_once() {
    let db = TestDb::new().await;
    let oauth =
        token_server(token_reply("ya29.shared").after(std::time::Duration::from_millis(700))).await;
    let dm = data_manager("ya29.shared", &[]).await;
    // Small runs, so that the two runs each claim some rows.
    let app = dm_app(&db, &dm, &oauth, &[("retry_max_events", "5")]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = destination(&db, c, "google_dm", dm_config("1//refresh")).await;
    queue_dm(&db, c, d, "dm", 10, "1 hour").await;
    let (a, b) = tokio::join!(retry_all(&app), retry_all(&app));
    assert_eq!(
        a["processed"].as_i64().unwrap() + b["processed"].as_i64().unwrap(),
        10,
        "{a} {b}"
    );
    assert_eq!(oauth.count(), 1, "one refresh for both runs");
    assert_eq!(dm.count(), 2, "each run sent its batch");
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'")
            .await,
        10
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_dead_letters_without_a_retry_storm_and_a_down_token_endpoint_retries(
) {
    let db = TestDb::new().await;
    let oauth = token_server(Reply::json(
        400,
        json!({ "error": "invalid_grant", "error_description": "Token has been expired or revoked." }),
    ))
    .await;
    let dm = data_manager("never", &[]).await;
    let app = dm_app(&db, &dm, &oauth, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = destination(&db, c, "google_dm", dm_config("1//revoked")).await;
    queue_dm(&db, c, d, "a", 3, "1 hour").await;
    retry_all(&app).await;
    assert_eq!(oauth.count(), 1);
    assert_eq!(dm.count(), 0);
    let (reason, error): (String, String) = {
        let r = db.client().await.query_one("SELECT dead_letter_reason, last_error FROM conversion_deliveries WHERE event_id = 'a-1'", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(reason, "auth");
    assert!(
        error.contains("invalid_grant") && error.contains("refresh_token"),
        "{error}"
    );
    assert!(!error.contains("1//revoked"));
    // New conversions for the same revoked token: dead at once, Google not asked again.
    queue_dm(&db, c, d, "b", 2, "1 minute").await;
    retry_all(&app).await;
    assert_eq!(oauth.count(), 1, "no retry storm on a revoked grant");
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'dead_letter' AND dead_letter_reason = 'auth'").await,
        5
    );

    // Another destination whose token endpoint is down: retried later.
    let down = token_server(Reply::text(503, "unavailable")).await;
    let app2 = dm_app(&db, &dm, &down, &[]).await;
    let d2 = destination(&db, c, "google_dm", dm_config("1//other")).await;
    queue_dm(&db, c, d2, "c", 2, "1 hour").await;
    retry_all(&app2).await;
    assert_eq!(down.count(), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'c-%' AND status = 'retrying' AND last_error LIKE 'token endpoint: HTTP 503%'").await,
        2
    );
    // A config missing its OAuth client: dead letter naming the key.
    let d3 = destination(
        &db,
        c,
        "google_dm",
        json!({ "operating_account_id": "1", "conversion_action_id": "2", "refresh_token": "r" }),
    )
    .await;
    queue_dm(&db, c, d3, "d", 1, "1 hour").await;
    retry_all(&app2).await;
    let r = db.client().await.query_one("SELECT dead_letter_reason, last_error FROM conversion_deliveries WHERE event_id = 'd-1'", &[]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "config");
    assert!(r.get::<_, String>(1).contains("client_id"));
}

/// A fresh RSA key in PKCS#8 PEM, as Google's service-account key files hold
/// it, and its public key, made by the openssl CLI.
fn service_account_key(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let key = dir.join("key.pem");
    let public = dir.join("public.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    run(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (std::fs::read_to_string(&key).unwrap(), public)
}

fn service_account_config(private_key: &str) -> Value {
    json!({ "operating_account_id": "123-456-7890", "conversion_action_id": "555",
            "service_account": { "type": "service_account", "project_id": "p",
                                 "private_key_id": "kid-1", "private_key": private_key,
                                 "client_email": "dm@p.iam.gserviceaccount.com",
                                 "token_uri": "https://oauth2.googleapis.com/token" } })
}

/// The form fields of a recorded `application/x-www-form-urlencoded` body.
fn form(r: &Recorded) -> std::collections::HashMap<String, String> {
    let body = String::from_utf8(r.body.clone()).unwrap();
    reqwest::Url::parse(&format!("http://form/?{body}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn a_service_account_key_signs_a_jwt_grant_that_openssl_verifies() {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let db = TestDb::new().await;
    let oauth = token_server(token_reply("ya29.service")).await;
    let dm = data_manager("ya29.service", &[]).await;
    let app = dm_app(&db, &dm, &oauth, &[]).await;
    let dir = root()
        .join("target/service-account")
        .join(Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let (private_key, public_key) = service_account_key(&dir);
    let c = ClientSpec::new().insert(&db).await;
    let d = destination(&db, c, "google_dm", service_account_config(&private_key)).await;
    queue_dm(&db, c, d, "sa", 3, "1 hour").await;
    retry_all(&app).await;
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'")
            .await,
        3
    );
    assert_eq!(oauth.count(), 1);

    // RFC 7523's bearer grant, its RS256 signature checked by openssl.
    let fields = form(&oauth.requests()[0]);
    assert_eq!(
        fields["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(fields.len(), 2, "{fields:?}");
    let jwt = &fields["assertion"];
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    std::fs::write(dir.join("signed"), signed).unwrap();
    std::fs::write(
        dir.join("signature"),
        URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .unwrap();
    let verify = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public_key)
        .arg("-signature")
        .arg(dir.join("signature"))
        .arg(dir.join("signed"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let part =
        |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
    let (header, claims) = signed.split_once('.').unwrap();
    let (header, claims) = (part(header), part(claims));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "kid-1");
    assert_eq!(claims["iss"], "dm@p.iam.gserviceaccount.com");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/datamanager"
    );
    assert_eq!(claims["aud"], format!("{}/token", oauth.url));
    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        (iat - chrono::Utc::now().timestamp()).abs() < 120,
        "{claims}"
    );
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3600);

    // The key deleted at Google: invalid_grant, dead letters naming the
    // service account, and the key is not presented again.
    let refused = token_server(Reply::json(
        400,
        json!({ "error": "invalid_grant", "error_description": "Invalid JWT Signature." }),
    ))
    .await;
    let app2 = dm_app(&db, &dm, &refused, &[]).await;
    let (other_key, _) = service_account_key(&dir);
    let d2 = destination(&db, c, "google_dm", service_account_config(&other_key)).await;
    queue_dm(&db, c, d2, "gone", 2, "1 hour").await;
    retry_all(&app2).await;
    queue_dm(&db, c, d2, "again", 1, "1 hour").await;
    retry_all(&app2).await;
    assert_eq!(refused.count(), 1, "a refused key is not presented again");
    let errors: Vec<String> = db
        .column(&format!("SELECT dead_letter_reason || ': ' || last_error FROM conversion_deliveries WHERE destination_id = '{d2}'"))
        .await;
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert!(
            e.starts_with("auth: ") && e.contains("invalid_grant") && e.contains("service_account"),
            "{e}"
        );
        assert!(!e.contains("PRIVATE KEY"), "{e}");
    }

    // A key that is not a PEM RSA key: a config dead letter, Google not asked.
    let d3 = destination(&db, c, "google_dm", service_account_config("not a key")).await;
    queue_dm(&db, c, d3, "badkey", 1, "1 hour").await;
    retry_all(&app2).await;
    assert_eq!(refused.count(), 1);
    let r = db.one("SELECT dead_letter_reason, last_error FROM conversion_deliveries WHERE event_id = 'badkey-1'").await;
    assert_eq!(r.get::<_, String>(0), "config");
    assert!(r
        .get::<_, String>(1)
        .contains("service_account.private_key"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_revoked_grant_and_a_receiver_answering_410_each_raise_an_operator_alert() {
    let db = TestDb::new().await;
    let oauth = token_server(Reply::json(
        400,
        json!({ "error": "invalid_grant", "error_description": "Token has been expired or revoked." }),
    ))
    .await;
    let dm = data_manager("never", &[]).await;
    let gone = Fake::start(|_| Reply::text(410, "unsubscribed")).await;
    let slack = Fake::start(|_| Reply::text(200, "ok")).await;
    let slack_url = format!("{}/slack", slack.url);
    let app = dm_app(
        &db,
        &dm,
        &oauth,
        &[
            LOOPBACK_DESTINATIONS,
            ("alert_webhook_url", slack_url.as_str()),
            ("alert_webhook_origin", slack.url.as_str()),
        ],
    )
    .await;
    let c = ClientSpec::new().insert(&db).await;
    let google = destination(&db, c, "google_dm", dm_config("1//revoked")).await;
    let hook = destination(
        &db,
        c,
        "webhook",
        json!({ "url": gone.url, "secret": SECRET_NEW }),
    )
    .await;
    queue_dm(&db, c, google, "g", 2, "1 hour").await;
    queue(&db, hook, "w", 2, "1 hour").await;
    retry_all(&app).await;
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'dead_letter' AND dead_letter_reason IN ('auth', 'gone')").await,
        4
    );

    // The next tracking-health check: one alert per destination, each sent
    // to the operators' webhook once.
    app.app
        .run_cron("tracking-health-check", 1)
        .await
        .unwrap()
        .unwrap();
    for d in [google, hook] {
        let scope = format!("destination:{d}");
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM tracking_health_alerts WHERE alert_type = 'dead_letters'
                    AND scope = '{scope}' AND destination_id = '{d}' AND resolved_at IS NULL AND metric_value = 2"
            ))
            .await,
            1,
            "{scope}"
        );
        let texts: Vec<String> = slack
            .requests()
            .iter()
            .map(|r| r.json()["text"].as_str().unwrap_or("").to_string())
            .filter(|t| t.contains(&scope))
            .collect();
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!(
            texts[0].contains("alert opened") && texts[0].contains("2 conversions dead-lettered"),
            "{}",
            texts[0]
        );
    }
    // The alert text carries no secret.
    let sent: String = slack
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        !sent.contains("1//revoked") && !sent.contains("CLIENT-SECRET") && !sent.contains("whsec_")
    );
}

#[tokio::test]
async fn a_refresh_lease_held_by_a_dead_instance_costs_only_that_destinations_share_of_the_run() {
    let db = TestDb::new().await;
    let oauth = token_server(token_reply("ya29.fresh")).await;
    let dm = data_manager("ya29.fresh", &[]).await;
    let hook = Fake::start(|_| Reply::text(204, "")).await;
    // A 4 s run, two destinations: 2 s each.
    let app = dm_app(
        &db,
        &dm,
        &oauth,
        &[LOOPBACK_DESTINATIONS, ("retry_run_budget_ms", "4000")],
    )
    .await;
    let c = ClientSpec::new().insert(&db).await;
    // The Google destination is served first (destinations go in id order).
    let google = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    let created = destination(&db, c, "google_dm", dm_config("1//refresh")).await;
    db.exec(&format!(
        "UPDATE client_destinations SET id = '{google}' WHERE id = '{created}';
         INSERT INTO oauth_tokens (destination_id, access_token, expires_at, refreshing_until)
         VALUES ('{google}', 'ya29.stale', now() - interval '1 minute', now() + interval '30 seconds');"
    ))
    .await;
    let fast = destination(
        &db,
        c,
        "webhook",
        json!({ "url": hook.url, "secret": SECRET_NEW }),
    )
    .await;
    queue_dm(&db, c, google, "g", 2, "1 hour").await;
    queue(&db, fast, "w", 3, "1 hour").await;

    let started = std::time::Instant::now();
    let summary = retry_all(&app).await;
    let took = started.elapsed();
    // Waited for the dead refresher only for its share, then the webhook got its turn.
    assert!(
        took < std::time::Duration::from_millis(3500),
        "{took:?} {summary}"
    );
    assert_eq!((oauth.count(), dm.count(), hook.count()), (0, 0, 3));
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'w-%' AND status = 'resolved'").await,
        3
    );
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'g-%' AND status = 'retrying' AND last_error = 'another instance is refreshing the Google access token'").await,
        2
    );
}

#[tokio::test]
async fn a_token_google_refuses_is_forgotten_and_refreshed_on_the_next_attempt() {
    let db = TestDb::new().await;
    let oauth = token_server(token_reply("ya29.new")).await;
    let dm = data_manager("ya29.new", &[]).await;
    let app = dm_app(&db, &dm, &oauth, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = destination(&db, c, "google_dm", dm_config("1//refresh")).await;
    // A cached token that still looks valid but Google no longer takes.
    db.client()
        .await
        .execute(
            "INSERT INTO oauth_tokens (destination_id, access_token, expires_at) VALUES ($1, 'ya29.stale', now() + interval '30 minutes')",
            &[&d],
        )
        .await
        .unwrap();
    queue_dm(&db, c, d, "dm", 2, "1 hour").await;
    retry_all(&app).await;
    assert_eq!((oauth.count(), dm.count()), (0, 1));
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'retrying' AND last_http_status = 401").await,
        2
    );
    db.client()
        .await
        .execute(
            "UPDATE conversion_deliveries SET next_retry_at = now() - interval '1 s'",
            &[],
        )
        .await
        .unwrap();
    retry_all(&app).await;
    assert_eq!((oauth.count(), dm.count()), (1, 2));
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_lead_reaches_data_manager_inline_with_click_ids_consent_and_hashed_identifiers() {
    let db = TestDb::new().await;
    let oauth = token_server(token_reply("ya29.inline")).await;
    let dm = data_manager("ya29.inline", &[]).await;
    let app = dm_app(&db, &dm, &oauth, &[]).await;
    let c = Uuid::new_v4();
    db.client()
        .await
        .execute(
            "INSERT INTO clients (id, name, root_domain, default_country) VALUES ($1, 'c', 'shop.com', 'US')",
            &[&c],
        )
        .await
        .unwrap();
    destination(&db, c, "google_dm", dm_config("1//refresh")).await;
    let lead = json!({
        "client_id": c, "event_id": "lead-dm-1", "email": "Jane.Doe@Example.com",
        "first_name": "Jane", "last_name": "Doe", "zip": "33101", "country": "US",
        "gclid": "Cj0-gclid", "wbraid": "wb-1",
        "consent": { "ads": true, "ad_personalization": false },
    });
    let (status, body) = app.post_json("/v1/leads", &lead).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["deliveries"][0]["destination"], "google_dm");
    assert_eq!(body["deliveries"][0]["status"], "resolved", "{body}");
    assert_eq!(oauth.count(), 1);
    let sent = dm.requests()[0].json();
    let e = &sent["events"][0];
    assert_eq!(e["transactionId"], "lead-dm-1");
    assert_eq!(
        e["adIdentifiers"],
        json!({ "gclid": "Cj0-gclid", "wbraid": "wb-1" })
    );
    assert_eq!(
        e["consent"],
        json!({ "adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED" })
    );
    let ids = e["userData"]["userIdentifiers"].as_array().unwrap();
    assert_eq!(
        ids[0]["emailAddress"],
        integration_tests::fake::sha256("jane.doe@example.com")
    );
    assert_eq!(
        ids[1]["address"]["givenName"],
        integration_tests::fake::sha256("jane")
    );
    assert_eq!(ids[1]["address"]["regionCode"], "US");
    assert!(!dm.requests()[0].body.windows(4).any(|w| w == b"Jane"));
}

// ------------------------------------------------------------ replay

#[tokio::test]
async fn a_replay_by_filters_requeues_dead_letters_and_reports_those_past_the_deadline() {
    let db = TestDb::new().await;
    let meta = Fake::start(|_| Reply::json(200, json!({ "events_received": 1 }))).await;
    let app = serve_admin_app(&db, &[("meta_capi_base_url", meta.url.as_str())]).await;
    let c = ClientSpec::new().insert(&db).await;
    let other = ClientSpec::new().insert(&db).await;
    let d = destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "PX", "access_token": "T" }),
    )
    .await;
    let d2 = destination(
        &db,
        other,
        "meta_capi",
        json!({ "pixel_id": "PY", "access_token": "T" }),
    )
    .await;
    queue(&db, d, "fresh", 3, "2 hours").await;
    queue(&db, d, "stale", 2, "8 days").await;
    queue(&db, d, "pending", 1, "1 hour").await;
    queue(&db, d2, "other", 2, "2 hours").await;
    db.client().await.execute("UPDATE conversion_deliveries SET status = 'dead_letter', dead_letter_reason = 'max_retries', retry_count = 5 WHERE event_id NOT LIKE 'pending%'", &[]).await.unwrap();
    let post = |body: Value| {
        let call = app.post("/admin/failed-events/retry").admin().json(&body);
        call.send()
    };
    let (status, body) = post(json!({ "replay": {
        "client_id": c, "status": "dead_letter",
        "from": (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339(),
    } }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["matched"].as_i64(),
            body["expired"].as_i64(),
            body["requeued"].as_i64(),
            body["resolved"].as_i64()
        ),
        (Some(5), Some(2), Some(3), Some(3)),
        "{body}"
    );
    let sent: Vec<String> = meta
        .requests()
        .iter()
        .flat_map(|r| r.json()["data"].as_array().cloned().unwrap_or_default())
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|e| e.starts_with("fresh")), "{sent:?}");
    // Past Meta's 7 days: left as dead letters; the other client and the
    // pending row (not dead_letter) untouched.
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'dead_letter'")
            .await,
        4
    );
    assert_eq!(db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'pending%' AND status = 'pending'").await, 1);
    // Bounded per call.
    let (status, body) = post(json!({ "replay": { "client_id": other, "limit": 1 } })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["matched"].as_i64(), body["resolved"].as_i64()),
        (Some(1), Some(1))
    );
    // Bad filters: 400 naming them.
    for (replay, field) in [
        (json!({ "status": "resolved" }), "replay.status"),
        (json!({ "from": "last week" }), "replay.from"),
        (json!({ "limit": 5000 }), "replay.limit"),
        (json!({ "client_id": "nope" }), "replay.client_id"),
    ] {
        let (status, body) = post(json!({ "replay": replay })).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
}

// ------------------------------------------------------------ test send

#[tokio::test]
async fn a_test_send_uses_each_platforms_validation_mode_and_queues_nothing() {
    let db = TestDb::new().await;
    let meta = Fake::start(|r| {
        Reply::json(
            200,
            json!({ "events_received": 1, "fbtrace_id": "x", "echo": r.json()["test_event_code"] }),
        )
    })
    .await;
    let ga4 = Fake::start(|r| {
        if r.path.starts_with("/debug/mp/collect") {
            Reply::json(200, json!({ "validationMessages": [
                { "fieldPath": "events", "description": "Event name is reserved", "validationCode": "NAME_RESERVED" } ] }))
        } else {
            Reply::text(204, "")
        }
    })
    .await;
    let hook = Fake::start(|_| Reply::text(204, "")).await;
    let oauth = token_server(token_reply("ya29.test")).await;
    let dm = data_manager("ya29.test", &[]).await;
    let app = dm_app(
        &db,
        &dm,
        &oauth,
        &[
            ("meta_capi_base_url", meta.url.as_str()),
            LOOPBACK_DESTINATIONS,
        ],
    )
    .await;
    let c = ClientSpec::new().insert(&db).await;
    let pixel = destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "PX", "access_token": "T" }),
    )
    .await;
    let sgtm = destination(
        &db,
        c,
        "gtm_server",
        json!({ "url": ga4.url, "measurement_id": "G-1", "api_secret": "s" }),
    )
    .await;
    let wh = destination(
        &db,
        c,
        "webhook",
        json!({ "url": hook.url, "secret": SECRET_NEW }),
    )
    .await;
    let google = destination(&db, c, "google_dm", dm_config("1//refresh")).await;
    let broken = destination(
        &db,
        c,
        "google_dm",
        json!({ "conversion_action_id": "1", "access_token": "t" }),
    )
    .await;
    let test = |id: String, body: Option<Value>| {
        let call = app.post(&format!("/admin/destinations/{id}/test")).admin();
        match body {
            Some(b) => call.json(&b).send(),
            None => call.send(),
        }
    };

    // Meta: never without a test_event_code.
    let (s, r) = test(pixel.to_string(), None).await;
    assert_eq!(
        (s, r["ok"].as_bool(), r["stage"].as_str()),
        (200, Some(false), Some("config")),
        "{r}"
    );
    assert!(r["error"].as_str().unwrap().contains("test_event_code"));
    assert_eq!(meta.count(), 0);
    let (s, r) = test(
        pixel.to_string(),
        Some(json!({ "test_event_code": "TEST42" })),
    )
    .await;
    assert_eq!(
        (s, r["ok"].as_bool(), r["status"].as_i64()),
        (200, Some(true), Some(200)),
        "{r}"
    );
    assert_eq!(meta.requests()[0].json()["test_event_code"], "TEST42");

    // GA4: the debug endpoint; its validation messages make it a failure.
    let (_, r) = test(sgtm.to_string(), None).await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["messages"][0]["validationCode"], "NAME_RESERVED");
    assert!(ga4.requests()[0]
        .path
        .starts_with("/debug/mp/collect?measurement_id=G-1"));

    // Webhook: a signed message of type test.
    let (_, r) = test(wh.to_string(), None).await;
    assert_eq!(
        (r["ok"].as_bool(), r["status"].as_i64()),
        (Some(true), Some(204)),
        "{r}"
    );
    let sent = &hook.requests()[0];
    verify(SECRET_NEW, sent).unwrap();
    assert_eq!(sent.json()["type"], "test");

    // Data Manager: validateOnly, with a refreshed token, then what
    // requestStatus:retrieve says of the request.
    let (_, r) = test(google.to_string(), None).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(dm.requests()[0].json()["validateOnly"], true);
    assert_eq!(oauth.count(), 1);
    assert_eq!(
        dm.requests()[1].path,
        "/v1/requestStatus:retrieve?requestId=req-1234567890"
    );
    assert_eq!(r["messages"], json!(["request status: SUCCESS"]), "{r}");
    // Accepted by events:ingest, refused in processing: not ok, and why.
    let mut unknown_click = dm_config("1//refresh");
    unknown_click["operating_account_id"] = json!("999");
    let refused = destination(&db, c, "google_dm", unknown_click).await;
    let (_, r) = test(refused.to_string(), None).await;
    assert_eq!(
        (r["ok"].as_bool(), r["status"].as_i64()),
        (Some(false), Some(200)),
        "{r}"
    );
    assert_eq!(
        r["messages"],
        json!([
            "request status: FAILED",
            "1 event: PROCESSING_ERROR_REASON_INVALID_GCLID"
        ]),
        "{r}"
    );
    assert_eq!(
        r["request_status"]["requestStatusPerDestination"][0]["requestStatus"],
        "FAILED"
    );
    let dm_calls = dm.count();
    // An incomplete config: the missing key named, nothing sent.
    let (_, r) = test(broken.to_string(), None).await;
    assert_eq!(
        (r["ok"].as_bool(), r["stage"].as_str()),
        (Some(false), Some("config")),
        "{r}"
    );
    assert!(r["error"]
        .as_str()
        .unwrap()
        .contains("operating_account_id"));
    assert_eq!(dm.count(), dm_calls);

    // Nothing queued; bad ids refused.
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries").await,
        0
    );
    let (s, r) = test(Uuid::new_v4().to_string(), None).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (404, Some("unknown_destination"))
    );
    let (s, r) = test("nope".into(), None).await;
    assert_eq!((s, r["error"]["field"].as_str()), (400, Some("id")));
    let (s, r) = test(wh.to_string(), Some(json!({ "colour": "red" }))).await;
    assert_eq!(s, 400, "{r}");
    let status = app
        .post(&format!("/admin/destinations/{wh}/test"))
        .status()
        .await;
    assert_eq!(status, 401);
}
