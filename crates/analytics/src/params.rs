//! The read API's query parameters, validated before anything reaches SQL:
//! `from`, `to` (dates, inclusive), `tz` (IANA name), `limit`, for `trends`
//! the `interval`, and for `sessions` the filters `device`, `source` and the
//! `cursor`. Each error
//! names the parameter at fault.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use platform::query::Params;
use platform::ApiError;

/// The widest range one request may ask for, in days.
pub const MAX_RANGE_DAYS: i64 = 400;
/// The range when neither `from` nor `to` is given: the last 30 days.
pub const DEFAULT_RANGE_DAYS: i64 = 30;
/// `limit` is 1..=MAX_LIMIT.
pub const MAX_LIMIT: i64 = 100;
pub const DEFAULT_LIMIT: i64 = 20;
const MAX_SOURCE_CHARS: usize = 200;
const MAX_CURSOR_CHARS: usize = 512;

/// The read endpoints under `/admin/analytics/{client_id}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Summary,
    Trends,
    Events,
    Active,
    Sessions,
    TrafficSources,
    Devices,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Summary,
        Endpoint::Trends,
        Endpoint::Events,
        Endpoint::Active,
        Endpoint::Sessions,
        Endpoint::TrafficSources,
        Endpoint::Devices,
    ];

    /// The endpoint whose last path segment is `name`.
    pub fn parse(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The last path segment of the endpoint.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Summary => "summary",
            Endpoint::Trends => "trends",
            Endpoint::Events => "events",
            Endpoint::Active => "active",
            Endpoint::Sessions => "sessions",
            Endpoint::TrafficSources => "traffic-sources",
            Endpoint::Devices => "devices",
        }
    }

    /// The query parameters this endpoint accepts; any other is refused.
    pub fn accepts(self) -> &'static [&'static str] {
        match self {
            Endpoint::Summary => &["from", "to", "tz"],
            Endpoint::Trends => &["from", "to", "tz", "interval"],
            Endpoint::Events | Endpoint::TrafficSources | Endpoint::Devices => {
                &["from", "to", "tz", "limit"]
            }
            Endpoint::Active => &["tz", "limit"],
            Endpoint::Sessions => &["from", "to", "tz", "limit", "device", "source", "cursor"],
        }
    }

    /// Whether the endpoint reads the daily rollups, whose days are cut in
    /// the client's reporting time zone (the others read session rows, which
    /// any time zone can cut).
    pub fn reads_rollups(self) -> bool {
        !matches!(self, Endpoint::Active | Endpoint::Sessions)
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", field, message)
}

/// The buckets of `trends`: days, ISO weeks (Monday to Sunday) or calendar
/// months, each cut to the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn name(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// The validated query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: Tz,
    pub limit: i64,
    pub interval: Interval,
    pub device: Option<String>,
    pub source: Option<String>,
    pub cursor: Option<String>,
}

impl Query {
    /// `from`..`to` as days: to − from + 1.
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The range of the same length just before this one (for comparisons).
    pub fn previous(&self) -> (NaiveDate, NaiveDate) {
        let n = self.days();
        (self.from - Duration::days(n), self.from - Duration::days(1))
    }

    /// The first day of each `trends` bucket of the range, ascending: every
    /// day, or `from` then each Monday (ISO weeks) or each 1st of a month
    /// after it. A bucket ends the day before the next one starts, the last
    /// one on `to`.
    pub fn bucket_starts(&self) -> Vec<NaiveDate> {
        self.from
            .iter_days()
            .take_while(|d| *d <= self.to)
            .filter(|d| {
                *d == self.from
                    || match self.interval {
                        Interval::Day => true,
                        Interval::Week => d.weekday() == chrono::Weekday::Mon,
                        Interval::Month => d.day() == 1,
                    }
            })
            .collect()
    }

    /// Midnight of `date` in `tz` as a UTC instant (the earliest one when a
    /// DST change makes midnight ambiguous; the first instant of the day when
    /// it skips midnight).
    pub fn start_of(&self, date: NaiveDate) -> DateTime<Utc> {
        start_of_day(date, self.tz)
    }
}

/// Midnight of `date` in `tz` as a UTC instant.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut local = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    // A zone that skips midnight (DST at 00:00) starts the day later.
    for _ in 0..4 {
        if let Some(t) = local.and_local_timezone(tz).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(30);
    }
    local.and_utc()
}

