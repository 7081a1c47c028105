//! An in-memory [`Store`] with honest semantics: whole-batch ingest, dedupe by `batch_id`
//! (a retry is a duplicate, a reused id with other content a conflict), keyset pagination,
//! downsampling, cost grouping, hashed tokens. The server's tests and examples run the real
//! server over it, without the embedded store's files and background work.

use chrono::{DateTime, TimeZone, Utc};
use skymeter_model::api::{AgentRegistration, AgentStatus, Heartbeat};
use skymeter_model::{Batch, Cost, Point, Stat};
use skymeter_store::*;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Data {
    /// Batch id → content hash: a retry is a duplicate, a reused id a conflict.
    batches: HashMap<uuid::Uuid, [u8; 32]>,
    resources: BTreeMap<String, StoredResource>,
    history: BTreeMap<String, Vec<ResourceChange>>,
    points: BTreeMap<SeriesKey, BTreeMap<DateTime<Utc>, f64>>,
    costs: Vec<Cost>,
    server_state: BTreeMap<String, String>,
    agents: BTreeMap<String, (AgentRegistration, DateTime<Utc>, DateTime<Utc>, Heartbeat)>,
    /// Hash of the token → info.
    tokens: BTreeMap<u64, TokenInfo>,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemStore {
    data: Mutex<Data>,
    /// When set, `check` fails (for `/health` 503).
    pub broken: AtomicBool,
    /// Milliseconds `resources` sleeps before answering (for timeouts and shutdown).
    pub slow_ms: AtomicU64,
    /// When set, ingest dedupes and counts points but keeps none (benchmarks of the
    /// server's own cost).
    pub discard_points: AtomicBool,
    pub points_seen: AtomicU64,
    /// When set, `ingest` fails as storage does when a disk or database is away (for the
    /// NATS consumer's redelivery).
    pub fail_ingest: AtomicBool,
}

fn hash(token: &str) -> u64 {
    let mut h = DefaultHasher::new();
    token.hash(&mut h);
    h.finish()
}

fn glob(pattern: &str, v: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == v,
        Some((pre, rest)) => {
            v.starts_with(pre) && (0..=v.len() - pre.len()).any(|i| glob(rest, &v[pre.len() + i..]))
        }
    }
}

fn page_of<T: Clone>(items: impl Iterator<Item = (String, T)>, page: &PageQuery) -> Page<T> {
    let limit = page.limit() as usize;
    let mut out: Vec<(String, T)> = items
        .filter(|(k, _)| page.cursor.as_ref().is_none_or(|c| k > c))
        .take(limit + 1)
        .collect();
    let next_cursor = if out.len() > limit {
        out.truncate(limit);
        out.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Page {
        items: out.into_iter().map(|(_, t)| t).collect(),
        next_cursor,
    }
}

fn series_cursor(k: &SeriesKey) -> String {
    serde_json::to_string(k).unwrap()
}

impl MemStore {
    pub fn new() -> Arc<MemStore> {
        Arc::new(MemStore::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap()
    }

    fn series_matching<'a>(
        d: &'a Data,
        q: &'a SeriesQuery,
    ) -> impl Iterator<Item = (&'a SeriesKey, &'a BTreeMap<DateTime<Utc>, f64>)> + 'a {
        d.points.iter().filter(move |(k, _)| {
            q.metric.as_ref().is_none_or(|m| glob(m, &k.metric))
                && q.resource.as_ref().is_none_or(|r| *r == k.resource.key())
                && q.provider
                    .as_ref()
                    .is_none_or(|v| *v == k.resource.provider)
                && q.account.as_ref().is_none_or(|v| *v == k.resource.account)
                && q.region.as_ref().is_none_or(|v| *v == k.resource.region)
                && q.stat.is_none_or(|s| s == k.stat)
                && q.labels.iter().all(|(lk, lv)| k.labels.get(lk) == Some(lv))
        })
    }
}

