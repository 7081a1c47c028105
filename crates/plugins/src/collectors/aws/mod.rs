//! `aws`: EC2 inventory (DescribeInstances, every page) and EC2 metrics from CloudWatch
//! `GetMetricData` only, batched at the API maximum of 500 queries per call (DESIGN §4).
//!
//! Credentials and region come from the AWS SDK's default chain (environment, shared profile,
//! SSO, IMDS, web identity); `profile` and `endpoint_url` override. Throttling is retried by
//! the SDK's standard retry mode (exponential backoff with full jitter).

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_ec2::types::Filter;
use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Labels, Point, Resource, ResourceRef, Stat, Unit};
use skymeter_plugin::config::DurationStr;
use skymeter_plugin::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    MetricInfo, Output, PluginDescription, PluginError, PluginKind, RawConfig,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub mod calls;
pub mod errors;
pub mod pricing;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use calls::ApiCalls;
use errors::api_error;

/// The API maximum of queries in one `GetMetricData` call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// `[[task]] collect = [{ plugin = "aws", ... }]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Regions to collect. Default: the region of the SDK's chain (`AWS_REGION`, the
    /// profile's `region`, IMDS).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Shared-config profile to take credentials and region from. Default: the SDK's chain
    /// (`AWS_PROFILE`, else `default`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Endpoint override for every AWS API (an emulator such as moto). The SDK also honours
    /// `AWS_ENDPOINT_URL`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// CloudWatch period. Default 300s (EC2 basic monitoring); a multiple of 60s.
    #[serde(default = "default_period")]
    pub period: DurationStr,
    /// How far behind the collection's end the last period asked for ends. Default 300s:
    /// CloudWatch publishes EC2 data minutes late (basic monitoring every 5 minutes), so the
    /// newest period would often be missing or partial, and a period skipped once is never
    /// emitted later. "0s" reads the newest period at once (emulators, detailed monitoring).
    #[serde(default = "default_delay")]
    pub delay: DurationStr,
    /// Statistics: any of avg, max, min, sum, count, p95. Default ["avg", "max"]. Each one is
    /// one billed CloudWatch metric per instance and metric.
    #[serde(default = "default_stats")]
    pub stats: Vec<String>,
    /// Only instances with all these tags (`tags = { env = "prod" }`), as DescribeInstances
    /// `tag:KEY` filters.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// GetMetricData calls in flight at once, per region. Default 8.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Seconds between two CloudWatch samples of the instances (300 with basic monitoring, 60
    /// with detailed): max/min/p95 of a counter metric (bytes, packets, ops) are divided by
    /// it to give a per-second rate. Default 300s.
    #[serde(default = "default_period")]
    pub sample_interval: DurationStr,
    /// Tries per AWS call (the first included), with the SDK's jittered exponential backoff
    /// on throttling and 5xx. Default 5.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_period() -> DurationStr {
    DurationStr(Duration::from_secs(300))
}
fn default_delay() -> DurationStr {
    DurationStr(Duration::from_secs(300))
}
fn default_stats() -> Vec<String> {
    vec!["avg".into(), "max".into()]
}
fn default_max_concurrency() -> usize {
    8
}
fn default_attempts() -> u32 {
    5
}

/// How a CloudWatch metric's statistics turn into a normalized value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A level (CPUUtilization): every statistic as is.
    Gauge,
    /// A count per sample (bytes, packets, ops): avg = Sum / period, max/min/p95 = stat /
    /// sample interval, sum = the total in the period.
    Counter,
}

/// One EC2 metric of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Ec2Metric {
    pub cloudwatch: &'static str,
    pub name: &'static str,
    pub unit: Unit,
    /// Unit of `sum` (the total over the period) for counters.
    sum_unit: Unit,
    shape: Shape,
    /// `source` label: `ebs` or `instance_store` for disk metrics.
    source: Option<&'static str>,
}

const fn gauge(cw: &'static str, name: &'static str, unit: Unit) -> Ec2Metric {
    Ec2Metric {
        cloudwatch: cw,
        name,
        unit,
        sum_unit: unit,
        shape: Shape::Gauge,
        source: None,
    }
}
const fn counter(
    cw: &'static str,
    name: &'static str,
    unit: Unit,
    sum_unit: Unit,
    source: Option<&'static str>,
) -> Ec2Metric {
    Ec2Metric {
        cloudwatch: cw,
        name,
        unit,
        sum_unit,
        shape: Shape::Counter,
        source,
    }
}

