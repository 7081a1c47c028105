//! The cache of decoded chunks that PromQL reads go through (see `prom.rs`): decoded
//! chunks by (block, series), up to a memory budget, least recently used out first, with
//! regular timestamp columns shared between chunks.

use super::head::sort_dedup;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// A hash map with foldhash's fast hasher (the keys are ids and times).
pub(super) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One chunk, decoded: timestamps in ms and values.
pub struct Decoded {
    pub ts: Arc<[i64]>,
    pub vals: Arc<[f64]>,
}

struct Cached {
    data: Arc<Decoded>,
    bytes: u64,
    used: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    map: Map<(u64, u64), Cached>,
    /// Regular timestamp columns by (first ms, step ms, length), shared between chunks.
    shared_ts: Map<(i64, i64, usize), Weak<[i64]>>,
    bytes: u64,
}

/// Decoded chunks, up to a memory budget, least recently used out first.
pub struct ChunkCache {
    budget: u64,
    state: Mutex<CacheState>,
    tick: AtomicU64,
}

impl ChunkCache {
    pub fn new(budget: u64) -> ChunkCache {
        ChunkCache {
            budget,
            state: Mutex::new(CacheState::default()),
            tick: AtomicU64::new(0),
        }
    }

    pub(super) fn contains(&self, block: u64, series: u64) -> bool {
        self.budget > 0 && self.state.lock().map.contains_key(&(block, series))
    }

    pub(super) fn get(&self, block: u64, series: u64) -> Option<Arc<Decoded>> {
        if self.budget == 0 {
            return None;
        }
        let st = self.state.lock();
        let c = st.map.get(&(block, series))?;
        c.used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(c.data.clone())
    }

    /// Converts a decoded chunk (ns) to ms, sharing a regular timestamp column, and keeps
    /// it when there is a budget.
    pub(super) fn insert(
        &self,
        block: u64,
        series: u64,
        ts_ns: Vec<i64>,
        vals: Vec<f64>,
    ) -> Arc<Decoded> {
        let mut ts: Vec<i64> = ts_ns.iter().map(|t| t.div_euclid(1_000_000)).collect();
        let mut vals = vals;
        if !ts.windows(2).all(|w| w[0] < w[1]) {
            // Two samples within one millisecond: keep the later one.
            sort_dedup(&mut ts, &mut vals);
        }
        let regular = match ts.as_slice() {
            [a, b, ..] => {
                let step = b - a;
                ts.windows(2)
                    .all(|w| w[1] - w[0] == step)
                    .then_some((*a, step, ts.len()))
            }
            _ => None,
        };
        let vals: Arc<[f64]> = vals.into();
        let mut st = self.state.lock();
        let mut bytes = 64 + 8 * vals.len() as u64;
        let ts: Arc<[i64]> = match regular.and_then(|k| st.shared_ts.get(&k)?.upgrade()) {
            Some(shared) => shared,
            None => {
                let ts: Arc<[i64]> = ts.into();
                if let Some(k) = regular {
                    st.shared_ts.insert(k, Arc::downgrade(&ts));
                }
                bytes += 8 * ts.len() as u64;
                ts
            }
        };
        let data = Arc::new(Decoded { ts, vals });
        if self.budget == 0 || bytes > self.budget / 4 {
            return data;
        }
        st.bytes += bytes;
        let used = AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed));
        if let Some(old) = st.map.insert(
            (block, series),
            Cached {
                data: data.clone(),
                bytes,
                used,
            },
        ) {
            st.bytes -= old.bytes;
        }
        if st.bytes > self.budget {
            Self::evict(&mut st, self.budget / 4 * 3);
        }
        data
    }

    /// Drops the least recently used entries until at most `target` bytes remain.
    fn evict(st: &mut CacheState, target: u64) {
        let mut by_age: Vec<(u64, (u64, u64), u64)> = st
            .map
            .iter()
            .map(|(k, c)| (c.used.load(Ordering::Relaxed), *k, c.bytes))
            .collect();
        by_age.sort_unstable();
        for (_, k, b) in by_age {
            if st.bytes <= target {
                break;
            }
            st.map.remove(&k);
            st.bytes -= b;
        }
        st.shared_ts.retain(|_, w| w.strong_count() > 0);
    }

    /// Forgets the chunks of blocks that compaction or retention replaced.
    pub fn forget_blocks(&self, blocks: &[u64]) {
        if self.budget == 0 {
            return;
        }
        let mut st = self.state.lock();
        let mut freed = 0;
        st.map.retain(|(b, _), c| {
            let keep = !blocks.contains(b);
            if !keep {
                freed += c.bytes;
            }
            keep
        });
        st.bytes -= freed;
        st.shared_ts.retain(|_, w| w.strong_count() > 0);
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.state.lock().bytes
    }

    pub fn clear(&self) {
        let mut st = self.state.lock();
        *st = CacheState::default();
    }
}
