//! The web UI in headless Chromium, against a real server on the embedded store (as
//! `skymeter server` runs it, with tokens on) seeded through `POST /api/v1/ingest`:
//! 10,000 resources over four providers, a month of points for a few of them, 40 days of
//! billed, estimated and rated cost lines, an agent, and the resources of the Savings page
//! (unattached volumes, unassociated public IPs, an idle and an oversized instance with
//! two weeks of hourly points, priced by the findings' test price table); plus a second server with
//! `[rating]` whose job rates a small fleet, for the Rating page. `tests/ui/ui.test.mjs` (playwright-core driving Debian's
//! chromium) clicks through every page and checks what it shows against the expectations
//! this test writes; it saves a screenshot of each page and prints how long the inventory
//! takes to show its first page.
//!
//! Needs node, chromium and the npm package playwright-core (`scripts/test` installs
//! them); without them it prints `SKIPPED: …` and passes, or fails under `CI=true`.

use chrono::{DateTime, Duration as CDuration, DurationRound, Utc};
use serde_json::{json, Value};
use skymeter_model::api::{AgentRegistration, AgentTask};
use skymeter_model::{Batch, ChargeCategory, Cost, CostSource, Point, Resource, Stat, Unit};
use skymeter_server::{Auth, Server, ServerConfig, ServerError};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Scope, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shared rule for a missing outside tool: `SKIPPED: …` on a laptop, a failure under
/// `CI=true`.
use skymeter_savings::budget::{BudgetConfig, BudgetScope, Threshold, ThresholdBasis};
use skymeter_testkit::tool;

/// The findings' small price table (m5 sizes, gp3 per GiB, an address per hour), shared
/// with skymeter-savings' tests and benchmark.
#[path = "../../savings/src/test_prices.rs"]
mod test_prices;

const RESOURCES: usize = 10_000;
/// Minutes of points of the chart resource: 8 days, more than the longest range (7 d).
const CHART_MINUTES: i64 = 8 * 24 * 60;
const COST_DAYS: i64 = 40;
/// Rated lines seeded per day (provider, scope = account, service, amount).
const RATED: [(&str, &str, &str, f64); 3] = [
    ("Amazon Web Services", "111111111111", "instance", 30.0),
    ("Amazon Web Services", "222222222222", "instance", 12.5),
    ("skymeter", "lab", "volume.size", 2.25),
];

/// `$CARGO_TARGET_DIR/ui-artifacts`, else next to this test's binary (target/debug/deps/…).
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(std::env::temp_dir);
    target.join("ui-artifacts")
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("skymeter-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Seeded {
    resources: Vec<Resource>,
    /// The resource whose page the test opens, and its charts' newest point.
    chart: Resource,
    chart_newest: DateTime<Utc>,
    costs: Vec<Cost>,
    price_date: String,
    agent: AgentRegistration,
}

const PROVIDERS: [(&str, &[&str], &[&str]); 4] = [
    (
        "aws",
        &["111111111111", "222222222222"],
        &["us-east-1", "us-west-2", "eu-west-1"],
    ),
    (
        "gcp",
        &["shop-prod", "shop-dev"],
        &["europe-west1", "us-central1"],
    ),
    (
        "azure",
        &["3f2a1c9e-0000-4000-8000-00000000a001"],
        &["westeurope", "eastus"],
    ),
    ("host", &["lab"], &[""]),
];
const KINDS: [(&str, &str); 4] = [
    ("compute.instance", "vm"),
    ("database.instance", "db"),
    ("storage.bucket", "bucket"),
    ("function", "fn"),
];
const TEAMS: [&str; 5] = ["web", "data", "core", "ml", "ops"];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];

fn resource(i: usize, now: DateTime<Utc>) -> Resource {
    let (provider, accounts, regions) = PROVIDERS[i % 4];
    let account = accounts[(i / 4) % accounts.len()];
    let region = regions[(i / 8) % regions.len()];
    let (kind, prefix) = if provider == "host" {
        ("host", "host")
    } else {
        KINDS[(i / 3) % KINDS.len()]
    };
    let name = format!("{prefix}-{}-{i:05}", TEAMS[i % 5]);
    let (id, native) = match provider {
        "aws" => (format!("i-{:017x}", 0x0abc_0000_0000_0000u64 + i as u64), "AWS::EC2::Instance"),
        "gcp" => (format!("{}", 7_000_000_000_000u64 + i as u64), "compute.googleapis.com/Instance"),
        // Azure ids are paths: the UI must percent-encode the key's slashes.
        "azure" => (
            format!("/subscriptions/{account}/resourceGroups/rg-{}/providers/Microsoft.Compute/virtualMachines/{name}", TEAMS[i % 5]),
            "Microsoft.Compute/virtualMachines",
        ),
        _ => (name.clone(), "host"),
    };
    let mut tags = BTreeMap::new();
    tags.insert("env".to_string(), ENVS[i % 3].to_string());
    tags.insert("team".to_string(), TEAMS[i % 5].to_string());
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "instance_type".into(),
        json!(["m5.large", "t3.medium", "c6g.xlarge"][i % 3]),
    );
    attributes.insert("state".into(), json!("running"));
    attributes.insert("vcpus".into(), json!(2 << (i % 3)));
    Resource {
        provider: provider.into(),
        account: account.into(),
        region: region.into(),
        kind: kind.into(),
        native_type: native.into(),
        id,
        name,
        tags,
        attributes,
        observed_at: now - CDuration::seconds((i % 3600) as i64),
    }
}

