//! The time-series side: sealing the head into blocks, compaction, retention, and reading
//! points back (merge of blocks and head, later write wins, downsampling).
//!
//! Seal: under the commit lock, wait until every appended record is applied, start a new
//! WAL segment, and move the head aside ("frozen", still visible to queries). Write the
//! frozen head as one block (points of WAL records `previous sealed + 1 ..= S`), record
//! `sealed_seq = S` in SQLite with a synced commit, then delete the WAL segments that hold
//! only records ≤ S.
//!
//! Compaction: `fan_in` adjacent blocks of one level become one block of the next level
//! (chunks of the same series concatenated and recompressed, so chunks get longer and
//! bytes per point fall), up to `max_level` or `max_block_bytes`. Adjacent = consecutive in
//! WAL order, which keeps blocks' seq ranges disjoint and ordered.

use super::block::{Block, BlockWriter, ChunkMeta};
use super::chunk::ChunkBuffers;
use super::codec::{decode_cursor, encode_cursor, from_ns, to_ns_saturating};
use super::head::{sort_dedup, Head, SeriesBuf};
use super::index::Index;
use super::inner::Inner;
use super::series::IdentityHasher;
use super::wal::io_err;
use crate::types::{
    ExtentFn, Page, PointsQuery, RetentionReport, ScanFn, SeriesExtent, SeriesInfo, SeriesKey,
    SeriesPoints, SeriesQuery, SeriesScan, StoreError, StoreStats,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use skymeter_model::Stat;
use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Opens every block; removes blocks replaced by a compaction or retention that crashed
/// before deleting them, and leftover temporary files.
pub fn load_blocks(dir: &Path) -> Result<Vec<Block>, StoreError> {
    let mut blocks = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name.ends_with(".tmp") {
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        } else if name.ends_with(".blk") {
            blocks.push(Block::open(&path)?);
        }
    }
    let replaced: BTreeSet<u64> = blocks
        .iter()
        .flat_map(|b| b.sources.iter().copied())
        .collect();
    let (gone, mut keep): (Vec<Block>, Vec<Block>) =
        blocks.into_iter().partition(|b| replaced.contains(&b.id));
    for b in gone {
        tracing::info!(block = %b.path.display(), "removing a block replaced by compaction before a crash");
        fs::remove_file(&b.path).map_err(|e| io_err(&b.path, e))?;
    }
    keep.sort_by_key(|b| b.min_seq);
    Ok(keep)
}

/// Fixes glibc's mmap threshold at its default, 128 KiB, once per process. glibc raises the
/// threshold each time a large mmapped block is freed (up to 32 MiB), after which large
/// buffers (a head's columns, posting lists of every series, a sealed block's index) come
/// from the heap and leave holes there when freed: under series churn RSS then grew by
/// tens of percent while the bytes in use stayed flat. With the threshold fixed, every
/// buffer of 128 KiB or more is its own mapping and goes back to the system when freed.
pub fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets a tunable of glibc's allocator; called once, before
        // the store allocates its large buffers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    });
}

/// Gives memory that was freed back to the operating system. glibc's allocator returns
/// the top of its heap by itself, but not freed space below live allocations: a sealed
/// head (every point since the last seal) or a generation of series removed by retention
/// otherwise stays in the process's RSS, which is what an operator sees and what the
/// kernel's OOM killer counts. `malloc_trim` releases such free pages (`madvise`); it is
/// called after a seal and after retention, not on the ingest path.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes no pointer from us
    // and is thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The ids of the index's series that have no chunk in `blocks` and no points in `heads`,
/// ascending.
pub fn empty_series<'a>(
    index: &Index,
    blocks: impl Iterator<Item = &'a Block>,
    heads: &[&Head],
) -> Vec<u64> {
    let mut live: HashSet<u64, BuildHasherDefault<IdentityHasher>> = HashSet::default();
    for b in blocks {
        live.extend(b.chunks.iter().map(|c| c.series));
    }
    for h in heads {
        live.extend(
            h.series
                .iter()
                .filter(|(_, buf)| !buf.ts.is_empty())
                .map(|(id, _)| *id),
        );
    }
    index.ids().filter(|id| !live.contains(id)).collect()
}

/// One series' points gathered from its sources, oldest source first.
#[derive(Default)]
struct Gathered {
    ts: Vec<i64>,
    vals: Vec<f64>,
}

impl Inner {
    fn new_block(&self) -> Result<BlockWriter, StoreError> {
        BlockWriter::create(
            &self.blocks_dir,
            self.next_block_id.fetch_add(1, Ordering::Relaxed),
        )
    }

