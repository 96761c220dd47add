//! The operator console (`/console/`): its static files, embedded at build
//! time from the workspace's `console/` folder (see `build.rs`), and the
//! policy they are served with. Plain Rust, tested natively; the `console`
//! component only translates Spin's request and response.
//!
//! - `GET`/`HEAD` only (else 405 with `Allow`); `/console` redirects to
//!   `/console/`, which is `index.html`.
//! - Content types by extension, text with `charset=utf-8`.
//! - A strong `ETag` per file (SHA-256 of its bytes, computed by the build);
//!   a matching `If-None-Match` answers 304 without a body.
//! - `Cache-Control: no-cache`: file names carry no fingerprint (there is no
//!   front-end build step), so a browser keeps each file and revalidates it
//!   on use — a 304 unless it changed.
//! - Every answer carries a strict `Content-Security-Policy` (no inline
//!   script or style, nothing from another origin, no framing) and the
//!   usual hardening headers.
//! - An unknown file is a 404 in the application's error shape.

use std::borrow::Cow;

/// One embedded file of `console/`.
#[derive(Debug)]
pub struct Asset {
    /// Path below `console/`, with `/` separators: `js/main.js`.
    pub path: &'static str,
    pub bytes: &'static [u8],
    /// Quoted strong entity tag, e.g. `"3f9a…"`.
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The policy of every answer: scripts, styles, images and API calls from
/// the application's own origin only (images also as `data:` URLs), nothing
/// else, and no page may frame the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Cache policy of the files: store, but revalidate (ETag) before each use.
pub const CACHE_CONTROL: &str = "no-cache";

const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// What the component passes in from Spin's request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request path (`/console/js/main.js`).
    pub path: &'a str,
    /// What the route's wildcard matched (`spin-path-info`): `""` for
    /// `/console`, `/` for `/console/`, `/js/main.js`.
    pub path_info: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    pub if_none_match: Option<&'a str>,
}

/// The answer: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Cow<'static, [u8]>,
}

impl Reply {
    /// The value of header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn new(status: u16, body: Cow<'static, [u8]>) -> Reply {
        let headers = SECURITY_HEADERS
            .iter()
            .map(|(n, v)| (*n, v.to_string()))
            .collect();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn error(status: u16, code: &str, message: &str) -> Reply {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        Reply::new(status, Cow::Owned(body.to_string().into_bytes()))
            .with("content-type", "application/json")
            .with("cache-control", "no-store")
    }
}

/// The content type served for a file name, by its extension; `None` for an
/// extension the console does not use (a test keeps `console/` free of them).
pub fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

/// The embedded file at `path` (below `console/`).
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Whether an `If-None-Match` value names `etag`: `*`, or any tag of the
/// comma-separated list compared weakly (a `W/` prefix is ignored), as
/// RFC 9110 §13.1.2 says for this header.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let etag = bare(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == etag)
}