/// The earliest date the read API takes: no client has data before it, and
/// the database's date arithmetic has bounds far beyond.
pub fn earliest_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date")
}

fn parse_date(field: &str, value: &str) -> Result<NaiveDate, ApiError> {
    let bad = || {
        invalid(
            field,
            format!("{field} {value:?} is not a date (YYYY-MM-DD)"),
        )
    };
    if value.len() != 10 {
        return Err(bad());
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad())?;
    if date < earliest_date() {
        return Err(invalid(
            field,
            format!("{field} {value} is before {}", earliest_date()),
        ));
    }
    Ok(date)
}

/// Whether `a` and `b` start every day of `from..=to` (and the day after) at
/// the same instant: then days cut in either are the same days.
pub fn same_days(a: Tz, b: Tz, from: NaiveDate, to: NaiveDate) -> bool {
    a == b
        || from
            .iter_days()
            .take_while(|d| *d <= to + Duration::days(1))
            .all(|d| start_of_day(d, a) == start_of_day(d, b))
}

/// Validates the query string of `endpoint` as of `now`, for a client whose
/// reporting time zone is `client_tz` (the default `tz`; the only one, up to
/// identical day cuts, that endpoints reading rollups accept).
pub fn parse(
    endpoint: Endpoint,
    raw: &str,
    now: DateTime<Utc>,
    client_tz: Tz,
) -> Result<Query, ApiError> {
    let params = Params::parse(raw, endpoint.accepts())?;
    let get = |name: &str| params.get(name);

    let tz = match get("tz") {
        None => client_tz,
        Some(name) => Tz::from_str(name)
            .map_err(|_| invalid("tz", format!("tz {name:?} is not an IANA time zone name")))?,
    };
    let today = now.with_timezone(&tz).date_naive();
    let to = get("to").map(|v| parse_date("to", v)).transpose()?;
    let from = get("from").map(|v| parse_date("from", v)).transpose()?;
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, today),
        (None, Some(t)) => (t - Duration::days(DEFAULT_RANGE_DAYS - 1), t),
        (None, None) => (today - Duration::days(DEFAULT_RANGE_DAYS - 1), today),
    };
    if to > today {
        return Err(invalid(
            "to",
            format!("to {to} is after today ({today} in {tz})"),
        ));
    }
    if from > to {
        return Err(invalid("from", format!("from {from} is after to {to}")));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_RANGE_DAYS {
        return Err(invalid(
            "from",
            format!("the range {from}..{to} spans {days} days; at most {MAX_RANGE_DAYS}"),
        ));
    }
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "limit",
                    format!("limit {v:?} must be a whole number from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let device = match get("device") {
        None => None,
        Some(v)
            if !v.is_empty()
                && v.len() <= 32
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Some(v.to_string())
        }
        Some(v) => {
            return Err(invalid(
                "device",
                format!("device {v:?} must be a device type such as desktop, mobile, tablet"),
            ))
        }
    };
    let source = match get("source") {
        None => None,
        Some(v) if !v.is_empty() && v.chars().count() <= MAX_SOURCE_CHARS => Some(v.to_string()),
        Some(_) => {
            return Err(invalid(
                "source",
                format!("source must be 1 to {MAX_SOURCE_CHARS} characters"),
            ))
        }
    };
    let interval = match get("interval") {
        None | Some("day") => Interval::Day,
        Some("week") => Interval::Week,
        Some("month") => Interval::Month,
        Some(v) => {
            return Err(invalid(
                "interval",
                format!("interval {v:?} must be day, week or month"),
            ))
        }
    };
    let cursor = match get("cursor") {
        None => None,
        Some(v) if !v.is_empty() && v.len() <= MAX_CURSOR_CHARS => Some(v.to_string()),
        Some(_) => return Err(invalid("cursor", "cursor is not one this API issued")),
    };
    let q = Query {
        from,
        to,
        tz,
        limit,
        interval,
        device,
        source,
        cursor,
    };
    // The summary also reads the range before.
    let first = if endpoint == Endpoint::Summary {
        q.previous().0
    } else {
        q.from
    };
    if endpoint.reads_rollups() && !same_days(tz, client_tz, first, to) {
        return Err(invalid(
            "tz",
            format!(
                "this client's figures are rolled up by day in its reporting time zone {client_tz}, \
                 and {tz} cuts these days differently; omit tz or pass {client_tz} \
                 (sessions and active accept any time zone)"
            ),
        ));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 3, 30, 0).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn err(endpoint: Endpoint, q: &str) -> String {
        parse(endpoint, q, now(), Tz::UTC)
            .unwrap_err()
            .field
            .unwrap_or_default()
    }

    #[test]
    fn trends_take_an_interval_and_only_trends_do() {
        let q = |s: &str| parse(Endpoint::Trends, s, now(), Tz::UTC);
        assert_eq!(q("").unwrap().interval, Interval::Day);
        assert_eq!(q("interval=week").unwrap().interval, Interval::Week);
        assert_eq!(q("interval=month").unwrap().interval, Interval::Month);
        assert_eq!(err(Endpoint::Trends, "interval=year"), "interval");
        assert_eq!(err(Endpoint::Summary, "interval=week"), "interval");
    }

    #[test]
    fn defaults_are_the_last_30_days_in_utc() {
        let q = parse(Endpoint::Summary, "", now(), Tz::UTC).unwrap();
        assert_eq!((q.from, q.to), (date("2026-10-24"), date("2026-11-22")));
        assert_eq!(q.days(), 30);
        assert_eq!(q.previous(), (date("2026-09-24"), date("2026-10-23")));
        assert_eq!(q.limit, DEFAULT_LIMIT);
    }

    #[test]
    fn a_day_starts_at_the_first_instant_of_its_date() {
        // The Azores turn clocks back from 01:00 to 00:00: midnight twice.
        let azores = Tz::Atlantic__Azores;
        assert_eq!(
            start_of_day(date("2025-10-26"), azores),
            Utc.with_ymd_and_hms(2025, 10, 26, 0, 0, 0).unwrap()
        );
        assert_eq!(
            start_of_day(date("2025-10-27"), azores),
            Utc.with_ymd_and_hms(2025, 10, 27, 1, 0, 0).unwrap()
        );
        // Santiago skips midnight (00:00 → 01:00): the day starts at 01:00.
        assert_eq!(
            start_of_day(date("2025-09-07"), Tz::America__Santiago),
            Utc.with_ymd_and_hms(2025, 9, 7, 4, 0, 0).unwrap()
        );
    }

    #[test]
    fn today_is_the_date_in_the_time_zone() {
        // 03:30 UTC is still the 21st in New York: the 22nd is in the future there.
        let ny = Tz::America__New_York;
        let q = parse(Endpoint::Trends, "", now(), ny).unwrap();
        assert_eq!((q.tz, q.to), (ny, date("2026-11-21")));
        let q = parse(Endpoint::Sessions, "tz=America%2FNew_York", now(), Tz::UTC).unwrap();
        assert_eq!(q.to, date("2026-11-21"));
        let e = parse(Endpoint::Trends, "to=2026-11-22", now(), ny).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("to"));
        let q = parse(Endpoint::Sessions, "tz=Asia/Tokyo&to=2026-11-22", now(), ny).unwrap();
        assert_eq!(
            q.start_of(q.to),
            Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap()
        );
    }

    #[test]
    fn rollup_endpoints_cut_days_in_the_clients_zone_only() {
        let paris = Tz::Europe__Paris;
        for e in [
            Endpoint::Summary,
            Endpoint::Trends,
            Endpoint::Events,
            Endpoint::TrafficSources,
            Endpoint::Devices,
        ] {
            assert_eq!(parse(e, "", now(), paris).unwrap().tz, paris);
            assert!(parse(e, "tz=Europe/Paris", now(), paris).is_ok());
            // Berlin has cut days at the same instants as Paris for decades.
            assert!(parse(e, "tz=Europe/Berlin", now(), paris).is_ok());
            let err = parse(e, "tz=Europe/London", now(), paris).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("tz"), "{e:?}");
            assert!(err.message.contains("Europe/Paris"), "{}", err.message);
            assert_eq!(
                parse(e, "tz=UTC", now(), paris)
                    .unwrap_err()
                    .field
                    .as_deref(),
                Some("tz")
            );
        }
        for e in [Endpoint::Sessions, Endpoint::Active] {
            assert_eq!(
                parse(e, "tz=Asia/Tokyo", now(), paris).unwrap().tz,
                Tz::Asia__Tokyo
            );
        }
        // Zones that agree over the range but not over the range before it.
        // Europe/Moscow and Europe/Istanbul are both UTC+3 since 2016; in 2014
        // Moscow was UTC+4 until October and Istanbul had summer time.
        let moscow = Tz::Europe__Moscow;
        assert!(parse(
            Endpoint::Trends,
            "tz=Europe/Istanbul&from=2017-01-01&to=2017-12-31",
            now(),
            moscow
        )
        .is_ok());
        // The summary also compares with the range before: 2016 for 2017.
        assert_eq!(
            parse(
                Endpoint::Summary,
                "tz=Europe/Istanbul&from=2017-01-01&to=2017-12-31",
                now(),
                moscow
            )
            .unwrap_err()
            .field
            .as_deref(),
            Some("tz")
        );
        assert!(parse(
            Endpoint::Summary,
            "tz=Europe/Istanbul&from=2018-01-01&to=2018-12-31",
            now(),
            moscow
        )
        .is_ok());
        assert!(same_days(
            paris,
            Tz::Europe__Berlin,
            date("2026-01-01"),
            date("2026-12-31")
        ));
        assert!(!same_days(
            paris,
            Tz::Europe__London,
            date("2026-01-01"),
            date("2026-01-01")
        ));
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let e = Endpoint::Sessions;
        assert_eq!(err(e, "from=2026-11-10&to=2026-11-01"), "from");
        assert_eq!(err(e, "from=2025-01-01&to=2026-11-01"), "from");
        assert!(parse(e, "from=2025-10-19&to=2026-11-22", now(), Tz::UTC).is_ok()); // 400 days
        assert_eq!(err(e, "from=2025-10-18&to=2026-11-22"), "from"); // 401 days
        assert_eq!(err(e, "from=2026-13-01"), "from");
        assert_eq!(err(e, "from=2026-1-01"), "from");
        assert_eq!(err(e, "to=yesterday"), "to");
        assert_eq!(err(e, "to=0001-01-01"), "to");
        assert_eq!(err(e, "from=1999-12-31"), "from");
        assert_eq!(err(e, "tz=Mars/Olympus"), "tz");
        assert_eq!(err(e, "tz=%ZZ"), "tz");
        assert_eq!(err(e, "limit=0"), "limit");
        assert_eq!(err(e, "limit=101"), "limit");
        assert_eq!(err(e, "limit=ten"), "limit");
        assert_eq!(err(e, "device=Desktop;DROP"), "device");
        // An empty value is the parameter left out, on every endpoint.
        assert!(parse(e, "source=&cursor=", now(), Tz::UTC).is_ok());
        assert_eq!(err(e, "limit=5&limit=6"), "limit");
        assert_eq!(err(e, "sort=asc"), "sort");
        assert_eq!(err(Endpoint::Summary, "limit=5"), "limit");
        assert_eq!(err(Endpoint::Active, "from=2026-11-01"), "from");
    }

    #[test]
    fn filters_are_decoded() {
        let q = parse(
            Endpoint::Sessions,
            "device=mobile&source=news+letter%2Fx&limit=100",
            now(),
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(q.device.as_deref(), Some("mobile"));
        assert_eq!(q.source.as_deref(), Some("news letter/x"));
        assert_eq!(q.limit, 100);
    }

    #[test]
    fn endpoints_are_named_by_their_last_segment() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::parse(e.name()), Some(e));
        }
        assert_eq!(Endpoint::parse("rollup"), None);
    }

    #[test]
    fn trends_buckets_are_days_iso_weeks_or_months_cut_to_the_range() {
        let starts = |query: &str| {
            let now = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
            parse(Endpoint::Trends, query, now, Tz::UTC)
                .unwrap()
                .bucket_starts()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            starts("from=2026-11-28&to=2026-12-01"),
            ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]
        );
        // 2026-11-30 and 2026-12-07 are Mondays.
        assert_eq!(
            starts("from=2026-11-28&to=2026-12-06&interval=week"),
            ["2026-11-28", "2026-11-30"]
        );
        assert_eq!(
            starts("from=2026-10-15&to=2026-12-06&interval=month"),
            ["2026-10-15", "2026-11-01", "2026-12-01"]
        );
        assert_eq!(
            starts("from=2026-12-01&to=2026-12-01&interval=month"),
            ["2026-12-01"]
        );
    }
}
