//! The embedded backend: everything in one data directory, no external service.
//!
//! ```text
//! <dir>/LOCK            held (flock) while a process has the store open
//! <dir>/meta.sqlite     resources, history, costs, agents, tokens, batch ids, series index
//! <dir>/wal/*.log       write-ahead log of whole batches since the last seal
//! <dir>/blocks/*.blk    sealed, compressed points; immutable
//! ```
//!
//! Write path ([`Store::ingest`]): dedupe check → resolve series ids → append one WAL record
//! (under the commit lock, no sync) → group-commit fsync → apply, in WAL order, to the
//! in-memory head (points) and to SQLite (everything else, one transaction) → return. A
//! failure after the append poisons the store (it answers errors until reopened, and the
//! reopen replays the WAL), because at that point the batch may be durable and the only
//! correct outcomes left are "stored" or "stored after replay".
//!
//! Points then move, in the background or on [`Store::flush`], from the head into block
//! files (seal), which compaction merges into larger ones; see `tsdb.rs`.
//! See the crate's README.md for the on-disk formats and crash semantics.

mod block;
mod chunk;
mod chunk_cache;
pub(crate) mod codec;
mod head;
mod index;
mod inner;
pub(crate) mod meta;
mod options;
mod prom;
mod record;
pub(crate) mod series;
mod symbols;
pub mod tokens;
pub(crate) mod tsdb;
mod wal;

#[cfg(test)]
pub(crate) mod tests;

use crate::types::{
    AgentRecord, CostGroup, CostLineQuery, CostQuery, ExtentFn, IngestOutcome, Page, PageQuery,
    PointsQuery, ResourceChange, ResourceQuery, RetentionReport, ScanFn, Scope, SeriesInfo,
    SeriesKey, SeriesPoints, SeriesQuery, SeriesScan, StoreError, StoreStats, StoredResource,
    TokenInfo,
};
use crate::Store;
use chrono::{DateTime, Utc};
use chunk_cache::ChunkCache;
use codec::to_ns;
use head::Head;
use index::Index;
use inner::{Commit, Heads, Inner};
use meta::{BatchView, Meta};
pub use options::EmbeddedOptions;
use parking_lot::{Condvar, Mutex, RwLock};
use series::KeyHasher;
use skymeter_model::api::{AgentRegistration, Heartbeat};
use skymeter_model::{Batch, Cost};
use std::collections::HashSet;
use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal::{io_err, GroupSync, WalWriter};

/// The embedded store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    background: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `opts.dir`: loads the block indexes and the
    /// series index, replays the WAL since the last seal, and starts a fresh WAL segment.
    pub fn open(opts: EmbeddedOptions) -> Result<Self, StoreError> {
        let inner = Arc::new(Inner::open(opts)?);
        let background = if inner.opts.background {
            let bg = inner.clone();
            Some(
                std::thread::Builder::new()
                    .name("skymeter-store".into())
                    .spawn(move || bg.background_loop())
                    .map_err(|e| io_err(&inner.opts.dir, e))?,
            )
        } else {
            None
        };
        Ok(EmbeddedStore { inner, background })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.opts.dir
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.background.take() {
            let _ = h.join();
        }
    }
}

/// Removes the caller's batch id from the in-flight set when it is done.
struct InflightGuard<'a> {
    inner: &'a Inner,
    id: uuid::Uuid,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.inner.inflight.lock().remove(&self.id);
        self.inner.inflight_cv.notify_all();
    }
}

impl Inner {
    fn open(opts: EmbeddedOptions) -> Result<Inner, StoreError> {
        tsdb::tune_allocator();
        let dir = opts.dir.clone();
        let wal_dir = dir.join("wal");
        let blocks_dir = dir.join("blocks");
        for d in [&dir, &wal_dir, &blocks_dir] {
            fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
        }
        let lock_path = dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(|e| io_err(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Io {
                path: dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "the data directory is in use by another skymeter process; stop it or choose another directory",
                ),
            });
        }

