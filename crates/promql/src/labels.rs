//! Label sets: sorted by name, cheap to clone (one `Arc`), ordered like Prometheus'
//! `labels.Compare` so results sort the same way.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A label set sorted by name with no empty values (Prometheus treats an empty value as
/// an absent label).
///
/// All names and values live in one shared buffer (`len name len value ...`), so a
/// clone is one reference count, hashing and equality read contiguous bytes, and
/// deriving a new set is one allocation and a copy — what the engine does per series.
/// The order compares pair by pair, then by length: Prometheus' `labels.Compare`, which
/// sorts range-query results.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Arc<[u8]>);

fn put(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Iterates a label set's `(name, value)` pairs in name order.
#[derive(Clone)]
pub struct LabelsIter<'a> {
    buf: &'a [u8],
}

impl<'a> LabelsIter<'a> {
    fn take(&mut self) -> &'a str {
        let len = u32::from_le_bytes(self.buf[..4].try_into().unwrap()) as usize;
        let bytes = &self.buf[4..4 + len];
        self.buf = &self.buf[4 + len..];
        // SAFETY: the buffer is only ever built by `put` from `&str`s, so every string
        // slice it delimits is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let name = self.take();
        let value = self.take();
        Some((name, value))
    }
}

impl Labels {
    /// Builds a label set from `(name, value)` pairs in any order; drops empty values
    /// and, for repeated names, keeps the last pair.
    pub fn from_pairs<N, V, I>(pairs: I) -> Self
    where
        N: AsRef<str>,
        V: AsRef<str>,
        I: IntoIterator<Item = (N, V)>,
    {
        let mut v: Vec<(N, V)> = pairs.into_iter().collect();
        // A stable sort keeps the input order among equal names so the last one wins.
        v.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut kept: Vec<(&str, &str)> = Vec::with_capacity(v.len());
        for (n, val) in &v {
            let (n, val) = (n.as_ref(), val.as_ref());
            match kept.last_mut() {
                Some(prev) if prev.0 == n => *prev = (n, val),
                _ => kept.push((n, val)),
            }
        }
        Labels::from_sorted(kept.into_iter().filter(|(_, v)| !v.is_empty()))
    }

    /// Encodes pairs already sorted by unique name, dropping empty values: for callers
    /// that hold their labels sorted already (the store's index), without the sort and
    /// the copies of [`Labels::from_pairs`].
    pub fn from_sorted_pairs(pairs: &[(&str, &str)]) -> Self {
        debug_assert!(
            pairs.windows(2).all(|w| w[0].0 < w[1].0),
            "names out of order or repeated: {pairs:?}"
        );
        let size = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum();
        let mut buf = Vec::with_capacity(size);
        for (n, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            put(&mut buf, n);
            put(&mut buf, v);
        }
        Labels(buf.into())
    }

    /// Encodes pairs already sorted by unique name, without empty values.
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut buf = Vec::new();
        for (n, v) in pairs {
            put(&mut buf, n);
            put(&mut buf, v);
        }
        Labels(buf.into())
    }

    pub fn empty() -> Self {
        Labels::default()
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> LabelsIter<'_> {
        LabelsIter { buf: &self.0 }
    }

    /// The value of `name`, or `None` when the label is absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The value of `name`, or `""` when absent (how matchers see a missing label).
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The same labels without `__name__`; shares the buffer when there is none.
    pub fn without_metric_name(&self) -> Labels {
        let mut it = self.iter();
        let mut start = 0;
        while let Some((n, _)) = it.next() {
            let end = self.0.len() - it.buf.len();
            if n == METRIC_NAME {
                let mut buf = Vec::with_capacity(self.0.len() - (end - start));
                buf.extend_from_slice(&self.0[..start]);
                buf.extend_from_slice(&self.0[end..]);
                return Labels(buf.into());
            }
            start = end;
        }
        self.clone()
    }

    /// Only the labels whose names are in `names`.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels::from_sorted(self.iter().filter(|(n, _)| names.iter().any(|k| k == n)))
    }

    /// All labels except those whose names are in `names`.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels::from_sorted(self.iter().filter(|(n, _)| !names.iter().any(|k| k == n)))
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut buf = Vec::with_capacity(self.0.len() + name.len() + value.len() + 8);
        let mut placed = value.is_empty();
        for (n, v) in self.iter() {
            if !placed && n >= name {
                put(&mut buf, name);
                put(&mut buf, value);
                placed = true;
            }
            if n != name {
                put(&mut buf, n);
                put(&mut buf, v);
            }
        }
        if !placed {
            put(&mut buf, name);
            put(&mut buf, value);
        }
        Labels(buf.into())
    }
}

