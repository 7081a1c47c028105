//! The embedded store's Prometheus view: a label index in memory, and raw sample reads.
//!
//! **Index** ([`PromIndex`]): per series id its Prometheus labels (`crate::prom`), and
//! postings — label name → value → sorted series ids. Built at open from the series
//! registry and the stored resources (SQLite), then kept current by ingest: a new series
//! is added when its batch is applied; a resource record that replaces the stored one
//! (same rule as SQLite: `observed_at` ≥ the stored one) relabels the resource's series
//! when its kind, name or tags changed; retention drops the labels of resources it deletes.
//!
//! **Select**: matchers that reject the empty value (`a="x"`, `a=~"x|y"`, `a!=""`) each
//! give a sorted id list (one posting list, or the union of the lists whose value
//! matches; a regex that is a plain alternation of literals is looked up, not run over
//! every value); the lists are intersected, smallest first. Matchers that accept the empty
//! value (`a!="x"`, `a!~"..."`, `a=""`) then remove candidates: by the union of the
//! posting lists they reject, or, for few candidates, by checking their labels. With no
//! rejecting matcher the candidates are all series. The ids come out in label order (a
//! rank per series, recomputed only after labels change), which the engine needs.
//! A series that retention emptied leaves every part of the index ([`PromIndex::remove_series`]),
//! so memory follows the live set, not every series ever seen.
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
use super::head::sort_dedup;
use super::series::{IdMap, SeriesIndex};
use super::Inner;
use crate::prom::{
    series_labels, Labels, MatchOp, Matcher, PromMetric, QueryError, ResourceLabels, SelectBudget,
    Series,
};
use crate::{SeriesKey, StoreError};
use parking_lot::Mutex;
use skymeter_model::prom::metric_name;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Below this many candidates, a matcher that accepts `""` is checked against each
/// candidate's labels instead of through the posting lists.
const CHECK_LABELS_BELOW: usize = 512;

/// From this many chunks to decode, a select decodes on several threads.
const PARALLEL_DECODE_FROM: usize = 256;

#[derive(Default)]
pub struct PromIndex {
    /// By series id: the key and the labels. A map, not a vector indexed by id: ids are
    /// never reused, so under churn a vector would grow with every series ever seen.
    series: IdMap<(Arc<SeriesKey>, Labels)>,
    /// Every series id, sorted.
    all: Vec<u64>,
    /// A value that only one series has (`resource_id` of churned pods, of most resources)
    /// keeps its id inline: no allocation of its own.
    postings: Map<Box<str>, Map<Box<str>, IdList>>,
    /// Series ids per resource, keyed by a hash of the resource key (a copy of the key per
    /// entry cost more than the rest of the entry); lookups check each series' own key, so
    /// a collision only costs a comparison.
    by_resource: IdMap<IdList>,
    resource_hasher: foldhash::fast::RandomState,
    /// The latest stored record of each resource: when it was observed (ns) and what the
    /// labels take from it.
    resources: Map<String, (i64, ResourceLabels)>,
    /// Per Prometheus metric name: the metric and unit behind it, and how many series use
    /// it (a name leaves with its last series).
    metrics: BTreeMap<String, (String, skymeter_model::Unit, u64)>,
    /// Rank of each series id in label order; `None` after a label change.
    order: Mutex<Option<Arc<IdMap<u32>>>>,
}

/// Sorted ids; one of them (the usual case for a resource's list, and for a label value
/// such as a resource id) without an allocation. Reads as a slice.
#[derive(Clone)]
enum IdList {
    One(u64),
    Many(Vec<u64>),
}

impl IdList {
    fn insert(&mut self, id: u64) {
        match self {
            IdList::One(one) if *one == id => {}
            IdList::One(one) => {
                let mut v = vec![*one];
                insert_sorted(&mut v, id);
                *self = IdList::Many(v);
            }
            IdList::Many(v) => insert_sorted(v, id),
        }
    }

    fn as_slice(&self) -> &[u64] {
        match self {
            IdList::One(one) => std::slice::from_ref(one),
            IdList::Many(v) => v,
        }
    }