/// The EC2 catalog: CloudWatch `AWS/EC2` name → normalized name. Disk* (instance store) and
/// EBS* (EBS volumes, Nitro) map to the same names with a `source` label, so a dashboard can
/// sum both or pick one.
pub const EC2_METRICS: [Ec2Metric; 13] = [
    gauge("CPUUtilization", "cpu.utilization", Unit::Percent),
    counter(
        "NetworkIn",
        "network.received_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        None,
    ),
    counter(
        "NetworkOut",
        "network.sent_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        None,
    ),
    counter(
        "NetworkPacketsIn",
        "network.received_pps",
        Unit::CountPerSecond,
        Unit::Count,
        None,
    ),
    counter(
        "NetworkPacketsOut",
        "network.sent_pps",
        Unit::CountPerSecond,
        Unit::Count,
        None,
    ),
    counter(
        "DiskReadOps",
        "disk.read_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("instance_store"),
    ),
    counter(
        "DiskWriteOps",
        "disk.write_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("instance_store"),
    ),
    counter(
        "DiskReadBytes",
        "disk.read_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("instance_store"),
    ),
    counter(
        "DiskWriteBytes",
        "disk.write_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("instance_store"),
    ),
    counter(
        "EBSReadOps",
        "disk.read_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("ebs"),
    ),
    counter(
        "EBSWriteOps",
        "disk.write_iops",
        Unit::CountPerSecond,
        Unit::Count,
        Some("ebs"),
    ),
    counter(
        "EBSReadBytes",
        "disk.read_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("ebs"),
    ),
    counter(
        "EBSWriteBytes",
        "disk.write_throughput",
        Unit::BytesPerSecond,
        Unit::Bytes,
        Some("ebs"),
    ),
];

/// A stat the config allows: its config name, CloudWatch statistic, and record stat.
fn parse_stat(s: &str) -> Option<(&'static str, Stat)> {
    Some(match s {
        "avg" => ("Average", Stat::Avg),
        "max" => ("Maximum", Stat::Max),
        "min" => ("Minimum", Stat::Min),
        "sum" => ("Sum", Stat::Sum),
        "count" => ("SampleCount", Stat::Count),
        "p95" => ("p95", Stat::P95),
        _ => return None,
    })
}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "aws",
            kind: PluginKind::Collector,
            summary: "AWS EC2 instances and their CloudWatch metrics (GetMetricData, 500 queries per call)",
            config_schema: PluginDescription::schema_of::<AwsConfig>,
            metrics,
        },
        build,
    }
}

fn metrics() -> Vec<MetricInfo> {
    let mut out: Vec<MetricInfo> = Vec::new();
    for m in EC2_METRICS {
        if out.iter().any(|o| o.name == m.name) {
            continue;
        }
        let sources: Vec<&str> = EC2_METRICS
            .iter()
            .filter(|o| o.name == m.name)
            .map(|o| o.cloudwatch)
            .collect();
        out.push(MetricInfo {
            name: m.name.into(),
            unit: m.unit,
            stats: vec![
                Stat::Avg,
                Stat::Max,
                Stat::Min,
                Stat::Sum,
                Stat::Count,
                Stat::P95,
            ],
            labels: if m.source.is_some() {
                vec!["source"]
            } else {
                vec![]
            },
            source: format!("CloudWatch AWS/EC2 {}", sources.join(", ")),
            description: format!("EC2 instance {}.", m.name),
        });
    }
    out.push(MetricInfo {
        name: "aws.api_calls".into(),
        unit: Unit::Count,
        stats: vec![Stat::Last],
        labels: vec!["api"],
        source: "skymeter aws collector".into(),
        description: "AWS API calls made by this collection, per API.".into(),
    });
    out
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    Ok(Box::new(Aws::from_raw(raw)?))
}

