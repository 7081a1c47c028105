//! `prometheus`: scrapes a Prometheus exposition endpoint (node_exporter, an application's
//! `/metrics`) and turns its samples into points: gauges as they are, counters, histogram
//! and summary totals as per-second rates between two scrapes (see
//! [`crate::common::prom_points`] for the mapping, shared with `exec`).
//!
//! Health, as Prometheus reports it: `up` (1 when the scrape and parse succeeded, 0
//! otherwise), `scrape.duration` and `scrape.samples`. A failed scrape is not an `Err`: the
//! collection emits `up = 0` and carries the error in the batch, so dashboards see the target
//! down instead of a gap.

use crate::common::prom_points::PromConvert;
use crate::common::series::RateState;
use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Point, ResourceRef, Stat, Unit};
use skymeter_plugin_api::config::{DurationStr, ResourceTemplate};
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    ExposeSecret, MetricInfo, MetricSelection, Output, PluginDescription, PluginError, PluginKind,
    RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

/// `collect = [{ plugin = "prometheus", url = "http://127.0.0.1:9100/metrics" }]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// The exposition endpoint, e.g. `http://127.0.0.1:9100/metrics`.
    pub url: String,
    /// Longest time a scrape may take, connection included. Default `"10s"`.
    #[serde(default = "default_timeout")]
    pub timeout: DurationStr,
    /// Extra request headers (secrets: never logged). Default none.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, SecretString>,
    /// Sent as `Authorization: Bearer <token>` (a secret). Default none.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub bearer_token: Option<SecretString>,
    /// Put before every metric name, e.g. `"app."`. Default `""`.
    #[serde(default)]
    pub metric_prefix: String,
    /// Keep only samples whose exposed name matches one of these globs
    /// (`node_cpu_*`). Default: all.
    #[serde(default)]
    pub metrics_include: Vec<String>,
    /// Drop samples whose exposed name matches one of these globs (`go_*`). Default: none.
    #[serde(default)]
    pub metrics_exclude: Vec<String>,
    /// On the first collection, scrape, wait this long and scrape again, so that counters
    /// give rates at once. `"0s"` turns it off (counters then start at the second
    /// collection). Default `"1s"`.
    #[serde(default = "default_warmup")]
    pub warmup: DurationStr,
    /// Who the points belong to. Defaults: provider `custom`, kind `service`, id the URL's
    /// `host:port`.
    #[serde(default)]
    pub resource: ResourceTemplate,
}

fn default_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

fn default_warmup() -> DurationStr {
    DurationStr(Duration::from_secs(1))
}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "prometheus",
            kind: PluginKind::Collector,
            summary: "scrapes a Prometheus exposition endpoint: gauges as read, counters, histograms and summaries as per-second rates",
            config_schema: PluginDescription::schema_of::<PrometheusConfig>,
            metrics,
        },
        build,
    }
}

/// The health metrics; everything else is whatever the target exposes.
fn metrics() -> Vec<MetricInfo> {
    let m = |name: &str, unit, description: &str| MetricInfo {
        name: name.to_string(),
        unit,
        stats: vec![Stat::Last],
        labels: vec![],
        source: "the scrape itself".into(),
        description: description.into(),
    };
    vec![
        m(
            "up",
            Unit::None,
            "1 when the target was scraped and parsed, 0 when not.",
        ),
        m(
            "scrape.duration",
            Unit::Seconds,
            "Time the scrape took, request and parse.",
        ),
        m(
            "scrape.samples",
            Unit::Count,
            "Samples the target exposed, before any filter.",
        ),
    ]
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let cfg: PrometheusConfig = raw.decode()?;
    Ok(Box::new(Prometheus::new(cfg, raw)?))
}

/// Seconds on a monotonic clock; tests swap in one they drive.
type Clock = Box<dyn Fn() -> f64 + Send + Sync>;

pub struct Prometheus {
    url: Url,
    /// The URL as errors show it: without a password.
    shown_url: String,
    default_id: String,
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
    warmup: Duration,
    convert: PromConvert,
    resource: ResourceTemplate,
    state: RateState,
    clock: Clock,
}

