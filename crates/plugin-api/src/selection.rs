//! Metric globs, as tasks and processors write them (`cpu.*`, `disk.*_iops`).

use globset::{Glob, GlobSet, GlobSetBuilder};

/// A set of metric name globs. Empty means "everything".
#[derive(Debug, Clone, Default)]
pub struct MetricSelection {
    patterns: Vec<String>,
    set: Option<GlobSet>,
}

impl MetricSelection {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Compiles `patterns`; `*` matches any run of characters including dots.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Ok(Self::all());
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let g = Glob::new(p.as_ref())
                .map_err(|e| format!("bad metric glob `{}`: {e}", p.as_ref()))?;
            b.add(g);
        }
        let set = b.build().map_err(|e| e.to_string())?;
        Ok(MetricSelection {
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
            set: Some(set),
        })
    }

    pub fn is_all(&self) -> bool {
        self.set.is_none()
    }

    pub fn matches(&self, metric: &str) -> bool {
        self.set.as_ref().is_none_or(|s| s.is_match(metric))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_cross_dots_and_empty_means_all() {
        let s = MetricSelection::new(&["cpu.*", "disk.*_iops"]).unwrap();
        assert!(s.matches("cpu.utilization"));
        assert!(s.matches("disk.read_iops"));
        assert!(!s.matches("disk.read_throughput"));
        assert!(MetricSelection::all().matches("anything"));
        assert!(MetricSelection::new(&["[oops"]).is_err());
    }
}
