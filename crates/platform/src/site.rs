//! Which page hosts belong to a client: its `root_domain` and subdomains,
//! plus `localhost` for clients that allow it (test clients).

/// A client's site rules, from the `clients` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    pub root_domain: Option<String>,
    pub allow_localhost: bool,
}

impl Site {
    /// Whether a page or origin host belongs to the client.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.allow_localhost && is_local(&host) {
            return true;
        }
        match &self.root_domain {
            Some(root) => {
                let root = root.trim_end_matches('.').to_ascii_lowercase();
                !root.is_empty() && (host == root || host.ends_with(&format!(".{root}")))
            }
            None => false,
        }
    }

    /// Whether an `Origin` header value (`scheme://host[:port]`) belongs to the client.
    pub fn allows_origin(&self, origin: &str) -> bool {
        origin_host(origin).is_some_and(|h| self.allows_host(&h))
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "127.0.0.1"
        || host == "[::1]"
        || host == "::1"
}

/// The host of an `Origin` header value.
pub fn origin_host(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin).ok()?;
    url.host_str().map(|h| h.to_ascii_lowercase())
}

/// The domains a host could be registered under, most specific first:
/// `a.b.example.com` → `a.b.example.com`, `b.example.com`, `example.com`, `com`.
/// Lets a query find clients by `root_domain = ANY(...)` with an index.
pub fn candidate_roots(host: &str) -> Vec<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut out = vec![host.clone()];
    let mut rest = host.as_str();
    while let Some((_, tail)) = rest.split_once('.') {
        out.push(tail.to_string());
        rest = tail;
    }
    out
}

/// A client as a widget endpoint loaded it.
pub trait WidgetClient {
    fn enabled(&self) -> bool;
    fn site(&self) -> &Site;
}

/// The client a widget request is for, if it may go on: the client exists
/// (else 404 `unknown_client`), is enabled (else 403 `client_disabled`), and
/// the page's `Origin`, when the browser sent one, is its site (else 403
/// `origin_not_allowed`).
pub fn admit<C: WidgetClient>(
    client_id: &str,
    client: Option<C>,
    origin: Option<&str>,
) -> Result<C, crate::ApiError> {
    use crate::ApiError;
    let Some(client) = client else {
        return Err(
            ApiError::new(404, "unknown_client", format!("no client {client_id}"))
                .field("client_id"),
        );
    };
    if !client.enabled() {
        return Err(ApiError::new(
            403,
            "client_disabled",
            format!("client {client_id} is disabled"),
        )
        .field("client_id"));
    }
    match origin {
        Some(o) if !client.site().allows_origin(o) => Err(ApiError::new(
            403,
            "origin_not_allowed",
            format!("origin {o:?} is not the client's domain or a subdomain of it"),
        )),
        _ => Ok(client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_widget_request_needs_an_enabled_client_on_its_own_site() {
        let site = Site {
            root_domain: Some("shop.com".into()),
            allow_localhost: false,
        };
        struct C(bool, Site);
        impl WidgetClient for C {
            fn enabled(&self) -> bool {
                self.0
            }
            fn site(&self) -> &Site {
                &self.1
            }
        }
        let status = |enabled: Option<bool>, o: Option<&str>| {
            admit("c1", enabled.map(|e| C(e, site.clone())), o)
                .map(|_| ())
                .map_err(|e| (e.status, e.code))
        };
        assert_eq!(status(Some(true), Some("https://www.shop.com")), Ok(()));
        assert_eq!(status(Some(true), None), Ok(()));
        assert_eq!(status(None, None), Err((404, "unknown_client")));
        assert_eq!(status(Some(false), None), Err((403, "client_disabled")));
        assert_eq!(
            status(Some(true), Some("https://evil.com")),
            Err((403, "origin_not_allowed"))
        );
    }

    fn site(root: &str, localhost: bool) -> Site {
        Site {
            root_domain: Some(root.into()),
            allow_localhost: localhost,
        }
    }

    #[test]
    fn root_domain_and_subdomains_only() {
        let s = site("example.com", false);
        assert!(s.allows_host("example.com"));
        assert!(s.allows_host("www.example.com"));
        assert!(s.allows_host("A.B.Example.COM"));
        assert!(!s.allows_host("badexample.com"));
        assert!(!s.allows_host("example.com.evil.net"));
        assert!(!s.allows_host("localhost"));
        assert!(site("example.com", true).allows_host("localhost"));
        assert!(!Site::default().allows_host("example.com"));
    }

    #[test]
    fn origins() {
        let s = site("example.com", false);
        assert!(s.allows_origin("https://shop.example.com"));
        assert!(s.allows_origin("http://example.com:8080"));
        assert!(!s.allows_origin("https://evil.com"));
        assert!(!s.allows_origin("null"));
        assert_eq!(
            candidate_roots("a.b.example.com"),
            vec!["a.b.example.com", "b.example.com", "example.com", "com"]
        );
    }
}
