//! A PromQL engine: queries parsed by `promql-parser` and evaluated with the semantics
//! of Prometheus 2.42 over any [`Querier`] (a source of series: skymeter's store, or the
//! in-memory [`MemoryQuerier`]).
//!
//! ```
//! use skymeter_promql::{instant_query, Labels, MemoryQuerier, Options, Series};
//!
//! let q = MemoryQuerier::new(vec![Series::new(
//!     Labels::from_pairs([("__name__", "up"), ("job", "a")]),
//!     vec![0, 60_000],
//!     vec![1.0, 0.0],
//! )]);
//! let v = instant_query(&q, "sum(up)", 90_000, &Options::default()).unwrap();
//! assert_eq!(
//!     serde_json::to_string(&v).unwrap(),
//!     r#"{"resultType":"vector","result":[{"metric":{},"value":[90,"0"]}]}"#
//! );
//! ```
//!
//! What matches Prometheus 2.42, and is checked against a real one by the differential
//! tests in `tests/`: the 5-minute lookback and stale markers of instant selectors;
//! closed range windows `[t - range, t]`; `offset` and `@` (incl. `start()`/`end()`);
//! subqueries aligned to their step; rate/increase/delta extrapolation; Kahan sums in
//! `*_over_time`; aggregation and matching rules, label handling and error cases.
//! Native histograms are not supported (skymeter stores floats only);
//! `histogram_quantile` works on classic `le`-bucket histograms.

mod error;
mod eval;
mod labels;
mod limits;
mod matcher;
mod parse;
mod range;
mod value;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::{ErrorKind, Limit, QueryError};
pub use labels::{common_prefix, is_valid_label_name, Labels, LabelsIter, METRIC_NAME};
pub use limits::MAX_REGEX_COMPILED_BYTES;
pub use matcher::{matches_all, parse_selector, MatchOp, Matcher};
pub use range::{
    check_time, TimeRange, MAX_DURATION_MS, MAX_POINTS_PER_SERIES, MAX_TIME_MS, MIN_TIME_MS,
};
pub use value::{format_value, RangeSeries, Sample, Value};

use eval::{Grid, Val};

/// The bits of Prometheus' stale marker: a NaN that ends a series (a scrape target went
/// away). Any other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale marker as a float, for sources that write one.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is Prometheus' stale marker (compared by bits: all NaNs are unequal).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

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
    /// The query's series limit ([`Options::max_series`]), for the error message.
    pub max_series: usize,
    /// Series this select may still return.
    pub series_left: usize,
    /// The query's sample limit ([`Options::max_samples`]), for the error message.
    pub max_samples: usize,
    /// Samples (within the asked-for time range) this select may still load.
    pub samples_left: usize,
    pub deadline: Option<Instant>,
    /// The query's time limit, for the error message.
    pub timeout: Option<Duration>,
    /// Set when whoever asked is gone ([`Options::cancel`]).
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

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// How far back an instant selector looks for a sample (Prometheus: 5 m).
    pub lookback_delta_ms: i64,
    /// The most samples one query may load and produce (Prometheus: 50,000,000).
    pub max_samples: usize,
    /// The most series one query may select, over all its selectors.
    pub max_series: usize,
    /// Wall-clock limit of one query (Prometheus: 2 m); `None` for none.
    pub timeout: Option<Duration>,
    /// The step of a subquery written without one, `x[1h:]` (Prometheus: the global
    /// evaluation interval, 1 m by default).
    pub default_subquery_step_ms: i64,
    /// The longest query text, in bytes.
    pub max_query_bytes: usize,
    /// The deepest nesting of expressions (and of brackets in the text). The evaluator
    /// recurses once per level, so this bounds its stack.
    pub max_depth: usize,
    /// The most expression nodes (operators, calls, selectors, literals).
    pub max_nodes: usize,
    /// The longest pattern of a regex matcher (`=~`, `!~`), in bytes as written.
    pub max_regex_bytes: usize,
    /// A flag the caller sets to stop the query (its client went away): checked wherever
    /// the deadline is, the query then fails with `canceled`.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_series: 1_000_000,
            timeout: Some(Duration::from_secs(120)),
            default_subquery_step_ms: 60 * 1000,
            max_query_bytes: 128 << 10,
            max_depth: 128,
            max_nodes: 5_000,
            max_regex_bytes: 32 << 10,
            cancel: None,
        }
    }
}