impl Prometheus {
    fn new(cfg: PrometheusConfig, raw: &RawConfig<'_>) -> Result<Self, ConfigError> {
        let url = Url::parse(&cfg.url).map_err(|e| {
            raw.error(
                "url",
                format!("not a URL ({e}); write e.g. \"http://127.0.0.1:9100/metrics\""),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(raw.error(
                "url",
                "must be an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:9100/metrics\"",
            ));
        }
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let default_id = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(0)
        );

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/plain;version=0.0.4"));
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        for (name, value) in &cfg.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                raw.error(
                    "headers",
                    format!("`{name}` is not a valid HTTP header name"),
                )
            })?;
            let mut v = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
                raw.error(
                    "headers",
                    format!("the value of header `{name}` is not a valid HTTP header value (control characters?)"),
                )
            })?;
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        if let Some(token) = &cfg.bearer_token {
            if cfg
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("authorization"))
            {
                return Err(raw.error(
                    "bearer_token",
                    "both `bearer_token` and an `Authorization` header are set; keep one",
                ));
            }
            let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| {
                    raw.error(
                        "bearer_token",
                        "not a valid HTTP header value (control characters?)",
                    )
                })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }

        let globs = |key: &str, list: &[String]| {
            MetricSelection::new(list)
                .map_err(|e| raw.error(key, format!("{e}; globs are like \"node_cpu_*\"")))
        };
        let include = globs("metrics_include", &cfg.metrics_include)?;
        let exclude = if cfg.metrics_exclude.is_empty() {
            None
        } else {
            Some(globs("metrics_exclude", &cfg.metrics_exclude)?)
        };
        if !cfg
            .metric_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
        {
            return Err(raw.error(
                "metric_prefix",
                "use letters, digits and `_ . : / -` only, e.g. \"app.\"",
            ));
        }
        if cfg.timeout.0.is_zero() {
            return Err(raw.error("timeout", "must be more than 0, e.g. \"10s\""));
        }

        let client = reqwest::Client::builder()
            .timeout(cfg.timeout.0)
            .build()
            .map_err(|e| raw.error("url", format!("cannot set up the HTTP client: {e}")))?;
        let start = Instant::now();
        Ok(Prometheus {
            url,
            shown_url: shown.to_string(),
            default_id,
            client,
            headers,
            timeout: cfg.timeout.0,
            warmup: cfg.warmup.0,
            convert: PromConvert {
                prefix: cfg.metric_prefix,
                include,
                exclude,
            },
            resource: cfg.resource,
            state: RateState::new(),
            clock: Box::new(move || start.elapsed().as_secs_f64()),
        })
    }

    fn err(&self, kind: ErrorKind, message: String) -> PluginError {
        PluginError::new(kind, message).with("url", &self.shown_url)
    }

    /// One HTTP request; returns the body as text.
    async fn fetch(&self) -> Result<String, PluginError> {
        let url = &self.shown_url;
        let resp = self
            .client
            .get(self.url.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| self.request_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(match status {
                StatusCode::UNAUTHORIZED => self.err(
                    ErrorKind::Auth,
                    format!("{url} answered {status}: set `bearer_token` or `headers` to credentials it accepts"),
                ),
                StatusCode::FORBIDDEN => self.err(
                    ErrorKind::Permission,
                    format!("{url} answered {status}: the credentials are not allowed to read the metrics"),
                ),
                s if s.is_server_error() => self.err(
                    ErrorKind::Unavailable,
                    format!("{url} answered {status}; the target is failing, check its logs"),
                ),
                _ => self.err(
                    ErrorKind::BadResponse,
                    format!("{url} answered {status}; check that the url is the exposition endpoint (usually /metrics)"),
                ),
            });
        }
        let gzipped = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let bytes = resp.bytes().await.map_err(|e| self.request_error(&e))?;
        let bytes = if gzipped {
            let mut out = Vec::with_capacity(bytes.len() * 8);
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .map_err(|e| {
                    self.err(
                        ErrorKind::BadResponse,
                        format!("{url} sent a gzip body that does not decompress: {e}"),
                    )
                })?;
            out
        } else {
            bytes.to_vec()
        };
        String::from_utf8(bytes).map_err(|e| {
            self.err(
                ErrorKind::BadResponse,
                format!(
                    "{url} sent a body that is not UTF-8 text (bad byte at offset {}); is it the text exposition format?",
                    e.utf8_error().valid_up_to()
                ),
            )
        })
    }

    fn request_error(&self, e: &reqwest::Error) -> PluginError {
        let url = &self.shown_url;
        let cause = causes(e);
        if e.is_timeout() {
            self.err(
                ErrorKind::Timeout,
                format!(
                    "scraping {url} took longer than {}; raise `timeout` or check the target",
                    humantime::format_duration(self.timeout)
                ),
            )
        } else if e.is_connect() {
            self.err(
                ErrorKind::Unavailable,
                format!("cannot connect to {url} ({cause}); is the exporter running and the address right?"),
            )
        } else {
            self.err(
                ErrorKind::Unavailable,
                format!(
                    "scraping {url} failed ({cause}); the target may have closed the connection"
                ),
            )
        }
    }

    /// Scrapes and converts once. The readings are returned only when the whole body
    /// parsed; a bad line rejects it, as Prometheus does.
    async fn scrape(
        &self,
        wanted: &MetricSelection,
    ) -> Result<(crate::common::prom_points::Converted, f64), PluginError> {
        let started = Instant::now();
        let body = self.fetch().await?;
        let converted = self.convert.convert(&body, wanted).map_err(|e| {
            self.err(
                ErrorKind::BadResponse,
                format!(
                    "cannot read the exposition from {}: {e}; the target sent invalid text format",
                    self.shown_url
                ),
            )
            .with("line", e.line.to_string())
        })?;
        Ok((converted, started.elapsed().as_secs_f64()))
    }

    fn health(
        &self,
        req: &CollectRequest,
        resource: &std::sync::Arc<ResourceRef>,
        up: bool,
        scrape: Option<(f64, usize)>,
        out: &mut Output,
    ) {
        let mut values = vec![("up", Unit::None, if up { 1.0 } else { 0.0 })];
        if let Some((duration, samples)) = scrape {
            values.push(("scrape.duration", Unit::Seconds, duration));
            values.push(("scrape.samples", Unit::Count, samples as f64));
        }
        for (metric, unit, value) in values {
            if req.metrics.matches(metric) {
                out.points.push(Point {
                    metric: metric.into(),
                    unit,
                    stat: Stat::Last,
                    period_s: 0,
                    ts: req.window.end,
                    value,
                    resource: resource.clone(),
                    labels: Default::default(),
                });
            }
        }
    }
}