/// Answers one request for the console.
pub fn serve(req: &Request) -> Reply {
    let head = match req.method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Reply::error(405, "method_not_allowed", "this route accepts GET, HEAD")
                .with("allow", "GET, HEAD")
        }
    };
    if req.path_info.is_empty() && !req.path.ends_with('/') {
        // `/console` → `/console/`, so the page's relative URLs resolve below it.
        let mut location = format!("/{}/", req.path.trim_matches('/'));
        if !req.query.is_empty() {
            location = format!("{location}?{}", req.query);
        }
        return Reply::new(308, Cow::Borrowed(&[]))
            .with("location", location)
            .with("cache-control", "no-store");
    }
    let name = match req.path_info.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let (Some(asset), Some(content_type)) = (find(name), content_type(name)) else {
        return Reply::error(
            404,
            "not_found",
            &format!("the console has no file {:?}", req.path_info),
        );
    };
    let fresh = req
        .if_none_match
        .is_some_and(|v| etag_matches(v, asset.etag));
    let reply = if fresh {
        Reply::new(304, Cow::Borrowed(&[]))
    } else {
        let body: &'static [u8] = if head { &[] } else { asset.bytes };
        Reply::new(200, Cow::Borrowed(body))
            .with("content-type", content_type)
            .with("content-length", asset.bytes.len().to_string())
    };
    reply
        .with("etag", asset.etag)
        .with("cache-control", CACHE_CONTROL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path_info: &str) -> Reply {
        serve(&Request {
            method: "GET",
            path: &format!("/console{path_info}"),
            path_info,
            ..Request::default()
        })
    }

    fn text(asset: &Asset) -> &'static str {
        std::str::from_utf8(asset.bytes).unwrap()
    }

    fn texts(ext: &str) -> Vec<(&'static str, &'static str)> {
        ASSETS
            .iter()
            .filter(|a| a.path.ends_with(ext))
            .map(|a| (a.path, text(a)))
            .collect()
    }

    #[test]
    fn the_index_is_served_at_the_root_with_every_header() {
        let r = get("/");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_ref(), find("index.html").unwrap().bytes);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            r.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY)
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("etag"), Some(find("index.html").unwrap().etag));
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert_eq!(get("/index.html").body, r.body);
    }

    #[test]
    fn the_policy_allows_nothing_inline_and_nothing_foreign() {
        let directives: Vec<&str> = CONTENT_SECURITY_POLICY.split("; ").collect();
        for d in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ] {
            assert!(directives.contains(&d), "{d} missing");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
    }

    #[test]
    fn the_bare_route_redirects_to_the_folder_keeping_the_query() {
        let r = serve(&Request {
            method: "GET",
            path: "/console",
            path_info: "",
            query: "x=1",
            if_none_match: None,
        });
        assert_eq!(r.status, 308);
        assert_eq!(r.header("location"), Some("/console/?x=1"));
        assert!(r.body.is_empty());
        let r = serve(&Request {
            method: "GET",
            path: "//evil.example/console",
            ..Request::default()
        });
        assert_eq!(
            r.header("location"),
            Some("/evil.example/console/"),
            "never a scheme-relative URL"
        );
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type("js/main.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("console.css"), Some("text/css; charset=utf-8"));
        assert_eq!(content_type("favicon.svg"), Some("image/svg+xml"));
        assert_eq!(content_type("A.PNG"), Some("image/png"));
        assert_eq!(content_type("notes.exe"), None);
        assert_eq!(content_type("README"), None);
        let css = get("/console.css");
        assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    }

    #[test]
    fn every_embedded_file_has_a_known_type_and_its_own_etag() {
        assert!(ASSETS.len() >= 5, "console/ was not embedded: {ASSETS:?}");
        let mut tags: Vec<&str> = ASSETS.iter().map(|a| a.etag).collect();
        for a in ASSETS {
            assert!(content_type(a.path).is_some(), "{} has no type", a.path);
            assert!(a.etag.starts_with('"') && a.etag.ends_with('"') && a.etag.len() == 26);
        }
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len(), "two files with the same tag");
    }

    #[test]
    fn a_matching_if_none_match_answers_304_without_a_body() {
        let asset = find("js/main.js").unwrap();
        let ask = |inm: &str| {
            serve(&Request {
                method: "GET",
                path: "/console/js/main.js",
                path_info: "/js/main.js",
                query: "",
                if_none_match: Some(inm),
            })
        };
        let r = ask(asset.etag);
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(asset.etag));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert_eq!(ask(&format!("\"x\", W/{}", asset.etag)).status, 304);
        assert_eq!(ask("*").status, 304);
        assert_eq!(ask("\"something-else\"").status, 200);
        assert_eq!(ask("").status, 200);
    }

    #[test]
    fn head_has_the_headers_without_the_body() {
        let r = serve(&Request {
            method: "HEAD",
            path: "/console/",
            path_info: "/",
            ..Request::default()
        });
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("content-length"),
            Some(find("index.html").unwrap().bytes.len().to_string().as_str())
        );
    }

    #[test]
    fn unknown_files_and_other_methods_are_json_errors() {
        for path in ["/nope.js", "/js/", "/../Cargo.toml", "/js/../index.html"] {
            let r = get(path);
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(r.header("content-type"), Some("application/json"));
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["error"]["code"], "not_found");
            assert!(v["error"]["message"].as_str().unwrap().contains(path));
            assert_eq!(
                r.header("content-security-policy"),
                Some(CONTENT_SECURITY_POLICY)
            );
        }
        let r = serve(&Request {
            method: "POST",
            path: "/console/",
            path_info: "/",
            ..Request::default()
        });
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "method_not_allowed");
    }

    /// The CSP would block inline code at run time; this finds it before.
    #[test]
    fn the_html_has_no_inline_script_style_or_handler() {
        for (path, html) in texts(".html") {
            let lower = html.to_ascii_lowercase();
            assert!(!lower.contains("<style"), "{path}: <style>");
            assert!(!lower.contains(" style="), "{path}: style attribute");
            assert!(!lower.contains("javascript:"), "{path}: javascript: URL");
            for (i, _) in lower.match_indices("<script") {
                let tag = &lower[i..i + lower[i..].find('>').unwrap()];
                assert!(tag.contains(" src="), "{path}: inline script {tag}");
            }
            let handler = lower
                .split(|c: char| c.is_whitespace())
                .find(|w| w.starts_with("on") && w.contains('='));
            assert!(handler.is_none(), "{path}: inline handler {handler:?}");
            assert!(!lower.contains("http://") && !lower.contains("https://"));
        }
    }

    /// API values reach the page as text only: no HTML parsing sinks, no
    /// inline styles, no eval, nothing fetched from another origin.
    #[test]
    fn the_scripts_use_no_html_sinks_eval_or_foreign_urls() {
        let scripts = texts(".js");
        assert!(scripts.len() >= 3);
        for (path, js) in scripts {
            // The SVG namespace is a name, not a fetched URL.
            let js = js.replace("'http://www.w3.org/2000/svg'", "SVG_NS");
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "setAttribute('style'",
                "http://",
                "https://",
            ] {
                assert!(!js.contains(sink), "{path} uses {sink}");
            }
        }
    }

    /// Every file a page or module refers to relatively is embedded.
    #[test]
    fn every_reference_resolves_to_an_embedded_file() {
        let mut refs: Vec<(String, String)> = Vec::new();
        for (path, html) in texts(".html") {
            for attr in ["src=\"", "href=\""] {
                for part in html.split(attr).skip(1) {
                    let target = &part[..part.find('"').unwrap()];
                    if !target.starts_with('#') && !target.starts_with("data:") {
                        refs.push((path.to_string(), target.to_string()));
                    }
                }
            }
        }
        for (path, js) in texts(".js") {
            let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            for part in js.split(" from '").skip(1) {
                let target = &part[..part.find('\'').unwrap()];
                let joined = if dir.is_empty() {
                    target.to_string()
                } else {
                    format!("{dir}/{target}")
                };
                refs.push((path.to_string(), joined));
            }
        }
        assert!(refs.len() > 5, "{refs:?}");
        for (from, target) in refs {
            let mut parts: Vec<&str> = Vec::new();
            for seg in target.split('/') {
                match seg {
                    "." | "" => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            let resolved = parts.join("/");
            assert!(
                find(&resolved).is_some(),
                "{from} refers to {target} ({resolved}), which is not in console/"
            );
        }
    }
}
