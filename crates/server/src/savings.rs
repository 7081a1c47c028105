//! The savings half of the server's state: findings (with their config and the price
//! tables), budgets and anomalies, each computation "as of now" reused for a minute
//! (findings read every series of two weeks); and the evaluation that runs every
//! `[savings] every`: budgets, anomalies and the findings totals written as series for
//! PromQL and Grafana, and budget crossings and anomalies posted to the webhook.
//! `handlers/savings.rs` and `handlers/budgets.rs` serve them.

use crate::config::SavingsConfig;
use crate::error::ApiErr;
use chrono::{DateTime, NaiveDate, Utc};
use skymeter_savings::anomaly::AnomalyConfig;
use skymeter_savings::budget::BudgetConfig;
use skymeter_savings::findings::{self, Finding, FindingsConfig, Prices};
use skymeter_savings::notify::{AnomalyAlert, Delivery, WebhookNotifier};
use skymeter_savings::watch::{self, BudgetReport, KindTotal, StoreSentLog};
use skymeter_store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the findings, budgets and anomalies are computed with, and the last computations.
pub struct Savings {
    pub config: FindingsConfig,
    pub prices: Prices,
    pub budgets: Vec<BudgetConfig>,
    pub anomalies: AnomalyConfig,
    webhook: Option<skymeter_savings::notify::WebhookConfig>,
    every: Duration,
    findings_cache: Mutex<Option<Fresh<Vec<Finding>>>>,
    budgets_cache: Mutex<Option<Fresh<Vec<BudgetReport>>>>,
    anomalies_cache: Mutex<Option<Fresh<Vec<AnomalyAlert>>>>,
}

/// A computation as of `at` and when it was made.
struct Fresh<T> {
    at: DateTime<Utc>,
    computed: Instant,
    value: Arc<T>,
}

/// How long a computation "as of now" answers later requests.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// The cached value when `at` is "now" and the cache is fresh, else a new computation
/// (cached when "now").
fn cached<T>(
    cache: &Mutex<Option<Fresh<T>>>,
    at: Option<DateTime<Utc>>,
    compute: impl FnOnce(DateTime<Utc>) -> Result<T, ApiErr>,
) -> Result<(DateTime<Utc>, Arc<T>), ApiErr> {
    if at.is_none() {
        if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if c.computed.elapsed() < FRESH_FOR {
                return Ok((c.at, c.value.clone()));
            }
        }
    }
    let when = at.unwrap_or_else(Utc::now);
    let value = Arc::new(compute(when)?);
    if at.is_none() {
        *cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Fresh {
            at: when,
            computed: Instant::now(),
            value: value.clone(),
        });
    }
    Ok((when, value))
}

impl Savings {
    pub fn new(config: &SavingsConfig) -> Savings {
        Savings {
            config: config.findings.clone(),
            prices: config.prices.clone(),
            budgets: config.budgets.clone(),
            anomalies: config.anomalies.clone(),
            webhook: config.webhook.clone(),
            every: config.every,
            findings_cache: Mutex::new(None),
            budgets_cache: Mutex::new(None),
            anomalies_cache: Mutex::new(None),
        }
    }

    /// The findings as of `at` (`None`: now, or the computation of the last minute).
    pub fn findings(
        &self,
        store: &dyn Store,
        at: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, Arc<Vec<Finding>>), ApiErr> {
        cached(&self.findings_cache, at, |when| {
            findings::compute(store, &self.prices, &self.config, when).map_err(ApiErr::store)
        })
    }

    /// Every budget's status on the day of `at` (`None`: today).
    pub fn budget_reports(
        &self,
        store: &dyn Store,
        at: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, Arc<Vec<BudgetReport>>), ApiErr> {
        cached(&self.budgets_cache, at, |when| {
            watch::budget_reports(store, &self.budgets, when.date_naive()).map_err(ApiErr::store)
        })
    }

