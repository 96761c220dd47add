//! The read API under `/admin/analytics/{client_id}/`: one function per
//! endpoint. Each request reads the client's reporting time zone (404 for an
//! unknown client), validates its parameters against it, then answers with
//! one statement. Past days come from `widget_daily_stats` and, for the
//! summary and trends, the months and week parts of `widget_period_stats`;
//! the client's today (and yesterday until the nightly rollup has written
//! it) from raw events with
//! the rollup's own SQL (`analytics_client_live_days`, once per request), so
//! they count alike. The summary's and trends' figures are one function,
//! `analytics_figures` (migrations/V26, V29, V31), whose plan each connection
//! keeps. The zone read first is passed on, so the client's row is read
//! once per request.
//! Every value reaches SQL as a bound parameter.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::pg4::ParameterValue;

use platform::db::{self, text_or_null, Db};
use platform::request::header;
use platform::{auth, respond, ApiError};

use crate::cursor::{self, Position};
use crate::params::{self, Endpoint, Query};

/// Sessions with an event in this many minutes count as active.
pub const ACTIVE_WINDOW_MINUTES: i64 = 30;

/// The `{client_id}` and the endpoint of `/admin/analytics/{client_id}/<endpoint>`.
fn route(req: &Request) -> (String, String) {
    let client = platform::request::path_param(req, "client_id").unwrap_or_default();
    let rest = header(req, "spin-path-info").unwrap_or_default();
    (client.to_string(), rest.trim_matches('/').to_string())
}

fn text(v: impl ToString) -> ParameterValue {
    ParameterValue::Str(v.to_string())
}

/// A client's reporting time zone.
#[derive(Deserialize)]
struct Zone {
    time_zone: String,
}

/// The client a request reads, from its one read of `clients`: the SQL is
/// given its zone rather than reading the row again.
struct Client {
    id: String,
    zone: String,
}

/// Serves `GET /admin/analytics/{client_id}/<endpoint>`.
pub fn serve(req: &Request) -> Response {
    if *req.method() != Method::Get {
        return respond::method_not_allowed(&["GET"]);
    }
    read(req).unwrap_or_else(ApiError::into_response)
}

fn read(req: &Request) -> Result<Response, ApiError> {
    let caller = auth::caller(req)?;
    let (raw_client, name) = route(req);
    let endpoint = Endpoint::parse(&name).ok_or_else(|| {
        let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
        ApiError::new(
            404,
            "not_found",
            format!(
                "no analytics endpoint {name:?}; the endpoints are {}",
                names.join(", ")
            ),
        )
    })?;
    let client_id = platform::ids::parse_uuid(&raw_client).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            "client_id",
            format!("client_id {raw_client:?} is not a UUID"),
        )
    })?;
    if !caller.may_read_client(&client_id) {
        return Err(ApiError::new(
            403,
            "forbidden",
            "this token may not read this client's analytics",
        ));
    }
    let db = db::connect()?;
    // The client's reporting time zone (and whether the client exists).
    let zone = db
        .row::<Zone>(
            "SELECT time_zone FROM clients WHERE id = $1::text::uuid",
            &[text(&client_id)],
        )?
        .ok_or_else(|| {
            ApiError::new(404, "unknown_client", format!("no client {client_id}"))
                .field("client_id")
        })?
        .time_zone;
    // Postgres' zone list can be newer than chrono-tz's.
    let client_tz = Tz::from_str(&zone).map_err(|_| {
        ApiError::new(
            500,
            "internal_error",
            format!("the client's time zone {zone:?} is not one this build knows"),
        )
    })?;
    let now = Utc::now();
    let q = params::parse(endpoint, req.query(), now, client_tz)?;
    let secret = auth::secret();
    let position = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(cursor::verify(c, &client_id, &secret).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                "cursor",
                "cursor is not one this API issued for this client",
            )
        })?),
    };
    let client = Client {
        id: client_id,
        zone,
    };
    let body = match endpoint {
        Endpoint::Summary => summary(&db, &client, &q),
        // Its buckets are passed on as Postgres wrote them.
        Endpoint::Trends => return Ok(respond::json(200, &trends(&db, &client, &q)?)),
        Endpoint::Events => top(&db, &client, &q, &[("events", "event_counts")]),
        Endpoint::TrafficSources => top(
            &db,
            &client,
            &q,
            &[("referrers", "referrers"), ("utm_sources", "utm_sources")],
        ),
        Endpoint::Devices => top(
            &db,
            &client,
            &q,
            &[
                ("devices", "devices"),
                ("browsers", "browsers"),
                ("os", "os"),
            ],
        ),
        Endpoint::Active => active(&db, &client.id, &q, now),
        Endpoint::Sessions => sessions(&db, &client.id, &q, position, &secret),
    }?;
    Ok(respond::json(200, &body))
}