impl Aws {
    /// Decodes and checks the config.
    pub fn from_raw(raw: &RawConfig<'_>) -> Result<Aws, ConfigError> {
        let cfg: AwsConfig = raw.decode()?;
        let period = cfg.period.0.as_secs();
        if period == 0 || !period.is_multiple_of(60) || cfg.period.0.subsec_nanos() != 0 {
            return Err(raw.error(
            "period",
            "must be a whole number of minutes (CloudWatch periods are multiples of 60s), e.g. \"300s\"",
        ));
        }
        if cfg.sample_interval.0.as_secs() == 0 {
            return Err(raw.error("sample_interval", "must be at least 1s, e.g. \"60s\""));
        }
        if cfg.stats.is_empty() {
            return Err(raw.error(
                "stats",
                "list at least one of avg, max, min, sum, count, p95",
            ));
        }
        let mut stats = Vec::new();
        for s in &cfg.stats {
            match parse_stat(s) {
                Some(p) if !stats.contains(&p) => stats.push(p),
                Some(_) => return Err(raw.error("stats", format!("\"{s}\" is listed twice"))),
                None => {
                    return Err(raw.error(
                        "stats",
                        format!("unknown stat \"{s}\"; allowed: avg, max, min, sum, count, p95"),
                    ))
                }
            }
        }
        if cfg.max_concurrency == 0 {
            return Err(raw.error("max_concurrency", "must be at least 1"));
        }
        if cfg.max_attempts == 0 {
            return Err(raw.error("max_attempts", "must be at least 1"));
        }
        if let Some(u) = &cfg.endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(raw.error("endpoint_url", "must start with http:// or https://"));
            }
        }
        Ok(Aws::new(cfg, stats))
    }
}

pub struct Aws {
    cfg: AwsConfig,
    stats: Vec<(&'static str, Stat)>,
    sdk: Option<SdkConfig>,
    /// Calls per API of the last collection (all regions).
    pub calls: Arc<ApiCalls>,
}

impl Aws {
    fn new(cfg: AwsConfig, stats: Vec<(&'static str, Stat)>) -> Self {
        Aws {
            cfg,
            stats,
            sdk: None,
            calls: Arc::new(ApiCalls::default()),
        }
    }

    async fn sdk_config(&mut self) -> SdkConfig {
        if let Some(c) = &self.sdk {
            return c.clone();
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(self.cfg.max_attempts));
        if let Some(p) = &self.cfg.profile {
            loader = loader.profile_name(p);
        }
        if let Some(u) = &self.cfg.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let c = loader.load().await;
        self.sdk = Some(c.clone());
        c
    }
}

/// The CloudWatch window of a collection: `[start, end)` aligned to the period, and the
/// earliest period end that is emitted (`emit_after`, exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricWindow {
    pub start: i64,
    pub end: i64,
    pub emit_after: i64,
}

/// end = floor(window.end − delay, period); the query asks for max(window length, 2 ×
/// period) so that a lagging or empty bucket does not leave the answer empty, and emits the
/// periods that end in `(end − max(period, window length), end]`.
pub fn metric_window(req_start: i64, req_end: i64, delay: i64, period: i64) -> MetricWindow {
    let shifted = req_end - delay;
    let end = shifted.div_euclid(period) * period;
    let len = (req_end - req_start).max(period);
    let len = (len + period - 1).div_euclid(period) * period;
    MetricWindow {
        start: end - len.max(2 * period),
        end,
        emit_after: end - len,
    }
}

/// One planned query: which instance, metric and stat a query id stands for.
struct Planned {
    instance: usize,
    metric: Ec2Metric,
    stat: (&'static str, Stat),
}

fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

impl Aws {
    async fn regions(&mut self) -> Result<Vec<String>, PluginError> {
        if !self.cfg.regions.is_empty() {
            return Ok(self.cfg.regions.clone());
        }
        match self.sdk_config().await.region() {
            Some(r) => Ok(vec![r.to_string()]),
            None => Err(PluginError::new(
                ErrorKind::Config,
                "no AWS region: set `regions` in the plugin's config, AWS_REGION, or `region` in the profile",
            )),
        }
    }

