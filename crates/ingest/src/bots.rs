//! Whether a user agent is a bot: the crawler pattern list of the npm
//! package isbot (vendored in `data/isbot-patterns.txt` with its licence;
//! `scripts/refresh-bot-patterns <version>` updates it), plus what the issue
//! of this product names explicitly: an empty user agent, HTTP libraries and
//! headless automation. Compiled once per instance and only when a user agent
//! was not parsed before (parses are cached in `user_agents`).

use std::sync::OnceLock;

/// The isbot release the patterns come from (part of `device::PARSER`).
pub const PATTERNS_VERSION: &str = "isbot-5.2.3";

const PATTERNS: &str = include_str!("../data/isbot-patterns.txt");

/// HTTP libraries and headless automation, matched case-insensitively
/// anywhere in the user agent (some are in the list already; these are
/// named so that a list update cannot drop them).
pub const AUTOMATION_MARKERS: [&str; 15] = [
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "headlesschrome",
    "playwright",
    "puppeteer",
    "selenium",
    "phantomjs",
    "webdriver",
];

/// A JavaScript pattern as the Rust regex crates read it: in JavaScript a
/// `-` next to a class escape inside `[...]` (`[\w\d-.]`) is a literal
/// hyphen; here it must be escaped.
fn from_javascript(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let (mut in_class, mut after_class_escape) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next().unwrap_or_default();
                out.push('\\');
                out.push(next);
                after_class_escape = in_class && "wWdDsS".contains(next);
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '-' if in_class && (after_class_escape || chars.peek() == Some(&']')) => {
                out.push_str("\\-");
                after_class_escape = false;
                continue;
            }
            '-' if in_class && chars.peek() == Some(&'\\') => {
                // `-\w`: a range to a class escape is a literal hyphen too.
                let mut look = chars.clone();
                look.next();
                if look.peek().is_some_and(|n| "wWdDsS".contains(*n)) {
                    out.push_str("\\-");
                    continue;
                }
            }
            _ => {}
        }
        after_class_escape = false;
        out.push(c);
    }
    out
}

/// The list as two matchers: one regex for the patterns the `regex` crate
/// takes, `fancy-regex` for the few with look-around.
struct Matchers {
    plain: regex::Regex,
    lookaround: Vec<fancy_regex::Regex>,
}

fn matchers() -> &'static Matchers {
    static MATCHERS: OnceLock<Matchers> = OnceLock::new();
    MATCHERS.get_or_init(|| {
        let (with, without): (Vec<&str>, Vec<&str>) = PATTERNS
            .lines()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .partition(|p| p.contains("(?<") || p.contains("(?=") || p.contains("(?!"));
        let without: Vec<String> = without.iter().map(|p| from_javascript(p)).collect();
        let plain = format!("(?i)(?:{})", without.join("|"));
        Matchers {
            plain: regex::Regex::new(&plain).expect("the vendored isbot patterns compile"),
            lookaround: with
                .iter()
                .map(|p| {
                    fancy_regex::Regex::new(&format!("(?i){}", from_javascript(p)))
                        .expect("the vendored isbot patterns compile")
                })
                .collect(),
        }
    })
}

/// Whether `user_agent` is a crawler, an HTTP library or headless automation.
pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.trim();
    if ua.is_empty() {
        return true;
    }
    let lower = ua.to_ascii_lowercase();
    if AUTOMATION_MARKERS.iter().any(|m| lower.contains(m)) {
        return true;
    }
    let m = matchers();
    m.plain.is_match(ua) || m.lookaround.iter().any(|r| r.is_match(ua).unwrap_or(false))
}

/// No person sends more than this many widget events in one second.
pub const MAX_EVENTS_PER_SECOND: usize = 10;

/// Whether the (time-sorted) event times of one visitor's batch hold more
/// than [`MAX_EVENTS_PER_SECOND`] events within any one second: a script,
/// not a person clicking.
pub fn too_fast(sorted: &[chrono::DateTime<chrono::Utc>]) -> bool {
    let window = chrono::Duration::seconds(1);
    sorted
        .windows(MAX_EVENTS_PER_SECOND + 1)
        .any(|w| w[MAX_EVENTS_PER_SECOND] - w[0] < window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn corpus(name: &str) -> Vec<String> {
        let path = format!(
            "{}/../../tests/fixtures/user-agents/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn bots_of_a_public_crawler_corpus_are_flagged() {
        let crawlers = corpus("crawler-user-agents-1.60.0.txt");
        assert!(crawlers.len() > 2000);
        let missed: Vec<&String> = crawlers.iter().filter(|u| !is_bot(u)).collect();
        let rate = 1.0 - missed.len() as f64 / crawlers.len() as f64;
        assert!(rate >= 0.99, "{rate:.4} flagged; missed: {missed:#?}");
    }

    #[test]
    fn no_common_browser_is_flagged() {
        let browsers = corpus("top-user-agents-2.1.138.txt");
        assert!(browsers.len() >= 100);
        let flagged: Vec<&String> = browsers.iter().filter(|u| is_bot(u)).collect();
        assert!(flagged.is_empty(), "{flagged:#?}");
    }

    #[test]
    fn libraries_headless_browsers_and_empty_user_agents_are_bots() {
        for ua in [
            "",
            "   ",
            "curl/8.5.0",
            "Wget/1.21.4",
            "python-requests/2.32.3",
            "Python-urllib/3.11",
            "Go-http-client/2.0",
            "Java/17.0.8",
            "okhttp/4.12.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Playwright/1.45",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36; Selenium",
        ] {
            assert!(is_bot(ua), "{ua:?}");
        }
        assert!(!is_bot("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"));
    }

    #[test]
    fn javascript_hyphens_in_classes_are_escaped() {
        assert_eq!(from_javascript(r"[\w\d-.]+"), r"[\w\d\-.]+");
        assert_eq!(from_javascript(r"[a-z][\w-]+"), r"[a-z][\w\-]+");
        assert_eq!(from_javascript(r"a-b[-\w]"), r"a-b[\-\w]");
        assert!(matchers().plain.is_match("Googlebot/2.1"));
    }

    #[test]
    fn more_than_ten_events_in_one_second_is_not_a_person() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let at = |ms: i64| t0 + Duration::milliseconds(ms);
        let burst: Vec<_> = (0..11).map(|i| at(i * 90)).collect();
        assert!(too_fast(&burst));
        let steady: Vec<_> = (0..30).map(|i| at(i * 120)).collect();
        assert!(!too_fast(&steady));
        assert!(!too_fast(&burst[..10]));
    }
}