fn range_json(q: &Query) -> Value {
    json!({ "from": q.from.to_string(), "to": q.to.to_string(), "tz": q.tz.name(), "days": q.days() })
}

/// The change from `previous` to `current` in percent, per numeric figure
/// (null when the previous figure is 0).
fn change_pct(current: &Value, previous: &Value) -> Value {
    let mut out = Map::new();
    if let (Some(c), Some(p)) = (current.as_object(), previous.as_object()) {
        for (k, v) in c {
            let (Some(a), Some(b)) = (v.as_f64(), p.get(k).and_then(Value::as_f64)) else {
                continue;
            };
            let pct = if b == 0.0 {
                Value::Null
            } else {
                json!(((a - b) / b * 1000.0).round() / 10.0)
            };
            out.insert(k.clone(), pct);
        }
    }
    Value::Object(out)
}

/// `analytics_figures` (migrations/V31) of the client's days in buckets
/// starting on `firsts` (ascending), the last ending on `to`: a JSON array
/// of one object per bucket, with `date` (its first day) and `to` (its
/// last), read as `T` (values, or the array's text as it is).
fn figures<T: DeserializeOwned>(
    conn: &Db,
    client: &Client,
    firsts: &[NaiveDate],
    to: NaiveDate,
) -> Result<T, db::DbError> {
    let firsts: Vec<String> = firsts.iter().map(|d| d.to_string()).collect();
    conn.value(
        "SELECT analytics_figures($1::text::uuid, $2::text, $3::text::date[], $4::text::date) AS buckets",
        &[
            text(&client.id),
            text(&client.zone),
            text(format!("{{{}}}", firsts.join(","))),
            text(to),
        ],
    )
}

fn summary(conn: &Db, client: &Client, q: &Query) -> Result<Value, db::DbError> {
    let (pf, pt) = q.previous();
    // The range before and the range are consecutive buckets.
    let buckets: Vec<Value> = figures(conn, client, &[pf, q.from], q.to)?;
    let [mut previous, mut current]: [Value; 2] = buckets.try_into().map_err(|b: Vec<Value>| {
        db::DbError::failed(format!(
            "analytics_figures returned {} buckets for 2",
            b.len()
        ))
    })?;
    for totals in [&mut previous, &mut current] {
        if let Value::Object(m) = totals {
            m.remove("date");
            m.remove("to");
        }
    }
    Ok(json!({
        "client_id": client.id,
        "range": range_json(q),
        "change_pct": change_pct(&current, &previous),
        "totals": current,
        "previous": { "from": pf.to_string(), "to": pt.to_string(), "totals": previous },
    }))
}

/// The trends answer. `days` is Postgres' text: 365 buckets parsed and
/// written again cost the component milliseconds.
#[derive(Serialize)]
struct Trends {
    client_id: String,
    range: Value,
    interval: &'static str,
    days: Box<RawValue>,
}

/// The range in buckets of `q.interval` (days, ISO weeks, months), each cut
/// to the range: `date` its first day, `to` its last.
fn trends(conn: &Db, client: &Client, q: &Query) -> Result<Trends, db::DbError> {
    Ok(Trends {
        client_id: client.id.clone(),
        range: range_json(q),
        interval: q.interval.name(),
        days: figures(conn, client, &q.bucket_starts(), q.to)?,
    })
}

