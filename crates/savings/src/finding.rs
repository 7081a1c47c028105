//! What a finding is: its kind, the resource (or, for reconciliation, the spend group) it is
//! about, the money, the evidence read, and totals over a list of them. The computations
//! (`findings.rs` for waste, `findings_recon.rs` for reconciliation) build these; the
//! server and the CLI serve and print them.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_model::{Labels, Stat};
use skymeter_store::StoredResource;
use std::collections::BTreeMap;

/// Days in an average month (365.25 / 12, rounded as the docs state it).
pub const DAYS_PER_MONTH: f64 = 30.42;

/// What kind of waste (or, for `reconciliation`, of cost error) a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Idle,
    Orphaned,
    Rightsizing,
    Untagged,
    Reconciliation,
}

impl FindingKind {
    pub const ALL: [FindingKind; 5] = [
        FindingKind::Idle,
        FindingKind::Orphaned,
        FindingKind::Rightsizing,
        FindingKind::Untagged,
        FindingKind::Reconciliation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Idle => "idle",
            FindingKind::Orphaned => "orphaned",
            FindingKind::Rightsizing => "rightsizing",
            FindingKind::Untagged => "untagged",
            FindingKind::Reconciliation => "reconciliation",
        }
    }

    /// Whether the kind's `monthly_usd` is money a user stops paying by acting. The
    /// reconciliation's is how far the estimate is from the bill: it counts in its own
    /// kind's total, never in a total of savings.
    pub fn is_saving(self) -> bool {
        self != FindingKind::Reconciliation
    }

    pub fn parse(s: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// The resource a finding is about, as the inventory has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FindingResource {
    /// `provider/account/region/id`, the key of `/api/v1/resources/{key}`.
    pub key: String,
    pub provider: String,
    pub account: String,
    pub region: String,
    /// The resource's kind (`compute.instance`, `storage.volume`, …).
    pub kind: String,
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Labels,
}

/// A series a finding read, for the UI to chart and a user to check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvidenceSeries {
    pub metric: String,
    pub stat: Stat,
    /// What the finding took from it (`max`, `p95`, `peak_hourly`, `total`).
    pub summary: String,
    pub value: f64,
    pub points: u64,
    pub first_ts: DateTime<Utc>,
    pub last_ts: DateTime<Utc>,
}

/// A finding's facts by name, serialized as a JSON object in name order.
///
/// A sorted vector rather than a `BTreeMap`: a finding has two to ten facts, and a map's
/// first node alone is about 630 bytes — 70 MB of the 113,000 findings of a
/// 100,000-resource fleet, where the vector takes a tenth of that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts(Vec<(String, serde_json::Value)>);

impl Facts {
    /// Sets `name` to `value`, returning what it held.
    pub fn insert(&mut self, name: String, value: serde_json::Value) -> Option<serde_json::Value> {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (name, value));
                None
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|at| &self.0[at].1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The facts in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }
}

impl FromIterator<(String, serde_json::Value)> for Facts {
    /// As a map is built: a later value of a name replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (String, serde_json::Value)>>(items: I) -> Self {
        let mut facts = Facts::default();
        for (name, value) in items {
            facts.insert(name, value);
        }
        facts.0.shrink_to_fit();
        facts
    }
}

impl<const N: usize> From<[(String, serde_json::Value); N]> for Facts {
    fn from(items: [(String, serde_json::Value); N]) -> Self {
        items.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Facts {
    type Output = serde_json::Value;

    /// Panics when there is no such fact, as a map's index does.
    fn index(&self, name: &str) -> &serde_json::Value {
        self.get(name).unwrap_or_else(|| panic!("no fact `{name}`"))
    }
}

impl Serialize for Facts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(n, v)| (n, v)))
    }
}

impl<'de> Deserialize<'de> for Facts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?
                .into_iter()
                .collect(),
        )
    }
}

impl JsonSchema for Facts {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        BTreeMap::<String, serde_json::Value>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        BTreeMap::<String, serde_json::Value>::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

/// What a finding rests on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// The window read (metrics findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<EvidenceSeries>,
    /// Inventory facts (`attached_to: null`, `created`, `state`, `instance_type`, …) and
    /// figures the decision used (`needed_vcpus`).
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub facts: Facts,
    /// Reconciliation: the days compared, each with its billed, estimated and gap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<GapDay>,
}