/// Deterministic, smooth, different per metric: what a chart should look like.
fn wave(minute: i64, period_min: f64, base: f64, amp: f64) -> f64 {
    let x = minute as f64 * std::f64::consts::TAU / period_min;
    ((base + amp * x.sin()) * 4.0).round() / 4.0
}

fn point(
    r: &Resource,
    metric: &str,
    unit: Unit,
    stat: Stat,
    ts: DateTime<Utc>,
    value: f64,
) -> Point {
    Point {
        metric: metric.into(),
        unit,
        stat,
        period_s: 60,
        ts,
        value,
        resource: Arc::new(r.reference()),
        labels: Default::default(),
    }
}

fn cost(
    day: DateTime<Utc>,
    provider: &str,
    account: &str,
    service: &str,
    amount: f64,
    source: CostSource,
    price_date: Option<&str>,
) -> Cost {
    Cost {
        billed_cost: amount,
        effective_cost: amount * 0.75,
        list_cost: None,
        billing_currency: "USD".into(),
        charge_period_start: day,
        charge_period_end: day + CDuration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: provider.into(),
        service_name: service.into(),
        service_category: None,
        sub_account_id: Some(account.into()),
        region_id: None,
        resource_id: None,
        resource_type: None,
        sku_id: None,
        pricing_quantity: None,
        pricing_unit: None,
        consumed_quantity: None,
        consumed_unit: None,
        tags: Default::default(),
        x_source: source,
        x_price_date: price_date.map(String::from),
        ..Default::default()
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    path: &str,
    body: &impl serde::Serialize,
) {
    let resp = client
        .post(format!("{url}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
}

async fn seed(client: &reqwest::Client, url: &str, token: &str) -> Seeded {
    let now = Utc::now();
    let mut resources: Vec<Resource> = (0..RESOURCES).map(|i| resource(i, now)).collect();
    // The resource the test opens: found by a unique search term, with a history entry.
    resources[0].name = "checkout-web-01".into();
    let mut b = Batch::new("agent-ui-test", "inventory", now);
    b.resources = resources.clone();
    post(client, url, token, "/api/v1/ingest", &b).await;
    let mut chart = resources[0].clone();
    chart
        .attributes
        .insert("instance_type".into(), json!("m5.xlarge"));
    chart.observed_at = now;
    resources[0] = chart.clone();
    let mut b = Batch::new("agent-ui-test", "inventory", now);
    b.resources = vec![chart.clone()];
    post(client, url, token, "/api/v1/ingest", &b).await;

    // One point a minute for 8 days: cpu avg + max, memory avg, disk read avg + max,
    // network in avg + max, network out avg.
    let newest = now.duration_trunc(CDuration::minutes(1)).unwrap();
    let series: [(&str, Unit, Stat, f64, f64, f64); 8] = [
        (
            "cpu.utilization",
            Unit::Percent,
            Stat::Avg,
            360.0,
            40.0,
            25.0,
        ),
        (
            "cpu.utilization",
            Unit::Percent,
            Stat::Max,
            360.0,
            60.0,
            30.0,
        ),
        ("memory.usage", Unit::Percent, Stat::Avg, 1440.0, 55.0, 10.0),
        (
            "disk.read_throughput",
            Unit::BytesPerSecond,
            Stat::Avg,
            90.0,
            2.0e6,
            1.0e6,
        ),
        (
            "disk.read_throughput",
            Unit::BytesPerSecond,
            Stat::Max,
            90.0,
            4.0e6,
            1.5e6,
        ),
        (
            "network.received_throughput",
            Unit::BytesPerSecond,
            Stat::Avg,
            240.0,
            5.0e6,
            2.0e6,
        ),
        (
            "network.received_throughput",
            Unit::BytesPerSecond,
            Stat::Max,
            240.0,
            9.0e6,
            3.0e6,
        ),
        (
            "network.sent_throughput",
            Unit::BytesPerSecond,
            Stat::Avg,
            200.0,
            1.5e6,
            0.5e6,
        ),
    ];
    let mut points = Vec::new();
    for m in 0..CHART_MINUTES {
        let ts = newest - CDuration::minutes(m);
        for (metric, unit, stat, period, base, amp) in series {
            points.push(point(
                &chart,
                metric,
                unit,
                stat,
                ts,
                wave(m, period, base, amp),
            ));
        }
    }
    // A few more resources with a day of CPU every 5 minutes.
    for r in &resources[1..4] {
        for m in (0..24 * 60).step_by(5) {
            points.push(point(
                r,
                "cpu.utilization",
                Unit::Percent,
                Stat::Avg,
                newest - CDuration::minutes(m),
                wave(m, 300.0, 30.0, 20.0),
            ));
        }
    }
    for chunk in points.chunks(20_000) {
        let mut b = Batch::new("agent-ui-test", "metrics", now);
        b.points = chunk.to_vec();
        post(client, url, token, "/api/v1/ingest", &b).await;
    }

    // 40 days of cost lines; GCP's are estimates from a price table of 45 days ago.
    // Amounts are quarters, so that every sum is exact in binary and on the page.
    let price_date = (now - CDuration::days(45)).format("%Y-%m-%d").to_string();
    let today = now.duration_trunc(CDuration::days(1)).unwrap();
    let lines: [(&str, &str, &str, f64, bool); 7] = [
        (
            "Amazon Web Services",
            "111111111111",
            "Amazon EC2",
            120.0,
            false,
        ),
        (
            "Amazon Web Services",
            "111111111111",
            "Amazon S3",
            14.25,
            false,
        ),
        (
            "Amazon Web Services",
            "222222222222",
            "Amazon RDS",
            48.5,
            false,
        ),
        ("Google Cloud", "shop-prod", "Compute Engine", 66.75, true),
        ("Google Cloud", "shop-dev", "Cloud Storage", 3.5, true),
        (
            "Microsoft",
            "3f2a1c9e-0000-4000-8000-00000000a001",
            "Virtual Machines",
            81.0,
            false,
        ),
        (
            "Microsoft",
            "3f2a1c9e-0000-4000-8000-00000000a001",
            "Storage",
            9.75,
            false,
        ),
    ];
    let mut costs = Vec::new();
    for d in 0..COST_DAYS {
        let day = today - CDuration::days(d);
        for (i, (provider, account, service, base, est)) in lines.iter().enumerate() {
            let amount = base + ((d + i as i64) % 7) as f64 * 0.25;
            let source = if *est {
                CostSource::Estimated
            } else {
                CostSource::Billed
            };
            costs.push(cost(
                day,
                provider,
                account,
                service,
                amount,
                source,
                est.then_some(price_date.as_str()),
            ));
        }
        // What the rating job would have charged the scopes for the same days: rated lines
        // beside the billed and estimated ones, scoped by account.
        for (provider, account, service, base) in RATED {
            let mut line = cost(
                day,
                provider,
                account,
                service,
                base + (d % 4) as f64 * 0.5,
                CostSource::Rated,
                None,
            );
            line.tags
                .insert("rating_scope".to_string(), account.to_string());
            costs.push(line);
        }
        // The estimate of the RDS bill, RECON_GAP a day under it: a reconciliation
        // finding on the Savings page.
        costs.push(cost(
            day,
            "Amazon Web Services",
            "222222222222",
            "Amazon RDS",
            48.5 + ((d + 2) % 7) as f64 * 0.25 - RECON_GAP,
            CostSource::Estimated,
            Some(price_date.as_str()),
        ));
    }
    let mut b = Batch::new("agent-ui-test", "costs", now);
    b.costs = costs.clone();
    post(client, url, token, "/api/v1/ingest", &b).await;

    let agent = AgentRegistration {
        id: "agent-ui-test".into(),
        hostname: "collector-1.lab".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        tasks: vec![
            AgentTask {
                name: "inventory".into(),
                interval_s: 300,
            },
            AgentTask {
                name: "metrics".into(),
                interval_s: 60,
            },
        ],
        labels: [("site".to_string(), "lab".to_string())].into(),
        heartbeat_interval_s: 30,
    };
    // Registered by the caller once the findings are ready (a minute later): its heartbeat
    // interval is 30 s, and the Agents page must find it healthy.
    Seeded {
        resources,
        chart,
        chart_newest: newest,
        costs,
        price_date,
        agent,
    }
}

/// Unattached aws volumes of the Savings page (10, 20, … GiB at 0.08 USD per GiB-month).
const ORPHAN_VOLUMES: usize = 28;
/// USD a day the seeded estimate of one service is under its bill.
const RECON_GAP: f64 = 5.0;
/// Days of bill and estimate a reconciliation finding compares (its default window).
const RECON_DAYS: usize = 30;
/// Findings a page of the Savings page shows in the test (the rest come with "More").
const SAVINGS_PAGE: usize = 25;
/// Hours of hourly points of the idle and the oversized instance: more than the 14 days
/// the findings look back.
const SAVINGS_HOURS: i64 = 15 * 24;

fn cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn savings_resource(
    (provider, account, region): (&str, &str, &str),
    kind: &str,
    id: &str,
    name: &str,
    attributes: Value,
    now: DateTime<Utc>,
) -> Resource {
    let attributes = attributes
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Resource {
        provider: provider.into(),
        account: account.into(),
        region: region.into(),
        kind: kind.into(),
        native_type: kind.into(),
        id: id.into(),
        name: name.into(),
        tags: [("team".to_string(), "ops".to_string())].into(),
        attributes,
        observed_at: now,
    }
}

/// An hourly point (`period_s` 3600), stamped with the end of its hour.
fn hourly(r: &Resource, metric: &str, unit: Unit, stat: Stat, ts: DateTime<Utc>, v: f64) -> Point {
    Point {
        period_s: 3600,
        ..point(r, metric, unit, stat, ts, v)
    }
}

/// A finding the Savings page must list.
struct Expected {
    id: String,
    /// The inventory key; empty for a reconciliation finding (about a service).
    key: String,
    name: String,
    kind: &'static str,
    usd: Option<f64>,
    rec: Option<&'static str>,
}

/// Seeds what the Savings page shows and returns its expectations: every finding the
/// seed implies (id, kind, money), in the API's order, after checking that the API says
/// exactly that; the totals; a filtered subset and its CSV; the hours of points behind
/// the idle and oversized instances' evidence.
async fn seed_savings(client: &reqwest::Client, url: &str, ingest: &str, read: &str) -> Value {
    let now = Utc::now();
    let aws = |i: usize| {
        [
            ("aws", "111111111111", "us-east-1"),
            ("aws", "222222222222", "us-west-2"),
        ][i % 2]
    };
    // (resource, kind, monthly USD, recommended type)
    let mut expected: Vec<(Resource, &str, Option<f64>, Option<&str>)> = Vec::new();
    for i in 0..ORPHAN_VOLUMES {
        let gib = 10 * (i + 1);
        let r = savings_resource(
            aws(i),
            "storage.volume",
            &format!("vol-0{:016x}", 0x5a00 + i),
            &format!("orphan-vol-{i:02}"),
            json!({"size_gib": gib, "state": "available", "volume_type": "gp3", "attached_to": null}),
            now,
        );
        expected.push((r, "orphaned", Some(cents(gib as f64 * 0.08)), None));
    }
    // No price table for gcp: a finding without an amount (and a note saying so).
    let r = savings_resource(
        // Not in europe-west1: the inventory's filter test counts that region.
        ("gcp", "shop-prod", "us-central1"),
        "storage.volume",
        "disk-orphan-1",
        "orphan-disk-gcp",
        json!({"size_gib": 50, "state": "READY"}),
        now,
    );
    expected.push((r, "orphaned", None, None));
    for i in 0..2 {
        let r = savings_resource(
            aws(i),
            "network.public_ip",
            &format!("eipalloc-0{i}5e1d"),
            &format!("spare-ip-{i}"),
            json!({"public_ip": format!("203.0.113.{}", 10 + i), "associated": false}),
            now,
        );
        expected.push((r, "orphaned", Some(cents(0.005 * 730.0)), None));
    }
    let price = |ty: &str| {
        test_prices::M5
            .iter()
            .find(|m| m.0 == ty)
            .map(|m| m.3 * 730.0)
            .unwrap()
    };
    let idle = savings_resource(
        aws(0),
        "compute.instance",
        "i-0d1e0000000000001",
        "batch-idle-01",
        json!({"instance_type": "m5.xlarge", "state": "running", "vcpus": 4}),
        now,
    );
    expected.push((idle.clone(), "idle", Some(cents(price("m5.xlarge"))), None));
    let big = savings_resource(
        aws(1),
        "compute.instance",
        "i-0b16000000000002",
        "api-oversized-01",
        json!({"instance_type": "m5.2xlarge", "state": "running", "vcpus": 8, "memory_mib": 32768}),
        now,
    );
    // p95 CPU at most 16 % of 8 vCPUs and memory at most 15 %, with 25 % headroom: 1.6 vCPU
    // and 4.8 GiB, which m5.large holds.
    expected.push((
        big.clone(),
        "rightsizing",
        Some(cents(cents(price("m5.2xlarge")) - cents(price("m5.large")))),
        Some("m5.large"),
    ));
    let mut b = Batch::new("agent-ui-test", "inventory", now);
    b.resources = expected.iter().map(|e| e.0.clone()).collect();
    post(client, url, ingest, "/api/v1/ingest", &b).await;

    let newest = now.duration_trunc(CDuration::hours(1)).unwrap();
    let mut points = Vec::new();
    for h in 0..=SAVINGS_HOURS {
        let ts = newest - CDuration::hours(h);
        let m = h * 60;
        // Idle: CPU peaks under 5 %, network a few hundred bytes a second.
        points.push(hourly(
            &idle,
            "cpu.utilization",
            Unit::Percent,
            Stat::Max,
            ts,
            wave(m, 1440.0, 2.0, 1.0),
        ));
        points.push(hourly(
            &idle,
            "network.received_throughput",
            Unit::BytesPerSecond,
            Stat::Avg,
            ts,
            wave(m, 1440.0, 300.0, 100.0),
        ));
        points.push(hourly(
            &idle,
            "network.sent_throughput",
            Unit::BytesPerSecond,
            Stat::Avg,
            ts,
            wave(m, 720.0, 150.0, 50.0),
        ));
        // Oversized: busy enough not to be idle, small enough for m5.large.
        points.push(hourly(
            &big,
            "cpu.utilization",
            Unit::Percent,
            Stat::Avg,
            ts,
            wave(m, 1440.0, 12.0, 4.0),
        ));
        points.push(hourly(
            &big,
            "memory.usage",
            Unit::Percent,
            Stat::Max,
            ts,
            wave(m, 1440.0, 12.0, 3.0),
        ));
    }
    let mut b = Batch::new("agent-ui-test", "metrics", now);
    b.points = points;
    post(client, url, ingest, "/api/v1/ingest", &b).await;

    let mut expected: Vec<Expected> = expected
        .into_iter()
        .map(|(r, kind, usd, rec)| Expected {
            id: format!("{kind}/{}", r.reference().key()),
            key: r.reference().key(),
            name: r.name.clone(),
            kind,
            usd,
            rec,
        })
        .collect();
    // The RDS estimate is RECON_GAP a day under its bill on each day compared: an error of
    // RECON_GAP × 30.42 a month, not a saving, about the service rather than a resource.
    let recon_id = "reconciliation/aws/222222222222/Amazon RDS";
    expected.push(Expected {
        id: recon_id.into(),
        key: String::new(),
        name: "Amazon RDS".into(),
        kind: "reconciliation",
        usd: Some(cents(RECON_GAP * 30.42)),
        rec: None,
    });
    // The API's order: largest amount first (no amount counts as 0), then id.
    expected.sort_by(|a, b| {
        b.usd
            .unwrap_or(0.0)
            .total_cmp(&a.usd.unwrap_or(0.0))
            .then_with(|| a.id.cmp(&b.id))
    });
    let api = |q: String| {
        let (client, url, read) = (client.clone(), url.to_string(), read.to_string());
        async move {
            let resp = client
                .get(format!("{url}/api/v1/findings?{q}"))
                .bearer_auth(read)
                .send()
                .await
                .unwrap();
            assert!(
                resp.status().is_success(),
                "GET findings?{q}: {}",
                resp.status()
            );
            resp
        }
    };
    // The API answers "now" from a computation of the last minute: make sure the one read
    // here was made after the seed (no request before it should have made one; the
    // server's own rounds do not fill that cache).
    let seeded_at = Utc::now();
    let waited = Instant::now();
    loop {
        let page: Value = api("limit=1".into()).await.json().await.unwrap();
        let at: DateTime<Utc> = serde_json::from_value(page["at"].clone()).unwrap();
        if at >= seeded_at {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(120),
            "findings computed after the seed within 2 minutes: {page}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "findings computed after the seed: waited {:.1} s",
        waited.elapsed().as_secs_f64()
    );
    let all: Value = api("limit=1000".into()).await.json().await.unwrap();
    let got: Vec<(String, Option<f64>)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["monthly_usd"].as_f64(),
            )
        })
        .collect();
    let want: Vec<(String, Option<f64>)> = expected.iter().map(|e| (e.id.clone(), e.usd)).collect();
    assert_eq!(got, want, "the findings of the seed, largest first");
    let recon = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == recon_id)
        .unwrap();
    assert_eq!(
        recon["evidence"]["days"].as_array().unwrap().len(),
        RECON_DAYS,
        "{recon}"
    );
    let mut by_kind: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    for e in &expected {
        let k = by_kind.entry(e.kind).or_default();
        k.0 += 1;
        k.1 += e.usd.unwrap_or(0.0);
    }
    // The estimate's error is no saving: not in the total.
    let total = cents(
        expected
            .iter()
            .filter(|e| e.kind != "reconciliation")
            .map(|e| e.usd.unwrap_or(0.0))
            .sum(),
    );
    let by_kind: BTreeMap<&str, Value> = by_kind
        .into_iter()
        .map(|(k, (count, usd))| (k, json!({"count": count, "monthly_usd": cents(usd)})))
        .collect();
    let totals = json!({"count": expected.len(), "monthly_usd": total, "by_kind": by_kind});
    assert_eq!(all["totals"], totals, "the totals of the seed");

    // A filter: orphaned, at least 20 USD a month (the four largest volumes).
    let filtered: Vec<&Expected> = expected
        .iter()
        .filter(|e| e.kind == "orphaned" && e.usd.unwrap_or(0.0) >= 20.0)
        .collect();
    assert_eq!(filtered.len(), 4);
    let csv = api("kind=orphaned&min_monthly_usd=20&format=csv".into())
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1 + filtered.len(), "{csv}");

    let item = |e: &Expected| {
        json!({
            "id": e.id, "kind": e.kind, "monthly_usd": e.usd, "name": e.name,
            "key": e.key, "recommended_type": e.rec,
        })
    };
    json!({
        "totals": totals,
        "items": expected.iter().map(item).collect::<Vec<_>>(),
        "page": SAVINGS_PAGE,
        "filter": {
            "kind": "orphaned",
            "min_usd": 20,
            "ids": filtered.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            "monthly_usd": cents(filtered.iter().map(|e| e.usd.unwrap_or(0.0)).sum()),
            "csv_header": csv.lines().next().unwrap(),
        },
        "idle": {
            "id": format!("idle/{}", idle.reference().key()),
            "instance_type": "m5.xlarge",
            "series": {
                "cpu.utilization": ["cpu.utilization"],
                "network.received_throughput+network.sent_throughput":
                    ["network.received_throughput", "network.sent_throughput"],
            },
        },
        "rightsizing": {
            "id": format!("rightsizing/{}", big.reference().key()),
            "series": {"cpu.utilization": ["cpu.utilization"], "memory.usage": ["memory.usage"]},
        },
        "reconciliation": {"id": recon_id, "days": RECON_DAYS, "gap": RECON_GAP},
        // The hours with points: newest (Unix seconds) and back SAVINGS_HOURS more.
        "hourly": {"newest": newest.timestamp(), "hours": SAVINGS_HOURS + 1},
    })
}

