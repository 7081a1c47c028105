//! Sources of series: the [`Querier`] trait the engine reads through, the budget of one
//! select, and [`MemoryQuerier`], a source held in memory.

use crate::error::QueryError;
use crate::labels::{Labels, METRIC_NAME};
use crate::matcher::{matches_all, Matcher};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One series from the source: labels (including `__name__`) and samples sorted by time
/// (ms since the epoch), timestamps and values in two columns of equal length.
///
/// The columns are shared (`Arc`), so a source that keeps its data in memory can hand out
/// series without copying; samples outside the asked-for time range are allowed and
/// ignored.
#[derive(Clone, Debug)]
pub struct Series {
    pub labels: Labels,
    pub timestamps: Arc<[i64]>,
    pub values: Arc<[f64]>,
}

impl Series {
    /// A series from owned columns. Panics if the lengths differ (a bug in the caller).
    pub fn new(labels: Labels, timestamps: Vec<i64>, values: Vec<f64>) -> Self {
        assert_eq!(
            timestamps.len(),
            values.len(),
            "Series::new: {} timestamps but {} values for {labels}",
            timestamps.len(),
            values.len()
        );
        Series {
            labels,
            timestamps: timestamps.into(),
            values: values.into(),
        }
    }
}

/// What one [`Querier::select`] may load: what is left of the query's series and sample
/// limits, and its deadline. A source counts series before it loads any sample (from its
/// index), counts samples while it loads them, and looks at the clock while it works, so
/// that a query over a limit fails before it has used the memory or time it would need.
#[derive(Clone, Debug)]
pub struct SelectBudget {
    /// The query's series limit ([`Options::max_series`](crate::Options::max_series)), for the error message.
    pub max_series: usize,
    /// Series this select may still return.
    pub series_left: usize,
    /// The query's sample limit ([`Options::max_samples`](crate::Options::max_samples)), for the error message.
    pub max_samples: usize,
    /// Samples (within the asked-for time range) this select may still load.
    pub samples_left: usize,
    pub deadline: Option<Instant>,
    /// The query's time limit, for the error message.
    pub timeout: Option<Duration>,
    /// Set when whoever asked is gone ([`Options::cancel`](crate::Options::cancel)).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl SelectBudget {
    /// No limits: for tests and tools that read a store without a query.
    pub fn unlimited() -> SelectBudget {
        SelectBudget {
            max_series: usize::MAX,
            series_left: usize::MAX,
            max_samples: usize::MAX,
            samples_left: usize::MAX,
            deadline: None,
            timeout: None,
            cancel: None,
        }
    }

    /// Fails when `n` series are more than this select may return.
    pub fn check_series(&self, n: usize) -> Result<(), QueryError> {
        if n > self.series_left {
            return Err(QueryError::too_many_series(self.max_series));
        }
        Ok(())
    }

    /// Fails when `n` samples (loaded so far by this select) are more than it may load.
    pub fn check_samples(&self, n: usize) -> Result<(), QueryError> {
        if n > self.samples_left {
            return Err(QueryError::too_many_samples(self.max_samples));
        }
        Ok(())
    }

    /// Fails when the deadline has passed or the query was canceled.
    pub fn check_deadline(&self) -> Result<(), QueryError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(QueryError::canceled("selecting series"));
        }
        match self.deadline {
            Some(d) if Instant::now() > d => {
                Err(QueryError::timed_out(self.timeout, "selecting series"))
            }
            _ => Ok(()),
        }
    }
}

/// A source of series.
pub trait Querier: Send + Sync {
    /// Every series that matches all `matchers` (a missing label has the value `""`),
    /// with at least its samples in `[start_ms, end_ms]`, within `budget`: more series
    /// than `budget` allows fail with [`QueryError::too_many_series`] before any sample
    /// is loaded; more samples in `[start_ms, end_ms]` fail with
    /// [`QueryError::too_many_samples`] as soon as they are counted; a passed deadline
    /// fails with [`QueryError::timed_out`]. Other errors should say what failed; use
    /// [`QueryError::internal`] for I/O and storage failures.
    ///
    /// Series in label order (as [`Labels`] sorts) save the engine a sort: it evaluates
    /// in that order, as Prometheus does, so that float results agree to the last bit.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError>;
}

/// An in-memory [`Querier`]: series held in a vector with an index by metric name.
/// For tests, benchmarks and small embedded uses.
#[derive(Clone, Debug, Default)]
pub struct MemoryQuerier {
    series: Vec<Series>,
    by_name: HashMap<String, Vec<usize>>,
}

impl MemoryQuerier {
    pub fn new(mut series: Vec<Series>) -> Self {
        // Kept sorted by labels, so selections come out sorted and the engine need not sort.
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut by_name: HashMap<String, Vec<usize>> = Default::default();
        for (i, s) in series.iter().enumerate() {
            if let Some(n) = s.labels.metric_name() {
                by_name.entry(n.to_string()).or_default().push(i);
            }
        }
        MemoryQuerier { series, by_name }
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }
}

impl Querier for MemoryQuerier {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        let by_name = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME)
            .and_then(|m| m.equal_value());
        let candidates: Box<dyn Iterator<Item = &Series>> = match by_name {
            Some(name) => Box::new(
                self.by_name
                    .get(name)
                    .into_iter()
                    .flatten()
                    .map(|&i| &self.series[i]),
            ),
            None => Box::new(self.series.iter()),
        };
        // Series are counted as they match (the series are in memory already: nothing
        // is loaded but the handles), samples in the range as a store would load them.
        let mut out = Vec::new();
        let mut samples = 0usize;
        for (n, s) in candidates.enumerate() {
            if n % 1024 == 1023 {
                budget.check_deadline()?;
            }
            if !matches_all(matchers, &s.labels) {
                continue;
            }
            budget.check_series(out.len() + 1)?;
            let lo = s.timestamps.partition_point(|&t| t < start_ms);
            let hi = s.timestamps.partition_point(|&t| t <= end_ms);
            samples = samples.saturating_add(hi.saturating_sub(lo));
            budget.check_samples(samples)?;
            out.push(s.clone());
        }
        Ok(out)
    }
}