    pub(super) fn seal(&self) -> Result<(), StoreError> {
        let _m = self.maintenance.lock();
        let (frozen, min_seq, max_seq) = {
            let mut c = self.commit.lock();
            let target = c.next_seq - 1;
            {
                let mut a = self.applied.lock();
                while *a < target {
                    self.check_failed()?;
                    self.applied_cv.wait(&mut a);
                }
            }
            let prev = self.sealed_seq.load(Ordering::Acquire);
            if target == prev {
                return Ok(());
            }
            c.wal.rotate(target + 1)?;
            c.bytes_since_seal = 0;
            c.first_since_seal = None;
            self.sync.set_file(c.wal.file(), self.opts.dir.join("wal"));
            let mut h = self.head.write();
            let frozen = Arc::new(std::mem::take(&mut h.active));
            h.frozen = Some(frozen.clone());
            (frozen, prev + 1, target)
        };
        if let Err(e) = self.write_sealed(&frozen, min_seq, max_seq) {
            // Put the points back in front of whatever arrived since, so queries keep
            // seeing them; the WAL still holds them, and the next seal retries.
            let mut h = self.head.write();
            let newer = std::mem::take(&mut h.active);
            let mut back = Head::default();
            for (id, b) in &frozen.series {
                for (t, v) in b.ts.iter().zip(&b.vals) {
                    back.push(*id, *t, *v);
                }
            }
            for (id, b) in &newer.series {
                for (t, v) in b.ts.iter().zip(&b.vals) {
                    back.push(*id, *t, *v);
                }
            }
            h.active = back;
            h.frozen = None;
            return Err(e);
        }
        // The last reference to the sealed head: free it, and give the memory back.
        drop(frozen);
        release_freed_memory();
        Ok(())
    }

    fn write_sealed(&self, frozen: &Head, min_seq: u64, max_seq: u64) -> Result<(), StoreError> {
        if !frozen.is_empty() {
            let mut ids: Vec<u64> = frozen.series.keys().copied().collect();
            ids.sort_unstable();
            let mut w = self.new_block()?;
            for id in ids {
                let b = &frozen.series[&id];
                let (mut ts, mut vals) = (b.ts.clone(), b.vals.clone());
                sort_dedup(&mut ts, &mut vals);
                if let Err(e) = w.add(id, &ts, &vals) {
                    w.abandon();
                    return Err(e);
                }
            }
            let block = w.finish(0, min_seq, max_seq, &[])?;
            tracing::debug!(block = %block.path.display(), points = block.points, bytes = block.bytes, "sealed the head");
            let mut blocks = self.blocks.write();
            let mut list = (**blocks).clone();
            list.push(Arc::new(block));
            list.sort_by_key(|b| b.min_seq);
            *blocks = Arc::new(list);
        }
        self.head.write().frozen = None;
        self.meta.set_sealed_durably(max_seq)?;
        self.sealed_seq.store(max_seq, Ordering::Release);
        self.commit.lock().wal.delete_upto(max_seq)?;
        Ok(())
    }

    /// Runs compaction until no group of `fan_in` blocks qualifies (the background rule).
    pub(super) fn compact_all(&self) -> Result<(), StoreError> {
        let _m = self.maintenance.lock();
        while self.compact_once(self.opts.compaction_fan_in.max(2))? {}
        while self.upgrade_once()? {}
        Ok(())
    }

    /// Also merges shorter runs (2 or more blocks of a level): what `flush` does, at
    /// shutdown and for benchmarks, so a store at rest has long chunks (bytes per point
    /// fall with chunk length) instead of waiting for `fan_in` blocks to accumulate.
    pub(super) fn compact_eagerly(&self) -> Result<(), StoreError> {
        let _m = self.maintenance.lock();
        while self.compact_once(2)? {}
        while self.upgrade_once()? {}
        Ok(())
    }

    /// Rewrites one block of the version 1 format (no values' range in its index) as the
    /// current version, at the same level and sequence range: chunks copied as they are,
    /// their values decoded once for the range. Part of compaction, so a store written by
    /// an older skymeter gains the indexed peaks by itself; a crash midway leaves the new
    /// block naming the old one as replaced, which opening then deletes.
    fn upgrade_once(&self) -> Result<bool, StoreError> {
        let blocks = self.blocks.read().clone();
        let Some(old) = blocks.iter().find(|b| b.version < 2) else {
            return Ok(false);
        };
        let mut w = self.new_block()?;
        let copied = old
            .chunks
            .iter()
            .try_for_each(|c| w.add_raw(*c, &old.read_raw(c)?));
        if let Err(e) = copied {
            w.abandon();
            return Err(e);
        }
        let new = w.finish(old.level, old.min_seq, old.max_seq, &[old.id])?;
        tracing::info!(old = %old.path.display(), new = %new.path.display(), "rewrote a block of the version 1 format");
        self.replace(std::slice::from_ref(old), Some(new))?;
        Ok(true)
    }