        let meta = Meta::open(&dir.join("meta.sqlite"))?;
        let blocks = tsdb::load_blocks(&blocks_dir)?;
        let next_block_id = blocks.iter().map(|b| b.id).max().unwrap_or(0) + 1;
        let sealed = (meta.state("sealed_seq")?.unwrap_or(0) as u64)
            .max(blocks.iter().map(|b| b.max_seq).max().unwrap_or(0));

        let hasher = KeyHasher::default();
        let mut index = Index::new(hasher.clone());
        index.set_resources(meta.resource_labels()?);
        for (id, key) in meta.load_series()? {
            index.insert(id, &key);
        }

        // Replay.
        let mut segments = wal::list_segments(&wal_dir)?;
        let mut head = Head::default();
        // Points that retention dropped from the head are still in the WAL: keep them out.
        let retained_from = meta.state("retention_before")?.unwrap_or(i64::MIN);
        let mut last_seq = sealed;
        let mut replayed = (0usize, 0usize);
        wal::replay(&segments, |payload, path, offset| {
            let bad = |m: String| {
                StoreError::Corrupt {
                path: path.display().to_string(),
                message: format!("WAL record at byte offset {offset} passes its checksum but cannot be decoded ({m})"),
            }
            };
            let rec = record::decode(payload).map_err(bad)?;
            for (id, key) in &rec.new_series {
                index.insert(*id, key);
            }
            if rec.seq > sealed {
                for i in 0..rec.ids.len() {
                    if !index.contains(rec.ids[i]) {
                        return Err(bad(format!("point of unknown series {}", rec.ids[i])));
                    }
                    if rec.ts[i] >= retained_from {
                        head.push(rec.ids[i], rec.ts[i], rec.vals[i]);
                    }
                }
                replayed.0 += 1;
            }
            if !meta.has_batch(rec.batch_id)? {
                let m: record::MetaOwned =
                    serde_json::from_slice(rec.meta_json).map_err(|e| bad(e.to_string()))?;
                let new: Vec<(u64, &SeriesKey)> =
                    rec.new_series.iter().map(|(id, k)| (*id, k)).collect();
                meta.apply_batch(
                    &BatchView {
                        id: rec.batch_id,
                        agent_id: &m.agent_id,
                        task: &m.task,
                        collected_at: m.collected_at,
                        received_at: rec.received_at,
                        resources: &m.resources,
                        costs: &m.costs,
                        errors: &m.errors,
                        points: rec.ids.len(),
                        content_hash: m.content_hash,
                    },
                    &new,
                )?;
                replayed.1 += 1;
            }
            last_seq = last_seq.max(rec.seq);
            Ok(())
        })?;
        if replayed != (0, 0) {
            tracing::info!(
                dir = %dir.display(), records = replayed.0, applied_to_metadata = replayed.1,
                "replayed the WAL"
            );
        }

        // Ids of series removed before are not handed out again (see `series.rs`).
        index.reserve_below(meta.state("next_series_id")?.unwrap_or(0).max(0) as u64);
        // Series without points: emptied by a retention whose removal did not reach SQLite
        // before a crash, or defined again by WAL records replayed above (their points fell
        // before `retention_before`). They go now, so a restart does not bring them back.
        let empty = tsdb::empty_series(&index, blocks.iter(), &[&head]);
        if !empty.is_empty() {
            meta.delete_series(&empty, index.next_id())?;
            index.remove(&empty);
            tracing::info!(dir = %dir.display(), series = empty.len(), "removed series without points");
        }

        let replayed_any = last_seq > sealed;
        let mut next_seq = last_seq + 1;
        if let Some(last) = segments.last() {
            next_seq = next_seq.max(last.first_seq);
            if last.first_seq == next_seq {
                segments.pop(); // an empty segment: append to it
            }
        }
        let wal = WalWriter::create(&wal_dir, next_seq, segments)?;
        let sync = GroupSync::new(wal.file(), wal_dir.clone(), next_seq - 1);

