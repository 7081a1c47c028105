//! `osv`: an OSv unikernel through its REST API (the `httpserver-api` module, started with
//! `run.py --api`), as snap's OSv collector read it: free and total memory, uptime, the
//! `time_ms` snap calls `cpu/cputime`, and the trace-point counters of `GET /trace/count`.
//!
//! The answer shapes come from OSv's swagger 1.2 listings
//! (`modules/httpserver-api/api-doc/listings/{os,trace}.json`) and handlers (`api/os.cc`,
//! `api/trace.cc`): `/os/memory/free` answers a bare JSON number, `/os/hostname` a JSON
//! string, `/trace/count` `{"list": [{"name", "count"}], "time_ms"}` with only the trace
//! points whose counting was enabled (`POST /trace/count/{eventid}?enabled=true`) and no
//! `list` at all when none is. See README.md for the sources of each fact.
//!
//! Each endpoint is asked only when the task's metric selection needs it, with one HTTP
//! client built at startup. A failing endpoint is a partial error naming its URL; the others
//! go on.

use chrono::Utc;
use reqwest::{StatusCode, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use skymeter_model::{Labels, Point, Resource, ResourceRef, Stat, Unit};
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::rate::CounterRates;
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    MetricInfo, MetricSelection, Output, PluginDescription, PluginError, PluginKind, RawConfig,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod snap;
pub use snap::{metric_for_snap_namespace, snap_namespaces, trace_group, SNAP_PREFIX};

/// A local stand-in of OSv's REST API, for tests and `examples/osv_standin.rs` (feature
/// `standin`).
#[cfg(any(test, feature = "standin"))]
pub mod standin;

#[cfg(test)]
mod tests;

/// The port OSv's httpserver listens on, and snap's default `swagPort`.
pub const DEFAULT_PORT: u16 = 8000;

/// `osv` settings. Give the API either as `url`, or as snap's `swag_ip` (+ `swag_port`), so
/// that a snap task's `/intel/osv` config block works unchanged.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OsvConfig {
    /// The REST API's base URL, e.g. `http://192.168.122.89:8000` (`https://` when OSv's
    /// httpserver runs with TLS). The endpoints (`/os/memory/free`, …) are appended to it.
    #[serde(default)]
    pub url: Option<String>,
    /// snap's key: the OSv instance's address (`swagIP` in snap's later releases is
    /// accepted too). Not with `url`.
    #[serde(default, alias = "swagIP")]
    pub swag_ip: Option<String>,
    /// snap's key: the API's port with `swag_ip` (`swagPort` accepted too); default 8000.
    #[serde(default, alias = "swagPort")]
    pub swag_port: Option<u16>,
    /// Give up on one request after this long. (The task's `timeout` bounds the whole
    /// collection.)
    #[serde(default = "default_timeout")]
    pub timeout: DurationStr,
    /// Who the points belong to: `id`, `name` and `tags` of the instance's resource.
    #[serde(default)]
    pub resource: ResourceConfig,
    /// How trace-point counters are reported: `total` (default, as snap does: the count
    /// since counting was enabled, stat `last`, unit `count`) or `rate` (events per
    /// second between two collections, stat `avg`, unit `count/s`).
    #[serde(default)]
    pub trace_counts: TraceCounts,
    /// Turn on counting of the trace points the task's metrics name, when OSv does not
    /// count them yet (`POST /trace/count/<name>?enabled=true`, as snap does). Only for
    /// tasks that list metrics: a task that selects everything reads what is counted
    /// already and enables nothing.
    #[serde(default = "yes")]
    pub enable_trace_counts: bool,
}

/// The instance's resource, as the config may set it (provider `host`, kind `host` and
/// native type `osv` are fixed). `name` sits here rather than at the top because a plugin
/// entry's own `name` is the instance name of the task entry.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// Resource id; default the API's `host:port` (OSv's default host name, `osv.local`,
    /// is the same on every instance, so it is not the id).
    pub id: Option<String>,
    /// Resource name; default the instance's host name (`GET /os/hostname`), else the id.
    pub name: Option<String>,
    /// Tags of the resource.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(5))
}

fn yes() -> bool {
    true
}

