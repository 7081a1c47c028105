//! The webhook notifier: budget crossings and cost anomalies as a JSON `POST`, retried,
//! and sent once.
//!
//! Each event has an id that depends only on what it is about — a budget crossing on
//! (budget, threshold, month), an anomaly on (group, day) — so that evaluating the same
//! month or the same days again (the server does, every few minutes) finds the id already
//! sent in the [`SentLog`] and sends nothing. An event is marked sent once the receiver
//! answered 2xx; one that failed every try is not marked and is tried again at the next
//! evaluation. A receiver that took it but whose answer was lost gets it again: the id in
//! the body is there for it to drop the repeat.
//!
//! Body (`Content-Type: application/json`, the id also in the `Idempotency-Key` header):
//!
//! ```json
//! { "kind": "budget", "id": "budget-…", "sent_at": "2026-06-15T08:00:00Z",
//!   "budget": { "name": "eng", "month": "2026-06", "scope": {…}, "amount": 3000.0,
//!               "actual": 1500.0, "percent_actual": 50.0, "forecast": 3000.0,
//!               "percent_forecast": 100.0, "as_of": "2026-06-15",
//!               "threshold": { "percent": 100.0, "on": "forecast", "limit": 3000.0 } } }
//! { "kind": "anomaly", "id": "anomaly-…", "sent_at": "…",
//!   "anomaly": { "group": { "account": "…", "service": "…" }, "day": "2026-06-14",
//!                "kind": "spike", "provisional": false, "actual": 360.0, "expected": 120.0,
//!                "size": 240.0, "score": 41.2, "direction": "up", "drivers": [ … ] } }
//! ```

use crate::anomaly::{Anomaly, Driver};
use crate::budget::{BudgetConfig, BudgetScope, BudgetStatus, ThresholdBasis};
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::{Failed, RetryLog, RetryPolicy};
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which events were delivered already. The server keeps them in its store, so that a
/// restart does not send them again; [`MemorySentLog`] keeps them for the process's life.
pub trait SentLog: Send + Sync {
    /// Whether the event `id` was delivered.
    fn seen(&self, id: &str) -> bool;
    /// Records the event `id` as delivered.
    fn mark(&self, id: &str);
}

/// A [`SentLog`] in memory.
#[derive(Debug, Default)]
pub struct MemorySentLog {
    ids: Mutex<HashSet<String>>,
}

impl SentLog for MemorySentLog {
    fn seen(&self, id: &str) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    fn mark(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }
}

/// `[webhook]`: where events go and how hard to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the events are posted to.
    pub url: String,
    /// Tries in all and the backoff between them (default 5 tries, 500 ms doubling up to
    /// 30 s, a receiver's `Retry-After` honoured up to `max`).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Longest wait for one try's answer (default 10 s); a try that times out is retried.
    #[serde(default = "default_timeout")]
    pub timeout: DurationStr,
    /// Send anomalies whose class is not decided yet (the last days of a series, see
    /// [`Anomaly::provisional`]); default false: they are sent once they are decided.
    #[serde(default)]
    pub send_provisional: bool,
}

fn default_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

/// The budget part of a `budget` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetAlert {
    pub name: String,
    /// `YYYY-MM`.
    pub month: String,
    pub scope: BudgetScope,
    pub amount: f64,
    pub actual: f64,
    pub percent_actual: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_forecast: Option<f64>,
    pub as_of: NaiveDate,
    /// The threshold crossed.
    pub threshold: CrossedThreshold,
}

/// A threshold a budget crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CrossedThreshold {
    pub percent: f64,
    pub on: ThresholdBasis,
    /// `amount × percent / 100`, USD.
    pub limit: f64,
}

/// The anomaly part of an `anomaly` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnomalyAlert {
    /// The cost group, by dimension (`provider`, `account`, `service`, …).
    pub group: BTreeMap<String, String>,
    #[serde(flatten)]
    pub anomaly: Anomaly,
    /// The resources that drove it, largest first.
    #[serde(default)]
    pub drivers: Vec<Driver>,
}

/// What a notification is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Budget { budget: BudgetAlert },
    Anomaly { anomaly: AnomalyAlert },
}

/// The webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Notification {
    /// Stable per event: the same crossing or anomaly always has the same id.
    pub id: String,
    /// When the notifier made the body (the same on each try of it).
    pub sent_at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

/// FNV-1a, 128 bits: a hash that is the same on every platform and Rust version (std's
/// hasher is not), for ids that stay stable across releases.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// `prefix-` and the hash of the parts, each written with its length first so that no two
/// lists of parts write the same bytes.
fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut key = String::new();
    for part in parts {
        key.push_str(&format!("{}:{part};", part.len()));
    }
    format!("{prefix}-{:032x}", fnv1a_128(key.as_bytes()))
}

impl Event {
    /// The event's id: a budget crossing by (budget, threshold, month), an anomaly by
    /// (group, day).
    pub fn id(&self) -> String {
        match self {
            Event::Budget { budget } => stable_id(
                "budget",
                &[
                    &budget.name,
                    budget.threshold.on.as_str(),
                    &budget.threshold.percent.to_string(),
                    &budget.month,
                ],
            ),
            Event::Anomaly { anomaly } => {
                let day = anomaly.anomaly.day.to_string();
                let mut parts: Vec<&str> = Vec::new();
                for (k, v) in &anomaly.group {
                    parts.push(k);
                    parts.push(v);
                }
                parts.push(&day);
                stable_id("anomaly", &parts)
            }
        }
    }
}

