//! Spin's HTTP route matching: exact routes, `:name` parameters and trailing
//! `/...` wildcards; the most specific route wins whatever the manifest order
//! (segment by segment: exact beats parameter beats wildcard, then more
//! segments first). Trailing slashes are ignored.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Wildcard,
    Param(String),
    Exact(String),
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Segment::Wildcard => 0,
            Segment::Param(_) => 1,
            Segment::Exact(_) => 2,
        }
    }
}

/// One routed component.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route exactly as written in the manifest.
    pub raw: String,
    pub component: String,
    segments: Vec<Segment>,
}

/// What a request matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    /// `spin-matched-route`: the route as written, based at `/` (`""` for `/`).
    pub matched_route: String,
    /// `spin-raw-component-route`.
    pub raw_route: String,
    /// `spin-component-route`: the raw route without a trailing `/...`.
    pub component_route: String,
    /// `spin-path-info`: what the wildcard matched (`""` for exact routes).
    pub path_info: String,
    /// `spin-path-match-<name>` values.
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the router; on identical routes the last one wins, as in Spin.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Router> {
        let mut out: Vec<Route> = Vec::new();
        for (raw, component) in routes {
            let segments = parse(raw)?;
            out.retain(|r| r.segments != segments);
            out.push(Route {
                raw: raw.to_string(),
                component: component.to_string(),
                segments,
            });
        }
        Ok(Router { routes: out })
    }

    /// The best route for `path` (no query string), if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = split(path);
        // (route, its parameters, segments it consumed)
        type Candidate<'r> = (&'r Route, Vec<(String, String)>, usize);
        let mut best: Option<Candidate> = None;
        for route in &self.routes {
            let Some((params, consumed)) = matches(&route.segments, &parts) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((b, _, _)) => specificity(&route.segments) > specificity(&b.segments),
            };
            if better {
                best = Some((route, params, consumed));
            }
        }
        let (route, params, consumed) = best?;
        let wildcard = route.segments.last() == Some(&Segment::Wildcard);
        let path_info = if wildcard {
            remainder(path, consumed).to_string()
        } else {
            String::new()
        };
        let based = route.raw.trim_end_matches('/');
        let based = if based.starts_with('/') || based.is_empty() {
            based.to_string()
        } else {
            format!("/{based}")
        };
        Some(RouteMatch {
            component: route.component.clone(),
            matched_route: based,
            raw_route: route.raw.clone(),
            component_route: route
                .raw
                .strip_suffix("/...")
                .unwrap_or(&route.raw)
                .to_string(),
            path_info,
            params,
        })
    }
}

fn split(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse(raw: &str) -> Result<Vec<Segment>> {
    let parts = split(raw);
    let mut segments = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let segment = match *part {
            "..." | "*" if i == parts.len() - 1 => Segment::Wildcard,
            "..." | "*" => bail!("route {raw:?}: a wildcard may only end a route"),
            p if p.starts_with(':') && p.len() > 1 => Segment::Param(p[1..].to_string()),
            p => Segment::Exact(p.to_string()),
        };
        segments.push(segment);
    }
    Ok(segments)
}

/// Segment ranks in order, then length: compared lexicographically.
fn specificity(segments: &[Segment]) -> (Vec<u8>, usize) {
    (segments.iter().map(Segment::rank).collect(), segments.len())
}

fn matches(segments: &[Segment], parts: &[&str]) -> Option<(Vec<(String, String)>, usize)> {
    let mut params = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Wildcard => return Some((params, i)),
            Segment::Exact(e) => {
                if parts.get(i) != Some(&e.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => params.push((name.clone(), parts.get(i)?.to_string())),
        }
    }
    (parts.len() == segments.len()).then_some((params, segments.len()))
}

/// The part of `path` after its first `n` segments (keeps a trailing slash).
fn remainder(path: &str, n: usize) -> &str {
    let mut idx = 0;
    let bytes = path.as_bytes();
    for _ in 0..n {
        while idx < bytes.len() && bytes[idx] == b'/' {
            idx += 1;
        }
        while idx < bytes.len() && bytes[idx] != b'/' {
            idx += 1;
        }
    }
    &path[idx..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new([
            ("/...", "catch-all"),
            ("/api/...", "api"),
            ("/api/users", "users"),
            ("/api/users/:id", "user"),
            ("/healthz", "healthz"),
        ])
        .unwrap()
    }

    #[test]
    fn most_specific_wins_whatever_the_order() {
        let r = router();
        assert_eq!(r.route("/healthz").unwrap().component, "healthz");
        assert_eq!(r.route("/healthz/").unwrap().component, "healthz");
        assert_eq!(r.route("/api/users").unwrap().component, "users");
        assert_eq!(r.route("/api/users/7").unwrap().component, "user");
        assert_eq!(r.route("/api/users/7/x").unwrap().component, "api");
        assert_eq!(r.route("/api").unwrap().component, "api");
        assert_eq!(r.route("/apix").unwrap().component, "catch-all");
        assert_eq!(r.route("/").unwrap().component, "catch-all");
    }

    #[test]
    fn headers_values_follow_spin() {
        let r = router();
        let m = r.route("/api/a/b").unwrap();
        assert_eq!(m.path_info, "/a/b");
        assert_eq!(m.matched_route, "/api/...");
        assert_eq!(m.raw_route, "/api/...");
        assert_eq!(m.component_route, "/api");
        assert_eq!(r.route("/api").unwrap().path_info, "");
        assert_eq!(r.route("/api/").unwrap().path_info, "/");
        assert_eq!(r.route("/api/b/").unwrap().path_info, "/b/");
        assert_eq!(r.route("/healthz").unwrap().path_info, "");
        assert_eq!(
            r.route("/api/users/7").unwrap().params,
            vec![("id".to_string(), "7".to_string())]
        );
    }

    #[test]
    fn unmatched_and_last_duplicate_wins() {
        let r = Router::new([("/a", "one"), ("/b/...", "two"), ("/a", "three")]).unwrap();
        assert!(r.route("/c").is_none());
        assert!(r.route("/").is_none());
        assert_eq!(r.route("/a").unwrap().component, "three");
        let root = Router::new([("/", "root")]).unwrap();
        assert_eq!(root.route("/").unwrap().component, "root");
        assert_eq!(root.route("/").unwrap().matched_route, "");
        assert!(root.route("/x").is_none());
    }
}
