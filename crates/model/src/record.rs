//! Resource, Point, Cost, Batch: the JSON shapes on the wire (see `docs/format.md`).

use crate::labels::{Labels, PointLabels};
use crate::limits::{self, MAX_ID_CHARS, MAX_KEY_CHARS, MAX_LABELS, MAX_VALUE_CHARS};
use crate::{whole, Stat, Unit};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Version of the record format. Bump it on any incompatible change to the JSON shape.
pub const SCHEMA_VERSION: u32 = 1;

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
    #[schemars(schema_with = "limits::provider_schema")]
    pub provider: SmolStr,
    /// AWS account id, GCP project id, Azure subscription id; the host name for hosts.
    #[serde(default)]
    #[schemars(schema_with = "limits::id_schema")]
    pub account: SmolStr,
    /// Cloud region (`us-east-1`, `europe-west1`, `westeurope`); empty when it has none.
    #[serde(default)]
    #[schemars(schema_with = "limits::id_schema")]
    pub region: SmolStr,
    /// The provider's own id of the resource (instance id, ARN, resource URI, host name).
    #[schemars(schema_with = "limits::required_id_schema")]
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
    #[schemars(schema_with = "limits::provider_schema")]
    pub provider: String,
    #[serde(default)]
    #[schemars(schema_with = "limits::id_schema")]
    pub account: String,
    #[serde(default)]
    #[schemars(schema_with = "limits::id_schema")]
    pub region: String,
    /// Normalized kind: `compute.instance`, `database.instance`, `function`,
    /// `storage.bucket`, `storage.volume`, `k8s.cluster`, `k8s.node_group`, `host`, `service`, …
    #[schemars(schema_with = "limits::required_id_schema")]
    pub kind: String,
    /// The provider's type name: `AWS::EC2::Instance`, `compute.googleapis.com/Instance`,
    /// `Microsoft.Compute/virtualMachines`.
    #[serde(default)]
    #[schemars(schema_with = "limits::id_schema")]
    pub native_type: String,
    #[schemars(schema_with = "limits::required_id_schema")]
    pub id: String,
    #[serde(default)]
    #[schemars(schema_with = "limits::id_schema")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    #[schemars(schema_with = "limits::labels_schema")]
    pub tags: Labels,
    /// Kind-specific facts: instance type, state, vCPUs, memory bytes, engine, …
    #[serde(default, skip_serializing_if = "is_empty_map")]
    #[schemars(schema_with = "limits::attributes_schema")]
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
    #[schemars(schema_with = "limits::metric_schema")]
    pub metric: SmolStr,
    pub unit: Unit,
    pub stat: Stat,
    /// Length of the period the value summarises, in seconds (0 for an instantaneous read).
    #[serde(deserialize_with = "whole::u32")]
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
    #[schemars(schema_with = "limits::labels_schema")]
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
    /// Priced by skymeter's rating engine from usage and the operator's rating rules
    /// (chargeback, showback, markups; see `docs/rating.md`).
    Rated,
}

impl CostSource {
    /// Every source, in the order they are listed to users.
    pub const ALL: [CostSource; 3] = [CostSource::Billed, CostSource::Estimated, CostSource::Rated];