    /// The anomalies of the complete days before the day of `at` (`None`: today).
    pub fn anomalies(
        &self,
        store: &dyn Store,
        at: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, Arc<Vec<AnomalyAlert>>), ApiErr> {
        cached(&self.anomalies_cache, at, |when| {
            watch::anomalies(store, &self.anomalies, when.date_naive()).map_err(ApiErr::store)
        })
    }
}

/// The findings per kind, for the series.
fn kind_totals(found: &[Finding]) -> Vec<KindTotal> {
    let mut by: BTreeMap<String, KindTotal> = BTreeMap::new();
    for f in found {
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let t = by.entry(kind.clone()).or_insert(KindTotal {
            kind,
            count: 0,
            monthly_usd: 0.0,
        });
        t.count += 1;
        t.monthly_usd += f.monthly_usd.unwrap_or(0.0);
    }
    by.into_values().collect()
}

/// Evaluates budgets, anomalies and the findings totals now and every `every`: writes them
/// as series and posts new budget crossings and anomalies to the webhook. Runs until
/// aborted; a failed round is logged and the next one comes at its time.
pub async fn run(savings: Arc<Savings>, store: Arc<dyn Store>) {
    let notifier = match &savings.webhook {
        None => None,
        Some(w) => match WebhookNotifier::new(w, Arc::new(StoreSentLog(store.clone()))) {
            Ok(n) => Some(n),
            Err(e) => {
                // The config was checked at start; this is a client that cannot be built.
                tracing::error!(error = %e, "the webhook is off");
                None
            }
        },
    };
    let mut tick = tokio::time::interval(savings.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (s, st) = (savings.clone(), store.clone());
        let round = tokio::task::spawn_blocking(move || evaluate(&s, &*st)).await;
        let events = match round {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                tracing::warn!(error = %e.body.message, "savings evaluation failed; trying again at the next round");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "savings evaluation panicked");
                continue;
            }
        };
        let Some(notifier) = &notifier else { continue };
        for event in events {
            match notifier.send(&event).await {
                Ok(Delivery::Sent { attempts }) => {
                    tracing::info!(event = %event.id(), attempts, "webhook event sent");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhook event not delivered; it is tried again at the next round");
                }
            }
        }
    }
}

/// One round: the computations, their series stored, and the events to post.
fn evaluate(
    savings: &Savings,
    store: &dyn Store,
) -> Result<Vec<skymeter_savings::notify::Event>, ApiErr> {
    let now = Utc::now();
    let today: NaiveDate = now.date_naive();
    let reports = watch::budget_reports(store, &savings.budgets, today).map_err(ApiErr::store)?;
    let anomalies = watch::anomalies(store, &savings.anomalies, today).map_err(ApiErr::store)?;
    // Computed afresh and not put in the API's cache: a round may run just before a batch
    // arrives, and requests should not be answered from it for a minute.
    let findings = match findings::compute(store, &savings.prices, &savings.config, now)
        .map_err(ApiErr::store)
    {
        Ok(f) => Some(kind_totals(&f)),
        Err(e) => {
            tracing::warn!(error = %e.body.message, "findings totals not written this round");
            None
        }
    };
    let batch = watch::series_batch(
        now,
        &reports,
        &anomalies,
        &savings.anomalies,
        findings.as_deref(),
    );
    // Nothing to chart (no budget, no current anomaly, no finding): no batch, so that a
    // server without them stores nothing of its own.
    if !batch.points.is_empty() {
        match batch.validate() {
            Ok(()) => {
                if let Err(e) = store.ingest(&batch) {
                    tracing::warn!(error = %e, "budget and anomaly series not written this round");
                }
            }
            Err(errs) => {
                tracing::warn!(?errs, "budget and anomaly series not written: a budget name or group cannot name a series");
            }
        }
    }
    Ok(watch::events(
        &savings.budgets,
        &reports,
        &anomalies,
        &savings.anomalies,
        today,
    ))
}
