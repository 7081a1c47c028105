//! The Grafana provisioning in `deploy/grafana/` against a real server: every dashboard
//! panel's query, every template variable's `label_values`, and every alert rule's query
//! run through the Prometheus-compatible API of a server seeded through its own ingest and
//! agent endpoints, and each must succeed with data (alert rules: with a value past their
//! threshold, since the seed is made to trip each of them). Also checks the dashboards'
//! structure and that cost lines and heartbeats become the series the dashboards read.

mod promsupport;

use chrono::{DateTime, Duration, DurationRound, Utc};
use promsupport::Sky;
use serde_json::{json, Value};
use skymeter_model::{
    Batch, ChargeCategory, Cost, CostSource, Point, Resource, ResourceRef, Stat, Unit,
};
use skymeter_server::Auth;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana")
}

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every dashboard file, by file name.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = deploy_dir().join("dashboards");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            out.insert(path.file_name().unwrap().to_string_lossy().into_owned(), v);
        }
    }
    assert_eq!(out.len(), 5, "expected 5 dashboards in {}", dir.display());
    out
}

/// The panels of a dashboard, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

fn provisioned_uid() -> String {
    let ds = read_yaml(&deploy_dir().join("provisioning/datasources/skymeter.yaml"));
    let list = ds["datasources"].as_array().expect("datasources list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["type"], "prometheus");
    assert_eq!(list[0]["url"], "${SKYMETER_URL}");
    assert_eq!(list[0]["jsonData"]["httpHeaderName1"], "Authorization");
    assert_eq!(
        list[0]["secureJsonData"]["httpHeaderValue1"],
        "Bearer ${SKYMETER_TOKEN}"
    );
    list[0]["uid"].as_str().expect("uid").to_string()
}

#[test]
fn dashboards_and_provisioning_are_well_formed() {
    let uid = provisioned_uid();
    let provider = read_yaml(&deploy_dir().join("provisioning/dashboards/skymeter.yaml"));
    let p = &provider["providers"][0];
    assert_eq!(p["type"], "file");
    assert!(p["options"]["path"].as_str().unwrap().starts_with('/'));

    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        let at = |what: &str| format!("{file}: {what}");
        assert!(
            d["schemaVersion"].as_u64().unwrap() >= 39,
            "{}",
            at("schemaVersion")
        );
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{}",
            at("uid repeats")
        );
        assert!(!d["title"].as_str().unwrap().is_empty());
        let mut ids = BTreeSet::new();
        for panel in panels(&d) {
            let title = panel["title"].as_str().unwrap_or_default();
            let here = |what: &str| format!("{file}: panel `{title}`: {what}");
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{}", here("no id")));
            assert!(ids.insert(id), "{}", here("id repeats"));
            let g = &panel["gridPos"];
            for k in ["x", "y", "w", "h"] {
                assert!(g[k].is_u64(), "{}", here(&format!("gridPos.{k} missing")));
            }
            assert!(
                g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
                "{}",
                here("wider than the grid")
            );
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"],
                uid.as_str(),
                "{}",
                here("datasource")
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{}", here("no targets"));
            let mut refs = BTreeSet::new();
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"],
                    uid.as_str(),
                    "{}",
                    here("target datasource")
                );
                assert!(
                    refs.insert(t["refId"].as_str().unwrap()),
                    "{}",
                    here("refId repeats")
                );
                assert!(
                    !t["expr"].as_str().unwrap().is_empty(),
                    "{}",
                    here("empty expr")
                );
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                assert_eq!(
                    v["datasource"]["uid"],
                    uid.as_str(),
                    "{file}: variable {}",
                    v["name"]
                );
                assert!(
                    v["query"]["query"]
                        .as_str()
                        .unwrap()
                        .starts_with("label_values("),
                    "{file}: variable {}",
                    v["name"]
                );
            }
        }
    }

    let rules = read_yaml(&deploy_dir().join("provisioning/alerting/skymeter-rules.yaml"));
    let mut titles = BTreeSet::new();
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            titles.insert(r["title"].as_str().unwrap().to_string());
            let refs: BTreeSet<&str> = r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| {
                    let ds = q["datasourceUid"].as_str().unwrap();
                    assert!(
                        ds == uid || ds == "__expr__",
                        "rule {}: datasource {ds}",
                        r["title"]
                    );
                    q["refId"].as_str().unwrap()
                })
                .collect();
            assert!(refs.contains(r["condition"].as_str().unwrap()));
            let dash = r["annotations"]["__dashboardUid__"].as_str().unwrap();
            assert!(
                uids.contains(dash),
                "rule {}: no dashboard {dash}",
                r["title"]
            );
        }
    }
    assert_eq!(
        titles,
        [
            "Agent offline",
            "Budget threshold crossed",
            "CPU high",
            "Cost anomaly",
            "Daily cost spike"
        ]
        .map(String::from)
        .into()
    );
}

