//! Findings: resources a user pays for and could stop paying for, each with the money per
//! month, what to do, and the evidence read (the series, the window, the figures).
//!
//! Computed from the store alone, as of a moment `now`:
//!
//! - **idle** — a running instance whose CPU never reached `idle.cpu_percent` (the `max`
//!   series; the `avg` series when there is no `max`) and whose network (received + sent,
//!   hourly averages) never reached `idle.network_bytes_per_s` in the last `idle.days`; a
//!   database whose connections stayed at `idle.db_connections` or fewer; a load balancer
//!   that served no request; a NAT gateway that moved less than `idle.nat_bytes` bytes.
//!   Only when the series cover the whole window (the resource has been measured since its
//!   start): a resource created last week is not "idle for 14 days".
//! - **orphaned** — an unattached volume, a public IP attached to nothing, a snapshot older
//!   than `orphaned.snapshot_days`, an instance stopped for `orphaned.stopped_days` or more
//!   (its volumes still bill).
//! - **rightsizing** — a running instance whose p`rightsizing.percentile` CPU (over the
//!   `avg` series) and peak memory, with `rightsizing.headroom_percent` on top, fit a
//!   cheaper size of its family: the cheapest that holds both, with the saving from the
//!   price table. Without a memory series the memory of the current size is not required
//!   (the finding says memory was not measured).
//! - **untagged** — spend of the last 30 days on resources missing a tag of
//!   `required_tags`.
//! - **reconciliation** — a service of an account whose billed and estimated cost differ
//!   over the days both exist (`findings_recon.rs`); about a group, not a
//!   resource, and its money is the size of the estimate's error, not a saving.
//!
//! The money is the price table's list price per month of 730 hours
//! ([`PriceTable::monthly_usd`]), so that a finding says what the resource costs whatever
//! discounts the bill applies; the untagged spend is the stored cost itself. A resource
//! whose price is unknown is still reported, with no amount and a note.

use crate::findings_read::{
    hourly_network, read_peaks, read_series, read_windows, SeriesSummary, Window,
};
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_model::{Labels, Stat};
use skymeter_plugin_api::prices::{PriceTable, SizeOption};
use skymeter_store::{for_each_resource, CostGroup, CostQuery, Store, StoreError, StoredResource};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

#[path = "findings_recon.rs"]
mod recon;
use crate::finding::cents;
pub use crate::finding::{
    Evidence, EvidenceSeries, Facts, Finding, FindingKind, FindingResource, GapCause, GapDay,
    GapDriver, KindTotal, SpendGroup, Totals, DAYS_PER_MONTH,
};
pub use recon::ReconciliationConfig;

