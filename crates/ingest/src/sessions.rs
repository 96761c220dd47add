//! Server-side sessionization, for batches that carry no `session_id`: a
//! visitor's session continues while events come less than the timeout apart
//! (30 minutes by default) and no different UTM campaign arrives (a campaign
//! on a session that had none counts as a change; pages without UTM
//! parameters continue the session); otherwise a new session starts.

use chrono::{DateTime, Duration, Utc};

/// The visitor's latest session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSession {
    pub id: String,
    pub last_seen: DateTime<Utc>,
    pub utm_campaign: Option<String>,
}

/// What sessionization needs of an event.
#[derive(Debug, Clone)]
pub struct Timed<'a> {
    pub at: DateTime<Utc>,
    pub utm_campaign: Option<&'a str>,
}

/// The session id of each event (in the order given, which must be by time),
/// continuing `last` where it can. `new_id` makes fresh ids.
pub fn assign(
    events: &[Timed<'_>],
    last: Option<LastSession>,
    timeout: Duration,
    mut new_id: impl FnMut() -> String,
) -> Vec<String> {
    let mut current = last;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let continues = current.as_ref().is_some_and(|s| {
            e.at - s.last_seen <= timeout
                && match e.utm_campaign {
                    // Arriving through a campaign link (again) starts a session,
                    // unless it is the session's own campaign.
                    Some(c) => s.utm_campaign.as_deref() == Some(c),
                    // Pages without UTM parameters continue the session.
                    None => true,
                }
        });
        let session = match current.take() {
            Some(mut s) if continues => {
                s.last_seen = s.last_seen.max(e.at);
                s
            }
            _ => LastSession {
                id: new_id(),
                last_seen: e.at,
                utm_campaign: e.utm_campaign.map(str::to_string),
            },
        };
        out.push(session.id.clone());
        current = Some(session);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + Duration::minutes(min)
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("s{n}")
        }
    }

    #[test]
    fn thirty_minutes_of_inactivity_starts_a_new_session() {
        let ev = |m| Timed {
            at: t(m),
            utm_campaign: None,
        };
        let got = assign(
            &[ev(0), ev(30), ev(61), ev(62)],
            None,
            Duration::minutes(30),
            ids(),
        );
        assert_eq!(got, vec!["s1", "s1", "s2", "s2"]);
    }

    #[test]
    fn continues_the_stored_session_within_the_timeout() {
        let last = LastSession {
            id: "old".into(),
            last_seen: t(0),
            utm_campaign: Some("a".into()),
        };
        let ev = |m, c| Timed {
            at: t(m),
            utm_campaign: c,
        };
        assert_eq!(
            assign(
                &[ev(29, None)],
                Some(last.clone()),
                Duration::minutes(30),
                ids()
            ),
            vec!["old"]
        );
        assert_eq!(
            assign(
                &[ev(31, None)],
                Some(last.clone()),
                Duration::minutes(30),
                ids()
            ),
            vec!["s1"]
        );
        // A late event (before last_seen) stays in the session.
        assert_eq!(
            assign(
                &[ev(-5, None)],
                Some(last.clone()),
                Duration::minutes(30),
                ids()
            ),
            vec!["old"]
        );
    }

    #[test]
    fn a_new_utm_campaign_starts_a_new_session() {
        let last = LastSession {
            id: "old".into(),
            last_seen: t(0),
            utm_campaign: Some("a".into()),
        };
        let ev = |m, c| Timed {
            at: t(m),
            utm_campaign: c,
        };
        let got = assign(
            &[
                ev(1, Some("a")),
                ev(2, Some("b")),
                ev(3, None),
                ev(4, Some("b")),
            ],
            Some(last),
            Duration::minutes(30),
            ids(),
        );
        assert_eq!(got, vec!["old", "s1", "s1", "s1"]);
        let plain = LastSession {
            id: "plain".into(),
            last_seen: t(0),
            utm_campaign: None,
        };
        let got = assign(
            &[ev(1, None), ev(2, Some("a")), ev(3, None)],
            Some(plain),
            Duration::minutes(30),
            ids(),
        );
        assert_eq!(got, vec!["plain", "s1", "s1"]);
    }
}
