//! Resource, Point, Cost, Batch: the JSON shapes on the wire (see `docs/format.md`).

use crate::{PointLabels, Stat, Unit, SCHEMA_VERSION};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Free-form string labels. Ordered, so that output and series identity are stable.
pub type Labels = BTreeMap<String, String>;

fn is_empty_map<K, V>(m: &BTreeMap<K, V>) -> bool {
    m.is_empty()
}

fn no_labels(l: &PointLabels) -> bool {
    l.is_empty()
}

/// What identifies a resource across the whole fleet: the provider's id is unique only
/// within its account and region.
//
// Every point carries one, so its parts are `SmolStr`s: up to 23 bytes (an account id, a
// region, an instance id) they live inside the struct, longer ones (ARNs, Azure resource
// URIs) are shared between clones, and neither allocates per point.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    /// `aws`, `gcp`, `azure`, `host`, `custom`, …
    #[schemars(with = "String")]
    pub provider: SmolStr,
    /// AWS account id, GCP project id, Azure subscription id; the host name for hosts.
    #[serde(default)]
    #[schemars(with = "String")]
    pub account: SmolStr,
    /// Cloud region (`us-east-1`, `europe-west1`, `westeurope`); empty when it has none.
    #[serde(default)]
    #[schemars(with = "String")]
    pub region: SmolStr,
    /// The provider's own id of the resource (instance id, ARN, resource URI, host name).
    #[schemars(with = "String")]
    pub id: SmolStr,
}

impl ResourceRef {
    /// `provider/account/region/id`: the key the server and the UI use.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.provider, self.account, self.region, self.id
        )
    }
}

/// Something that exists: an instance, a bucket, a host, a scrape target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub provider: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub region: String,
    /// Normalized kind: `compute.instance`, `database.instance`, `function`,
    /// `storage.bucket`, `storage.volume`, `k8s.cluster`, `k8s.node_group`, `host`, `service`, …
    pub kind: String,
    /// The provider's type name: `AWS::EC2::Instance`, `compute.googleapis.com/Instance`,
    /// `Microsoft.Compute/virtualMachines`.
    #[serde(default)]
    pub native_type: String,
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub tags: Labels,
    /// Kind-specific facts: instance type, state, vCPUs, memory bytes, engine, …
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub observed_at: DateTime<Utc>,
}

impl Resource {
    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            provider: SmolStr::new(&self.provider),
            account: SmolStr::new(&self.account),
            region: SmolStr::new(&self.region),
            id: SmolStr::new(&self.id),
        }
    }
}

/// One measurement of one metric of one resource over one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// Normalized dotted name, e.g. `cpu.utilization` (see the catalog in `docs/format.md`).
    #[schemars(with = "String")]
    pub metric: SmolStr,
    pub unit: Unit,
    pub stat: Stat,
    /// Length of the period the value summarises, in seconds (0 for an instantaneous read).
    pub period_s: u32,
    /// End of the period, UTC.
    pub ts: DateTime<Utc>,
    /// Always finite.
    pub value: f64,
    // Shared: every point of a resource carries the same identity, so a collection of
    // 10,000 instances × 24 series holds one `ResourceRef` per instance, not per point
    // (it is 96 bytes, more than half of a point). Serialized as the plain object.
    pub resource: Arc<ResourceRef>,
    /// Extra dimensions of the series (`cpu = "3"`, `device = "sda"`, `mountpoint = "/"`).
    #[serde(default, skip_serializing_if = "no_labels")]
    #[schemars(with = "Labels")]
    pub labels: PointLabels,
}

/// Where a cost line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CostSource {
    /// Read from the provider's billing API or export.
    Billed,
    /// Computed by skymeter from usage and a price table.
    Estimated,
}

/// FOCUS `ChargeCategory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ChargeCategory {
    Usage,
    Purchase,
    Tax,
    Credit,
    Adjustment,
}

