//! The API described: an OpenAPI 3.1 document generated in code from the route table and
//! the real Rust types (their JSON Schemas come from `schemars`, draft 2020-12, which is
//! what OpenAPI 3.1 uses), and a docs page that renders it. The page's HTML, script and
//! style are compiled into the binary and load nothing from elsewhere.

use crate::handlers::agents::RegisterResponse;
use crate::handlers::ops::HealthBody;
use crate::handlers::query::{CostsResponse, PointsResponse, ResourceDetail, COST_GROUPS};
use crate::state::{scope_name, Access, RouteSpec, ROUTES};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};
use skymeter_model::api::{AgentRegistration, ApiErrorBody, Heartbeat, IngestResponse};
use skymeter_model::Batch;
use skymeter_store::{AgentRecord, Page, SeriesInfo, StoredResource};
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

/// `Page<T>` documented as `TPage` (schemars would number the instances `Page`, `Page2`…).
struct PageOf<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema> JsonSchema for PageOf<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("{}Page", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> schemars::Schema {
        Page::<T>::json_schema(generator)
    }
}

/// Collects component schemas while operations are described.
struct Schemas(SchemaGenerator);

impl Schemas {
    /// A `$ref` to `T`'s schema under `#/components/schemas`.
    fn of<T: JsonSchema>(&mut self) -> Value {
        self.0.subschema_for::<T>().to_value()
    }
}