// ---- the seed ----

fn rref(provider: &str, account: &str, region: &str, id: &str) -> ResourceRef {
    ResourceRef {
        provider: provider.into(),
        account: account.into(),
        region: region.into(),
        id: id.into(),
    }
}

struct Seeded {
    sky: Sky,
    now: DateTime<Utc>,
}

const METRICS: [(&str, Unit); 9] = [
    ("cpu.utilization", Unit::Percent),
    ("memory.usage", Unit::Percent),
    ("disk.read_iops", Unit::CountPerSecond),
    ("disk.write_iops", Unit::CountPerSecond),
    ("disk.read_throughput", Unit::BytesPerSecond),
    ("disk.write_throughput", Unit::BytesPerSecond),
    ("network.received_throughput", Unit::BytesPerSecond),
    ("network.sent_throughput", Unit::BytesPerSecond),
    ("network.received_pps", Unit::CountPerSecond),
];

fn cost(
    provider: &str,
    account: &str,
    region: &str,
    service: &str,
    resource: Option<&str>,
    day: DateTime<Utc>,
    usd: f64,
) -> Cost {
    Cost {
        billed_cost: usd,
        effective_cost: usd * 0.9,
        list_cost: None,
        billing_currency: "USD".into(),
        charge_period_start: day,
        charge_period_end: day + Duration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: provider.into(),
        service_name: service.into(),
        service_category: None,
        sub_account_id: Some(account.into()),
        region_id: Some(region.into()),
        resource_id: resource.map(String::from),
        resource_type: None,
        sku_id: None,
        pricing_quantity: None,
        pricing_unit: None,
        consumed_quantity: None,
        consumed_unit: None,
        tags: Default::default(),
        x_source: CostSource::Billed,
        x_price_date: None,
        ..Default::default()
    }
}

/// The cost lines: 10 days (today included) of daily lines for 3 providers, some naming a
/// resource; aws spends 5× its usual today, so the cost-spike rule trips.
fn cost_lines(today: DateTime<Utc>) -> Vec<Cost> {
    let mut out = Vec::new();
    for k in 0..10 {
        let day = today - Duration::days(9 - k);
        let spike = if k == 9 { 5.0 } else { 1.0 };
        out.push(cost(
            "Amazon Web Services",
            "111",
            "us-east-1",
            "Amazon EC2",
            Some("i-busy"),
            day,
            40.0 * spike,
        ));
        out.push(cost(
            "Amazon Web Services",
            "111",
            "us-east-1",
            "Amazon EC2",
            Some("i-idle"),
            day,
            20.0 * spike,
        ));
        out.push(cost(
            "Amazon Web Services",
            "222",
            "eu-west-1",
            "Amazon RDS",
            Some("db-1"),
            day,
            30.0 * spike,
        ));
        out.push(cost(
            "Amazon Web Services",
            "111",
            "us-east-1",
            "Amazon S3",
            None,
            day,
            5.0 * spike,
        ));
        out.push(cost(
            "Google Cloud",
            "proj-a",
            "europe-west1",
            "Compute Engine",
            Some("vm-1"),
            day,
            25.0,
        ));
        out.push(cost(
            "Microsoft",
            "sub-1",
            "westeurope",
            "Virtual Machines",
            Some("vm-az"),
            day,
            15.0,
        ));
    }
    out
}