    async fn inventory(&self, sdk: &SdkConfig, region: &str) -> Result<Vec<Resource>, PluginError> {
        let conf = aws_sdk_ec2::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .build();
        let client = aws_sdk_ec2::Client::from_conf(conf);
        let filters: Vec<Filter> = self
            .cfg
            .tags
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        let mut pages = client
            .describe_instances()
            .set_filters((!filters.is_empty()).then_some(filters))
            .into_paginator()
            .send();
        let now = Utc::now();
        let mut out = Vec::new();
        loop {
            let page = match pages.next().await {
                None => break,
                Some(Ok(p)) => {
                    self.calls.count("ec2:DescribeInstances");
                    p
                }
                Some(Err(e)) => {
                    self.calls.count("ec2:DescribeInstances");
                    return Err(api_error(
                        "DescribeInstances",
                        "ec2:DescribeInstances",
                        region,
                        &e,
                    ));
                }
            };
            for r in page.reservations() {
                let account = r.owner_id().unwrap_or_default().to_string();
                for i in r.instances() {
                    let Some(id) = i.instance_id() else { continue };
                    let tags: Labels = i
                        .tags()
                        .iter()
                        .filter_map(|t| {
                            Some((
                                t.key()?.to_string(),
                                t.value().unwrap_or_default().to_string(),
                            ))
                        })
                        .collect();
                    let mut attributes = BTreeMap::new();
                    let mut put = |k: &str, v: Option<String>| {
                        if let Some(v) = v {
                            attributes.insert(k.to_string(), serde_json::Value::String(v));
                        }
                    };
                    put(
                        "instance_type",
                        i.instance_type().map(|t| t.as_str().to_string()),
                    );
                    put(
                        "state",
                        i.state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_string()),
                    );
                    put(
                        "availability_zone",
                        i.placement()
                            .and_then(|p| p.availability_zone())
                            .map(str::to_string),
                    );
                    put(
                        "platform",
                        Some(i.platform_details().unwrap_or("Linux/UNIX").to_string()),
                    );
                    put(
                        "launch_time",
                        i.launch_time()
                            .and_then(|t| ts_of(t.secs()).map(|d| d.to_rfc3339())),
                    );
                    put("private_ip", i.private_ip_address().map(str::to_string));
                    put("public_ip", i.public_ip_address().map(str::to_string));
                    out.push(Resource {
                        provider: "aws".into(),
                        account: account.clone(),
                        region: region.to_string(),
                        kind: "compute.instance".into(),
                        native_type: "AWS::EC2::Instance".into(),
                        id: id.to_string(),
                        name: tags.get("Name").cloned().unwrap_or_default(),
                        tags,
                        attributes,
                        observed_at: now,
                    });
                }
            }
        }
        Ok(out)
    }

    /// GetMetricData for `instances`: one query per (instance, metric, stat), 500 per call,
    /// `max_concurrency` calls at once. Partial failures go to `errors`.
    async fn metrics(
        &self,
        sdk: &SdkConfig,
        region: &str,
        instances: &[Resource],
        req: &CollectRequest,
        points: &mut Vec<Point>,
        errors: &mut Vec<PluginError>,
    ) {
        let wanted: Vec<Ec2Metric> = EC2_METRICS
            .into_iter()
            .filter(|m| req.metrics.matches(m.name))
            .collect();
        let mut plan = Vec::new();
        for (i, _) in instances.iter().enumerate() {
            for m in &wanted {
                for s in &self.stats {
                    plan.push(Planned {
                        instance: i,
                        metric: *m,
                        stat: *s,
                    });
                }
            }
        }
        if plan.is_empty() {
            return;
        }
        let period = self.cfg.period.0.as_secs() as i64;
        let w = metric_window(
            req.window.start.timestamp(),
            req.window.end.timestamp(),
            self.cfg.delay.0.as_secs() as i64,
            period,
        );
        let conf = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .build();
        let client = aws_sdk_cloudwatch::Client::from_conf(conf);
        let sem = Arc::new(tokio::sync::Semaphore::new(self.cfg.max_concurrency));
        let mut set = tokio::task::JoinSet::new();
        for (chunk_no, chunk) in plan.chunks(MAX_QUERIES_PER_CALL).enumerate() {
            let first = chunk_no * MAX_QUERIES_PER_CALL;
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let metric = Metric::builder()
                        .namespace("AWS/EC2")
                        .metric_name(p.metric.cloudwatch)
                        .dimensions(
                            Dimension::builder()
                                .name("InstanceId")
                                .value(&instances[p.instance].id)
                                .build(),
                        )
                        .build();
                    MetricDataQuery::builder()
                        .id(format!("q{}", first + k))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(metric)
                                .period(period as i32)
                                .stat(match (p.metric.shape, p.stat.1) {
                                    (Shape::Counter, Stat::Avg) => "Sum",
                                    _ => p.stat.0,
                                })
                                .build(),
                        )
                        .return_data(true)
                        .build()
                })
                .collect();
            let client = client.clone();
            let sem = sem.clone();
            let calls = self.calls.clone();
            let region = region.to_string();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let mut results: Vec<(String, Vec<i64>, Vec<f64>)> = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    calls.count("cloudwatch:GetMetricData");
                    let r = client
                        .get_metric_data()
                        .set_metric_data_queries(Some(queries.clone()))
                        .start_time(AwsDateTime::from_secs(w.start))
                        .end_time(AwsDateTime::from_secs(w.end))
                        .set_next_token(token.take())
                        .send()
                        .await;
                    match r {
                        Ok(o) => {
                            for m in o.metric_data_results() {
                                results.push((
                                    m.id().unwrap_or_default().to_string(),
                                    m.timestamps().iter().map(|t| t.secs()).collect(),
                                    m.values().to_vec(),
                                ));
                            }
                            match o.next_token() {
                                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                                _ => return Ok(results),
                            }
                        }
                        Err(e) => {
                            return Err(api_error(
                                "GetMetricData",
                                "cloudwatch:GetMetricData",
                                &region,
                                &e,
                            ));
                        }
                    }
                }
            });
        }
        let sample = self.cfg.sample_interval.0.as_secs_f64();
        while let Some(joined) = set.join_next().await {
            let results = match joined {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    errors.push(e);
                    continue;
                }
                Err(e) => {
                    errors.push(PluginError::new(
                        ErrorKind::Other,
                        format!("GetMetricData task failed: {e}"),
                    ));
                    continue;
                }
            };
            for (id, times, values) in results {
                let Some(p) = id
                    .strip_prefix('q')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| plan.get(n))
                else {
                    errors.push(
                        PluginError::new(
                            ErrorKind::BadResponse,
                            format!("GetMetricData answered an unknown query id {id:?}"),
                        )
                        .with("region", region),
                    );
                    continue;
                };
                let inst = &instances[p.instance];
                let (unit, divisor) = match (p.metric.shape, p.stat.1) {
                    (_, Stat::Count) => (Unit::Count, 1.0),
                    (Shape::Gauge, _) => (p.metric.unit, 1.0),
                    (Shape::Counter, Stat::Avg) => (p.metric.unit, period as f64),
                    (Shape::Counter, Stat::Sum) => (p.metric.sum_unit, 1.0),
                    (Shape::Counter, _) => (p.metric.unit, sample),
                };
                let mut labels = Labels::new();
                if let Some(s) = p.metric.source {
                    labels.insert("source".into(), s.into());
                }
                for (t, v) in times.into_iter().zip(values) {
                    // CloudWatch stamps a period with its start; records carry its end.
                    let end = t + period;
                    if end <= w.emit_after || end > w.end {
                        continue;
                    }
                    let value = v / divisor;
                    if !value.is_finite() {
                        continue;
                    }
                    points.push(Point {
                        metric: p.metric.name.into(),
                        unit,
                        stat: p.stat.1,
                        period_s: period as u32,
                        ts: ts(end),
                        value,
                        resource: ResourceRef {
                            provider: "aws".into(),
                            account: inst.account.clone(),
                            region: region.to_string(),
                            id: inst.id.clone(),
                        },
                        labels: labels.clone(),
                    });
                }
            }
        }
    }
}

