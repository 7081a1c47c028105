//! The API described: an OpenAPI 3.1 document generated in code from the route table and
//! the real Rust types (their JSON Schemas come from `schemars`, draft 2020-12, which is
//! what OpenAPI 3.1 uses), and a docs page that renders it. The page's HTML, script and
//! style are compiled into the binary and load nothing from elsewhere.
//!
//! Each operation is described beside its handler (a `describe` function in each handler
//! module, and this module's own for the document and its page); this module assembles
//! the document: the operations in [`ROUTES`] order, with the parts they all share (auth,
//! the common error answers, operation ids, tags, components).

use crate::apidoc::{string, Op, Schemas};
use crate::handlers::{
    agents, budgets, export, ingest, ops, prom, query, rating, remote_write, savings,
};
use crate::state::{scope_name, Access, RouteSpec, ROUTES};
use crate::ui;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use skymeter_model::api::ApiErrorBody;
use std::sync::OnceLock;

const PAGE_HTML: &str = include_str!("../assets/docs.html");
const PAGE_JS: &str = include_str!("../assets/docs.js");
const PAGE_CSS: &str = include_str!("../assets/docs.css");

/// Nothing but this server: the page's own script, style and the OpenAPI JSON.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE_HTML)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", PAGE_JS)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", PAGE_CSS)
}

pub async fn openapi_json() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| {
        serde_json::to_string_pretty(&openapi()).expect("the OpenAPI document serializes")
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.as_str(),
    )
        .into_response()
}

/// Where each operation is described: one `describe` per module of handlers. Each answers
/// for its own routes only (None for the others).
const DESCRIBE: &[fn(&RouteSpec, &mut Schemas) -> Option<Op>] = &[
    describe_docs,
    ops::describe,
    ui::describe,
    ingest::describe,
    remote_write::describe,
    agents::describe,
    query::describe,
    export::describe,
    prom::describe,
    rating::describe,
    savings::describe,
    budgets::describe,
];

fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    DESCRIBE.iter().find_map(|d| d(spec, s))
}

/// The OpenAPI description of this document and its page.
fn describe_docs(spec: &RouteSpec, _s: &mut Schemas) -> Option<Op> {
    let json_ct = "application/json";
    let op = match (spec.method, spec.path) {
        ("GET", "/api/openapi.json") => Op {
            tag: "documentation",
            summary: "This document",
            description: "OpenAPI 3.1, generated from the server's route table and types.",
            params: vec![],
            body: None,
            ok: vec![(
                "200",
                "The OpenAPI document.",
                Some((json_ct, json!({"type": "object"}))),
            )],
            errors: vec![],
        },
        ("GET", "/api/docs") => Op {
            tag: "documentation",
            summary: "API documentation page",
            description: "Renders this document in a browser. Served from the binary; loads \
                          nothing from other sites.",
            params: vec![],
            body: None,
            ok: vec![("200", "HTML page.", Some(("text/html", string())))],
            errors: vec![],
        },
        ("GET", "/api/docs/docs.js") => Op {
            tag: "documentation",
            summary: "Script of the documentation page",
            description: "",
            params: vec![],
            body: None,
            ok: vec![("200", "JavaScript.", Some(("text/javascript", string())))],
            errors: vec![],
        },
        ("GET", "/api/docs/docs.css") => Op {
            tag: "documentation",
            summary: "Style of the documentation page",
            description: "",
            params: vec![],
            body: None,
            ok: vec![("200", "CSS.", Some(("text/css", string())))],
            errors: vec![],
        },
        _ => return None,
    };
    Some(op)
}