async fn post(sky: &Sky, path: &str, body: Value) -> u16 {
    let resp = sky
        .client
        .post(format!("{}{path}", sky.url))
        .bearer_auth(&sky.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(
        status < 300,
        "POST {path}: {status} {}",
        resp.text().await.unwrap()
    );
    status
}

/// A heartbeat as the server records it, but at a time of the test's choosing: agents
/// that went quiet before the test started.
fn past_agent(id: &str, host: &str, at: DateTime<Utc>, interval_s: f64, b: &mut Batch) {
    let r = rref("skymeter", "", "", id);
    b.resources.push(Resource {
        provider: "skymeter".into(),
        account: String::new(),
        region: String::new(),
        kind: "agent".into(),
        native_type: "skymeter.agent".into(),
        id: id.into(),
        name: host.into(),
        tags: Default::default(),
        attributes: Default::default(),
        observed_at: at,
    });
    for k in 0..10 {
        let ts = at - Duration::seconds((interval_s as i64) * k);
        for (metric, unit, v) in [
            ("agent.up", Unit::None, 1.0),
            ("agent.buffered_batches", Unit::None, 0.0),
            ("agent.dropped_batches", Unit::None, 0.0),
            ("agent.heartbeat_interval", Unit::Seconds, interval_s),
            (
                "agent.heartbeat_timestamp",
                Unit::Seconds,
                ts.timestamp() as f64,
            ),
        ] {
            b.points.push(Point {
                metric: metric.into(),
                unit,
                stat: Stat::Last,
                period_s: 0,
                ts,
                value: v,
                resource: r.clone().into(),
                labels: Default::default(),
            });
        }
    }
}

async fn seed() -> Seeded {
    let sky = Sky::start(Auth::Tokens).await;
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let today = now.duration_trunc(Duration::days(1)).unwrap();

    // (ref, name, kind, base cpu)
    let fleet = [
        (
            rref("aws", "111", "us-east-1", "i-busy"),
            "web-busy",
            "compute.instance",
            95.0,
        ),
        (
            rref("aws", "111", "us-east-1", "i-idle"),
            "web-idle",
            "compute.instance",
            1.0,
        ),
        (
            rref("aws", "222", "eu-west-1", "db-1"),
            "orders-db",
            "database.instance",
            40.0,
        ),
        (
            rref("gcp", "proj-a", "europe-west1", "vm-1"),
            "batch-1",
            "compute.instance",
            60.0,
        ),
        (
            rref("gcp", "proj-a", "us-central1", "vm-2"),
            "batch-2",
            "compute.instance",
            3.0,
        ),
        (
            rref("azure", "sub-1", "westeurope", "vm-az"),
            "app-az",
            "compute.instance",
            30.0,
        ),
    ];
    let mut b = Batch::new("seed", "inventory", now);
    for (r, name, kind, base) in &fleet {
        b.resources.push(Resource {
            provider: r.provider.to_string(),
            account: r.account.to_string(),
            region: r.region.to_string(),
            kind: kind.to_string(),
            native_type: String::new(),
            id: r.id.to_string(),
            name: name.to_string(),
            tags: [("team".to_string(), "web".to_string())].into(),
            attributes: Default::default(),
            observed_at: now,
        });
        // Every 5 minutes over the last 4 hours, avg and max of each metric.
        for k in 0..48 {
            let ts = now - Duration::minutes(5 * k);
            for (mi, (metric, unit)) in METRICS.iter().enumerate() {
                let avg = if *metric == "cpu.utilization" {
                    base + (k % 3) as f64 * 0.5
                } else {
                    10.0 * (mi + 1) as f64 + base / 10.0 + (k % 5) as f64
                };
                for (stat, v) in [(Stat::Avg, avg), (Stat::Max, avg * 1.04)] {
                    b.points.push(Point {
                        metric: (*metric).into(),
                        unit: *unit,
                        stat,
                        period_s: 300,
                        ts,
                        value: v,
                        resource: r.clone().into(),
                        labels: Default::default(),
                    });
                }
            }
        }
    }
    sky.ingest(&b).await;

    // Costs, sent twice as two batches: a billing period read again must not add up.
    for _ in 0..2 {
        let mut c = Batch::new("seed", "billing", now);
        c.costs = cost_lines(today);
        sky.ingest(&c).await;
    }

    // One live agent through the real endpoints...
    post(
        &sky,
        "/api/v1/agents/register",
        json!({"id": "agent-live", "hostname": "collector-1", "version": "0.1.0", "heartbeat_interval_s": 60}),
    )
    .await;
    for (buffered, dropped) in [(3, 1), (1, 2)] {
        post(
            &sky,
            "/api/v1/agents/agent-live/heartbeat",
            json!({"buffered_batches": buffered, "dropped_batches": dropped}),
        )
        .await;
    }
    // ... one late (silent 3 intervals) and one offline (silent 2 hours) from before.
    let mut a = Batch::new("seed", "agents", now);
    past_agent(
        "agent-late",
        "collector-2",
        now - Duration::seconds(180),
        60.0,
        &mut a,
    );
    past_agent(
        "agent-gone",
        "collector-3",
        now - Duration::hours(2),
        60.0,
        &mut a,
    );
    sky.ingest(&a).await;
    Seeded { sky, now }
}

// ---- running the queries ----

fn data_len(v: &Value) -> usize {
    match v["data"]["resultType"].as_str() {
        Some("matrix") | Some("vector") => v["data"]["result"].as_array().unwrap().len(),
        Some("scalar") => 1,
        other => panic!("unexpected resultType {other:?}"),
    }
}

/// `label_values(selector, label)` or `label_values(label)`.
fn parse_label_values(q: &str) -> (Option<String>, String) {
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values query: {q}"));
    match inner.rfind(',') {
        Some(i) => (
            Some(inner[..i].trim().to_string()),
            inner[i + 1..].trim().to_string(),
        ),
        None => (None, inner.trim().to_string()),
    }
}

fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = expr.to_string();
    // Longest names first, so that `$__range_s` is not read as `$__range` + `_s`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in names {
        out = out.replace(&format!("${{{n}}}"), &vars[n]);
        out = out.replace(&format!("${n}"), &vars[n]);
    }
    assert!(!out.contains('$'), "unresolved variable in {out}");
    out
}

