//! Budgets, cost anomalies and the webhook through the real server: 70 days of an
//! account's cost (a weekly pattern, one instance running away four days ago) posted to
//! `POST /api/v1/ingest`; the server, evaluating every second, must
//!
//! - post exactly one budget event (the forecast crossing) and one anomaly event (the
//!   spike, with the instance as its driver) to a webhook receiver that fails its first two
//!   requests with 503, and nothing more however many rounds follow, nor after a restart
//!   on the same data (sent events are kept in the store);
//! - answer `GET /api/v1/budgets` and `GET /api/v1/anomalies` with the same figures;
//! - expose them as series: `budget_crossed`, `budget_forecast_usd`, `cost_anomaly_usd`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{Datelike, Days, NaiveDate, Utc};
use serde_json::Value;
use skymeter_model::{Batch, ChargeCategory, Cost, CostSource};
use skymeter_savings::budget::BudgetConfig;
use skymeter_savings::notify::WebhookConfig;
use skymeter_server::{SavingsConfig, Server, ServerConfig};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Scope, Store};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EC2: &str = "Amazon Elastic Compute Cloud";

fn line(day: NaiveDate, service: &str, resource: &str, usd: f64) -> Cost {
    let start = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    Cost {
        billed_cost: usd,
        effective_cost: usd,
        billing_currency: "USD".into(),
        charge_period_start: start,
        charge_period_end: start + chrono::Duration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: "Amazon Web Services".into(),
        service_name: service.into(),
        sub_account_id: Some("111111111111".into()),
        region_id: Some("us-east-1".into()),
        resource_id: Some(resource.into()),
        x_source: CostSource::Estimated,
        ..Cost::default()
    }
}

/// EC2 cost of a day: ten instances, 100 a weekday and 40 a weekend day in all, plus the
/// runaway instance's 400 on the spike day.
fn ec2_of(day: NaiveDate, spike: NaiveDate) -> f64 {
    let base = if day.weekday().number_from_monday() >= 6 {
        40.0
    } else {
        100.0
    };
    base + if day == spike { 400.0 } else { 0.0 }
}

/// The webhook receiver: refuses its first two requests with 503, then takes each body.
#[derive(Default)]
struct Receiver {
    requests: usize,
    taken: Vec<Value>,
}

async fn receive(State(r): State<Arc<Mutex<Receiver>>>, body: String) -> StatusCode {
    let mut r = r.lock().unwrap();
    r.requests += 1;
    if r.requests <= 2 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.taken.push(serde_json::from_str(&body).unwrap());
    StatusCode::OK
}

struct Running {
    url: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(dir: &std::path::Path, savings: SavingsConfig) -> Running {
    let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::new(dir)).unwrap());
    let token = store
        .create_token("t", &[Scope::Read, Scope::Ingest])
        .unwrap()
        .0;
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        savings,
        ..Default::default()
    };
    config.validate().unwrap();
    let server = Server::bind(config, store).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        url,
        token,
        stop,
        task,
    }
}

