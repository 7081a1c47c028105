//! `http_json`: polls a JSON HTTP endpoint and turns values picked with JSON pointers
//! (RFC 6901) into points. Covers the many systems that expose their numbers as REST JSON
//! rather than in a metrics format: OSv's REST API (`/os/memory/free` answers a bare number),
//! admin endpoints, status pages.
//!
//! One instance polls one URL. The response is one item, or, with `items`, an array (or
//! object) of items that each yield the configured metrics (per core, per queue, per
//! tenant), optionally each with its own resource. Counters become per-second rates with
//! the shared [`CounterRates`].

// `ConfigError` is what the plugin API's `build` returns; boxing it here would not help.

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use skymeter_model::{Labels, Point, Resource, Stat, Unit};
use skymeter_plugin_api::config::{DurationStr, ResourceTemplate};
use skymeter_plugin_api::rate::CounterRates;
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    ExposeSecret, Output, PluginDescription, PluginError, PluginKind, RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// `http_json` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpJsonConfig {
    /// The endpoint to poll, `http://` or `https://`.
    pub url: String,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Method,
    /// Request body for `POST`: JSON text, sent with `Content-Type: application/json`.
    #[serde(default)]
    pub body: Option<String>,
    /// Request headers, e.g. `{ Authorization = "Bearer ${TOKEN}" }`. Values are secrets:
    /// they never appear in logs, errors or output.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, SecretString>,
    /// Give up on one request after this long. (The task's `timeout` bounds the whole
    /// collection.)
    #[serde(default = "default_timeout")]
    pub timeout: DurationStr,
    /// Accept any TLS certificate (self-signed, expired, wrong name). For lab systems only.
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// JSON pointer to an array or object in the response whose elements are the items:
    /// each yields its own set of metrics. Without it the whole response is one item.
    #[serde(default)]
    pub items: Option<String>,
    /// What to read from each item.
    pub metrics: Vec<MetricConfig>,
    /// Labels added to every point.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Who the points belong to.
    #[serde(default)]
    pub resource: ResourceConfig,
}

fn default_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

/// HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Method {
    #[default]
    #[serde(rename = "GET", alias = "get")]
    Get,
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// How a value behaves over time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// A level, reported as read (stat `last`).
    #[default]
    Gauge,
    /// A total that only grows: reported as a per-second rate since the previous poll
    /// (stat `avg`, unit per second). The first poll only remembers the value.
    Counter,
}

/// One metric read from each item.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// Metric name, e.g. `memory.free` or a normalized name such as `memory.available`.
    pub name: String,
    /// JSON pointer to the value within the item: `/free`, `/stats/0/busy`; `""` is the
    /// item itself (a bare-number response). Numbers, numeric strings and booleans (1/0)
    /// are accepted.
    pub pointer: String,
    /// Unit of the value: percent, ratio, bytes, bytes/s, bits/s, count, count/s, ms, s, hz,
    /// celsius, watts, joules, usd, none. A counter's rate gets the per-second unit (bytes →
    /// bytes/s, count or none → count/s, s → ratio, joules → watts).
    #[serde(default = "default_unit")]
    pub unit: Unit,
    /// `gauge` (default) or `counter`.
    #[serde(default, rename = "type")]
    pub kind: MetricType,
    /// Labels whose values are read from the item, by JSON pointer (`{ core = "/id" }`);
    /// `"@key"` is the item's array index or object member name.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_unit() -> Unit {
    Unit::None
}

/// Who the points belong to: the fields of the shared resource template, plus pointers that
/// give each item its own resource. The template's fields are repeated rather than
/// `#[serde(flatten)]`ed because serde cannot combine `flatten` with `deny_unknown_fields`;
/// the value is turned into a [`ResourceTemplate`] at build time.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// Defaults to `custom`.
    pub provider: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// Defaults to `service`.
    pub kind: Option<String>,
    /// Defaults to the URL's `host:port`.
    pub id: Option<String>,
    /// Defaults to the id.
    pub name: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// JSON pointer (within each item) to the resource id; `"@key"` is the item's index or
    /// member name. Each distinct id is its own resource.
    pub id_pointer: Option<String>,
    /// JSON pointer (within each item) to the resource name.
    pub name_pointer: Option<String>,
}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "http_json",
            kind: PluginKind::Collector,
            summary: "polls a JSON HTTP endpoint and maps values picked with JSON pointers to metrics (REST APIs such as OSv's)",
            config_schema: PluginDescription::schema_of::<HttpJsonConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    Ok(Box::new(HttpJson::from_raw(raw)?))
}