        Ok(Inner {
            blocks_dir,
            _lock: lock,
            meta,
            commit: Mutex::new(Commit {
                wal,
                next_seq,
                bytes_since_seal: 0,
                first_since_seal: replayed_any.then(Instant::now),
            }),
            sync,
            applied: Mutex::new(next_seq - 1),
            applied_cv: Condvar::new(),
            hasher,
            index: RwLock::new(index),
            chunk_cache: ChunkCache::new(opts.query_cache_bytes),
            head: RwLock::new(Heads {
                active: head,
                frozen: None,
            }),
            blocks: RwLock::new(Arc::new(blocks.into_iter().map(Arc::new).collect())),
            next_block_id: AtomicU64::new(next_block_id),
            sealed_seq: AtomicU64::new(sealed),
            maintenance: Mutex::new(()),
            inflight: Mutex::new(HashSet::new()),
            inflight_cv: Condvar::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            opts,
        })
    }

    fn check_failed(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            let msg = self.failure.lock().clone().unwrap_or_default();
            return Err(StoreError::Io {
                path: self.opts.dir.display().to_string(),
                source: std::io::Error::other(format!(
                    "the store stopped accepting writes after an earlier failure ({msg}); restart the server to \
                     reopen it (no acknowledged batch is lost)"
                )),
            });
        }
        Ok(())
    }

    fn fail(&self, e: &StoreError) {
        tracing::error!(error = %e, "storage write failed after the WAL append; refusing writes until reopened");
        *self.failure.lock() = Some(e.to_string());
        self.failed.store(true, Ordering::Release);
        let _a = self.applied.lock();
        self.applied_cv.notify_all();
    }

    /// Claims `id` for this caller; waits while another ingest of the same id is in flight.
    fn claim(&self, id: uuid::Uuid) -> InflightGuard<'_> {
        let mut set = self.inflight.lock();
        while set.contains(&id) {
            self.inflight_cv.wait(&mut set);
        }
        set.insert(id);
        InflightGuard { inner: self, id }
    }

    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        self.check_failed()?;
        let content_hash = batch.content_hash();
        let _claim = self.claim(batch.batch_id);
        if let Some(stored) = self.meta.batch_hash(batch.batch_id)? {
            // Rows from before hashes were kept (None) can only be called duplicates.
            return Ok(match stored {
                Some(h) if h != content_hash => IngestOutcome::Conflict,
                _ => IngestOutcome::Duplicate,
            });
        }
        let received_at = codec::to_ns_saturating(chrono::Utc::now());
        let n = batch.points.len();
        let mut ts = Vec::with_capacity(n);
        let mut vals = Vec::with_capacity(n);
        let mut hashes = Vec::with_capacity(n);
        for (i, p) in batch.points.iter().enumerate() {
            ts.push(to_ns(p.ts).ok_or_else(|| {
                StoreError::BadRequest(format!(
                    "points[{i}].ts {} is outside the years 1677-2262 the store can keep",
                    p.ts
                ))
            })?);
            vals.push(p.value);
            hashes.push(self.hasher.hash_point(p));
        }
        let meta_json = serde_json::to_vec(&record::MetaRef {
            agent_id: &batch.agent_id,
            task: &batch.task,
            collected_at: batch.collected_at,
            window: batch.window,
            resources: &batch.resources,
            costs: &batch.costs,
            errors: &batch.errors,
            content_hash,
        })
        .map_err(|e| StoreError::BadRequest(format!("batch cannot be encoded: {e}")))?;

        let (seq, ids, new_series) = {
            let mut c = self.commit.lock();
            self.check_failed()?;
            let (ids, new_series) = self.resolve(&batch.points, &hashes);
            let seq = c.next_seq;
            let new_refs: Vec<(u64, &SeriesKey)> =
                new_series.iter().map(|(id, k)| (*id, &**k)).collect();
            let payload = record::Encoder {
                seq,
                batch_id: batch.batch_id,
                received_at,
                new_series: &new_refs,
                ids: &ids,
                ts: &ts,
                vals: &vals,
                meta_json: &meta_json,
            }
            .encode();
            let framed = wal::frame(&payload);
            if let Err(e) = c.wal.write(&framed) {
                self.fail(&e);
                return Err(e);
            }
            c.next_seq += 1;
            c.bytes_since_seal += framed.len() as u64;
            c.first_since_seal.get_or_insert_with(Instant::now);
            self.sync.mark_written(seq);
            (seq, ids, new_series)
        };

        let res = (|| {
            self.sync.sync_to(seq)?;
            self.wait_turn(seq)?;
            let res = self.apply(
                batch,
                content_hash,
                received_at,
                &ids,
                &ts,
                &vals,
                &new_series,
            );
            *self.applied.lock() = seq;
            self.applied_cv.notify_all();
            res
        })();
        if let Err(e) = res {
            self.fail(&e);
            return Err(e);
        }
        if self.head.read().active.points >= self.opts.head_max_points {
            if self.opts.background {
                self.wake.notify_all();
            } else if let Err(e) = self.seal() {
                // The batch is stored; the seal is retried on the next ingest or flush.
                tracing::error!(error = %e, "sealing the head into a block failed; will retry");
            }
        }
        Ok(IngestOutcome::Stored)
    }

    /// Series ids of the points, allocating new series. Called with the commit lock held,
    /// so a record never refers to a series defined by a record after it.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        points: &[skymeter_model::Point],
        hashes: &[u64],
    ) -> (Vec<u64>, Vec<(u64, Arc<SeriesKey>)>) {
        let mut ids = vec![0u64; points.len()];
        let mut missing = Vec::new();
        {
            let idx = self.index.read();
            for (i, p) in points.iter().enumerate() {
                match idx.find(hashes[i], p) {
                    Some(id) => ids[i] = id,
                    None => missing.push(i),
                }
            }
        }
        let mut new_series = Vec::new();
        if !missing.is_empty() {
            let mut idx = self.index.write();
            for i in missing {
                let p = &points[i];
                ids[i] = match idx.find(hashes[i], p) {
                    Some(id) => id,
                    None => {
                        let key = series::key_of(p);
                        let id = idx.allocate(hashes[i], &key);
                        new_series.push((id, Arc::new(key)));
                        id
                    }
                };
            }
        }
        (ids, new_series)
    }

    fn wait_turn(&self, seq: u64) -> Result<(), StoreError> {
        let mut a = self.applied.lock();
        while *a + 1 != seq {
            self.check_failed()?;
            self.applied_cv.wait(&mut a);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        batch: &Batch,
        content_hash: [u8; 32],
        received_at: i64,
        ids: &[u64],
        ts: &[i64],
        vals: &[f64],
        new_series: &[(u64, Arc<SeriesKey>)],
    ) -> Result<(), StoreError> {
        if !ids.is_empty() {
            let mut h = self.head.write();
            for i in 0..ids.len() {
                h.active.push(ids[i], ts[i], vals[i]);
            }
        }
        let new: Vec<(u64, &SeriesKey)> = new_series.iter().map(|(id, k)| (*id, &**k)).collect();
        self.meta.apply_batch(
            &BatchView {
                id: batch.batch_id,
                agent_id: &batch.agent_id,
                task: &batch.task,
                collected_at: batch.collected_at,
                received_at,
                resources: &batch.resources,
                costs: &batch.costs,
                errors: &batch.errors,
                points: ids.len(),
                content_hash: Some(content_hash),
            },
            &new,
        )?;
        // New series entered the index when their ids were allocated (`resolve`).
        if !batch.resources.is_empty() {
            let mut p = self.index.write();
            for r in &batch.resources {
                p.upsert_resource(
                    r.reference().key(),
                    codec::to_ns_saturating(r.observed_at),
                    crate::prom::ResourceLabels::of(r),
                );
            }
        }
        Ok(())
    }

    fn background_loop(&self) {
        let mut last_prune = Instant::now() - Duration::from_secs(3600);
        loop {
            {
                let mut stop = self.stop.lock();
                if *stop {
                    return;
                }
                self.wake.wait_for(&mut stop, Duration::from_secs(1));
                if *stop {
                    return;
                }
            }
            if self.failed.load(Ordering::Acquire) {
                continue;
            }
            let due = {
                let c = self.commit.lock();
                c.bytes_since_seal >= self.opts.wal_max_bytes
                    || c.first_since_seal
                        .is_some_and(|s| s.elapsed() >= self.opts.head_max_age)
            } || self.head.read().active.points >= self.opts.head_max_points;
            if due {
                if let Err(e) = self.seal().and_then(|_| self.compact_all()) {
                    tracing::error!(error = %e, "sealing the head into a block failed; will retry");
                }
            }
            if last_prune.elapsed() >= Duration::from_secs(3600) {
                last_prune = Instant::now();
                let before = chrono::Utc::now() - self.opts.dedupe_window;
                if let Err(e) = self.meta.prune_batches(codec::to_ns_saturating(before)) {
                    tracing::error!(error = %e, "pruning old batch ids failed");
                }
            }
        }
    }
}