/// An error's chain of causes, without the URL reqwest puts in its own message.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    if parts.is_empty() {
        "request failed".into()
    } else {
        parts.join(": ")
    }
}

#[async_trait]
impl Collector for Prometheus {
    async fn verify(&mut self) -> Result<(), PluginError> {
        self.scrape(&MetricSelection::all()).await.map(|_| ())
    }

    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let resource = self.resource.build("service", &self.default_id, Utc::now());
        let res_ref = std::sync::Arc::new(resource.reference());
        out.resources.push(resource);

        let mut result = self.scrape(&req.metrics).await;
        if let Ok((first, _)) = &result {
            let has_counters = first
                .readings
                .iter()
                .any(|r| matches!(r.kind, crate::common::series::ReadingKind::Counter { .. }));
            if !self.state.has_previous() && has_counters && !self.warmup.is_zero() {
                // Only the counters' values matter from this scrape: feed them, drop points.
                let (first, _) = result.expect("checked Ok");
                let mut e = self
                    .state
                    .begin((self.clock)(), res_ref.clone(), req.window.end);
                let mut discard = Vec::new();
                for r in first.readings {
                    e.push(r, &mut discard);
                }
                e.finish();
                tokio::time::sleep(self.warmup).await;
                result = self.scrape(&req.metrics).await;
            }
        }
        match result {
            Ok((converted, duration)) => {
                let mut e = self
                    .state
                    .begin((self.clock)(), res_ref.clone(), req.window.end);
                out.points.reserve(converted.readings.len() + 3);
                for r in converted.readings {
                    e.push(r, &mut out.points);
                }
                e.finish();
                self.health(
                    req,
                    &res_ref,
                    true,
                    Some((duration, converted.samples)),
                    out,
                );
            }
            Err(err) => {
                tracing::debug!(target: "skymeter::prometheus", "{err}");
                self.health(req, &res_ref, false, None, out);
                out.errors.push(err);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