fn series_key(p: &Point) -> SeriesKey {
    SeriesKey {
        metric: p.metric.to_string(),
        unit: p.unit,
        stat: p.stat,
        resource: (*p.resource).clone(),
        labels: p.labels.clone().into(),
    }
}

fn diff(
    old: &StoredResource,
    new: &skymeter_model::Resource,
) -> BTreeMap<String, [serde_json::Value; 2]> {
    use serde_json::Value;
    let mut out = BTreeMap::new();
    let o = &old.resource;
    if o.name != new.name {
        out.insert(
            "name".into(),
            [Value::from(o.name.clone()), Value::from(new.name.clone())],
        );
    }
    if o.kind != new.kind {
        out.insert(
            "kind".into(),
            [Value::from(o.kind.clone()), Value::from(new.kind.clone())],
        );
    }
    let keys: HashSet<&String> = o.tags.keys().chain(new.tags.keys()).collect();
    for k in keys {
        let (a, b) = (o.tags.get(k), new.tags.get(k));
        if a != b {
            out.insert(
                format!("tags.{k}"),
                [
                    a.cloned().map_or(Value::Null, Value::from),
                    b.cloned().map_or(Value::Null, Value::from),
                ],
            );
        }
    }
    let keys: HashSet<&String> = o.attributes.keys().chain(new.attributes.keys()).collect();
    for k in keys {
        let (a, b) = (o.attributes.get(k), new.attributes.get(k));
        if a != b {
            out.insert(
                format!("attributes.{k}"),
                [
                    a.cloned().unwrap_or(Value::Null),
                    b.cloned().unwrap_or(Value::Null),
                ],
            );
        }
    }
    out
}