fn range_seconds(from: &str) -> i64 {
    let d = from.strip_prefix("now-").expect("time.from like now-6h");
    let (n, unit) = d.split_at(d.len() - 1);
    let n: i64 = n.parse().unwrap();
    n * match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        u => panic!("unit {u}"),
    }
}

/// Grafana's step: the range over ~1,000 points, at least the panel's interval or the data
/// source's 60 s.
fn step_for(range_s: i64, min_interval: Option<&str>) -> i64 {
    let min = match min_interval {
        Some("1d") => 86_400,
        Some(other) => panic!("interval {other}"),
        None => 60,
    };
    ((range_s + 999) / 1000).max(min)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_variable_and_alert_rule_returns_data() {
    let Seeded { sky, now: _ } = seed().await;
    // After the live agent's heartbeats, which carry the server's clock.
    let end = Utc::now().timestamp() + 1;
    let mut checked = 0;
    for (file, d) in dashboards() {
        if file != SAVINGS_DASHBOARD {
            checked += check_dashboard(&sky, &file, &d, end).await;
        }
    }
    // Alert rules: the query must return a series past the threshold, since the seed has a
    // busy instance, an offline agent and an aws cost spike.
    for (group, rule) in rules() {
        if group == SAVINGS_RULES {
            continue;
        }
        let title = rule["title"].as_str().unwrap();
        let expected: BTreeSet<&str> = match title {
            "CPU high" => ["i-busy"].into(),
            "Agent offline" => ["agent-gone"].into(),
            "Daily cost spike" => ["aws"].into(),
            other => panic!("unknown rule {other}"),
        };
        check_rule(&sky, &rule, end, &expected).await;
        checked += 1;
    }
    eprintln!("grafana: {checked} queries checked");
    sky.stop().await;
}

/// The dashboard and the rule group of budgets, anomalies and findings: checked against a
/// server that has them (`savings_dashboard_and_rules_return_data`).
const SAVINGS_DASHBOARD: &str = "savings.json";
const SAVINGS_RULES: &str = "skymeter-savings";

/// Every alert rule, with its group's name.
fn rules() -> Vec<(String, Value)> {
    let rules = read_yaml(&deploy_dir().join("provisioning/alerting/skymeter-rules.yaml"));
    let mut out = Vec::new();
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            out.push((g["name"].as_str().unwrap().to_string(), r.clone()));
        }
    }
    out
}