/// Parses a query and checks it against `opts`' size limits (text length, nesting, node
/// count, regex size, durations), as the query functions do before evaluating it: for
/// callers that only format or validate a query.
pub fn parse_query(expr: &str, opts: &Options) -> Result<promql_parser::parser::Expr, QueryError> {
    parse::parse_expr(expr, opts)
}

/// Evaluates `expr` at `time_ms` (checked as [`TimeRange::instant`]). The result is a vector, scalar or string, or a matrix
/// for a range selector or subquery (`metric[5m]`).
pub fn instant_query(
    q: &dyn Querier,
    expr: &str,
    time_ms: i64,
    opts: &Options,
) -> Result<Value, QueryError> {
    TimeRange::instant(time_ms)?;
    let parsed = parse::parse_expr(expr, opts)?;
    let grid = Grid {
        start: time_ms,
        end: time_ms,
        interval: 1,
    };
    Ok(match eval::evaluate(q, opts, &parsed, grid)? {
        Val::Scalar(v) => Value::Scalar {
            t: time_ms,
            v: v[0],
        },
        Val::String(s) => Value::String { t: time_ms, v: s },
        Val::Vector(series) => Value::Vector(
            series
                .into_iter()
                .map(|s| Sample {
                    labels: s.labels,
                    t: time_ms,
                    v: s.vs[0],
                })
                .collect(),
        ),
        Val::Matrix(series) => Value::Matrix(
            series
                .into_iter()
                .map(|s| RangeSeries {
                    labels: s.labels,
                    timestamps: s.ts,
                    values: s.vs,
                })
                .collect(),
        ),
    })
}

/// Evaluates `expr` at `start_ms, start_ms + step_ms, ..., <= end_ms` (checked as
/// [`TimeRange::steps`]: at most 11,000 steps). The expression
/// must give a scalar or an instant vector; the result is a matrix sorted by labels.
pub fn range_query(
    q: &dyn Querier,
    expr: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &Options,
) -> Result<Value, QueryError> {
    TimeRange::steps(start_ms, end_ms, step_ms)?;
    let parsed = parse::parse_expr(expr, opts)?;
    use promql_parser::parser::value::ValueType;
    match parsed.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        _ => {
            return Err(QueryError::bad_data(format!(
                "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                parse::expr_kind(&parsed)
            )))
        }
    }
    let grid = Grid {
        start: start_ms,
        end: end_ms,
        interval: step_ms,
    };
    let mut out: Vec<RangeSeries> = match eval::evaluate(q, opts, &parsed, grid)? {
        Val::Scalar(v) => vec![RangeSeries {
            labels: Labels::empty(),
            timestamps: grid.iter().collect(),
            values: v,
        }],
        Val::Vector(series) => series
            .into_iter()
            .map(|s| RangeSeries {
                labels: s.labels,
                timestamps: s.ts,
                values: s.vs,
            })
            .collect(),
        Val::String(_) | Val::Matrix(_) => {
            return Err(QueryError::bad_data(
                "a range query must evaluate to a scalar or an instant vector",
            ))
        }
    };
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Matrix(out))
}

/// An in-memory [`Querier`]: series held in a vector with an index by metric name.
/// For tests, benchmarks and small embedded uses.
#[derive(Clone, Debug, Default)]
pub struct MemoryQuerier {
    series: Vec<Series>,
    by_name: std::collections::HashMap<String, Vec<usize>>,
}

impl MemoryQuerier {
    pub fn new(mut series: Vec<Series>) -> Self {
        // Kept sorted by labels, so selections come out sorted and the engine need not sort.
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut by_name: std::collections::HashMap<String, Vec<usize>> = Default::default();
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