/// Where a label or resource field comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Pointer(String),
    /// The item's array index or object member name.
    Key,
}

impl Source {
    fn get<'a>(&self, key: &'a str, item: &'a Value) -> Option<Text<'a>> {
        match self {
            Source::Key => Some(Text::Str(key)),
            Source::Pointer(p) => item.pointer(p).map(Text::Value),
        }
    }

    fn describe(&self) -> &str {
        match self {
            Source::Key => "@key",
            Source::Pointer(p) => p,
        }
    }
}

enum Text<'a> {
    Str(&'a str),
    Value(&'a Value),
}

impl Text<'_> {
    /// A label value: strings as they are, numbers and booleans written out.
    fn to_label(&self) -> Result<String, String> {
        match self {
            Text::Str(s) => Ok(s.to_string()),
            Text::Value(Value::String(s)) => Ok(s.clone()),
            Text::Value(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
            Text::Value(v) => Err(format!("is {}, not a string or number", kind_of(v))),
        }
    }
}

struct MetricSpec {
    name: String,
    pointer: String,
    unit: Unit,
    counter: bool,
    labels: Vec<(String, Source)>,
}

/// Checks a JSON pointer (RFC 6901): empty, or `/`-separated tokens where `~` is only
/// ever `~0` or `~1`.
fn check_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!(
            "`{p}` is not a JSON pointer: start it with `/` (`/{p}`), or write \"\" for the whole item"
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "`{p}` is not a JSON pointer: `~` must be written `~0`, and `/` inside a key `~1`"
            ));
        }
    }
    Ok(())
}

fn source_of(p: &str) -> Result<Source, String> {
    if p == "@key" {
        return Ok(Source::Key);
    }
    check_pointer(p).map(|()| Source::Pointer(p.to_string()))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A metric value: numbers, strings holding a number, booleans as 1 / 0.
fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{n} is not a finite number")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("is the string \"{}\", not a number", prefix(s, 40))),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        other => Err(format!("is {}, not a number", kind_of(other))),
    }
}