/// A query parameter. The server reads an empty value (`?limit=`) as absent, as HTML forms
/// send unset fields (`Params::take`, `Form::get`), so a typed parameter also admits `""`.
fn query(name: &str, description: &str, schema: Value) -> Value {
    let typed = schema["type"]
        .as_str()
        .is_some_and(|t| t == "integer" || t == "number" || t == "boolean");
    let schema = if typed {
        json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
    } else {
        schema
    };
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn page_params() -> Vec<Value> {
    vec![
        query(
            "limit",
            "Page size, 1 to 1000; default 100.",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        query("cursor", "`next_cursor` of the previous page.", string()),
    ]
}

fn time_param(name: &str, default: &str) -> Value {
    query(
        name,
        &format!(
            "RFC 3339 (`2026-11-22T10:00:00Z`), Unix seconds, `now`, or relative to now \
             (`-1h`, `now-30m`). {default}"
        ),
        string(),
    )
}

/// An empty value (`?stat=`) counts as absent, as HTML forms send unset fields.
fn stat_schema() -> Value {
    json!({"type": "string", "enum": ["", "avg", "max", "min", "sum", "count", "last", "p50", "p95", "p99"]})
}

fn series_params() -> Vec<Value> {
    let mut p = vec![
        query(
            "metric",
            "Metric name, exact or a glob with `*` (`cpu.*`).",
            string(),
        ),
        query(
            "resource",
            "A resource key, `provider/account/region/id`.",
            string(),
        ),
        query(
            "provider",
            "Resource provider (`aws`, `host`, …).",
            string(),
        ),
        query(
            "account",
            "Resource account / project / subscription.",
            string(),
        ),
        query("region", "Resource region.", string()),
        query("stat", "Only series of this statistic.", stat_schema()),
        query(
            "label.KEY",
            "Point label that must match exactly, one parameter per label: `label.cpu=3`.",
            string(),
        ),
    ];
    p.extend(page_params());
    p
}

/// A success answer: status, description, and the content type and schema of its body.
type OkResponse = (&'static str, &'static str, Option<(&'static str, Value)>);

/// What one operation says, before the common parts are added.
struct Op {
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
    params: Vec<Value>,
    body: Option<(Value, &'static str)>,
    /// Status → (description, content type, schema).
    ok: Vec<OkResponse>,
    /// Route-specific error statuses, besides the common ones.
    errors: Vec<(&'static str, &'static str)>,
}

fn describe(spec: &RouteSpec, s: &mut Schemas) -> Option<Op> {
    let json_ct = "application/json";
    let op = match (spec.method, spec.path) {
        ("GET", "/health") => Op {
            tag: "operations",
            summary: "Health of the server and its storage",
            description: "For load balancers and monitors. No authentication.",
            params: vec![],
            body: None,
            ok: vec![
                ("200", "The server and its storage work.", Some((json_ct, s.of::<HealthBody>()))),
                ("503", "The storage check failed; `storage` says why.", Some((json_ct, s.of::<HealthBody>()))),
            ],
            errors: vec![],
        },
        ("GET", "/metrics") => Op {
            tag: "operations",
            summary: "The server's own metrics, for Prometheus",
            description: "Requests by route and status, ingest batches, points and bytes, \
                          ingest latency, and the store's sizes, in the Prometheus text format.",
            params: vec![],
            body: None,
            ok: vec![("200", "Prometheus text exposition format 0.0.4.", Some(("text/plain", string())))],
            errors: vec![],
        },
        ("GET", "/api/openapi.json") => Op {
            tag: "documentation",
            summary: "This document",
            description: "OpenAPI 3.1, generated from the server's route table and types.",
            params: vec![],
            body: None,
            ok: vec![("200", "The OpenAPI document.", Some((json_ct, json!({"type": "object"}))))],
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
        ("GET", "/") => Op {
            tag: "ui",
            summary: "The web UI",
            description: "Inventory, resource, costs and agents pages. Served from the binary \
                          and loads nothing from other sites; its data comes from this API, \
                          with a token when the server asks for one.",
            params: vec![],
            body: None,
            ok: vec![
                ("200", "HTML page (`no-cache`, with an ETag).", Some(("text/html", string()))),
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
        ("POST", "/api/v1/ingest") => Op {
            tag: "ingest",
            summary: "Store a batch",
            description: "The body is a Batch as JSON, optionally compressed \
                          (`Content-Encoding: gzip` or `zstd`). The batch is stored whole or \
                          not at all: any malformed JSON (`invalid_json`, with line and \
                          column), wrong type, missing or unknown field, or invalid value \
                          (`invalid_batch`, with every bad field's path in `fields`) stores \
                          nothing. The limits of the record format (label counts, lengths, \
                          no control characters, a non-nil `batch_id`: see `docs/format.md`) \
                          are in the Batch schema and refused with `invalid_batch`. A batch \
                          whose `batch_id` was stored before with the same content is answered \
                          `duplicate: true` and not stored again, so agents can retry safely; \
                          with other content it is answered 409 `batch_conflict`. \
                          Each cost line is also stored as two points for the Prometheus API, \
                          `cost_billed_usd` and `cost_effective_usd` (other currencies: \
                          `cost_billed_eur`, ...), at its `ChargePeriodStart`, labelled \
                          `provider account region resource_id service source category sku`; \
                          a line sent again replaces its sample. The answer counts what was sent.",
            params: vec![],
            body: Some((s.of::<Batch>(), "A batch of records.")),
            ok: vec![("200", "Stored, or a duplicate of a stored batch.", Some((json_ct, s.of::<IngestResponse>())))],
            errors: vec![
                ("409", "The `batch_id` was stored before with other content (`batch_conflict`); nothing was stored."),
                ("413", "The body (compressed, or decompressed) is over the server's limit (`too_large`)."),
                ("415", "Unsupported `Content-Encoding` (`unsupported_encoding`) or a non-JSON `Content-Type`."),
            ],
        },
        ("POST", "/api/v1/agents/register") => Op {
            tag: "agents",
            summary: "Register an agent",
            description: "Agents register at start and again whenever a heartbeat is \
                          answered 404. Registering again updates the registration. The \
                          agent is also stored as a resource (provider `skymeter`, kind \
                          `agent`, name = hostname) with the points `agent_up`, \
                          `agent_buffered_batches`, `agent_dropped_batches`, \
                          `agent_heartbeat_interval_seconds`, `agent_heartbeat_timestamp_seconds`.",
            params: vec![],
            body: Some((s.of::<AgentRegistration>(), "The agent and its tasks.")),
            ok: vec![("200", "Registered.", Some((json_ct, s.of::<RegisterResponse>())))],
            errors: vec![("413", "The body is over the server's limit."), ("415", "Unsupported encoding or content type.")],
        },
        ("POST", "/api/v1/agents/{id}/heartbeat") => Op {
            tag: "agents",
            summary: "Heartbeat of a registered agent",
            description: "The body is a JSON object, `{}` at least. Also stores the agent's points \
                          (`agent_up` = 1, buffered and dropped batches, interval, heartbeat \
                          time) for the Prometheus API.",
            params: vec![json!({"name": "id", "in": "path", "required": true, "description": "The agent's id.", "schema": string()})],
            body: Some((s.of::<Heartbeat>(), "The agent's buffer state.")),
            ok: vec![("204", "Recorded.", None)],
            errors: vec![
                ("404", "Unknown agent (`not_found`): register again."),
                ("413", "The body is over the server's limit."),
                ("415", "Unsupported encoding or content type."),
            ],
        },
        ("GET", "/api/v1/agents") => Op {
            tag: "agents",
            summary: "List agents",
            description: "With each agent's last heartbeat and status (`healthy` within 2 \
                          heartbeat intervals, `late` within 5, `offline` after).",
            params: page_params(),
            body: None,
            ok: vec![("200", "A page of agents.", Some((json_ct, s.of::<PageOf<AgentRecord>>())))],
            errors: vec![],
        },
        ("GET", "/api/v1/resources") => {
            let mut params = vec![
                query("provider", "`aws`, `gcp`, `azure`, `host`, …", string()),
                query("account", "Account, project or subscription.", string()),
                query("region", "Region.", string()),
                query("kind", "Normalized kind (`compute.instance`, `host`, …).", string()),
                query("tag.KEY", "Tag that must match exactly, one parameter per tag: `tag.env=prod`.", string()),
                query("q", "Case-insensitive substring of the name or id.", string()),
                query(
                    "sort",
                    "`key` (default), `name`, `kind`, `last_seen` or `first_seen`; `-` in front for descending. Empty: the default.",
                    json!({"type": "string", "pattern": "^(-?(key|name|kind|last_seen|first_seen))?$"}),
                ),
            ];
            params.extend(page_params());
            Op {
                tag: "inventory",
                summary: "List resources",
                description: "Every filter must hold; no filter lists everything.",
                params,
                body: None,
                ok: vec![("200", "A page of resources.", Some((json_ct, s.of::<PageOf<StoredResource>>())))],
                errors: vec![],
            }
        }
        ("GET", "/api/v1/resources/{*key}") => Op {
            tag: "inventory",
            summary: "One resource, its history and a monitoring summary",
            description: "`monitoring` holds, for every metric of the resource over `period`, \
                          its `avg` and `max`, nested by the dotted metric name as Cloudforet \
                          lays it out: `{\"cpu\": {\"utilization\": {\"avg\": 12.3, \"max\": 80.1, \
                          \"unit\": \"percent\"}}}`.",
            params: vec![
                json!({"name": "key", "in": "path", "required": true,
                       "description": "`provider/account/region/id`, percent-encoded (`/` as `%2F`).",
                       "schema": string()}),
                query("period", "Window of the monitoring summary, ending now; default `1d` (`1h`, `7d`, …).", string()),
            ],
            body: None,
            ok: vec![("200", "The resource.", Some((json_ct, s.of::<ResourceDetail>())))],
            errors: vec![("404", "No such resource (`not_found`).")],
        },
        ("GET", "/api/v1/series") => {
            let mut params = series_params();
            params.extend(prom_scope_params(true));
            Op {
                tag: "metrics",
                summary: "List series (skymeter's list, or Prometheus' with `match[]`)",
                description: "Two APIs on one path. **Without `match[]`**: skymeter's series \
                              list: a series is one metric, unit and stat of one resource with \
                              one set of labels; filters `metric`, `resource`, …, paged, answered \
                              as a `SeriesInfoPage`. **With `match[]`** (one or more): \
                              Prometheus' series API: the label sets of the series that match \
                              any selector and have samples in [`start`, `end`], answered \
                              `{\"status\":\"success\",\"data\":[{labels}…]}`; the skymeter \
                              filters do not apply then. `POST` with a form body is the same \
                              Prometheus call.",
                params,
                body: None,
                ok: vec![(
                    "200",
                    "A page of series, or (with `match[]`) Prometheus' answer.",
                    Some((
                        json_ct,
                        json!({"anyOf": [
                            s.of::<PageOf<SeriesInfo>>(),
                            prom_ok(json!({"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}})),
                        ]}),
                    )),
                )],
                errors: vec![],
            }
        }
        (_, path) if path.starts_with("/api/v1/") && prom_op(spec).is_some() => {
            return prom_op(spec);
        }
        ("GET", "/api/v1/points") => {
            let mut params = series_params();
            params.extend([
                time_param("start", "Default: `end` minus 1 hour. Inclusive."),
                time_param("end", "Default: now. Exclusive."),
                query(
                    "step",
                    "Downsample to buckets this wide (`1m`, `5m`, `1h`), aligned to the epoch and \
                     stamped with their end; at most 11000 buckets. Absent: raw points.",
                    string(),
                ),
                query("agg", "How points combine within a bucket; default `avg`. Needs `step`.", stat_schema()),
            ]);
            Op {
                tag: "metrics",
                summary: "Points of the matching series",
                description: "`limit` and `cursor` page over series; each series carries all \
                              its points in the range as `[ts, value]` pairs. A page reads at \
                              most `max_samples` (`[server.query]`) raw points: it may end \
                              with fewer than `limit` series and a `next_cursor`, and a series \
                              that alone holds more in the range is refused (400).",
                params,
                body: None,
                ok: vec![("200", "Series with their points.", Some((json_ct, s.of::<PointsResponse>())))],
                errors: vec![],
            }
        }
        ("GET", "/api/v1/costs") => Op {
            tag: "costs",
            summary: "Costs, grouped",
            description: "Sums of `BilledCost` and `EffectiveCost` of the cost lines whose \
                          charge period overlaps `[start, end)`.",
            params: vec![
                query(
                    "group_by",
                    &format!("Comma-separated, any of: {}. Absent: one total.", COST_GROUPS.join(", ")),
                    string(),
                ),
                time_param("start", "Default: no lower bound."),
                time_param("end", "Default: no upper bound."),
                query("provider", "Only this provider's lines.", string()),
                query("source", "`billed` or `estimated`; empty: both.", json!({"type": "string", "enum": ["", "billed", "estimated"]})),
            ],
            body: None,
            ok: vec![("200", "The groups.", Some((json_ct, s.of::<CostsResponse>())))],
            errors: vec![],
        },
        _ => return None,
    };
    Some(op)
}

fn prom_scope_params(with_match: bool) -> Vec<Value> {
    let mut p = Vec::new();
    if with_match {
        p.push(json!({"name": "match[]", "in": "query", "required": false,
            "description": "A series selector (`cpu_utilization_percent{region=\"eu-west-1\"}`); repeat for several (a series may match any).",
            "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true}));
    }
    p.push(query(
        "start",
        "RFC 3339 or Unix seconds (float). Default: no bound. Prometheus API.",
        string(),
    ));
    p.push(query(
        "end",
        "RFC 3339 or Unix seconds (float). Default: no bound. Prometheus API.",
        string(),
    ));
    p
}

/// Prometheus' answer envelope around `data`.
fn prom_ok(data: Value) -> Value {
    json!({"type": "object", "required": ["status", "data"], "properties": {
        "status": {"const": "success"},
        "data": data,
        "warnings": {"type": "array", "items": {"type": "string"}},
    }})
}

fn prom_result() -> Value {
    json!({"type": "object", "required": ["resultType", "result"], "properties": {
        "resultType": {"enum": ["matrix", "vector", "scalar", "string"]},
        "result": {"description": "matrix: [{metric, values: [[t, \"v\"]…]}]; vector: [{metric, value: [t, \"v\"]}]; scalar and string: [t, \"v\"]. `t` is Unix seconds (float); values are strings (`NaN`, `+Inf`)."},
    }})
}

/// A Prometheus API description: `text`, the form-body note for POST, and the error shape.
macro_rules! prom_desc {
    ($post:expr, $text:expr) => {
        if $post {
            concat!(
                $text,
                " Parameters may also come as an `application/x-www-form-urlencoded` body.",
                " Errors have Prometheus' shape, `{\"status\":\"error\",\"errorType\":…,\"error\":…}`: ",
                "400 `bad_data` (parameters, parse errors), 422 `execution` (evaluation failed), ",
                "503 `timeout`, 500 `internal`."
            )
        } else {
            concat!(
                $text,
                " Errors have Prometheus' shape, `{\"status\":\"error\",\"errorType\":…,\"error\":…}`: ",
                "400 `bad_data` (parameters, parse errors), 422 `execution` (evaluation failed), ",
                "503 `timeout`, 500 `internal`."
            )
        }
    };
}

/// The Prometheus-compatible query API (Prometheus 2.42's HTTP API; `handlers/prom.rs`).
fn prom_op(spec: &RouteSpec) -> Option<Op> {
    let json_ct = "application/json";
    let post = spec.method == "POST";
    let labels_list = json!({"type": "array", "items": {"type": "string"}});
    let label_set = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let q = |d: &str| query("query", d, string());
    let timeout = query(
        "timeout",
        "Evaluation time limit (`30s`, or float seconds); at most the server's request timeout.",
        string(),
    );
    let (summary, description, params, data): (&'static str, &'static str, Vec<Value>, Value) = match spec.path {
        "/api/v1/query" => (
            "PromQL instant query (Prometheus API)",
            prom_desc!(
                post,
                "Evaluates `query` at `time`. Metric names and labels as skymeter maps them \
                 (`cpu_utilization_percent{provider, account, region, resource_id, stat, kind, \
                 resource_name, tag_<key>}`)."
            ),
            vec![
                q("A PromQL expression."),
                query("time", "RFC 3339 or Unix seconds (float); default now.", string()),
                timeout,
            ],
            prom_result(),
        ),
        "/api/v1/query_range" => (
            "PromQL range query (Prometheus API)",
            prom_desc!(
                post,
                "Evaluates `query` at `start`, `start + step`, … ≤ `end`; at most 11,000 points \
                 per series."
            ),
            vec![
                q("A PromQL expression (giving a scalar or an instant vector)."),
                query("start", "RFC 3339 or Unix seconds (float). Required.", string()),
                query("end", "RFC 3339 or Unix seconds (float). Required.", string()),
                query(
                    "step",
                    "`60`, `1m`, `1h30m` (float seconds or a Prometheus duration). Required.",
                    string(),
                ),
                timeout,
            ],
            prom_result(),
        ),
        "/api/v1/series" => (
            "Series by selector (Prometheus API)",
            prom_desc!(
                post,
                "The label sets of the series that match any `match[]` (required) and have \
                 samples in [`start`, `end`]."
            ),
            prom_scope_params(true),
            json!({"type": "array", "items": label_set}),
        ),
        "/api/v1/labels" => (
            "Label names (Prometheus API)",
            prom_desc!(
                post,
                "Label names of the series matching `match[]` (all series when absent) with \
                 samples in [`start`, `end`], sorted."
            ),
            prom_scope_params(true),
            labels_list,
        ),
        "/api/v1/label/{name}/values" => (
            "Values of one label (Prometheus API)",
            prom_desc!(
                post,
                "Values of the label over the series matching `match[]` (all when absent) with \
                 samples in [`start`, `end`], sorted; `__name__` gives the metric names."
            ),
            {
                let mut p = vec![json!({"name": "name", "in": "path", "required": true,
                    "description": "A label name.", "schema": string()})];
                p.extend(prom_scope_params(true));
                p
            },
            labels_list,
        ),
        "/api/v1/metadata" => (
            "Metric metadata (Prometheus API)",
            "Per metric name: type (`gauge`: skymeter stores values per period), help and \
             unit from skymeter's metric catalog.",
            vec![
                query("metric", "Only this metric name.", string()),
                query("limit", "At most this many metrics.", json!({"type": "integer"})),
            ],
            json!({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "help": {"type": "string"}, "unit": {"type": "string"}}}}}),
        ),
        "/api/v1/status/buildinfo" => (
            "Build information (Prometheus API)",
            "`version` is the Prometheus version whose API skymeter implements (2.42.0), so that \
             clients enable the matching features; `skymeterVersion` is skymeter's.",
            vec![],
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
        ),
        "/api/v1/status/config" => (
            "Configuration (Prometheus API)",
            "The global evaluation settings as Prometheus YAML (`yaml`); skymeter scrapes \
             nothing itself.",
            vec![],
            json!({"type": "object", "properties": {"yaml": {"type": "string"}}}),
        ),
        "/api/v1/query_exemplars" => (
            "Exemplars (Prometheus API)",
            prom_desc!(
                post,
                "skymeter keeps no exemplars: always an empty list (the query is still checked)."
            ),
            vec![
                q("A PromQL expression."),
                query("start", "RFC 3339 or Unix seconds (float).", string()),
                query("end", "RFC 3339 or Unix seconds (float).", string()),
            ],
            json!({"type": "array", "maxItems": 0}),
        ),
        "/api/v1/format_query" => (
            "Format a query (Prometheus API)",
            prom_desc!(post, "The query, pretty-printed."),
            vec![q("A PromQL expression.")],
            string(),
        ),
        _ => return None,
    };
    Some(Op {
        tag: "prometheus",
        summary,
        description,
        params,
        body: None,
        ok: vec![(
            "200",
            "`{\"status\":\"success\",\"data\":…}`.",
            Some((json_ct, prom_ok(data))),
        )],
        errors: vec![("422", "The query failed in evaluation (`execution`).")],
    })
}

/// The OpenAPI 3.1 document of every route in [`ROUTES`].
pub fn openapi() -> Value {
    let mut s = Schemas(
        SchemaSettings::draft2020_12()
            .with(|st| {
                st.definitions_path = "/components/schemas".into();
                st.meta_schema = None;
            })
            .into_generator(),
    );
    let error_ref = s.of::<ApiErrorBody>();
    let prom_error_ref = json!({"$ref": "#/components/schemas/PromErrorBody"});
    // The Prometheus API answers its own errors in Prometheus' shape; what is refused
    // before it runs (auth, body size, content type) has skymeter's.
    let either_ref = json!({"anyOf": [error_ref.clone(), prom_error_ref.clone()]});
    let mut paths = Map::new();
    for spec in ROUTES {
        let prom_shaped = prom_op(spec).is_some();
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
            let mut r = json!({"description": desc});
            if let Some((ct, schema)) = content {
                r["content"] = json!({ ct: {"schema": schema} });
            }
            responses.insert(code.into(), r);
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
            operation["requestBody"] = json!({
                "required": true,
                "description": desc,
                "content": {"application/json": {"schema": schema}},
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
    let mut schemas = s.0.take_definitions(true);
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
