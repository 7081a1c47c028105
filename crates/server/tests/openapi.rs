//! The OpenAPI document covers every route, every `$ref` resolves, its schemas validate
//! real payloads; the docs page and its assets are served and load nothing from elsewhere.

mod support;

use serde_json::{json, Value};
use skymeter_server::{Access, ServerConfig, ROUTES};
use std::collections::BTreeSet;
use support::*;

async fn document(s: &TestServer) -> Value {
    let resp = s.get("/api/openapi.json", None).await;
    assert_eq!(resp.status(), 200, "served without a token");
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push(v.as_str().expect("$ref is a string"));
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_route_is_documented_and_every_ref_resolves() {
    let s = TestServer::start(ServerConfig::default()).await;
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut routes = BTreeSet::new();
    for spec in ROUTES {
        let path = spec.openapi_path();
        let method = spec.method.to_ascii_lowercase();
        routes.insert((path.clone(), method.clone()));
        let op = &doc["paths"][&path][&method];
        assert!(
            op.is_object(),
            "{} {} is not documented",
            spec.method,
            spec.path
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{path}"
        );
        assert!(op["operationId"].is_string(), "{path}");
        assert!(
            op["responses"]
                .as_object()
                .is_some_and(|r| r.keys().any(|c| c.starts_with('2'))),
            "{path}"
        );
        // Path parameters are declared.
        for part in path.split('/').filter(|p| p.starts_with('{')) {
            let name = part.trim_matches(['{', '}']);
            let declared = op["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
            });
            assert!(declared, "{path}: path parameter `{name}` is not declared");
        }
        match spec.access {
            Access::Public => assert_eq!(op["security"], json!([]), "{path} is public"),
            Access::Scope(_) => {
                assert!(
                    op.get("security").is_none(),
                    "{path} inherits the bearer requirement"
                );
                assert!(
                    op["responses"]["401"].is_object() && op["responses"]["403"].is_object(),
                    "{path}"
                );
            }
        }
        if spec.path.starts_with("/api/v1/") {
            assert!(
                op["responses"]["400"].is_object(),
                "{path} documents its 400"
            );
        }
    }
    // Nothing documented that the router does not serve.
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    assert_eq!(documented, routes);

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 30, "{}", all.len());
    for r in &all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(pointer.starts_with("/components/schemas/"), "{r}");
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }
    assert!(
        !serde_json::to_string(&doc).unwrap().contains("$defs"),
        "every $defs moved into components"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Batch",
        "Point",
        "Resource",
        "Cost",
        "IngestResponse",
        "ApiErrorBody",
        "AgentRegistration",
        "Heartbeat",
        "StoredResource",
        "ResourceDetail",
        "PointsResponse",
        "CostsResponse",
        "HealthBody",
    ] {
        assert!(
            schemas.contains_key(name),
            "components/schemas/{name} missing; have {:?}",
            schemas.keys()
        );
    }
    assert_eq!(
        doc["paths"]["/api/v1/ingest"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/Batch"
    );
}

#[tokio::test]
async fn documented_schemas_validate_real_payloads() {
    let s = TestServer::start(ServerConfig::default()).await;
    let doc = document(&s).await;
    let validator = |name: &str| {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{name}"),
            "components": doc["components"],
        });
        jsonschema::validator_for(&schema).unwrap()
    };
    let batch = serde_json::to_value(batch(3)).unwrap();
    let v = validator("Batch");
    assert!(v.is_valid(&batch));
    let mut bad = batch.clone();
    bad["points"][0]["colour"] = json!("red");
    assert!(
        !v.is_valid(&bad),
        "unknown fields are refused by the schema too"
    );

    // A real answer of the server matches its documented schema.
    let token = s.token(&[skymeter_store::Scope::Admin]);
    let resp: Value = s
        .client
        .post(format!("{}/api/v1/ingest", s.url))
        .bearer_auth(&token)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(validator("IngestResponse").is_valid(&resp), "{resp}");
    let err: Value = s.get("/metrics", None).await.json().await.unwrap();
    assert!(validator("ApiErrorBody").is_valid(&err), "{err}");
}

/// Every `src="…"` / `href="…"` in an HTML page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

#[tokio::test]
async fn docs_page_is_served_from_the_binary_with_nothing_external() {
    let s = TestServer::start(ServerConfig::default()).await;
    let resp = s.get("/api/docs", None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();

    let found = links(&html);
    assert!(
        found.contains(&"docs/docs.js".to_string()) && found.contains(&"docs/docs.css".to_string()),
        "{found:?}"
    );
    let mut texts = vec![html.clone()];
    for link in found {
        assert!(
            !link.contains(':') && !link.starts_with("//"),
            "external reference {link}"
        );
        // Relative to /api/docs.
        let resp = s
            .client
            .get(format!("{}/api/{link}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{link}");
        // The document is data shown on the page (its JSON Schema dialect is a URI), not
        // something the page loads from elsewhere.
        if link != "openapi.json" {
            texts.push(resp.text().await.unwrap());
        }
    }
    let js = &texts
        .iter()
        .find(|t| t.contains("\"use strict\""))
        .expect("the script was fetched");
    assert!(
        js.contains("fetch(\"openapi.json\")"),
        "the page renders the server's own document"
    );
    for t in &texts {
        for bad in [
            "http://",
            "https://",
            "@import",
            "url(",
            "//cdn",
            "integrity=",
        ] {
            assert!(!t.contains(bad), "`{bad}` in a docs asset");
        }
    }
}