/// The first `n` characters of `s`, with `…` when cut.
fn prefix(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn period(elapsed_s: f64) -> u32 {
    elapsed_s.round().clamp(1.0, u32::MAX as f64) as u32
}

type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The collector: one HTTP client built at startup and reused for every poll.
pub struct HttpJson {
    client: reqwest::Client,
    url: Url,
    /// The URL as errors show it: without user info or query (they may hold credentials).
    shown_url: String,
    method: reqwest::Method,
    body: Option<String>,
    headers: HeaderMap,
    timeout: Duration,
    items: Option<String>,
    metrics: Vec<MetricSpec>,
    labels: Labels,
    template: ResourceTemplate,
    default_id: String,
    id_source: Option<Source>,
    name_source: Option<Source>,
    rates: CounterRates<(usize, String, Labels)>,
    prev_at: Option<f64>,
    /// Monotonic seconds; replaced in tests to make rates exact.
    pub(crate) clock: Clock,
}

impl HttpJson {
    pub(crate) fn from_raw(raw: &RawConfig<'_>) -> Result<HttpJson, ConfigError> {
        let cfg: HttpJsonConfig = raw.decode()?;

        let url = Url::parse(&cfg.url).map_err(|e| {
            raw.error(
                "url",
                format!("`url` is not a URL ({e}); write e.g. \"http://10.0.0.5:8000/os/memory\""),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(raw.error(
                "url",
                format!(
                    "`url` has scheme `{}`; only http:// and https:// are supported",
                    url.scheme()
                ),
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(raw.error(
                "url",
                "`url` has no host; write e.g. \"http://10.0.0.5:8000/\"",
            ));
        };
        let default_id = crate::common::http_post::host_port(host, &url);
        let mut shown = crate::common::http_post::without_credentials(&url);
        let had_query = shown.query().is_some();
        shown.set_query(None);
        shown.set_fragment(None);
        let shown_url = if had_query {
            format!("{shown}?…")
        } else {
            shown.to_string()
        };

        if let Some(body) = &cfg.body {
            if cfg.method != Method::Post {
                return Err(raw.error(
                    "body",
                    "`body` is sent with POST only; add method = \"POST\" or remove `body`",
                ));
            }
            if let Err(e) = serde_json::from_str::<Value>(body) {
                return Err(raw.error("body", format!("`body` is not valid JSON: {e}")));
            }
        }

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &cfg.headers {
            let key = format!("headers.{name}");
            let hname = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                raw.error(&key, format!("`{name}` is not a valid HTTP header name"))
            })?;
            let mut hvalue = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
                let mut e = raw.error(
                    &key,
                    format!(
                        "the value of header `{name}` has characters HTTP headers cannot carry \
                         (a line break, a control character); check it (it is not shown here)"
                    ),
                );
                e.snippet = None; // the line holds the secret
                e
            })?;
            hvalue.set_sensitive(true);
            headers.insert(hname, hvalue);
        }

        if cfg.timeout.0.is_zero() {
            return Err(raw.error("timeout", "`timeout` must be more than 0, e.g. \"10s\""));
        }

        if let Some(items) = &cfg.items {
            check_pointer(items).map_err(|e| raw.error("items", e))?;
        }

        if cfg.metrics.is_empty() {
            return Err(raw.error(
                "metrics",
                "`metrics` is empty; add e.g. metrics = [{ name = \"memory.free\", pointer = \"/free\", unit = \"bytes\" }]",
            ));
        }
        let mut metrics = Vec::with_capacity(cfg.metrics.len());
        for (i, m) in cfg.metrics.iter().enumerate() {
            let at = |field: &str| format!("metrics.{i}.{field}");
            let what = format!("metrics[{i}] (`{}`)", m.name);
            if !skymeter_model::is_valid_metric_name(&m.name) {
                return Err(raw.error(
                    &at("name"),
                    format!("{what}: not a metric name; use 1-256 of letters, digits, `_ . : / -`"),
                ));
            }
            check_pointer(&m.pointer)
                .map_err(|e| raw.error(&at("pointer"), format!("{what}: {e}")))?;
            let unit = match m.kind {
                MetricType::Gauge => m.unit,
                MetricType::Counter => m.unit.per_second().ok_or_else(|| {
                    raw.error(
                        &at("unit"),
                        format!(
                            "{what}: a counter of `{}` has no per-second unit; counters take bytes, count, none, s or joules",
                            m.unit
                        ),
                    )
                })?,
            };
            let mut labels = Vec::with_capacity(m.labels.len());
            for (k, p) in &m.labels {
                if k.is_empty() {
                    return Err(raw.error(&at("labels"), format!("{what}: a label name is empty")));
                }
                let src = source_of(p)
                    .map_err(|e| raw.error(&at("labels"), format!("{what}: label `{k}`: {e}")))?;
                labels.push((k.clone(), src));
            }
            metrics.push(MetricSpec {
                name: m.name.clone(),
                pointer: m.pointer.clone(),
                unit,
                counter: m.kind == MetricType::Counter,
                labels,
            });
        }
        if cfg.labels.keys().any(|k| k.is_empty()) {
            return Err(raw.error("labels", "a label name is empty"));
        }

        let r = cfg.resource;
        if r.id.is_some() && r.id_pointer.is_some() {
            return Err(raw.error(
                "resource.id_pointer",
                "set either `resource.id` or `resource.id_pointer`, not both",
            ));
        }
        if r.name.is_some() && r.name_pointer.is_some() {
            return Err(raw.error(
                "resource.name_pointer",
                "set either `resource.name` or `resource.name_pointer`, not both",
            ));
        }
        if let Some(p) = &r.provider {
            if p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(raw.error(
                    "resource.provider",
                    "`resource.provider` must be lowercase letters, digits, `_` or `-`, e.g. \"osv\"",
                ));
            }
        }
        let id_source = r
            .id_pointer
            .as_deref()
            .map(source_of)
            .transpose()
            .map_err(|e| raw.error("resource.id_pointer", e))?;
        let name_source = r
            .name_pointer
            .as_deref()
            .map(source_of)
            .transpose()
            .map_err(|e| raw.error("resource.name_pointer", e))?;
        let template = ResourceTemplate {
            provider: r.provider,
            account: r.account,
            region: r.region,
            kind: r.kind,
            id: r.id,
            name: r.name,
            tags: r.tags,
        };

        let client = reqwest::Client::builder()
            .timeout(cfg.timeout.0)
            .danger_accept_invalid_certs(cfg.tls_skip_verify)
            .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| raw.error("url", format!("cannot set up the HTTP client: {e}")))?;

        let origin = Instant::now();
        Ok(HttpJson {
            client,
            url,
            shown_url,
            method: match cfg.method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
            },
            body: cfg.body,
            headers,
            timeout: cfg.timeout.0,
            items: cfg.items,
            metrics,
            labels: cfg.labels.into_iter().collect(),
            template,
            default_id,
            id_source,
            name_source,
            rates: CounterRates::new(),
            prev_at: None,
            clock: Arc::new(move || origin.elapsed().as_secs_f64()),
        })
    }

    fn err(&self, kind: ErrorKind, message: String) -> PluginError {
        PluginError::new(kind, message).with("url", self.shown_url.as_str())
    }

    /// What went wrong sending the request, without the URL (it may carry credentials
    /// in its query) but with the underlying cause (refused, DNS, TLS).
    fn send_error(&self, e: reqwest::Error) -> PluginError {
        let (kind, message) = crate::common::http_post::send_failure(
            e,
            &self.shown_url,
            self.timeout,
            "raise `timeout` or check the endpoint",
            "check that it is up and that `url` is right",
        );
        self.err(kind, message)
    }

    fn status_error(&self, status: StatusCode, body: &[u8]) -> PluginError {
        let u = &self.shown_url;
        let snippet = || {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                String::new()
            } else {
                format!("; it said: {}", prefix(text, 200))
            }
        };
        match status {
            StatusCode::UNAUTHORIZED => self.err(
                ErrorKind::Auth,
                format!("{u} answered {status}: the credentials are missing or wrong; check the headers/token (`headers`)"),
            ),
            StatusCode::FORBIDDEN => self.err(
                ErrorKind::Permission,
                format!("{u} answered {status}: the credentials lack permission; check the headers/token (`headers`) and the account's rights"),
            ),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => self.err(
                ErrorKind::Config,
                format!("{u} answered {status}; check `url` and `method`{}", snippet()),
            ),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => self.err(
                ErrorKind::Unavailable,
                format!("{u} answered {status}; it is busy, the next poll will try again"),
            ),
            s if s.is_server_error() => self.err(
                ErrorKind::Unavailable,
                format!("{u} answered {status}{}", snippet()),
            ),
            _ => self.err(
                ErrorKind::BadResponse,
                format!("{u} answered {status}{}", snippet()),
            ),
        }
    }

    /// One request; the parsed body.
    async fn fetch(&self) -> Result<Value, PluginError> {
        let mut rb = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(b) = &self.body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(b.clone());
        }
        let resp = rb.send().await.map_err(|e| self.send_error(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.send_error(e))?;
        if !status.is_success() {
            return Err(self.status_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            let text = String::from_utf8_lossy(&bytes);
            self.err(
                ErrorKind::BadResponse,
                format!(
                    "the response from {} is not JSON ({e}); it starts with: {}",
                    self.shown_url,
                    prefix(&text, 200)
                ),
            )
        })
    }

    /// The items of a response: `(key, item)` where key is the array index or member name.
    fn items<'a>(&self, doc: &'a Value) -> Result<Vec<(String, &'a Value)>, PluginError> {
        let Some(p) = &self.items else {
            return Ok(vec![(String::new(), doc)]);
        };
        match doc.pointer(p) {
            Some(Value::Array(a)) => Ok(a.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect()),
            Some(Value::Object(o)) => Ok(o.iter().map(|(k, v)| (k.clone(), v)).collect()),
            Some(other) => Err(self
                .err(
                    ErrorKind::BadResponse,
                    format!(
                        "`items` points at {} in the response from {}, not an array or object; check `items`",
                        kind_of(other),
                        self.shown_url
                    ),
                )
                .with("pointer", p.as_str())),
            None => Err(self
                .err(
                    ErrorKind::BadResponse,
                    format!(
                        "`items` pointer `{p}` is not in the response from {}; check `items`",
                        self.shown_url
                    ),
                )
                .with("pointer", p.as_str())),
        }
    }

    fn resource_for(&self, key: &str, item: &Value, which: &str) -> Result<Resource, PluginError> {
        let field = |src: &Option<Source>, what: &str| -> Result<Option<String>, PluginError> {
            let Some(src) = src else { return Ok(None) };
            let text = src.get(key, item).ok_or_else(|| {
                self.err(
                    ErrorKind::BadResponse,
                    format!(
                        "resource {what} pointer `{}` is not in {which} of the response from {}; the item is skipped",
                        src.describe(),
                        self.shown_url
                    ),
                )
                .with("pointer", src.describe())
            })?;
            text.to_label().map(Some).map_err(|e| {
                self.err(
                    ErrorKind::BadResponse,
                    format!(
                        "resource {what} at `{}` in {which} {e}; the item is skipped",
                        src.describe()
                    ),
                )
                .with("pointer", src.describe())
            })
        };
        let id = field(&self.id_source, "id")?;
        let name = field(&self.name_source, "name")?;
        let mut r = self.template.build("service", &self.default_id, Utc::now());
        if let Some(id) = id {
            if self.template.name.is_none() && name.is_none() {
                r.name = id.clone();
            }
            r.id = id;
        }
        if let Some(name) = name {
            r.name = name;
        }
        Ok(r)
    }
}