    /// The name on the wire (`x_source`) and in query parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Billed => "billed",
            CostSource::Estimated => "estimated",
            CostSource::Rated => "rated",
        }
    }

    /// The source named `name` (as [`CostSource::as_str`] writes it).
    pub fn parse(name: &str) -> Option<CostSource> {
        CostSource::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The FOCUS specification version cost lines follow (`x_focus_version`).
pub const FOCUS_VERSION: &str = "1.2";

fn focus_version() -> String {
    FOCUS_VERSION.to_string()
}

fn is_focus_version(v: &str) -> bool {
    v == FOCUS_VERSION
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

/// FOCUS `ChargeClass`: set only on a line that corrects one of an earlier billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ChargeClass {
    Correction,
}

/// FOCUS `ChargeFrequency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ChargeFrequency {
    #[serde(rename = "One-Time")]
    OneTime,
    Recurring,
    #[serde(rename = "Usage-Based")]
    UsageBased,
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
    /// The cost at the prices negotiated in contracts (before commitment discounts
    /// are amortized). Absent: the source does not know it, and exports use the billed cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracted_cost: Option<f64>,
    /// The account that receives the invoice (AWS payer account, Azure billing account,
    /// GCP billing account). Absent: exports use `SubAccountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub billing_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub billing_account_name: Option<String>,
    /// What was charged, in words (`t3.micro running hours in us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub charge_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_class: Option<ChargeClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_frequency: Option<ChargeFrequency>,
    /// Who sold the service (a marketplace seller, or the provider). Absent: the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub publisher_name: Option<String>,
    /// Who issues the invoice. Absent: the provider (rated lines: whoever runs skymeter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub invoice_issuer_name: Option<String>,
    /// ISO 4217 code, e.g. `USD`.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub billing_currency: String,
    pub charge_period_start: DateTime<Utc>,
    /// Exclusive.
    pub charge_period_end: DateTime<Utc>,
    pub charge_category: ChargeCategory,
    /// `Amazon Web Services`, `Google Cloud`, `Microsoft`, …
    #[schemars(schema_with = "limits::id_schema")]
    pub provider_name: String,
    #[schemars(schema_with = "limits::id_schema")]
    pub service_name: String,
    /// FOCUS service category: `Compute`, `Storage`, `Databases`, `Networking`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub service_category: Option<String>,
    /// AWS account, GCP project, Azure subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub sub_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub region_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub sku_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub pricing_unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub consumed_unit: Option<String>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    #[schemars(schema_with = "limits::labels_schema")]
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
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub x_price_date: Option<String>,
    /// The FOCUS version the line follows ([`FOCUS_VERSION`]; the default when absent).
    #[serde(
        rename = "x_focus_version",
        default = "focus_version",
        skip_serializing_if = "is_focus_version"
    )]
    #[schemars(schema_with = "limits::optional_id_schema")]
    pub x_focus_version: String,
}

/// An empty line: zero costs in USD over an empty period at the epoch, `Usage`, `billed`,
/// no names. Not valid as it is (`Batch::validate` wants a provider and a service): for
/// filling in the fields one sets, `Cost { billed_cost, .., ..Default::default() }`.
impl Default for Cost {
    fn default() -> Cost {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        Cost::billed(
            "",
            ChargeCategory::Usage,
            0.0,
            0.0,
            "USD".to_string(),
            epoch,
            epoch,
            String::new(),
        )
    }
}

impl Cost {
    /// A line read from a provider's billing source (`x_source = billed`): what was billed
    /// for `service_name` over the charge period, the effective cost after credits and
    /// discounts. The columns a source may know besides (`sub_account_id`, `region_id`,
    /// `resource_id`, …) start empty: set them with `Cost { .., ..Cost::billed(..) }`.
    #[allow(clippy::too_many_arguments)]
    pub fn billed(
        provider_name: &str,
        charge_category: ChargeCategory,
        billed_cost: f64,
        effective_cost: f64,
        billing_currency: String,
        charge_period_start: DateTime<Utc>,
        charge_period_end: DateTime<Utc>,
        service_name: String,
    ) -> Cost {
        Cost {
            billed_cost,
            effective_cost,
            list_cost: None,
            contracted_cost: None,
            billing_account_id: None,
            billing_account_name: None,
            charge_description: None,
            charge_class: None,
            charge_frequency: None,
            publisher_name: None,
            invoice_issuer_name: None,
            billing_currency,
            charge_period_start,
            charge_period_end,
            charge_category,
            provider_name: provider_name.to_string(),
            service_name,
            service_category: None,
            sub_account_id: None,
            region_id: None,
            resource_id: None,
            resource_type: None,
            sku_id: None,
            pricing_quantity: None,
            pricing_unit: None,
            consumed_quantity: None,
            consumed_unit: None,
            tags: Default::default(),
            x_source: CostSource::Billed,
            x_price_date: None,
            x_focus_version: focus_version(),
        }
    }
}