async fn get(r: &Running, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", r.url))
        .bearer_auth(&r.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_crossing_and_spike_reach_the_webhook_once_and_the_api_and_promql() {
    let today = Utc::now().date_naive();
    let first = today - Days::new(70);
    let spike = today - Days::new(4);
    let mut costs = Vec::new();
    for day in first.iter_days().take(70) {
        let ec2 = ec2_of(day, spike);
        for i in 0..10 {
            costs.push(line(day, EC2, &format!("i-{i}"), (ec2.min(100.0)) / 10.0));
        }
        if day == spike {
            costs.push(line(day, EC2, "i-runaway", 400.0));
        }
        costs.push(line(day, "Amazon Simple Storage Service", "bucket", 3.0));
    }
    // What the budget reads: the month through today (today has no cost yet) and the rate
    // of the 7 days before today.
    let month_start = today.with_day(1).unwrap();
    let daily = |d: NaiveDate| if d < today { ec2_of(d, spike) } else { 0.0 };
    let actual: f64 = month_start
        .iter_days()
        .take_while(|d| *d <= today)
        .map(daily)
        .sum();
    let rate: f64 = (1..=7).map(|k| daily(today - Days::new(k))).sum::<f64>() / 7.0;
    let days_in_month = (month_start + chrono::Months::new(1) - month_start).num_days() as u32;
    let forecast = actual + rate * f64::from(days_in_month - today.day());
    // The forecast is 120 % of the amount; the actual spend stays under every actual
    // threshold (there is none but the forecast's).
    let amount = (forecast / 1.2 * 100.0).round() / 100.0;
    let budgets: Vec<BudgetConfig> = toml::from_str::<toml::Table>(&format!(
        r#"
[[budget]]
name = "ec2"
amount = {amount}
scope = {{ provider = "aws", service = "{EC2}" }}
thresholds = [{{ percent = 100, on = "forecast" }}]

[[budget]]
name = "roomy"
amount = 1000000
"#
    ))
    .unwrap()["budget"]
        .clone()
        .try_into()
        .unwrap();

    let received = Arc::new(Mutex::new(Receiver::default()));
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let webhook: WebhookConfig = toml::from_str(&format!(
        "url = \"{hook}\"\nretry = {{ attempts = 5, initial = \"50ms\", max = \"200ms\" }}"
    ))
    .unwrap();
    let savings = SavingsConfig {
        budgets,
        webhook: Some(webhook),
        every: Duration::from_secs(1),
        ..Default::default()
    };

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), savings.clone()).await;
    let client = reqwest::Client::new();
    for chunk in costs.chunks(500) {
        let mut b = Batch::new("test-agent", "aws", Utc::now());
        b.costs = chunk.to_vec();
        let resp = client
            .post(format!("{}/api/v1/ingest", server.url))
            .bearer_auth(&server.token)
            .json(&b)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    let events = wait_for("a budget and an anomaly event", 60, || {
        let r = received.lock().unwrap();
        (r.taken.len() >= 2).then(|| r.taken.clone())
    })
    .await;
    // More rounds: nothing new.
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let r = received.lock().unwrap();
        assert_eq!(r.taken.len(), 2, "{:#?}", r.taken);
        assert_eq!(r.requests, 4, "two refused, two taken");
    }
    let budget = events
        .iter()
        .find(|e| e["kind"] == "budget")
        .expect("a budget event");
    assert_eq!(budget["budget"]["name"], "ec2");
    assert_eq!(budget["budget"]["threshold"]["on"], "forecast");
    assert_eq!(budget["budget"]["threshold"]["percent"], 100.0);
    let got_forecast = budget["budget"]["forecast"].as_f64().unwrap();
    assert!(
        (got_forecast - forecast).abs() < 1e-6,
        "{got_forecast} vs {forecast}"
    );
    let anomaly = events
        .iter()
        .find(|e| e["kind"] == "anomaly")
        .expect("an anomaly event");
    assert_eq!(anomaly["anomaly"]["day"], spike.to_string());
    assert_eq!(anomaly["anomaly"]["kind"], "spike");
    assert_eq!(anomaly["anomaly"]["group"]["service"], EC2);
    assert_eq!(anomaly["anomaly"]["group"]["provider"], "aws");
    assert_eq!(anomaly["anomaly"]["drivers"][0]["resource"], "i-runaway");
    assert_eq!(anomaly["anomaly"]["drivers"][0]["delta"], 400.0);

    // The API says the same.
    let b = get(&server, "/api/v1/budgets").await;
    assert_eq!(b["as_of"], today.to_string());
    let ec2 = &b["budgets"][0];
    assert_eq!(ec2["name"], "ec2");
    assert!((ec2["actual"].as_f64().unwrap() - actual).abs() < 1e-6);
    assert!((ec2["forecast"].as_f64().unwrap() - forecast).abs() < 1e-6);
    assert_eq!(ec2["thresholds"][0]["crossed"], true);
    assert_eq!(ec2["scope"]["service"], EC2);
    assert_eq!(b["budgets"][1]["thresholds"][0]["crossed"], false);
    let a = get(
        &server,
        "/api/v1/anomalies?service=amazon%20elastic%20compute%20cloud",
    )
    .await;
    let items = a["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{a:#}");
    assert_eq!(items[0]["day"], spike.to_string());
    let none = get(&server, "/api/v1/anomalies?kind=level_shift").await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    // And PromQL: the crossed threshold, the forecast, the anomaly.
    let query = |q: &str| format!("/api/v1/query?query={}", urlencode(q));
    let crossed = get(&server, &query("budget_crossed == 1")).await;
    let series = crossed["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{crossed:#}");
    assert_eq!(series[0]["metric"]["resource_id"], "ec2");
    assert_eq!(series[0]["metric"]["on"], "forecast");
    assert_eq!(series[0]["metric"]["threshold"], "100");
    let f = get(&server, &query("budget_forecast_usd{resource_id=\"ec2\"}")).await;
    let v: f64 = f["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((v - forecast).abs() < 1e-6, "{f:#}");
    let an = get(&server, &query("cost_anomaly_usd")).await;
    let series = an["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{an:#}");
    assert_eq!(series[0]["metric"]["service"], EC2);
    assert_eq!(series[0]["metric"]["account"], "111111111111");

    // A restart on the same data sends nothing again.
    let _ = server.stop.send(());
    server.task.await.unwrap();
    let again = start(dir.path(), savings).await;
    let _ = get(&again, "/api/v1/budgets").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        received.lock().unwrap().requests,
        4,
        "nothing posted after the restart"
    );
    let _ = again.stop.send(());
    again.task.await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