/// How many leading bytes `x` and `y` share, eight at a time while they can (also the
/// store's label sort, which compares keys past what they all share).
pub fn common_prefix(x: &[u8], y: &[u8]) -> usize {
    let n = x.len().min(y.len());
    let mut i = 0;
    while i + 8 <= n && x[i..i + 8] == y[i..i + 8] {
        i += 8;
    }
    while i < n && x[i] == y[i] {
        i += 1;
    }
    i
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        // Sets that are sorted together mostly share their first pairs (metric name,
        // account, provider, region): skip the bytes they share, then compare pair by pair
        // from the pair where they first differ. The pairs before it are byte-identical in
        // both buffers, hence equal pairs at the same offsets.
        let (x, y) = (&*self.0, &*other.0);
        let common = common_prefix(x, y);
        if common == x.len() && common == y.len() {
            return Ordering::Equal;
        }
        let read = |at: usize| -> Option<usize> {
            Some(u32::from_le_bytes(x.get(at..at + 4)?.try_into().ok()?) as usize)
        };
        let mut start = 0;
        while let Some(name) = read(start) {
            let Some(value) = read(start + 4 + name) else {
                break;
            };
            let end = start + 8 + name + value;
            if end > common {
                break;
            }
            start = end;
        }
        let (mut a, mut b) = (
            LabelsIter { buf: &x[start..] },
            LabelsIter { buf: &y[start..] },
        );
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match x.0.cmp(y.0).then_with(|| x.1.cmp(y.1)) {
                    Ordering::Equal => {}
                    o => return o,
                },
            }
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = LabelsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Prometheus' text form: `{a="1", b="2"}` with Go-style quoting.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (n, v) in self.iter() {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sorts_drops_empty_and_keeps_last_duplicate() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.to_string(), r#"{a="3", b="2"}"#);
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.get_or_empty("c"), "");
    }

    #[test]
    fn order_matches_prometheus_compare() {
        let a = Labels::from_pairs([("a", "1")]);
        let ab = Labels::from_pairs([("a", "1"), ("b", "1")]);
        let a2 = Labels::from_pairs([("a", "2")]);
        assert!(a < ab, "a prefix sorts first");
        assert!(ab < a2, "values compare before lengths");
    }

    proptest::proptest! {
        /// The shortcut over shared bytes orders like the plain pair-by-pair comparison
        /// (Prometheus' `labels.Compare`), on sets drawn from few short strings so that
        /// they share prefixes, names and values often.
        #[test]
        fn shortcut_order_matches_pair_by_pair(
            a in proptest::collection::vec(("[ab]{1,3}", "[ab]{0,3}"), 0..5),
            b in proptest::collection::vec(("[ab]{1,3}", "[ab]{0,3}"), 0..5),
        ) {
            let (a, b) = (Labels::from_pairs(a), Labels::from_pairs(b));
            let plain = {
                let (mut x, mut y) = (a.iter(), b.iter());
                loop {
                    match (x.next(), y.next()) {
                        (None, None) => break Ordering::Equal,
                        (None, Some(_)) => break Ordering::Less,
                        (Some(_), None) => break Ordering::Greater,
                        (Some(p), Some(q)) => match p.cmp(&q) {
                            Ordering::Equal => {}
                            o => break o,
                        },
                    }
                }
            };
            proptest::prop_assert_eq!(a.cmp(&b), plain);
            proptest::prop_assert_eq!(a == b, plain == Ordering::Equal);
        }
    }

    #[test]
    fn with_sets_replaces_and_removes() {
        let l = Labels::from_pairs([("__name__", "m"), ("a", "1")]);
        assert_eq!(
            l.with("b", "2").to_string(),
            r#"{__name__="m", a="1", b="2"}"#
        );
        assert_eq!(l.with("a", "9").get("a"), Some("9"));
        assert_eq!(l.with("a", "").to_string(), r#"{__name__="m"}"#);
        assert_eq!(
            l.with("_", "0").to_string(),
            r#"{_="0", __name__="m", a="1"}"#
        );
        assert_eq!(l.without_metric_name().to_string(), r#"{a="1"}"#);
        let upper = Labels::from_pairs([("Z", "1"), ("__name__", "m"), ("a", "2")]);
        assert_eq!(upper.without_metric_name().to_string(), r#"{Z="1", a="2"}"#);
        assert_eq!(
            upper.without_metric_name(),
            Labels::from_pairs([("a", "2"), ("Z", "1")])
        );
        assert_eq!(upper.len(), 3);
    }

    #[test]
    fn label_name_validity() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
    }
}