/// Thresholds and exclusions (`[findings]` of the server config). Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FindingsConfig {
    pub idle: IdleConfig,
    pub orphaned: OrphanedConfig,
    pub rightsizing: RightsizingConfig,
    pub reconciliation: ReconciliationConfig,
    /// Tags every resource must carry (`["owner", "cost-center"]`); empty: no untagged
    /// findings.
    pub required_tags: Vec<String>,
    /// Resources never reported: each entry `{ tag = "KEY" }` (the tag present) or
    /// `{ tag = "KEY", value = "VALUE" }`.
    pub exclude: Vec<TagMatch>,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        FindingsConfig {
            idle: IdleConfig::default(),
            orphaned: OrphanedConfig::default(),
            rightsizing: RightsizingConfig::default(),
            reconciliation: ReconciliationConfig::default(),
            required_tags: Vec::new(),
            exclude: vec![TagMatch {
                tag: "skymeter:ignore".into(),
                value: None,
            }],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// Days looked back (default 14).
    pub days: u32,
    /// Peak CPU percent under which an instance is idle (default 5).
    pub cpu_percent: f64,
    /// Peak hourly network throughput, received + sent, under which an instance is idle
    /// (default 10,000 bytes/s).
    pub network_bytes_per_s: f64,
    /// Peak connections at or under which a database is idle (default 0).
    pub db_connections: f64,
    /// Bytes a NAT gateway moved in the window under which it is idle (default 1 GB).
    pub nat_bytes: f64,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            days: 14,
            cpu_percent: 5.0,
            network_bytes_per_s: 10_000.0,
            db_connections: 0.0,
            nat_bytes: 1e9,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OrphanedConfig {
    /// Age in days from which a snapshot is reported (default 90).
    pub snapshot_days: u32,
    /// Days stopped from which an instance is reported (default 30).
    pub stopped_days: u32,
}

impl Default for OrphanedConfig {
    fn default() -> Self {
        OrphanedConfig {
            snapshot_days: 90,
            stopped_days: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RightsizingConfig {
    /// Days looked back (default 14).
    pub days: u32,
    /// The CPU percentile sized for (default 95).
    pub percentile: f64,
    /// Room kept above the measured load, in percent (default 25).
    pub headroom_percent: f64,
    /// Savings under this many USD a month are not reported (default 1).
    pub min_saving_usd: f64,
}

impl Default for RightsizingConfig {
    fn default() -> Self {
        RightsizingConfig {
            days: 14,
            percentile: 95.0,
            headroom_percent: 25.0,
            min_saving_usd: 1.0,
        }
    }
}

/// A tag that excludes a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagMatch {
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The evidence entry of what was read of a series: `summary` names the figure (`max`,
/// `p95`, `total`), `value` is it.
fn evidence(s: &SeriesSummary, metric: &str, summary: &str, value: f64) -> EvidenceSeries {
    EvidenceSeries {
        metric: metric.to_string(),
        stat: s.stat,
        summary: summary.to_string(),
        value: (value * 1000.0).round() / 1000.0,
        points: s.points,
        first_ts: s.first_ts,
        last_ts: s.last_ts,
    }
}

impl TagMatch {
    fn matches(&self, tags: &Labels) -> bool {
        match (tags.get(&self.tag), &self.value) {
            (Some(_), None) => true,
            (Some(v), Some(want)) => v == want,
            (None, _) => false,
        }
    }
}

impl FindingsConfig {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("findings.{name} must be a number ≥ 0, not {v}"))
            }
        };
        positive("idle.cpu_percent", self.idle.cpu_percent)?;
        positive("idle.network_bytes_per_s", self.idle.network_bytes_per_s)?;
        positive("idle.db_connections", self.idle.db_connections)?;
        positive("idle.nat_bytes", self.idle.nat_bytes)?;
        positive(
            "rightsizing.headroom_percent",
            self.rightsizing.headroom_percent,
        )?;
        positive(
            "rightsizing.min_saving_usd",
            self.rightsizing.min_saving_usd,
        )?;
        if !(self.rightsizing.percentile > 0.0 && self.rightsizing.percentile <= 100.0) {
            return Err(format!(
                "findings.rightsizing.percentile must be in (0, 100], not {}",
                self.rightsizing.percentile
            ));
        }
        for (name, days) in [
            ("idle.days", self.idle.days),
            ("rightsizing.days", self.rightsizing.days),
        ] {
            if days == 0 || days > 400 {
                return Err(format!("findings.{name} must be 1 to 400 days, not {days}"));
            }
        }
        self.reconciliation.validate()?;
        if let Some(t) = self.required_tags.iter().find(|t| t.is_empty()) {
            return Err(format!(
                "findings.required_tags holds an empty tag name ({t:?})"
            ));
        }
        Ok(())
    }
}

/// The price tables, by provider id (`aws`, `gcp`, `azure`).
pub type Prices = BTreeMap<String, Arc<dyn PriceTable>>;

/// Every finding as of `now`, sorted by money (largest first), then id.
pub fn compute(
    store: &dyn Store,
    prices: &Prices,
    cfg: &FindingsConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, StoreError> {
    // The month of cost lines the cost-based findings need, read once for both groupings
    // and on a thread of its own while the series are read: SQLite reads on one core, the
    // series scans on all of them.
    let mut queries = vec![recon::spend_query(&cfg.reconciliation, now)];
    if !cfg.required_tags.is_empty() {
        queries.push(untagged_spend_query(now));
    }
    std::thread::scope(|s| {
        let spend = s.spawn(|| store.costs_many(&queries));
        let (resources, mut out) = from_inventory_and_series(store, prices, cfg, now)?;
        let mut answers = spend
            .join()
            .expect("the cost grouping thread panicked")?
            .into_iter();
        let recon_rows = answers.next().unwrap_or_default();
        if let Some(spend) = answers.next() {
            untagged(&resources, cfg, now, spend, &mut out);
        }
        out.extend(recon::reconciliation(
            store,
            &cfg.reconciliation,
            now,
            recon_rows,
        )?);
        out.sort_by(|a, b| {
            b.monthly_usd
                .unwrap_or(0.0)
                .total_cmp(&a.monthly_usd.unwrap_or(0.0))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    })
}

/// The inventory (latest, without the excluded) and the findings it and the series make.
fn from_inventory_and_series(
    store: &dyn Store,
    prices: &Prices,
    cfg: &FindingsConfig,
    now: DateTime<Utc>,
) -> Result<(Vec<StoredResource>, Vec<Finding>), StoreError> {
    let mut resources = Vec::new();
    // The inventory is the latest (`now` moves the window of the metrics read); a resource
    // not seen for two days before `now` is gone (deleted, or no longer collected).
    let gone_before = now - Duration::days(2);
    for_each_resource(store, |r| {
        if r.last_seen >= gone_before && !cfg.exclude.iter().any(|m| m.matches(&r.resource.tags)) {
            resources.push(r);
        }
    })?;

    let idle_start = now - Duration::days(cfg.idle.days.into());
    let size_start = now - Duration::days(cfg.rightsizing.days.into());
    // Hourly (or daily) buckets keep what the findings take of a series (its largest
    // value, its total); the percentile needs the raw points.
    let idle_window = |step: u64, agg: Stat| Window {
        start: idle_start,
        end: now,
        buckets: Some((step, agg)),
        p: None,
        skip: None,
    };
    let idle = |metric: &str, stat: Stat, step: u64| {
        let agg = if stat == Stat::Sum {
            Stat::Sum
        } else {
            Stat::Max
        };
        read_series(store, metric, stat, idle_window(step, agg))
    };
    let sized = |metric: &str, stat: Stat| {
        read_series(
            store,
            metric,
            stat,
            Window {
                start: size_start,
                end: now,
                buckets: Some((3600, Stat::Max)),
                p: None,
                skip: None,
            },
        )
    };
    // The `max` CPU series first, by their peaks alone (from the store's index); only the
    // instances quiet on CPU are read point by point below (for the evidence), and only
    // theirs is the network read: at a busy fleet's scale, a small part of either.
    let cpu_peaks = read_peaks(
        store,
        "cpu.utilization",
        Stat::Max,
        idle_window(3600, Stat::Max),
    )?;
    // CPU `avg` once for both windows: its raw percentile over the rightsizing one, and its
    // hourly peaks over the idle window for the instances without a `max` series.
    let has_max = |key: &str| cpu_peaks.contains_key(key);
    let [cpu_avg_top, cpu_load]: [HashMap<String, SeriesSummary>; 2] = read_windows(
        store,
        "cpu.utilization",
        Stat::Avg,
        &[
            Window {
                skip: Some(&has_max),
                ..idle_window(3600, Stat::Max)
            },
            Window {
                start: size_start,
                end: now,
                buckets: None,
                p: Some(cfg.rightsizing.percentile),
                skip: None,
            },
        ],
        None,
    )?
    .try_into()
    .expect("one map per window");
    let quiet_cpu: HashSet<String> = resources
        .iter()
        .filter(|r| r.resource.kind == "compute.instance")
        .filter(|r| match cpu_peaks.get(&r.key) {
            Some(peak) => *peak < cfg.idle.cpu_percent,
            None => cpu_avg_top
                .get(&r.key)
                .is_some_and(|s| s.max < cfg.idle.cpu_percent),
        })
        .map(|r| r.key.clone())
        .collect();
    let cpu_max = read_windows(
        store,
        "cpu.utilization",
        Stat::Max,
        &[idle_window(3600, Stat::Max)],
        Some(&quiet_cpu),
    )?
    .pop()
    .unwrap_or_default();
    let network = hourly_network(store, idle_start, now, &quiet_cpu)?;
    let db_connections = idle("database.connections", Stat::Max, 3600)?;
    let lb_requests = idle("lb.requests", Stat::Sum, 86_400)?;
    let nat_sent = idle("network.sent_bytes", Stat::Sum, 86_400)?;
    let nat_received = idle("network.received_bytes", Stat::Sum, 86_400)?;
    let mut mem_peak = sized("memory.usage", Stat::Max)?;
    for (k, v) in sized("memory.usage", Stat::Avg)? {
        mem_peak.entry(k).or_insert(v);
    }

    // Volumes by the instance they are attached to (a stopped instance's cost).
    let mut volumes_of: HashMap<(String, String, String), Vec<&StoredResource>> = HashMap::new();
    for r in &resources {
        if r.resource.kind == "storage.volume" {
            if let Some(to) = r
                .resource
                .attributes
                .get("attached_to")
                .and_then(|v| v.as_str())
            {
                volumes_of
                    .entry((
                        r.resource.provider.clone(),
                        r.resource.account.clone(),
                        to.to_string(),
                    ))
                    .or_default()
                    .push(r);
            }
        }
    }

    let ctx = Context {
        store,
        prices,
        cfg,
        now,
        idle_start,
        size_start,
    };
    let mut out = Vec::new();
    for r in &resources {
        let key = r.key.as_str();
        let found = match r.resource.kind.as_str() {
            "compute.instance" => {
                let attached = volumes_of
                    .get(&(
                        r.resource.provider.clone(),
                        r.resource.account.clone(),
                        r.resource.id.clone(),
                    ))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                ctx.instance(
                    r,
                    attached,
                    Load {
                        // An instance with a `max` series is judged on it (read only
                        // when it was quiet: a busy one has no peak to judge idle).
                        cpu_peak: if cpu_peaks.contains_key(key) {
                            cpu_max.get(key)
                        } else {
                            cpu_avg_top.get(key)
                        },
                        network: network.get(key),
                        cpu: cpu_load.get(key),
                        memory: mem_peak.get(key),
                    },
                )?
            }
            "database.instance" => ctx.database(r, db_connections.get(key)),
            "storage.volume" => ctx.volume(r),
            "storage.snapshot" => ctx.snapshot(r),
            "network.public_ip" => ctx.public_ip(r),
            "network.load_balancer" => ctx.load_balancer(r, lb_requests.get(key)),
            "network.nat_gateway" => ctx.nat_gateway(r, nat_sent.get(key), nat_received.get(key)),
            _ => None,
        };
        out.extend(found);
    }
    Ok((resources, out))
}

/// What was read of an instance's series.
struct Load<'a> {
    /// CPU over the idle window (the `max` series, else `avg`), hourly peaks.
    cpu_peak: Option<&'a SeriesSummary>,
    /// Received + sent throughput over the idle window, hourly averages.
    network: Option<&'a SeriesSummary>,
    /// CPU `avg` over the rightsizing window, with its percentile.
    cpu: Option<&'a SeriesSummary>,
    /// Memory percent over the rightsizing window, hourly peaks.
    memory: Option<&'a SeriesSummary>,
}

struct Context<'a> {
    store: &'a dyn Store,
    prices: &'a Prices,
    cfg: &'a FindingsConfig,
    now: DateTime<Utc>,
    idle_start: DateTime<Utc>,
    size_start: DateTime<Utc>,
}

fn attr<'r>(r: &'r StoredResource, name: &str) -> Option<&'r serde_json::Value> {
    r.resource.attributes.get(name)
}