    /// Removes one id; returns whether the list is now empty.
    fn remove_one(&mut self, id: u64) -> bool {
        self.remove(std::slice::from_ref(&id))
    }

    /// Removes `drop` (sorted); returns whether the list is now empty.
    fn remove(&mut self, drop: &[u64]) -> bool {
        match self {
            IdList::One(one) => drop.binary_search(one).is_ok(),
            IdList::Many(v) => {
                *v = difference(std::mem::take(v), drop);
                match v.len() {
                    0 => true,
                    1 => {
                        *self = IdList::One(v[0]);
                        false
                    }
                    _ => false,
                }
            }
        }
    }
}

impl std::ops::Deref for IdList {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        self.as_slice()
    }
}

/// See [`PromIndex::sizes`].
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexSizes {
    pub series: usize,
    pub all: usize,
    pub label_names: usize,
    pub posting_lists: usize,
    pub posted_ids: usize,
    pub by_resource: usize,
    pub metrics: usize,
}

fn insert_sorted(list: &mut Vec<u64>, id: u64) {
    match list.last() {
        Some(&last) if last < id => list.push(id),
        None => list.push(id),
        _ => {
            if let Err(i) = list.binary_search(&id) {
                list.insert(i, id);
            }
        }
    }
}

/// The literals of a regex that is only `a|b|c` of plain characters, so the index can look
/// them up; `None` for anything else.
fn literal_alternatives(re: &str) -> Option<Vec<&str>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_:/@ ,=%#!<>'\"~&;".contains(c);
    re.chars()
        .all(|c| c == '|' || plain(c))
        .then(|| re.split('|').collect())
}

/// The sorted union of sorted lists.
fn union(lists: Vec<&[u64]>) -> Vec<u64> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists[0].to_vec(),
        _ => {
            let mut v: Vec<u64> = lists.concat();
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}

/// The sorted intersection of sorted lists.
fn intersect(mut lists: Vec<Cow<'_, [u64]>>) -> Vec<u64> {
    lists.sort_by_key(|l| l.len());
    let mut out = lists[0].to_vec();
    for l in &lists[1..] {
        if out.is_empty() {
            break;
        }
        let mut from = 0;
        out.retain(|id| match l[from..].binary_search(id) {
            Ok(i) => {
                from += i + 1;
                true
            }
            Err(i) => {
                from += i;
                false
            }
        });
    }
    out
}

/// `a` without the elements of `b` (both sorted).
fn difference(a: Vec<u64>, b: &[u64]) -> Vec<u64> {
    if b.is_empty() {
        return a;
    }
    let mut j = 0;
    a.into_iter()
        .filter(|id| {
            while j < b.len() && b[j] < *id {
                j += 1;
            }
            !(j < b.len() && b[j] == *id)
        })
        .collect()
}

impl PromIndex {
    pub fn build(series: &SeriesIndex, resources: Vec<(String, i64, ResourceLabels)>) -> PromIndex {
        let mut p = PromIndex::default();
        for (key, at, labels) in resources {
            p.resources.insert(key, (at, labels));
        }
        for (id, key) in series.iter() {
            p.add_series(id, key.clone());
        }
        p
    }

    fn post(&mut self, id: u64, labels: &Labels) {
        for (n, v) in labels.iter() {
            let values = self.postings.entry(n.into()).or_default();
            match values.get_mut(v) {
                Some(list) => list.insert(id),
                None => {
                    values.insert(v.into(), IdList::One(id));
                }
            }
        }
    }

