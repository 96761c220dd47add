//! Widget analytics end to end: the nightly rollup (cron component) against a
//! direct computation from the raw events, reruns and late events, the
//! backfill endpoint, retention, and the read API's figures, pagination,
//! validation, authentication and ownership.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use analytics::params::start_of_day;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

const JOB: &str = "analytics-rollup";

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

async fn add_client(db: &TestDb, name: &str) -> Uuid {
    add_client_in(db, name, "UTC").await
}

/// A client whose reporting time zone is `zone`.
async fn add_client_in(db: &TestDb, name: &str, zone: &str) -> Uuid {
    ClientSpec::new()
        .name(name)
        .root_domain("shop.example")
        .time_zone(zone)
        .insert(db)
        .await
}

/// Every (local day, zone) of `zones` that ended in (after, until].
fn ended_between(
    zones: &[Tz],
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for tz in zones {
        let mut d = after.with_timezone(tz).date_naive() - Duration::days(1);
        while start_of_day(d + Duration::days(1), *tz) <= until {
            if start_of_day(d + Duration::days(1), *tz) > after {
                out.insert((d.to_string(), tz.name().to_string()));
            }
            d += Duration::days(1);
        }
    }
    out
}

/// Waits, if needed, until no local day of `zones` ends in the next 40 s, so
/// that which days have ended is the same before and after a nightly run.
async fn clear_of_day_ends(zones: &[Tz]) {
    let now = Utc::now();
    let ends = ended_between(zones, now, now + Duration::seconds(40));
    if !ends.is_empty() {
        tokio::time::sleep(std::time::Duration::from_secs(41)).await;
    }
}

/// A generated data set for `client` over the six UTC days before `end`:
/// `n` events from 37 visitors (3 sessions each), bots (1 in 13), events
/// without a session (1 in 17), mixed names, sources and devices that vary
/// within a session (so "the session's first event" matters).
async fn generate(c: &tokio_postgres::Client, client: Uuid, n: i32, end: NaiveDate, salt: &str) {
    c.execute(
        "WITH x AS (SELECT g, abs(hashtext($4 || g::text)) AS h FROM generate_series(1, $2) g)
         INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at,
                                     referrer_domain, utm_source, device_type, browser, os, is_bot)
         SELECT $1,
                CASE WHEN h % 13 = 0 THEN 'bot' || (h % 2) ELSE 'p' || (h % 37) END,
                CASE WHEN h % 13 = 0 THEN 'sb' || (h % 2)
                     WHEN h % 17 = 0 THEN NULL
                     ELSE 's' || (h % 37) || '-' || ((h / 37) % 3) END,
                (ARRAY['widget_impression','widget_impression','widget_open','chat_started',
                       'message_sent','message_sent','client_form_submitted','pricing_viewed'])[1 + (h / 7) % 8],
                $3::timestamptz - interval '6 days' + ((h / 3) % (6 * 86400)) * interval '1 second',
                (ARRAY[NULL, 'google.com', 'bing.com', 'news.example'])[1 + (h / 11) % 4],
                (ARRAY[NULL, 'google', 'newsletter'])[1 + (h / 13) % 3],
                CASE WHEN h % 13 = 0 THEN 'bot' ELSE (ARRAY['desktop', 'mobile', 'tablet'])[1 + (h / 19) % 3] END,
                (ARRAY['Chrome', 'Firefox', 'Safari'])[1 + (h / 23) % 3],
                (ARRAY['Windows', 'iOS'])[1 + (h / 29) % 2],
                h % 13 = 0
           FROM x",
        &[&client, &n, &midnight(end), &salt],
    )
    .await
    .unwrap();
}

/// One desktop event without a referrer.
async fn plain_event(
    c: &tokio_postgres::Client,
    client: Uuid,
    person: &str,
    session: Option<&str>,
    name: &str,
    at: DateTime<Utc>,
) {
    event(c, client, person, session, name, at, None, "desktop").await;
}

/// One event with every column the rollup reads.
#[allow(clippy::too_many_arguments)]
async fn event(
    c: &tokio_postgres::Client,
    client: Uuid,
    person: &str,
    session: Option<&str>,
    name: &str,
    at: DateTime<Utc>,
    referrer: Option<&str>,
    device: &str,
) {
    c.execute(
        "INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at,
                                     referrer_domain, device_type, browser, os)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'Chrome', 'Windows')",
        &[&client, &person, &session, &name, &at, &referrer, &device],
    )
    .await
    .unwrap();
}

struct Ev {
    client: Uuid,
    /// The client's reporting time zone.
    tz: Tz,
    person: String,
    session: Option<String>,
    name: String,
    at: DateTime<Utc>,
    id: Uuid,
    bot: bool,
    referrer: Option<String>,
    utm: Option<String>,
    device: Option<String>,
    browser: Option<String>,
    os: Option<String>,
}

async fn raw_events(c: &tokio_postgres::Client) -> Vec<Ev> {
    c.query(
        "SELECT e.client_id, person_id, session_id, event_name, occurred_at, event_id, is_bot,
                referrer_domain, utm_source, device_type, browser, os, c.time_zone
           FROM session_events e JOIN clients c ON c.id = e.client_id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| Ev {
        client: r.get(0),
        tz: r.get::<_, String>(12).parse().unwrap(),
        person: r.get(1),
        session: r.get(2),
        name: r.get(3),
        at: r.get(4),
        id: r.get(5),
        bot: r.get(6),
        referrer: r.get(7),
        utm: r.get(8),
        device: r.get(9),
        browser: r.get(10),
        os: r.get(11),
    })
    .collect()
}

impl Ev {
    /// The local day of the event in its client's time zone.
    fn day(&self) -> NaiveDate {
        self.at.with_timezone(&self.tz).date_naive()
    }
}

/// The rollup's figures computed here, independently, from the raw events:
/// per (client, local day in the client's zone) for which `keep` is true,
/// the JSON of a widget_daily_stats row.
fn direct(
    events: &[Ev],
    keep: impl Fn(Uuid, &str, NaiveDate) -> bool,
) -> BTreeMap<(Uuid, String), Value> {
    // A visitor is new on the first day any (human) event of theirs was seen.
    let mut first_day: HashMap<(Uuid, &str), NaiveDate> = HashMap::new();
    for e in events.iter().filter(|e| !e.bot) {
        let d = e.day();
        first_day
            .entry((e.client, &e.person))
            .and_modify(|f| *f = (*f).min(d))
            .or_insert(d);
    }
    let mut groups: BTreeMap<(Uuid, NaiveDate), Vec<&Ev>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| keep(e.client, e.tz.name(), e.day()))
    {
        groups.entry((e.client, e.day())).or_default().push(e);
    }
    let mut out = BTreeMap::new();
    for ((client, day), evs) in groups {
        let zone = evs[0].tz.name();
        let humans: Vec<&&Ev> = evs.iter().filter(|e| !e.bot).collect();
        let bots: Vec<&&Ev> = evs.iter().filter(|e| e.bot).collect();
        let count = |name: &str| humans.iter().filter(|e| e.name == name).count();
        let visitors: BTreeSet<&str> = humans.iter().map(|e| e.person.as_str()).collect();
        let new = visitors
            .iter()
            .filter(|p| first_day[&(client, **p)] == day)
            .count();
        let mut sessions: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
        for e in &humans {
            if let Some(s) = &e.session {
                sessions.entry(s).or_default().push(e);
            }
        }
        let mut seconds = 0.0;
        let mut converted = 0;
        let mut mixes: [BTreeMap<String, i64>; 5] = Default::default();
        for evs in sessions.values_mut() {
            evs.sort_by_key(|e| (e.at, e.id));
            let (first, last) = (evs[0], evs[evs.len() - 1]);
            seconds += (last.at - first.at).num_milliseconds() as f64 / 1000.0;
            if evs
                .iter()
                .any(|e| e.name == "chat_started" || e.name == "client_form_submitted")
            {
                converted += 1;
            }
            let keys = [
                first.referrer.clone().unwrap_or("(direct)".into()),
                first.utm.clone().unwrap_or("(none)".into()),
                first.device.clone().unwrap_or("(unknown)".into()),
                first.browser.clone().unwrap_or("(unknown)".into()),
                first.os.clone().unwrap_or("(unknown)".into()),
            ];
            for (m, k) in mixes.iter_mut().zip(keys) {
                *m.entry(k).or_default() += 1;
            }
        }
        let mut names: BTreeMap<String, i64> = BTreeMap::new();
        for e in &humans {
            *names.entry(e.name.clone()).or_default() += 1;
        }
        let bot_people: BTreeSet<&str> = bots.iter().map(|e| e.person.as_str()).collect();
        let bot_sessions: BTreeSet<&str> =
            bots.iter().filter_map(|e| e.session.as_deref()).collect();
        out.insert(
            (client, day.to_string()),
            json!({
                "day": day.to_string(),
                "sessions": sessions.len(),
                "unique_visitors": visitors.len(),
                "new_visitors": new,
                "returning_visitors": visitors.len() - new,
                "events": humans.len(),
                "impressions": count("widget_impression"),
                "opens": count("widget_open"),
                "chats_started": count("chat_started"),
                "messages": count("message_sent"),
                "forms_submitted": count("client_form_submitted"),
                "converted_sessions": converted,
                "total_session_seconds": seconds,
                "bot_sessions": bot_sessions.len(),
                "bot_visitors": bot_people.len(),
                "bot_events": bots.len(),
                "event_counts": names,
                "referrers": mixes[0], "utm_sources": mixes[1], "devices": mixes[2],
                "browsers": mixes[3], "os": mixes[4],
                "time_zone": zone,
            }),
        );
    }
    out
}

/// widget_daily_stats as the same JSON (seconds as a float, client aside).
/// Each day's visitor sketches hold exactly its visitors (a few ids: the
/// sketch is still exact).
async fn stats(c: &tokio_postgres::Client) -> BTreeMap<(Uuid, String), Value> {
    c.query(
        "SELECT client_id, to_jsonb(s) - 'client_id' - 'visitors_sketch' - 'bot_visitors_sketch',
                round(hll_cardinality(s.visitors_sketch))::int8,
                round(hll_cardinality(s.bot_visitors_sketch))::int8
           FROM widget_daily_stats s",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let mut v: Value = r.get(1);
        v["total_session_seconds"] = json!(v["total_session_seconds"].as_f64().unwrap());
        let sketched: (i64, i64) = (r.get(2), r.get(3));
        assert_eq!(
            Some(sketched),
            v["unique_visitors"]
                .as_i64()
                .zip(v["bot_visitors"].as_i64()),
            "the visitor sketches of {v}"
        );
        ((r.get(0), v["day"].as_str().unwrap().to_string()), v)
    })
    .collect()
}

/// Distinct (human or bot) visitors of `client` over local days from..=to.
fn range_visitors(events: &[Ev], client: Uuid, from: NaiveDate, to: NaiveDate, bot: bool) -> i64 {
    events
        .iter()
        .filter(|e| e.client == client && e.bot == bot && (from..=to).contains(&e.day()))
        .map(|e| e.person.as_str())
        .collect::<BTreeSet<_>>()
        .len() as i64
}