/// How trace-point counters are reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TraceCounts {
    /// The count as OSv reports it.
    #[default]
    Total,
    /// Events per second since the previous collection.
    Rate,
}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "osv",
            kind: PluginKind::Collector,
            summary: "an OSv unikernel's REST API: memory, uptime and trace-point counters (snap's osv collector, same namespaces)",
            config_schema: PluginDescription::schema_of::<OsvConfig>,
            metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    Ok(Box::new(Osv::from_raw(raw)?))
}

const SOURCE_FREE: &str = "GET /os/memory/free";
const SOURCE_TOTAL: &str = "GET /os/memory/total";

/// Everything the collector can emit: the memory and uptime metrics, snap's `cputime`, and
/// one counter per trace point of snap's catalog (others OSv counts are emitted too, named
/// the same way).
pub fn metrics() -> Vec<MetricInfo> {
    let mut v = vec![
        MetricInfo::normalized(snap::MEMORY_FREE, &[Stat::Last], &[], SOURCE_FREE),
        MetricInfo::normalized(snap::MEMORY_TOTAL, &[Stat::Last], &[], SOURCE_TOTAL),
        MetricInfo::normalized(
            "memory.used",
            &[Stat::Last],
            &[],
            "GET /os/memory/total − GET /os/memory/free",
        ),
        MetricInfo::normalized(
            "memory.usage",
            &[Stat::Last],
            &[],
            "(total − free) / total × 100, from GET /os/memory/{total,free}",
        ),
        MetricInfo::normalized("system.uptime", &[Stat::Last], &[], "GET /os/uptime"),
        MetricInfo {
            name: snap::CPUTIME.into(),
            unit: Unit::Milliseconds,
            stats: vec![Stat::Last],
            labels: vec![],
            source: "`time_ms` of GET /trace/count".into(),
            description: "snap's /intel/osv/cpu/cputime: OSv's `time_ms`, milliseconds since boot when the counts were taken (osv::clock::uptime), not CPU time despite snap's name".into(),
        },
    ];
    for (group, name) in snap::trace_points() {
        v.push(MetricInfo {
            name: format!("{}{group}.{name}", snap::TRACE_PREFIX),
            unit: Unit::Count,
            stats: vec![Stat::Last, Stat::Avg],
            labels: vec![],
            source: format!("`count` of `{name}` in GET /trace/count"),
            description: format!(
                "Times trace point `{name}` fired since its counting was enabled (`trace_counts = \"rate\"`: per second, unit count/s)."
            ),
        });
    }
    v
}

type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The collector: one HTTP client built at startup and reused.
pub struct Osv {
    client: reqwest::Client,
    /// Base URL without a trailing `/`; endpoints are appended.
    base: String,
    /// The base URL as errors and the resource show it (no user info).
    shown: String,
    timeout: Duration,
    default_id: String,
    id: Option<String>,
    name: Option<String>,
    tags: BTreeMap<String, String>,
    trace_counts: TraceCounts,
    enable_trace_counts: bool,
    /// Trace points OSv refused to count (not in this build): not asked again.
    refused: BTreeSet<String>,
    /// `GET /os/version`, read once.
    version: Option<String>,
    rates: CounterRates<String>,
    prev_at: Option<f64>,
    /// Monotonic seconds; replaced in tests to make rates exact.
    pub(crate) clock: Clock,
}

/// What one `GET /trace/count` answered (trace.json model `TraceCounts`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TraceCountsAnswer {
    /// Milliseconds since boot when the counts were taken.
    pub time_ms: u64,
    /// Absent when no counter is enabled (OSv's JSON writer leaves out an empty list).
    #[serde(default)]
    pub list: Vec<TraceCount>,
}

/// One enabled trace-point counter (trace.json model `TraceCount`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TraceCount {
    pub name: String,
    pub count: u64,
}

/// Which endpoints a collection needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Needs {
    free: bool,
    total: bool,
    uptime: bool,
    trace: bool,
}

impl Needs {
    fn of(sel: &MetricSelection) -> Needs {
        let derived = sel.matches("memory.used") || sel.matches("memory.usage");
        Needs {
            free: derived || sel.matches(snap::MEMORY_FREE),
            total: derived || sel.matches(snap::MEMORY_TOTAL),
            uptime: sel.matches("system.uptime"),
            trace: sel.matches(snap::CPUTIME) || may_select_trace(sel),
        }
    }

    fn any(self) -> bool {
        self.free || self.total || self.uptime || self.trace
    }
}