/// The Costs page's budgets: one far over its amount (every threshold crossed), one whose
/// forecast only may cross, and one far under it.
fn budgets() -> Vec<BudgetConfig> {
    let t = |percent: f64, on: ThresholdBasis| Threshold { percent, on };
    let scope = |provider: Option<&str>| BudgetScope {
        provider: provider.map(String::from),
        ..Default::default()
    };
    vec![
        BudgetConfig {
            name: "aws-small".into(),
            amount: 100.0,
            scope: scope(Some("aws")),
            thresholds: vec![
                t(80.0, ThresholdBasis::Actual),
                t(100.0, ThresholdBasis::Actual),
                t(100.0, ThresholdBasis::Forecast),
            ],
        },
        BudgetConfig {
            name: "gcp-month".into(),
            amount: 1000.0,
            scope: scope(Some("gcp")),
            thresholds: vec![
                t(90.0, ThresholdBasis::Actual),
                t(120.0, ThresholdBasis::Forecast),
            ],
        },
        BudgetConfig {
            name: "everything".into(),
            amount: 1_000_000.0,
            scope: scope(None),
            thresholds: vec![t(50.0, ThresholdBasis::Actual)],
        },
    ]
}

/// `GET /api/v1/budgets` as the page will ask it: what its bars must show. The aws budget's
/// spend is checked against the seed: the billed AWS lines of this month through today
/// (each AWS account has billed lines every day, so its rated ones do not count).
async fn budgets_answer(client: &reqwest::Client, url: &str, token: &str, costs: &[Cost]) -> Value {
    // Like the findings, the start round's budgets (no cost yet) answer for a minute.
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        let resp = client
            .get(format!("{url}/api/v1/budgets"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "GET /api/v1/budgets: {}",
            resp.status()
        );
        let answer: Value = resp.json().await.unwrap();
        if answer["budgets"][0]["actual"].as_f64().unwrap_or(0.0) > 0.0 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "budgets with the seeded costs: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let names: Vec<&str> = answer["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aws-small", "gcp-month", "everything"], "{answer}");
    let today = Utc::now().date_naive();
    let aws: f64 = costs
        .iter()
        .filter(|c| c.provider_name == "Amazon Web Services" && c.x_source == CostSource::Billed)
        .filter(|c| {
            let day = c.charge_period_start.date_naive();
            day <= today && day.format("%Y-%m").to_string() == today.format("%Y-%m").to_string()
        })
        .map(|c| c.billed_cost)
        .sum();
    let actual = answer["budgets"][0]["actual"].as_f64().unwrap();
    assert!(
        (actual - aws).abs() < 1e-6,
        "aws-small actual {actual}, seeded {aws}"
    );
    assert!(
        answer["budgets"][2]["thresholds"][0]["crossed"] == false,
        "the large budget is within its threshold: {answer}"
    );
    answer
}

/// What the pages must show, for the script.
fn expectations(s: &Seeded, token: &str) -> Value {
    let key = |r: &Resource| r.reference().key();
    let mut gcp: Vec<&Resource> = s
        .resources
        .iter()
        .filter(|r| r.provider == "gcp" && r.region == "europe-west1")
        .collect();
    gcp.sort_by_key(|r| key(r));
    let page_keys = |from: usize| -> Vec<String> {
        gcp[from..(from + 100).min(gcp.len())]
            .iter()
            .map(|r| key(r))
            .collect()
    };
    let mut by_name = gcp.clone();
    by_name.sort_by_key(|r| (r.name.clone(), key(r)));

    // Costs of the page's default range: the last 30 UTC days, today included.
    let today = Utc::now().duration_trunc(CDuration::days(1)).unwrap();
    let start = today - CDuration::days(29);
    let mut providers: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    let mut services = std::collections::BTreeSet::new();
    let mut accounts = std::collections::BTreeSet::new();
    for c in s.costs.iter().filter(|c| c.charge_period_end > start) {
        let source = c.x_source.as_str();
        *providers
            .entry(c.provider_name.as_str())
            .or_default()
            .entry(source)
            .or_default() += c.billed_cost;
        *totals.entry(source).or_default() += c.billed_cost;
        services.insert((c.provider_name.as_str(), c.service_name.as_str()));
        accounts.insert((c.provider_name.as_str(), c.sub_account_id.as_deref()));
    }
    json!({
        "token": token,
        // The registered agent is in the inventory too (provider `skymeter`, kind `agent`).
        "total": s.resources.len() + 1,
        "filter": {
            "provider": "gcp",
            "region": "europe-west1",
            "count": gcp.len(),
            "page1": page_keys(0),
            "page2": page_keys(100),
            "first_by_name": by_name.first().map(|r| r.name.clone()),
            "last_by_name": by_name.last().map(|r| r.name.clone()),
        },
        "chart": {
            "q": "checkout",
            "key": key(&s.chart),
            "name": s.chart.name,
            "newest": s.chart_newest.timestamp(),
            "minutes": CHART_MINUTES,
            "history_field": "attributes.instance_type",
            "instance_type": "m5.xlarge",
        },
        "costs": {
            "days": 30,
            "totals": totals,
            "providers": providers,
            "services": services.len(),
            "accounts": accounts.len(),
            "price_date": s.price_date,
        },
        "agent": {"id": s.agent.id, "hostname": s.agent.hostname},
    })
}

/// The rules of the rating server: instances priced by type (times 1.5 for one team),
/// volumes per GiB with a threshold, and a script; every price a binary fraction, so that
/// the sums on the page are exact.
const RATING_RULES: &str = r#"
[[service]]
metric = "instance"
unit = "instance"
usage = { kind = "compute.instance" }
category = "Compute"
groupby = ["id", "account"]
metadata = ["instance_type"]

[[service]]
metric = "volume.size"
unit = "GiB"
usage = { kind = "storage.volume", attribute = "size_gib" }
category = "Storage"
groupby = ["id", "account"]

[modules.hashmap]
enabled = true
priority = 2

[[hashmap.group]]
name = "compute"

[[hashmap.group]]
name = "volume_thresholds"

[[hashmap.service]]
name = "instance"

[[hashmap.service.field]]
name = "instance_type"
mapping = [
  { value = "m5.large", type = "flat", cost = "0.5", group = "compute" },
  { value = "t3.micro", type = "flat", cost = "0.25", group = "compute" },
]

[[hashmap.service.field]]
name = "account"
mapping = [{ value = "team-research", type = "rate", cost = "1.5", group = "compute" }]

[[hashmap.service]]
name = "volume.size"
mapping = [{ type = "flat", cost = "0.0625", group = "volume_thresholds" }]
threshold = [
  { level = 50, type = "rate", cost = "0.5", group = "volume_thresholds" },
  { level = 500, type = "rate", cost = "0.25", group = "volume_thresholds", scope = "team-research" },
]

[modules.script]
enabled = true
priority = 1

[[script]]
name = "gpu"
source = '''
const PER_HOUR = #{ "a100": 2.93, "t4": 0.35 };
if "gpu" in data.usage {
    for i in 0..data.usage.gpu.len() {
        let item = data.usage.gpu[i];
        let price = PER_HOUR[item.metadata.model] ?? 0;
        data.usage.gpu[i].rating.price = item.vol.qty * price;
    }
}
'''
"#;

/// A resource of the rating server: account, id, kind, instance type, size in GiB.
type Fleet = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<i64>,
);

