//! The built-in web UI: plain JavaScript modules, CSS and SVG compiled into the binary and
//! served at `/` (the app) and `/ui/{path}` (its files). They hold no data: every figure on
//! the pages comes from the REST API, with the same tokens as any other client, so these
//! routes are public.
//!
//! Caching: each file's URL carries its content hash (`/ui/app.js?v=<hash>`); a request
//! with the current hash may be cached for a year, since a new build gives new URLs.
//! Modules import each other by plain relative paths (`./chart.js`), and an import map in
//! `index.html` rewrites those to the hashed URLs, so nothing needs a build step. Every
//! answer has a (weak, as the compression layer may re-encode the body) ETag and honours
//! `If-None-Match`; `index.html` itself is `no-cache`, so a new build is seen at once.
//!
//! A content security policy allows only this server: scripts from here plus the one
//! inline import map (by its SHA-256), styles and `fetch` to this origin, nothing else.

use crate::apidoc::{string, Op, Schemas};
use crate::error::ApiErr;
use crate::state::RouteSpec;
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// One embedded file of the UI.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!("../assets/ui/", $path)),
        }
    };
}

/// Every file under `/ui/`. A test checks that this list and `assets/ui/` agree.
const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("nav.js", JS),
    asset!("dom.js", JS),
    asset!("chart.js", JS),
    asset!("inventory.js", JS),
    asset!("resource.js", JS),
    asset!("costs.js", JS),
    asset!("savings.js", JS),
    asset!("rating.js", JS),
    asset!("agents.js", JS),
    asset!("app.css", CSS),
    asset!("icon.svg", SVG),
];

/// `index.html` with `{{name}}` placeholders for hashed URLs, `{{importmap}}` and
/// `{{modulepreload}}`.
const INDEX_TEMPLATE: &str = include_str!("../assets/ui/index.html");

/// A year: the longest lifetime caches honour; hashed URLs never change content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Built {
    /// First 16 hex digits of the SHA-256 of the body.
    hash: String,
    etag: HeaderValue,
}

struct Ui {
    assets: Vec<Built>,
    index: String,
    index_etag: HeaderValue,
    csp: HeaderValue,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex16(digest: &[u8; 32]) -> String {
    let mut s = String::with_capacity(16);
    for b in &digest[..8] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn weak_etag(hash: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("W/\"{hash}\"")).expect("hex is a valid header value")
}

fn ui() -> &'static Ui {
    static UI: OnceLock<Ui> = OnceLock::new();
    UI.get_or_init(build)
}

fn hashed_url(a: &Asset, b: &Built) -> String {
    format!("/ui/{}?v={}", a.path, b.hash)
}

fn build() -> Ui {
    let assets: Vec<Built> = ASSETS
        .iter()
        .map(|a| {
            let hash = hex16(&sha256(a.body));
            let etag = weak_etag(&hash);
            Built { hash, etag }
        })
        .collect();
    let mut imports = serde_json::Map::new();
    let mut preload = String::new();
    let mut index = INDEX_TEMPLATE.to_string();
    for (a, b) in ASSETS.iter().zip(&assets) {
        let url = hashed_url(a, b);
        index = index.replace(&format!("{{{{{}}}}}", a.path), &url);
        if a.content_type == JS {
            imports.insert(format!("/ui/{}", a.path), url.clone().into());
            let _ = writeln!(preload, "<link rel=\"modulepreload\" href=\"{url}\">");
        }
    }
    let import_map = serde_json::to_string(&serde_json::json!({ "imports": imports }))
        .expect("a map of strings serializes");
    index = index
        .replace("{{importmap}}", &import_map)
        .replace("{{modulepreload}}\n", &preload);
    assert!(
        !index.contains("{{"),
        "assets/ui/index.html names a file that is not in ui::ASSETS: {}",
        &index[index.find("{{").unwrap_or(0)..][..40.min(index.len())]
    );
    // The import map is the page's only inline script; the policy allows it by its hash.
    let map_hash = base64::engine::general_purpose::STANDARD.encode(sha256(import_map.as_bytes()));
    let csp = format!(
        "default-src 'none'; script-src 'self' 'sha256-{map_hash}'; style-src 'self'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let index_etag = weak_etag(&hex16(&sha256(index.as_bytes())));
    Ui {
        assets,
        index,
        index_etag,
        csp: HeaderValue::from_str(&csp).expect("the policy is ASCII"),
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 says for it).
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(etag) = etag.to_str().ok() else {
        return false;
    };
    let bare = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == bare)
}