impl Store for EmbeddedStore {
    fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        self.inner.ingest(batch)
    }

    fn resources(&self, q: &ResourceQuery) -> Result<Page<StoredResource>, StoreError> {
        self.inner.meta.resources(q)
    }

    fn resource(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        self.inner.meta.resource(key)
    }

    fn resource_history(&self, key: &str) -> Result<Vec<ResourceChange>, StoreError> {
        self.inner.meta.resource_history(key)
    }

    fn series(&self, q: &SeriesQuery) -> Result<Page<SeriesInfo>, StoreError> {
        self.inner.series_page(q)
    }

    fn points(&self, q: &PointsQuery) -> Result<Page<SeriesPoints>, StoreError> {
        self.inner.points_page(q, u64::MAX)
    }

    fn points_limited(
        &self,
        q: &PointsQuery,
        max_points: u64,
    ) -> Result<Page<SeriesPoints>, StoreError> {
        self.inner.points_page(q, max_points)
    }

    fn scan_points(&self, scan: &SeriesScan<'_>, f: ScanFn<'_>) -> Result<(), StoreError> {
        self.inner.scan_points(scan, f)
    }

    fn scan_extents(&self, scan: &SeriesScan<'_>, f: ExtentFn<'_>) -> Result<(), StoreError> {
        self.inner.scan_extents(scan, f)
    }

    fn costs(&self, q: &CostQuery) -> Result<Vec<CostGroup>, StoreError> {
        self.inner.meta.costs(q)
    }

    fn costs_many(&self, qs: &[CostQuery]) -> Result<Vec<Vec<CostGroup>>, StoreError> {
        let groups = self.inner.meta.costs_many(qs);
        // A month of a fleet's lines went through SQLite's pages and the grouping's maps,
        // freed now on this thread's allocator arena around the groups that live on: the
        // pages go back to the system (findings at 100,000 resources peaked 100–250 MiB
        // lower with this). Not after each series scan: with the scan threads running,
        // that cost about a second of page faults and TLB flushes a pass.
        tsdb::release_freed_memory();
        groups
    }

    fn cost_lines(&self, q: &CostLineQuery) -> Result<Page<Cost>, StoreError> {
        self.inner.meta.cost_lines(q)
    }

    fn for_each_cost_line(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        f: &mut dyn FnMut(&Cost),
    ) -> Result<(), StoreError> {
        self.inner.meta.for_each_cost_line(start, end, f)
    }

    fn register_agent(&self, a: &AgentRegistration, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner
            .meta
            .register_agent(a, codec::to_ns_saturating(now))
    }

    fn heartbeat(
        &self,
        id: &str,
        stats: &Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner
            .meta
            .heartbeat(id, stats, codec::to_ns_saturating(now))
    }

    fn agents(
        &self,
        page: &PageQuery,
        now: DateTime<Utc>,
    ) -> Result<Page<AgentRecord>, StoreError> {
        self.inner.meta.agents(page, now)
    }

    fn agent_registration(&self, id: &str) -> Result<Option<AgentRegistration>, StoreError> {
        self.inner.meta.agent_registration(id)
    }

    fn create_token(
        &self,
        name: &str,
        scopes: &[Scope],
    ) -> Result<(String, TokenInfo), StoreError> {
        self.inner.meta.create_token(name, scopes, Utc::now())
    }

    fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, StoreError> {
        self.inner.meta.authenticate(token)
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.inner.meta.tokens()
    }

    fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.meta.revoke_token(id)
    }

    /// Read-only and off the ingest path: the failure flag (an atomic), the WAL directory
    /// still there, and a read on a SQLite reader connection. No write, no store lock.
    fn check(&self) -> Result<(), StoreError> {
        self.inner.check_failed()?;
        let wal_dir = self.inner.opts.dir.join("wal");
        match fs::metadata(&wal_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io_err(
                    &wal_dir,
                    std::io::Error::other(
                        "not a directory; the data directory was changed under the server",
                    ),
                ))
            }
            Err(e) => return Err(io_err(&wal_dir, e)),
        }
        self.inner.meta.check()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats()
    }

    fn enforce_retention(&self, before: DateTime<Utc>) -> Result<RetentionReport, StoreError> {
        self.inner.enforce_retention(before)
    }

    fn delete_costs(
        &self,
        source: skymeter_model::CostSource,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.check_failed()?;
        self.inner.meta.delete_costs(
            source.as_str(),
            codec::to_ns_saturating(start),
            codec::to_ns_saturating(end),
        )
    }

    fn server_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.meta.server_state(key)
    }

    fn put_server_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.check_failed()?;
        self.inner.meta.put_server_state(key, value)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.check_failed()?;
        self.inner.seal()?;
        self.inner.compact_eagerly()
    }

    fn prom_select(
        &self,
        matchers: &[crate::prom::Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &crate::prom::SelectBudget,
    ) -> Result<Vec<crate::prom::Series>, crate::prom::QueryError> {
        self.inner.prom_select(matchers, start_ms, end_ms, budget)
    }

    fn prom_series(
        &self,
        selectors: &[Vec<crate::prom::Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<crate::prom::Labels>, StoreError> {
        self.inner.prom_series(selectors, start_ms, end_ms)
    }

    fn prom_metrics(&self) -> Result<Vec<crate::prom::PromMetric>, StoreError> {
        Ok(self.inner.prom_metrics())
    }
}

impl EmbeddedStore {
    /// Bytes of decoded chunks held for queries (`EmbeddedOptions::query_cache_bytes`).
    pub fn query_cache_bytes(&self) -> u64 {
        self.inner.chunk_cache.bytes()
    }

    /// Empties the query cache (benchmarks measure reads from cold with it).
    pub fn clear_query_cache(&self) {
        self.inner.chunk_cache.clear()
    }

    /// The ids in the series index and the sizes of the Prometheus index (tests).
    #[cfg(test)]
    pub(crate) fn index_state(&self) -> (Vec<u64>, index::IndexSizes) {
        let ix = self.inner.index.read();
        (ix.ids().collect(), ix.sizes())
    }
}

/// The API tokens of an embedded store's data directory, usable while a server has the
/// store open. Tokens live in SQLite, which serialises writers across processes (WAL mode,
/// a busy timeout), so this opens the metadata database only and takes no store lock;
/// the server sees a new or revoked token at its next request (it caches none).
pub struct TokenAdmin {
    meta: Meta,
}

impl TokenAdmin {
    pub fn open(dir: &std::path::Path) -> Result<TokenAdmin, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(TokenAdmin {
            meta: Meta::open(&dir.join("meta.sqlite"))?,
        })
    }

    /// A new token, in clear (shown once), and what is kept of it.
    pub fn create(&self, name: &str, scopes: &[Scope]) -> Result<(String, TokenInfo), StoreError> {
        self.meta.create_token(name, scopes, Utc::now())
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.meta.tokens()
    }

    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        self.meta.revoke_token(id)
    }
}
