//! The series index in memory: each series' identity ([`SeriesKey`]) and Prometheus labels
//! (`crate::prom`), the map from a point to its series, and the postings that select series
//! by label matchers. One structure under one lock.
//!
//! Ids are allocated in increasing order and never reused, so they double as the
//! immutable keyset for paging. The index is persisted in SQLite (table `series`) and, for
//! series created since the last seal, in the WAL records that first used them. A series
//! whose points retention dropped, all of them, is removed ([`Index::remove`]): churning
//! labels (pods, function versions) would otherwise grow the index forever. Its id stays
//! used: the next id is persisted (`state.next_series_id`), because a WAL record written
//! before the removal may still name the old id at the next replay.
//!
//! Memory per series decides how many series a server holds, so nothing is kept twice:
//!
//! - every string is interned once ([`Symbols`]) and a series is an [`Entry`] of symbols,
//!   48 bytes, in pages of consecutive ids ([`Pages`]): a churned-out generation empties
//!   whole pages, which are freed at once;
//! - a series' Prometheus labels are not stored encoded: they are the entry's six fixed
//!   labels plus the few extra pairs it holds (point labels, resource kind, name and tags),
//!   encoded when a query asks;
//! - the point → series map holds only ids, hashed by the key's strings;
//! - the postings map label name → value → ids, by symbol; a value that only one series
//!   has (a resource id) keeps its id inline.
//!
//! What that costs, measured by `bench/series_memory.sh`, is in docs/benchmarks.md.

use super::series::KeyHasher;
use super::symbols::{Sym, Symbols};
use crate::prom::{series_labels, Labels, MatchOp, Matcher, PromMetric, ResourceLabels, RESERVED};
use crate::{SeriesKey, SeriesQuery};
use hashbrown::HashTable;
use skymeter_model::prom::metric_name;
use skymeter_model::{Point, ResourceRef, Stat, Unit};
use skymeter_promql::common_prefix;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

type SymMap<V> = HashMap<Sym, V, std::hash::BuildHasherDefault<super::series::IdentityHasher>>;
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Below this many candidates, a matcher that accepts `""` is checked against each
/// candidate's labels instead of through the posting lists.
const CHECK_LABELS_BELOW: usize = 512;

/// Series per page of [`Pages`].
const PAGE: u64 = 512;

/// One series, as symbols.
struct Entry {
    metric: Sym,
    /// The Prometheus metric name (`metric_name(metric, unit)`).
    name: Sym,
    provider: Sym,
    account: Sym,
    region: Sym,
    id: Sym,
    unit: Unit,
    stat: Stat,
    /// `[n, n pairs of the point's own labels, then the Prometheus labels beyond the six
    /// fixed ones (renamed point labels, kind, resource_name, tags), sorted by name]`, name
    /// and value symbols alternating; `None` when both parts are empty (most cloud series).
    extra: Option<Box<[Sym]>>,
}

impl Entry {
    fn raw_labels(&self) -> &[Sym] {
        match &self.extra {
            Some(x) => &x[1..1 + 2 * x[0] as usize],
            None => &[],
        }
    }

    fn extra_labels(&self) -> &[Sym] {
        match &self.extra {
            Some(x) => &x[1 + 2 * x[0] as usize..],
            None => &[],
        }
    }

    /// Every symbol the entry holds a reference to.
    fn syms(&self) -> impl Iterator<Item = Sym> + '_ {
        [
            self.metric,
            self.name,
            self.provider,
            self.account,
            self.region,
            self.id,
        ]
        .into_iter()
        .chain(self.raw_labels().iter().copied())
        .chain(self.extra_labels().iter().copied())
    }
}

struct Page {
    slots: Vec<Option<Entry>>,
    live: u32,
}

/// Entries by id, in pages of [`PAGE`] consecutive ids. A tree of pages rather than a
/// vector: ids are never reused, so a long-lived series next to a million churned ones
/// must not pin a vector over the whole id range.
#[derive(Default)]
struct Pages {
    pages: BTreeMap<u64, Page>,
    len: usize,
}