/// A collector's failure, carried in the batch so that a partial failure is visible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectError {
    /// The plugin instance that failed (`aws`, `prometheus`, …).
    #[schemars(schema_with = "limits::id_schema")]
    pub plugin: String,
    /// What went wrong and what to do about it. Never contains a secret.
    #[schemars(schema_with = "limits::message_schema")]
    pub message: String,
    /// Where: `account`, `region`, `api`, `url`, `command`, …
    #[serde(default, skip_serializing_if = "is_empty_map")]
    #[schemars(schema_with = "limits::labels_schema")]
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
    #[serde(deserialize_with = "whole::u32")]
    #[schemars(range(min = 1, max = 1))]
    pub schema: u32,
    /// Unique per batch, never the nil UUID; receivers dedupe retried deliveries on it.
    #[schemars(schema_with = "limits::batch_id_schema")]
    pub batch_id: uuid::Uuid,
    #[schemars(schema_with = "limits::id_schema")]
    pub agent_id: String,
    /// Name of the task that produced the batch.
    #[schemars(schema_with = "limits::required_id_schema")]
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

    /// SHA-256 of the batch's content, the same for every serialization of it: a retry
    /// that an agent wrote again (other key order, another timestamp offset, escapes, a
    /// number written `60.0`) hashes the same, a changed record does not. Receivers keep
    /// it per `batch_id` to tell a retried batch (a duplicate) from a reused id (a
    /// conflict).
    //
    // BLAKE3 over a byte stream: points, the bulk, field by field (length-prefixed, values
    // as their bits); the rest is small and goes through serde_json, whose maps are
    // ordered. The stream is gathered in 64 KiB pieces so that BLAKE3 hashes many chunks
    // at once (SIMD across chunks); fed a field at a time it is several times slower.
    // SHA-256 of the same stream ("v1") cost a fifth of the store's ingest CPU even with
    // the CPU's SHA instructions; it existed only in unreleased builds, whose data
    // directories may answer 409 to a batch retried across the upgrade.
    pub fn content_hash(&self) -> [u8; 32] {
        const PIECE: usize = 1 << 16;
        struct Stream {
            hasher: blake3::Hasher,
            buf: Vec<u8>,
        }
        impl Stream {
            fn bytes(&mut self, b: &[u8]) {
                self.buf.extend_from_slice(b);
                if self.buf.len() >= PIECE {
                    self.hasher.update(&self.buf);
                    self.buf.clear();
                }
            }
            fn str(&mut self, s: &str) {
                self.bytes(&(s.len() as u64).to_le_bytes());
                self.bytes(s.as_bytes());
            }
        }
        impl std::io::Write for Stream {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.bytes(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut h = Stream {
            hasher: blake3::Hasher::new(),
            buf: Vec::with_capacity(PIECE + 4096),
        };
        h.bytes(b"skymeter batch content v2\0");
        h.bytes(&self.schema.to_le_bytes());
        h.bytes(self.batch_id.as_bytes());
        h.str(&self.agent_id);
        h.str(&self.task);
        let rest = (
            self.collected_at,
            &self.window,
            &self.resources,
            &self.costs,
            &self.errors,
        );
        serde_json::to_writer(&mut h, &rest).expect("records serialize");
        h.bytes(&(self.points.len() as u64).to_le_bytes());
        for p in &self.points {
            h.str(&p.metric);
            h.str(p.unit.as_str());
            h.str(p.stat.as_str());
            h.bytes(&p.period_s.to_le_bytes());
            h.bytes(&p.ts.timestamp().to_le_bytes());
            h.bytes(&p.ts.timestamp_subsec_nanos().to_le_bytes());
            h.bytes(&p.value.to_bits().to_le_bytes());
            for part in [
                &p.resource.provider,
                &p.resource.account,
                &p.resource.region,
                &p.resource.id,
            ] {
                h.str(part);
            }
            h.bytes(&(p.labels.len() as u64).to_le_bytes());
            for (k, v) in &p.labels {
                h.str(k);
                h.str(v);
            }
        }
        let Stream { mut hasher, buf } = h;
        hasher.update(&buf);
        hasher.finalize().into()
    }

    /// Checks what serde cannot: finite values, non-empty identities, names, periods, and
    /// the bounds of [`crate::limits`] (lengths, label counts, no control characters, a
    /// non-nil `batch_id`). Returns every problem with the path of the field
    /// (`points[17].value`), so that a receiver can reject a bad batch whole and say
    /// exactly why.
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
        if self.batch_id.is_nil() {
            errs.push(FieldError::new(
                "batch_id",
                "must not be the nil UUID: receivers dedupe on it, so every batch needs its own \
                 (agents make a UUID v7 per batch)",
            ));
        }
        check_id(&mut errs, || "agent_id".into(), &self.agent_id, false);
        check_id(&mut errs, || "task".into(), &self.task, true);
        for (i, r) in self.resources.iter().enumerate() {
            let path = |f: &str| format!("resources[{i}].{f}");
            check_name(&mut errs, || path("provider"), &r.provider);
            check_id(&mut errs, || path("account"), &r.account, false);
            check_id(&mut errs, || path("region"), &r.region, false);
            check_id(&mut errs, || path("kind"), &r.kind, true);
            check_id(&mut errs, || path("native_type"), &r.native_type, false);
            check_id(&mut errs, || path("id"), &r.id, true);
            check_id(&mut errs, || path("name"), &r.name, false);
            check_labels(&mut errs, || path("tags"), &r.tags);
            check_attributes(&mut errs, || path("attributes"), &r.attributes);
        }
        // Points of one resource share its `ResourceRef`: check each one once.
        let mut checked: Option<&Arc<ResourceRef>> = None;
        for (i, p) in self.points.iter().enumerate() {
            check_metric_name(&mut errs, || format!("points[{i}].metric"), &p.metric);
            if !p.value.is_finite() {
                errs.push(FieldError::new(
                    format!("points[{i}].value"),
                    "must be a finite number",
                ));
            }
            if !checked.is_some_and(|c| Arc::ptr_eq(c, &p.resource)) {
                let before = errs.len();
                let r = &p.resource;
                let path = |f: &str| format!("points[{i}].resource.{f}");
                check_name(&mut errs, || path("provider"), &r.provider);
                check_id(&mut errs, || path("account"), &r.account, false);
                check_id(&mut errs, || path("region"), &r.region, false);
                check_id(&mut errs, || path("id"), &r.id, true);
                checked = (errs.len() == before).then_some(&p.resource);
            }
            if !p.labels.is_empty() {
                check_labels(&mut errs, || format!("points[{i}].labels"), &p.labels);
            }
        }
        for (i, c) in self.costs.iter().enumerate() {
            for (field, v) in [
                ("BilledCost", Some(c.billed_cost)),
                ("EffectiveCost", Some(c.effective_cost)),
                ("ListCost", c.list_cost),
                ("ContractedCost", c.contracted_cost),
                ("PricingQuantity", c.pricing_quantity),
                ("ConsumedQuantity", c.consumed_quantity),
            ] {
                if v.is_some_and(|v| !v.is_finite()) {
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
                        limits::shown(&c.billing_currency)
                    ),
                ));
            }
            check_id(
                &mut errs,
                || format!("costs[{i}].ProviderName"),
                &c.provider_name,
                false,
            );
            check_id(
                &mut errs,
                || format!("costs[{i}].ServiceName"),
                &c.service_name,
                false,
            );
            for (field, v) in [
                ("ServiceCategory", &c.service_category),
                ("SubAccountId", &c.sub_account_id),
                ("RegionId", &c.region_id),
                ("ResourceId", &c.resource_id),
                ("ResourceType", &c.resource_type),
                ("SkuId", &c.sku_id),
                ("PricingUnit", &c.pricing_unit),
                ("ConsumedUnit", &c.consumed_unit),
                ("x_price_date", &c.x_price_date),
                ("BillingAccountId", &c.billing_account_id),
                ("BillingAccountName", &c.billing_account_name),
                ("ChargeDescription", &c.charge_description),
                ("PublisherName", &c.publisher_name),
                ("InvoiceIssuerName", &c.invoice_issuer_name),
            ] {
                if let Some(v) = v {
                    check_id(&mut errs, || format!("costs[{i}].{field}"), v, false);
                }
            }
            check_id(
                &mut errs,
                || format!("costs[{i}].x_focus_version"),
                &c.x_focus_version,
                false,
            );
            check_labels(&mut errs, || format!("costs[{i}].Tags"), &c.tags);
        }
        for (i, e) in self.errors.iter().enumerate() {
            check_id(
                &mut errs,
                || format!("errors[{i}].plugin"),
                &e.plugin,
                false,
            );
            let path = || format!("errors[{i}].message");
            if limits::too_long(&e.message, limits::MAX_MESSAGE_CHARS) {
                errs.push(too_long(path(), limits::MAX_MESSAGE_CHARS));
            }
            if limits::has_control_in_text(&e.message) {
                errs.push(FieldError::new(
                    path(),
                    "contains a control character other than tab and line breaks (NUL, ESC, …); remove it",
                ));
            }
            check_labels(&mut errs, || format!("errors[{i}].context"), &e.context);
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
    /// Boxed: a cost line is twice the size of the other records.
    Cost(Box<Cost>),
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

fn too_long(path: String, max: usize) -> FieldError {
    FieldError::new(
        path,
        format!("is longer than the limit of {max} characters (docs/format.md, Limits)"),
    )
}

const CONTROL: &str =
    "contains a control character (NUL, tab, line break, ESC, …); identifiers, names, labels and tags cannot";

/// An identifier or name: bounded, no control characters, and not empty when `required`.
fn check_id(errs: &mut Vec<FieldError>, path: impl Fn() -> String, v: &str, required: bool) {
    if v.is_empty() {
        if required {
            errs.push(FieldError::new(path(), "must not be empty"));
        }
        return;
    }
    if limits::too_long(v, MAX_ID_CHARS) {
        errs.push(too_long(path(), MAX_ID_CHARS));
    }
    if limits::has_control(v) {
        errs.push(FieldError::new(path(), CONTROL));
    }
}

/// A map key (label, tag, attribute, context).
fn check_key(errs: &mut Vec<FieldError>, path: &dyn Fn() -> String, k: &str) {
    if k.is_empty() {
        errs.push(FieldError::new(path(), "has an empty key"));
    } else if limits::too_long(k, MAX_KEY_CHARS) {
        errs.push(FieldError::new(
            path(),
            format!(
                "key `{}` is longer than the limit of {MAX_KEY_CHARS} characters (docs/format.md, Limits)",
                limits::shown(k)
            ),
        ));
    } else if limits::has_control(k) {
        errs.push(FieldError::new(
            path(),
            format!("key `{}` {CONTROL}", limits::shown(k)),
        ));
    }
}

fn check_count(errs: &mut Vec<FieldError>, path: &dyn Fn() -> String, n: usize) -> bool {
    if n > MAX_LABELS {
        errs.push(FieldError::new(
            path(),
            format!("has {n} entries; the limit is {MAX_LABELS} (docs/format.md, Limits)"),
        ));
        return false;
    }
    true
}

fn check_labels(errs: &mut Vec<FieldError>, path: impl Fn() -> String, labels: &Labels) {
    if !check_count(errs, &path, labels.len()) {
        return; // one error for the count, not one per entry
    }
    for (k, v) in labels {
        check_key(errs, &path, k);
        let vpath = || format!("{}[\"{}\"]", path(), limits::shown(k));
        if limits::too_long(v, MAX_VALUE_CHARS) {
            errs.push(too_long(vpath(), MAX_VALUE_CHARS));
        }
        if limits::has_control(v) {
            errs.push(FieldError::new(vpath(), CONTROL));
        }
    }
}

fn check_attributes(
    errs: &mut Vec<FieldError>,
    path: impl Fn() -> String,
    attrs: &BTreeMap<String, serde_json::Value>,
) {
    if !check_count(errs, &path, attrs.len()) {
        return;
    }
    for (k, v) in attrs {
        check_key(errs, &path, k);
        let vpath = || format!("{}[\"{}\"]", path(), limits::shown(k));
        // Compact JSON is how the store keeps it; a value in another form is no larger.
        let size = serde_json::to_string(v).map_or(usize::MAX, |t| t.chars().count());
        if size > limits::MAX_ATTRIBUTE_CHARS {
            errs.push(FieldError::new(
                vpath(),
                format!(
                    "is {size} characters as JSON; the limit is {} (docs/format.md, Limits)",
                    limits::MAX_ATTRIBUTE_CHARS
                ),
            ));
        } else if json_has_control(v) {
            errs.push(FieldError::new(
                vpath(),
                "holds a string with a control character other than tab and line breaks (NUL, ESC, …)",
            ));
        }
    }
}

fn json_has_control(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => limits::has_control_in_text(s),
        serde_json::Value::Array(a) => a.iter().any(json_has_control),
        serde_json::Value::Object(m) => m
            .iter()
            .any(|(k, v)| limits::has_control_in_text(k) || json_has_control(v)),
        _ => false,
    }
}