fn assert_same(
    actual: &BTreeMap<(Uuid, String), Value>,
    expected: &BTreeMap<(Uuid, String), Value>,
) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the (client, day) rows differ"
    );
    for (k, v) in expected {
        assert_eq!(&actual[k], v, "figures of {k:?}");
    }
}

/// One nightly run as of `at`. Each call is another schedule: a cron
/// timestamp (second) the job already ran is skipped as a second replica's
/// copy (platform::jobs), so a call in the same second as the last waits for
/// the next one.
async fn nightly(app: &TestApp, at: DateTime<Utc>) {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let mut at = at;
    while at.timestamp() <= LAST.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        at = Utc::now();
    }
    LAST.store(at.timestamp(), std::sync::atomic::Ordering::SeqCst);
    app.app
        .run_cron(JOB, at.timestamp() as u64)
        .await
        .unwrap()
        .unwrap();
}

async fn last_run(c: &tokio_postgres::Client) -> (String, Value) {
    let r = c
        .query_one(
            "SELECT outcome, detail FROM job_runs WHERE job_name = $1 ORDER BY id DESC LIMIT 1",
            &[&JOB],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// The (day, zone) pairs of a list of `{day, time_zones}` a run reports.
fn pairs(days: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for d in days.as_array().unwrap() {
        for z in d["time_zones"].as_array().unwrap() {
            out.insert((
                d["day"].as_str().unwrap().to_string(),
                z.as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The (day, zone) pairs a nightly run reports in `rollup.days`.
fn rolled_pairs(detail: &Value) -> BTreeSet<(String, String)> {
    pairs(&detail["rollup"]["days"])
}

/// Asserts `must ⊆ actual ⊆ must ∪ may`.
fn assert_between(
    actual: &BTreeSet<(String, String)>,
    must: &BTreeSet<(String, String)>,
    may: &BTreeSet<(String, String)>,
    what: &str,
) {
    assert!(
        must.is_subset(actual),
        "{what}: {actual:?} lacks some of {must:?}"
    );
    let extra: Vec<_> = actual
        .difference(must)
        .filter(|p| !may.contains(*p))
        .collect();
    assert!(extra.is_empty(), "{what}: unexpected {extra:?}");
}

#[tokio::test]
async fn the_rollup_cuts_days_in_each_clients_zone_equals_a_direct_computation_and_picks_up_late_events(
) {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let t = today();
    let (utc, tokyo, ny) = (Tz::UTC, Tz::Asia__Tokyo, Tz::America__New_York);
    let zones = [utc, tokyo, ny];
    let a = add_client(&db, "a").await;
    let b = add_client_in(&db, "b", "Asia/Tokyo").await;
    let n = add_client_in(&db, "n", "America/New_York").await;
    generate(&c, a, 900, t, "a").await;
    generate(&c, b, 400, t, "b").await;
    generate(&c, n, 300, t, "n").await;
    // Sessions spanning local midnight: a chat after midnight converts only
    // the second day (UTC for a, New York for n).
    for (client, tz, day) in [
        (a, utc, t - Duration::days(1)),
        (n, ny, t - Duration::days(3)),
    ] {
        let m = start_of_day(day, tz);
        event(
            &c,
            client,
            "pm",
            Some("sm"),
            "widget_impression",
            m - Duration::minutes(10),
            Some("ads.example"),
            "mobile",
        )
        .await;
        plain_event(
            &c,
            client,
            "pm",
            Some("sm"),
            "chat_started",
            m + Duration::minutes(15),
        )
        .await;
    }
    // A visitor first seen two days ago, who will turn out (late event) to
    // have come three days ago: their "new" moves a day earlier.
    plain_event(
        &c,
        b,
        "shift",
        Some("sh"),
        "widget_impression",
        midnight(t - Duration::days(2)) + Duration::hours(10),
    )
    .await;
    // Today's events are not rolled up.
    plain_event(
        &c,
        a,
        "pt",
        Some("st"),
        "widget_open",
        midnight(t) + Duration::seconds(1),
    )
    .await;

    // Received an hour ago: older than the watermark's margin by the second run.
    c.batch_execute("UPDATE session_events SET received_at = received_at - interval '1 hour'")
        .await
        .unwrap();

    // The first run has no watermark: every local day with events that has
    // ended is rolled up, in its client's zone.
    clear_of_day_ends(&zones).await;
    let before = Utc::now();
    nightly(&app, Utc::now()).await;
    let after = Utc::now();
    let (outcome, detail) = last_run(&c).await;
    assert_eq!(outcome, "succeeded", "{detail}");
    let events = raw_events(&c).await;
    let with_events: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| (e.day().to_string(), e.tz.name().to_string()))
        .collect();
    let ended = |until: DateTime<Utc>| -> BTreeSet<(String, String)> {
        with_events
            .iter()
            .filter(|(d, z)| {
                let tz: Tz = z.parse().unwrap();
                start_of_day(d.parse::<NaiveDate>().unwrap() + Duration::days(1), tz) <= until
            })
            .cloned()
            .collect()
    };
    let mut rolled = rolled_pairs(&detail);
    assert_between(&rolled, &ended(before), &ended(after), "first run");
    // Tokyo's days run 15:00–15:00 UTC: its events of the first UTC day fall
    // on the local day before only in New York, its last ones on today in Tokyo.
    assert!(rolled.contains(&(
        (t - Duration::days(7)).to_string(),
        "America/New_York".into()
    )));
    assert!(!rolled
        .iter()
        .any(|(d, z)| *d == (t - Duration::days(7)).to_string() && z != "America/New_York"));
    let keep = |rolled: &BTreeSet<(String, String)>| {
        let rolled = rolled.clone();
        move |_: Uuid, z: &str, d: NaiveDate| rolled.contains(&(d.to_string(), z.to_string()))
    };
    let expected = direct(&events, keep(&rolled));
    assert!(
        expected.len() >= 17,
        "three clients, about six days each: {}",
        expected.len()
    );
    let first = stats(&c).await;
    assert_same(&first, &expected);
    let midnight_day = &first[&(a, (t - Duration::days(1)).to_string())];
    assert!(midnight_day["devices"]["desktop"].as_i64().unwrap() >= 1);
    let ny_days: Vec<&String> = first
        .keys()
        .filter(|(c, _)| *c == n)
        .map(|(_, d)| d)
        .collect();
    assert!(
        ny_days.contains(&&(t - Duration::days(3)).to_string()),
        "{ny_days:?}"
    );

    // Rerunning changes nothing: the cron again rolls up only days that ended
    // since (none, or one that ended within the watermark's margin) ...
    clear_of_day_ends(&zones).await;
    let before = Utc::now();
    nightly(&app, Utc::now()).await;
    let (_, detail) = last_run(&c).await;
    let again = rolled_pairs(&detail);
    let recent = ended_between(&zones, before - Duration::minutes(11), Utc::now());
    assert_between(&again, &BTreeSet::new(), &recent, "second run");
    rolled.extend(again);
    assert_same(&stats(&c).await, &direct(&events, keep(&rolled)));
    // ... and a backfill of the six UTC dates before today rewrites them in
    // every zone where they have ended, with the same figures.
    let days: Vec<String> = (1..=6)
        .rev()
        .map(|i| (t - Duration::days(i)).to_string())
        .collect();
    let res = app
        .post("/admin/analytics/rollup")
        .admin()
        .json(&json!({ "from": days[0], "to": days[5] }))
        .response()
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["rollup"]["days"], 6, "{body}");
    let backfilled = pairs(&body["rollup"]["rolled"]);
    for day in &days[..5] {
        for z in ["UTC", "Asia/Tokyo", "America/New_York"] {
            assert!(
                backfilled.contains(&(day.clone(), z.to_string())),
                "{day} {z}: {body}"
            );
        }
    }
    rolled.extend(backfilled);
    assert_same(&stats(&c).await, &direct(&events, keep(&rolled)));

    // Late events: one for a visitor first seen two days later (whose "new"
    // moves earlier), one new visitor; both three days ago at 12:00 UTC,
    // which is day −3 in Tokyo and in UTC.
    let d3 = midnight(t - Duration::days(3)) + Duration::hours(12);
    event(
        &c,
        b,
        "shift",
        Some("late-s"),
        "widget_open",
        d3,
        None,
        "tablet",
    )
    .await;
    event(
        &c,
        a,
        "late-new",
        Some("late-n"),
        "client_form_submitted",
        d3,
        Some("late.example"),
        "mobile",
    )
    .await;
    clear_of_day_ends(&zones).await;
    let before = Utc::now();
    nightly(&app, Utc::now()).await;
    let (_, detail) = last_run(&c).await;
    let late = rolled_pairs(&detail);
    // Day −3 in the zones of the clients with late events, and day −2 in
    // Tokyo only: b's "shift" visitor was not new there after all.
    let pair = |i: i64, z: &str| ((t - Duration::days(i)).to_string(), z.to_string());
    let must = BTreeSet::from([pair(3, "Asia/Tokyo"), pair(3, "UTC"), pair(2, "Asia/Tokyo")]);
    let recent = ended_between(&zones, before - Duration::minutes(11), Utc::now());
    assert_between(&late, &must, &recent, "late events");
    let shift_day = (b, days[4].clone());
    assert_eq!(
        stats(&c).await[&shift_day]["new_visitors"]
            .as_i64()
            .unwrap()
            + 1,
        first[&shift_day]["new_visitors"].as_i64().unwrap()
    );
    rolled.extend(late);
    let after = stats(&c).await;
    assert_same(&after, &direct(&raw_events(&c).await, keep(&rolled)));
    assert_ne!(after[&(a, days[3].clone())], first[&(a, days[3].clone())]);
    assert_eq!(after[&(a, days[0].clone())], first[&(a, days[0].clone())]);
    assert_eq!(after[&(n, days[3].clone())], first[&(n, days[3].clone())]);

    // Missed nights: with the last run 50 hours back (and every event
    // received before it), the next one rolls up every local day that ended
    // since, in every zone, and nothing changes.
    c.batch_execute(
        "UPDATE analytics_rollup_state SET received_until = now() - interval '50 hours';
         UPDATE session_events SET received_at = received_at - interval '3 days';",
    )
    .await
    .unwrap();
    clear_of_day_ends(&zones).await;
    let before = Utc::now();
    nightly(&app, Utc::now()).await;
    let (_, detail) = last_run(&c).await;
    let caught_up = rolled_pairs(&detail);
    let must = ended_between(&zones, before - Duration::hours(50), before);
    assert!(must.len() >= 6, "two days in each of three zones: {must:?}");
    let may = ended_between(
        &zones,
        before - Duration::hours(50) - Duration::minutes(11),
        Utc::now(),
    );
    assert_between(&caught_up, &must, &may, "missed nights");
    assert_eq!(stats(&c).await, after);
}

#[tokio::test]
async fn retention_removes_exactly_what_is_past_its_period_and_rolled_up() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[("analytics_retention_batch_size", "2")]).await;
    let t = today();
    let r = add_client(&db, "r").await;
    let k = add_client_in(&db, "k", "Asia/Tokyo").await;
    let cutoff = t - Duration::days(90);
    // Three old months: one whose days are rolled up in UTC, one with an
    // unrolled day, and the month holding the cutoff (not entirely past
    // its period).
    let month = |d: NaiveDate| NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap();
    let cut_month = month(cutoff);
    let m_unrolled = month(cut_month - Duration::days(1));
    let m_rolled = month(m_unrolled - Duration::days(1));
    let name = |m: NaiveDate| format!("session_events_{}", m.format("%Y_%m"));
    for (m, hours) in [(m_rolled, 30), (m_unrolled, 30)] {
        plain_event(
            &c,
            r,
            "old",
            Some("so"),
            "widget_impression",
            midnight(m) + Duration::hours(hours),
        )
        .await;
    }
    // An hour before the end of m_rolled in UTC is already the next day in
    // Tokyo: the Tokyo client's local day m_unrolled overlaps m_rolled.
    plain_event(
        &c,
        k,
        "old-k",
        Some("sk"),
        "widget_impression",
        midnight(m_unrolled) - Duration::hours(1),
    )
    .await;
    // Before the cutoff but in the cutoff's month: kept with its partition.
    if cutoff > cut_month {
        plain_event(
            &c,
            r,
            "old",
            Some("so2"),
            "widget_impression",
            midnight(cut_month) + Duration::hours(1),
        )
        .await;
    }
    // A New York day that straddles m_unrolled and the cutoff month, with
    // its only event in the cutoff month (kept): once m_unrolled goes, that
    // day can no longer be rolled up, so it is rolled up first.
    let ny = add_client_in(&db, "ny", "America/New_York").await;
    let straddling = cut_month - Duration::days(1);
    plain_event(
        &c,
        ny,
        "old-ny",
        Some("sn"),
        "widget_impression",
        midnight(cut_month) + Duration::hours(2),
    )
    .await;
    // A client with an event on rolled_day, rolled up in UTC, that then
    // moves to a zone no other client has: its day stays as it was cut.
    let mv = add_client(&db, "mv").await;
    let rolled_day = m_rolled + Duration::days(1);
    plain_event(
        &c,
        mv,
        "mv",
        Some("sm"),
        "widget_open",
        midnight(rolled_day) + Duration::hours(12),
    )
    .await;
    c.execute(
        "SELECT analytics_rollup_day($1, ARRAY['UTC'])",
        &[&rolled_day],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE clients SET time_zone = 'Asia/Kolkata' WHERE id = $1",
        &[&mv],
    )
    .await
    .unwrap();
    // The nightly job's rollups leave its row alone; the backfill (recut)
    // would cut the day again in Kolkata.
    let written: i64 = c
        .query_one(
            "SELECT clients FROM analytics_rollup_day($1, ARRAY['Asia/Kolkata'])",
            &[&rolled_day],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        (written, day_row(&c, mv, rolled_day).await.unwrap().1),
        (0, "UTC".to_string())
    );

    // Two years back there is no monthly partition: imports land in the
    // default one. Its expired rows go once their local day is rolled up.
    let ancient = t - Duration::days(730);
    for (client, day) in [(r, ancient), (k, ancient), (r, ancient + Duration::days(1))] {
        plain_event(
            &c,
            client,
            "imp",
            Some("si"),
            "widget_impression",
            midnight(day) + Duration::hours(12),
        )
        .await;
    }
    mark_rolled_up(&c, "UTC", ancient).await;

    // What may be dropped, before the nightly job: m_rolled waits for the
    // Tokyo day, m_unrolled for its UTC day; empty old months may go.
    let listing: BTreeMap<String, (bool, Vec<String>)> = c
        .query(
            "SELECT partition_name, droppable, unrolled_days FROM analytics_expired_event_partitions($1)",
            &[&midnight(cutoff)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    assert_eq!(
        listing[&name(m_rolled)],
        (false, vec![format!("{m_unrolled} Asia/Tokyo")])
    );
    let day_after = m_unrolled + Duration::days(1);
    assert_eq!(
        listing[&name(m_unrolled)],
        (
            false,
            vec![
                format!("{straddling} America/New_York"),
                format!("{m_unrolled} Asia/Tokyo"),
                format!("{day_after} UTC")
            ]
        )
    );
    assert!(
        listing.values().filter(|(ok, _)| *ok).count() >= 1,
        "{listing:?}"
    );
    assert!(!listing.contains_key(&name(cut_month)));

    // Sessions: five of r past the 365 days on a day rolled up in UTC, one
    // of r on a day with no rollup; three of k on the same date, which has
    // no rollup in Tokyo yet; one recent.
    let old = midnight(t - Duration::days(400));
    for (client, prefix, n) in [(r, "old", 5), (k, "old-k", 3)] {
        for i in 0..n {
            c.execute(
                "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at)
                 VALUES ($1, $2, 'x', $3, $3)",
                &[&client, &format!("{prefix}-{i}"), &(old + Duration::minutes(i))],
            )
            .await
            .unwrap();
        }
    }
    mark_rolled_up(&c, "UTC", old.date_naive()).await;
    c.execute(
        "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at)
         VALUES ($1, 'old-unrolled', 'x', $2, $2), ($1, 'recent', 'x', now(), now())",
        &[&r, &(old - Duration::days(1))],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO analytics_visitors VALUES ($1, 'gone', $2, $2), ($1, 'kept', $2, $3)",
        &[&r, &(t - Duration::days(500)), &(t - Duration::days(10))],
    )
    .await
    .unwrap();
    let partitions_before: Vec<(String, DateTime<Utc>)> = c
        .query("SELECT name, hi FROM analytics_event_partitions()", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    nightly(&app, Utc::now()).await;
    let (outcome, detail) = last_run(&c).await;
    assert_eq!(outcome, "succeeded", "{detail}");
    let ret = &detail["retention"];
    // The days that held partitions back were rolled up first ...
    let first = pairs(&ret["rolled_up_first"]);
    assert_eq!(
        first,
        BTreeSet::from([
            (m_unrolled.to_string(), "Asia/Tokyo".to_string()),
            (straddling.to_string(), "America/New_York".to_string()),
            (day_after.to_string(), "UTC".to_string())
        ]),
        "{ret}"
    );
    assert_eq!(
        day_row(&c, k, m_unrolled).await,
        Some((1, "Asia/Tokyo".to_string()))
    );
    assert_eq!(
        day_row(&c, r, day_after).await,
        Some((1, "UTC".to_string()))
    );
    // ... then every partition entirely before the cutoff went (empty ones
    // too), and the others are all there.
    for (p, hi) in &partitions_before {
        let past = *hi <= midnight(cutoff);
        assert_eq!(exists(&c, p).await, !past, "{p}: {ret}");
    }
    assert_eq!(ret["partitions_kept"], json!([]), "{ret}");
    assert_eq!(ret["events_dropped"], 4, "{ret}");
    let left: i64 = c
        .query_one("SELECT count(*) FROM session_events", &[])
        .await
        .unwrap()
        .get(0);
    // ny's event in the cutoff month and two default-partition imports stay.
    assert_eq!(left, if cutoff > cut_month { 4 } else { 3 });
    assert_eq!(
        day_row(&c, ny, straddling).await,
        Some((1, "America/New_York".to_string()))
    );
    assert_eq!(
        day_row(&c, mv, rolled_day).await.unwrap().1,
        "UTC",
        "the moved client's day is not cut again"
    );
    // The rolled-up days' stats stay, and a day whose events are (even
    // partly) gone is never recomputed: the Tokyo day that starts at 15:00
    // UTC the day before the cutoff month is purged, the UTC day is not.
    let rerun = |day: NaiveDate, zone: &'static str| {
        let c = &c;
        async move {
            let row = c
                .query_one(
                    "SELECT cardinality(rolled_zones), cardinality(purged_zones)
                       FROM analytics_rollup_day($1, ARRAY[$2::text])",
                    &[&day, &zone],
                )
                .await
                .unwrap();
            (row.get::<_, i32>(0), row.get::<_, i32>(1))
        }
    };
    assert_eq!(
        day_row(&c, r, rolled_day).await,
        Some((1, "UTC".to_string()))
    );
    assert_eq!(
        rerun(rolled_day, "UTC").await,
        (0, 1),
        "a purged day must not be recomputed"
    );
    assert_eq!(
        day_row(&c, r, rolled_day).await,
        Some((1, "UTC".to_string()))
    );
    assert_eq!(rerun(m_unrolled, "Asia/Tokyo").await, (0, 1));
    assert_eq!(rerun(cut_month, "Asia/Tokyo").await, (0, 1));
    assert_eq!(rerun(cut_month, "UTC").await, (1, 0));
    // Sessions: exactly r's five expired ones on a rolled-up day, in
    // batches of two; k's wait for their Tokyo day.
    assert_eq!(ret["sessions_deleted"], 5, "{ret}");
    assert_eq!(
        session_ids(&c).await,
        ["old-k-0", "old-k-1", "old-k-2", "old-unrolled", "recent"]
    );
    assert_eq!(ret["visitors_deleted"], 1, "{ret}");
    assert_eq!(ret["daily_stats_deleted"], 0, "{ret}");
    // The default partition: only r's event of the rolled-up UTC day went;
    // k's (a Tokyo day with no rollup) and r's of the next day stay.
    assert_eq!(ret["default_partition_events_deleted"], 1, "{ret}");
    let imports: BTreeSet<(Uuid, NaiveDate)> = c
        .query(
            "SELECT client_id, (occurred_at AT TIME ZONE 'UTC')::date FROM session_events_default",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        imports,
        BTreeSet::from([(k, ancient), (r, ancient + Duration::days(1))])
    );

    // Once that Tokyo day is rolled up, the next run removes k's sessions
    // (two batches, walking on from one client to the next) and nothing else.
    mark_rolled_up(&c, "Asia/Tokyo", old.date_naive()).await;
    nightly(&app, Utc::now()).await;
    let (_, detail) = last_run(&c).await;
    assert_eq!(detail["retention"]["partitions_dropped"], json!([]));
    assert_eq!(detail["retention"]["sessions_deleted"], 3, "{detail}");
    assert_eq!(session_ids(&c).await, ["old-unrolled", "recent"]);
    nightly(&app, Utc::now()).await;
    let (_, detail) = last_run(&c).await;
    assert_eq!(detail["retention"]["sessions_deleted"], 0);
}

/// Marks local day `day` of `zone` rolled up (as the nightly job would).
async fn mark_rolled_up(c: &tokio_postgres::Client, zone: &str, day: NaiveDate) {
    c.execute(
        "INSERT INTO analytics_rollup_days (time_zone, day, rolled_up_at) VALUES ($1, $2, now())",
        &[&zone, &day],
    )
    .await
    .unwrap();
}

/// (events, time_zone) of a client's row for `day`, if any.
async fn day_row(
    c: &tokio_postgres::Client,
    client: Uuid,
    day: NaiveDate,
) -> Option<(i64, String)> {
    c.query_opt(
        "SELECT events, time_zone FROM widget_daily_stats WHERE client_id = $1 AND day = $2",
        &[&client, &day],
    )
    .await
    .unwrap()
    .map(|row| (row.get(0), row.get(1)))
}

#[tokio::test]
async fn a_client_that_changes_zone_keeps_its_days_until_a_backfill_cuts_them_again() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let t = today();
    let m = add_client(&db, "m").await;
    let d2 = t - Duration::days(2);
    for at in [
        midnight(d2) + Duration::hours(12),
        midnight(d2) + Duration::minutes(23 * 60 + 30),
    ] {
        plain_event(&c, m, "v", Some("s"), "widget_impression", at).await;
    }
    c.batch_execute("UPDATE session_events SET received_at = received_at - interval '1 hour'")
        .await
        .unwrap();
    nightly(&app, Utc::now()).await;
    assert_eq!(day_row(&c, m, d2).await, Some((2, "UTC".to_string())));

    // Moved to Tokyo (UTC+9); a late event at 13:00 UTC on d2 is 22:00 on
    // d2 in Tokyo, a day the client has a UTC row for: the nightly job
    // leaves that row as it was cut (the late event waits for a backfill).
    c.execute(
        "UPDATE clients SET time_zone = 'Asia/Tokyo' WHERE id = $1",
        &[&m],
    )
    .await
    .unwrap();
    plain_event(
        &c,
        m,
        "v",
        Some("s"),
        "widget_open",
        midnight(d2) + Duration::hours(13),
    )
    .await;
    nightly(&app, Utc::now()).await;
    let (outcome, detail) = last_run(&c).await;
    assert_eq!(outcome, "succeeded", "{detail}");
    assert!(
        rolled_pairs(&detail).contains(&(d2.to_string(), "Asia/Tokyo".to_string())),
        "{detail}"
    );
    assert_eq!(day_row(&c, m, d2).await, Some((2, "UTC".to_string())));

    // The backfill cuts its days again in Tokyo: d2 = [d2−1 15:00, d2 15:00)
    // UTC holds 12:00 and 13:00; d2+1 holds 23:30.
    let res = app
        .post("/admin/analytics/rollup")
        .admin()
        .json(&json!({ "from": (d2 - Duration::days(1)).to_string(), "to": (t - Duration::days(1)).to_string() }))
        .response()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        day_row(&c, m, d2).await,
        Some((2, "Asia/Tokyo".to_string()))
    );
    assert_eq!(
        day_row(&c, m, d2 + Duration::days(1)).await,
        Some((1, "Asia/Tokyo".to_string()))
    );
}

#[tokio::test]
async fn a_late_event_recomputes_only_later_days_that_are_over_in_the_affected_zones() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let t = today();
    let u = add_client(&db, "u").await;
    let ny = add_client_in(&db, "ny", "America/New_York").await;
    let rollup = |day: NaiveDate, zones: &'static [&'static str]| {
        let c = &c;
        async move {
            let zones: Vec<&str> = zones.to_vec();
            c.query_one(
                "SELECT stale_days FROM analytics_rollup_day($1, $2)",
                &[&day, &zones],
            )
            .await
            .unwrap()
            .get::<_, Vec<String>>(0)
        }
    };
    // sv was first seen yesterday (UTC); a late event shows they came the
    // day before: yesterday needs its rollup again, in UTC only.
    let y = t - Duration::days(1);
    plain_event(
        &c,
        u,
        "sv",
        Some("s1"),
        "widget_impression",
        midnight(y) + Duration::hours(10),
    )
    .await;
    assert!(rollup(y, &["UTC"]).await.is_empty());
    plain_event(
        &c,
        u,
        "sv",
        Some("s0"),
        "widget_impression",
        midnight(y - Duration::days(1)) + Duration::hours(10),
    )
    .await;
    assert_eq!(
        rollup(y - Duration::days(1), &["UTC", "America/New_York"]).await,
        [format!("{y} UTC")]
    );
    // nv counts as new on New York's today (not over): nothing to redo now,
    // today is read live and rolled up once it ends.
    let ny_tz = Tz::America__New_York;
    let ny_today = Utc::now().with_timezone(&ny_tz).date_naive();
    c.execute(
        "INSERT INTO analytics_visitors VALUES ($1, 'nv', $2, $2)",
        &[&ny, &ny_today],
    )
    .await
    .unwrap();
    let ny_yesterday = ny_today - Duration::days(1);
    event(
        &c,
        ny,
        "nv",
        Some("n1"),
        "widget_open",
        start_of_day(ny_yesterday, ny_tz) + Duration::hours(12),
        None,
        "desktop",
    )
    .await;
    assert!(rollup(ny_yesterday, &["America/New_York"]).await.is_empty());
}

#[tokio::test]
async fn a_day_starts_at_the_first_instant_of_its_date_even_when_midnight_repeats() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // The day starts where chrono's earliest local midnight says, in zones
    // that repeat midnight (Azores, Havana), skip it (Santiago) or neither.
    for (zone, day) in [
        ("Atlantic/Azores", "2025-10-26"),
        ("Atlantic/Azores", "2025-10-27"),
        ("America/Havana", "2025-11-02"),
        ("America/Santiago", "2025-09-07"),
        ("Europe/Paris", "2025-10-26"),
        ("Asia/Kolkata", "2025-06-01"),
    ] {
        let d: NaiveDate = day.parse().unwrap();
        let start: DateTime<Utc> = c
            .query_one("SELECT analytics_day_start($1, $2)", &[&zone, &d])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            start,
            start_of_day(d, zone.parse().unwrap()),
            "{zone} {day}"
        );
    }
    // In the Azores, 00:30 UTC on 2025-10-26 is 00:30 summer time: the 26th.
    let az = add_client_in(&db, "az", "Atlantic/Azores").await;
    for at in [
        "2025-10-25T23:30:00Z",
        "2025-10-26T00:30:00Z",
        "2025-10-26T01:30:00Z",
    ] {
        let at: DateTime<Utc> = at.parse().unwrap();
        plain_event(&c, az, "v", Some("s"), "widget_impression", at).await;
    }
    for day in ["2025-10-25", "2025-10-26"] {
        c.execute(
            "SELECT analytics_rollup_day($1, ARRAY['Atlantic/Azores'])",
            &[&day.parse::<NaiveDate>().unwrap()],
        )
        .await
        .unwrap();
    }
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    assert_eq!(day_row(&c, az, d("2025-10-25")).await.map(|r| r.0), Some(1));
    assert_eq!(day_row(&c, az, d("2025-10-26")).await.map(|r| r.0), Some(2));
    let expected = direct(&raw_events(&c).await, |_, _, _| true);
    assert_same(&stats(&c).await, &expected);
}