fn attr_str<'r>(r: &'r StoredResource, name: &str) -> Option<&'r str> {
    attr(r, name).and_then(|v| v.as_str())
}

fn attr_f64(r: &StoredResource, name: &str) -> Option<f64> {
    attr(r, name).and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

/// States in which an instance is not running (AWS, GCP, Azure words).
fn stopped_state(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "stopped" | "terminated" | "deallocated" | "suspended" | "stopping"
    )
}

impl Context<'_> {
    fn finding(&self, kind: FindingKind, r: &StoredResource) -> Finding {
        Finding::about(kind, r)
    }

    /// A finding whose saving is what the resource costs (stop, delete or release it).
    fn removable(
        &self,
        kind: FindingKind,
        r: &StoredResource,
        reason: String,
        action: &str,
    ) -> Finding {
        let mut f = Finding::about(kind, r);
        f.reason = reason;
        f.action = action.to_string();
        f.monthly_usd = self.monthly(r, &mut f.notes);
        f.current_monthly_usd = f.monthly_usd;
        f
    }

    /// The evidence's window is the idle window.
    fn over_idle_window(&self, f: &mut Finding) {
        f.evidence.start = Some(self.idle_start);
        f.evidence.end = Some(self.now);
    }

    /// The list price per month of `r`, with a note when the table has none.
    fn monthly(&self, r: &StoredResource, notes: &mut Vec<String>) -> Option<f64> {
        let price = self
            .prices
            .get(&r.resource.provider)
            .and_then(|t| t.monthly_usd(&r.resource))
            .map(cents);
        if price.is_none() {
            notes.push(format!(
                "no list price for this {} in {} (see `skymeter prices {} show`)",
                r.resource.kind, r.resource.region, r.resource.provider
            ));
        }
        price
    }

    fn facts(f: &mut Finding, r: &StoredResource, names: &[&str]) {
        for n in names {
            f.evidence.facts.insert(
                (*n).to_string(),
                attr(r, n).cloned().unwrap_or(serde_json::Value::Null),
            );
        }
    }

    /// Whether `s` covers `[start, now]`: measured from the window's first hour on and
    /// until at most a day ago.
    fn covers(&self, s: &SeriesSummary, start: DateTime<Utc>) -> bool {
        s.first_ts <= start + Duration::hours(1) && s.last_ts >= self.now - Duration::days(1)
    }

    fn instance(
        &self,
        r: &StoredResource,
        attached: &[&StoredResource],
        load: Load<'_>,
    ) -> Result<Option<Finding>, StoreError> {
        let state = attr_str(r, "state").unwrap_or("");
        if stopped_state(state) {
            return self.stopped_instance(r, attached);
        }
        if let Some(cpu) = load.cpu_peak.filter(|s| self.covers(s, self.idle_start)) {
            let net_top = load
                .network
                .filter(|s| self.covers(s, self.idle_start))
                .map(|s| s.max);
            let net_quiet = net_top.is_none_or(|n| n < self.cfg.idle.network_bytes_per_s);
            if cpu.max < self.cfg.idle.cpu_percent && net_quiet {
                let days = self.cfg.idle.days;
                let mut f = self.removable(
                    FindingKind::Idle,
                    r,
                    match net_top {
                        Some(n) => format!(
                            "CPU peaked at {:.1} % and network at {} over {days} days",
                            cpu.max,
                            human_rate(n)
                        ),
                        None => format!("CPU peaked at {:.1} % over {days} days", cpu.max),
                    },
                    "stop or terminate",
                );
                self.over_idle_window(&mut f);
                f.evidence
                    .series
                    .push(evidence(cpu, "cpu.utilization", "max", cpu.max));
                match (load.network, net_top) {
                    (Some(n), Some(top)) => f.evidence.series.push(evidence(
                        n,
                        "network.received_throughput+network.sent_throughput",
                        "peak_hourly",
                        top,
                    )),
                    _ => f
                        .notes
                        .push("network not measured: idle on CPU alone".into()),
                }
                Self::facts(&mut f, r, &["instance_type", "state"]);
                return Ok(Some(f));
            }
        }
        Ok(self.rightsize(r, load.cpu, load.memory))
    }

    fn rightsize(
        &self,
        r: &StoredResource,
        cpu: Option<&SeriesSummary>,
        memory: Option<&SeriesSummary>,
    ) -> Option<Finding> {
        let cfg = &self.cfg.rightsizing;
        let cpu = cpu.filter(|s| self.covers(s, self.size_start))?;
        let table = self.prices.get(&r.resource.provider)?;
        let options = table.size_options(&r.resource);
        let current_type = attr_str(r, "instance_type")
            .or_else(|| attr_str(r, "machine_type"))
            .or_else(|| attr_str(r, "vm_size"))
            .unwrap_or("");
        let current = options.iter().find(|o| o.name == current_type);
        let vcpus = attr_f64(r, "vcpus").or(current.map(|o| o.vcpus))?;
        let memory_mib = attr_f64(r, "memory_mib").or(current.map(|o| o.memory_mib));
        let mut notes = Vec::new();
        let current_monthly = self.monthly(r, &mut notes)?;
        let room = 1.0 + cfg.headroom_percent / 100.0;
        let p_cpu = cpu.percentile;
        let needed_vcpus = vcpus * p_cpu / 100.0 * room;
        let memory = memory.filter(|s| self.covers(s, self.size_start));
        let needed_memory = match (memory, memory_mib) {
            (Some(m), Some(total)) => total * m.max / 100.0 * room,
            _ => {
                notes.push(
                    "memory not measured: sized on CPU only (check memory before resizing)".into(),
                );
                0.0
            }
        };
        let pick: &SizeOption = options
            .iter()
            .filter(|o| o.vcpus >= needed_vcpus && o.memory_mib >= needed_memory)
            .min_by(|a, b| {
                a.monthly_usd
                    .total_cmp(&b.monthly_usd)
                    .then(a.vcpus.total_cmp(&b.vcpus))
            })?;
        let saving = cents(current_monthly - cents(pick.monthly_usd));
        if pick.name == current_type || saving < cfg.min_saving_usd {
            return None;
        }
        let mut f = self.finding(FindingKind::Rightsizing, r);
        f.reason = format!(
            "p{} CPU {p_cpu:.1} % of {vcpus} vCPU{} over {} days",
            cfg.percentile,
            match (memory, memory_mib) {
                (Some(m), Some(_)) => format!(", memory peak {:.1} %", m.max),
                _ => String::new(),
            },
            cfg.days
        );
        f.action = format!("resize to {}", pick.name);
        f.recommended_type = Some(pick.name.clone());
        f.monthly_usd = Some(saving);
        f.current_monthly_usd = Some(current_monthly);
        f.notes = notes;
        f.evidence.start = Some(self.size_start);
        f.evidence.end = Some(self.now);
        f.evidence.series.push(evidence(
            cpu,
            "cpu.utilization",
            &format!("p{}", cfg.percentile),
            p_cpu,
        ));
        if let (Some(m), Some(_)) = (memory, memory_mib) {
            f.evidence
                .series
                .push(evidence(m, "memory.usage", "max", m.max));
        }
        Self::facts(&mut f, r, &["instance_type"]);
        let facts = &mut f.evidence.facts;
        facts.insert("vcpus".into(), vcpus.into());
        facts.insert(
            "needed_vcpus".into(),
            ((needed_vcpus * 100.0).round() / 100.0).into(),
        );
        if let Some(m) = memory_mib {
            facts.insert("memory_mib".into(), m.into());
        }
        facts.insert("needed_memory_mib".into(), needed_memory.round().into());
        facts.insert("recommended_vcpus".into(), pick.vcpus.into());
        facts.insert("recommended_memory_mib".into(), pick.memory_mib.into());
        facts.insert(
            "recommended_monthly_usd".into(),
            cents(pick.monthly_usd).into(),
        );
        Some(f)
    }

    fn stopped_instance(
        &self,
        r: &StoredResource,
        attached: &[&StoredResource],
    ) -> Result<Option<Finding>, StoreError> {
        // When did it stop? The last change of `state` in the history, else first seen.
        let history = self.store.resource_history(&r.key)?;
        let since = history
            .iter()
            .rev()
            .find(|c| c.changes.contains_key("attributes.state"))
            .map(|c| c.at)
            .unwrap_or(r.first_seen);
        let days = (self.now - since).num_days();
        if days < i64::from(self.cfg.orphaned.stopped_days) {
            return Ok(None);
        }
        let mut f = self.finding(FindingKind::Orphaned, r);
        f.reason = format!(
            "stopped for {days} days{}",
            if attached.is_empty() {
                String::new()
            } else {
                format!("; its {} volume(s) still bill", attached.len())
            }
        );
        f.action = "snapshot and terminate".into();
        let mut total = Some(0.0);
        for v in attached {
            match self.monthly(v, &mut f.notes) {
                Some(m) => *total.get_or_insert(0.0) += m,
                None => total = None,
            }
        }
        f.monthly_usd = total.map(cents);
        f.evidence
            .facts
            .insert("stopped_since".into(), since.to_rfc3339().into());
        f.evidence.facts.insert(
            "volumes".into(),
            attached
                .iter()
                .map(|v| v.resource.id.clone())
                .collect::<Vec<_>>()
                .into(),
        );
        Self::facts(&mut f, r, &["instance_type", "state"]);
        Ok(Some(f))
    }

    fn database(&self, r: &StoredResource, connections: Option<&SeriesSummary>) -> Option<Finding> {
        let c = connections.filter(|s| self.covers(s, self.idle_start))?;
        let top = c.max;
        if top > self.cfg.idle.db_connections {
            return None;
        }
        let mut f = self.removable(
            FindingKind::Idle,
            r,
            format!("at most {top} connections over {} days", self.cfg.idle.days),
            "snapshot and delete",
        );
        self.over_idle_window(&mut f);
        f.evidence
            .series
            .push(evidence(c, "database.connections", "max", top));
        Self::facts(&mut f, r, &["instance_class", "engine"]);
        Some(f)
    }

    fn volume(&self, r: &StoredResource) -> Option<Finding> {
        if attr(r, "attached_to").is_some_and(|v| !v.is_null()) {
            return None;
        }
        // AWS says `available`, Azure `Unattached`; a volume being created is neither.
        if let Some(state) = attr_str(r, "state") {
            let s = state.to_ascii_lowercase();
            if matches!(s.as_str(), "creating" | "deleting" | "error") {
                return None;
            }
        }
        let size = attr_f64(r, "size_gib")
            .map(|s| format!("{s} GiB "))
            .unwrap_or_default();
        let mut f = self.removable(
            FindingKind::Orphaned,
            r,
            format!("unattached {size}volume"),
            "snapshot and delete",
        );
        Self::facts(
            &mut f,
            r,
            &["attached_to", "size_gib", "volume_type", "state"],
        );
        f.evidence
            .facts
            .insert("first_seen".into(), r.first_seen.to_rfc3339().into());
        Some(f)
    }

    fn snapshot(&self, r: &StoredResource) -> Option<Finding> {
        let created = attr_str(r, "created")
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&Utc))?;
        let days = (self.now - created).num_days();
        if days < i64::from(self.cfg.orphaned.snapshot_days) {
            return None;
        }
        let mut f = self.removable(
            FindingKind::Orphaned,
            r,
            format!("snapshot {days} days old"),
            "delete (or archive)",
        );
        Self::facts(
            &mut f,
            r,
            &["created", "size_gib", "volume_id", "storage_tier"],
        );
        Some(f)
    }

    fn public_ip(&self, r: &StoredResource) -> Option<Finding> {
        if attr(r, "associated").and_then(|v| v.as_bool()) != Some(false) {
            return None;
        }
        let mut f = self.removable(
            FindingKind::Orphaned,
            r,
            format!(
                "public IP {}attached to nothing",
                attr_str(r, "public_ip")
                    .map(|ip| format!("{ip} "))
                    .unwrap_or_default()
            ),
            "release",
        );
        Self::facts(&mut f, r, &["public_ip", "associated"]);
        Some(f)
    }

    fn load_balancer(
        &self,
        r: &StoredResource,
        requests: Option<&SeriesSummary>,
    ) -> Option<Finding> {
        let s = requests.filter(|s| self.covers_daily(s))?;
        let total = s.sum;
        if total > 0.0 {
            return None;
        }
        let mut f = self.removable(
            FindingKind::Idle,
            r,
            format!("no requests over {} days", self.cfg.idle.days),
            "delete",
        );
        self.over_idle_window(&mut f);
        f.evidence
            .series
            .push(evidence(s, "lb.requests", "total", total));
        Self::facts(&mut f, r, &["lb_type", "scheme"]);
        Some(f)
    }

    fn nat_gateway(
        &self,
        r: &StoredResource,
        sent: Option<&SeriesSummary>,
        received: Option<&SeriesSummary>,
    ) -> Option<Finding> {
        let sent = sent.filter(|s| self.covers_daily(s))?;
        let total = sent.sum + received.map(|s| s.sum).unwrap_or(0.0);
        if total >= self.cfg.idle.nat_bytes {
            return None;
        }
        let mut f = self.removable(
            FindingKind::Idle,
            r,
            format!(
                "moved {} over {} days",
                human_bytes(total),
                self.cfg.idle.days
            ),
            "delete",
        );
        self.over_idle_window(&mut f);
        f.evidence.series.push(evidence(
            sent,
            "network.sent_bytes+network.received_bytes",
            "total",
            total,
        ));
        Some(f)
    }

    /// Daily buckets are stamped with their end: covering means a bucket ending within the
    /// window's first day.
    fn covers_daily(&self, s: &SeriesSummary) -> bool {
        s.first_ts <= self.idle_start + Duration::days(1)
            && s.last_ts >= self.now - Duration::days(2)
    }
}