impl Pages {
    fn get(&self, id: u64) -> Option<&Entry> {
        self.pages.get(&(id / PAGE))?.slots[(id % PAGE) as usize].as_ref()
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Entry> {
        self.pages.get_mut(&(id / PAGE))?.slots[(id % PAGE) as usize].as_mut()
    }

    fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    fn insert(&mut self, id: u64, e: Entry) {
        let page = self.pages.entry(id / PAGE).or_insert_with(|| Page {
            slots: (0..PAGE).map(|_| None).collect(),
            live: 0,
        });
        let slot = &mut page.slots[(id % PAGE) as usize];
        debug_assert!(slot.is_none(), "series {id} inserted twice");
        if slot.replace(e).is_none() {
            page.live += 1;
            self.len += 1;
        }
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let page = self.pages.get_mut(&(id / PAGE))?;
        let e = page.slots[(id % PAGE) as usize].take()?;
        page.live -= 1;
        self.len -= 1;
        if page.live == 0 {
            self.pages.remove(&(id / PAGE));
        }
        Some(e)
    }

    /// Entries with id > `after`, in id order.
    fn iter_after(&self, after: u64) -> impl Iterator<Item = (u64, &Entry)> {
        let from = after.saturating_add(1);
        self.pages.range(from / PAGE..).flat_map(move |(p, page)| {
            page.slots
                .iter()
                .enumerate()
                .filter_map(move |(i, e)| Some((p * PAGE + i as u64, e.as_ref()?)))
                .filter(move |(id, _)| *id >= from)
        })
    }
}

/// Sorted ids; one of them (the usual case for a label value such as a resource id)
/// without an allocation. 16 bytes. Reads as a slice.
#[derive(Clone)]
enum IdList {
    One(u64),
    #[allow(clippy::box_collection)] // boxed to keep the common `One` at 16 bytes
    Many(Box<Vec<u64>>),
}

impl IdList {
    fn insert(&mut self, id: u64) {
        match self {
            IdList::One(one) if *one == id => {}
            IdList::One(one) => {
                let mut v = vec![*one];
                insert_sorted(&mut v, id);
                *self = IdList::Many(Box::new(v));
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

    /// Removes `drop` (sorted); returns whether the list is now empty.
    fn remove(&mut self, drop: &[u64]) -> bool {
        match self {
            IdList::One(one) => drop.binary_search(one).is_ok(),
            IdList::Many(v) => {
                **v = difference(std::mem::take(&mut **v), drop);
                match v.len() {
                    0 => true,
                    1 => {
                        *self = IdList::One(v[0]);
                        false
                    }
                    _ => {
                        // The difference reuses the old buffer; a list that churn halved
                        // would otherwise keep room for its peak (two generations).
                        if v.capacity() > v.len() + v.len() / 2 + 8 {
                            v.shrink_to_fit();
                        }
                        false
                    }
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
pub fn union(lists: Vec<&[u64]>) -> Vec<u64> {
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

/// A series being sorted by [`Index::sorted_labels`]: its sort key is
/// `keys[start..end]`, whose first eight bytes (zero-padded) are `head`, big-endian.
struct Selected {
    head: u64,
    id: u64,
    labels: Labels,
    start: usize,
    end: usize,
}

/// The six labels every series has from its key, as symbols held for the index's life.
struct Fixed {
    name: Sym,
    provider: Sym,
    account: Sym,
    region: Sym,
    resource_id: Sym,
    stat: Sym,
    /// The value symbol of each `Stat::ALL`.
    stats: [Sym; Stat::ALL.len()],
}

/// The six labels of every series (the first of `crate::prom::RESERVED`).
const FIXED_NAMES: &[&str] = RESERVED.split_at(6).0;

/// Sizes of the index's parts, for tests and diagnostics.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexSizes {
    /// Series in the pages.
    pub series: usize,
    /// Ids in the point → series map.
    pub by_key: usize,
    pub label_names: usize,
    pub posting_lists: usize,
    pub posted_ids: usize,
    pub metrics: usize,
    /// Distinct live strings.
    pub symbols: usize,
    pub pages: usize,
}

pub struct Index {
    pub hasher: KeyHasher,
    syms: Symbols,
    pages: Pages,
    /// Series ids, hashed by their key (the hash of [`KeyHasher`]).
    by_key: HashTable<u64>,
    next_id: u64,
    /// Label name → value → ids.
    postings: SymMap<SymMap<IdList>>,
    /// The latest stored record of each resource: when it was observed (ns) and what the
    /// labels take from it.
    resources: Map<String, (i64, ResourceLabels)>,
    /// Per Prometheus metric name: the metric and unit behind it, and how many series use
    /// it (a name leaves with its last series).
    metrics: BTreeMap<String, (String, Unit, u64)>,
    fixed: Fixed,
}

impl Index {
    pub fn new(hasher: KeyHasher) -> Index {
        let mut syms = Symbols::default();
        let [name, provider, account, region, resource_id, stat] =
            std::array::from_fn(|i| syms.intern(FIXED_NAMES[i]));
        let stats = Stat::ALL.map(|s| syms.intern(s.as_str()));
        Index {
            hasher,
            syms,
            pages: Pages::default(),
            by_key: HashTable::new(),
            next_id: 1,
            postings: SymMap::default(),
            resources: Map::default(),
            metrics: BTreeMap::new(),
            fixed: Fixed {
                name,
                provider,
                account,
                region,
                resource_id,
                stat,
                stats,
            },
        }
    }

    /// Sets the resource records the labels read (at open, before any series is added).
    pub fn set_resources(&mut self, resources: Vec<(String, i64, ResourceLabels)>) {
        for (key, at, labels) in resources {
            self.resources.insert(key, (at, labels));
        }
    }

    pub fn len(&self) -> usize {
        self.pages.len
    }

    /// Every series id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.iter_after(0).map(|(id, _)| id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.pages.contains(id)
    }

    /// The id the next new series gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Never hands out an id below `floor` (ids of removed series are not reused).
    pub fn reserve_below(&mut self, floor: u64) {
        self.next_id = self.next_id.max(floor);
    }

    fn stat_sym(&self, stat: Stat) -> Sym {
        let i = Stat::ALL.iter().position(|s| *s == stat).unwrap_or(0);
        self.fixed.stats[i]
    }

    fn s(&self, sym: Sym) -> &str {
        self.syms.get(sym)
    }

    fn entry_hash(hasher: &KeyHasher, syms: &Symbols, e: &Entry) -> u64 {
        let raw = e.raw_labels();
        hasher.hash_parts(
            syms.get(e.metric),
            e.unit,
            e.stat,
            [e.provider, e.account, e.region, e.id].map(|s| syms.get(s)),
            raw.chunks_exact(2)
                .map(|p| (syms.get(p[0]), syms.get(p[1]))),
        )
    }

    fn entry_is(&self, e: &Entry, p: &Point) -> bool {
        let raw = e.raw_labels();
        let r = &p.resource;
        e.unit == p.unit
            && e.stat == p.stat
            && self.s(e.id) == r.id
            && self.s(e.metric) == p.metric
            && self.s(e.provider) == r.provider
            && self.s(e.account) == r.account
            && self.s(e.region) == r.region
            && raw.len() == 2 * p.labels.len()
            && raw
                .chunks_exact(2)
                .zip(p.labels.iter())
                .all(|(s, (k, v))| self.s(s[0]) == k && self.s(s[1]) == v)
    }

    /// The id of the point's series, if it exists.
    pub fn find(&self, hash: u64, p: &Point) -> Option<u64> {
        self.by_key
            .find(hash, |&id| {
                self.pages
                    .get(id)
                    .is_some_and(|e: &Entry| self.entry_is(e, p))
            })
            .copied()
    }

    /// The key of a series.
    pub fn key(&self, id: u64) -> Option<SeriesKey> {
        self.pages.get(id).map(|e| self.key_of(e))
    }

    fn key_of(&self, e: &Entry) -> SeriesKey {
        SeriesKey {
            metric: self.s(e.metric).to_string(),
            unit: e.unit,
            stat: e.stat,
            resource: ResourceRef {
                provider: self.s(e.provider).into(),
                account: self.s(e.account).into(),
                region: self.s(e.region).into(),
                id: self.s(e.id).into(),
            },
            labels: e
                .raw_labels()
                .chunks_exact(2)
                .map(|p| (self.s(p[0]).to_string(), self.s(p[1]).to_string()))
                .collect(),
        }
    }

    /// Adds a series under a fresh id.
    pub fn allocate(&mut self, hash: u64, key: &SeriesKey) -> u64 {
        let id = self.next_id;
        self.add(id, hash, key);
        id
    }

    /// Adds a series read back from disk under its stored id (no-op when present).
    pub fn insert(&mut self, id: u64, key: &SeriesKey) {
        if self.pages.contains(id) {
            return;
        }
        let raw: Vec<(&str, &str)> = key
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = &key.resource;
        let hash = self.hasher.hash_parts(
            &key.metric,
            key.unit,
            key.stat,
            [&*r.provider, &*r.account, &*r.region, &*r.id],
            raw.into_iter(),
        );
        self.add(id, hash, key);
    }

    /// The extra Prometheus labels of a key (all but the six fixed ones), sorted by name.
    fn extra_pairs(&self, key: &SeriesKey) -> Vec<(String, String)> {
        let res = self.resources.get(&key.resource.key()).map(|(_, l)| l);
        series_labels(key, res)
            .iter()
            .filter(|(n, _)| !FIXED_NAMES.contains(n))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn add(&mut self, id: u64, hash: u64, key: &SeriesKey) {
        let extra_pairs = self.extra_pairs(key);
        let name = metric_name(&key.metric, key.unit);
        let s = &mut self.syms;
        let r = &key.resource;
        let extra = (!key.labels.is_empty() || !extra_pairs.is_empty()).then(|| {
            let mut x = Vec::with_capacity(1 + 2 * (key.labels.len() + extra_pairs.len()));
            x.push(key.labels.len() as Sym);
            for (k, v) in key.labels.iter() {
                x.push(s.intern(k));
                x.push(s.intern(v));
            }
            for (k, v) in &extra_pairs {
                x.push(s.intern(k));
                x.push(s.intern(v));
            }
            x.into_boxed_slice()
        });
        let e = Entry {
            metric: s.intern(&key.metric),
            name: s.intern(&name),
            provider: s.intern(&r.provider),
            account: s.intern(&r.account),
            region: s.intern(&r.region),
            id: s.intern(&r.id),
            unit: key.unit,
            stat: key.stat,
            extra,
        };
        for (n, v) in self.label_syms(&e) {
            post(&mut self.postings, n, v, id);
        }
        self.metrics
            .entry(name)
            .or_insert_with(|| (key.metric.clone(), key.unit, 0))
            .2 += 1;
        self.pages.insert(id, e);
        let Index {
            hasher,
            syms,
            pages,
            by_key,
            ..
        } = self;
        by_key.insert_unique(hash, id, rehash(hasher, syms, pages));
        self.next_id = self.next_id.max(id + 1);
    }

    /// The (name, value) symbols of the series' Prometheus labels, without empty values.
    fn label_syms(&self, e: &Entry) -> Vec<(Sym, Sym)> {
        let f = &self.fixed;
        let mut v = vec![
            (f.name, e.name),
            (f.provider, e.provider),
            (f.account, e.account),
            (f.region, e.region),
            (f.resource_id, e.id),
            (f.stat, self.stat_sym(e.stat)),
        ];
        v.retain(|(_, val)| !self.s(*val).is_empty());
        v.extend(e.extra_labels().chunks_exact(2).map(|p| (p[0], p[1])));
        v
    }

    /// The series' Prometheus labels.
    #[cfg(test)]
    pub fn labels(&self, id: u64) -> Option<Labels> {
        let e = self.pages.get(id)?;
        let mut pairs = Vec::new();
        self.label_pairs(e, &mut pairs);
        Some(Labels::from_sorted_pairs(&pairs))
    }

    /// The series' labels in name order (Prometheus' label order), empty values included
    /// (the encoders drop them). The fixed names are in name order, and so are the extra
    /// pairs as stored: the two lists are merged, not sorted.
    fn label_pairs<'a>(&'a self, e: &'a Entry, pairs: &mut Vec<(&'a str, &'a str)>) {
        let f = &self.fixed;
        let fixed = [
            (self.s(f.name), self.s(e.name)),
            (self.s(f.account), self.s(e.account)),
            (self.s(f.provider), self.s(e.provider)),
            (self.s(f.region), self.s(e.region)),
            (self.s(f.resource_id), self.s(e.id)),
            ("stat", e.stat.as_str()),
        ];
        pairs.clear();
        let extra = e.extra_labels();
        if extra.is_empty() {
            pairs.extend_from_slice(&fixed);
            return;
        }
        let mut more = extra
            .chunks_exact(2)
            .map(|p| (self.s(p[0]), self.s(p[1])))
            .peekable();
        for fx in fixed {
            while let Some(x) = more.next_if(|x| x.0 < fx.0) {
                pairs.push(x);
            }
            pairs.push(fx);
        }
        pairs.extend(more);
    }

    /// The labels of the series among `ids` that exist, sorted in Prometheus' label
    /// order (what the engine and the series API need), with their ids.
    ///
    /// The order is taken from one buffer of sort keys, `name NUL value NUL` per label:
    /// with no NUL inside names or values (names are sanitized, ingest refuses NUL in
    /// values), comparing keys byte by byte is `labels.Compare`, and a `memcmp` of keys is
    /// several times faster than comparing encoded label sets pair by pair. Data that
    /// holds a NUL anyway is sorted by the label sets themselves.
    pub fn sorted_labels(&self, ids: &[u64]) -> Vec<(u64, Labels)> {
        let mut keys: Vec<u8> = Vec::new();
        let mut sel: Vec<Selected> = Vec::with_capacity(ids.len());
        let mut pairs = Vec::new();
        let mut nul_free = true;
        for &id in ids {
            let Some(e) = self.pages.get(id) else {
                continue;
            };
            self.label_pairs(e, &mut pairs);
            let start = keys.len();
            let mut n = 0;
            for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
                keys.extend_from_slice(name.as_bytes());
                keys.push(0);
                keys.extend_from_slice(value.as_bytes());
                keys.push(0);
                n += 2;
            }
            nul_free &= keys[start..].iter().filter(|b| **b == 0).count() == n;
            sel.push(Selected {
                head: 0,
                id,
                labels: Labels::from_sorted_pairs(&pairs),
                start,
                end: keys.len(),
            });
        }
        if !nul_free {
            sel.sort_unstable_by(|a, b| a.labels.cmp(&b.labels).then(a.id.cmp(&b.id)));
            return sel.into_iter().map(|s| (s.id, s.labels)).collect();
        }
        // Selected series mostly share their first labels (metric name, account, provider):
        // skip the bytes every key shares, and compare the next eight as one integer
        // before reading the rest.
        let shared = match sel.first() {
            None => 0,
            Some(f) => {
                let first = &keys[f.start..f.end];
                sel.iter()
                    .map(|s| common_prefix(first, &keys[s.start..s.end]))
                    .min()
                    .unwrap_or(0)
            }
        };
        for s in &mut sel {
            s.start += shared;
            let mut head = [0u8; 8];
            let n = (s.end - s.start).min(8);
            head[..n].copy_from_slice(&keys[s.start..s.start + n]);
            s.head = u64::from_be_bytes(head);
        }
        sel.sort_unstable_by(|a, b| {
            a.head
                .cmp(&b.head)
                .then_with(|| keys[a.start..a.end].cmp(&keys[b.start..b.end]))
                .then(a.id.cmp(&b.id))
        });
        sel.into_iter().map(|s| (s.id, s.labels)).collect()
    }

    /// One label's value of a series (`""` when absent), without encoding the label set.
    fn label_value(&self, e: &Entry, name: &str) -> &str {
        let fixed = match name {
            "__name__" => Some(e.name),
            "provider" => Some(e.provider),
            "account" => Some(e.account),
            "region" => Some(e.region),
            "resource_id" => Some(e.id),
            "stat" => return e.stat.as_str(),
            _ => None,
        };
        if let Some(sym) = fixed {
            return self.s(sym);
        }
        e.extra_labels()
            .chunks_exact(2)
            .find(|p| self.s(p[0]) == name)
            .map_or("", |p| self.s(p[1]))
    }

    /// Removes series (unknown ids are ignored); returns how many were removed. Batched,
    /// because one retention run can empty a whole generation of churned series, and
    /// removing ids one by one from long posting lists is quadratic.
    pub fn remove(&mut self, ids: &[u64]) -> usize {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut per_posting: HashMap<(Sym, Sym), Vec<u64>, foldhash::fast::RandomState> =
            HashMap::default();
        let mut removed = Vec::with_capacity(sorted.len());
        for id in sorted {
            let Some(e) = self.pages.get(id) else {
                continue;
            };
            for (n, v) in self.label_syms(e) {
                per_posting.entry((n, v)).or_default().push(id);
            }
            let hash = Index::entry_hash(&self.hasher, &self.syms, e);
            if let Ok(found) = self.by_key.find_entry(hash, |&x| x == id) {
                found.remove();
            }
            let name = self.syms.get(e.name);
            if let Some(m) = self.metrics.get_mut(name) {
                m.2 -= 1;
                if m.2 == 0 {
                    self.metrics.remove(name);
                }
            }
            removed.push(id);
        }
        for ((n, v), drop) in per_posting {
            let Some(values) = self.postings.get_mut(&n) else {
                continue;
            };
            if values.get_mut(&v).is_some_and(|list| list.remove(&drop)) {
                values.remove(&v);
            }
            if values.is_empty() {
                self.postings.remove(&n);
            }
        }
        for &id in &removed {
            if let Some(e) = self.pages.remove(id) {
                for sym in e.syms() {
                    self.syms.release(sym);
                }
            }
        }
        // Hash tables keep their capacity when emptied: give it back once the live set is
        // under half of it. Under churn the peak is two generations (the next one arrives
        // before retention drops the last), so tables left at the peak's size would hold
        // room for twice the live set; shrinking costs one rehash per retention run.
        fn shrink<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(m: &mut HashMap<K, V, S>) {
            if m.capacity() > 1024 && m.len() < m.capacity() / 2 {
                m.shrink_to_fit();
            }
        }
        for values in self.postings.values_mut() {
            shrink(values);
        }
        shrink(&mut self.postings);
        self.syms.shrink();
        if self.by_key.capacity() > 1024 && self.by_key.len() < self.by_key.capacity() / 2 {
            let Index {
                hasher,
                syms,
                pages,
                by_key,
                ..
            } = self;
            by_key.shrink_to_fit(rehash(hasher, syms, pages));
        }
        removed.len()
    }

    /// Series matching the REST query with id > `after`, in id order, lazily.
    pub fn matching<'a>(
        &'a self,
        q: &'a SeriesQuery,
        after: u64,
    ) -> impl Iterator<Item = u64> + 'a {
        self.pages
            .iter_after(after)
            .filter(move |(_, e)| self.entry_matches(q, e))
            .map(|(id, _)| id)
    }

    fn entry_matches(&self, q: &SeriesQuery, e: &Entry) -> bool {
        if let Some(m) = &q.metric {
            if !super::series::glob_match(m, self.s(e.metric)) {
                return false;
            }
        }
        let eq =
            |want: &Option<String>, have: Sym| want.as_deref().is_none_or(|w| w == self.s(have));
        if !(eq(&q.provider, e.provider) && eq(&q.account, e.account) && eq(&q.region, e.region)) {
            return false;
        }
        if let Some(key) = &q.resource {
            if !self.key_is(e, key) {
                return false;
            }
        }
        if q.stat.is_some_and(|s| s != e.stat) {
            return false;
        }
        let raw = e.raw_labels();
        q.labels.iter().all(|(n, v)| {
            raw.chunks_exact(2)
                .any(|p| self.s(p[0]) == n && self.s(p[1]) == v)
        })
    }

    /// Whether `key` is the entry's resource key, `provider/account/region/id`.
    fn key_is(&self, e: &Entry, key: &str) -> bool {
        let mut rest = key;
        for (i, sym) in [e.provider, e.account, e.region, e.id]
            .into_iter()
            .enumerate()
        {
            let Some(after) = rest.strip_prefix(self.s(sym)) else {
                return false;
            };
            rest = after;
            if i < 3 {
                let Some(after) = rest.strip_prefix('/') else {
                    return false;
                };
                rest = after;
            }
        }
        rest.is_empty()
    }

    /// The series of a resource, by its key. The key's last part, the resource id, may
    /// itself hold `/` (ARNs, Azure resource URIs), so every suffix after a `/` is tried
    /// as the id and each candidate's whole key is compared.
    fn resource_series(&self, key: &str) -> Vec<u64> {
        let Some(values) = self.postings.get(&self.fixed.resource_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, _) in key.match_indices('/') {
            let Some(list) = self.syms.lookup(&key[i + 1..]).and_then(|s| values.get(&s)) else {
                continue;
            };
            for &id in list.as_slice() {
                if self.pages.get(id).is_some_and(|e| self.key_is(e, key)) {
                    out.push(id);
                }
            }
        }
        out
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
        for id in self.resource_series(rkey) {
            let Some(key) = self.key(id) else {
                continue;
            };
            let new_pairs = self.extra_pairs(&key);
            let Some(e) = self.pages.get(id) else {
                continue;
            };
            let same = e.extra_labels().len() == 2 * new_pairs.len()
                && e.extra_labels()
                    .chunks_exact(2)
                    .zip(&new_pairs)
                    .all(|(p, (n, v))| self.s(p[0]) == n && self.s(p[1]) == v);
            if same {
                continue;
            }
            for (n, v) in self.label_syms(e) {
                unpost(&mut self.postings, n, v, id);
            }
            // The new list: the same raw labels (one more reference each), then the new
            // extra pairs; the whole old list is released after.
            let n_raw = e.raw_labels().len() / 2;
            let mut x: Vec<Sym> = Vec::with_capacity(1 + 2 * (n_raw + new_pairs.len()));
            x.push(n_raw as Sym);
            x.extend_from_slice(e.raw_labels());
            for sym in &x[1..] {
                self.syms.retain(*sym);
            }
            for (n, v) in &new_pairs {
                x.push(self.syms.intern(n));
                x.push(self.syms.intern(v));
            }
            let Some(e) = self.pages.get_mut(id) else {
                continue;
            };
            let old = std::mem::replace(&mut e.extra, (x.len() > 1).then(|| x.into_boxed_slice()));
            for sym in old.iter().flat_map(|o| o[1..].iter()) {
                self.syms.release(*sym);
            }
            let Some(e) = self.pages.get(id) else {
                continue;
            };
            for (n, v) in self.label_syms(e) {
                post(&mut self.postings, n, v, id);
            }
        }
    }

    /// The ids of the series matching every matcher, sorted by id.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut lists: Vec<Cow<'_, [u64]>> = Vec::new();
        let mut filters: Vec<&Matcher> = Vec::new();
        for m in matchers {
            if m.matches("") {
                filters.push(m);
                continue;
            }
            let Some(values) = self
                .syms
                .lookup(&m.name)
                .and_then(|n| self.postings.get(&n))
            else {
                return Vec::new();
            };
            let get = |v: &str| self.syms.lookup(v).and_then(|v| values.get(&v));
            let list: Cow<'_, [u64]> = match m.op {
                MatchOp::Equal => match get(&m.value) {
                    Some(l) => Cow::Borrowed(l),
                    None => return Vec::new(),
                },
                MatchOp::RegexMatch if literal_alternatives(&m.value).is_some() => {
                    let alts = literal_alternatives(&m.value).unwrap_or_default();
                    Cow::Owned(union(
                        alts.iter()
                            .filter_map(|a| get(a).map(|l| l.as_slice()))
                            .collect(),
                    ))
                }
                _ => Cow::Owned(union(
                    values
                        .iter()
                        .filter(|(v, _)| m.matches(self.s(**v)))
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
            self.ids().collect()
        } else {
            intersect(lists)
        };
        for f in filters {
            if cands.is_empty() {
                break;
            }
            let Some(values) = self
                .syms
                .lookup(&f.name)
                .and_then(|n| self.postings.get(&n))
            else {
                continue; // no series has the label: all see "", which `f` accepts
            };
            if cands.len() < CHECK_LABELS_BELOW {
                cands.retain(|id| {
                    self.pages
                        .get(*id)
                        .is_some_and(|e| f.matches(self.label_value(e, &f.name)))
                });
                continue;
            }
            let rejected: Vec<&[u64]> = match f.op {
                MatchOp::NotEqual => self
                    .syms
                    .lookup(&f.value)
                    .and_then(|v| values.get(&v))
                    .map(|l| vec![l.as_slice()])
                    .unwrap_or_default(),
                _ => values
                    .iter()
                    .filter(|(v, _)| !f.matches(self.s(**v)))
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

    #[cfg(test)]
    pub fn sizes(&self) -> IndexSizes {
        IndexSizes {
            series: self.pages.len,
            by_key: self.by_key.len(),
            label_names: self.postings.len(),
            posting_lists: self.postings.values().map(|v| v.len()).sum(),
            posted_ids: self
                .postings
                .values()
                .flat_map(|v| v.values())
                .map(|l| l.len())
                .sum(),
            metrics: self.metrics.len(),
            symbols: self.syms.len(),
            pages: self.pages.pages.len(),
        }
    }
}

/// What the point → series table hashes an id by when it grows or shrinks: its key.
fn rehash<'a>(
    hasher: &'a KeyHasher,
    syms: &'a Symbols,
    pages: &'a Pages,
) -> impl Fn(&u64) -> u64 + 'a {
    move |&id| {
        pages
            .get(id)
            .map_or(0, |e| Index::entry_hash(hasher, syms, e))
    }
}

fn post(postings: &mut SymMap<SymMap<IdList>>, n: Sym, v: Sym, id: u64) {
    let values = postings.entry(n).or_default();
    match values.get_mut(&v) {
        Some(list) => list.insert(id),
        None => {
            values.insert(v, IdList::One(id));
        }
    }
}

fn unpost(postings: &mut SymMap<SymMap<IdList>>, n: Sym, v: Sym, id: u64) {
    if let Some(values) = postings.get_mut(&n) {
        if values
            .get_mut(&v)
            .is_some_and(|list| list.remove(std::slice::from_ref(&id)))
        {
            values.remove(&v);
        }
        if values.is_empty() {
            postings.remove(&n);
        }
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

    #[test]
    fn entries_are_small() {
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 48);
        assert_eq!(std::mem::size_of::<IdList>(), 16);
    }

    fn key(id: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey {
            metric: "cpu.utilization".into(),
            unit: Unit::Percent,
            stat: Stat::Avg,
            resource: ResourceRef {
                provider: "aws".into(),
                account: "123".into(),
                region: "".into(),
                id: id.into(),
            },
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, u8, Option<u8>),
        Resource(u8, u8, i64),
        DropResourcesBefore(i64),
        Remove(Vec<u8>),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..6, 0u8..3, proptest::option::of(0u8..3)).prop_map(|(r, m, l)| Op::Add(r, m, l)),
            (0u8..6, 0u8..3, 0i64..10).prop_map(|(r, t, at)| Op::Resource(r, t, at)),
            (0i64..10).prop_map(Op::DropResourcesBefore),
            proptest::collection::vec(0u8..40, 0..6).prop_map(Op::Remove),
        ]
    }

    proptest::proptest! {
        /// Any sequence of new series, resource records, resource expiry and removals
        /// keeps the index equal to what it describes: every live series' labels are those
        /// `series_labels` gives for its key and its resource's latest record, each of its
        /// labels selects it, the postings hold nothing else, and once every series is
        /// removed only the permanent strings stay interned.
        #[test]
        fn the_index_stays_consistent_under_any_sequence(ops in proptest::collection::vec(op(), 1..40)) {
            let mut ix = Index::new(KeyHasher::default());
            for op in ops {
                match op {
                    Op::Add(r, m, l) => {
                        let mut k = key(&format!("arn:x/r{r}"), &[]);
                        k.metric = format!("m{m}");
                        if let Some(l) = l {
                            k.labels.insert(format!("l{l}"), format!("v{l}"));
                        }
                        let p = Point {
                            metric: k.metric.as_str().into(),
                            unit: k.unit,
                            stat: k.stat,
                            period_s: 60,
                            ts: chrono::DateTime::from_timestamp(0, 0).unwrap(),
                            value: 1.0,
                            resource: std::sync::Arc::new(k.resource.clone()),
                            labels: k.labels.clone().into(),
                        };
                        let h = ix.hasher.hash_point(&p);
                        if ix.find(h, &p).is_none() {
                            ix.allocate(h, &k);
                        }
                    }
                    Op::Resource(r, t, at) => {
                        let rkey = key(&format!("arn:x/r{r}"), &[]).resource.key();
                        ix.upsert_resource(rkey, at, ResourceLabels {
                            kind: "fn".into(),
                            name: format!("n{t}"),
                            tags: [("team".to_string(), format!("t{t}"))].into(),
                        });
                    }
                    Op::DropResourcesBefore(at) => ix.drop_resources_before(at),
                    Op::Remove(ids) => {
                        let ids: Vec<u64> = ids.into_iter().map(u64::from).collect();
                        ix.remove(&ids);
                    }
                }
                let mut posted = 0;
                for id in ix.ids() {
                    let k = ix.key(id).unwrap();
                    let res = ix.resources.get(&k.resource.key()).map(|(_, l)| l);
                    let want = series_labels(&k, res);
                    proptest::prop_assert_eq!(ix.labels(id).unwrap(), want.clone());
                    for (n, v) in want.iter() {
                        let m = Matcher::new(MatchOp::Equal, n, v).unwrap();
                        proptest::prop_assert!(ix.select(&[m]).contains(&id), "{} {}={}", id, n, v);
                        posted += 1;
                    }
                }
                proptest::prop_assert_eq!(ix.sizes().posted_ids, posted);
                proptest::prop_assert_eq!(ix.sizes().by_key, ix.len());
            }
            let all: Vec<u64> = ix.ids().collect();
            ix.remove(&all);
            ix.drop_resources_before(i64::MAX);
            let s = ix.sizes();
            proptest::prop_assert_eq!((s.series, s.by_key, s.label_names, s.metrics), (0, 0, 0, 0));
            proptest::prop_assert_eq!(s.symbols, 6 + Stat::ALL.len());
        }

        /// The key sort of `sorted_labels` gives the order of the encoded label sets
        /// (Prometheus' `labels.Compare`), with point labels that sort before and among the
        /// fixed ones, empty values (absent labels) and, for the fallback, NUL characters.
        #[test]
        fn sorted_labels_is_label_order(
            series in proptest::collection::vec(
                (
                    "[ab]{1,2}",
                    "(|eu|us)",
                    proptest::collection::btree_map("(A|a|zz|_x|region|stat)", "(|0|1|\\x00)", 0..3),
                ),
                1..40,
            )
        ) {
            let mut ix = Index::new(KeyHasher::default());
            for (i, (id, region, labels)) in series.iter().enumerate() {
                let mut k = key(id, &[]);
                k.resource.region = region.as_str().into();
                k.labels = labels.clone();
                ix.insert(i as u64 + 1, &k);
            }
            let ids: Vec<u64> = ix.ids().collect();
            let got: Vec<(u64, Labels)> = ix.sorted_labels(&ids);
            let mut want: Vec<(u64, Labels)> =
                ids.iter().map(|id| (*id, ix.labels(*id).unwrap())).collect();
            want.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn keys_and_labels_round_trip_and_resources_relabel() {
        let mut ix = Index::new(KeyHasher::default());
        let a = key("arn:aws:lambda:x/fn/1", &[("provider", "p"), ("cpu", "0")]);
        ix.insert(7, &a);
        assert_eq!(ix.key(7).unwrap(), a);
        let l = ix.labels(7).unwrap();
        let pairs: Vec<(&str, &str)> = l.iter().collect();
        assert_eq!(
            pairs,
            [
                ("__name__", "cpu_utilization_percent"),
                ("account", "123"),
                ("cpu", "0"),
                ("exported_provider", "p"),
                ("provider", "aws"),
                ("resource_id", "arn:aws:lambda:x/fn/1"),
                ("stat", "avg"),
            ]
        );
        let rkey = a.resource.key();
        ix.upsert_resource(
            rkey.clone(),
            5,
            ResourceLabels {
                kind: "function".into(),
                name: "f".into(),
                tags: [("team".to_string(), "a".to_string())].into(),
            },
        );
        let l = ix.labels(7).unwrap();
        assert_eq!(l.get("kind"), Some("function"));
        assert_eq!(l.get("tag_team"), Some("a"));
        let team = Matcher::new(MatchOp::Equal, "tag_team", "a").unwrap();
        assert_eq!(ix.select(std::slice::from_ref(&team)), [7]);
        ix.drop_resources_before(10);
        assert_eq!(ix.labels(7).unwrap().get("kind"), None);
        assert!(ix.select(&[team]).is_empty());
        assert_eq!(ix.key(7).unwrap(), a, "the key survives relabelling");

        assert_eq!(ix.remove(&[7, 8]), 1);
        assert_eq!(ix.len(), 0);
        let s = ix.sizes();
        assert_eq!((s.by_key, s.label_names, s.metrics, s.pages), (0, 0, 0, 0));
        // Only the fixed names and stat values stay interned.
        assert_eq!(s.symbols, 6 + Stat::ALL.len());
    }
}