/// Runs every variable and panel query of a dashboard over its time range ending at `end`:
/// each must succeed with data. Returns how many queries ran.
async fn check_dashboard(sky: &Sky, file: &str, d: &Value, end: i64) -> usize {
    let mut checked = 0;
    {
        let range_s = range_seconds(d["time"]["from"].as_str().unwrap());
        let start = end - range_s;
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("__range".into(), format!("{range_s}s"));
        vars.insert("__range_s".into(), range_s.to_string());

        // Variables in order, each resolved through the label values API with the ones
        // before it substituted (the chain provider → account → region → resource).
        for v in d["templating"]["list"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap().to_string();
            match v["type"].as_str().unwrap() {
                "custom" => {
                    vars.insert(name, v["current"]["value"].as_str().unwrap().into());
                }
                "query" => {
                    let q = substitute(v["query"]["query"].as_str().unwrap(), &vars);
                    let (selector, label) = parse_label_values(&q);
                    let s = start.to_string();
                    let e = end.to_string();
                    let mut params = vec![("start", s.as_str()), ("end", e.as_str())];
                    if let Some(sel) = &selector {
                        params.push(("match[]", sel.as_str()));
                    }
                    let (status, body) = sky
                        .get_params(&format!("/api/v1/label/{label}/values"), &params)
                        .await;
                    assert_eq!(status, 200, "{file}: variable {name}: {q}: {body}");
                    let values: Vec<String> = body["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string())
                        .collect();
                    assert!(
                        !values.is_empty(),
                        "{file}: variable {name}: {q}: no values"
                    );
                    checked += 1;
                    // A multi-value variable is tested as "All"; a single one with its first value.
                    let value = if v["multi"] == true {
                        v["allValue"].as_str().unwrap().to_string()
                    } else {
                        values[0].clone()
                    };
                    vars.insert(name, value);
                }
                other => panic!("{file}: variable type {other}"),
            }
        }

        for panel in panels(&d) {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap();
            let step = step_for(range_s, panel["interval"].as_str());
            let aligned_start = start - start.rem_euclid(step);
            let mut pv = vars.clone();
            pv.insert("__interval".into(), format!("{step}s"));
            pv.insert(
                "__rate_interval".into(),
                format!("{}s", (step + 60).max(240)),
            );
            for t in panel["targets"].as_array().unwrap() {
                let expr = substitute(t["expr"].as_str().unwrap(), &pv);
                // A `... or vector(0)` fallback always has data: the query before it must too.
                let mut exprs = vec![expr.clone()];
                if let Some(core) = expr.strip_suffix(" or vector(0)") {
                    exprs.push(core.to_string());
                }
                for e in exprs {
                    let where_ = format!("{file}: panel `{title}` {}: {e}", t["refId"]);
                    let (s, e_, st) =
                        (aligned_start.to_string(), end.to_string(), step.to_string());
                    let (status, body) = sky
                        .post_form(
                            "/api/v1/query_range",
                            &[
                                ("query", e.as_str()),
                                ("start", &s),
                                ("end", &e_),
                                ("step", &st),
                            ],
                        )
                        .await;
                    assert_eq!(status, 200, "{where_}: {body}");
                    assert_eq!(body["status"], "success", "{where_}: {body}");
                    assert!(data_len(&body) > 0, "{where_}: no data over the range");
                    if t["instant"] == true {
                        let tm = end.to_string();
                        let (status, body) = sky
                            .post_form("/api/v1/query", &[("query", e.as_str()), ("time", &tm)])
                            .await;
                        assert_eq!(status, 200, "{where_}: {body}");
                        assert!(
                            data_len(&body) > 0,
                            "{where_}: no data at the end of the range"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }

    checked
}

/// Runs an alert rule's query at `end`: the series past its threshold must be exactly
/// `expected` (by `resource_id`, else `provider`).
async fn check_rule(sky: &Sky, r: &Value, end: i64, expected: &BTreeSet<&str>) {
    let title = r["title"].as_str().unwrap();
    let data = r["data"].as_array().unwrap();
    let a = data
        .iter()
        .find(|q| q["datasourceUid"] == "skymeter")
        .unwrap();
    let c = data
        .iter()
        .find(|q| q["model"]["type"] == "threshold")
        .unwrap();
    let eval = &c["model"]["conditions"][0]["evaluator"];
    assert_eq!(eval["type"], "gt", "{title}");
    let threshold = eval["params"][0].as_f64().unwrap();
    let expr = a["model"]["expr"].as_str().unwrap();
    let tm = end.to_string();
    let (status, body) = sky
        .post_form("/api/v1/query", &[("query", expr), ("time", &tm)])
        .await;
    assert_eq!(status, 200, "rule {title}: {body}");
    let firing: Vec<&Value> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap() > threshold)
        .collect();
    assert!(
        !firing.is_empty(),
        "rule {title}: nothing past {threshold}: {body}"
    );
    let who: BTreeSet<&str> = firing
        .iter()
        .map(|s| {
            s["metric"]["resource_id"]
                .as_str()
                .or(s["metric"]["provider"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(&who, expected, "rule {title}: {body}");
}

async fn instant(sky: &Sky, q: &str, at: i64) -> Vec<(BTreeMap<String, String>, f64)> {
    let tm = at.to_string();
    let (status, body) = sky
        .post_form("/api/v1/query", &[("query", q), ("time", &tm)])
        .await;
    assert_eq!(status, 200, "{q}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                serde_json::from_value(s["metric"].clone()).unwrap(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_lines_and_heartbeats_become_series() {
    let Seeded { sky, now } = seed().await;
    let end = Utc::now().timestamp() + 1;
    let today = now.duration_trunc(Duration::days(1)).unwrap();

    // Ingested twice, each line is still one sample per day: 10 days of i-busy.
    let n = instant(
        &sky,
        r#"count_over_time(cost_billed_usd{resource_id="i-busy"}[30d])"#,
        end,
    )
    .await;
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].1, 10.0);
    let (labels, _) = &n[0];
    for (k, v) in [
        ("provider", "aws"),
        ("account", "111"),
        ("region", "us-east-1"),
        ("service", "Amazon EC2"),
        ("source", "billed"),
        ("category", "Usage"),
        ("stat", "sum"),
        ("kind", "compute.instance"),
        ("resource_name", "web-busy"),
        ("tag_team", "web"),
    ] {
        assert_eq!(
            labels.get(k).map(String::as_str),
            Some(v),
            "label {k}: {labels:?}"
        );
    }
    // Billed totals equal the lines' sum: 9 days × 40 + 200 today; effective is 0.9 of it.
    let total = instant(
        &sky,
        r#"sum(sum_over_time(cost_billed_usd{resource_id="i-busy"}[30d]))"#,
        end,
    )
    .await;
    assert!((total[0].1 - 560.0).abs() < 1e-9, "{total:?}");
    let eff = instant(
        &sky,
        r#"sum(sum_over_time(cost_effective_usd{resource_id="i-busy"}[30d]))"#,
        end,
    )
    .await;
    assert!((eff[0].1 - 504.0).abs() < 1e-9, "{eff:?}");
    // Lines without a resource have no resource_id label.
    let s3 = instant(
        &sky,
        r#"sum_over_time(cost_billed_usd{service="Amazon S3"}[30d])"#,
        end,
    )
    .await;
    assert_eq!(s3.len(), 1);
    assert!(!s3[0].0.contains_key("resource_id"), "{s3:?}");
    // The daily window at a midnight holds exactly the lines of the day starting there.
    let yesterday = (today - Duration::days(1)).timestamp();
    let day = instant(
        &sky,
        r#"sum(sum_over_time(cost_billed_usd{provider="aws"}[23h59m59s999ms]))"#,
        yesterday,
    )
    .await;
    assert!((day[0].1 - 95.0).abs() < 1e-9, "{day:?}");
    // The ingest answer counts what was sent, not the derived points.
    let mut c = Batch::new("seed", "billing", now);
    c.costs = cost_lines(today)[..2].to_vec();
    let resp: Value = sky
        .client
        .post(format!("{}/api/v1/ingest", sky.url))
        .bearer_auth(&sky.token)
        .json(&c)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["points"], 0, "{resp}");
    assert_eq!(resp["costs"], 2, "{resp}");

    // The live agent: a resource of kind agent named by its host, and its heartbeat values.
    // A second ahead: the heartbeats carry the server's clock, with sub-second parts.
    let t = Utc::now().timestamp() + 1;
    let up = instant(&sky, r#"agent_up{resource_id="agent-live"}"#, t).await;
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].0["provider"], "skymeter");
    assert_eq!(up[0].0["kind"], "agent");
    assert_eq!(up[0].0["resource_name"], "collector-1");
    let last = |m: &str| format!(r#"last_over_time({m}{{resource_id="agent-live"}}[1h])"#);
    assert_eq!(
        instant(&sky, &last("agent_buffered_batches"), t).await[0].1,
        1.0
    );
    assert_eq!(
        instant(&sky, &last("agent_dropped_batches"), t).await[0].1,
        2.0
    );
    assert_eq!(
        instant(&sky, &last("agent_heartbeat_interval_seconds"), t).await[0].1,
        60.0
    );
    let hb = instant(&sky, &last("agent_heartbeat_timestamp_seconds"), t).await[0].1;
    assert!((t as f64 - hb).abs() < 60.0, "heartbeat at {hb}, now {t}");
    // One sample for the registration, one per heartbeat.
    let n = instant(
        &sky,
        r#"count_over_time(agent_up{resource_id="agent-live"}[1h])"#,
        t,
    )
    .await;
    assert_eq!(n[0].1, 3.0);
    // The agents list and the series agree on who is healthy, late and offline.
    let ratio = "(time() - max_over_time(agent_heartbeat_timestamp_seconds[24h])) / on (resource_id) max_over_time(agent_heartbeat_interval_seconds[24h])";
    let by_id: BTreeMap<String, f64> = instant(&sky, ratio, t)
        .await
        .into_iter()
        .map(|(l, v)| (l["resource_id"].clone(), v))
        .collect();
    assert!(by_id["agent-live"] <= 2.0, "{by_id:?}");
    assert!(
        by_id["agent-late"] > 2.0 && by_id["agent-late"] <= 5.0,
        "{by_id:?}"
    );
    assert!(by_id["agent-gone"] > 5.0, "{by_id:?}");
    sky.stop().await;
}

/// The savings dashboard and rules against a server that evaluates budgets, anomalies and
/// findings every second: 70 days of an account's EC2 cost with one instance running away
/// four days ago (an anomaly), a budget whose forecast crosses its amount and one that
/// stays far from it, and an unattached volume (a finding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savings_dashboard_and_rules_return_data() {
    let budgets: skymeter_savings::budget::BudgetsConfig = toml::from_str(
        r#"
[[budget]]
name = "ec2"
amount = 100
scope = { service = "Amazon Elastic Compute Cloud" }
thresholds = [{ percent = 100, on = "forecast" }]

[[budget]]
name = "roomy"
amount = 10000000
"#,
    )
    .unwrap();
    let sky = Sky::start_with(skymeter_server::ServerConfig {
        savings: skymeter_server::SavingsConfig {
            budgets: budgets.budgets,
            every: std::time::Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let today = Utc::now().duration_trunc(Duration::days(1)).unwrap();
    let spike = today - Duration::days(4);
    let mut b = Batch::new("seed", "costs", Utc::now());
    for k in 1..=70 {
        let day = today - Duration::days(k);
        let weekend = day.format("%u").to_string().parse::<u32>().unwrap() >= 6;
        let ec2 = if weekend { 40.0 } else { 100.0 };
        b.costs.push(cost(
            "Amazon Web Services",
            "111111111111",
            "us-east-1",
            "Amazon Elastic Compute Cloud",
            Some("i-1"),
            day,
            ec2,
        ));
        if day == spike {
            b.costs.push(cost(
                "Amazon Web Services",
                "111111111111",
                "us-east-1",
                "Amazon Elastic Compute Cloud",
                Some("i-runaway"),
                day,
                400.0,
            ));
        }
    }
    b.resources.push(Resource {
        provider: "aws".into(),
        account: "111111111111".into(),
        region: "us-east-1".into(),
        kind: "storage.volume".into(),
        native_type: "AWS::EC2::Volume".into(),
        id: "vol-free".into(),
        name: "scratch".into(),
        tags: Default::default(),
        attributes: [
            ("size_gib".to_string(), json!(100)),
            ("volume_type".to_string(), json!("gp3")),
            ("state".to_string(), json!("available")),
        ]
        .into(),
        observed_at: Utc::now(),
    });
    sky.ingest(&b).await;

    // The evaluation runs every second: wait for a round that saw the seed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = Utc::now().timestamp();
        let anomalies = instant(&sky, "cost_anomaly_usd", now).await;
        let findings = instant(&sky, "findings_count", now).await;
        if !anomalies.is_empty() && !findings.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let (_, a) = sky.get("/api/v1/anomalies").await;
            let (_, f) = sky.get("/api/v1/findings").await;
            panic!("no anomaly or findings series after 60 s: anomalies {a:#}, findings {f:#}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A step past the data: the series start seconds ago, and a range query's last step
    // must see them (the 24 h range has 87 s steps).
    let end = Utc::now().timestamp() + 90;
    let d = &dashboards()[SAVINGS_DASHBOARD];
    let checked = check_dashboard(&sky, SAVINGS_DASHBOARD, d, end).await;
    assert!(checked >= 11, "{checked}");
    let mut rules_checked = 0;
    for (group, rule) in rules() {
        if group != SAVINGS_RULES {
            continue;
        }
        let expected: BTreeSet<&str> = match rule["title"].as_str().unwrap() {
            "Budget threshold crossed" => ["ec2"].into(),
            "Cost anomaly" => ["aws/111111111111/Amazon Elastic Compute Cloud"].into(),
            other => panic!("unknown rule {other}"),
        };
        check_rule(&sky, &rule, end, &expected).await;
        rules_checked += 1;
    }
    assert_eq!(rules_checked, 2);
    sky.stop().await;
}