    /// The first run (oldest first, lowest level first) of at least `min_group` and at most
    /// `fan_in` adjacent blocks of one level below `max_level` whose total size stays under
    /// `max_block_bytes`.
    fn pick(&self, blocks: &[Arc<Block>], min_group: usize) -> Option<std::ops::Range<usize>> {
        let fan_in = self.opts.compaction_fan_in.max(2);
        let min_group = min_group.clamp(2, fan_in);
        let mut best: Option<(u32, std::ops::Range<usize>)> = None;
        let mut i = 0;
        while i < blocks.len() {
            let level = blocks[i].level;
            let mut j = i;
            while j < blocks.len() && blocks[j].level == level {
                j += 1;
            }
            if level < self.opts.max_level {
                let mut s = i;
                while s + min_group <= j {
                    let n = fan_in.min(j - s);
                    let bytes: u64 = blocks[s..s + n].iter().map(|b| b.bytes).sum();
                    if bytes <= self.opts.max_block_bytes {
                        if best.as_ref().is_none_or(|(l, _)| level < *l) {
                            best = Some((level, s..s + n));
                        }
                        break;
                    }
                    s += 1;
                }
            }
            i = j;
        }
        best.map(|(_, r)| r)
    }

    fn compact_once(&self, min_group: usize) -> Result<bool, StoreError> {
        let blocks = self.blocks.read().clone();
        let Some(range) = self.pick(&blocks, min_group) else {
            return Ok(false);
        };
        let group = &blocks[range.clone()];
        let merged = self.merge(group)?;
        self.replace(group, merged)?;
        Ok(true)
    }