impl Store for MemStore {
    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        if self.fail_ingest.load(Ordering::Relaxed) {
            return Err(StoreError::Io {
                path: "memstore".into(),
                source: std::io::Error::other("ingest failure injected by the test"),
            });
        }
        let mut d = self.lock();
        let hash = batch.content_hash();
        match d.batches.entry(batch.batch_id) {
            std::collections::hash_map::Entry::Occupied(e) if *e.get() == hash => {
                return Ok(IngestOutcome::Duplicate)
            }
            std::collections::hash_map::Entry::Occupied(_) => return Ok(IngestOutcome::Conflict),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(hash);
            }
        }
        for r in &batch.resources {
            let key = r.reference().key();
            match d.resources.get(&key).cloned() {
                Some(old) => {
                    let changes = diff(&old, r);
                    if !changes.is_empty() {
                        d.history
                            .entry(key.clone())
                            .or_default()
                            .push(ResourceChange {
                                at: r.observed_at,
                                changes,
                            });
                    }
                    d.resources.insert(
                        key.clone(),
                        StoredResource {
                            key,
                            resource: r.clone(),
                            first_seen: old.first_seen,
                            last_seen: r.observed_at.max(old.last_seen),
                        },
                    );
                }
                None => {
                    d.resources.insert(
                        key.clone(),
                        StoredResource {
                            key,
                            resource: r.clone(),
                            first_seen: r.observed_at,
                            last_seen: r.observed_at,
                        },
                    );
                }
            }
        }
        self.points_seen
            .fetch_add(batch.points.len() as u64, Ordering::Relaxed);
        if !self.discard_points.load(Ordering::Relaxed) {
            for p in &batch.points {
                d.points
                    .entry(series_key(p))
                    .or_default()
                    .insert(p.ts, p.value);
            }
        }
        d.costs.extend(batch.costs.iter().cloned());
        Ok(IngestOutcome::Stored)
    }

    fn resources(&self, q: &ResourceQuery) -> Result<Page<StoredResource>, StoreError> {
        let slow = self.slow_ms.load(Ordering::Relaxed);
        if slow > 0 {
            std::thread::sleep(std::time::Duration::from_millis(slow));
        }
        let d = self.lock();
        let (field, desc) = match q.sort.as_deref() {
            None => ("key", false),
            Some(s) => match s.strip_prefix('-') {
                Some(f) => (f, true),
                None => (s, false),
            },
        };
        let sort_value = |r: &StoredResource| -> String {
            match field {
                "key" => String::new(),
                "name" => r.resource.name.clone(),
                "kind" => r.resource.kind.clone(),
                "last_seen" => format!("{:020}", r.last_seen.timestamp_micros()),
                "first_seen" => format!("{:020}", r.first_seen.timestamp_micros()),
                _ => unreachable!(),
            }
        };
        if !["key", "name", "kind", "last_seen", "first_seen"].contains(&field) {
            return Err(StoreError::BadRequest(format!("unknown sort `{field}`")));
        }
        let mut rows: Vec<(String, StoredResource)> = d
            .resources
            .values()
            .filter(|r| {
                let x = &r.resource;
                q.provider.as_ref().is_none_or(|v| *v == x.provider)
                    && q.account.as_ref().is_none_or(|v| *v == x.account)
                    && q.region.as_ref().is_none_or(|v| *v == x.region)
                    && q.kind.as_ref().is_none_or(|v| *v == x.kind)
                    && q.tags.iter().all(|(k, v)| x.tags.get(k) == Some(v))
                    && q.q.as_ref().is_none_or(|s| {
                        let s = s.to_lowercase();
                        x.name.to_lowercase().contains(&s) || x.id.to_lowercase().contains(&s)
                    })
            })
            .map(|r| (format!("{}\u{1}{}", sort_value(r), r.key), r.clone()))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if desc {
            rows.reverse();
            // Keyset on the reversed order: invert the cursor comparison by mapping keys.
            let limit = q.page.limit() as usize;
            let mut out: Vec<(String, StoredResource)> = rows
                .into_iter()
                .filter(|(k, _)| q.page.cursor.as_ref().is_none_or(|c| k < c))
                .take(limit + 1)
                .collect();
            let next_cursor = if out.len() > limit {
                out.truncate(limit);
                out.last().map(|(k, _)| k.clone())
            } else {
                None
            };
            return Ok(Page {
                items: out.into_iter().map(|(_, r)| r).collect(),
                next_cursor,
            });
        }
        Ok(page_of(rows.into_iter(), &q.page))
    }

    fn resource(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        Ok(self.lock().resources.get(key).cloned())
    }

    fn resource_history(&self, key: &str) -> Result<Vec<ResourceChange>, StoreError> {
        Ok(self.lock().history.get(key).cloned().unwrap_or_default())
    }

    fn series(&self, q: &SeriesQuery) -> Result<Page<SeriesInfo>, StoreError> {
        let d = self.lock();
        let rows = MemStore::series_matching(&d, q).filter_map(|(k, pts)| {
            Some((
                series_cursor(k),
                SeriesInfo {
                    key: k.clone(),
                    first_ts: *pts.keys().next()?,
                    last_ts: *pts.keys().next_back()?,
                    points: pts.len() as u64,
                },
            ))
        });
        Ok(page_of(rows, &q.page))
    }

    fn points(&self, q: &PointsQuery) -> Result<Page<SeriesPoints>, StoreError> {
        if q.start >= q.end {
            return Err(StoreError::BadRequest("start must be before end".into()));
        }
        let d = self.lock();
        let rows = MemStore::series_matching(&d, &q.series).filter_map(|(k, pts)| {
            let in_range: Vec<(DateTime<Utc>, f64)> =
                pts.range(q.start..q.end).map(|(t, v)| (*t, *v)).collect();
            if in_range.is_empty() {
                return None;
            }
            let points = match q.step_s {
                None => in_range,
                Some(step) => {
                    let step = step as i64;
                    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                    for (t, v) in in_range {
                        buckets
                            .entry(t.timestamp().div_euclid(step))
                            .or_default()
                            .push(v);
                    }
                    buckets
                        .into_iter()
                        .map(|(b, vs)| {
                            let v = match q.agg.unwrap_or(Stat::Avg) {
                                Stat::Max => vs.iter().copied().fold(f64::MIN, f64::max),
                                Stat::Min => vs.iter().copied().fold(f64::MAX, f64::min),
                                Stat::Sum => vs.iter().sum(),
                                Stat::Count => vs.len() as f64,
                                Stat::Last => *vs.last().unwrap(),
                                _ => vs.iter().sum::<f64>() / vs.len() as f64,
                            };
                            (Utc.timestamp_opt((b + 1) * step, 0).unwrap(), v)
                        })
                        .collect()
                }
            };
            Some((
                series_cursor(k),
                SeriesPoints {
                    key: k.clone(),
                    points,
                },
            ))
        });
        Ok(page_of(rows, &q.series.page))
    }

    fn cost_lines(&self, q: &CostLineQuery) -> Result<Page<Cost>, StoreError> {
        // The position in the list, from 1, stands for the embedded store's rowid.
        let after = q.after()? as usize;
        let limit = q.limit() as usize;
        if let Some(s) = q.source.as_deref() {
            if skymeter_model::CostSource::parse(s).is_none() {
                return Err(StoreError::BadRequest(format!(
                    "unknown cost source `{s}`; use billed, estimated or rated"
                )));
            }
        }
        let d = self.lock();
        let mut items = Vec::new();
        let mut last = after;
        for (i, c) in d.costs.iter().enumerate().skip(after) {
            if items.len() == limit {
                break;
            }
            let provider_ok = q.provider.as_deref().is_none_or(|p| {
                p.eq_ignore_ascii_case(&c.provider_name)
                    || p.eq_ignore_ascii_case(&skymeter_model::provider::slug(&c.provider_name))
            });
            if q.start.is_some_and(|s| c.charge_period_start < s)
                || q.end.is_some_and(|e| c.charge_period_start >= e)
                || q.source
                    .as_deref()
                    .is_some_and(|s| s != c.x_source.as_str())
                || !provider_ok
            {
                continue;
            }
            items.push(c.clone());
            last = i + 1;
        }
        let next_cursor = (items.len() == limit).then(|| last.to_string());
        Ok(Page { items, next_cursor })
    }

    fn costs(&self, q: &CostQuery) -> Result<Vec<CostGroup>, StoreError> {
        let d = self.lock();
        let mut groups: BTreeMap<BTreeMap<String, String>, CostGroup> = BTreeMap::new();
        for c in &d.costs {
            if q.start.is_some_and(|s| c.charge_period_end <= s)
                || q.end.is_some_and(|e| c.charge_period_start >= e)
            {
                continue;
            }
            let source = c.x_source.as_str();
            if q.source.as_deref().is_some_and(|s| s != source) {
                continue;
            }
            if q.provider.as_deref().is_some_and(|p| p != c.provider_name) {
                continue;
            }
            let mut g = BTreeMap::new();
            for name in &q.group_by {
                let v = match name.as_str() {
                    "provider" => c.provider_name.clone(),
                    "service" => c.service_name.clone(),
                    "account" => c.sub_account_id.clone().unwrap_or_default(),
                    "region" => c.region_id.clone().unwrap_or_default(),
                    "resource" => c.resource_id.clone().unwrap_or_default(),
                    "category" => format!("{:?}", c.charge_category),
                    "source" => source.to_string(),
                    "currency" => c.billing_currency.clone(),
                    "day" => c.charge_period_start.format("%Y-%m-%d").to_string(),
                    "month" => c.charge_period_start.format("%Y-%m").to_string(),
                    other => {
                        return Err(StoreError::BadRequest(format!("unknown group `{other}`")))
                    }
                };
                g.insert(name.clone(), v);
            }
            let e = groups.entry(g.clone()).or_insert(CostGroup {
                group: g,
                billed_cost: 0.0,
                effective_cost: 0.0,
                currency: c.billing_currency.clone(),
                lines: 0,
                oldest_price_date: None,
            });
            e.billed_cost += c.billed_cost;
            e.effective_cost += c.effective_cost;
            e.lines += 1;
            if let Some(d) = &c.x_price_date {
                if e.oldest_price_date.as_ref().is_none_or(|o| d < o) {
                    e.oldest_price_date = Some(d.clone());
                }
            }
        }
        Ok(groups.into_values().collect())
    }

    fn register_agent(&self, a: &AgentRegistration, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut d = self.lock();
        let registered = d.agents.get(&a.id).map_or(now, |x| x.1);
        d.agents.insert(
            a.id.clone(),
            (a.clone(), registered, now, Heartbeat::default()),
        );
        Ok(())
    }

    fn heartbeat(
        &self,
        id: &str,
        stats: &Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut d = self.lock();
        match d.agents.get_mut(id) {
            Some(a) => {
                a.2 = now;
                a.3 = stats.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn agents(
        &self,
        page: &PageQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<AgentRecord>, StoreError> {
        let d = self.lock();
        let rows = d.agents.iter().map(|(id, (reg, at, last, hb))| {
            (
                id.clone(),
                AgentRecord {
                    registration: reg.clone(),
                    registered_at: *at,
                    last_heartbeat: *last,
                    last_heartbeat_stats: hb.clone(),
                    status: AgentStatus::at(now, *last, reg.heartbeat_interval_s),
                },
            )
        });
        Ok(page_of(rows, page))
    }

    fn create_token(
        &self,
        name: &str,
        scopes: &[Scope],
    ) -> Result<(String, TokenInfo), StoreError> {
        let token = format!("skm_{}", uuid::Uuid::now_v7().simple());
        let info = TokenInfo {
            id: token[..12].to_string(),
            name: name.into(),
            scopes: scopes.to_vec(),
            created_at: Utc::now(),
        };
        self.lock().tokens.insert(hash(&token), info.clone());
        Ok((token, info))
    }

    fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, StoreError> {
        Ok(self.lock().tokens.get(&hash(token)).cloned())
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self.lock().tokens.values().cloned().collect())
    }

    fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut d = self.lock();
        let before = d.tokens.len();
        d.tokens.retain(|_, t| t.id != id);
        Ok(d.tokens.len() < before)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(StoreError::Io {
                path: "/data/skymeter/check".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let d = self.lock();
        Ok(StoreStats {
            resources: d.resources.len() as u64,
            series: d.points.len() as u64,
            points: d.points.values().map(|p| p.len() as u64).sum(),
            costs: d.costs.len() as u64,
            agents: d.agents.len() as u64,
            batches: d.batches.len() as u64,
            ..Default::default()
        })
    }

    fn delete_costs(
        &self,
        source: skymeter_model::CostSource,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut d = self.lock();
        let n = d.costs.len();
        d.costs.retain(|c| {
            !(c.x_source == source && c.charge_period_start >= start && c.charge_period_start < end)
        });
        Ok((n - d.costs.len()) as u64)
    }

    fn server_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().server_state.get(key).cloned())
    }

    fn put_server_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lock()
            .server_state
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn enforce_retention(&self, before: DateTime<Utc>) -> Result<RetentionReport, StoreError> {
        let mut d = self.lock();
        let mut r = RetentionReport::default();
        for pts in d.points.values_mut() {
            let keep = pts.split_off(&before);
            r.points += pts.len() as u64;
            *pts = keep;
        }
        d.points.retain(|_, p| !p.is_empty());
        let n = d.costs.len();
        d.costs.retain(|c| c.charge_period_end > before);
        r.costs = (n - d.costs.len()) as u64;
        let n = d.resources.len();
        d.resources.retain(|_, x| x.last_seen >= before);
        r.resources = (n - d.resources.len()) as u64;
        Ok(r)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