fn check_name(errs: &mut Vec<FieldError>, path: impl Fn() -> String, v: &str) {
    if v.is_empty()
        || v.len() > limits::MAX_PROVIDER_CHARS
        || !v
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        errs.push(FieldError::new(
            path(),
            format!(
                "`{}` must be 1-{} lowercase letters, digits, `_` or `-`",
                limits::shown(v),
                limits::MAX_PROVIDER_CHARS
            ),
        ));
    }
}

/// Metric names: what the normalized catalog uses (dotted lowercase) plus what native
/// sources bring (Prometheus names with `:` and upper case, `/`-separated namespaces).
pub fn is_valid_metric_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= limits::MAX_METRIC_CHARS
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
}

fn check_metric_name(errs: &mut Vec<FieldError>, path: impl Fn() -> String, v: &str) {
    if !is_valid_metric_name(v) {
        errs.push(FieldError::new(
            path(),
            format!(
                "`{}` is not a metric name: use 1-{} of letters, digits, `_ . : / -`",
                limits::shown(v),
                limits::MAX_METRIC_CHARS
            ),
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
    fn content_hash_follows_the_content_not_the_encoding() {
        // Over 64 KiB of stream, so that the hash is fed in several pieces.
        let mut b = Batch::new("agent", "t", Utc::now());
        b.points = (0..5000).map(|i| point(i as f64 / 7.0)).collect();
        let h = b.content_hash();
        // The same records written otherwise (pretty, `60.0`) decode to the same hash.
        let text = serde_json::to_string_pretty(&b)
            .unwrap()
            .replace("\"period_s\": 60", "\"period_s\": 60.0");
        let again: Batch = serde_json::from_str(&text).unwrap();
        assert_eq!(again.content_hash(), h);
        // Any change in any point, the last one included, changes it.
        let mut other = b.clone();
        let last = other.points.last_mut().unwrap();
        last.value = f64::from_bits(last.value.to_bits() + 1);
        assert_ne!(other.content_hash(), h);
        let mut other = b.clone();
        other.points[0].labels = [("k".to_string(), "v".to_string())]
            .into_iter()
            .collect::<Labels>()
            .into();
        assert_ne!(other.content_hash(), h);
        other.points.pop();
        assert_ne!(other.content_hash(), h);
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