/// Hours of usage each resource of the rating server has, from the job's start.
const RATED_HOURS: i64 = 4;

/// A server with `[rating]` on its own small store (auth off, loopback): four resources in
/// two scopes, present for [`RATED_HOURS`] from the job's start, rated by the job itself,
/// then the first two hours re-rated. Returns the server's URL, its stop switch and task,
/// and what its Rating page must show.
async fn rating_server(
    dir: &Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), ServerError>>,
    Value,
) {
    let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::new(dir.join("store"))).unwrap());
    let rules_file = dir.join("ui-rating.toml");
    std::fs::write(&rules_file, RATING_RULES).unwrap();
    let rules = skymeter_rating::rules::load_file(&rules_file).unwrap();
    // Periods of an hour, ready two hours after they end: the job rates six of them.
    let now = Utc::now();
    let ready = now.duration_trunc(CDuration::hours(1)).unwrap() - CDuration::hours(2);
    let start = ready - CDuration::hours(6);
    let order: Vec<String> = rules.run_order().iter().map(|s| s.to_string()).collect();
    let modules: BTreeMap<&String, Value> = rules
        .modules
        .iter()
        .map(|(name, m)| {
            let at = order.iter().position(|n| n == name).map(|i| i + 1);
            (
                name,
                json!({"enabled": m.enabled, "priority": m.priority, "order": at}),
            )
        })
        .collect();
    let modules = serde_json::to_value(modules).unwrap();
    let rule_rows = rules.hashmap.mappings.len() + rules.hashmap.thresholds.len();
    let mut config = skymeter_server::RatingConfig::new(rules);
    config.rules_file = Some(rules_file.clone());
    config.start = Some(start);

    // Seen at the start and RATED_HOURS later: present for exactly those hours.
    // (scope = account, id, kind, instance_type, size_gib)
    let fleet: [Fleet; 4] = [
        (
            "team-web",
            "i-web-1",
            "compute.instance",
            Some("m5.large"),
            None,
        ),
        (
            "team-web",
            "i-web-2",
            "compute.instance",
            Some("t3.micro"),
            None,
        ),
        ("team-web", "vol-web-1", "storage.volume", None, Some(64)),
        (
            "team-research",
            "i-res-1",
            "compute.instance",
            Some("m5.large"),
            None,
        ),
    ];
    for at in [start, start + CDuration::hours(RATED_HOURS)] {
        let mut b = Batch::new("agent-ui-rating", "inventory", at);
        for (account, id, kind, itype, size) in fleet {
            let mut attributes = BTreeMap::new();
            if let Some(t) = itype {
                attributes.insert("instance_type".to_string(), json!(t));
            }
            if let Some(s) = size {
                attributes.insert("size_gib".to_string(), json!(s));
            }
            b.resources.push(Resource {
                provider: "aws".into(),
                account: account.into(),
                region: "eu-west-1".into(),
                kind: kind.into(),
                native_type: kind.into(),
                id: id.into(),
                name: id.into(),
                tags: BTreeMap::new(),
                attributes,
                observed_at: at,
            });
        }
        store.ingest(&b).unwrap();
    }

    let server_config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        auth: Auth::Disabled,
        rating: Some(config),
        ..Default::default()
    };
    let server = Server::bind(server_config, store.clone()).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // The job rates the ready periods at once; then the first two hours are re-rated.
    let client = reqwest::Client::new();
    let get = |path: String| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let resp = client.get(format!("{url}{path}")).send().await.unwrap();
            assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
            resp.json::<Value>().await.unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = get("/api/v1/rating/status".into()).await;
        if s["scopes"].as_array().is_some_and(|a| a.len() == 2)
            && s["rated_until"] == s["ready_until"]
        {
            break;
        }
        assert!(Instant::now() < deadline, "the rating job caught up: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = client
        .post(format!("{url}/api/v1/rating/rerate"))
        .json(&json!({"from": start, "to": start + CDuration::hours(2)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    loop {
        let s = get("/api/v1/rating/status".into()).await;
        if s["rerates"][0]["state"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "the re-rate finished: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Per hour: team-web 0.5 + 0.25 for its instances and 64 GiB × 0.0625 × 0.5 for its
    // volume; team-research 0.5 × 1.5.
    let h = RATED_HOURS as f64;
    let by_service = json!({
        "team-research/instance": 0.75 * h,
        "team-web/instance": 0.75 * h,
        "team-web/volume.size": 2.0 * h,
    });
    let by_scope = json!({"team-research": 0.75 * h, "team-web": 2.75 * h});
    // The API agrees before the page is asked.
    let groups = get("/api/v1/costs?source=rated&group_by=account,service".into()).await;
    let got: BTreeMap<String, f64> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let key = format!(
                "{}/{}",
                g["group"]["account"].as_str().unwrap(),
                g["group"]["service"].as_str().unwrap()
            );
            (key, g["billed_cost"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        by_service,
        "rated totals"
    );
    let expect = json!({
        "url": url,
        "period": "1 h",
        "scope_by": "account",
        "rules_file": rules_file.display().to_string(),
        "ready_until": ready,
        "modules": modules,
        "rule_rows": rule_rows,
        "scripts": ["gpu"],
        "scopes": ["team-research", "team-web"],
        "by_scope": by_scope,
        "by_service": by_service,
        // Two periods of four resources each, rated again.
        "rerate": {"id": 1, "state": "done", "lines": 8, "deleted": 8},
    });
    (url, stop, task, expect)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_headless_chromium() {
    // Not `eprintln!` (libtest captures it): the shared helper writes past the capture, so
    // scripts/test counts the skip, and fails the test under CI.
    let Some(tools) = tool::require_tool("every_page_in_headless_chromium", tool::browser()) else {
        return;
    };
    let data = TempDir::new("ui-store");
    let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::new(&data.0)).unwrap());
    let (read_token, _) = store
        .create_token("ui-browser-read", &[Scope::Read])
        .unwrap();
    let (ingest_token, _) = store
        .create_token("ui-browser-seed", &[Scope::Ingest])
        .unwrap();
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    // Findings priced for aws only: the gcp volume's finding has no amount.
    config
        .savings
        .prices
        .insert("aws".into(), Arc::new(test_prices::Table));
    config.savings.budgets = budgets();
    let server = Server::bind(config, store.clone()).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let started = Instant::now();
    let seeded = seed(&client, &url, &ingest_token).await;
    let seed_time = started.elapsed();
    let savings_expect = seed_savings(&client, &url, &ingest_token, &read_token).await;
    // The Rating page's data comes from a second server, with `[rating]`; the first one
    // has none and shows the page's empty state.
    let rating_data = TempDir::new("ui-rating");
    let (rating_url, rating_stop, rating_task, rating_expect) = rating_server(&rating_data.0).await;

    let out = artifacts_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut expect = expectations(&seeded, &read_token);
    expect["rating"] = rating_expect;
    // The Savings page's resources (not the reconciliation's service) are in the inventory
    // too; the series of the server's savings rounds are not (budgets and findings totals
    // are no resources).
    expect["total"] = json!(
        expect["total"].as_u64().unwrap()
            + savings_expect["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["key"] != "")
                .count() as u64
    );
    expect["savings"] = savings_expect;
    expect["budgets"] = budgets_answer(&client, &url, &read_token, &seeded.costs).await;
    post(
        &client,
        &url,
        &ingest_token,
        "/api/v1/agents/register",
        &seeded.agent,
    )
    .await;
    std::fs::write(
        out.join("expect.json"),
        serde_json::to_vec_pretty(&expect).unwrap(),
    )
    .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/ui.test.mjs");
    let child = tokio::process::Command::new(&tools.node)
        .arg(&script)
        .arg(&url)
        .arg(&out)
        .env("SKYMETER_CHROMIUM", &tools.chromium)
        .env("SKYMETER_UI_TEST_DIR", &tools.playwright_dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .expect("the browser test finishes within 5 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    println!("{stderr}");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let _ = rating_stop.send(());
    rating_task.await.unwrap().unwrap();
    println!("rating server at {rating_url} stopped");

    assert!(
        output.status.success(),
        "{} failed ({}); screenshots in {}\n{stdout}\n{stderr}",
        script.display(),
        output.status,
        out.display()
    );
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .expect("the script prints its SUMMARY line");
    let summary: Value = serde_json::from_str(summary).unwrap();
    eprintln!(
        "ui_browser: seeded {RESOURCES} resources, {} points, {} cost lines in {:.1} s; \
         inventory first page: {} ms cold, {} ms warm; screenshots in {}",
        CHART_MINUTES * 8 + 3 * 288,
        seeded.costs.len(),
        seed_time.as_secs_f64(),
        summary["inventory_cold_ms"],
        summary["inventory_warm_ms"],
        out.display()
    );
    for shot in summary["screenshots"].as_array().unwrap() {
        let p = out.join(shot.as_str().unwrap());
        assert!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 10_000),
            "screenshot {} was saved",
            p.display()
        );
    }
}
