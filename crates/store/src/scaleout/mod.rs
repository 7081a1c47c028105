//! The scale-out backend: metadata in PostgreSQL ([`PgMeta`]), points in a
//! Prometheus-compatible TSDB, written by remote-write through a [`PointWriter`] and read
//! back through the TSDB's query API ([`tsdb::TsdbQuery`]). It keeps nothing on the
//! server's own disk but the writer's queue, so any number of servers can share one
//! database and one TSDB behind a load balancer (`skymeter server --metadata postgres://…
//! --tsdb remote-write=URL,query=URL`).
//!
//! A batch is stored in this order:
//! 1. its id is looked up in PostgreSQL: a batch any server stored before is a duplicate
//!    (or a conflict when its content differs), and nothing is written;
//! 2. its points go to the writer, which returns once they are in its on-disk queue
//!    (delivered to the TSDB with retries while the TSDB is away);
//! 3. its id, series, resources and cost lines are committed in one transaction.
//!
//! A crash between 2 and 3 leaves the points queued and the batch not recorded: the
//! agent's retry stores it again, and the TSDB receives the same samples twice, which both
//! Prometheus and VictoriaMetrics keep once (same series, time and value). Two servers
//! given the same batch at once both queue its points; only one commits it.
//!
//! Differences from the embedded store, by design:
//! - a series' resource labels (`kind`, `resource_name`, `tag_*`) are those of the
//!   resource when the points were written, as with any Prometheus relabeling; the
//!   embedded store shows the latest ones on old points too;
//! - point retention is the TSDB's own (`-retentionPeriod`, `--storage.tsdb.retention.time`);
//!   `enforce_retention` removes metadata only;
//! - values go through the TSDB's number format: VictoriaMetrics keeps about 15 significant
//!   digits, Prometheus every bit.

pub mod meta;
pub mod tsdb;

use crate::embedded::codec::{from_ns, to_ns_saturating};
use crate::prom::{series_labels, PromMetric, RESERVED};
use crate::store::Store;
use crate::types::{
    AgentRecord, CostGroup, CostLineQuery, CostQuery, IngestOutcome, Page, PageQuery, PointsQuery,
    ResourceChange, ResourceQuery, RetentionReport, Scope, SeriesInfo, SeriesKey, SeriesPoints,
    SeriesQuery, StoreError, StoreStats, StoredResource, TokenInfo,
};
use chrono::{DateTime, Utc};
pub use meta::PgMeta;
use parking_lot::Mutex;
use skymeter_model::api::{AgentRegistration, Heartbeat};
use skymeter_model::{Batch, Cost};
use skymeter_promql::{Labels, MatchOp, Matcher, QueryError, SelectBudget, Series};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use tsdb::TsdbQuery;