    fn unpost(&mut self, id: u64, labels: &Labels) {
        for (n, v) in labels.iter() {
            if let Some(values) = self.postings.get_mut(n) {
                if let Some(list) = values.get_mut(v) {
                    if list.remove_one(id) {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(n);
                }
            }
        }
    }

    /// Adds a series (no-op when known).
    pub fn add_series(&mut self, id: u64, key: Arc<SeriesKey>) {
        if self.series.contains_key(&id) {
            return;
        }
        let rkey = key.resource.key();
        let labels = series_labels(&key, self.resources.get(&rkey).map(|(_, l)| l));
        self.post(id, &labels);
        self.metrics
            .entry(metric_name(&key.metric, key.unit))
            .or_insert_with(|| (key.metric.clone(), key.unit, 0))
            .2 += 1;
        let rhash = self.resource_hasher.hash_one(&rkey);
        match self.by_resource.get_mut(&rhash) {
            Some(list) => list.insert(id),
            None => {
                self.by_resource.insert(rhash, IdList::One(id));
            }
        }
        insert_sorted(&mut self.all, id);
        self.series.insert(id, (key, labels));
        *self.order.get_mut() = None;
    }

    /// Removes series (unknown ids are ignored): their labels, postings, resource and
    /// metric entries. Batched, because one retention run can empty a whole generation of
    /// churned series, and removing ids one by one from long posting lists is quadratic.
    pub fn remove_series(&mut self, ids: &[u64]) {
        let mut gone: Vec<(u64, Arc<SeriesKey>, Labels)> = ids
            .iter()
            .filter_map(|id| self.series.remove(id).map(|(k, l)| (*id, k, l)))
            .collect();
        if gone.is_empty() {
            return;
        }
        gone.sort_unstable_by_key(|(id, ..)| *id);
        let sorted_ids: Vec<u64> = gone.iter().map(|(id, ..)| *id).collect();
        self.all = difference(std::mem::take(&mut self.all), &sorted_ids);

        // Ids to drop per posting list and per resource, each list sorted (ids ascend).
        let mut per_posting: Map<(&str, &str), Vec<u64>> = Map::default();
        let mut per_resource: IdMap<Vec<u64>> = IdMap::default();
        for (id, key, labels) in &gone {
            for (n, v) in labels.iter() {
                per_posting.entry((n, v)).or_default().push(*id);
            }
            per_resource
                .entry(self.resource_hasher.hash_one(key.resource.key()))
                .or_default()
                .push(*id);
            let name = metric_name(&key.metric, key.unit);
            if let Some(m) = self.metrics.get_mut(&name) {
                m.2 -= 1;
                if m.2 == 0 {
                    self.metrics.remove(&name);
                }
            }
        }
        for ((n, v), drop) in per_posting {
            let Some(values) = self.postings.get_mut(n) else {
                continue;
            };
            if let Some(list) = values.get_mut(v) {
                if list.remove(&drop) {
                    values.remove(v);
                } else if let IdList::Many(l) = list {
                    if l.capacity() > 2 * l.len() + 8 {
                        l.shrink_to_fit();
                    }
                }
            }
            if values.is_empty() {
                self.postings.remove(n);
            }
        }
        for (rhash, drop) in per_resource {
            if let Some(list) = self.by_resource.get_mut(&rhash) {
                if list.remove(&drop) {
                    self.by_resource.remove(&rhash);
                }
            }
        }
        // Hash tables keep their capacity when emptied: give it back once the live set
        // is a quarter of it, so a churned-through peak does not stay resident.
        fn shrink<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(m: &mut HashMap<K, V, S>) {
            if m.capacity() > 1024 && m.len() < m.capacity() / 4 {
                m.shrink_to_fit();
            }
        }
        shrink(&mut self.series);
        shrink(&mut self.by_resource);
        for values in self.postings.values_mut() {
            shrink(values);
        }
        shrink(&mut self.postings);
        if self.all.capacity() > 1024 && self.all.len() < self.all.capacity() / 4 {
            self.all.shrink_to_fit();
        }
        *self.order.get_mut() = None;
    }

    /// Whether the series is in the index (a select that released the index lock may
    /// hold ids that retention removed since).
    pub fn contains(&self, id: u64) -> bool {
        self.series.contains_key(&id)
    }

    /// Sizes of the index's parts, for tests and diagnostics: series, ids in `all`, label
    /// names, posting lists, ids in posting lists, resources with series, metric names.
    #[cfg(test)]
    pub fn sizes(&self) -> IndexSizes {
        IndexSizes {
            series: self.series.len(),
            all: self.all.len(),
            label_names: self.postings.len(),
            posting_lists: self.postings.values().map(|v| v.len()).sum(),
            posted_ids: self
                .postings
                .values()
                .flat_map(|v| v.values())
                .map(|l| l.len())
                .sum(),
            by_resource: self.by_resource.len(),
            metrics: self.metrics.len(),
        }
    }

    /// A resource record as ingested: replaces the stored one when it is at least as
    /// recent (SQLite's rule), and relabels the resource's series if that changes labels.
    pub fn upsert_resource(&mut self, key: String, observed_ns: i64, labels: ResourceLabels) {
        let changed = match self.resources.get_mut(&key) {
            Some((at, old)) if observed_ns >= *at => {
                *at = observed_ns;
                if *old == labels {
                    false
                } else {
                    *old = labels;
                    true
                }
            }
            Some(_) => false,
            None => {
                self.resources.insert(key.clone(), (observed_ns, labels));
                true
            }
        };
        if changed {
            self.relabel_resource(&key);
        }
    }

    /// Forgets resources last observed before `before_ns` (retention deleted them).
    pub fn drop_resources_before(&mut self, before_ns: i64) {
        let gone: Vec<String> = self
            .resources
            .iter()
            .filter(|(_, (at, _))| *at < before_ns)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.resources.remove(&k);
            self.relabel_resource(&k);
        }
    }

