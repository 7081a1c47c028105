//! Browser safety: what keeps a web page from using a skymeter server that it can reach
//! (above all one on the same machine that runs without tokens).
//!
//! - **Host.** A page on `evil.example` whose name is made to resolve to this server (DNS
//!   rebinding) is same-origin with itself, so the browser lets it read the answers; but
//!   its requests still carry `Host: evil.example`. Requests are refused (`421`) unless
//!   their `Host` is a loopback name, an IP address this server may be reached at, or
//!   listed in `allowed_hosts`. IP literals cannot be rebound, so they are safe to accept.
//! - **Origin.** A page on another origin can send "simple" cross-origin requests (forms,
//!   `fetch` with `text/plain`) without a CORS preflight; it cannot read the answer, but the
//!   request has its effect. State-changing requests (every method but GET, HEAD and
//!   OPTIONS) whose `Origin` is neither this server's own (same `Host`) nor one of
//!   `cors_origins`, or that the browser marks `Sec-Fetch-Site: cross-site`, are refused
//!   (`403`). Requests without either header (curl, agents, Grafana's backend, promtool)
//!   are not browsers' and pass.
//! - **Content type.** Every JSON-body POST must say it is JSON ([`crate::body`]), which a
//!   page cannot do cross-origin without a preflight that CORS then refuses.
//!
//! Hand-written rather than a tower-http layer: tower-http has no host or origin
//! allow-list for requests (its CORS layer only adds response headers).

use crate::config::ServerConfig;
use crate::error::ApiErr;
use crate::host::{split_authority, HostPattern};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the guard checks requests against.
#[derive(Debug, Clone)]
pub struct BrowserGuard {
    listen: SocketAddr,
    any_host: bool,
    allowed_hosts: Vec<HostPattern>,
    /// `cors_origins` as lowercase `scheme://authority`; `any_origin` for `*`.
    cors_origins: Vec<String>,
    any_origin: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Host(String),
    Origin(String),
    CrossSite,
}

impl BrowserGuard {
    pub fn new(config: &ServerConfig) -> BrowserGuard {
        BrowserGuard {
            listen: config.listen,
            any_host: config.allowed_hosts.iter().any(|h| h == "*"),
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h))
                .collect(),
            cors_origins: config
                .cors_origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            any_origin: config.cors_origins.iter().any(|o| o == "*"),
        }
    }

    /// Whether `host` (a `Host` header value) names this server.
    fn host_allowed(&self, host: &str) -> bool {
        if self.any_host {
            return true;
        }
        let Some((name, port)) = split_authority(host.trim()) else {
            return false;
        };
        if name == "localhost" {
            return true;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            let listen = self.listen.ip();
            if ip.is_loopback() || ip == listen || listen.is_unspecified() {
                return true;
            }
        }
        self.allowed_hosts.iter().any(|p| p.matches(&name, port))
    }

    fn origin_listed(&self, origin: &str) -> bool {
        self.any_origin || self.cors_origins.iter().any(|o| o == origin)
    }

    /// Checks one request's headers.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        // HTTP/1.1 requires Host; a request without one (HTTP/1.0) is no browser's.
        if let Some(host) = host {
            if !self.host_allowed(host) {
                return Err(Refusal::Host(host.to_string()));
            }
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let origin = headers
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_ascii_lowercase());
        let listed = origin.as_deref().is_some_and(|o| self.origin_listed(o));
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        if cross_site && !listed {
            return Err(Refusal::CrossSite);
        }
        if let Some(origin) = origin {
            if !listed && !same_origin(&origin, host) {
                return Err(Refusal::Origin(origin));
            }
        }
        Ok(())
    }
}

/// Whether `origin` (`scheme://authority`, lowercase) is the server's own: the same
/// authority as the request's `Host`, default ports aside.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `null` (sandboxed frames, file: pages) and anything else unreadable.
        return false;
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        a.strip_suffix(default_port)
            .map(str::to_string)
            .unwrap_or(a)
    };
    strip(authority) == strip(host.trim())
}

impl Refusal {
    fn into_api_err(self) -> ApiErr {
        match self {
            Refusal::Host(host) => ApiErr::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                format!(
                    "the request is addressed to host `{host}`, which is not this server's: \
                     add it to the server's `allowed_hosts` (config file) or \
                     `--allowed-host` (command line) if clients reach the server by that name"
                ),
            ),
            Refusal::Origin(origin) => ApiErr::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!(
                    "a web page on `{origin}` may not change anything on this server; add the \
                     origin to the server's `cors_origins` if it should"
                ),
            ),
            Refusal::CrossSite => ApiErr::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "the browser marks this request `Sec-Fetch-Site: cross-site`: a web page on \
                 another site may not change anything on this server; add its origin to the \
                 server's `cors_origins` if it should",
            ),
        }
    }
}

