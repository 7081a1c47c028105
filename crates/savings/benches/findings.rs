//! Findings over a large fleet (release build):
//!
//!   cargo bench -p skymeter-savings --bench findings -- populate DIR RESOURCES
//!   cargo bench -p skymeter-savings --bench findings -- compute DIR
//!   cargo bench -p skymeter-savings --bench findings -- watch DIR
//!
//! `populate` writes an embedded store in DIR: RESOURCES resources (60 % m5 instances with
//! 14 days of 5-minute CPU `avg` and `max` and network received/sent, 20 % volumes (a tenth
//! unattached), 10 % public IPs (a tenth unassociated), 10 % snapshots) and a year of daily
//! estimated cost per resource. `compute` opens it in a fresh process and prints the wall
//! time of the findings and the process' peak RSS (VmHWM), so that populating does not
//! count (nor opening the store and bringing it to rest, which a running server has done).
//! `watch` times one evaluation round's budgets (one scoped by provider and service, one
//! by tag: the tag scope reads the cost lines themselves) and anomalies (90 days of
//! daily cost per provider, account and service) over the same store.

use chrono::{DateTime, Duration, TimeZone, Utc};
use skymeter_model::{
    Batch, ChargeCategory, Cost, CostSource, Point, Resource, ResourceRef, Stat, Unit,
};
use skymeter_plugin_api::prices::PriceTable;
use skymeter_savings::findings::{compute, FindingsConfig, Prices, Totals};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

#[path = "../src/test_prices.rs"]
mod test_prices;
use test_prices::Table;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn resource(i: usize) -> Resource {
    let (kind, attrs) = match i % 10 {
        0..=5 => (
            "compute.instance",
            serde_json::json!({"instance_type": "m5.2xlarge", "state": "running", "vcpus": 8, "memory_mib": 32768}),
        ),
        6 | 7 => (
            "storage.volume",
            if i % 100 == 6 {
                serde_json::json!({"size_gib": 100, "volume_type": "gp3", "state": "available"})
            } else {
                serde_json::json!({"size_gib": 100, "volume_type": "gp3", "state": "in-use", "attached_to": format!("i-{}", i - 6)})
            },
        ),
        8 => (
            "network.public_ip",
            serde_json::json!({"associated": i % 100 != 8}),
        ),
        _ => (
            "storage.snapshot",
            serde_json::json!({"size_gib": 50, "created": "2026-01-01T00:00:00Z"}),
        ),
    };
    Resource {
        provider: "aws".into(),
        account: format!("{:012}", i % 20),
        region: "us-east-1".into(),
        kind: kind.into(),
        native_type: String::new(),
        id: format!("{}-{i}", &kind[..3]),
        name: format!("r{i}"),
        tags: Default::default(),
        attributes: attrs.as_object().unwrap().clone().into_iter().collect(),
        observed_at: now() - Duration::hours(1),
    }
}