fn respond(
    headers: &HeaderMap,
    content_type: &'static str,
    body: &'static [u8],
    etag: &HeaderValue,
    cache: &'static str,
) -> Response {
    let common: [(HeaderName, HeaderValue); 4] = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::CONTENT_SECURITY_POLICY, ui().csp.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// `GET /`: the app's page.
pub async fn index(headers: HeaderMap) -> Response {
    let ui = ui();
    respond(
        &headers,
        "text/html; charset=utf-8",
        ui.index.as_bytes(),
        &ui.index_etag,
        "no-cache",
    )
}

/// `GET /ui/{*path}`: one of the app's files.
pub async fn asset(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ui = ui();
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        return ApiErr::not_found(format!(
            "no UI file `/ui/{path}`; the UI is at / and its files are: {}",
            names.join(", ")
        ))
        .into_response();
    };
    let (a, b) = (&ASSETS[i], &ui.assets[i]);
    // Only a URL with this build's hash may be kept for good: an old page asking for its
    // own version of a file gets today's, revalidated every time.
    let current = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv.strip_prefix("v=") == Some(b.hash.as_str()));
    let cache = if current { IMMUTABLE } else { "no-cache" };
    respond(&headers, a.content_type, a.body, &b.etag, cache)
}

/// The OpenAPI description of the UI's routes (`docs.rs` assembles the document).
pub fn describe(spec: &RouteSpec, _s: &mut Schemas) -> Option<Op> {
    let op = match (spec.method, spec.path) {
        ("GET", "/") => Op {
            tag: "ui",
            summary: "The web UI",
            description:
                "Inventory, resource, costs, savings, rating and agents pages. Served from the binary \
                          and loads nothing from other sites; its data comes from this API, \
                          with a token when the server asks for one.",
            params: vec![],
            body: None,
            ok: vec![
                (
                    "200",
                    "HTML page (`no-cache`, with an ETag).",
                    Some(("text/html", string())),
                ),
                ("304", "Unchanged since the ETag in `If-None-Match`.", None),
            ],
            errors: vec![],
        },
        ("GET", "/ui/{*path}") => Op {
            tag: "ui",
            summary: "A file of the web UI",
            description: "Scripts, style and icon of the UI. With `?v=` set to the file's \
                          current content hash (as the UI's page links it) the answer may be \
                          cached for a year; otherwise it is revalidated by its ETag.",
            params: vec![json!({"name": "path", "in": "path", "required": true,
                                "description": "The file's name, e.g. `app.js`.", "schema": string()})],
            body: None,
            ok: vec![
                ("200", "The file.", Some(("text/javascript", string()))),
                ("304", "Unchanged since the ETag in `If-None-Match`.", None),
            ],
            errors: vec![("404", "No such file (`not_found`).")],
        },
        _ => return None,
    };
    Some(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_links_every_module_by_hash_and_allows_only_its_import_map() {
        let ui = ui();
        for (a, b) in ASSETS.iter().zip(&ui.assets) {
            if a.content_type == JS {
                let url = hashed_url(a, b);
                assert!(
                    ui.index.contains(&format!("\"/ui/{}\":\"{url}\"", a.path)),
                    "{} is in the import map",
                    a.path
                );
            }
        }
        let start = ui.index.find("<script type=\"importmap\">").unwrap() + 25;
        let end = start + ui.index[start..].find("</script>").unwrap();
        let map = &ui.index[start..end];
        let hash = base64::engine::general_purpose::STANDARD.encode(sha256(map.as_bytes()));
        assert!(ui.csp.to_str().unwrap().contains(&hash));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let etag = weak_etag("abc");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(not_modified(&with("W/\"abc\""), &etag));
        assert!(not_modified(&with("\"abc\""), &etag));
        assert!(not_modified(&with("\"x\", W/\"abc\""), &etag));
        assert!(not_modified(&with("*"), &etag));
        assert!(!not_modified(&with("W/\"abd\""), &etag));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
