//! The embedded store's Prometheus view: selecting series by label matchers from the
//! series index (`index.rs`), and raw sample reads.
//!
//! **Labels**: per series its Prometheus labels (`crate::prom`), from the series key and
//! the stored resources (SQLite): a resource record that replaces the stored one (same
//! rule as SQLite: `observed_at` ≥ the stored one) relabels the resource's series when its
//! kind, name or tags changed; retention drops the labels of resources it deletes.
//!
//! **Select** (`Index::select`): matchers that reject the empty value (`a="x"`, `a=~"x|y"`,
//! `a!=""`) each give a sorted id list (one posting list, or the union of the lists whose
//! value matches; a regex that is a plain alternation of literals is looked up, not run
//! over every value); the lists are intersected, smallest first. Matchers that accept the
//! empty value (`a!="x"`, `a!~"..."`, `a=""`) then remove candidates: by the union of the
//! posting lists they reject, or, for few candidates, by checking their labels. With no
//! rejecting matcher the candidates are all series. The selected series' label sets are
//! then encoded and sorted (the engine needs label order); the index keeps no order of its
//! own, which would cost memory per series and a full re-sort after each new series.
//!
//! **Samples**: per selected series, the chunks of the blocks whose time extent overlaps
//! the range, then the head (frozen, active) — later writes win, as in `points`. A decoded
//! chunk (timestamps in ms, values) is kept in a bounded cache keyed by (block, series):
//! blocks are immutable, so entries never go stale, only unused (compaction and retention
//! forget the blocks they replace). Regular timestamp columns — what scheduled collection
//! writes — are shared between chunks that have the same start, step and length. A series
//! whose samples in range all come from one cached chunk is handed to the engine without a
//! copy (the engine ignores samples outside the range).

use super::block::{Block, ChunkMeta};
use super::chunk_cache::{Decoded, Map};
use super::head::sort_dedup;
use super::index::union;
use super::inner::Inner;
use crate::prom::{Labels, Matcher, PromMetric, QueryError, SelectBudget, Series};
use crate::StoreError;
use std::sync::Arc;

/// From this many chunks to decode, a select decodes on several threads.
const PARALLEL_DECODE_FROM: usize = 256;

// ---- reads ----

/// One series' samples: timestamps (ms) and values.
type Columns = (Arc<[i64]>, Arc<[f64]>);

/// A storage failure as the engine reports it (`internal`: the server logs the text and
/// tells the client less).
fn internal(e: StoreError) -> QueryError {
    QueryError::internal(e.to_string())
}

/// Milliseconds (inclusive) to nanoseconds (inclusive), saturating.
fn ns_range(start_ms: i64, end_ms: i64) -> (i64, i64) {
    (
        start_ms.saturating_mul(1_000_000),
        end_ms.saturating_mul(1_000_000).saturating_add(999_999),
    )
}

impl Inner {
    fn decoded(&self, b: &Block, c: &ChunkMeta) -> Result<Arc<Decoded>, StoreError> {
        if let Some(d) = self.chunk_cache.get(b.id, c.series) {
            return Ok(d);
        }
        let (ts, vals) = b.read(c)?;
        Ok(self.chunk_cache.insert(b.id, c.series, ts, vals))
    }