fn populate(dir: &str, n: usize) {
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir)).unwrap();
    let started = Instant::now();
    let days = 14;
    let periods = days * 288;
    let mut points_total = 0u64;
    let mut batch = Batch::new("bench", "aws", now());
    let flush = |b: &mut Batch, store: &EmbeddedStore| {
        if !b.resources.is_empty() || !b.points.is_empty() || !b.costs.is_empty() {
            store.ingest(b).unwrap();
        }
        *b = Batch::new("bench", "aws", now());
    };
    for i in 0..n {
        let r = resource(i);
        if r.kind == "compute.instance" {
            let rr = Arc::new(ResourceRef {
                provider: r.provider.as_str().into(),
                account: r.account.as_str().into(),
                region: r.region.as_str().into(),
                id: r.id.as_str().into(),
            });
            // A few idle, a few oversized, most busy.
            let level = match i % 60 {
                0 => 1.0,
                6 => 8.0,
                _ => 55.0,
            };
            for (metric, unit, stat, scale) in [
                ("cpu.utilization", Unit::Percent, Stat::Avg, 1.0),
                ("cpu.utilization", Unit::Percent, Stat::Max, 1.3),
                (
                    "network.received_throughput",
                    Unit::BytesPerSecond,
                    Stat::Avg,
                    5e4,
                ),
                (
                    "network.sent_throughput",
                    Unit::BytesPerSecond,
                    Stat::Avg,
                    2e4,
                ),
            ] {
                for k in 0..periods {
                    batch.points.push(Point {
                        metric: metric.into(),
                        unit,
                        stat,
                        period_s: 300,
                        ts: now() - Duration::minutes(5 * (periods - k) as i64),
                        value: level * scale * (1.0 + (k % 7) as f64 / 20.0),
                        resource: rr.clone(),
                        labels: Default::default(),
                    });
                }
                points_total += periods as u64;
            }
        }
        for d in 0..365 {
            let day = now() - Duration::days(365 - d);
            batch.costs.push(Cost {
                billed_cost: 1.0,
                effective_cost: 1.0,
                billing_currency: "USD".into(),
                charge_period_start: day,
                charge_period_end: day + Duration::days(1),
                charge_category: ChargeCategory::Usage,
                provider_name: "Amazon Web Services".into(),
                service_name: "Amazon Elastic Compute Cloud".into(),
                sub_account_id: Some(r.account.clone()),
                region_id: Some(r.region.clone()),
                resource_id: Some(r.id.clone()),
                x_source: CostSource::Estimated,
                ..Cost::default()
            });
        }
        batch.resources.push(r);
        if batch.points.len() >= 100_000 || batch.costs.len() >= 50_000 {
            flush(&mut batch, &store);
        }
    }
    flush(&mut batch, &store);
    store.flush().unwrap();
    println!(
        "populated {n} resources, {points_total} points, {} cost lines in {:.1} s",
        n * 365,
        started.elapsed().as_secs_f64()
    );
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn compute_findings(dir: &str) {
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir)).unwrap();
    // At rest, as a server's background compaction leaves it (a store populated by an
    // older build has its blocks rewritten in the current format here, untimed).
    let started = Instant::now();
    store.flush().unwrap();
    let flushed = started.elapsed().as_secs_f64();
    if flushed > 1.0 {
        println!("brought the store to rest (compaction, block format) in {flushed:.1} s");
    }
    let prices: Prices =
        BTreeMap::from([("aws".to_string(), Arc::new(Table) as Arc<dyn PriceTable>)]);
    let cfg = FindingsConfig {
        required_tags: vec!["owner".into()],
        ..Default::default()
    };
    let opened_rss = peak_rss_mib();
    let started = Instant::now();
    let found = compute(&store as &dyn Store, &prices, &cfg, now()).unwrap();
    let took = started.elapsed();
    let totals = Totals::of(&found);
    println!(
        "findings: {} ({:.2} USD/month; {:?}) in {:.2} s; peak RSS {:.0} MiB (after open {:.0} MiB)",
        totals.count,
        totals.monthly_usd,
        totals.by_kind.iter().map(|(k, v)| (k.as_str(), v.count)).collect::<Vec<_>>(),
        took.as_secs_f64(),
        peak_rss_mib(),
        opened_rss
    );
}

fn watch_round(dir: &str) {
    use skymeter_savings::anomaly::AnomalyConfig;
    use skymeter_savings::budget::BudgetsConfig;
    use skymeter_savings::watch::{anomalies, budget_reports};
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir)).unwrap();
    let budgets: BudgetsConfig = toml::from_str(
        r#"
[[budget]]
name = "ec2"
amount = 100000
scope = { provider = "aws", service = "Amazon Elastic Compute Cloud" }

[[budget]]
name = "eng"
amount = 1000
scope = { tags = { team = "eng" } }
"#,
    )
    .unwrap();
    // Budgets on the last day with cost (November 30th: the whole month), anomalies on
    // December 1st (judging the days through November 30th).
    let today = now().date_naive();
    let opened_rss = peak_rss_mib();
    let started = Instant::now();
    let reports = budget_reports(
        &store as &dyn Store,
        &budgets.budgets,
        today - chrono::Days::new(1),
    )
    .unwrap();
    let budgets_took = started.elapsed();
    let started = Instant::now();
    let found = anomalies(&store as &dyn Store, &AnomalyConfig::default(), today).unwrap();
    let anomalies_took = started.elapsed();
    println!(
        "budgets: {} (ec2 actual {:.2} USD) in {:.2} s; anomalies: {} in {:.2} s; peak RSS {:.0} MiB (after open {:.0} MiB)",
        reports.len(),
        reports[0].status.actual,
        budgets_took.as_secs_f64(),
        found.len(),
        anomalies_took.as_secs_f64(),
        peak_rss_mib(),
        opened_rss
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["populate", dir, n] => populate(dir, n.parse().expect("RESOURCES is a number")),
        ["compute", dir] => compute_findings(dir),
        ["watch", dir] => watch_round(dir),
        _ => {
            eprintln!(
                "usage: findings populate DIR RESOURCES | findings compute DIR | findings watch DIR"
            );
            std::process::exit(2);
        }
    }
}
