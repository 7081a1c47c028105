//! Label maps: the free-form [`Labels`] and the shared [`PointLabels`] of a point.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// Free-form string labels. Ordered, so that output and series identity are stable.
pub type Labels = BTreeMap<String, String>;

/// The labels of a [`Point`](crate::Point): a [`Labels`] map behind a shared pointer.
///
/// A collection makes thousands of points of one metric of one source that all carry the
/// same labels (`source = "ebs"` on every EBS point); cloning this is a reference-count bump
/// where cloning the map would allocate a 544-byte B-tree node per point, which was most of
/// the memory of a large AWS collection (`docs/benchmarks.md`). Reads go through `Deref` to
/// the map; writes (`DerefMut`) copy the map first when it is shared, so a processor that
/// changes one point's labels never changes another's. The empty set allocates nothing.
#[derive(Clone, Default)]
pub struct PointLabels(Option<Arc<Labels>>);

/// What an empty `PointLabels` reads as.
static EMPTY: Labels = Labels::new();

impl PointLabels {
    pub const fn new() -> Self {
        PointLabels(None)
    }
}

impl Deref for PointLabels {
    type Target = Labels;
    fn deref(&self) -> &Labels {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl DerefMut for PointLabels {
    fn deref_mut(&mut self) -> &mut Labels {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }
}

impl From<Labels> for PointLabels {
    fn from(map: Labels) -> Self {
        if map.is_empty() {
            PointLabels(None)
        } else {
            PointLabels(Some(Arc::new(map)))
        }
    }
}

impl From<PointLabels> for Labels {
    fn from(labels: PointLabels) -> Self {
        match labels.0 {
            None => Labels::new(),
            Some(shared) => Arc::unwrap_or_clone(shared),
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for PointLabels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<Labels>()
            .into()
    }
}

impl<'a> IntoIterator for &'a PointLabels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.deref().iter()
    }
}

impl PartialEq for PointLabels {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for PointLabels {}

impl PartialEq<Labels> for PointLabels {
    fn eq(&self, other: &Labels) -> bool {
        **self == *other
    }
}

impl fmt::Debug for PointLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.deref().fmt(f)
    }
}

impl Serialize for PointLabels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.deref().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PointLabels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Labels::deserialize(d).map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_until_one_is_written() {
        let a: PointLabels = [("source", "ebs")].into_iter().collect();
        let mut b = a.clone();
        assert!(Arc::ptr_eq(a.0.as_ref().unwrap(), b.0.as_ref().unwrap()));
        b.insert("device".into(), "xvda".into());
        assert_eq!(a.len(), 1, "writing a clone leaves the original alone");
        assert_eq!(b.get("device").map(String::as_str), Some("xvda"));
        assert_eq!(b.get("source").map(String::as_str), Some("ebs"));
    }

    #[test]
    fn empty_allocates_nothing_and_round_trips_as_a_map() {
        let none = PointLabels::from(Labels::new());
        assert!(none.0.is_none() && none.is_empty());
        assert_eq!(serde_json::to_string(&none).unwrap(), "{}");
        let back: PointLabels = serde_json::from_str(r#"{"a":"1"}"#).unwrap();
        assert_eq!(back, [("a", "1")].into_iter().collect::<PointLabels>());
    }
}