/// A cost line, with the FinOps FOCUS 1.2 column names so that it loads into FOCUS tooling
/// unchanged. skymeter's own columns carry the `x_` prefix, as FOCUS asks of extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Cost {
    pub billed_cost: f64,
    pub effective_cost: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_cost: Option<f64>,
    /// ISO 4217 code, e.g. `USD`.
    pub billing_currency: String,
    pub charge_period_start: DateTime<Utc>,
    /// Exclusive.
    pub charge_period_end: DateTime<Utc>,
    pub charge_category: ChargeCategory,
    /// `Amazon Web Services`, `Google Cloud`, `Microsoft`, …
    pub provider_name: String,
    pub service_name: String,
    /// FOCUS service category: `Compute`, `Storage`, `Databases`, `Networking`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_category: Option<String>,
    /// AWS account, GCP project, Azure subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_unit: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub tags: Labels,
    #[serde(rename = "x_source")]
    pub x_source: CostSource,
    /// For `estimated` lines: the date (`YYYY-MM-DD`) of the price table the cost was
    /// computed from, so a reader knows how current the prices were.
    #[serde(
        rename = "x_price_date",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub x_price_date: Option<String>,
}

/// A collector's failure, carried in the batch so that a partial failure is visible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectError {
    /// The plugin instance that failed (`aws`, `prometheus`, …).
    pub plugin: String,
    /// What went wrong and what to do about it. Never contains a secret.
    pub message: String,
    /// Where: `account`, `region`, `api`, `url`, `command`, …
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub context: Labels,
    pub at: DateTime<Utc>,
}

/// The half-open time range `[start, end)` a collection covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).num_milliseconds() as f64 / 1000.0
    }
}

/// The envelope that moves between agent, publishers and server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Record format version; see [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Unique per batch; receivers dedupe retried deliveries on it.
    pub batch_id: uuid::Uuid,
    pub agent_id: String,
    /// Name of the task that produced the batch.
    pub task: String,
    pub collected_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub points: Vec<Point>,
    #[serde(default)]
    pub costs: Vec<Cost>,
    #[serde(default)]
    pub errors: Vec<CollectError>,
}

impl Batch {
    /// An empty batch with a fresh, time-ordered id.
    pub fn new(
        agent_id: impl Into<String>,
        task: impl Into<String>,
        collected_at: DateTime<Utc>,
    ) -> Batch {
        Batch {
            schema: SCHEMA_VERSION,
            batch_id: uuid::Uuid::now_v7(),
            agent_id: agent_id.into(),
            task: task.into(),
            collected_at,
            window: None,
            resources: Vec::new(),
            points: Vec::new(),
            costs: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.points.is_empty()
            && self.costs.is_empty()
            && self.errors.is_empty()
    }

    /// Every record of the batch, in the order resources, points, costs, errors.
    pub fn records(&self) -> impl Iterator<Item = RecordRef<'_>> {
        self.resources
            .iter()
            .map(RecordRef::Resource)
            .chain(self.points.iter().map(RecordRef::Point))
            .chain(self.costs.iter().map(RecordRef::Cost))
            .chain(self.errors.iter().map(RecordRef::Error))
    }