fn ts_of(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

#[async_trait]
impl Collector for Aws {
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        self.calls = Arc::new(ApiCalls::default());
        let regions = self.regions().await?;
        let sdk = self.sdk_config().await;
        let mut any_ok = false;
        let mut first_err = None;
        for region in &regions {
            let instances = match self.inventory(&sdk, region).await {
                Ok(i) => i,
                Err(e) => {
                    first_err.get_or_insert_with(|| e.clone());
                    out.errors.push(e);
                    continue;
                }
            };
            any_ok = true;
            self.metrics(
                &sdk,
                region,
                &instances,
                req,
                &mut out.points,
                &mut out.errors,
            )
            .await;
            out.resources.extend(instances);
        }
        let snapshot = self.calls.snapshot();
        tracing::info!(
            target: "skymeter::aws",
            "aws API calls: {}",
            snapshot.iter().map(|(a, n)| format!("{a}={n}")).collect::<Vec<_>>().join(" ")
        );
        if req.metrics.matches("aws.api_calls") {
            for (api, n) in snapshot {
                out.points.push(Point {
                    metric: "aws.api_calls".into(),
                    unit: Unit::Count,
                    stat: Stat::Last,
                    period_s: 0,
                    ts: req.window.end,
                    value: n as f64,
                    resource: ResourceRef {
                        provider: "aws".into(),
                        account: String::new(),
                        region: String::new(),
                        id: "skymeter-aws-collector".into(),
                    },
                    labels: [("api".to_string(), api.to_string())].into(),
                });
            }
        }
        match (any_ok, first_err) {
            (false, Some(e)) => {
                // Nothing collected: the errors already pushed describe every region; return
                // the first as the collection's failure.
                out.errors.retain(|x| x.message != e.message);
                Err(e)
            }
            _ => Ok(()),
        }
    }
}
