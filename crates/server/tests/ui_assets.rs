//! The web UI's routes: `/` and every file of `assets/ui/` are served from the binary with
//! their content types, ETags and cache lifetimes, without a token; unknown files are 404;
//! nothing in them points outside this server; and every API path the scripts call is a
//! route of the server.

mod support;

use reqwest::header::{
    HeaderMap, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use skymeter_server::{ServerConfig, ROUTES};
use std::path::PathBuf;
use support::*;

fn assets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/ui")
}

/// Every file of `assets/ui/` but the page template, by name.
fn asset_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(assets_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "index.html")
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    names
}

fn header(h: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> &str {
    h.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// `/ui/app.js?v=…` and the like, as the page links them.
fn hashed_links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("\"/ui/") {
        rest = &rest[i + 1..];
        let end = rest.find('"').unwrap();
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

#[tokio::test]
async fn index_is_public_no_cache_with_etag_and_a_strict_policy() {
    // Tokens are on: the page itself needs none (it holds no data).
    let s = TestServer::start(ServerConfig::default()).await;
    let resp = s.get("/", None).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(header(&h, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&h, CACHE_CONTROL), "no-cache");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    let etag = header(&h, ETAG).to_string();
    assert!(etag.starts_with("W/\"") && etag.len() > 10, "{etag}");
    let csp = header(&h, CONTENT_SECURITY_POLICY);
    for part in [
        "default-src 'none'",
        "connect-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert!(
        script_src.contains("'self'")
            && script_src.contains("'sha256-")
            && !script_src.contains("unsafe"),
        "{script_src}"
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("<script type=\"importmap\">"), "{html}");
    assert!(!html.contains("{{"), "every placeholder is filled: {html}");

    let again = s
        .client
        .get(format!("{}/", s.url))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(header(again.headers(), ETAG), etag);
    assert!(again.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_hash_and_cache_lifetime() {
    let s = TestServer::start(ServerConfig::default()).await;
    let html = s.get("/", None).await.text().await.unwrap();
    let links = hashed_links(&html);
    let files = asset_files();
    for name in &files {
        let disk = std::fs::read(assets_dir().join(name)).unwrap();
        let want_type = match name.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("assets/ui/{name}: no content type known for .{other}"),
        };
        let hashed = links
            .iter()
            .find(|l| l.starts_with(&format!("/ui/{name}?v=")))
            .unwrap_or_else(|| panic!("the page links {name} by its hash: {links:?}"));

        let resp = s.get(hashed, None).await;
        assert_eq!(resp.status(), 200, "{hashed}");
        let h = resp.headers().clone();
        assert_eq!(header(&h, CONTENT_TYPE), want_type, "{name}");
        assert_eq!(
            header(&h, CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{hashed}"
        );
        let etag = header(&h, ETAG).to_string();
        let hash = hashed.rsplit("?v=").next().unwrap();
        assert_eq!(etag, format!("W/\"{hash}\""), "{name}");
        assert_eq!(
            resp.bytes().await.unwrap().as_ref(),
            &disk[..],
            "{name} is embedded as it is on disk (rebuild after editing assets)"
        );

        // Without the hash (a module's own import, an old page): revalidated each time.
        let plain = s.get(&format!("/ui/{name}"), None).await;
        assert_eq!(plain.status(), 200);
        assert_eq!(header(plain.headers(), CACHE_CONTROL), "no-cache", "{name}");
        let stale = s.get(&format!("/ui/{name}?v=0000000000000000"), None).await;
        assert_eq!(header(stale.headers(), CACHE_CONTROL), "no-cache", "{name}");

        let cond = s
            .client
            .get(format!("{}/ui/{name}", s.url))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(cond.status(), 304, "{name}");
    }
    // And nothing linked that is not a file.
    for l in &links {
        let name = l.trim_start_matches("/ui/").split('?').next().unwrap();
        assert!(files.iter().any(|f| f == name), "{l} links no file");
    }
}

#[tokio::test]
async fn assets_are_compressed_for_clients_that_ask() {
    let s = TestServer::start(ServerConfig::default()).await;
    let resp = s
        .client
        .get(format!("{}/ui/resource.js", s.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(resp.headers(), "content-encoding"), "gzip");
    assert!(header(resp.headers(), ETAG).starts_with("W/"));
}

#[tokio::test]
async fn unknown_assets_are_404_in_the_api_error_shape() {
    let s = TestServer::start(ServerConfig::default()).await;
    for path in [
        "/ui/nope.js",
        "/ui/index.html",
        "/ui/app.js/extra",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/src/ui.rs",
        "/ui/",
    ] {
        let resp = s.get(path, None).await;
        assert_eq!(resp.status(), 404, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    let body: serde_json::Value = s.get("/ui/nope.js", None).await.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("/ui/nope.js") && msg.contains("app.js"),
        "says what exists: {msg}"
    );
}

/// XML namespace names: identifiers that SVG requires, never fetched by a browser.
const NAMESPACES: &[&str] = &["http://www.w3.org/2000/svg"];

#[tokio::test]
async fn no_asset_loads_anything_from_another_origin() {
    let s = TestServer::start(ServerConfig::default()).await;
    let mut texts = vec![(
        "/".to_string(),
        s.get("/", None).await.text().await.unwrap(),
    )];
    for name in asset_files() {
        let path = format!("/ui/{name}");
        texts.push((path.clone(), s.get(&path, None).await.text().await.unwrap()));
    }
    for (path, text) in &texts {
        let rest = NAMESPACES
            .iter()
            .fold(text.clone(), |t, ns| t.replace(ns, ""));
        for bad in [
            "http://",
            "https://",
            "ws://",
            "wss://",
            "@import",
            "@font-face",
            "url(",
            "integrity=",
            "src=\"//",
            "href=\"//",
            "import(",
            "eval(",
            "new Function",
            ".innerHTML",
        ] {
            assert!(!rest.contains(bad), "`{bad}` in {path}");
        }
    }
}

/// The API paths the scripts name, as written (`/api/v1/resources/` ends where a
/// template expression starts).
fn api_paths(js: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["\"/api/", "`/api/", "\"/health\"", "\"/metrics\""] {
        let mut rest = js;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/_.-".contains(c)))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// Whether `path` (possibly ending in `/` where the script appends a parameter) is a
/// GET route the UI may call.
fn is_get_route(path: &str) -> bool {
    ROUTES.iter().filter(|r| r.method == "GET").any(|r| {
        let pat: Vec<&str> = r.path.split('/').collect();
        let got: Vec<&str> = path.split('/').collect();
        pat.len() == got.len()
            && pat
                .iter()
                .zip(&got)
                .all(|(p, g)| p == g || (p.starts_with('{') && (g.is_empty() || !g.contains('{'))))
    })
}

#[test]
fn every_api_path_the_ui_calls_is_a_route() {
    let mut seen = Vec::new();
    for name in asset_files().iter().filter(|n| n.ends_with(".js")) {
        let js = std::fs::read_to_string(assets_dir().join(name)).unwrap();
        for p in api_paths(&js) {
            assert!(
                is_get_route(&p),
                "assets/ui/{name} calls GET {p}, which is not a route"
            );
            seen.push(p);
        }
    }
    for want in [
        "/api/v1/resources",
        "/api/v1/resources/",
        "/api/v1/points",
        "/api/v1/costs",
        "/api/v1/agents",
        "/api/v1/rating/status",
        "/api/v1/rating/rules",
        "/health",
    ] {
        assert!(seen.iter().any(|p| p == want), "{want} in {seen:?}");
    }
    assert!(!is_get_route("/api/v1/nope"));
}