    fn merge(&self, group: &[Arc<Block>]) -> Result<Option<Block>, StoreError> {
        let series: BTreeSet<u64> = group
            .iter()
            .flat_map(|b| b.chunks.iter().map(|c| c.series))
            .collect();
        let mut w = self.new_block()?;
        let res = (|| {
            for id in series {
                let holders: Vec<(&Arc<Block>, &super::block::ChunkMeta)> = group
                    .iter()
                    .filter_map(|b| b.find(id).map(|c| (b, c)))
                    .collect();
                if let [(b, c)] = holders[..] {
                    w.add_raw(*c, &b.read_raw(c)?)?;
                    continue;
                }
                let mut g = Gathered {
                    ts: Vec::new(),
                    vals: Vec::new(),
                };
                for (b, c) in holders {
                    let (t, v) = b.read(c)?;
                    g.ts.extend(t);
                    g.vals.extend(v);
                }
                sort_dedup(&mut g.ts, &mut g.vals);
                w.add(id, &g.ts, &g.vals)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            w.abandon();
            return Err(e);
        }
        if w.is_empty() {
            w.abandon();
            return Ok(None);
        }
        let level = group.iter().map(|b| b.level).max().unwrap_or(0) + 1;
        let sources: Vec<u64> = group.iter().map(|b| b.id).collect();
        let min_seq = group.iter().map(|b| b.min_seq).min().unwrap_or(0);
        let max_seq = group.iter().map(|b| b.max_seq).max().unwrap_or(0);
        w.finish(level, min_seq, max_seq, &sources).map(Some)
    }

    /// Swaps `old` blocks for `new` in the list, then deletes the old files (readers that
    /// still hold them keep reading through their open handles).
    fn replace(&self, old: &[Arc<Block>], new: Option<Block>) -> Result<(), StoreError> {
        {
            let mut blocks = self.blocks.write();
            let ids: BTreeSet<u64> = old.iter().map(|b| b.id).collect();
            let mut list: Vec<Arc<Block>> = blocks
                .iter()
                .filter(|b| !ids.contains(&b.id))
                .cloned()
                .collect();
            if let Some(n) = new {
                list.push(Arc::new(n));
            }
            list.sort_by_key(|b| b.min_seq);
            *blocks = Arc::new(list);
        }
        let ids: Vec<u64> = old.iter().map(|b| b.id).collect();
        self.chunk_cache.forget_blocks(&ids);
        for b in old {
            fs::remove_file(&b.path).map_err(|e| io_err(&b.path, e))?;
        }
        Ok(())
    }

    pub(super) fn enforce_retention(
        &self,
        before: DateTime<Utc>,
    ) -> Result<RetentionReport, StoreError> {
        let _m = self.maintenance.lock();
        let b = to_ns_saturating(before);
        let mut points = self.head.write().active.drop_before(b);
        let blocks = self.blocks.read().clone();
        for block in blocks.iter() {
            if block.min_ts >= b {
                continue;
            }
            if block.max_ts < b {
                points += block.points;
                self.replace(std::slice::from_ref(block), None)?;
                continue;
            }
            let mut w = self.new_block()?;
            let res = (|| {
                for c in &block.chunks {
                    if c.max_ts < b {
                        points += u64::from(c.count);
                    } else if c.min_ts < b {
                        let (ts, vals) = block.read(c)?;
                        let keep = ts.iter().position(|t| *t >= b).unwrap_or(ts.len());
                        points += keep as u64;
                        w.add(c.series, &ts[keep..], &vals[keep..])?;
                    } else {
                        w.add_raw(*c, &block.read_raw(c)?)?;
                    }
                }
                Ok(())
            })();
            if let Err(e) = res {
                w.abandon();
                return Err(e);
            }
            let new = if w.is_empty() {
                w.abandon();
                None
            } else {
                Some(w.finish(block.level, block.min_seq, block.max_seq, &[block.id])?)
            };
            self.replace(std::slice::from_ref(block), new)?;
        }
        let (costs, resources) = self.meta.retention(b)?;
        self.index.write().drop_resources_before(b);
        let series = self.forget_empty_series()?;
        Ok(RetentionReport {
            points,
            costs,
            resources,
            series,
        })
    }

    /// Removes the series that have no point left (in a block or the head) from the
    /// series index, the Prometheus index and the registry in SQLite. Called with the
    /// maintenance lock held (no seal moves points meanwhile). Holds the commit lock and
    /// waits until every appended record is applied: a series is resolved under that lock
    /// and gets its points when its record is applied, so in between it would look empty.
    fn forget_empty_series(&self) -> Result<u64, StoreError> {
        let c = self.commit.lock();
        {
            let target = c.next_seq - 1;
            let mut a = self.applied.lock();
            while *a < target {
                self.check_failed()?;
                self.applied_cv.wait(&mut a);
            }
        }
        let empty = {
            let blocks = self.blocks.read().clone();
            let h = self.head.read();
            let mut heads = vec![&h.active];
            heads.extend(h.frozen.as_deref());
            empty_series(&self.index.read(), blocks.iter().map(|b| &**b), &heads)
        };
        if empty.is_empty() {
            return Ok(0);
        }
        let (removed, next_id) = {
            let mut idx = self.index.write();
            (idx.remove(&empty), idx.next_id())
        };
        // The registry is updated after the commit lock is released, so ingest does not
        // wait for SQLite: a key that comes back meanwhile gets a new id, and a crash
        // before this commit leaves rows that the next open removes (no points).
        drop(c);
        release_freed_memory();
        self.meta.delete_series(&empty, next_id)?;
        tracing::info!(
            series = removed,
            "removed series that retention left without points"
        );
        Ok(removed as u64)
    }

    pub(super) fn stats(&self) -> Result<StoreStats, StoreError> {
        let [resources, costs, agents, batches] = self.meta.counts()?;
        let blocks = self.blocks.read().clone();
        let point_block_bytes = blocks.iter().map(|b| b.bytes).sum();
        let point_block_points: u64 = blocks.iter().map(|b| b.points).sum();
        let head_points = {
            let h = self.head.read();
            h.active.points + h.frozen.as_ref().map_or(0, |f| f.points)
        };
        Ok(StoreStats {
            resources,
            series: self.index.read().len() as u64,
            points: point_block_points + head_points as u64,
            costs,
            agents,
            batches,
            disk_bytes: dir_size(&self.opts.dir),
            point_block_bytes,
            point_block_points,
        })
    }

    /// Matching series after the cursor, up to `limit`, each with what `f` makes of it
    /// (None: skip the series, e.g. no points in range). Scans at most 20 × limit series
    /// per call so that a sparse match cannot make one page slow; the cursor then points
    /// past what was scanned.
    fn scan<T>(
        &self,
        q: &SeriesQuery,
        kind: &str,
        mut f: impl FnMut(&[(u64, SeriesKey)]) -> Result<Vec<Option<T>>, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let mut after = match &q.page.cursor {
            Some(c) => decode_cursor(c, kind)?
                .get("k")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| StoreError::BadRequest("malformed cursor".into()))?,
            None => 0,
        };
        let limit = q.page.limit() as usize;
        let budget = limit * 20;
        let mut scanned = 0;
        let mut items = Vec::new();
        loop {
            let want = (limit - items.len()).clamp(1, 256);
            let cands: Vec<(u64, SeriesKey)> = {
                let idx = self.index.read();
                idx.matching(q, after)
                    .take(want)
                    .filter_map(|id| Some((id, idx.key(id)?)))
                    .collect()
            };
            if cands.is_empty() {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            scanned += cands.len();
            let results = f(&cands)?;
            // `f` may stop before the last candidate (a budget ran out): the page ends
            // there and the cursor resumes at the first candidate it did not take.
            let stopped = results.len() < cands.len();
            for ((id, _), r) in cands.iter().zip(results) {
                after = *id;
                if let Some(r) = r {
                    items.push(r);
                    if items.len() == limit {
                        break;
                    }
                }
            }
            if items.len() == limit || scanned >= budget || stopped {
                let more = stopped || self.index.read().matching(q, after).next().is_some();
                let next_cursor = more.then(|| encode_cursor(&json!({"kind": kind, "k": after})));
                return Ok(Page { items, next_cursor });
            }
        }
    }

    pub(super) fn series_page(&self, q: &SeriesQuery) -> Result<Page<SeriesInfo>, StoreError> {
        self.scan(q, "series", |cands| {
            let heads: Vec<[Option<(i64, i64, u64)>; 2]> = {
                let h = self.head.read();
                let ext = |head: &Head, id: u64| {
                    head.series
                        .get(&id)
                        .map(|b: &SeriesBuf| (b.min_ts, b.max_ts, b.ts.len() as u64))
                };
                cands
                    .iter()
                    .map(|(id, _)| {
                        [
                            h.frozen.as_ref().and_then(|f| ext(f, *id)),
                            ext(&h.active, *id),
                        ]
                    })
                    .collect()
            };
            let blocks = self.blocks.read().clone();
            Ok(cands
                .iter()
                .zip(heads)
                .map(|((id, key), hs)| {
                    let (mut first, mut last, mut n) = (i64::MAX, i64::MIN, 0u64);
                    let chunks = blocks
                        .iter()
                        .filter_map(|b| b.find(*id))
                        .map(|c| (c.min_ts, c.max_ts, u64::from(c.count)));
                    for (lo, hi, c) in chunks.chain(hs.into_iter().flatten()) {
                        first = first.min(lo);
                        last = last.max(hi);
                        n += c;
                    }
                    (n > 0).then(|| SeriesInfo {
                        key: key.clone(),
                        first_ts: from_ns(first),
                        last_ts: from_ns(last),
                        points: n,
                    })
                })
                .collect())
        })
    }

    /// `max_points`: see `Store::points_limited`.
    pub(super) fn points_page(
        &self,
        q: &PointsQuery,
        max_points: u64,
    ) -> Result<Page<SeriesPoints>, StoreError> {
        let (step, agg) = points_step(q)?;
        let (start, end) = (to_ns_saturating(q.start), to_ns_saturating(q.end));
        let mut page_points = 0u64;
        let too_many = |key: &SeriesKey| {
            StoreError::BadRequest(format!(
                "series {} {} of {} has more than {max_points} points between {} and {}, the \
                 server's limit of raw points read per page (`max_samples` in `[server.query]`, \
                 counted before any `step` downsampling); ask for a shorter range",
                key.metric,
                key.stat.as_str(),
                key.resource.key(),
                q.start.to_rfc3339(),
                q.end.to_rfc3339()
            ))
        };
        self.scan(&q.series, "points", |cands| {
            // Head first, then blocks: a seal finishing in between then shows its points
            // twice (identical, merged below) rather than not at all.
            let heads = self.head_points(cands.iter().map(|(id, _)| *id), start, end);
            let blocks = self.blocks.read().clone();
            let mut out = Vec::with_capacity(cands.len());
            for ((id, key), head) in cands.iter().zip(heads) {
                let mut ts = Vec::new();
                let mut vals = Vec::new();
                // Head points first in the count: they are in memory already.
                let mut read = head.ts.len() as u64;
                for b in blocks.iter() {
                    if let Some(c) = b.find(*id) {
                        if c.max_ts < start || c.min_ts >= end {
                            continue;
                        }
                        let (t, v) = b.read(c)?;
                        let lo = t.partition_point(|x| *x < start);
                        let hi = t.partition_point(|x| *x < end);
                        read += (hi - lo) as u64;
                        if read > max_points {
                            break;
                        }
                        ts.extend_from_slice(&t[lo..hi]);
                        vals.extend_from_slice(&v[lo..hi]);
                    }
                }
                if page_points.saturating_add(read) > max_points {
                    if page_points == 0 && out.is_empty() {
                        return Err(too_many(key));
                    }
                    // The page ends before this series; the cursor resumes at it.
                    break;
                }
                page_points += read;
                ts.extend(head.ts);
                vals.extend(head.vals);
                if ts.is_empty() {
                    out.push(None);
                    continue;
                }
                sort_dedup(&mut ts, &mut vals);
                let points = match step {
                    None => ts
                        .iter()
                        .zip(&vals)
                        .map(|(t, v)| (from_ns(*t), *v))
                        .collect(),
                    Some(step) => downsample(&ts, &vals, step, agg),
                };
                out.push(Some(SeriesPoints {
                    key: key.clone(),
                    points,
                }));
            }
            Ok(out)
        })
    }
}

/// A series a scan reads: its id, key and head points in the range.
type ScanItem = ((u64, SeriesKey), Gathered);

/// What a scan does with one series: given the blocks, the series and buffers the thread
/// reuses.
type PerSeries<'a> =
    &'a (dyn Fn(&[Arc<Block>], &ScanItem, &mut ScanBuffers) -> Result<(), StoreError> + Sync);

/// A scan thread's buffers, reused from series to series: a series' points merged from its
/// sources, and one chunk's.
#[derive(Default)]
struct ScanBuffers {
    merged: Gathered,
    chunk: ChunkBuffers,
}

impl Inner {
    /// The head's points (frozen, then active) of each series of `ids` in `[start, end)`.
    fn head_points(&self, ids: impl Iterator<Item = u64>, start: i64, end: i64) -> Vec<Gathered> {
        let h = self.head.read();
        ids.map(|id| {
            let mut g = Gathered {
                ts: Vec::new(),
                vals: Vec::new(),
            };
            if let Some(frozen) = &h.frozen {
                frozen.range(id, start, end, &mut g.ts, &mut g.vals);
            }
            h.active.range(id, start, end, &mut g.ts, &mut g.vals);
            g
        })
        .collect()
    }

    /// The matching series a thousand at a time, each thousand with its head points split
    /// among the cores, `per_series` called for each.
    fn scan_each(
        &self,
        scan: &SeriesScan<'_>,
        per_series: PerSeries<'_>,
    ) -> Result<(), StoreError> {
        const BATCH: usize = 1024;
        let (start, end) = (to_ns_saturating(scan.start), to_ns_saturating(scan.end));
        if end <= start {
            return Ok(());
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let mut after = 0u64;
        loop {
            let mut last = None;
            let cands: Vec<(u64, SeriesKey)> = {
                let idx = self.index.read();
                idx.matching(&scan.series, after)
                    .take(BATCH)
                    .inspect(|id| last = Some(*id))
                    .filter_map(|id| Some((id, idx.key(id)?)))
                    .filter(|(_, key)| scan.want.is_none_or(|want| want(key)))
                    .collect()
            };
            let Some(last) = last else {
                return Ok(());
            };
            after = last;
            if cands.is_empty() {
                continue;
            }
            // Head first, then blocks (as `points_page`): a seal in between shows points
            // twice, merged by `sort_dedup`, never not at all.
            let heads = self.head_points(cands.iter().map(|(id, _)| *id), start, end);
            let blocks = self.blocks.read().clone();
            let work: Vec<ScanItem> = cands.into_iter().zip(heads).collect();
            let per_thread = work.len().div_ceil(threads);
            std::thread::scope(|s| {
                let running: Vec<_> = work
                    .chunks(per_thread)
                    .map(|part| {
                        let blocks = &blocks;
                        s.spawn(move || -> Result<(), StoreError> {
                            let mut buf = ScanBuffers::default();
                            part.iter()
                                .try_for_each(|item| per_series(blocks, item, &mut buf))
                        })
                    })
                    .collect();
                running
                    .into_iter()
                    .try_for_each(|t| t.join().expect("a scan thread panicked"))
            })?;
        }
    }

    /// See `Store::scan_points`.
    pub(super) fn scan_points(
        &self,
        scan: &SeriesScan<'_>,
        f: ScanFn<'_>,
    ) -> Result<(), StoreError> {
        let (start, end) = (to_ns_saturating(scan.start), to_ns_saturating(scan.end));
        self.scan_each(scan, &|blocks, ((id, key), head), buf| {
            let mut chunks = in_range(blocks, *id, start, end);
            let first = chunks.next();
            let more = chunks.next();
            if let (Some((b, c)), None, true) = (first, more, head.ts.is_empty()) {
                // The common case, one compacted chunk and nothing in the head: a chunk is
                // time-ordered and unique, so its decoded slice goes to `f` as it is.
                b.read_into(c, &mut buf.chunk)?;
                let (t, v) = (&buf.chunk.ts, &buf.chunk.vals);
                let lo = t.partition_point(|x| *x < start);
                let hi = t.partition_point(|x| *x < end);
                if hi > lo {
                    f(key, &t[lo..hi], &v[lo..hi]);
                }
                return Ok(());
            }
            merge_range(
                first.into_iter().chain(more).chain(chunks),
                head,
                start,
                end,
                buf,
            )?;
            if !buf.merged.ts.is_empty() {
                f(key, &buf.merged.ts, &buf.merged.vals);
            }
            Ok(())
        })
    }

    /// See `Store::scan_extents`: each chunk of the series that lies wholly inside the range
    /// and carries its values' range answers from the blocks' index, one the range's start
    /// cuts answers from its points before the start when its peak is after them, the
    /// others (cut by the range's end, or peaking before its start) are decoded, when no
    /// two chunks (nor a chunk and the head) overlap in time — a later write replacing a
    /// point could otherwise hide in an older chunk's figures —; else the series' points
    /// are merged and read.
    pub(super) fn scan_extents(
        &self,
        scan: &SeriesScan<'_>,
        f: ExtentFn<'_>,
    ) -> Result<(), StoreError> {
        let (start, end) = (to_ns_saturating(scan.start), to_ns_saturating(scan.end));
        self.scan_each(scan, &|blocks, ((id, key), head), buf| {
            let mut chunks: Vec<(&Block, &ChunkMeta)> = in_range(blocks, *id, start, end).collect();
            chunks.sort_by_key(|(_, c)| c.min_ts);
            // Apart: no timestamp can be in two chunks, nor in a chunk and the head, so no
            // point is replaced by a later write and each chunk's figures stand.
            let head_first = head.ts.iter().copied().min().unwrap_or(i64::MAX);
            let apart = chunks.windows(2).all(|w| w[0].1.max_ts < w[1].1.min_ts)
                && chunks.last().is_none_or(|(_, c)| c.max_ts < head_first);
            if apart {
                // Chunks wholly inside the range answer from the index; the ones the range
                // cuts (its edges), and those of version 1 blocks, are decoded.
                let mut acc: Option<SeriesExtent> = None;
                let mut add = |e: SeriesExtent| {
                    acc = Some(match acc {
                        None => e,
                        Some(a) => SeriesExtent {
                            first_ns: a.first_ns.min(e.first_ns),
                            last_ns: a.last_ns.max(e.last_ns),
                            points: a.points + e.points,
                            max: a.max.max(e.max),
                        },
                    })
                };
                for (b, c) in chunks {
                    // A chunk the range's start cuts, whose peak is after the cut.
                    let tail = match c.value_range {
                        Some((_, hi)) if c.min_ts < start && c.max_ts < end => b
                            .tail_from(c, start, &mut buf.chunk)?
                            .map(|(first, points)| (first, points, hi)),
                        _ => None,
                    };
                    match (c.value_range, tail) {
                        (Some((_, hi)), _) if c.min_ts >= start && c.max_ts < end => {
                            add(SeriesExtent {
                                first_ns: c.min_ts,
                                last_ns: c.max_ts,
                                points: u64::from(c.count),
                                max: hi,
                            })
                        }
                        (_, Some((_, 0, _))) => {}
                        (_, Some((first, points, hi))) => add(SeriesExtent {
                            first_ns: first,
                            last_ns: c.max_ts,
                            points,
                            max: hi,
                        }),
                        _ => {
                            // Through the thread's buffers, as `merge_range`: the decoded
                            // chunk is freed at once and the buffers' capacity stays, which
                            // keeps the allocator's arenas from fragmenting (a quarter more
                            // peak RSS over 100,000 series without it).
                            merge_range(
                                std::iter::once((b, c)),
                                &Gathered::default(),
                                start,
                                end,
                                buf,
                            )?;
                            if !buf.merged.ts.is_empty() {
                                add(extent_of(&buf.merged.ts, &buf.merged.vals));
                            }
                        }
                    }
                }
                if !head.ts.is_empty() {
                    let merged = &mut buf.merged;
                    merged.ts.clone_from(&head.ts);
                    merged.vals.clone_from(&head.vals);
                    sort_dedup(&mut merged.ts, &mut merged.vals);
                    add(extent_of(&merged.ts, &merged.vals));
                }
                if let Some(e) = acc {
                    f(key, e);
                }
                return Ok(());
            }
            merge_range(in_range(blocks, *id, start, end), head, start, end, buf)?;
            if !buf.merged.ts.is_empty() {
                f(key, extent_of(&buf.merged.ts, &buf.merged.vals));
            }
            Ok(())
        })
    }
}

/// The extent of time-ordered, unique points (non-empty).
fn extent_of(ts: &[i64], vals: &[f64]) -> SeriesExtent {
    SeriesExtent {
        first_ns: ts[0],
        last_ns: ts[ts.len() - 1],
        points: ts.len() as u64,
        max: vals.iter().copied().fold(f64::NAN, f64::max),
    }
}

/// Into `buf.merged` (cleared): the points in `[start, end)` of `chunks` and the head's,
/// merged (time-ordered, the later write of a timestamp kept).
fn merge_range<'a>(
    chunks: impl Iterator<Item = (&'a Block, &'a ChunkMeta)>,
    head: &Gathered,
    start: i64,
    end: i64,
    buf: &mut ScanBuffers,
) -> Result<(), StoreError> {
    let ScanBuffers { merged, chunk } = buf;
    merged.ts.clear();
    merged.vals.clear();
    for (b, c) in chunks {
        b.read_into(c, chunk)?;
        let lo = chunk.ts.partition_point(|x| *x < start);
        let hi = chunk.ts.partition_point(|x| *x < end);
        merged.ts.extend_from_slice(&chunk.ts[lo..hi]);
        merged.vals.extend_from_slice(&chunk.vals[lo..hi]);
    }
    merged.ts.extend_from_slice(&head.ts);
    merged.vals.extend_from_slice(&head.vals);
    sort_dedup(&mut merged.ts, &mut merged.vals);
    Ok(())
}

/// The chunks of series `id` that have points in `[start, end)`, oldest block first.
fn in_range(
    blocks: &[Arc<Block>],
    id: u64,
    start: i64,
    end: i64,
) -> impl Iterator<Item = (&Block, &ChunkMeta)> {
    blocks.iter().filter_map(move |b| {
        let c = b.find(id)?;
        (c.max_ts >= start && c.min_ts < end).then_some((&**b, c))
    })
}

/// The checked range and bucketing of a points query: the step in nanoseconds (`None`:
/// raw points) and how buckets combine.
pub fn points_step(q: &PointsQuery) -> Result<(Option<i64>, Stat), StoreError> {
    if q.end <= q.start {
        return Err(StoreError::BadRequest(format!(
            "end ({}) must be after start ({})",
            q.end, q.start
        )));
    }
    let step = match q.step_s {
        None => None,
        Some(s) if s == 0 || s > 1_000_000_000 => {
            return Err(StoreError::BadRequest(format!(
                "step {s} s: use 1 to 1,000,000,000 seconds"
            )))
        }
        Some(s) => Some(s as i64 * 1_000_000_000),
    };
    Ok((step, q.agg.unwrap_or(Stat::Avg)))
}

/// Buckets `(end - step, end]` with `end` a multiple of `step` since the epoch: a point's
/// timestamp is the end of the period it covers, so a point stamped 10:01 of a 60 s
/// series lands in the bucket stamped 10:01, and downsampling to its own period changes
/// nothing.
pub fn downsample(ts: &[i64], vals: &[f64], step: i64, agg: Stat) -> Vec<(DateTime<Utc>, f64)> {
    let mut out = Vec::new();
    each_bucket(ts, vals, step, agg, |end, v| out.push((from_ns(end), v)));
    out
}

/// Calls `f` with the end (nanoseconds) and the combined value of each bucket of
/// [`downsample`], oldest first, without building the list: what a reduction over a fleet's
/// series (the savings findings) walks instead.
pub fn each_bucket(ts: &[i64], vals: &[f64], step: i64, agg: Stat, mut f: impl FnMut(i64, f64)) {
    let mut i = 0;
    while i < ts.len() {
        let e = bucket_end(ts[i], step);
        let mut j = i + 1;
        while j < ts.len() && ts[j] <= e {
            j += 1;
        }
        f(e, combine(&vals[i..j], agg));
        i = j;
    }
}

/// The end of the `step`-wide bucket (aligned to the epoch) that holds `t`: `t` itself when
/// it is a multiple of `step`, else the next multiple (the last representable for the
/// bucket holding `i64::MAX`). In i64, not i128: this runs once per point downsampled.
pub fn bucket_end(t: i64, step: i64) -> i64 {
    match t.rem_euclid(step) {
        0 => t,
        // Below zero, `t - r` could pass i64::MIN; `step - r` is positive and small.
        r if t < 0 => t + (step - r),
        r => (t - r).saturating_add(step),
    }
}

fn combine(v: &[f64], agg: Stat) -> f64 {
    match agg {
        Stat::Avg => v.iter().sum::<f64>() / v.len() as f64,
        Stat::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Stat::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
        Stat::Sum => v.iter().sum(),
        Stat::Count => v.len() as f64,
        Stat::Last => v[v.len() - 1],
        Stat::P50 | Stat::P95 | Stat::P99 => {
            let p = match agg {
                Stat::P50 => 50.0,
                Stat::P95 => 95.0,
                _ => 99.0,
            };
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            // Nearest rank.
            let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
            s[rank - 1]
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