/// The spend [`untagged`] reads: the last 30 days by provider, account, resource and source.
fn untagged_spend_query(now: DateTime<Utc>) -> CostQuery {
    CostQuery {
        start: Some(now - Duration::days(30)),
        end: Some(now),
        group_by: vec![
            "provider".into(),
            "account".into(),
            "resource".into(),
            "source".into(),
        ],
        ..Default::default()
    }
}

/// Spend of the last 30 days on resources missing a required tag, from `groups` (the answer
/// to [`untagged_spend_query`]), onto `out` (pushed there rather than returned and
/// appended: with every resource of a large fleet untagged, the two vectors were the two
/// largest allocations of the pass, 140 MB at 100,000 resources).
fn untagged(
    resources: &[StoredResource],
    cfg: &FindingsConfig,
    now: DateTime<Utc>,
    groups: Vec<CostGroup>,
    out: &mut Vec<Finding>,
) {
    let start = now - Duration::days(30);
    // Billed lines when a resource has them, else estimated (never both: they are the same
    // money).
    let mut spend: HashMap<(String, String, String), (f64, f64)> = HashMap::new();
    for g in groups {
        let get = |k: &str| g.group.get(k).cloned().unwrap_or_default();
        let provider = skymeter_model::provider::slug(&get("provider"));
        let entry = spend
            .entry((provider, get("account"), get("resource")))
            .or_default();
        match get("source").as_str() {
            "billed" => entry.0 += g.billed_cost,
            _ => entry.1 += g.billed_cost,
        }
    }
    for r in resources {
        let missing: Vec<&str> = cfg
            .required_tags
            .iter()
            .filter(|t| !r.resource.tags.contains_key(*t))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            continue;
        }
        let Some(&(billed, estimated)) = spend.get(&(
            r.resource.provider.clone(),
            r.resource.account.clone(),
            r.resource.id.clone(),
        )) else {
            continue;
        };
        let amount = if billed > 0.0 { billed } else { estimated };
        if amount <= 0.0 {
            continue;
        }
        let mut f = Finding::about(FindingKind::Untagged, r);
        f.reason = format!(
            "missing tag{} {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        );
        f.action = format!("tag {}", missing.join(", "));
        f.monthly_usd = Some(cents(amount));
        f.current_monthly_usd = f.monthly_usd;
        f.evidence = Evidence {
            start: Some(start),
            end: Some(now),
            series: Vec::new(),
            facts: Facts::from([
                ("missing_tags".to_string(), missing.into()),
                (
                    "cost_source".to_string(),
                    if billed > 0.0 { "billed" } else { "estimated" }.into(),
                ),
            ]),
            days: Vec::new(),
        };
        out.push(f);
    }
}

fn human_rate(bytes_per_s: f64) -> String {
    format!("{}/s", human_bytes(bytes_per_s))
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