/// Whether the selection may take some trace-point metric: one of snap's catalog, or a
/// pattern whose literal start could begin `osv.trace.` (`*`, `osv.*`,
/// `osv.trace.sched.*`), since OSv counts more trace points than snap listed.
fn may_select_trace(sel: &MetricSelection) -> bool {
    if sel.is_all() {
        return true;
    }
    if snap::trace_points().any(|(g, n)| sel.matches(&format!("{}{g}.{n}", snap::TRACE_PREFIX))) {
        return true;
    }
    sel.patterns().iter().any(|p| {
        let lit_end = p.find(['*', '?', '[', '{']).unwrap_or(p.len());
        let lit = &p[..lit_end];
        lit.starts_with(snap::TRACE_PREFIX) || snap::TRACE_PREFIX.starts_with(lit)
    })
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

/// A JSON number that is a whole, non-negative value (OSv's `long`s).
fn whole(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < 1.8e19)
            .map(|x| x as u64)
    })
}

impl Osv {
    pub(crate) fn from_raw(raw: &RawConfig<'_>) -> Result<Osv, ConfigError> {
        let cfg: OsvConfig = raw.decode()?;
        let url = match (&cfg.url, &cfg.swag_ip) {
            (Some(_), Some(_)) => {
                return Err(raw.error(
                    "swag_ip",
                    "set either `url` or snap's `swag_ip` (+ `swag_port`), not both",
                ))
            }
            (None, None) => {
                return Err(raw.error(
                    "url",
                    "no address: set `url = \"http://<osv address>:8000\"`, or snap's `swag_ip` (+ `swag_port`, default 8000)",
                ))
            }
            (Some(_), None) if cfg.swag_port.is_some() => {
                return Err(raw.error(
                    "swag_port",
                    "`swag_port` goes with `swag_ip`; with `url`, write the port in the URL",
                ))
            }
            (Some(u), None) => u.clone(),
            (None, Some(ip)) => {
                let ip = ip.trim();
                if ip.is_empty() || ip.contains(['/', '?', '#', '@', ' ']) {
                    return Err(raw.error(
                        "swag_ip",
                        "`swag_ip` must be an address or host name, e.g. \"192.168.122.89\"",
                    ));
                }
                let port = cfg.swag_port.unwrap_or(DEFAULT_PORT);
                if port == 0 {
                    return Err(raw.error(
                        "swag_port",
                        "`swag_port` must be 1-65535 (OSv's API listens on 8000 by default)",
                    ));
                }
                // snap builds `http://<ip>:<port>`; an IPv6 address needs brackets.
                if ip.contains(':') && !ip.starts_with('[') {
                    format!("http://[{ip}]:{port}")
                } else {
                    format!("http://{ip}:{port}")
                }
            }
        };
        let key = if cfg.url.is_some() { "url" } else { "swag_ip" };
        let parsed = Url::parse(&url).map_err(|e| {
            raw.error(
                key,
                format!("`{url}` is not a URL ({e}); write e.g. \"http://192.168.122.89:8000\""),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(raw.error(
                key,
                format!(
                    "`url` has scheme `{}`; OSv's API speaks http:// (or https:// when its httpserver has TLS)",
                    parsed.scheme()
                ),
            ));
        }
        let Some(host) = parsed.host_str() else {
            return Err(raw.error(
                key,
                "`url` has no host; write e.g. \"http://192.168.122.89:8000\"",
            ));
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(raw.error(
                key,
                "`url` is the API's base (e.g. \"http://192.168.122.89:8000\"): no `?query` or `#fragment`",
            ));
        }
        let default_id = crate::common::http_post::host_port(host, &parsed);
        let shown = crate::common::http_post::without_credentials(&parsed);
        let base = parsed.as_str().trim_end_matches('/').to_string();
        let shown = shown.as_str().trim_end_matches('/').to_string();

        if cfg.timeout.0.is_zero() {
            return Err(raw.error("timeout", "`timeout` must be more than 0, e.g. \"5s\""));
        }
        let r = cfg.resource;
        for (k, v) in [("resource.id", &r.id), ("resource.name", &r.name)] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(raw.error(k, format!("`{k}` is empty; leave it out for the default")));
            }
        }
        if r.tags.keys().any(|k| k.is_empty()) {
            return Err(raw.error("resource.tags", "a tag name is empty"));
        }

        let client = reqwest::Client::builder()
            .timeout(cfg.timeout.0)
            .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| raw.error(key, format!("cannot set up the HTTP client: {e}")))?;
        let origin = Instant::now();
        Ok(Osv {
            client,
            base,
            shown,
            timeout: cfg.timeout.0,
            default_id,
            id: r.id,
            name: r.name,
            tags: r.tags,
            trace_counts: cfg.trace_counts,
            enable_trace_counts: cfg.enable_trace_counts,
            refused: BTreeSet::new(),
            version: None,
            rates: CounterRates::new(),
            prev_at: None,
            clock: Arc::new(move || origin.elapsed().as_secs_f64()),
        })
    }

    /// The URL of an endpoint as errors show it.
    fn shown_url(&self, path: &str) -> String {
        format!("{}{path}", self.shown)
    }

    fn err(&self, kind: ErrorKind, path: &str, message: String) -> PluginError {
        PluginError::new(kind, message).with("url", self.shown_url(path))
    }

    /// What went wrong sending a request, with the underlying cause (refused, DNS, TLS).
    fn send_error(&self, path: &str, e: reqwest::Error) -> PluginError {
        let (kind, message) = crate::common::http_post::send_failure(
            e,
            &self.shown_url(path),
            self.timeout,
            "raise `timeout` or check that the OSv instance is not stuck",
            "check that the OSv instance runs with its REST API (`run.py --api`, module httpserver-api) and that `url` (or `swag_ip`/`swag_port`) is right",
        );
        self.err(kind, path, message)
    }

    /// An answer other than 200, with OSv's `{"message", "code"}` text when there is one.
    fn status_error(&self, path: &str, status: StatusCode, body: &[u8]) -> PluginError {
        let u = self.shown_url(path);
        let said = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(" ({})", prefix(&said, 200))
        };
        match status {
            StatusCode::NOT_FOUND => self.err(
                ErrorKind::Config,
                path,
                format!(
                    "{u} answered {status}{said}: this is not OSv's REST API, or its image lacks the module serving {path}; check `url` (the API's base, e.g. http://<address>:8000) and that OSv runs with `--api`"
                ),
            ),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.err(
                ErrorKind::Auth,
                path,
                format!("{u} answered {status}{said}; skymeter does not send credentials to OSv: check what sits in front of the API"),
            ),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => self.err(
                ErrorKind::Unavailable,
                path,
                format!("{u} answered {status}{said}; the next collection will try again"),
            ),
            _ => self.err(
                ErrorKind::BadResponse,
                path,
                format!("{u} answered {status}{said}"),
            ),
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<(StatusCode, bytes::Bytes), PluginError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .client
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.send_error(path, e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.send_error(path, e))?;
        Ok((status, body))
    }

    /// `GET path`, parsed as JSON.
    async fn get(&self, path: &str) -> Result<Value, PluginError> {
        let (status, body) = self.request(reqwest::Method::GET, path).await?;
        if !status.is_success() {
            return Err(self.status_error(path, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            self.err(
                ErrorKind::BadResponse,
                path,
                format!(
                    "the answer of {} is not JSON ({e}); it starts with: {}",
                    self.shown_url(path),
                    prefix(&String::from_utf8_lossy(&body), 200)
                ),
            )
        })
    }

    /// `GET path` answering a bare whole number (the `long`s of os.json).
    async fn get_number(&self, path: &str) -> Result<u64, PluginError> {
        let v = self.get(path).await?;
        whole(&v).ok_or_else(|| {
            self.err(
                ErrorKind::BadResponse,
                path,
                format!(
                    "{} answered {}, not a whole number as OSv's API does",
                    self.shown_url(path),
                    prefix(&v.to_string(), 100)
                ),
            )
        })
    }

    /// `GET path` answering a JSON string.
    async fn get_string(&self, path: &str) -> Result<String, PluginError> {
        match self.get(path).await? {
            Value::String(s) => Ok(s),
            v => Err(self.err(
                ErrorKind::BadResponse,
                path,
                format!(
                    "{} answered {}, not a JSON string as OSv's API does",
                    self.shown_url(path),
                    prefix(&v.to_string(), 100)
                ),
            )),
        }
    }

    async fn trace_counts(&self) -> Result<TraceCountsAnswer, PluginError> {
        let path = "/trace/count";
        let v = self.get(path).await?;
        serde_json::from_value(v).map_err(|e| {
            self.err(
                ErrorKind::BadResponse,
                path,
                format!(
                    "the answer of {} is not OSv's TraceCounts ({{\"list\": [{{\"name\", \"count\"}}], \"time_ms\"}}): {e}",
                    self.shown_url(path)
                ),
            )
        })
    }

    /// The trace points the selection names that OSv does not count yet: snap's catalog
    /// entries it matches, and trace metrics named exactly.
    fn to_enable(&self, sel: &MetricSelection, counted: &TraceCountsAnswer) -> Vec<String> {
        if !self.enable_trace_counts || sel.is_all() {
            return Vec::new();
        }
        let mut names: BTreeSet<String> = snap::trace_points()
            .filter(|(g, n)| sel.matches(&format!("{}{g}.{n}", snap::TRACE_PREFIX)))
            .map(|(_, n)| n.to_string())
            .collect();
        for p in sel.patterns() {
            if p.contains(['*', '?', '[', '{']) {
                continue;
            }
            if let Some((_, name)) = p
                .strip_prefix(snap::TRACE_PREFIX)
                .and_then(|rest| rest.split_once('.'))
            {
                if snap::trace_metric(name) == *p {
                    names.insert(name.to_string());
                }
            }
        }
        names
            .into_iter()
            .filter(|n| !self.refused.contains(n) && !counted.list.iter().any(|c| &c.name == n))
            .collect()
    }

    /// Turns counting on for `names` (snap's recovery step). Returns whether any was
    /// enabled; trace points OSv does not know are remembered and reported once.
    async fn enable(&mut self, names: Vec<String>, errors: &mut Vec<PluginError>) -> bool {
        let mut enabled = false;
        let mut unknown = Vec::new();
        for name in names {
            let path = format!("/trace/count/{name}?enabled=true");
            match self.request(reqwest::Method::POST, &path).await {
                Ok((s, _)) if s.is_success() => enabled = true,
                Ok((StatusCode::BAD_REQUEST, _)) => {
                    // "Unknown tracepoint name": not in this OSv build.
                    unknown.push(name.clone());
                    self.refused.insert(name);
                }
                Ok((s, body)) => {
                    errors.push(self.status_error(&path, s, &body));
                    break;
                }
                Err(e) => {
                    errors.push(e);
                    break;
                }
            }
        }
        if !unknown.is_empty() {
            errors.push(
                self.err(
                    ErrorKind::Config,
                    "/trace/count/<name>?enabled=true",
                    format!(
                        "OSv at {} has no trace point {} (it answered 400 to enabling its counting); {} not collected: drop {} from the task's metrics",
                        self.shown,
                        unknown.join(", "),
                        if unknown.len() == 1 { "it is" } else { "they are" },
                        if unknown.len() == 1 { "it" } else { "them" },
                    ),
                )
                .with("trace_points", unknown.join(",")),
            );
        }
        enabled
    }

    fn resource(&self, hostname: Option<&str>, total: Option<u64>) -> Resource {
        let id = self.id.clone().unwrap_or_else(|| self.default_id.clone());
        let name = self
            .name
            .clone()
            .or_else(|| hostname.map(str::to_string))
            .unwrap_or_else(|| id.clone());
        let mut attributes = BTreeMap::new();
        attributes.insert("os".to_string(), "osv".into());
        attributes.insert("api".to_string(), self.shown.clone().into());
        if let Some(v) = &self.version {
            attributes.insert("os_version".to_string(), v.clone().into());
        }
        if let Some(h) = hostname {
            attributes.insert("hostname".to_string(), h.into());
        }
        if let Some(t) = total {
            attributes.insert("memory_total".to_string(), t.into());
        }
        Resource {
            provider: "host".into(),
            account: String::new(),
            region: String::new(),
            kind: "host".into(),
            native_type: "osv".into(),
            id,
            name,
            tags: self.tags.clone().into_iter().collect::<Labels>(),
            attributes,
            observed_at: Utc::now(),
        }
    }
}