/// The middleware: refuses what [`BrowserGuard::check`] refuses.
pub async fn guard(State(g): State<Arc<BrowserGuard>>, req: Request, next: Next) -> Response {
    match g.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::debug!(?refusal, "request refused by the browser guard");
            refusal.into_api_err().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard_for(listen: &str, allowed: &[&str], cors: &[&str]) -> BrowserGuard {
        BrowserGuard::new(&ServerConfig {
            listen: listen.parse().unwrap(),
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
            cors_origins: cors.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_names_and_the_listen_address_are_hosts_of_this_server() {
        let g = guard_for("127.0.0.1:8080", &[], &[]);
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.2:9",
        ] {
            assert_eq!(
                g.check(&Method::GET, &headers(&[("host", host)])),
                Ok(()),
                "{host}"
            );
        }
        for host in [
            "evil.example.com",
            "evil.example.com:8080",
            "localhost.evil.example",
            "10.0.0.5:8080",
            "user@127.0.0.1",
            "",
        ] {
            assert_eq!(
                g.check(&Method::GET, &headers(&[("host", host)])),
                Err(Refusal::Host(host.into())),
                "{host}"
            );
        }
        // No Host at all: HTTP/1.0, not a browser.
        assert_eq!(g.check(&Method::GET, &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn allowed_hosts_add_names_with_or_without_port_and_star_allows_all() {
        let g = guard_for(
            "0.0.0.0:8080",
            &["skymeter.corp", "metrics.example:443", "[fd00::5]"],
            &[],
        );
        let ok = |h: &str| g.check(&Method::GET, &headers(&[("host", h)])).is_ok();
        assert!(ok("skymeter.corp:8080") && ok("SKYMETER.corp"));
        assert!(ok("metrics.example:443") && !ok("metrics.example:8443"));
        assert!(ok("[fd00::5]:8080"));
        // Listening on every address: any IP literal is the server's (and cannot be rebound).
        assert!(ok("10.1.2.3:8080"));
        assert!(!ok("other.corp"));
        let any = guard_for("127.0.0.1:8080", &["*"], &[]);
        assert!(any
            .check(&Method::GET, &headers(&[("host", "anything.example")]))
            .is_ok());
    }

    #[test]
    fn foreign_origins_and_cross_site_requests_cannot_change_state() {
        let g = guard_for("127.0.0.1:8080", &[], &["https://grafana.example.com"]);
        let check = |m: Method, pairs: &[(&'static str, &str)]| g.check(&m, &headers(pairs));
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(check(Method::POST, &[host]), Ok(()));
        assert_eq!(
            check(Method::POST, &[host, ("origin", "http://127.0.0.1:8080")]),
            Ok(())
        );
        assert_eq!(
            check(
                Method::POST,
                &[
                    host,
                    ("origin", "http://127.0.0.1:9999"),
                    ("sec-fetch-site", "same-site")
                ]
            ),
            Err(Refusal::Origin("http://127.0.0.1:9999".into()))
        );
        assert_eq!(
            check(Method::POST, &[host, ("origin", "null")]),
            Err(Refusal::Origin("null".into()))
        );
        assert_eq!(
            check(Method::POST, &[host, ("sec-fetch-site", "cross-site")]),
            Err(Refusal::CrossSite)
        );
        assert_eq!(
            check(
                Method::POST,
                &[
                    host,
                    ("origin", "https://grafana.example.com"),
                    ("sec-fetch-site", "cross-site")
                ]
            ),
            Ok(())
        );
        // Reads are not refused for their origin: CORS decides whether the page may read.
        assert_eq!(
            check(Method::GET, &[host, ("origin", "http://evil.example")]),
            Ok(())
        );
        // Default ports are the same origin.
        let g = guard_for("127.0.0.1:80", &["skymeter.corp"], &[]);
        assert_eq!(
            g.check(
                &Method::POST,
                &headers(&[
                    ("host", "skymeter.corp"),
                    ("origin", "http://skymeter.corp:80")
                ])
            ),
            Ok(())
        );
    }
}