/// One `budget` event per threshold `status` crossed.
pub fn budget_events(budget: &BudgetConfig, status: &BudgetStatus) -> Vec<Event> {
    status
        .crossed()
        .map(|t| Event::Budget {
            budget: BudgetAlert {
                name: status.name.clone(),
                month: status.month.clone(),
                scope: budget.scope.clone(),
                amount: status.amount,
                actual: status.actual,
                percent_actual: status.percent_actual,
                forecast: status.forecast,
                percent_forecast: status.percent_forecast,
                as_of: status.as_of,
                threshold: CrossedThreshold {
                    percent: t.percent,
                    on: t.on,
                    limit: t.limit,
                },
            },
        })
        .collect()
}

/// A notifier that cannot be built, or an event that was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("webhook `url`: {0}")]
    Config(String),
    #[error("webhook event {id} not delivered after {attempts} attempt(s): {message}")]
    Delivery {
        id: String,
        attempts: u32,
        message: String,
    },
}

/// What [`WebhookNotifier::send`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Posted; the receiver answered 2xx at the `attempts`-th try.
    Sent { attempts: u32 },
    /// Sent before: nothing posted.
    AlreadySent,
    /// Another call is sending the same event right now: nothing posted.
    InFlight,
    /// A provisional anomaly and `send_provisional` is off: nothing posted.
    Held,
}

/// Posts events to one webhook.
pub struct WebhookNotifier {
    client: reqwest::Client,
    url: reqwest::Url,
    retry: RetryPolicy,
    send_provisional: bool,
    sent: Arc<dyn SentLog>,
    /// Ids being sent, so that two evaluations at once do not both post one event.
    in_flight: Mutex<HashSet<String>>,
}

/// Takes an id out of the in-flight set when its send ends, however it ends (a dropped
/// future included).
struct InFlightGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl WebhookNotifier {
    /// A notifier for `config` recording deliveries in `sent`.
    pub fn new(config: &WebhookConfig, sent: Arc<dyn SentLog>) -> Result<Self, NotifyError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| NotifyError::Config(format!("`{}` is not a URL ({e})", config.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(NotifyError::Config(format!(
                "`{}` must be an http:// or https:// URL with a host",
                config.url
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Config(format!("no HTTP client ({e})")))?;
        Ok(WebhookNotifier {
            client,
            url,
            retry: config.retry,
            send_provisional: config.send_provisional,
            sent,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// Sends `event` unless it was sent before, retrying 5xx, 429, timeouts and failed
    /// connections with backoff; other answers (4xx) end it at once. Marks it sent on a
    /// 2xx answer.
    pub async fn send(&self, event: &Event) -> Result<Delivery, NotifyError> {
        if let Event::Anomaly { anomaly } = event {
            if anomaly.anomaly.provisional && !self.send_provisional {
                return Ok(Delivery::Held);
            }
        }
        let id = event.id();
        if self.sent.seen(&id) {
            return Ok(Delivery::AlreadySent);
        }
        if !self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone())
        {
            return Ok(Delivery::InFlight);
        }
        let _guard = InFlightGuard {
            set: &self.in_flight,
            id: id.clone(),
        };
        // Seen again under the guard: a send that finished between the first look and
        // the insert has marked it.
        if self.sent.seen(&id) {
            return Ok(Delivery::AlreadySent);
        }
        let body = serde_json::to_vec(&Notification {
            id: id.clone(),
            sent_at: Utc::now(),
            event: event.clone(),
        })
        .map_err(|e| NotifyError::Delivery {
            id: id.clone(),
            attempts: 0,
            message: format!("body not encoded: {e}"),
        })?;
        let attempts = AtomicU32::new(0);
        let what = format!(
            "webhook event {id} to {}",
            self.url.host_str().unwrap_or("")
        );
        let result = self
            .retry
            .run_logged(RetryLog::Warn, &what, || {
                attempts.fetch_add(1, Ordering::Relaxed);
                self.try_once(&id, body.clone())
            })
            .await;
        let attempts = attempts.load(Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.sent.mark(&id);
                Ok(Delivery::Sent { attempts })
            }
            Err(e) => Err(NotifyError::Delivery {
                id,
                attempts,
                message: e.to_string(),
            }),
        }
    }

    /// Sends each event in turn; one failing does not stop the others.
    pub async fn send_all(&self, events: &[Event]) -> Vec<Result<Delivery, NotifyError>> {
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            results.push(self.send(event).await);
        }
        results
    }

    async fn try_once(&self, id: &str, body: Vec<u8>) -> Result<(), Failed> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Ok(key) = HeaderValue::from_str(id) {
            request = request.header("Idempotency-Key", key);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    // Connection refused or reset, DNS: the receiver may be back soon.
                    ErrorKind::Unavailable
                };
                return Err(PluginError::new(
                    kind,
                    format!("no answer: {}", skymeter_plugin_api::error_chain(&e)),
                )
                .into());
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let kind = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            ErrorKind::Unavailable
        } else if status == StatusCode::UNAUTHORIZED {
            ErrorKind::Auth
        } else if status == StatusCode::FORBIDDEN {
            ErrorKind::Permission
        } else {
            ErrorKind::BadResponse
        };
        Err(Failed {
            error: PluginError::new(kind, format!("receiver answered {status}")),
            retry_after,
        })
    }
}