    /// Checks what serde cannot: finite values, non-empty identities, names, periods.
    /// Returns every problem with the path of the field (`points[17].value`), so that a
    /// receiver can reject a bad batch whole and say exactly why.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        if self.schema != SCHEMA_VERSION {
            errs.push(FieldError::new(
                "schema",
                format!(
                    "unsupported schema {}; this build speaks {SCHEMA_VERSION}",
                    self.schema
                ),
            ));
        }
        if self.task.is_empty() {
            errs.push(FieldError::new("task", "must not be empty"));
        }
        for (i, r) in self.resources.iter().enumerate() {
            check_name(
                &mut errs,
                || format!("resources[{i}].provider"),
                &r.provider,
            );
            check_non_empty(&mut errs, || format!("resources[{i}].id"), &r.id);
            check_non_empty(&mut errs, || format!("resources[{i}].kind"), &r.kind);
        }
        for (i, p) in self.points.iter().enumerate() {
            check_metric_name(&mut errs, || format!("points[{i}].metric"), &p.metric);
            if !p.value.is_finite() {
                errs.push(FieldError::new(
                    format!("points[{i}].value"),
                    "must be a finite number",
                ));
            }
            check_name(
                &mut errs,
                || format!("points[{i}].resource.provider"),
                &p.resource.provider,
            );
            check_non_empty(
                &mut errs,
                || format!("points[{i}].resource.id"),
                &p.resource.id,
            );
        }
        for (i, c) in self.costs.iter().enumerate() {
            for (field, v) in [
                ("BilledCost", c.billed_cost),
                ("EffectiveCost", c.effective_cost),
            ] {
                if !v.is_finite() {
                    errs.push(FieldError::new(
                        format!("costs[{i}].{field}"),
                        "must be a finite number",
                    ));
                }
            }
            if c.charge_period_end < c.charge_period_start {
                errs.push(FieldError::new(
                    format!("costs[{i}].ChargePeriodEnd"),
                    "is before ChargePeriodStart",
                ));
            }
            if c.billing_currency.len() != 3
                || !c.billing_currency.bytes().all(|b| b.is_ascii_uppercase())
            {
                errs.push(FieldError::new(
                    format!("costs[{i}].BillingCurrency"),
                    format!(
                        "`{}` is not an ISO 4217 code such as USD",
                        c.billing_currency
                    ),
                ));
            }
        }
        if let Some(w) = &self.window {
            if w.end < w.start {
                errs.push(FieldError::new("window.end", "is before window.start"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// One record of any type, as written one per line by `--format json`: the record's own
/// fields plus `"type": "resource" | "point" | "cost" | "error"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Resource(Resource),
    Point(Point),
    Cost(Cost),
    Error(CollectError),
}

/// Borrowed form of [`Record`], to serialize without cloning.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RecordRef<'a> {
    Resource(&'a Resource),
    Point(&'a Point),
    Cost(&'a Cost),
    Error(&'a CollectError),
}

/// A problem with one field of a record, named by its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn check_non_empty(errs: &mut Vec<FieldError>, path: impl Fn() -> String, v: &str) {
    if v.is_empty() {
        errs.push(FieldError::new(path(), "must not be empty"));
    }
}

fn check_name(errs: &mut Vec<FieldError>, path: impl Fn() -> String, v: &str) {
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        errs.push(FieldError::new(
            path(),
            format!("`{v}` must be non-empty lowercase letters, digits, `_` or `-`"),
        ));
    }
}

/// Metric names: what the normalized catalog uses (dotted lowercase) plus what native
/// sources bring (Prometheus names with `:` and upper case, `/`-separated namespaces).
pub fn is_valid_metric_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
}

fn check_metric_name(errs: &mut Vec<FieldError>, path: impl Fn() -> String, v: &str) {
    if !is_valid_metric_name(v) {
        errs.push(FieldError::new(
            path(),
            format!("`{v}` is not a metric name: use 1-256 of letters, digits, `_ . : / -`"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: f64) -> Point {
        Point {
            metric: "cpu.utilization".into(),
            unit: Unit::Percent,
            stat: Stat::Avg,
            period_s: 60,
            ts: "2026-11-22T10:00:00Z".parse().unwrap(),
            value,
            resource: ResourceRef {
                provider: "host".into(),
                account: "a".into(),
                region: SmolStr::default(),
                id: "h1".into(),
            }
            .into(),
            labels: PointLabels::new(),
        }
    }

    #[test]
    fn validate_names_the_path_of_every_bad_field() {
        let mut b = Batch::new("agent", "t", Utc::now());
        b.points = vec![point(1.0), point(f64::NAN)];
        b.points[0].metric = "bad name".into();
        let errs = b.validate().unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["points[0].metric", "points[1].value"]);
    }

    #[test]
    fn record_serializes_with_a_type_tag_and_round_trips() {
        let p = point(42.5);
        let line = serde_json::to_string(&RecordRef::Point(&p)).unwrap();
        assert!(
            line.starts_with(r#"{"type":"point","metric":"cpu.utilization""#),
            "{line}"
        );
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, Record::Point(p));
        let unknown = line.replace(r#""stat""#, r#""bogus":1,"stat""#);
        assert!(
            serde_json::from_str::<Record>(&unknown).is_err(),
            "unknown fields are rejected"
        );
    }
}