#[tokio::test]
async fn postgres_down_answers_503_from_the_reads_and_the_backfill() {
    let db = TestDb::new().await;
    let app = serve_admin_app(
        &db,
        &[
            (
                "database_url",
                "postgres://postgres@localhost:1/x?sslmode=disable",
            ),
            ("database_host", "localhost:1"),
        ],
    )
    .await;
    let (s, body) = get(
        &app,
        &format!("/admin/analytics/{}/summary", Uuid::new_v4()),
        Some(&admin_bearer()),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    let y = (today() - Duration::days(1)).to_string();
    let res = app
        .post("/admin/analytics/rollup")
        .admin()
        .json(&json!({ "from": y, "to": y }))
        .response()
        .await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
}

async fn session_ids(c: &tokio_postgres::Client) -> Vec<String> {
    c.query(
        "SELECT session_id FROM widget_sessions ORDER BY session_id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn exists(c: &tokio_postgres::Client, table: &str) -> bool {
    c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

async fn get(app: &TestApp, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = app.get(path);
    if let Some(b) = bearer {
        req = req.auth(b);
    }
    req.send().await
}

#[tokio::test]
async fn read_endpoints_report_the_rollups_plus_today_and_paginate_sessions() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let t = today();
    let a = add_client(&db, "a").await;
    let other = add_client(&db, "other").await;
    let ny = add_client_in(&db, "ny", "America/New_York").await;
    generate(&c, a, 600, t, "r").await;
    generate(&c, other, 300, t, "o").await;
    generate(&c, ny, 500, t, "ny").await;
    nightly(&app, Utc::now()).await;
    // Today, from raw events: two human sessions (one converts) and a bot.
    let now = Utc::now();
    let today0 = midnight(t);
    let at = if now - today0 > Duration::minutes(2) {
        today0 + Duration::seconds(30)
    } else {
        now
    };
    event(
        &c,
        a,
        "t1",
        Some("today-1"),
        "widget_impression",
        at,
        Some("google.com"),
        "mobile",
    )
    .await;
    event(
        &c,
        a,
        "t1",
        Some("today-1"),
        "chat_started",
        at + Duration::seconds(20),
        None,
        "mobile",
    )
    .await;
    plain_event(&c, a, "t2", Some("today-2"), "widget_open", at).await;
    c.execute(
        "INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at, is_bot, device_type)
         VALUES ($1, 'b', 'today-bot', 'widget_impression', $2, true, 'bot')",
        &[&a, &at],
    )
    .await
    .unwrap();

    let expected = direct(&raw_events(&c).await, |_, _, _| true);
    let day = |d: NaiveDate| {
        expected
            .get(&(a, d.to_string()))
            .cloned()
            .unwrap_or(json!({}))
    };
    let sum = |from: NaiveDate, to: NaiveDate, key: &str| -> i64 {
        from.iter_days()
            .take_while(|d| *d <= to)
            .map(|d| day(d)[key].as_i64().unwrap_or(0))
            .sum()
    };
    let admin = admin_bearer();
    let base = format!("/admin/analytics/{a}");

    // summary: the last 3 days (2 rolled up + today) vs the 3 before.
    let from = t - Duration::days(2);
    let (s, body) = get(
        &app,
        &format!("{base}/summary?from={from}&to={t}"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    for key in [
        "sessions",
        "new_visitors",
        "events",
        "chats_started",
        "forms_submitted",
        "converted_sessions",
        "bot_events",
    ] {
        assert_eq!(
            body["totals"][key].as_i64().unwrap(),
            sum(from, t, key),
            "totals.{key}: {body}"
        );
        assert_eq!(
            body["previous"]["totals"][key].as_i64().unwrap(),
            sum(from - Duration::days(3), t - Duration::days(3), key),
            "previous.{key}"
        );
    }
    assert_eq!(
        body["previous"]["from"],
        (t - Duration::days(5)).to_string()
    );
    // Visitors over the range: each counted once, however many days they came.
    let raw = raw_events(&c).await;
    let visitors = range_visitors(&raw, a, from, t, false);
    assert!(
        visitors < sum(from, t, "unique_visitors"),
        "some visitors came back on another day"
    );
    assert_eq!(body["totals"]["unique_visitors"], visitors, "{body}");
    assert_eq!(
        body["totals"]["returning_visitors"],
        visitors - sum(from, t, "new_visitors"),
        "{body}"
    );
    assert_eq!(
        body["totals"]["bot_visitors"],
        range_visitors(&raw, a, from, t, true)
    );
    let today_row = day(t);
    assert_eq!(today_row["sessions"], 2);
    assert_eq!(today_row["bot_events"], 1);
    let sessions = body["totals"]["sessions"].as_f64().unwrap();
    let rate = body["totals"]["conversion_rate"].as_f64().unwrap();
    assert!(
        (rate - sum(from, t, "converted_sessions") as f64 / sessions).abs() < 1e-4,
        "{body}"
    );

    // A day a failed night left without its rollup is read live.
    let gap = t - Duration::days(3);
    c.execute(
        "DELETE FROM widget_daily_stats WHERE day = $1 AND client_id = $2",
        &[&gap, &a],
    )
    .await
    .unwrap();
    c.execute(
        "DELETE FROM analytics_rollup_days WHERE day = $1 AND time_zone = 'UTC'",
        &[&gap],
    )
    .await
    .unwrap();
    assert!(day(gap)["sessions"].as_i64().unwrap() > 0);

    // trends: one entry per day, zeros before the data.
    let from = t - Duration::days(9);
    let (s, body) = get(
        &app,
        &format!("{base}/trends?from={from}&to={t}"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 10);
    for (i, d) in days.iter().enumerate() {
        let date = from + Duration::days(i as i64);
        assert_eq!(d["date"], date.to_string());
        for key in [
            "sessions",
            "unique_visitors",
            "returning_visitors",
            "impressions",
            "messages",
        ] {
            assert_eq!(
                d[key].as_i64().unwrap(),
                day(date)[key].as_i64().unwrap_or(0),
                "{date} {key}"
            );
        }
    }

    // trends by week and by month: buckets cut to the range, each
    // visitor once per bucket (and once per day above).
    let raw = raw_events(&c).await;
    for interval in ["week", "month"] {
        let (s, body) = get(
            &app,
            &format!("{base}/trends?from={from}&to={t}&interval={interval}"),
            Some(&admin),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["interval"], interval);
        let buckets = body["days"].as_array().unwrap();
        let mut next = from;
        for b in buckets {
            let (start, end): (NaiveDate, NaiveDate) = (
                b["date"].as_str().unwrap().parse().unwrap(),
                b["to"].as_str().unwrap().parse().unwrap(),
            );
            assert_eq!(start, next, "{interval}: buckets tile the range");
            let first = if interval == "week" {
                start - Duration::days(start.weekday().num_days_from_monday() as i64)
            } else {
                start.with_day(1).unwrap()
            };
            assert!(start == from || start == first, "{interval} {start}");
            assert_eq!(b["sessions"].as_i64().unwrap(), sum(start, end, "sessions"));
            assert_eq!(
                b["unique_visitors"],
                range_visitors(&raw, a, start, end, false),
                "{interval} {start}..{end}"
            );
            next = end + Duration::days(1);
        }
        assert_eq!(next, t + Duration::days(1));
    }
    let (s, body) = get(&app, &format!("{base}/trends?interval=year"), Some(&admin)).await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("interval"))
    );

    // events: top names over the range, with the limit.
    let from = t - Duration::days(6);
    let mut names: BTreeMap<String, i64> = BTreeMap::new();
    for d in from.iter_days().take_while(|d| *d <= t) {
        if let Some(m) = day(d)["event_counts"].as_object() {
            for (k, v) in m {
                *names.entry(k.clone()).or_default() += v.as_i64().unwrap();
            }
        }
    }
    let mut ranked: Vec<(String, i64)> = names.into_iter().collect();
    ranked.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let (s, body) = get(
        &app,
        &format!("{base}/events?from={from}&limit=3"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let got: Vec<(String, i64)> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, ranked[..3].to_vec());

    // traffic-sources and devices: session counts per key sum to the sessions.
    let (s, body) = get(
        &app,
        &format!("{base}/traffic-sources?from={from}&limit=100"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let total = sum(from, t, "sessions");
    for list in ["referrers", "utm_sources"] {
        let n: i64 = body[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["count"].as_i64().unwrap())
            .sum();
        assert_eq!(n, total, "{list}: {body}");
    }
    assert_eq!(body["sessions"], total);
    // A key's count in one of the answer's lists, and its sum over the days.
    let listed = |body: &Value, list: &str, key: &str| -> i64 {
        body[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap()["count"]
            .as_i64()
            .unwrap()
    };
    let summed = |column: &str, key: &str| -> i64 {
        from.iter_days()
            .take_while(|d| *d <= t)
            .map(|d| day(d)[column][key].as_i64().unwrap_or(0))
            .sum()
    };
    assert_eq!(
        listed(&body, "referrers", "google.com"),
        summed("referrers", "google.com")
    );
    let (s, body) = get(&app, &format!("{base}/devices?from={from}"), Some(&admin)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        listed(&body, "devices", "mobile"),
        summed("devices", "mobile")
    );
    assert!(body["browsers"].as_array().unwrap().len() <= 20);

    // A client in New York: its days are cut at New York's midnight, the
    // rolled-up ones and the live ones (today, and yesterday until the
    // nightly job has rolled it up) alike.
    let ny_tz = Tz::America__New_York;
    let ny_today = Utc::now().with_timezone(&ny_tz).date_naive();
    let from = ny_today - Duration::days(8);
    let (s, body) = get(
        &app,
        &format!("/admin/analytics/{ny}/trends?from={from}"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["range"]["tz"], "America/New_York");
    assert_eq!(body["range"]["to"], ny_today.to_string());
    let mut seen_sessions = 0;
    for d in body["days"].as_array().unwrap() {
        let date = d["date"].as_str().unwrap().to_string();
        let want = expected
            .get(&(ny, date.clone()))
            .cloned()
            .unwrap_or(json!({}));
        for key in ["sessions", "unique_visitors", "events", "chats_started"] {
            assert_eq!(
                d[key].as_i64().unwrap(),
                want[key].as_i64().unwrap_or(0),
                "{date} {key}"
            );
        }
        seen_sessions += d["sessions"].as_i64().unwrap();
    }
    assert!(seen_sessions > 0, "{body}");
    // Its rollups are cut in New York: another zone cannot re-cut them ...
    let (s, body) = get(
        &app,
        &format!("/admin/analytics/{ny}/summary?tz=UTC"),
        Some(&admin),
    )
    .await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("tz")),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("America/New_York"));
    let (s, _) = get(
        &app,
        &format!("/admin/analytics/{ny}/summary?tz=America%2FNew_York"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200);
    // ... while session lists are cut in any zone, and say so.
    let (s, body) = get(
        &app,
        &format!("/admin/analytics/{ny}/sessions?tz=Asia%2FTokyo"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["range"]["tz"], "Asia/Tokyo");

    // sessions and active read widget_sessions: 7 human sessions of `a` over
    // the last hours, one bot, one of another client.
    let now = Utc::now();
    for (i, device, source) in [
        (0, "mobile", Some("google")),
        (1, "desktop", None),
        (2, "mobile", None),
        (3, "desktop", Some("google")),
        (4, "mobile", Some("google")),
        (5, "tablet", None),
        (6, "mobile", None),
    ] {
        c.execute(
            "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, device_type, utm_source, event_count)
             VALUES ($1, $2, 'v', $3::timestamptz - interval '5 minutes', $3, $4, $5, 3)",
            &[&a, &format!("ws-{i}"), &(now - Duration::minutes(10 * i as i64)), &device, &source],
        )
        .await
        .unwrap();
    }
    c.execute(
        "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, device_type, is_bot)
         VALUES ($1, 'ws-bot', 'b', now(), now(), 'bot', true), ($2, 'ws-other', 'o', now(), now(), 'mobile', false)",
        &[&a, &other],
    )
    .await
    .unwrap();
    let (s, body) = get(&app, &format!("{base}/active"), Some(&admin)).await;
    assert_eq!(s, 200, "{body}");
    // ws-0, ws-1, ws-2 (0, 10, 20 minutes ago); ws-3 is 30 minutes ago.
    assert_eq!(body["active_sessions"], 3, "{body}");
    let ids: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ws-0", "ws-1", "ws-2"]);

    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!(
            "{base}/sessions?limit=3&tz=Europe%2FParis&from={}",
            t - Duration::days(1)
        );
        if let Some(cursor) = &next {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (s, body) = get(&app, &path, Some(&admin)).await;
        assert_eq!(s, 200, "{body}");
        pages += 1;
        seen.extend(
            body["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_string()),
        );
        match body["next_cursor"].as_str() {
            Some(cur) => next = Some(cur.to_string()),
            None => break,
        }
        assert!(pages < 5);
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        (0..7).map(|i| format!("ws-{i}")).collect::<Vec<_>>(),
        "newest first, no repeats"
    );
    let (_, body) = get(
        &app,
        &format!("{base}/sessions?device=mobile&source=google"),
        Some(&admin),
    )
    .await;
    let ids: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ws-0", "ws-4"]);
    let (_, body) = get(
        &app,
        &format!("{base}/sessions?source=%28direct%29&limit=2"),
        Some(&admin),
    )
    .await;
    assert_eq!(body["sessions"].as_array().unwrap().len(), 2);
    let cursor = body["next_cursor"].as_str().unwrap().to_string();
    assert!(body["sessions"][0]["started_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    // A tampered cursor, or one issued for another client, is refused.
    let mut tampered = cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (path, field) in [
        (format!("{base}/sessions?cursor={tampered}"), "cursor"),
        (
            format!("/admin/analytics/{other}/sessions?cursor={cursor}"),
            "cursor",
        ),
    ] {
        let (s, body) = get(&app, &path, Some(&admin)).await;
        assert_eq!(
            (s, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn access_is_by_role_and_client_ids_and_bad_input_names_the_parameter() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let mine = add_client(&db, "mine").await;
    let theirs = add_client(&db, "theirs").await;
    let user = format!(
        "Bearer {}",
        token(
            json!({ "sub": "u", "role": "client", "client_ids": [mine.to_string().to_uppercase()] }),
            ADMIN_SECRET
        )
    );
    let forged = format!(
        "Bearer {}",
        token(json!({ "role": "admin" }), "not-the-secret")
    );
    let endpoints = [
        "summary",
        "trends",
        "events",
        "active",
        "sessions",
        "traffic-sources",
        "devices",
    ];
    for ep in endpoints {
        let path = |c: Uuid| format!("/admin/analytics/{c}/{ep}");
        assert_eq!(get(&app, &path(mine), None).await.0, 401, "{ep}");
        assert_eq!(get(&app, &path(mine), Some(&forged)).await.0, 401, "{ep}");
        assert_eq!(get(&app, &path(mine), Some(&user)).await.0, 200, "{ep}");
        let (s, body) = get(&app, &path(theirs), Some(&user)).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{ep}"
        );
        assert_eq!(
            get(&app, &path(theirs), Some(&admin_bearer())).await.0,
            200,
            "{ep}"
        );
        let (s, body) = get(&app, &path(Uuid::new_v4()), Some(&admin_bearer())).await;
        assert_eq!(
            (s, body["error"]["field"].as_str()),
            (404, Some("client_id")),
            "{ep}: {body}"
        );
        // A client user's unknown client is refused, not revealed.
        assert_eq!(
            get(&app, &path(Uuid::new_v4()), Some(&user)).await.0,
            403,
            "{ep}"
        );
    }
    let admin = admin_bearer();
    let t = today();
    for (query, field) in [
        (
            format!("summary?from={t}&to={}", t - Duration::days(1)),
            "from",
        ),
        (
            format!("trends?from={}&to={t}", t - Duration::days(400)),
            "from",
        ),
        (format!("summary?to={}", t + Duration::days(2)), "to"),
        ("trends?from=2026-02-30".to_string(), "from"),
        ("trends?to=22-11-2026".to_string(), "to"),
        ("summary?tz=Not%2FA_Zone".to_string(), "tz"),
        ("events?limit=0".to_string(), "limit"),
        ("events?limit=1000".to_string(), "limit"),
        ("sessions?limit=-1".to_string(), "limit"),
        ("sessions?cursor=abc.def".to_string(), "cursor"),
        ("sessions?device=x%27%20OR%201%3D1".to_string(), "device"),
        ("summary?limit=5".to_string(), "limit"),
        ("active?from=2026-01-01".to_string(), "from"),
        ("devices?client_id=x".to_string(), "client_id"),
    ] {
        let (s, body) = get(
            &app,
            &format!("/admin/analytics/{mine}/{query}"),
            Some(&admin),
        )
        .await;
        assert_eq!(
            (s, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{query}: {body}"
        );
    }
    assert_eq!(
        get(
            &app,
            &format!(
                "/admin/analytics/{mine}/trends?from={}&to={t}",
                t - Duration::days(399)
            ),
            Some(&admin)
        )
        .await
        .0,
        200
    );
    let (s, body) = get(&app, "/admin/analytics/not-a-uuid/summary", Some(&admin)).await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("client_id"))
    );
    // A parameter that looks like SQL is only ever a bound value.
    let (s, _) = get(
        &app,
        &format!("/admin/analytics/{mine}/sessions?source=%27%3B%20DROP%20TABLE%20clients%3B--"),
        Some(&admin),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        c.query_one("SELECT count(*) FROM clients", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2
    );

    // The backfill: admin only, validated, and 409 while the nightly job runs.
    let post = |bearer: String, body: Value| {
        app.post("/admin/analytics/rollup")
            .auth(&bearer)
            .json(&body)
            .send()
    };
    let y = (t - Duration::days(1)).to_string();
    assert_eq!(
        post(user.clone(), json!({ "from": y, "to": y })).await.0,
        403
    );
    for (body, field) in [
        (json!({ "to": y }), "from"),
        (json!({ "from": y, "to": t.to_string() }), "to"),
        (
            json!({ "from": y, "to": (t - Duration::days(2)).to_string() }),
            "from",
        ),
        (
            json!({ "from": (t - Duration::days(91)).to_string(), "to": y }),
            "from",
        ),
        (json!({ "from": "yesterday", "to": y }), "from"),
    ] {
        let (s, res) = post(admin.clone(), body.clone()).await;
        assert_eq!(
            (s, res["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {res}"
        );
    }
    let holder = db.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('job:' || $1, 0))",
            &[&JOB],
        )
        .await
        .unwrap();
    let (s, res) = post(admin.clone(), json!({ "from": y, "to": y })).await;
    assert_eq!(
        (s, res["error"]["code"].as_str()),
        (409, Some("rollup_running")),
        "{res}"
    );
    holder.batch_execute("COMMIT").await.unwrap();
    let (s, res) = post(admin.clone(), json!({ "from": y, "to": y })).await;
    assert_eq!(s, 200, "{res}");
    assert_eq!(res["rollup"]["days"], 1);
}

/// Range uniques come from HyperLogLog sketches: on 120,000 visitors, each
/// back on up to three of ten days, rolled up through the backfill, the
/// range's unique visitors are within three standard errors (3 × 1.15 %) of
/// the exact count; they stay so once the raw events of half the days are
/// gone (sketches outlive them); and a day without a sketch adds its count.
#[tokio::test]
async fn range_visitors_are_within_the_sketch_error_of_the_exact_count() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let a = add_client(&db, "big").await;
    let t = today();
    let start = midnight(t - Duration::days(10));
    // Into partitions no ANALYZE has seen, as after a month starts: the
    // rollup analyzes them first.
    c.execute(
        "INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at, is_bot)
         SELECT $1, 'v' || v, 's' || v || '-' || k, 'widget_impression',
                $2::timestamptz + ((v * 7 + k * 3) % 10) * interval '1 day' + (v % 86000) * interval '1 second',
                false
           FROM generate_series(1, 120000) v, generate_series(0, v % 3) k",
        &[&a, &start],
    )
    .await
    .unwrap();
    let (status, body) = app
        .post("/admin/analytics/rollup")
        .admin()
        .json(&json!({ "from": (t - Duration::days(10)).to_string(), "to": (t - Duration::days(1)).to_string() }))
        .send()
        .await;
    assert_eq!(
        (status, body["rollup"]["days"].as_i64()),
        (200, Some(10)),
        "{body}"
    );
    let exact = 120_000;
    let days_summed: i64 = c
        .query_one(
            "SELECT sum(unique_visitors)::int8 FROM widget_daily_stats WHERE client_id = $1",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        days_summed > exact * 19 / 10,
        "visitors come back: {days_summed}"
    );
    let path = format!(
        "/admin/analytics/{a}/summary?from={}&to={}",
        t - Duration::days(10),
        t - Duration::days(1)
    );
    let read = || async {
        let (s, body) = app.get(&path).admin().send().await;
        assert_eq!(s, 200, "{body}");
        body["totals"].clone()
    };
    let totals = read().await;
    let estimate = totals["unique_visitors"].as_i64().unwrap();
    let error = (estimate - exact).abs() as f64 / exact as f64;
    eprintln!(
        "range unique visitors: {estimate} for {exact} ({:.2} %)",
        error * 100.0
    );
    assert!(error <= 0.0345, "{estimate} vs {exact}");
    // Everyone was first seen in the range: all new, none returning (an
    // estimate below the exact new count caps new at the estimate).
    assert_eq!(totals["new_visitors"], estimate.min(exact));
    assert_eq!(totals["returning_visitors"], (estimate - exact).max(0));

    // Retention removes the raw events of the five oldest days: the same
    // figure, from the sketches alone.
    c.execute(
        "DELETE FROM session_events WHERE client_id = $1 AND occurred_at < $2",
        &[&a, &(start + Duration::days(5))],
    )
    .await
    .unwrap();
    assert_eq!(read().await["unique_visitors"], estimate);

    // A day rolled up before sketches existed (migrations/V24) whose raw
    // events were gone has none: its visitors add up as they used to.
    let lost_day = t - Duration::days(10);
    c.execute(
        "UPDATE widget_daily_stats SET visitors_sketch = NULL WHERE client_id = $1 AND day = $2",
        &[&a, &lost_day],
    )
    .await
    .unwrap();
    let (without, alone): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT round(hll_cardinality(hll_union_agg(visitors_sketch)))::int8,
                        sum(unique_visitors) FILTER (WHERE visitors_sketch IS NULL)::int8
                   FROM widget_daily_stats WHERE client_id = $1",
                &[&a],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(read().await["unique_visitors"], without + alone);
}

/// The summary's summed figures of `client` over `from..=to`, summed over
/// its day rows.
async fn day_sums(
    c: &tokio_postgres::Client,
    client: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Value {
    let row = c
        .query_one(
            "SELECT json_build_object(
                    'sessions', coalesce(sum(sessions), 0), 'new_visitors', coalesce(sum(new_visitors), 0),
                    'events', coalesce(sum(events), 0), 'impressions', coalesce(sum(impressions), 0),
                    'opens', coalesce(sum(opens), 0), 'chats_started', coalesce(sum(chats_started), 0),
                    'messages', coalesce(sum(messages), 0), 'forms_submitted', coalesce(sum(forms_submitted), 0),
                    'converted_sessions', coalesce(sum(converted_sessions), 0),
                    'bot_sessions', coalesce(sum(bot_sessions), 0), 'bot_events', coalesce(sum(bot_events), 0),
                    'avg_session_duration_s', CASE WHEN sum(sessions) > 0
                        THEN round((sum(total_session_seconds) / sum(sessions))::numeric, 1) ELSE 0 END)::text
               FROM widget_daily_stats WHERE client_id = $1 AND day BETWEEN $2 AND $3",
            &[&client, &from, &to],
        )
        .await
        .unwrap();
    serde_json::from_str(row.get(0)).unwrap()
}

/// The text column of every row `sql` returns.
async fn texts(
    c: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<String> {
    c.query(sql, params)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The backfill endpoint over `from..=to`, answering 200.
async fn backfill(app: &TestApp, from: NaiveDate, to: NaiveDate) {
    let (s, body) = app
        .post("/admin/analytics/rollup")
        .admin()
        .json(&json!({ "from": from.to_string(), "to": to.to_string() }))
        .send()
        .await;
    assert_eq!(s, 200, "{body}");
}

/// Months and week parts whose `widget_period_stats` row differs from its
/// client's day rows of that period (migrations/V25, V30, V31): by the
/// cardinality of the union of their sketches, the visitors of days without
/// one, or any sum. None, whatever wrote the days.
async fn periods_out_of_step(c: &tokio_postgres::Client) -> Vec<String> {
    const SUMS: &str = "sessions, new_visitors, events, impressions, opens, chats_started, messages, \
                        forms_submitted, converted_sessions, total_session_seconds, bot_sessions, bot_events";
    let summed: Vec<String> = SUMS
        .split(", ")
        .map(|c| format!("sum({c}) AS {c}"))
        .collect();
    // Seconds are floats, summed in another order.
    let differs: Vec<String> = SUMS
        .split(", ")
        .map(|c| format!("abs(m.{c} - d.{c}) > 1e-6 * greatest(1, abs(d.{c}))"))
        .collect();
    texts(
        c,
        &format!(
            "SELECT concat_ws(' ', coalesce(m.client_id, d.client_id), coalesce(m.period, d.period),
                              coalesce(m.first_day, d.first_day))
               FROM widget_period_stats m
               FULL JOIN (SELECT client_id, p.period, analytics_period_start(p.period, day) AS first_day,
                                 hll_cardinality(hll_union_agg(visitors_sketch)) AS v,
                                 hll_cardinality(hll_union_agg(bot_visitors_sketch)) AS b,
                                 coalesce(sum(unique_visitors) FILTER (WHERE visitors_sketch IS NULL), 0)::int8 AS u,
                                 {summed}
                            FROM widget_daily_stats CROSS JOIN analytics_periods() p (period)
                           GROUP BY 1, 2, 3) d
                 ON d.client_id = m.client_id AND d.period = m.period AND d.first_day = m.first_day
              WHERE m.client_id IS NULL OR d.client_id IS NULL
                 OR hll_cardinality(m.visitors_sketch) IS DISTINCT FROM d.v
                 OR hll_cardinality(m.bot_visitors_sketch) IS DISTINCT FROM d.b
                 OR m.unsketched_visitors <> d.u
                 OR {differs}",
            summed = summed.join(", "),
            differs = differs.join(" OR "),
        ),
        &[],
    )
    .await
}

#[tokio::test]
async fn whole_months_and_week_parts_are_read_as_one_row_that_follows_every_change_to_their_days() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let a = add_client(&db, "months").await;
    let t = today();
    let (first, last) = (t - Duration::days(80), t - Duration::days(1));
    // Ten visitors a day from a pool of 200 that drifts: every visitor comes
    // back on several days, in several months. Few enough that the sketches
    // are exact (explicit), so every figure must match to the visitor.
    c.execute(
        "INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at, is_bot)
         SELECT $1, CASE WHEN k = 10 THEN 'bot' || (d % 3) ELSE 'p' || ((d * 3 + k) % 200) END,
                's' || d || '-' || (k / 2),
                (ARRAY['widget_impression', 'widget_open', 'chat_started', 'message_sent',
                       'client_form_submitted'])[1 + (d + k) % 5],
                $2::timestamptz + d * interval '1 day' + k * interval '1 hour', k = 10
           FROM generate_series(0, 79) d, generate_series(0, 10) k",
        &[&a, &midnight(first)],
    )
    .await
    .unwrap();
    backfill(&app, first, last).await;
    assert_eq!(periods_out_of_step(&c).await, Vec::<String>::new());
    let whole: Vec<NaiveDate> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .filter(|d| {
            d.day() == 1
                && d.checked_add_months(chrono::Months::new(1)).unwrap() <= last + Duration::days(1)
        })
        .collect();
    assert!(!whole.is_empty(), "80 days hold a whole month");

    let summary = |from: NaiveDate, to: NaiveDate| {
        let app = &app;
        async move {
            let (s, body) = app
                .get(&format!("/admin/analytics/{a}/summary?from={from}&to={to}"))
                .admin()
                .send()
                .await;
            assert_eq!(s, 200, "{body}");
            body["totals"].clone()
        }
    };
    let raw = raw_events(&c).await;
    let totals = summary(first, last).await;
    assert_eq!(
        totals["unique_visitors"],
        range_visitors(&raw, a, first, last, false)
    );
    assert_eq!(
        totals["bot_visitors"],
        range_visitors(&raw, a, first, last, true)
    );
    // Month and week buckets, whole or cut to the range, count each visitor
    // once, and sum their days. From a Sunday, the first week is one day
    // (its day row) beside whole weeks (their period rows), in one call;
    // a month's last day begins a one-day month bucket.
    let sunday = first
        .iter_days()
        .find(|d| d.weekday() == chrono::Weekday::Sun)
        .unwrap();
    let last_of_a_month = whole[0] - Duration::days(1);
    for (from, interval) in [
        (first, "month"),
        (first, "week"),
        (sunday, "week"),
        (last_of_a_month, "month"),
    ] {
        let (s, body) = app
            .get(&format!(
                "/admin/analytics/{a}/trends?from={from}&to={last}&interval={interval}"
            ))
            .admin()
            .send()
            .await;
        assert_eq!(s, 200, "{body}");
        let buckets = body["days"].as_array().unwrap();
        if from == sunday || from == last_of_a_month {
            assert_eq!(
                buckets[0]["date"], buckets[0]["to"],
                "{interval} from {from}"
            );
        }
        for b in buckets {
            let (start, end): (NaiveDate, NaiveDate) = (
                b["date"].as_str().unwrap().parse().unwrap(),
                b["to"].as_str().unwrap().parse().unwrap(),
            );
            assert_eq!(
                b["unique_visitors"],
                range_visitors(&raw, a, start, end, false),
                "{interval} {start}..{end}"
            );
            for (figure, value) in day_sums(&c, a, start, end).await.as_object().unwrap() {
                assert_eq!(&b[figure], value, "{figure} {interval} {start}..{end}");
            }
        }
    }
    // Ranges starting and ending on every weekday and either side of a
    // month's end: each is covered by months, week parts and days exactly
    // once (the sketches are exact at this size).
    for (i, from) in first.iter_days().take(45).step_by(4).enumerate() {
        for len in [0, 1, 5, 6, 7, 13, 20 + i as i64, 33, 40 + 3 * i as i64] {
            let to = (from + Duration::days(len)).min(last);
            let totals = summary(from, to).await;
            assert_eq!(
                totals["unique_visitors"],
                range_visitors(&raw, a, from, to, false),
                "{from}..{to}"
            );
            // And the sums, read from the same rows, as summed day by day.
            for (figure, value) in day_sums(&c, a, from, to).await.as_object().unwrap() {
                assert_eq!(&totals[figure], value, "{figure} {from}..{to}");
            }
        }
    }

    // The range reads a whole month as its month row: emptied, the month's
    // own visitors drop out of the range (the edges still hold some).
    let empty_period = |period: &'static str, first_day: NaiveDate| {
        let c = &c;
        async move {
            c.execute(
                "UPDATE widget_period_stats SET visitors_sketch = hll_empty(13)
                  WHERE client_id = $1 AND period = $2 AND first_day = $3",
                &[&a, &period, &first_day],
            )
            .await
            .unwrap();
        }
    };
    let month = whole[0];
    let month_end = month.checked_add_months(chrono::Months::new(1)).unwrap() - Duration::days(1);
    empty_period("month", month).await;
    assert_eq!(summary(month, month_end).await["unique_visitors"], 0);
    // And a whole week part at a range's edge as its row: the part from the
    // month's first Monday, read by a range that starts the day before.
    let monday = month
        .iter_days()
        .find(|d| d.weekday() == chrono::Weekday::Mon && *d > month)
        .unwrap();
    empty_period("week", monday).await;
    let day_before: i64 = c
        .query_one(
            "SELECT hll_cardinality(visitors_sketch)::int8 FROM widget_daily_stats
              WHERE client_id = $1 AND day = $2",
            &[&a, &(monday - Duration::days(1))],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        summary(monday - Duration::days(1), monday + Duration::days(6)).await["unique_visitors"],
        day_before
    );
    // Rolling one of their days up again rebuilds them from their days.
    backfill(&app, month + Duration::days(3), month + Duration::days(3)).await;
    backfill(&app, monday, monday).await;
    assert_eq!(periods_out_of_step(&c).await, Vec::<String>::new());
    assert_eq!(
        summary(month, month_end).await["unique_visitors"],
        range_visitors(&raw, a, month, month_end, false)
    );

    // A late event from a new visitor, inside the whole month: its day is
    // rolled up again and the month counts the visitor.
    plain_event(
        &c,
        a,
        "late-visitor",
        Some("late"),
        "widget_open",
        midnight(month + Duration::days(9)) + Duration::hours(5),
    )
    .await;
    backfill(&app, month + Duration::days(9), month + Duration::days(9)).await;
    let raw = raw_events(&c).await;
    let totals = summary(first, last).await;
    assert_eq!(
        totals["unique_visitors"],
        range_visitors(&raw, a, first, last, false)
    );
    assert_eq!(periods_out_of_step(&c).await, Vec::<String>::new());

    // Stats retention deletes the oldest days in batches: their months are
    // rebuilt from the days left, and ranges over them count only those.
    let kept = first + Duration::days(40);
    let mut deleted = 0;
    loop {
        let n: i64 = c
            .query_one("SELECT analytics_delete_expired_stats($1, 7)", &[&kept])
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        deleted += n;
    }
    assert_eq!(deleted, 40);
    assert_eq!(periods_out_of_step(&c).await, Vec::<String>::new());
    let totals = summary(first, last).await;
    assert_eq!(
        totals["unique_visitors"],
        range_visitors(&raw, a, kept, last, false)
    );
    assert_eq!(
        totals["bot_visitors"],
        range_visitors(&raw, a, kept, last, true)
    );

    // A TRUNCATE fires no delete trigger: it empties the periods itself.
    c.execute("TRUNCATE widget_daily_stats", &[]).await.unwrap();
    assert_eq!(periods_out_of_step(&c).await, Vec::<String>::new());
    let months: i64 = c
        .query_one("SELECT count(*) FROM widget_period_stats", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(months, 0);
}

/// The `{key: count}` lists of the rollup, one `(list, column)` pair per
/// list the read API answers with.
const LISTS: [(&str, &str, &str); 6] = [
    ("events", "events", "event_counts"),
    ("traffic-sources", "referrers", "referrers"),
    ("traffic-sources", "utm_sources", "utm_sources"),
    ("devices", "devices", "devices"),
    ("devices", "browsers", "browsers"),
    ("devices", "os", "os"),
];

/// Months and week parts whose filled `widget_period_lists` row
/// (migrations/V32) differs from the key-wise sums of its client's day rows
/// of that period, in any list or in its sessions. Rows may be unfilled;
/// none may be wrong.
async fn period_lists_out_of_step(c: &tokio_postgres::Client) -> Vec<String> {
    let docs: Vec<String> = LISTS
        .iter()
        .map(|(_, _, col)| format!("('{col}', x.{col})"))
        .collect();
    texts(
        c,
        &format!(
            "WITH from_rows AS (
                 SELECT x.client_id, x.period, x.first_day, j.list, e.key, e.value::int8 AS n
                   FROM widget_period_lists x
                  CROSS JOIN LATERAL (VALUES {docs}) j (list, doc), jsonb_each_text(j.doc) e
                  WHERE x.sessions IS NOT NULL),
             from_days AS (
                 SELECT x.client_id, p.period, analytics_period_start(p.period, x.day) AS first_day,
                        j.list, e.key, sum(e.value::int8)::int8 AS n
                   FROM widget_daily_stats x CROSS JOIN analytics_periods() p (period)
                  CROSS JOIN LATERAL (VALUES {docs}) j (list, doc), jsonb_each_text(j.doc) e
                  GROUP BY 1, 2, 3, 4, 5)
             SELECT DISTINCT concat_ws(' ', l.client_id, l.period, l.first_day, k.list, k.key)
               FROM widget_period_lists l
               JOIN (SELECT coalesce(r.client_id, d.client_id) AS client_id, coalesce(r.period, d.period) AS period,
                            coalesce(r.first_day, d.first_day) AS first_day, coalesce(r.list, d.list) AS list,
                            coalesce(r.key, d.key) AS key
                       FROM from_rows r FULL JOIN from_days d
                         ON (d.client_id, d.period, d.first_day, d.list, d.key)
                          = (r.client_id, r.period, r.first_day, r.list, r.key)
                      WHERE r.n IS DISTINCT FROM d.n
                     UNION ALL
                     SELECT l.client_id, l.period, l.first_day, 'sessions', ''
                       FROM widget_period_lists l
                      WHERE l.sessions IS NOT NULL AND l.sessions IS DISTINCT FROM (
                            SELECT sum(s.sessions) FROM widget_daily_stats s
                             WHERE s.client_id = l.client_id
                               AND s.day BETWEEN l.first_day AND analytics_period_end(l.period, l.first_day))) k
                 ON (k.client_id, k.period, k.first_day) = (l.client_id, l.period, l.first_day)
              WHERE l.sessions IS NOT NULL",
            docs = docs.join(", "),
        ),
        &[],
    )
    .await
}

/// The answer a list endpoint owes for `from..=to`: each list's top `limit`
/// keys by count (then key) summed over the client's day rows, and their
/// sessions.
async fn lists_from_days(
    c: &tokio_postgres::Client,
    client: Uuid,
    endpoint: &str,
    from: NaiveDate,
    to: NaiveDate,
    limit: i64,
) -> Value {
    let mut out = json!({});
    for (_, list, col) in LISTS.iter().filter(|(e, _, _)| *e == endpoint) {
        let top: String = c
            .query_one(
                &format!(
                    "SELECT coalesce(jsonb_agg(jsonb_build_object('key', key, 'count', n) ORDER BY n DESC, key), '[]')::text
                       FROM (SELECT e.key, sum(e.value::int8) AS n
                               FROM widget_daily_stats s, jsonb_each_text(s.{col}) e
                              WHERE s.client_id = $1 AND s.day BETWEEN $2 AND $3
                              GROUP BY e.key ORDER BY n DESC, e.key LIMIT $4) t"
                ),
                &[&client, &from, &to, &limit],
            )
            .await
            .unwrap()
            .get(0);
        out[*list] = serde_json::from_str(&top).unwrap();
    }
    out["sessions"] = day_sums(c, client, from, to).await["sessions"].clone();
    out
}

#[tokio::test]
async fn lists_read_filled_months_and_week_parts_and_the_days_they_leave_as_their_days_summed() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let a = add_client(&db, "lists").await;
    let t = today();
    let (first, last) = (t - Duration::days(84), t - Duration::days(1));
    for week in 0..14 {
        generate(
            &c,
            a,
            250,
            t - Duration::days(6 * week),
            &format!("w{week}"),
        )
        .await;
    }
    let list_rows = || {
        let c = &c;
        async move {
            c.query_one("SELECT count(sessions) FROM widget_period_lists", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let answer = |endpoint: &'static str, from: NaiveDate, to: NaiveDate, limit: i64| {
        let app = &app;
        async move {
            let (s, body) = app
                .get(&format!(
                    "/admin/analytics/{a}/{endpoint}?from={from}&to={to}&limit={limit}"
                ))
                .admin()
                .send()
                .await;
            assert_eq!(s, 200, "{body}");
            let mut lists = json!({});
            for (_, list, _) in LISTS.iter().filter(|(e, _, _)| *e == endpoint) {
                lists[*list] = body[*list].clone();
            }
            lists["sessions"] = body["sessions"].clone();
            lists
        }
    };
    // Ranges starting and ending on every weekday and either side of a
    // month's end, each list cut short (2) and whole (50).
    let sweep = || {
        let (answer, c) = (&answer, &c);
        async move {
            for (i, from) in first.iter_days().take(50).step_by(7).enumerate() {
                for len in [0, 6, 13, 20 + i as i64, 33, 45 + 3 * i as i64, 83] {
                    let to = (from + Duration::days(len)).min(last);
                    for (endpoint, limit) in
                        [("events", 2), ("traffic-sources", 50), ("devices", 2)]
                    {
                        assert_eq!(
                            answer(endpoint, from, to, limit).await,
                            lists_from_days(c, a, endpoint, from, to, limit).await,
                            "{endpoint} {from}..{to} limit {limit}"
                        );
                    }
                }
            }
        }
    };
    backfill(&app, first, last).await;
    // Before any fill, the lists are summed from the days.
    assert_eq!(list_rows().await, 0);
    sweep().await;

    // The nightly job fills every month and week part that ended before
    // yesterday, and only those; no row is left for a period without days.
    let not_as_due = || {
        let c = &c;
        async move {
            texts(
                c,
                "SELECT concat_ws(' ', p.period, p.first_day, l.period, l.first_day, l.sessions IS NOT NULL)
                   FROM widget_period_stats p
                   FULL JOIN widget_period_lists l USING (client_id, period, first_day)
                  WHERE (analytics_period_end(p.period, p.first_day) < $1)
                        IS DISTINCT FROM (l.sessions IS NOT NULL)",
                &[&(t - Duration::days(1))],
            )
            .await
        }
    };
    nightly(&app, Utc::now()).await;
    assert_eq!(not_as_due().await, Vec::<String>::new());
    let filled = list_rows().await;
    assert!(
        filled >= 12,
        "two whole months and their week parts: {filled}"
    );
    assert_eq!(period_lists_out_of_step(&c).await, Vec::<String>::new());
    sweep().await;

    // A whole month is read as its row: a key only that row holds shows in
    // a range over the whole month, not in one a day short of it.
    let month = first
        .iter_days()
        .find(|d| d.day() == 1 && *d > first)
        .unwrap();
    let month_end = month.checked_add_months(chrono::Months::new(1)).unwrap() - Duration::days(1);
    c.execute(
        "UPDATE widget_period_lists SET referrers = referrers || '{\"planted.example\": 100000}'
          WHERE client_id = $1 AND period = 'month' AND first_day = $2",
        &[&a, &month],
    )
    .await
    .unwrap();
    let top = |v: Value| v["referrers"][0]["key"].clone();
    assert_eq!(
        top(answer("traffic-sources", month, month_end, 1).await),
        "planted.example"
    );
    assert_ne!(
        top(answer("traffic-sources", month, month_end - Duration::days(1), 1).await),
        "planted.example"
    );
    // And a whole week part at a range's edge as its row.
    let monday = month
        .iter_days()
        .find(|d| d.weekday() == chrono::Weekday::Mon && *d > month)
        .unwrap();
    c.execute(
        "UPDATE widget_period_lists SET os = os || '{\"PlantedOS\": 100000}'
          WHERE client_id = $1 AND period = 'week' AND first_day = $2",
        &[&a, &monday],
    )
    .await
    .unwrap();
    assert_eq!(
        answer(
            "devices",
            monday - Duration::days(1),
            monday + Duration::days(6),
            1
        )
        .await["os"][0]["key"],
        "PlantedOS"
    );

    // Rolling one of their days up again empties both rows (the range reads
    // the days instead, as they are), and the next night fills them again.
    backfill(&app, monday + Duration::days(2), monday + Duration::days(2)).await;
    assert_eq!(list_rows().await, filled - 2);
    assert_eq!(period_lists_out_of_step(&c).await, Vec::<String>::new());
    sweep().await;
    nightly(&app, Utc::now()).await;
    assert_eq!(list_rows().await, filled);
    assert_eq!(period_lists_out_of_step(&c).await, Vec::<String>::new());

    // A late event, new on its day, rolled up by the nightly job: its
    // periods are emptied, and filled with it after the rollup.
    plain_event(
        &c,
        a,
        "late-visitor",
        Some("late"),
        "late_event_name",
        midnight(month + Duration::days(9)) + Duration::hours(5),
    )
    .await;
    nightly(&app, Utc::now()).await;
    assert_eq!(list_rows().await, filled);
    assert_eq!(period_lists_out_of_step(&c).await, Vec::<String>::new());
    let events = answer("events", month, month_end, 50).await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "late_event_name"),
        "{events}"
    );
    sweep().await;

    // Stats retention deletes the oldest days in batches: their periods are
    // emptied, ranges over them sum the days left, and the next night fills
    // those that kept days and deletes the others.
    let kept = first + Duration::days(40);
    loop {
        let n: i64 = c
            .query_one("SELECT analytics_delete_expired_stats($1, 7)", &[&kept])
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
    }
    assert!(list_rows().await < filled);
    assert_eq!(period_lists_out_of_step(&c).await, Vec::<String>::new());
    sweep().await;
    nightly(&app, Utc::now()).await;
    assert_eq!(not_as_due().await, Vec::<String>::new());
    assert_eq!(period_lists_out_of_step(&c).await, Vec::<String>::new());
    sweep().await;

    // A TRUNCATE fires no delete trigger: it empties the table itself.
    c.execute("TRUNCATE widget_daily_stats", &[]).await.unwrap();
    let rows: i64 = c
        .query_one("SELECT count(*) FROM widget_period_lists", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

/// Rows of `clients` read since the table was put behind `count_client_reads`.
async fn client_reads(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM client_reads",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn each_read_reads_the_clients_row_once_even_with_live_days() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let app = serve_admin_app(&db, &[]).await;
    let t = today();
    let tokyo = add_client_in(&db, "tokyo", "Asia/Tokyo").await;
    generate(&c, tokyo, 400, t, "z").await;
    nightly(&app, Utc::now()).await;
    // Live days: the last hour's events are today's (or, just after Tokyo's
    // midnight, a yesterday the nightly job has not rolled up).
    let now = Utc::now();
    for (i, name) in ["widget_impression", "widget_open", "chat_started"]
        .iter()
        .enumerate()
    {
        let person = format!("live-{i}");
        plain_event(
            &c,
            tokyo,
            &person,
            Some(&person),
            name,
            now - Duration::minutes(5),
        )
        .await;
    }
    let from_365 = (t - Duration::days(364)).to_string();
    let paths = [
        "summary".to_string(),
        format!("summary?from={from_365}"),
        "trends".to_string(),
        format!("trends?from={from_365}&interval=month"),
        "events".to_string(),
        "traffic-sources".to_string(),
        format!("devices?from={from_365}"),
    ];
    let mut before = Vec::new();
    for p in &paths {
        let (status, body) = app
            .get(&format!("/admin/analytics/{tokyo}/{p}"))
            .admin()
            .send()
            .await;
        assert_eq!(status, 200, "{p}: {body}");
        before.push(body);
    }
    assert!(
        before[0]["totals"]["events"].as_i64().unwrap() >= 3,
        "the summary counts the live events: {}",
        before[0]
    );

    // The previous release's three-argument functions, kept for rollouts,
    // answer as the new ones do.
    let same: bool = c
        .query_one(
            "SELECT analytics_figures($1, ARRAY[current_date - 29], current_date)::text
                  = analytics_figures($1, 'Asia/Tokyo', ARRAY[current_date - 29], current_date)::text
                AND (SELECT count(*) FROM analytics_client_live_days($1, current_date - 7, current_date))
                  = (SELECT count(*) FROM analytics_client_live_days($1, 'Asia/Tokyo', current_date - 7, current_date))",
            &[&tokyo],
        )
        .await
        .unwrap()
        .get(0);
    assert!(same, "the three-argument functions answer as the new ones");

    // Every row of `clients` a statement reads now passes through a counter.
    db.exec(
        "CREATE SEQUENCE client_reads;
         CREATE FUNCTION count_client_reads() RETURNS boolean LANGUAGE sql VOLATILE
             AS $$ SELECT nextval('client_reads') > 0 $$;
         ALTER TABLE clients RENAME TO clients_counted;
         CREATE VIEW clients AS SELECT * FROM clients_counted WHERE count_client_reads();",
    )
    .await;
    for (p, expected) in paths.iter().zip(&before) {
        let reads = client_reads(&c).await;
        let (status, body) = app
            .get(&format!("/admin/analytics/{tokyo}/{p}"))
            .admin()
            .send()
            .await;
        assert_eq!(status, 200, "{p}: {body}");
        assert_eq!(&body, expected, "{p} answers as before");
        assert_eq!(
            client_reads(&c).await - reads,
            1,
            "{p} reads the client's row once"
        );
    }
}
