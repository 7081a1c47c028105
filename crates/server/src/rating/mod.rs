//! The rating job: every period, once its data is complete, the usage of each scope is read
//! from the store, rated with the rules (`skymeter_rating`), and stored as cost lines with
//! `x_source = rated` (CloudKitty's orchestrator, inside the server).
//!
//! - Periods are aligned to multiples of `period` since the epoch. A period is *ready*
//!   `wait_periods` periods after it ends (data of agents that deliver late has arrived).
//! - Progress is kept per scope (the last end rated), durably, in the store's server state
//!   (`rating.progress`), so a restart resumes where rating stopped. A scope whose rating
//!   fails (a script past its limits) stays at its period, the error in the status, while
//!   the other scopes go on; it is tried again on the next round.
//! - Rating a period again stores the same line keys (`skymeter_rating::cost_lines`): the
//!   store's keyed upsert replaces them, so rating twice changes nothing. A re-rate of a
//!   range deletes the range's rated lines first, so lines the rules no longer produce go.
//! - Rating starts at `start`, by default the first day of the month the job first ran
//!   (CloudKitty's default), kept in the state so that it does not move.

mod gather;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skymeter_model::{Batch, Cost, CostSource};
use skymeter_rating::{cost_lines, LineDefaults, RatingRules};
use skymeter_store::{Store, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The key of the progress in the store's server state.
const PROGRESS_KEY: &str = "rating.progress";
/// The key of the rules edited through the API (hashmap and module states).
const EDITED_RULES_KEY: &str = "rating.edited_rules";
/// Most periods one round rates before it looks at re-rate requests and the status again.
const PERIODS_PER_ROUND: usize = 48;
/// Most cost lines in one stored batch.
const LINES_PER_BATCH: usize = 5_000;
/// How many finished re-rates the status keeps.
const RERATES_KEPT: usize = 10;

/// `[rating]` of the server's config.
#[derive(Debug, Clone)]
pub struct RatingConfig {
    pub rules: RatingRules,
    /// Where the rules came from, for the status.
    pub rules_file: Option<PathBuf>,
    /// Length of a rating period. Default 1 h.
    pub period: Duration,
    /// Periods to wait after a period ends before rating it. Default 2.
    pub wait_periods: u32,
    /// The attribute usage is split into scopes by: `account` (default: the AWS account,
    /// GCP project, Azure subscription, host), `provider`, `region`, or `tag:NAME`.
    pub scope_by: String,
    /// The first period rated. Default: the first day of the month the job first ran.
    pub start: Option<DateTime<Utc>>,
    /// `BillingCurrency` of the rated lines. Default `USD`.
    pub currency: String,
    /// `InvoiceIssuerName` of the rated lines (who charges the scopes). Default `skymeter`.
    pub issuer: String,
}

impl RatingConfig {
    pub fn new(rules: RatingRules) -> RatingConfig {
        RatingConfig {
            rules,
            rules_file: None,
            period: Duration::from_secs(3600),
            wait_periods: 2,
            scope_by: "account".into(),
            start: None,
            currency: "USD".into(),
            issuer: "skymeter".into(),
        }
    }

    /// The mistakes of the configuration, each naming its key.
    pub fn check(&self) -> Result<(), String> {
        let s = self.period.as_secs();
        if s < 60
            || self.period.subsec_nanos() != 0
            || !86_400u64.is_multiple_of(s) && !s.is_multiple_of(86_400)
        {
            return Err(format!(
                "rating.period = {}: use whole seconds of at least 1m that divide a day (or whole days), e.g. 1h, 15m, 1d",
                humantime::format_duration(self.period)
            ));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "rating.currency = `{}`: use an ISO 4217 code such as USD",
                self.currency
            ));
        }
        if self.scope_by.trim().is_empty() {
            return Err(
                "rating.scope_by is empty: use account, provider, region or tag:NAME".into(),
            );
        }
        if self.issuer.trim().is_empty() {
            return Err("rating.issuer is empty: name who charges the scopes".into());
        }
        if !self.rules.services.iter().any(|s| s.usage.is_some()) {
            return Err(
                "the rating rules define no service with `usage` (where its usage comes from, \
                 e.g. usage = { kind = \"compute.instance\" }): the rating job would rate nothing"
                    .into(),
            );
        }
        Ok(())
    }

    fn period_s(&self) -> i64 {
        self.period.as_secs() as i64
    }
}