/// Where the points of stored batches go: `write` returns once the batch's points are
/// durably queued for the TSDB (on disk, delivered with retries), so that a batch the
/// server acknowledges is not lost when the TSDB is down. The batch carries the resource
/// records of its points, for their labels.
pub trait PointWriter: Send + Sync + 'static {
    fn write(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Waits until everything written so far is delivered or on disk (at shutdown).
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What to open: the metadata database and the TSDB's query API.
#[derive(Debug, Clone)]
pub struct ScaleOutOptions {
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
    pub metadata_url: String,
    /// Base URL of the TSDB's Prometheus query API.
    pub query_url: String,
    /// Most PostgreSQL connections this server holds.
    pub max_connections: u32,
}

pub struct ScaleOutStore {
    meta: PgMeta,
    tsdb: TsdbQuery,
    writer: Box<dyn PointWriter>,
    catalog: Mutex<Catalog>,
}

/// What this server knows of the series catalog: the ids it has seen there (their rows
/// exist, so a batch of them writes no key), and the extents of those series gathered since
/// they were last written. A batch of new series inserts them in its own transaction; the
/// extents of known ones are written with a batch at most every [`EXTENT_FLUSH`], and before
/// this server answers a series or points read, so that its own answers are exact and other
/// servers' lag by at most that. Writing every batch's extents made PostgreSQL the
/// bottleneck: 60 µs of its CPU per series per batch (docs/scaling.md).
#[derive(Default)]
struct Catalog {
    known: HashSet<String>,
    pending: HashMap<String, (SeriesKey, i64, i64, i64)>,
    flushed: Option<Instant>,
}

/// How often a server writes the extents of known series while batches come in.
const EXTENT_FLUSH: Duration = Duration::from_secs(5);

/// Ids kept in [`Catalog::known`] at most (about 100 bytes each); past it the set starts
/// over and the next batch of each series writes its key again (`ON CONFLICT`), which is
/// only slower.
const KNOWN_MAX: usize = 2_000_000;

impl ScaleOutStore {
    pub fn open(opts: &ScaleOutOptions, writer: Box<dyn PointWriter>) -> Result<Self, StoreError> {
        let tsdb = TsdbQuery::new(&opts.query_url)?;
        let meta = PgMeta::connect(&opts.metadata_url, opts.max_connections)?;
        Ok(ScaleOutStore {
            meta,
            tsdb,
            writer,
            catalog: Mutex::new(Catalog::default()),
        })
    }

    pub fn metadata(&self) -> &PgMeta {
        &self.meta
    }

    /// Adds extents to `pending` (a batch's, or ones whose write failed).
    fn restore(&self, extents: HashMap<String, (SeriesKey, i64, i64, i64)>) {
        let mut cat = self.catalog.lock();
        for (id, (key, first, last, n)) in extents {
            let e = cat.pending.entry(id).or_insert((key, first, last, 0));
            e.1 = e.1.min(first);
            e.2 = e.2.max(last);
            e.3 += n;
        }
    }

    /// Writes the pending extents now (before reads of the catalog, and at shutdown).
    fn flush_extents(&self) -> Result<(), StoreError> {
        let due = {
            let mut cat = self.catalog.lock();
            cat.flushed = Some(Instant::now());
            std::mem::take(&mut cat.pending)
        };
        if due.is_empty() {
            return Ok(());
        }
        meta::flush_extents(&self.meta, &extents_of(&due)).inspect_err(|_| self.restore(due))
    }

    /// The batch as the writer gets it: with the latest stored record of every resource
    /// its points name but it does not carry, so that their series get the same resource
    /// labels as the server's query API gives them.
    fn with_point_resources(&self, batch: &Batch) -> Result<Option<Batch>, StoreError> {
        let carried: BTreeSet<String> = batch
            .resources
            .iter()
            .map(|r| r.reference().key())
            .collect();
        let missing: BTreeSet<String> = batch
            .points
            .iter()
            .map(|p| p.resource.key())
            .filter(|k| !carried.contains(k))
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = missing.into_iter().collect();
        let found = self.meta.resources_by_key(&keys)?;
        if found.is_empty() {
            return Ok(None);
        }
        let mut b = batch.clone();
        b.resources.extend(found);
        Ok(Some(b))
    }

    /// The TSDB series of one skymeter series: the labels its key gives, resource labels
    /// aside (they may have changed while the series was written).
    fn select_key(
        &self,
        key: &SeriesKey,
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        let own = series_labels(key, None);
        let matchers: Vec<Matcher> = own
            .iter()
            .map(|(n, v)| Matcher::new(MatchOp::Equal, n, v))
            .collect::<Result<_, _>>()
            .map_err(|e| QueryError::internal(format!("a series' labels: {e}")))?;
        let found = self.tsdb.select(&matchers, start_ms, end_ms, budget)?;
        Ok(found
            .into_iter()
            .filter(|s| without_resource_labels(&s.labels) == own)
            .collect())
    }
}

fn extents_of(m: &HashMap<String, (SeriesKey, i64, i64, i64)>) -> Vec<meta::SeriesExtent<'_>> {
    m.iter()
        .map(|(id, (key, first, last, n))| meta::SeriesExtent {
            id: id.clone(),
            key,
            first: *first,
            last: *last,
            points: *n,
        })
        .collect()
}

/// A series' labels without those taken from its resource's record.
fn without_resource_labels(labels: &Labels) -> Labels {
    Labels::from_pairs(
        labels
            .iter()
            .filter(|(n, _)| {
                RESERVED.contains(n)
                    || !(*n == "kind" || *n == "resource_name" || n.starts_with("tag_"))
            })
            .map(|(n, v)| (n.to_string(), v.to_string())),
    )
}

fn internal(e: QueryError) -> StoreError {
    StoreError::Database(format!("reading points from the TSDB: {e}"))
}