    fn relabel_resource(&mut self, rkey: &str) {
        let Some(ids) = self
            .by_resource
            .get(&self.resource_hasher.hash_one(rkey))
            .map(|l| l.as_slice().to_vec())
        else {
            return;
        };
        let res = self.resources.get(rkey).map(|(_, l)| l.clone());
        for id in ids {
            let Some((key, old)) = self.series.get(&id).cloned() else {
                continue;
            };
            if key.resource.key() != rkey {
                continue; // another resource whose key has the same hash
            }
            let new = series_labels(&key, res.as_ref());
            if new != old {
                self.unpost(id, &old);
                self.post(id, &new);
                self.series.insert(id, (key, new));
                *self.order.get_mut() = None;
            }
        }
    }

    pub fn labels(&self, id: u64) -> &Labels {
        &self.series.get(&id).expect("ids come from the index").1
    }

    fn rank(&self) -> Arc<IdMap<u32>> {
        let mut order = self.order.lock();
        if let Some(o) = &*order {
            return o.clone();
        }
        let mut ids = self.all.clone();
        ids.sort_by(|a, b| self.labels(*a).cmp(self.labels(*b)));
        let rank: IdMap<u32> = ids
            .iter()
            .enumerate()
            .map(|(r, id)| (*id, r as u32))
            .collect();
        let rank = Arc::new(rank);
        *order = Some(rank.clone());
        rank
    }

    /// Sorts ids by their labels (ids no longer in the index last).
    pub fn sort_by_labels(&self, ids: &mut [u64]) {
        let rank = self.rank();
        ids.sort_unstable_by_key(|id| rank.get(id).copied().unwrap_or(u32::MAX));
    }