/// One scope's progress, as the status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScopeStatus {
    pub scope: String,
    /// The end of the last period rated for the scope: everything before is rated.
    pub rated_until: DateTime<Utc>,
    /// Seconds from `rated_until` to now.
    pub lag_s: i64,
    /// Why the scope's next period could not be rated, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A re-rate request and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RerateStatus {
    pub id: u64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// Rated up to here.
    pub done_until: DateTime<Utc>,
    /// Rated lines deleted before rating again.
    pub deleted: u64,
    /// Rated lines stored.
    pub lines: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/rating/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RatingStatus {
    /// False when the server runs without `[rating]`; nothing else is set then.
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_periods: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_file: Option<String>,
    /// The first period rated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// Periods ending before this are ready to rate (`wait_periods` have passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_until: Option<DateTime<Utc>>,
    /// The earliest `rated_until` of the scopes: everything before is rated everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rated_until: Option<DateTime<Utc>>,
    /// When the job last looked for work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_round: Option<DateTime<Utc>>,
    /// What stopped the last round (the store failing), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub scopes: Vec<ScopeStatus>,
    #[serde(default)]
    pub rerates: Vec<RerateStatus>,
}

/// Rules edited through the API, as saved in the store.
#[derive(Debug, Serialize, Deserialize)]
struct EditedRules {
    file_digest: String,
    hashmap: skymeter_rating::HashMapRules,
    modules: BTreeMap<String, skymeter_rating::rules::ModuleState>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The progress kept in the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    start: Option<DateTime<Utc>>,
    /// Scope → the end of its last rated period.
    scopes: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct Runtime {
    last_round: Option<DateTime<Utc>>,
    error: Option<String>,
    scope_errors: BTreeMap<String, String>,
    rerates: VecDeque<RerateStatus>,
    next_rerate: u64,
}

/// The rating job's shared half: the rules in force, the status, re-rate requests. The
/// handlers hold it; [`run`] does the work. Its locks are held for a few field copies,
/// never across an await or a store call.
pub struct Rating {
    config: RatingConfig,
    rules: RwLock<Arc<RatingRules>>,
    /// Held from the start of an edit of the rules until it is saved, so that edits apply
    /// one after the other and are saved in that order.
    editing: Mutex<()>,
    /// SHA-256 of the rules file as it was at start (hex): saved with API edits, so that a
    /// file changed since wins over them.
    file_digest: String,
    runtime: Mutex<Runtime>,
    wake: tokio::sync::Notify,
}

impl Rating {
    /// The job's shared half, with the rules edited through the API restored from the
    /// store when the rules file has not changed since they were saved.
    pub fn new(config: RatingConfig, store: &dyn Store) -> Rating {
        let file_digest = match &config.rules_file {
            Some(p) => match std::fs::read(p) {
                Ok(bytes) => hex(&Sha256::digest(&bytes)),
                Err(_) => String::new(),
            },
            None => String::new(),
        };
        let mut rules = config.rules.clone();
        match store.server_state(EDITED_RULES_KEY) {
            Ok(Some(text)) => match serde_json::from_str::<EditedRules>(&text) {
                Ok(saved) if saved.file_digest == file_digest => {
                    tracing::info!(
                        "rating rules: using the hashmap rules and module states edited through the API"
                    );
                    rules.hashmap = saved.hashmap;
                    rules.modules = saved.modules;
                }
                Ok(_) => tracing::warn!(
                    file = ?config.rules_file,
                    "rating rules: the rules file changed since rules were last edited through the API; the file's rules are in force and the API edits are set aside"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "rating rules: the rules edited through the API cannot be read back; the file's rules are in force")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "rating rules: cannot read the rules edited through the API; the file's rules are in force")
            }
        }
        Rating {
            rules: RwLock::new(Arc::new(rules)),
            editing: Mutex::new(()),
            file_digest,
            config,
            runtime: Mutex::new(Runtime::default()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Changes the rules with `f` (on a copy: a failed change leaves them as they were),
    /// puts the result in force and saves the hashmap and module states in the store, so
    /// that they survive a restart. Blocking (a store write).
    pub fn edit<T, E: From<StoreError>>(
        &self,
        store: &dyn Store,
        f: impl FnOnce(&mut RatingRules) -> Result<T, E>,
    ) -> Result<T, E> {
        let _one_at_a_time = self.editing.lock().unwrap_or_else(|e| e.into_inner());
        let mut rules = (*self.rules()).clone();
        let out = f(&mut rules)?;
        let saved = EditedRules {
            file_digest: self.file_digest.clone(),
            hashmap: rules.hashmap.clone(),
            modules: rules.modules.clone(),
        };
        store.put_server_state(
            EDITED_RULES_KEY,
            &serde_json::to_string(&saved).expect("plain data"),
        )?;
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
        Ok(out)
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RatingRules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn currency(&self) -> &str {
        &self.config.currency
    }

    fn runtime(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Periods ending at or before this are ready at `now`.
    fn ready_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let p = self.config.period_s();
        let aligned = now.timestamp().div_euclid(p) * p;
        let ready = aligned - p * i64::from(self.config.wait_periods);
        Utc.timestamp_opt(ready, 0).single().unwrap_or(now)
    }

    fn align_down(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let p = self.config.period_s();
        Utc.timestamp_opt(t.timestamp().div_euclid(p) * p, 0)
            .single()
            .unwrap_or(t)
    }

    fn align_up(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let down = self.align_down(t);
        if down == t {
            t
        } else {
            down + chrono::Duration::seconds(self.config.period_s())
        }
    }

    /// The status, with the progress read from the store.
    pub fn status(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<RatingStatus, StoreError> {
        let progress = load_progress(store)?;
        let rt = self.runtime();
        let mut scopes: Vec<ScopeStatus> = progress
            .scopes
            .iter()
            .map(|(scope, until)| ScopeStatus {
                scope: scope.clone(),
                rated_until: *until,
                lag_s: (now - *until).num_seconds(),
                error: rt.scope_errors.get(scope).cloned(),
            })
            .collect();
        for (scope, error) in &rt.scope_errors {
            if !progress.scopes.contains_key(scope) {
                let until = progress.start.unwrap_or(now);
                scopes.push(ScopeStatus {
                    scope: scope.clone(),
                    rated_until: until,
                    lag_s: (now - until).num_seconds(),
                    error: Some(error.clone()),
                });
            }
        }
        Ok(RatingStatus {
            enabled: true,
            period_s: Some(self.config.period.as_secs()),
            wait_periods: Some(self.config.wait_periods),
            scope_by: Some(self.config.scope_by.clone()),
            rules_file: self
                .config
                .rules_file
                .as_ref()
                .map(|p| p.display().to_string()),
            start: progress.start.or(self.config.start),
            ready_until: Some(self.ready_until(now)),
            rated_until: scopes.iter().map(|s| s.rated_until).min(),
            last_round: rt.last_round,
            error: rt.error.clone(),
            scopes,
            rerates: rt.rerates.iter().cloned().collect(),
        })
    }

    /// Queues a re-rate of `[from, to)` (widened to whole periods, and cut at what is
    /// ready) and wakes the job. Returns the request as queued.
    pub fn request_rerate(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RerateStatus, String> {
        let from = self.align_down(from);
        let ready = self.ready_until(now);
        let to = self.align_up(to).min(ready);
        if to <= from {
            return Err(format!(
                "nothing to re-rate: `from` (aligned to the period: {}) must be before `to` and before {} (the end of the last period ready to rate)",
                from.to_rfc3339(),
                ready.to_rfc3339()
            ));
        }
        let mut rt = self.runtime();
        rt.next_rerate += 1;
        let r = RerateStatus {
            id: rt.next_rerate,
            from,
            to,
            state: "queued".into(),
            done_until: from,
            deleted: 0,
            lines: 0,
            error: None,
        };
        rt.rerates.push_back(r.clone());
        while rt.rerates.len() > RERATES_KEPT
            && rt
                .rerates
                .front()
                .is_some_and(|r| r.state == "done" || r.state == "failed")
        {
            rt.rerates.pop_front();
        }
        drop(rt);
        self.wake.notify_one();
        Ok(r)
    }

    /// One round: queued re-rates, then the periods that became ready. Returns true when
    /// there is more to do right away.
    fn round(&self, store: &dyn Store, now: DateTime<Utc>) -> bool {
        self.runtime().last_round = Some(now);
        let result = self
            .rerates(store, now)
            .and_then(|()| self.advance(store, now));
        let mut rt = self.runtime();
        match result {
            Ok(more) => {
                rt.error = None;
                more
            }
            Err(e) => {
                tracing::error!(error = %e, "rating round failed; trying again next round");
                rt.error = Some(e.to_string());
                false
            }
        }
    }

    fn rerates(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<(), StoreError> {
        loop {
            let next = {
                let mut rt = self.runtime();
                let Some(r) = rt.rerates.iter_mut().find(|r| r.state == "queued") else {
                    return Ok(());
                };
                r.state = "running".into();
                r.clone()
            };
            let outcome = self.rerate(store, &next, now);
            let mut rt = self.runtime();
            if let Some(r) = rt.rerates.iter_mut().find(|r| r.id == next.id) {
                match outcome {
                    Ok(()) => r.state = "done".into(),
                    Err(e) => {
                        r.state = "failed".into();
                        r.error = Some(e.clone());
                        tracing::error!(from = %r.from, to = %r.to, error = %e, "re-rating failed");
                    }
                }
            }
        }
    }

    fn update_rerate(&self, id: u64, f: impl FnOnce(&mut RerateStatus)) {
        if let Some(r) = self.runtime().rerates.iter_mut().find(|r| r.id == id) {
            f(r);
        }
    }

    fn rerate(
        &self,
        store: &dyn Store,
        req: &RerateStatus,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let deleted = store
            .delete_costs(CostSource::Rated, req.from, req.to)
            .map_err(|e| e.to_string())?;
        self.update_rerate(req.id, |r| r.deleted = deleted);
        tracing::info!(from = %req.from, to = %req.to, deleted, "re-rating");
        let resources = gather::all_resources(store).map_err(|e| e.to_string())?;
        let step = chrono::Duration::seconds(self.config.period_s());
        let mut begin = req.from;
        while begin < req.to {
            let end = begin + step;
            let rules = self.rules();
            let frames = gather::frames(
                store,
                &resources,
                &rules.services,
                &self.config.scope_by,
                begin,
                end,
            )
            .map_err(|e| e.to_string())?;
            let mut lines = 0;
            for (scope, frame) in frames {
                let stored = self
                    .rate_scope(store, &rules, &scope, frame, now)
                    .map_err(|e| {
                        format!("scope `{scope}`, period from {}: {e}", begin.to_rfc3339())
                    })?;
                lines += stored;
            }
            self.update_rerate(req.id, |r| {
                r.done_until = end;
                r.lines += lines;
            });
            begin = end;
        }
        Ok(())
    }

    /// Rates the periods that are ready, scope by scope. True when it stopped at
    /// [`PERIODS_PER_ROUND`] with more ready.
    fn advance(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut progress = load_progress(store)?;
        if progress.start.is_none() {
            let start = self.align_down(self.config.start.unwrap_or_else(|| first_of_month(now)));
            progress.start = Some(start);
            save_progress(store, &progress)?;
        }
        let start = progress.start.unwrap_or(now);
        let ready = self.ready_until(now);
        let step = chrono::Duration::seconds(self.config.period_s());
        let mut begin = progress
            .scopes
            .values()
            .min()
            .copied()
            .unwrap_or(start)
            .max(start);
        let mut resources = None;
        let mut done = 0;
        while begin + step <= ready {
            if done == PERIODS_PER_ROUND {
                return Ok(true);
            }
            let end = begin + step;
            if resources.is_none() {
                resources = Some(gather::all_resources(store)?);
            }
            let rules = self.rules();
            let mut frames = gather::frames(
                store,
                resources.as_ref().expect("read above"),
                &rules.services,
                &self.config.scope_by,
                begin,
                end,
            )?;
            // Known scopes without usage in the period are rated too (to nothing), so that
            // their progress moves on.
            let scopes: Vec<String> = progress
                .scopes
                .keys()
                .cloned()
                .chain(frames.keys().map(|s| s.to_string()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for scope in scopes {
                // A scope rates its periods in order: one behind (its last period failed)
                // waits for the next round; one seen for the first time starts here.
                let until = *progress.scopes.get(&scope).unwrap_or(&begin);
                if until != begin {
                    continue;
                }
                let frame = frames
                    .remove(scope.as_str())
                    .unwrap_or_else(|| skymeter_rating::DataFrame::new(begin, end));
                match self.rate_scope(store, &rules, &scope, frame, now) {
                    Ok(_) => {
                        progress.scopes.insert(scope.clone(), end);
                        self.runtime().scope_errors.remove(&scope);
                    }
                    Err(RateFailure::Store(e)) => return Err(e),
                    Err(RateFailure::Rules(e)) => {
                        tracing::error!(scope, period = %begin, error = %e, "rating a scope failed; it waits for the next round");
                        self.runtime().scope_errors.insert(
                            scope.clone(),
                            format!("period from {}: {e}", begin.to_rfc3339()),
                        );
                    }
                }
            }
            save_progress(store, &progress)?;
            done += 1;
            begin = end;
        }
        Ok(false)
    }

    /// Rates one scope's frame and stores its lines. Returns how many.
    fn rate_scope(
        &self,
        store: &dyn Store,
        rules: &RatingRules,
        scope: &str,
        frame: skymeter_rating::DataFrame,
        now: DateTime<Utc>,
    ) -> Result<u64, RateFailure> {
        if frame.is_empty() {
            return Ok(0);
        }
        let rated = rules
            .rate(frame, Some(scope))
            .map_err(|e| RateFailure::Rules(e.to_string()))?;
        let defaults = LineDefaults {
            currency: self.config.currency.clone(),
            issuer: self.config.issuer.clone(),
            scope_by: self.config.scope_by.clone(),
        };
        let lines = cost_lines(&rated, scope, &rules.services, &defaults);
        let n = lines.len() as u64;
        store_lines(store, lines, now)?;
        Ok(n)
    }
}

enum RateFailure {
    /// The rules could not rate the frame (a script failed, an overflow).
    Rules(String),
    /// The store failed: the round stops.
    Store(StoreError),
}

impl From<StoreError> for RateFailure {
    fn from(e: StoreError) -> Self {
        RateFailure::Store(e)
    }
}

impl std::fmt::Display for RateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateFailure::Rules(e) => f.write_str(e),
            RateFailure::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Stores rated lines as batches of the `rating` task, checked like any batch.
fn store_lines(store: &dyn Store, lines: Vec<Cost>, now: DateTime<Utc>) -> Result<(), RateFailure> {
    let mut lines = lines.into_iter().peekable();
    while lines.peek().is_some() {
        let mut batch = Batch::new("skymeter-rating", "rating", now);
        batch.costs = lines.by_ref().take(LINES_PER_BATCH).collect();
        if let Err(errs) = batch.validate() {
            let first = errs.first().map(|e| e.to_string()).unwrap_or_default();
            return Err(RateFailure::Rules(format!(
                "the rated lines are not valid cost lines ({} problem(s), first: {first}); check the service's groupby and metadata attributes",
                errs.len()
            )));
        }
        store.ingest(&batch)?;
    }
    Ok(())
}

fn load_progress(store: &dyn Store) -> Result<Progress, StoreError> {
    match store.server_state(PROGRESS_KEY)? {
        None => Ok(Progress::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: format!("server state `{PROGRESS_KEY}`"),
            message: format!("{e}; re-rate from the start you want after fixing or deleting it"),
        }),
    }
}

fn save_progress(store: &dyn Store, p: &Progress) -> Result<(), StoreError> {
    store.put_server_state(PROGRESS_KEY, &serde_json::to_string(p).expect("plain data"))
}

fn first_of_month(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// Runs the job until the task is dropped: a round, then a sleep until the next period is
/// ready (or a re-rate request wakes it).
pub async fn run(rating: Arc<Rating>, store: Arc<dyn Store>) {
    tracing::info!(
        period = %humantime::format_duration(rating.config.period),
        wait_periods = rating.config.wait_periods,
        scope_by = %rating.config.scope_by,
        "rating job started"
    );
    loop {
        let (r, s) = (rating.clone(), store.clone());
        let more = tokio::task::spawn_blocking(move || r.round(&*s, Utc::now()))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "rating round panicked");
                false
            });
        if more {
            continue;
        }
        let now = Utc::now();
        let next_ready =
            rating.ready_until(now) + chrono::Duration::seconds(rating.config.period_s());
        let wait = (next_ready - now + chrono::Duration::seconds(1))
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(300));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = rating.wake.notified() => {}
        }
    }
}
