//! The webhook notifier against a real HTTP receiver on 127.0.0.1: retries, what is not
//! retried, and each event sent once however often it is evaluated.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::NaiveDate;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_savings::anomaly::{Anomaly, AnomalyKind, Direction};
use skymeter_savings::budget::{evaluate, BudgetConfig, BudgetScope, Threshold, ThresholdBasis};
use skymeter_savings::notify::{
    budget_events, AnomalyAlert, Delivery, Event, MemorySentLog, NotifyError, SentLog,
    WebhookConfig, WebhookNotifier,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver does with its n-th request (from 0).
type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

#[derive(Clone, Copy)]
struct Answer {
    status: StatusCode,
    delay: Duration,
    retry_after: Option<u64>,
}

fn answer(status: StatusCode) -> Answer {
    Answer {
        status,
        delay: Duration::ZERO,
        retry_after: None,
    }
}

/// One request as the receiver saw it, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    status: StatusCode,
    idempotency_key: Option<String>,
    body: serde_json::Value,
}

#[derive(Clone)]
struct Receiver {
    script: Script,
    log: Arc<Mutex<Vec<Received>>>,
}

async fn hook(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap) {
    let n = r.log.lock().unwrap().len();
    let a = (r.script)(n);
    r.log.lock().unwrap().push(Received {
        status: a.status,
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_str(&body).expect("the body is JSON"),
    });
    tokio::time::sleep(a.delay).await;
    let mut out = HeaderMap::new();
    if let Some(s) = a.retry_after {
        out.insert("retry-after", s.to_string().parse().unwrap());
    }
    (a.status, out)
}

/// A receiver on 127.0.0.1 answering as `script` says; its URL and its log.
async fn receiver(
    script: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(Receiver {
            script: Arc::new(script),
            log: log.clone(),
        });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), log)
}

fn config(url: &str, attempts: usize) -> WebhookConfig {
    WebhookConfig {
        url: url.to_string(),
        retry: RetryPolicy::new(
            attempts,
            Duration::from_millis(10),
            Duration::from_millis(50),
        ),
        timeout: Duration::from_secs(5).into(),
        send_provisional: false,
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn statuses(log: &Mutex<Vec<Received>>) -> Vec<u16> {
    log.lock()
        .unwrap()
        .iter()
        .map(|r| r.status.as_u16())
        .collect()
}

/// A budget of 3000 whose scope spent 100 a day through June 15th: 50 % actual, a
/// forecast of exactly 3000, so only the 100 % forecast threshold is crossed.
fn forecast_crossing() -> (BudgetConfig, Vec<(NaiveDate, f64)>, NaiveDate) {
    let budget = BudgetConfig {
        name: "eng".into(),
        amount: 3000.0,
        scope: BudgetScope {
            provider: Some("aws".into()),
            ..BudgetScope::default()
        },
        thresholds: vec![
            Threshold {
                percent: 80.0,
                on: ThresholdBasis::Actual,
            },
            Threshold {
                percent: 100.0,
                on: ThresholdBasis::Actual,
            },
            Threshold {
                percent: 100.0,
                on: ThresholdBasis::Forecast,
            },
        ],
    };
    let today = ymd(2026, 6, 15);
    let daily = (1..=15).map(|d| (ymd(2026, 6, d), 100.0)).collect();
    (budget, daily, today)
}

#[tokio::test]
async fn a_forecast_crossing_fires_once_through_a_receiver_failing_twice() {
    let (url, log) = receiver(|n| {
        answer(if n < 2 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        })
    })
    .await;
    let sent = Arc::new(MemorySentLog::default());
    let notifier = WebhookNotifier::new(&config(&url, 5), sent.clone()).unwrap();
    let (budget, daily, today) = forecast_crossing();

    let mut deliveries = Vec::new();
    for _ in 0..3 {
        let status = evaluate(&budget, &daily, today);
        let events = budget_events(&budget, &status);
        assert_eq!(events.len(), 1, "only the forecast threshold is crossed");
        for result in notifier.send_all(&events).await {
            deliveries.push(result.unwrap());
        }
    }
    assert_eq!(
        deliveries,
        vec![
            Delivery::Sent { attempts: 3 },
            Delivery::AlreadySent,
            Delivery::AlreadySent
        ]
    );
    assert_eq!(
        statuses(&log),
        vec![503, 503, 200],
        "two failures, one delivery, nothing after"
    );

    let log = log.lock().unwrap();
    let id = log[0].body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("budget-"), "{id}");
    for r in log.iter() {
        assert_eq!(r.body, log[0].body, "every try posts the same body");
        assert_eq!(r.idempotency_key.as_deref(), Some(id.as_str()));
    }
    assert!(sent.seen(&id));
    let body = &log[2].body;
    assert_eq!(body["kind"], "budget");
    assert!(body["sent_at"].as_str().unwrap().ends_with('Z'));
    let b = &body["budget"];
    assert_eq!(b["name"], "eng");
    assert_eq!(b["month"], "2026-06");
    assert_eq!(b["as_of"], "2026-06-15");
    assert_eq!(b["scope"]["provider"], "aws");
    assert_eq!(b["amount"], 3000.0);
    assert_eq!(b["actual"], 1500.0);
    assert_eq!(b["percent_actual"], 50.0);
    assert_eq!(b["forecast"], 3000.0);
    assert_eq!(b["percent_forecast"], 100.0);
    assert_eq!(
        b["threshold"],
        serde_json::json!({ "percent": 100.0, "on": "forecast", "limit": 3000.0 })
    );
}