    /// The ids of the series matching every matcher, in label order.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut ids = self.select_unsorted(matchers);
        self.sort_by_labels(&mut ids);
        ids
    }

    /// The ids matching every matcher, sorted by id.
    fn select_unsorted(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut lists: Vec<Cow<'_, [u64]>> = Vec::new();
        let mut filters: Vec<&Matcher> = Vec::new();
        for m in matchers {
            if m.matches("") {
                filters.push(m);
                continue;
            }
            let Some(values) = self.postings.get(m.name.as_str()) else {
                return Vec::new();
            };
            let list: Cow<'_, [u64]> = match m.op {
                MatchOp::Equal => match values.get(m.value.as_str()) {
                    Some(l) => Cow::Borrowed(l),
                    None => return Vec::new(),
                },
                MatchOp::RegexMatch if literal_alternatives(&m.value).is_some() => {
                    let alts = literal_alternatives(&m.value).unwrap_or_default();
                    Cow::Owned(union(
                        alts.iter()
                            .filter_map(|a| values.get(*a).map(|l| l.as_slice()))
                            .collect(),
                    ))
                }
                _ => Cow::Owned(union(
                    values
                        .iter()
                        .filter(|(v, _)| m.matches(v))
                        .map(|(_, l)| l.as_slice())
                        .collect(),
                )),
            };
            if list.is_empty() {
                return Vec::new();
            }
            lists.push(list);
        }
        let mut cands = if lists.is_empty() {
            self.all.clone()
        } else {
            intersect(lists)
        };
        for f in filters {
            if cands.is_empty() {
                break;
            }
            let Some(values) = self.postings.get(f.name.as_str()) else {
                continue; // no series has the label: all see "", which `f` accepts
            };
            if cands.len() < CHECK_LABELS_BELOW {
                cands.retain(|id| f.matches(self.labels(*id).get_or_empty(&f.name)));
                continue;
            }
            let rejected: Vec<&[u64]> = match f.op {
                MatchOp::NotEqual => values
                    .get(f.value.as_str())
                    .map(|l| vec![l.as_slice()])
                    .unwrap_or_default(),
                _ => values
                    .iter()
                    .filter(|(v, _)| !f.matches(v))
                    .map(|(_, l)| l.as_slice())
                    .collect(),
            };
            cands = difference(cands, &union(rejected));
        }
        cands
    }

    /// Every metric name with the metric and unit behind it.
    pub fn metrics(&self) -> Vec<PromMetric> {
        self.metrics
            .iter()
            .map(|(name, (metric, unit, _))| PromMetric {
                name: name.clone(),
                metric: metric.clone(),
                unit: *unit,
            })
            .collect()
    }
}

// ---- decoded chunk cache ----

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

    fn contains(&self, block: u64, series: u64) -> bool {
        self.budget > 0 && self.state.lock().map.contains_key(&(block, series))
    }

    fn get(&self, block: u64, series: u64) -> Option<Arc<Decoded>> {
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
    fn insert(&self, block: u64, series: u64, ts_ns: Vec<i64>, vals: Vec<f64>) -> Arc<Decoded> {
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
            let p = self.prom.read();
            let ids = p.select(matchers);
            budget.check_series(ids.len())?;
            let labels = ids.iter().map(|id| p.labels(*id).clone()).collect();
            (ids, labels)
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
            let p = self.prom.read();
            if selectors.is_empty() {
                p.all.clone()
            } else {
                union(
                    selectors
                        .iter()
                        .map(|s| p.select_unsorted(s))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(|v| v.as_slice())
                        .collect(),
                )
            }
        };
        let mut ids = self.with_data(ids, start_ns, end_ns);
        let p = self.prom.read();
        // Series created since the ids were taken are in the index too; those relabelled
        // meanwhile come out with their new labels, which is what a reader expects; those
        // that retention removed meanwhile had no samples left.
        ids.retain(|id| p.contains(*id));
        p.sort_by_labels(&mut ids);
        Ok(ids.iter().map(|id| p.labels(*id).clone()).collect())
    }

    pub(super) fn prom_metrics(&self) -> Vec<PromMetric> {
        self.prom.read().metrics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        assert_eq!(union(vec![&[1, 4, 6], &[2, 4, 9], &[]]), [1, 2, 4, 6, 9]);
        assert_eq!(
            intersect(vec![
                Cow::Borrowed(&[1, 2, 3, 5, 8, 13][..]),
                Cow::Borrowed(&[2, 3, 4, 5, 13][..]),
                Cow::Borrowed(&[3, 5, 13, 21][..]),
            ]),
            [3, 5, 13]
        );
        assert_eq!(difference(vec![1, 2, 3, 4, 5], &[0, 2, 5, 7]), [1, 3, 4]);
        assert_eq!(
            literal_alternatives("eu-west-1|us-east-1"),
            Some(vec!["eu-west-1", "us-east-1"])
        );
        assert_eq!(literal_alternatives("eu-.*"), None);
        assert_eq!(literal_alternatives("a|(b)"), None);
    }
}