/// The value of an optional read; its error goes to `errors`.
fn ok<T>(r: Option<Result<T, PluginError>>, errors: &mut Vec<PluginError>) -> Option<T> {
    match r {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    }
}

fn point(
    metric: &str,
    unit: Unit,
    stat: Stat,
    period_s: u32,
    value: f64,
    ts: chrono::DateTime<Utc>,
    rref: &Arc<ResourceRef>,
) -> Point {
    Point {
        metric: metric.into(),
        unit,
        stat,
        period_s,
        ts,
        value,
        resource: rref.clone(),
        labels: Default::default(),
    }
}

#[async_trait]
impl Collector for Osv {
    async fn verify(&mut self) -> Result<(), PluginError> {
        self.get_string("/os/version").await.map(|_| ())
    }

    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let sel = &req.metrics;
        let needs = Needs::of(sel);
        if !needs.any() {
            return Ok(());
        }
        let want_version = self.version.is_none();
        let (free, total, uptime, hostname, version, trace) = tokio::join!(
            async {
                if needs.free {
                    Some(self.get_number("/os/memory/free").await)
                } else {
                    None
                }
            },
            async {
                if needs.total {
                    Some(self.get_number("/os/memory/total").await)
                } else {
                    None
                }
            },
            async {
                if needs.uptime {
                    Some(self.get_number("/os/uptime").await)
                } else {
                    None
                }
            },
            self.get_string("/os/hostname"),
            async {
                if want_version {
                    Some(self.get_string("/os/version").await)
                } else {
                    None
                }
            },
            async {
                if needs.trace {
                    Some(self.trace_counts().await)
                } else {
                    None
                }
            },
        );
        let mut errors = Vec::new();
        let free = ok(free, &mut errors);
        let total = ok(total, &mut errors);
        let uptime = ok(uptime, &mut errors);
        // The host name only names the resource; its failure is reported all the same.
        // The version (read once) only fills an attribute: a failure is left for the next
        // collection to retry, unreported.
        let hostname = match hostname {
            Ok(h) => Some(h),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if let Some(Ok(v)) = version {
            self.version = Some(v);
        }
        let mut trace = ok(trace, &mut errors);
        if let Some(t) = &trace {
            let names = self.to_enable(sel, t);
            if !names.is_empty() && self.enable(names, &mut errors).await {
                match self.trace_counts().await {
                    Ok(t) => trace = Some(t),
                    Err(e) => errors.push(e),
                }
            }
        }

        let at = (self.clock)();
        let rate_period = self.prev_at.map(|p| period(at - p));
        let ts = req.window.end;
        let resource = self.resource(hostname.as_deref(), total);
        let rref = Arc::new(resource.reference());
        let mut points = Vec::new();
        let mut push = |metric: &str, unit: Unit, value: f64| {
            if sel.matches(metric) {
                points.push(point(metric, unit, Stat::Last, 0, value, ts, &rref));
            }
        };
        if let Some(f) = free {
            push(snap::MEMORY_FREE, Unit::Bytes, f as f64);
        }
        if let Some(t) = total {
            push(snap::MEMORY_TOTAL, Unit::Bytes, t as f64);
        }
        if let (Some(f), Some(t)) = (free, total) {
            let used = t.saturating_sub(f);
            push("memory.used", Unit::Bytes, used as f64);
            if t > 0 {
                push(
                    "memory.usage",
                    Unit::Percent,
                    used as f64 * 100.0 / t as f64,
                );
            }
        }
        if let Some(u) = uptime {
            push("system.uptime", Unit::Seconds, u as f64);
        }
        if let Some(t) = &trace {
            push(snap::CPUTIME, Unit::Milliseconds, t.time_ms as f64);
            for c in &t.list {
                let metric = snap::trace_metric(&c.name);
                if !skymeter_model::is_valid_metric_name(&metric) || !sel.matches(&metric) {
                    continue;
                }
                match self.trace_counts {
                    TraceCounts::Total => {
                        points.push(point(
                            &metric,
                            Unit::Count,
                            Stat::Last,
                            0,
                            c.count as f64,
                            ts,
                            &rref,
                        ));
                    }
                    TraceCounts::Rate => {
                        let rate = self.rates.update(c.name.clone(), c.count as f64, at);
                        if let (Some(r), Some(p)) = (rate, rate_period) {
                            points.push(point(
                                &metric,
                                Unit::CountPerSecond,
                                Stat::Avg,
                                p,
                                r,
                                ts,
                                &rref,
                            ));
                        }
                    }
                }
            }
            self.rates.sweep();
        }
        self.prev_at = Some(at);

        let read_any = free.is_some() || total.is_some() || uptime.is_some() || trace.is_some();
        if !read_any && !errors.is_empty() {
            let first = errors.remove(0);
            out.errors.extend(errors);
            return Err(first);
        }
        out.resources.push(resource);
        out.points.extend(points);
        out.errors.extend(errors);
        Ok(())
    }
}