/// The top `limit` keys of one or more `{key: count}` columns over the range,
/// with the range's sessions (the denominator of each key's share). The
/// range is read once for every list: its filled months and week parts and
/// the days they leave (`analytics_range_lists`, migrations/V32), then the
/// live days.
fn top(
    conn: &Db,
    client: &Client,
    q: &Query,
    lists: &[(&str, &str)],
) -> Result<Value, db::DbError> {
    // Names and columns are this module's constants, never request input.
    let columns: Vec<String> = lists.iter().map(|(_, c)| format!("s.{c}")).collect();
    let documents: Vec<String> = lists
        .iter()
        .map(|(name, c)| format!("('{name}', s.{c})"))
        .collect();
    let answers: Vec<String> = lists
        .iter()
        .map(|(name, _)| {
            format!(
                "'{name}', coalesce((SELECT jsonb_agg(jsonb_build_object('key', r.key, 'count', r.n) ORDER BY r.rank)
                                       FROM ranked r WHERE r.list = '{name}' AND r.rank <= $4::int4), '[]')"
            )
        })
        .collect();
    let sql = format!(
        "WITH live AS MATERIALIZED (
             SELECT * FROM analytics_client_live_days($1::text::uuid, $5::text, $2::text::date, $3::text::date)),
         days AS MATERIALIZED (
             SELECT s.sessions, {columns} FROM analytics_range_lists($1::text::uuid, $2::text::date, $3::text::date) s
             UNION ALL
             SELECT s.sessions, {columns} FROM live s),
         keys AS (
             SELECT j.list, e.key, sum(e.value::int8)::int8 AS n
               FROM days s, LATERAL (VALUES {documents}) j (list, doc), jsonb_each_text(j.doc) e
              GROUP BY j.list, e.key),
         ranked AS (
             SELECT k.*, row_number() OVER (PARTITION BY k.list ORDER BY k.n DESC, k.key) AS rank FROM keys k)
         SELECT jsonb_build_object({answers},
                                   'sessions', (SELECT coalesce(sum(s.sessions), 0)::int8 FROM days s)) AS lists",
        columns = columns.join(", "),
        documents = documents.join(", "),
        answers = answers.join(", "),
    );
    let params = [
        text(&client.id),
        text(q.from),
        text(q.to),
        ParameterValue::Int32(q.limit as i32),
        text(&client.zone),
    ];
    let lists: Value = conn.value(&sql, &params)?;
    let mut out = json!({ "client_id": client.id, "range": range_json(q), "limit": q.limit });
    if let Value::Object(m) = lists {
        for (k, v) in m {
            out[k] = v;
        }
    }
    Ok(out)
}

