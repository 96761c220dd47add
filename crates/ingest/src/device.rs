//! Device, browser and OS from the user agent, with woothee (a maintained
//! cross-language UA parser with compiled-in rules: no data file to load per
//! request). Tablets are told apart from phones, and bots are flagged.

use serde::Serialize;

/// Names the parser (and rules) whose results are cached in `user_agents`;
/// change it when the parsing changes, and cached rows are parsed again.
pub const PARSER: &str = "woothee-0.13+isbot-5.2.3/2";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device_type: String,
    pub browser: Option<String>,
    pub browser_version: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub is_bot: bool,
}

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != "UNKNOWN").then(|| s.to_string())
}

pub fn parse_user_agent(ua: &str) -> Device {
    let lower = ua.to_ascii_lowercase();
    let parsed = woothee::parser::Parser::new().parse(ua);
    let category = parsed.as_ref().map(|r| r.category).unwrap_or("UNKNOWN");
    let is_bot = category == "crawler" || crate::bots::is_bot(ua);
    let tablet = lower.contains("ipad")
        || lower.contains("tablet")
        || (lower.contains("android") && !lower.contains("mobile"));
    let device_type = if is_bot {
        "bot"
    } else {
        match category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" if tablet => "tablet",
            "smartphone" | "mobilephone" => "mobile",
            _ => "other",
        }
    };
    Device {
        device_type: device_type.to_string(),
        browser: parsed.as_ref().and_then(|r| known(r.name)),
        browser_version: parsed.as_ref().and_then(|r| known(r.version)),
        os: parsed.as_ref().and_then(|r| known(r.os)),
        os_version: parsed.as_ref().and_then(|r| known(&r.os_version)),
        is_bot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_mobile_tablet_bot() {
        let d = parse_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        assert_eq!(
            (
                d.device_type.as_str(),
                d.browser.as_deref(),
                d.os.as_deref(),
                d.is_bot
            ),
            ("desktop", Some("Chrome"), Some("Windows 10"), false)
        );
        assert_eq!(d.browser_version.as_deref(), Some("120.0.0.0"));
        let m = parse_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(
            (
                m.device_type.as_str(),
                m.browser.as_deref(),
                m.os.as_deref()
            ),
            ("mobile", Some("Safari"), Some("iPhone"))
        );
        let t = parse_user_agent("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1");
        assert_eq!(t.device_type, "tablet");
        let b = parse_user_agent(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        );
        assert_eq!((b.device_type.as_str(), b.is_bot), ("bot", true));
        let h = parse_user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36");
        assert!(h.is_bot);
        // No user agent at all: not a browser (docs/API.md, what counts as a bot).
        assert_eq!(parse_user_agent("").device_type, "bot");
    }
}