impl Store for ScaleOutStore {
    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        let hash = batch.content_hash();
        let outcome = |stored: Vec<u8>| {
            if stored == hash {
                IngestOutcome::Duplicate
            } else {
                IngestOutcome::Conflict
            }
        };
        if let Some(stored) = self.meta.batch_hash(batch.batch_id)? {
            return Ok(outcome(stored));
        }
        for (i, p) in batch.points.iter().enumerate() {
            if p.ts.timestamp_nanos_opt().is_none() {
                return Err(StoreError::BadRequest(format!(
                    "points[{i}].ts {} is outside the years 1677-2262 the store can keep",
                    p.ts
                )));
            }
        }
        let extents = meta::series_extents(batch);
        if !batch.points.is_empty() {
            match self.with_point_resources(batch)? {
                Some(b) => self.writer.write(&b)?,
                None => self.writer.write(batch)?,
            }
        }
        // New series go in with the batch. The extents of known ones wait in `pending`
        // once the batch is stored, and are written with a batch when the last write is
        // old enough (this batch's own with them).
        type Extents = HashMap<String, (SeriesKey, i64, i64, i64)>;
        let (new, mut mine, due) = {
            let mut cat = self.catalog.lock();
            let mut new = Vec::new();
            let mut mine: Extents = HashMap::new();
            for (key, first, last, n) in extents {
                let id = meta::series_id(&key);
                if cat.known.contains(&id) {
                    mine.insert(id, (key, first, last, n));
                } else {
                    new.push((id, key, first, last, n));
                }
            }
            let due = cat.flushed.is_none_or(|t| t.elapsed() >= EXTENT_FLUSH);
            let due: Option<Extents> = due.then(|| {
                cat.flushed = Some(Instant::now());
                std::mem::take(&mut cat.pending)
            });
            (new, mine, due)
        };
        let series: Vec<meta::SeriesExtent<'_>> = new
            .iter()
            .map(|(id, key, first, last, n)| meta::SeriesExtent {
                id: id.clone(),
                key,
                first: *first,
                last: *last,
                points: *n,
            })
            .collect();
        let widen = match &due {
            Some(due) => {
                let mut all = extents_of(due);
                all.extend(extents_of(&mine));
                all
            }
            None => Vec::new(),
        };
        let applied = self.meta.apply_batch(batch, &hash, &series, &widen);
        drop(widen);
        if !matches!(applied, Ok(None)) {
            // Not stored (another server had it, or the write failed): this batch's
            // extents do not count; those taken from `pending` go back.
            if let Some(due) = due {
                self.restore(due);
            }
            return applied.map(|stored| outcome(stored.unwrap_or_default()));
        }
        let mut cat = self.catalog.lock();
        if cat.known.len() + new.len() > KNOWN_MAX {
            cat.known.clear();
        }
        cat.known.extend(new.into_iter().map(|(id, ..)| id));
        drop(cat);
        if due.is_none() {
            self.restore(std::mem::take(&mut mine));
        }
        Ok(IngestOutcome::Stored)
    }

    fn resources(&self, q: &ResourceQuery) -> Result<Page<StoredResource>, StoreError> {
        self.meta.resources(q)
    }

    fn resource(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        self.meta.resource(key)
    }

    fn resource_history(&self, key: &str) -> Result<Vec<ResourceChange>, StoreError> {
        self.meta.resource_history(key)
    }

    fn series(&self, q: &SeriesQuery) -> Result<Page<SeriesInfo>, StoreError> {
        self.flush_extents()?;
        self.meta.series(q)
    }

    fn points(&self, q: &PointsQuery) -> Result<Page<SeriesPoints>, StoreError> {
        self.points_limited(q, u64::MAX)
    }

    fn points_limited(
        &self,
        q: &PointsQuery,
        max_points: u64,
    ) -> Result<Page<SeriesPoints>, StoreError> {
        let (step, agg) = crate::embedded::tsdb::points_step(q)?;
        self.flush_extents()?;
        let page = self.meta.series(&q.series)?;
        let (start_ms, end_ms) = (q.start.timestamp_millis(), q.end.timestamp_millis() - 1);
        let mut items = Vec::with_capacity(page.items.len());
        let mut read = 0u64;
        let mut next_cursor = page.next_cursor.clone();
        for (i, info) in page.items.iter().enumerate() {
            let budget = SelectBudget {
                samples_left: usize::try_from(max_points.saturating_sub(read))
                    .unwrap_or(usize::MAX),
                max_samples: usize::try_from(max_points).unwrap_or(usize::MAX),
                ..SelectBudget::unlimited()
            };
            let found = match self.select_key(&info.key, start_ms, end_ms, &budget) {
                Ok(f) => f,
                Err(e) if e.limit.is_some() && read == 0 && i == 0 => {
                    return Err(StoreError::BadRequest(format!(
                        "series {} {} of {} has more than {max_points} points between {} and {}, the \
                         server's limit of raw points read per page (`max_samples` in `[server.query]`, \
                         counted before any `step` downsampling); ask for a shorter range",
                        info.key.metric,
                        info.key.stat.as_str(),
                        info.key.resource.key(),
                        q.start.to_rfc3339(),
                        q.end.to_rfc3339()
                    )))
                }
                Err(e) if e.limit.is_some() => {
                    // The page ends before this series; the cursor resumes at it.
                    next_cursor = (i > 0).then(|| {
                        crate::embedded::codec::encode_cursor(
                            &serde_json::json!({"kind": "series", "k": meta::series_id(&page.items[i - 1].key)}),
                        )
                    });
                    break;
                }
                Err(e) => return Err(internal(e)),
            };
            let mut samples: Vec<(i64, f64)> = found
                .iter()
                .flat_map(|s| s.timestamps.iter().copied().zip(s.values.iter().copied()))
                .collect();
            samples.sort_by_key(|(t, _)| *t);
            samples.dedup_by_key(|(t, _)| *t);
            read += samples.len() as u64;
            if samples.is_empty() {
                continue;
            }
            let points = match step {
                None => samples
                    .iter()
                    .map(|(t, v)| (from_ns(t.saturating_mul(1_000_000)), *v))
                    .collect(),
                Some(step) => {
                    let ts: Vec<i64> = samples
                        .iter()
                        .map(|(t, _)| t.saturating_mul(1_000_000))
                        .collect();
                    let vals: Vec<f64> = samples.iter().map(|(_, v)| *v).collect();
                    crate::embedded::tsdb::downsample(&ts, &vals, step, agg)
                }
            };
            items.push(SeriesPoints {
                key: info.key.clone(),
                points,
            });
        }
        Ok(Page { items, next_cursor })
    }

    fn costs(&self, q: &CostQuery) -> Result<Vec<CostGroup>, StoreError> {
        self.meta.costs(q)
    }

    fn cost_lines(&self, q: &CostLineQuery) -> Result<Page<Cost>, StoreError> {
        self.meta.cost_lines(q)
    }

    fn register_agent(&self, a: &AgentRegistration, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.meta.register_agent(a, to_ns_saturating(now))
    }

    fn heartbeat(
        &self,
        id: &str,
        stats: &Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.meta.heartbeat(id, stats, to_ns_saturating(now))
    }

    fn agents(
        &self,
        page: &PageQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<AgentRecord>, StoreError> {
        self.meta.agents(page, now)
    }

    fn agent_registration(&self, id: &str) -> Result<Option<AgentRegistration>, StoreError> {
        self.meta.agent_registration(id)
    }

    fn create_token(
        &self,
        name: &str,
        scopes: &[Scope],
    ) -> Result<(String, TokenInfo), StoreError> {
        self.meta.create_token(name, scopes, Utc::now())
    }

    fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, StoreError> {
        self.meta.authenticate(token)
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.meta.tokens()
    }

    fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        self.meta.revoke_token(id)
    }

    fn check(&self) -> Result<(), StoreError> {
        self.meta.check()?;
        self.tsdb.check()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.flush_extents()?;
        let ([resources, costs, agents, batches], series, points, disk_bytes) =
            self.meta.counts()?;
        Ok(StoreStats {
            resources,
            series,
            points,
            costs,
            agents,
            batches,
            disk_bytes,
            point_block_bytes: 0,
            point_block_points: 0,
        })
    }

    fn enforce_retention(&self, before: DateTime<Utc>) -> Result<RetentionReport, StoreError> {
        let (costs, resources, series) = self.meta.retention(to_ns_saturating(before))?;
        Ok(RetentionReport {
            points: 0,
            costs,
            resources,
            series,
        })
    }

    fn delete_costs(
        &self,
        source: skymeter_model::CostSource,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.meta.delete_costs(
            source.as_str(),
            to_ns_saturating(start),
            to_ns_saturating(end),
        )
    }

    fn server_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.meta.server_state(key)
    }

    fn put_server_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.meta.put_server_state(key, value)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_extents()?;
        self.writer.flush()
    }

    fn prom_select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        self.tsdb.select(matchers, start_ms, end_ms, budget)
    }

    fn prom_series(
        &self,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StoreError> {
        self.tsdb.series(selectors, start_ms, end_ms)
    }

    fn prom_label_names(
        &self,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.tsdb.label_names(selectors, start_ms, end_ms)
    }

    fn prom_label_values(
        &self,
        name: &str,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.tsdb.label_values(name, selectors, start_ms, end_ms)
    }

    fn prom_metrics(&self) -> Result<Vec<PromMetric>, StoreError> {
        self.meta
            .prom_metrics()?
            .into_iter()
            .map(|(name, metric, unit)| {
                let unit = serde_json::from_value(serde_json::Value::String(unit.clone()))
                    .map_err(|e| StoreError::Corrupt {
                        path: "PostgreSQL metadata".into(),
                        message: format!("series of {metric} have an unknown unit `{unit}` ({e})"),
                    })?;
                Ok(PromMetric { name, metric, unit })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