#[async_trait]
impl Collector for HttpJson {
    async fn verify(&mut self) -> Result<(), PluginError> {
        self.fetch().await.map(|_| ())
    }

    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let wanted: Vec<usize> = (0..self.metrics.len())
            .filter(|&i| req.metrics.matches(&self.metrics[i].name))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let doc = self.fetch().await?;
        let at = (self.clock)();
        let rate_period = self.prev_at.map(|p| period(at - p));
        let ts = req.window.end;
        let items = self.items(&doc)?;

        let mut resources: Vec<Resource> = Vec::new();
        let mut points: Vec<Point> = Vec::new();
        let mut errors: Vec<PluginError> = Vec::new();
        let mut read = 0usize;
        for (key, item) in &items {
            let which = match &self.items {
                Some(p) => format!("item {key} of `{p}`"),
                None => "the document".to_string(),
            };
            let resource = match self.resource_for(key, item, &which) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let rref = std::sync::Arc::new(resource.reference());
            if !resources.iter().any(|r| r.id == resource.id) {
                resources.push(resource);
            }
            'metric: for &i in &wanted {
                let m = &self.metrics[i];
                let fail = |msg: String, pointer: &str| {
                    PluginError::new(
                        ErrorKind::BadResponse,
                        format!(
                            "metric `{}`: {msg} (in {which} of the response from {})",
                            m.name, self.shown_url
                        ),
                    )
                    .with("url", self.shown_url.as_str())
                    .with("pointer", pointer)
                    .with("metric", m.name.as_str())
                };
                let value = match item.pointer(&m.pointer) {
                    None => {
                        errors.push(fail(
                            format!("pointer `{}` not found", m.pointer),
                            &m.pointer,
                        ));
                        continue;
                    }
                    Some(v) => match number(v) {
                        Ok(x) => x,
                        Err(e) => {
                            errors.push(fail(
                                format!("the value at `{}` {e}", m.pointer),
                                &m.pointer,
                            ));
                            continue;
                        }
                    },
                };
                let mut labels = self.labels.clone();
                for (k, src) in &m.labels {
                    let text = match src.get(key, item) {
                        Some(t) => t,
                        None => {
                            errors.push(fail(
                                format!("label `{k}`: pointer `{}` not found", src.describe()),
                                src.describe(),
                            ));
                            continue 'metric;
                        }
                    };
                    match text.to_label() {
                        Ok(v) => {
                            labels.insert(k.clone(), v);
                        }
                        Err(e) => {
                            errors.push(fail(
                                format!("label `{k}`: the value at `{}` {e}", src.describe()),
                                src.describe(),
                            ));
                            continue 'metric;
                        }
                    }
                }
                read += 1;
                let (stat, period_s, value) = if m.counter {
                    let rate =
                        self.rates
                            .update((i, rref.id.to_string(), labels.clone()), value, at);
                    match (rate, rate_period) {
                        (Some(r), Some(p)) => (Stat::Avg, p, r),
                        _ => continue,
                    }
                } else {
                    (Stat::Last, 0, value)
                };
                points.push(Point {
                    metric: m.name.clone().into(),
                    unit: m.unit,
                    stat,
                    period_s,
                    ts,
                    value,
                    resource: rref.clone(),
                    labels: labels.into(),
                });
            }
        }
        self.rates.sweep();
        self.prev_at = Some(at);

        if read == 0 && !errors.is_empty() {
            let first = errors.remove(0);
            out.errors.extend(errors);
            return Err(first);
        }
        out.resources.extend(resources);
        out.points.extend(points);
        out.errors.extend(errors);
        Ok(())
    }
}