/// The OpenAPI 3.1 document of every route in [`ROUTES`].
pub fn openapi() -> Value {
    let mut s = Schemas::new();
    let error_ref = s.of::<ApiErrorBody>();
    let prom_error_ref = json!({"$ref": "#/components/schemas/PromErrorBody"});
    // The Prometheus API answers its own errors in Prometheus' shape; what is refused
    // before it runs (auth, body size, content type) has skymeter's.
    let either_ref = json!({"anyOf": [error_ref.clone(), prom_error_ref.clone()]});
    let mut paths = Map::new();
    for spec in ROUTES {
        let prom_shaped = prom::is_prometheus_api(spec);
        let error = |desc: &str| {
            let schema = if prom_shaped { &either_ref } else { &error_ref };
            json!({"description": desc, "content": {"application/json": {"schema": schema}}})
        };
        let Some(op) = describe(spec, &mut s) else {
            tracing::error!(
                method = spec.method,
                path = spec.path,
                "route is not documented"
            );
            continue;
        };
        let mut responses = Map::new();
        for (code, desc, content) in op.ok {
            // The same status listed again: another content type of that answer.
            let r = responses
                .entry(code)
                .or_insert_with(|| json!({"description": desc}));
            if let Some((ct, schema)) = content {
                r["content"][ct] = json!({"schema": schema});
            }
        }
        let is_api = spec.path.starts_with("/api/v1/");
        if is_api || !op.params.is_empty() {
            responses.insert(
                "400".into(),
                error("Bad parameters or body (`bad_request`, `invalid_json`, `invalid_batch`); the message and `fields` say what."),
            );
        }
        if let Access::Scope(scope) = spec.access {
            responses.insert(
                "401".into(),
                error("No valid bearer token (`unauthorized`)."),
            );
            responses.insert(
                "403".into(),
                error(&format!(
                    "The token lacks the `{}` scope (`forbidden`).",
                    scope_name(&scope)
                )),
            );
        }
        for (code, desc) in op.errors {
            responses.insert(code.into(), error(desc));
        }
        // The browser guard (guard.rs) answers before any handler, on every route.
        responses.insert(
            "421".into(),
            error(
                "The `Host` is not this server's address, a loopback name or one of \
                   `allowed_hosts` (`host_not_allowed`).",
            ),
        );
        if spec.method == "POST" {
            responses.entry("403").or_insert_with(|| {
                error("A browser request from another origin (`origin_not_allowed`).")
            });
            if prom_shaped {
                responses.insert(
                    "413".into(),
                    error("The form body is over 2 MiB (Prometheus' `bad_data`)."),
                );
            }
            if spec.access == Access::Scope(skymeter_store::Scope::Ingest) {
                responses.insert(
                    "429".into(),
                    json!({
                        "description": "The server's in-flight ingest budget is used up \
                                        (`overloaded`); retry after `Retry-After` seconds.",
                        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}},
                        "content": {"application/json": {"schema": error_ref.clone()}},
                    }),
                );
            }
        }
        if is_api {
            responses.insert(
                "500".into(),
                error("Storage or server failure (`internal`), including a handler that panicked (counted in `skymeter_http_panics_total`)."),
            );
            responses.entry("503").or_insert_with(|| {
                error("The request took longer than the server's limit (`timeout`).")
            });
        }
        let mut operation = json!({
            "tags": [op.tag],
            "summary": op.summary,
            "operationId": operation_id(spec),
            "responses": responses,
        });
        if !op.description.is_empty() {
            operation["description"] = op.description.into();
        }
        if !op.params.is_empty() {
            operation["parameters"] = op.params.into();
        }
        if let Some((schema, desc)) = op.body {
            let ct = remote_write::body_content_type(spec).unwrap_or("application/json");
            operation["requestBody"] = json!({
                "required": true,
                "description": desc,
                "content": {ct: {"schema": schema}},
            });
        }
        match spec.access {
            Access::Public => operation["security"] = json!([]),
            Access::Scope(scope) => {
                operation["x-required-scope"] = scope_name(&scope).into();
            }
        }
        let path = paths
            .entry(spec.openapi_path())
            .or_insert_with(|| json!({}));
        path[spec.method.to_ascii_lowercase()] = operation;
    }
    let mut schemas = s.into_definitions();
    schemas.insert(
        "PromErrorBody".into(),
        json!({
            "description": "An error of the Prometheus-compatible API, in Prometheus' shape: \
                            `errorType` `bad_data` (400), `execution` (422), `timeout` (503), \
                            `internal` (500).",
            "type": "object",
            "required": ["status", "errorType", "error"],
            "properties": {
                "status": {"const": "error"},
                "errorType": {"type": "string"},
                "error": {"type": "string"},
            },
        }),
    );
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "skymeter server API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Ingest batches of standard records (resources, points, costs) from \
                            skymeter agents, and query inventory, metrics and costs. Every error \
                            is an `ApiErrorBody` with a machine-readable `code`. Endpoints other \
                            than health and documentation need `Authorization: Bearer <token>` \
                            with the scope each lists (`admin` implies every scope).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "ingest", "description": "Batches from agents."},
            {"name": "agents", "description": "Agent registration and heartbeats."},
            {"name": "inventory", "description": "Resources and their history."},
            {"name": "metrics", "description": "Series and points."},
            {"name": "costs", "description": "Cost lines, grouped."},
            {"name": "savings", "description": "Findings (what could be stopped, released or resized, with the money), budgets and cost anomalies."},
            {"name": "prometheus", "description": "The Prometheus-compatible query API (PromQL), for Grafana and promtool."},
            {"name": "operations", "description": "Health and the server's own metrics."},
            {"name": "documentation", "description": "This document and its page."},
            {"name": "ui", "description": "The built-in web UI."},
        ],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token created on the server; scopes `ingest`, `read`, `admin`.",
                }
            }
        }
    })
}

/// `get_api_v1_resources_key`, from method and path.
fn operation_id(spec: &RouteSpec) -> String {
    let mut id = spec.method.to_ascii_lowercase();
    for part in spec.openapi_path().split(['/', '.']) {
        let part = part.trim_matches(['{', '}']);
        if !part.is_empty() {
            id.push('_');
            id.push_str(&part.replace('-', "_"));
        }
    }
    id
}