#[tokio::test]
async fn the_same_crossing_next_month_is_a_new_event() {
    let (url, log) = receiver(|_| answer(StatusCode::NO_CONTENT)).await;
    let notifier =
        WebhookNotifier::new(&config(&url, 3), Arc::new(MemorySentLog::default())).unwrap();
    let (budget, _, _) = forecast_crossing();
    let june: Vec<_> = (1..=15).map(|d| (ymd(2026, 6, d), 100.0)).collect();
    let july: Vec<_> = (1..=16).map(|d| (ymd(2026, 7, d), 100.0)).collect();
    for (daily, today) in [
        (&june, ymd(2026, 6, 15)),
        (&june, ymd(2026, 6, 15)),
        (&july, ymd(2026, 7, 16)),
    ] {
        let events = budget_events(&budget, &evaluate(&budget, daily, today));
        for r in notifier.send_all(&events).await {
            r.unwrap();
        }
    }
    let log = log.lock().unwrap();
    let months: Vec<_> = log
        .iter()
        .map(|r| r.body["budget"]["month"].clone())
        .collect();
    assert_eq!(months, vec!["2026-06", "2026-07"]);
    assert_ne!(log[0].body["id"], log[1].body["id"]);
}

#[tokio::test]
async fn a_4xx_is_not_retried_and_the_event_stays_unsent() {
    let (url, log) = receiver(|_| answer(StatusCode::BAD_REQUEST)).await;
    let sent = Arc::new(MemorySentLog::default());
    let notifier = WebhookNotifier::new(&config(&url, 5), sent.clone()).unwrap();
    let (budget, daily, today) = forecast_crossing();
    let events = budget_events(&budget, &evaluate(&budget, &daily, today));
    let err = notifier.send(&events[0]).await.unwrap_err();
    match &err {
        NotifyError::Delivery {
            attempts, message, ..
        } => {
            assert_eq!(*attempts, 1);
            assert!(message.contains("400"), "{err}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(statuses(&log), vec![400]);
    assert!(
        !sent.seen(&events[0].id()),
        "a failed event is tried again at the next evaluation"
    );
}

#[tokio::test]
async fn a_429_and_a_timeout_are_retried() {
    let (url, log) = receiver(|n| match n {
        0 => Answer {
            retry_after: Some(0),
            ..answer(StatusCode::TOO_MANY_REQUESTS)
        },
        1 => Answer {
            delay: Duration::from_secs(10),
            ..answer(StatusCode::OK)
        },
        _ => answer(StatusCode::ACCEPTED),
    })
    .await;
    let mut cfg = config(&url, 5);
    cfg.timeout = Duration::from_secs(1).into();
    let notifier = WebhookNotifier::new(&cfg, Arc::new(MemorySentLog::default())).unwrap();
    let (budget, daily, today) = forecast_crossing();
    let events = budget_events(&budget, &evaluate(&budget, &daily, today));
    assert_eq!(
        notifier.send(&events[0]).await.unwrap(),
        Delivery::Sent { attempts: 3 }
    );
    assert_eq!(statuses(&log), vec![429, 200, 202]);
}

#[tokio::test]
async fn gives_up_after_the_attempts_and_tries_again_next_time() {
    let (url, log) = receiver(|n| {
        answer(if n < 3 {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::OK
        })
    })
    .await;
    let notifier =
        WebhookNotifier::new(&config(&url, 3), Arc::new(MemorySentLog::default())).unwrap();
    let (budget, daily, today) = forecast_crossing();
    let events = budget_events(&budget, &evaluate(&budget, &daily, today));
    let err = notifier.send(&events[0]).await.unwrap_err();
    assert!(
        matches!(err, NotifyError::Delivery { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(
        notifier.send(&events[0]).await.unwrap(),
        Delivery::Sent { attempts: 1 }
    );
    assert_eq!(
        notifier.send(&events[0]).await.unwrap(),
        Delivery::AlreadySent
    );
    assert_eq!(statuses(&log), vec![502, 502, 502, 200]);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // A port nobody listens on: bind one, note it, close it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let notifier =
        WebhookNotifier::new(&config(&url, 2), Arc::new(MemorySentLog::default())).unwrap();
    let (budget, daily, today) = forecast_crossing();
    let events = budget_events(&budget, &evaluate(&budget, &daily, today));
    let err = notifier.send(&events[0]).await.unwrap_err();
    assert!(
        matches!(err, NotifyError::Delivery { attempts: 2, .. }),
        "{err}"
    );
}

fn anomaly_event(day: NaiveDate, provisional: bool, account: &str) -> Event {
    Event::Anomaly {
        anomaly: AnomalyAlert {
            group: BTreeMap::from([
                ("account".to_string(), account.to_string()),
                (
                    "service".to_string(),
                    "Amazon Elastic Compute Cloud".to_string(),
                ),
            ]),
            anomaly: Anomaly {
                day,
                kind: AnomalyKind::Spike,
                provisional,
                actual: 360.0,
                expected: 120.0,
                size: 240.0,
                score: 41.5,
                direction: Direction::Up,
            },
            drivers: vec![],
        },
    }
}

#[tokio::test]
async fn anomalies_are_sent_once_per_group_and_day_and_provisional_ones_are_held() {
    let (url, log) = receiver(|_| answer(StatusCode::OK)).await;
    let notifier =
        WebhookNotifier::new(&config(&url, 3), Arc::new(MemorySentLog::default())).unwrap();
    let d = ymd(2026, 6, 14);
    let events = [
        anomaly_event(d, true, "111"),
        anomaly_event(d, false, "111"),
        // The same group and day, reclassified: the same event.
        anomaly_event(d, false, "111"),
        anomaly_event(d, false, "222"),
        anomaly_event(ymd(2026, 6, 15), false, "111"),
    ];
    let deliveries: Vec<_> = notifier
        .send_all(&events)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        deliveries,
        vec![
            Delivery::Held,
            Delivery::Sent { attempts: 1 },
            Delivery::AlreadySent,
            Delivery::Sent { attempts: 1 },
            Delivery::Sent { attempts: 1 },
        ]
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3);
    let body = &log[0].body;
    assert_eq!(body["kind"], "anomaly");
    assert!(body["id"].as_str().unwrap().starts_with("anomaly-"));
    let a = &body["anomaly"];
    assert_eq!(a["group"]["account"], "111");
    assert_eq!(a["day"], "2026-06-14");
    assert_eq!(a["kind"], "spike");
    assert_eq!(a["direction"], "up");
    assert_eq!(a["provisional"], false);
    assert_eq!(a["size"], 240.0);
    assert_eq!(a["drivers"], serde_json::json!([]));
}

#[test]
fn ids_are_stable() {
    // Receivers dedupe on these: they must not change between releases.
    let e = anomaly_event(ymd(2026, 6, 14), false, "111");
    assert_eq!(e.id(), anomaly_event(ymd(2026, 6, 14), true, "111").id());
    assert_eq!(e.id().len(), "anomaly-".len() + 32);
    // FNV-1a 128 of `7:account;3:111;7:service;28:Amazon Elastic Compute Cloud;10:2026-06-14;`
    // (checked with an independent implementation).
    assert_eq!(e.id(), "anomaly-ab3014f2840e1bc92343896a37578ef9");
    assert_ne!(e.id(), anomaly_event(ymd(2026, 6, 14), false, "1111").id());
    let (budget, daily, today) = forecast_crossing();
    let events = budget_events(&budget, &evaluate(&budget, &daily, today));
    assert_eq!(
        events[0].id(),
        budget_events(&budget, &evaluate(&budget, &daily, today))[0].id()
    );
}

#[test]
fn the_url_is_checked() {
    let sent: Arc<dyn SentLog> = Arc::new(MemorySentLog::default());
    for bad in ["", "not a url", "ftp://example.com/x", "file:///tmp/x"] {
        let err = WebhookNotifier::new(&config(bad, 1), sent.clone())
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("webhook `url`"), "{err}");
    }
}

#[test]
fn the_webhook_and_anomaly_tables_read_from_toml_with_defaults() {
    let webhook: WebhookConfig = toml::from_str("url = \"https://hooks.example.com/x\"\n").unwrap();
    assert_eq!(webhook.retry, RetryPolicy::default());
    assert_eq!(webhook.timeout.0, Duration::from_secs(10));
    assert!(!webhook.send_provisional);
    let webhook: WebhookConfig = toml::from_str(
        "url = \"http://127.0.0.1:9/x\"\nretry = { attempts = 2, initial = \"1s\", max = \"4s\" }\ntimeout = \"3s\"\nsend_provisional = true\n",
    )
    .unwrap();
    assert_eq!(webhook.retry.attempts, 2);
    assert_eq!(webhook.timeout.0, Duration::from_secs(3));
    assert!(webhook.send_provisional);
    assert!(toml::from_str::<WebhookConfig>("url = \"http://x\"\nretries = 3\n").is_err());

    use skymeter_savings::anomaly::AnomalyConfig;
    let anomalies: AnomalyConfig = toml::from_str("threshold = 4.0\nmin_amount = 5\n").unwrap();
    assert_eq!(
        anomalies,
        AnomalyConfig {
            threshold: 4.0,
            min_amount: 5.0,
            ..AnomalyConfig::default()
        }
    );
    assert!(toml::from_str::<AnomalyConfig>("treshold = 4.0\n").is_err());
}