    /// Decodes the chunks of `ids` in the range that the cache lacks, on several threads
    /// when there are many (decompression is most of a cold query). Before decoding, the
    /// samples of the chunks that lie wholly in the range (known from the chunk index) are
    /// counted against `budget`: a query that would load too many fails without decoding.
    fn decode_missing(
        &self,
        ids: &[u64],
        blocks: &[&Arc<Block>],
        start_ns: i64,
        end_ns: i64,
        budget: &SelectBudget,
        head_samples: usize,
    ) -> Result<Map<(u64, u64), Arc<Decoded>>, QueryError> {
        let mut todo: Vec<(&Arc<Block>, &ChunkMeta)> = Vec::new();
        let mut surely_loaded = head_samples;
        for (n, id) in ids.iter().enumerate() {
            if n % 4096 == 4095 {
                budget.check_deadline()?;
            }
            for b in blocks {
                if let Some(c) = b.find(*id) {
                    if c.max_ts >= start_ns && c.min_ts <= end_ns {
                        if c.min_ts >= start_ns && c.max_ts <= end_ns {
                            surely_loaded = surely_loaded.saturating_add(c.count as usize);
                        }
                        if !self.chunk_cache.contains(b.id, c.series) {
                            todo.push((b, c));
                        }
                    }
                }
            }
        }
        budget.check_samples(surely_loaded)?;
        if todo.len() < PARALLEL_DECODE_FROM {
            return Ok(Map::default());
        }
        // Asked once: it reads cgroup files, tens of microseconds.
        static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let threads = *THREADS.get_or_init(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        });
        if threads < 2 {
            return Ok(Map::default());
        }
        let per = todo.len().div_ceil(threads);
        type Part = Result<Vec<((u64, u64), Arc<Decoded>)>, QueryError>;
        let parts: Vec<Part> = std::thread::scope(|scope| {
            let handles: Vec<_> = todo
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(n, (b, c))| {
                                if n % 64 == 63 {
                                    budget.check_deadline()?;
                                }
                                let (ts, vals) = b.read(c).map_err(internal)?;
                                let d = self.chunk_cache.insert(b.id, c.series, ts, vals);
                                Ok(((b.id, c.series), d))
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(QueryError::internal("a chunk decoding thread panicked"))
                    })
                })
                .collect()
        });
        let mut out = Map::default();
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// The samples of each series in `ids` with at least those in `[start_ns, end_ns]`,
    /// counting those in the range against `budget` as they are loaded.
    fn samples(
        &self,
        ids: &[u64],
        start_ns: i64,
        end_ns: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Columns>, QueryError> {
        // Head first, then blocks: a seal finishing in between then shows its points twice
        // (identical, merged below) rather than not at all.
        let mut loaded = 0usize;
        let heads: Vec<Option<(Vec<i64>, Vec<f64>)>> = {
            let h = self.head.read();
            let mut heads = Vec::with_capacity(ids.len());
            for (n, id) in ids.iter().enumerate() {
                if n % 4096 == 4095 {
                    budget.check_deadline()?;
                }
                let (mut ts, mut vals) = (Vec::new(), Vec::new());
                let end = end_ns.saturating_add(1);
                if let Some(f) = &h.frozen {
                    f.range(*id, start_ns, end, &mut ts, &mut vals);
                }
                h.active.range(*id, start_ns, end, &mut ts, &mut vals);
                loaded = loaded.saturating_add(ts.len());
                budget.check_samples(loaded)?;
                heads.push((!ts.is_empty()).then_some((ts, vals)));
            }
            heads
        };
        let head_samples = loaded;
        let blocks = self.blocks.read().clone();
        let blocks: Vec<&Arc<Block>> = blocks
            .iter()
            .filter(|b| b.max_ts >= start_ns && b.min_ts <= end_ns)
            .collect();
        let fresh = self.decode_missing(ids, &blocks, start_ns, end_ns, budget, head_samples)?;
        let mut out = Vec::with_capacity(ids.len());
        let start_ms = start_ns.div_euclid(1_000_000);
        let end_ms = end_ns.div_euclid(1_000_000);
        for (n, (id, head)) in ids.iter().zip(heads).enumerate() {
            if n % 256 == 255 {
                budget.check_deadline()?;
            }
            let mut parts: Vec<Arc<Decoded>> = Vec::new();
            for b in &blocks {
                if let Some(c) = b.find(*id) {
                    if c.max_ts >= start_ns && c.min_ts <= end_ns {
                        let d = match fresh.get(&(b.id, c.series)) {
                            Some(d) => d.clone(),
                            None => self.decoded(b, c).map_err(internal)?,
                        };
                        let lo = d.ts.partition_point(|t| *t < start_ms);
                        let hi = d.ts.partition_point(|t| *t <= end_ms);
                        loaded = loaded.saturating_add(hi - lo);
                        budget.check_samples(loaded)?;
                        parts.push(d);
                    }
                }
            }
            if head.is_none() && parts.len() == 1 {
                let d = &parts[0];
                out.push((d.ts.clone(), d.vals.clone()));
                continue;
            }
            let mut ts = Vec::new();
            let mut vals = Vec::new();
            for d in &parts {
                let lo = d.ts.partition_point(|t| *t < start_ms);
                let hi = d.ts.partition_point(|t| *t <= end_ms);
                ts.extend_from_slice(&d.ts[lo..hi]);
                vals.extend_from_slice(&d.vals[lo..hi]);
            }
            if let Some((hts, hvals)) = head {
                ts.extend(hts.iter().map(|t| t.div_euclid(1_000_000)));
                vals.extend(hvals);
            }
            sort_dedup(&mut ts, &mut vals);
            out.push((ts.into(), vals.into()));
        }
        Ok(out)
    }

    /// The series matching `matchers` with their samples, within `budget`: the series
    /// are counted from the label index before any sample is read, the samples while
    /// they are read (see `samples`).
    pub(super) fn prom_select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        budget.check_deadline()?;
        let (ids, labels): (Vec<u64>, Vec<Labels>) = {
            let ix = self.index.read();
            let ids = ix.select(matchers);
            budget.check_series(ids.len())?;
            ix.sorted_labels(&ids).into_iter().unzip()
        };
        let (start_ns, end_ns) = ns_range(start_ms, end_ms);
        let samples = self.samples(&ids, start_ns, end_ns, budget)?;
        Ok(labels
            .into_iter()
            .zip(samples)
            .map(|(labels, (timestamps, values))| Series {
                labels,
                timestamps,
                values,
            })
            .collect())
    }

    /// Which of `ids` have a sample in `[start_ns, end_ns]`, by the time extents of their
    /// chunks and head buffers (a chunk with a gap over the whole range counts).
    fn with_data(&self, ids: Vec<u64>, start_ns: i64, end_ns: i64) -> Vec<u64> {
        let overlaps = |lo: i64, hi: i64| hi >= start_ns && lo <= end_ns;
        let blocks = self.blocks.read().clone();
        let blocks: Vec<&Arc<Block>> = blocks
            .iter()
            .filter(|b| overlaps(b.min_ts, b.max_ts))
            .collect();
        let h = self.head.read();
        let in_head = |head: &super::head::Head, id: u64| {
            head.series
                .get(&id)
                .is_some_and(|b| !b.ts.is_empty() && overlaps(b.min_ts, b.max_ts))
        };
        ids.into_iter()
            .filter(|id| {
                blocks
                    .iter()
                    .any(|b| b.find(*id).is_some_and(|c| overlaps(c.min_ts, c.max_ts)))
                    || in_head(&h.active, *id)
                    || h.frozen.as_ref().is_some_and(|f| in_head(f, *id))
            })
            .collect()
    }

    pub(super) fn prom_series(
        &self,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StoreError> {
        let (start_ns, end_ns) = ns_range(start_ms, end_ms);
        let ids: Vec<u64> = {
            let ix = self.index.read();
            if selectors.is_empty() {
                ix.ids().collect()
            } else {
                union(
                    selectors
                        .iter()
                        .map(|s| ix.select(s))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(|v| v.as_slice())
                        .collect(),
                )
            }
        };
        let ids = self.with_data(ids, start_ns, end_ns);
        // Series created since the ids were taken are in the index too; those relabelled
        // meanwhile come out with their new labels, which is what a reader expects; those
        // that retention removed meanwhile had no samples left.
        let ix = self.index.read();
        Ok(ix.sorted_labels(&ids).into_iter().map(|(_, l)| l).collect())
    }

    pub(super) fn prom_metrics(&self) -> Vec<PromMetric> {
        self.index.read().metrics()
    }
}