/// One thing to act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Stable across runs: `<kind>/<resource key>`; for reconciliation
    /// `reconciliation/<provider>/<account>/<service>` (`/<currency>` after it when not USD).
    pub id: String,
    pub kind: FindingKind,
    /// Why, in a line: "CPU peaked at 1.8 % and network at 310 B/s over 14 days".
    pub reason: String,
    /// What to do: "stop or terminate", "delete", "release", "resize to m5.large", "tag".
    pub action: String,
    /// The resource; for a finding about a group (reconciliation) the group in its place:
    /// `kind` `billing.service`, `id` and `name` the service, `key` and `region` empty.
    pub resource: FindingResource,
    /// Reconciliation: the cost group the finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<SpendGroup>,
    /// USD a month the action saves; `None` when the price table has no price for it.
    /// Reconciliation: the mean daily |billed − estimated| × 30.42, the estimate's error a
    /// month (not a saving).
    pub monthly_usd: Option<f64>,
    /// What the resource costs a month now, at list price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_monthly_usd: Option<f64>,
    /// Rightsizing: the size recommended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_type: Option<String>,
    pub evidence: Evidence,
    /// Reconciliation: the resources that explain the gap, largest |billed − estimated|
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<GapDriver>,
    /// What the finding could not check (no price, memory not measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Finding {
    /// A finding of `kind` about `r`, with nothing said yet.
    pub(crate) fn about(kind: FindingKind, r: &StoredResource) -> Finding {
        let res = &r.resource;
        Finding {
            id: format!("{}/{}", kind.name(), r.key),
            kind,
            reason: String::new(),
            action: String::new(),
            resource: FindingResource {
                key: r.key.clone(),
                provider: res.provider.clone(),
                account: res.account.clone(),
                region: res.region.clone(),
                kind: res.kind.clone(),
                id: res.id.clone(),
                name: res.name.clone(),
                tags: res.tags.clone(),
            },
            group: None,
            monthly_usd: None,
            current_monthly_usd: None,
            recommended_type: None,
            evidence: Evidence::default(),
            drivers: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// The cost group a finding is about when it is not one resource: a service of an
/// account, in one currency.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct SpendGroup {
    /// Provider id (`aws`, `gcp`, `azure`), from the lines' `ProviderName`.
    pub provider: String,
    /// `SubAccountId`: AWS account, GCP project, Azure subscription.
    pub account: String,
    /// `ServiceName`, as the lines write it.
    pub service: String,
    /// ISO 4217 code of the amounts.
    pub currency: String,
}

/// One compared day of a reconciliation finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GapDay {
    /// The UTC day (`YYYY-MM-DD`).
    pub day: NaiveDate,
    pub billed: f64,
    pub estimated: f64,
    /// `billed − estimated`.
    pub gap: f64,
}

/// Why a resource's billed and estimated amounts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// Billed, never estimated: not in the inventory, or no price in the table.
    NotEstimated,
    /// Estimated, never billed: deleted before it billed, billed under another id or
    /// account, or a free tier.
    NotBilled,
    /// Both: the price table's price (or the quantity measured) differs from the bill's.
    PricedDifferently,
}

/// A resource that explains part of a reconciliation gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GapDriver {
    /// The resource id as the cost lines write it; empty for billed lines that name no
    /// resource (a bill not itemized by resource).
    pub resource: String,
    pub region: String,
    /// Its inventory key (`/api/v1/resources/{key}`); absent when the inventory does not
    /// hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its kind and name in the inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Over the compared days.
    pub billed: f64,
    pub estimated: f64,
    /// `billed − estimated`.
    pub delta: f64,
    pub cause: GapCause,
    /// The cause in words, with what the inventory says.
    pub why: String,
}

/// Rounds to the cent: amounts are shown and compared in cents.
pub(crate) fn cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Totals of a list of findings: money and count per kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub count: u64,
    /// USD a month saved by acting on every finding; reconciliation gaps are not savings
    /// and count only in `by_kind.reconciliation`.
    pub monthly_usd: f64,
    pub by_kind: BTreeMap<String, KindTotal>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KindTotal {
    pub count: u64,
    pub monthly_usd: f64,
}

impl Totals {
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Totals {
        let mut t = Totals::default();
        for f in findings {
            let m = f.monthly_usd.unwrap_or(0.0);
            t.count += 1;
            if f.kind.is_saving() {
                t.monthly_usd += m;
            }
            let k = t.by_kind.entry(f.kind.name().to_string()).or_default();
            k.count += 1;
            k.monthly_usd += m;
        }
        t.monthly_usd = cents(t.monthly_usd);
        for k in t.by_kind.values_mut() {
            k.monthly_usd = cents(k.monthly_usd);
        }
        t
    }
}