fn local(epoch_s: f64, tz: Tz) -> Value {
    let Some(t) = DateTime::<Utc>::from_timestamp_micros((epoch_s * 1e6).round() as i64) else {
        return Value::Null;
    };
    json!(t
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The session columns the lists show.
const SESSION_COLUMNS: &str = "s.session_id, s.person_id,
    extract(epoch FROM s.first_seen_at)::float8 AS first_seen,
    extract(epoch FROM s.last_seen_at)::float8 AS last_seen,
    (extract(epoch FROM s.last_seen_at) * 1000000)::int8 AS last_seen_us, s.event_count,
    s.landing_page, coalesce(s.utm_source, s.referrer_domain, '(direct)') AS source,
    s.referrer_domain, s.utm_source, s.utm_medium, s.utm_campaign, s.device_type, s.browser,
    s.os, s.chat_started, s.form_submitted";

/// A row of [`SESSION_COLUMNS`] (and, for `active`, the count of all).
#[derive(Deserialize)]
struct SessionRow {
    #[serde(default)]
    total: i64,
    session_id: String,
    person_id: Option<String>,
    first_seen: f64,
    last_seen: f64,
    last_seen_us: i64,
    event_count: i32,
    landing_page: Option<String>,
    source: Option<String>,
    referrer_domain: Option<String>,
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    device_type: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    chat_started: bool,
    form_submitted: bool,
}

fn session_json(r: &SessionRow, tz: Tz) -> Value {
    json!({
        "session_id": r.session_id, "visitor_id": r.person_id,
        "started_at": local(r.first_seen, tz), "last_seen_at": local(r.last_seen, tz),
        "duration_s": ((r.last_seen - r.first_seen) * 10.0).round() / 10.0,
        "events": r.event_count,
        "landing_page": r.landing_page, "source": r.source, "referrer_domain": r.referrer_domain,
        "utm_source": r.utm_source, "utm_medium": r.utm_medium, "utm_campaign": r.utm_campaign,
        "device_type": r.device_type, "browser": r.browser, "os": r.os,
        "chat_started": r.chat_started,
        "form_submitted": r.form_submitted,
    })
}

fn active(conn: &Db, client_id: &str, q: &Query, now: DateTime<Utc>) -> Result<Value, db::DbError> {
    let since = now - Duration::minutes(ACTIVE_WINDOW_MINUTES);
    let sql = format!(
        "SELECT count(*) OVER () AS total, {SESSION_COLUMNS}
           FROM widget_sessions s
          WHERE s.client_id = $1::text::uuid AND s.last_seen_at > to_timestamp($2::float8)
            AND NOT s.is_bot
          ORDER BY s.last_seen_at DESC, s.session_id DESC
          LIMIT $3::int4"
    );
    let rows: Vec<SessionRow> = conn.rows(
        &sql,
        &[
            text(client_id),
            ParameterValue::Floating64(since.timestamp_micros() as f64 / 1e6),
            ParameterValue::Int32(q.limit as i32),
        ],
    )?;
    let count = rows.first().map_or(0, |r| r.total);
    let sessions: Vec<Value> = rows.iter().map(|r| session_json(r, q.tz)).collect();
    Ok(json!({
        "client_id": client_id,
        "window_minutes": ACTIVE_WINDOW_MINUTES,
        "since": local(since.timestamp_micros() as f64 / 1e6, q.tz),
        "active_sessions": count,
        "sessions": sessions,
    }))
}

fn sessions(
    conn: &Db,
    client_id: &str,
    q: &Query,
    position: Option<Position>,
    secret: &str,
) -> Result<Value, db::DbError> {
    // Days cut in the caller's time zone: [from 00:00, to + 1 00:00) local.
    let start = q.start_of(q.from);
    let end = q.start_of(q.to + Duration::days(1));
    let sql = format!(
        "SELECT {SESSION_COLUMNS}
           FROM widget_sessions s
          WHERE s.client_id = $1::text::uuid
            AND s.last_seen_at >= to_timestamp($2::float8) AND s.last_seen_at < to_timestamp($3::float8)
            AND NOT s.is_bot
            AND ($4::text IS NULL OR s.device_type = $4::text)
            AND ($5::text IS NULL OR coalesce(s.utm_source, s.referrer_domain, '(direct)') = $5::text)
            AND ($6::int8 IS NULL
                 OR (s.last_seen_at, s.session_id)
                    < ('epoch'::timestamptz + $6::int8 * interval '1 microsecond', $7::text))
          ORDER BY s.last_seen_at DESC, s.session_id DESC
          LIMIT $8::int4"
    );
    let (after_us, after_id) = match &position {
        Some(p) => (ParameterValue::Int64(p.last_seen_us), text(&p.session_id)),
        None => (ParameterValue::DbNull, ParameterValue::DbNull),
    };
    let rows: Vec<SessionRow> = conn.rows(
        &sql,
        &[
            text(client_id),
            ParameterValue::Floating64(start.timestamp() as f64),
            ParameterValue::Floating64(end.timestamp() as f64),
            text_or_null(q.device.as_deref()),
            text_or_null(q.source.as_deref()),
            after_us,
            after_id,
            // One more than the page: whether there is a next page.
            ParameterValue::Int32(q.limit as i32 + 1),
        ],
    )?;
    let page = &rows[..rows.len().min(q.limit as usize)];
    let next = if rows.len() > q.limit as usize {
        page.last().map(|r| {
            cursor::sign(
                &Position {
                    last_seen_us: r.last_seen_us,
                    session_id: r.session_id.clone(),
                },
                client_id,
                secret,
            )
        })
    } else {
        None
    };
    Ok(json!({
        "client_id": client_id,
        "range": range_json(q),
        "filters": { "device": q.device, "source": q.source },
        "sessions": page.iter().map(|r| session_json(r, q.tz)).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}
