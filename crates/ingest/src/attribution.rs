//! Traffic attribution from the page URL and the referrer: UTM parameters,
//! click ids (`gclid`, `fbclid`, and Meta's `fbc` cookie format built from
//! `fbclid`), the page's domain and the referrer's domain.

use serde::Serialize;
use url::Url;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attribution {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub gclid: Option<String>,
    pub fbclid: Option<String>,
    /// `fb.1.<ms>.<fbclid>`: what Meta's pixel would have set as the `_fbc` cookie.
    pub fbc: Option<String>,
}

/// UTM parameters and click ids in `page`'s query; `event_ms` stamps `fbc`.
pub fn from_page(page: &Url, event_ms: i64) -> Attribution {
    let mut a = Attribution::default();
    for (k, v) in page.query_pairs() {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let v = Some(truncate(v, 500));
        match k.as_ref() {
            "utm_source" => a.utm_source = v,
            "utm_medium" => a.utm_medium = v,
            "utm_campaign" => a.utm_campaign = v,
            "utm_term" => a.utm_term = v,
            "utm_content" => a.utm_content = v,
            "gclid" => a.gclid = v,
            "fbclid" => a.fbclid = v,
            _ => {}
        }
    }
    a.fbc = a.fbclid.as_ref().map(|id| format!("fb.1.{event_ms}.{id}"));
    a
}

/// The host of a URL, lower-case, without a leading `www.`.
pub fn domain(url: &Url) -> Option<String> {
    url.host_str()
        .map(|h| h.to_ascii_lowercase())
        .map(|h| h.strip_prefix("www.").map(str::to_string).unwrap_or(h))
}

/// The referrer's domain, if the referrer is an http(s) URL.
pub fn referrer_domain(referrer: &str) -> Option<String> {
    let url = Url::parse(referrer).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    domain(&url)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_and_click_ids() {
        let url = Url::parse("https://www.shop.com/p?utm_source=google&utm_medium=cpc&utm_campaign=Spring%20Sale&utm_term=&gclid=abc&fbclid=IwAR1").unwrap();
        let a = from_page(&url, 1_700_000_000_123);
        assert_eq!(a.utm_source.as_deref(), Some("google"));
        assert_eq!(a.utm_medium.as_deref(), Some("cpc"));
        assert_eq!(a.utm_campaign.as_deref(), Some("Spring Sale"));
        assert_eq!(a.utm_term, None);
        assert_eq!(a.gclid.as_deref(), Some("abc"));
        assert_eq!(a.fbc.as_deref(), Some("fb.1.1700000000123.IwAR1"));
        assert_eq!(domain(&url).as_deref(), Some("shop.com"));
    }

    #[test]
    fn referrers() {
        assert_eq!(
            referrer_domain("https://www.Google.com/search?q=x").as_deref(),
            Some("google.com")
        );
        assert_eq!(referrer_domain("android-app://com.google"), None);
        assert_eq!(referrer_domain("not a url"), None);
    }
}
