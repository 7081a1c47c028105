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
mod matcher;
mod parse;
mod value;

use std::sync::Arc;
use std::time::Duration;

pub use error::{ErrorKind, QueryError};
pub use labels::{is_valid_label_name, Labels, LabelsIter, METRIC_NAME};
pub use matcher::{matches_all, parse_selector, MatchOp, Matcher};
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

/// A source of series.
pub trait Querier: Send + Sync {
    /// Every series that matches all `matchers` (a missing label has the value `""`),
    /// with at least its samples in `[start_ms, end_ms]`. Errors should say what failed;
    /// use [`QueryError::internal`] for I/O and storage failures.
    ///
    /// Series in label order (as [`Labels`] sorts) save the engine a sort: it evaluates
    /// in that order, as Prometheus does, so that float results agree to the last bit.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            max_series: 1_000_000,
            timeout: Some(Duration::from_secs(120)),
            default_subquery_step_ms: 60 * 1000,
        }
    }
}

/// The most points per series a range query may produce, as Prometheus' API.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Evaluates `expr` at `time_ms`. The result is a vector, scalar or string, or a matrix
/// for a range selector or subquery (`metric[5m]`).
pub fn instant_query(
    q: &dyn Querier,
    expr: &str,
    time_ms: i64,
    opts: &Options,
) -> Result<Value, QueryError> {
    let parsed = parse::parse_expr(expr)?;
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

/// Evaluates `expr` at `start_ms, start_ms + step_ms, ..., <= end_ms`. The expression
/// must give a scalar or an instant vector; the result is a matrix sorted by labels.
pub fn range_query(
    q: &dyn Querier,
    expr: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &Options,
) -> Result<Value, QueryError> {
    if step_ms <= 0 {
        return Err(QueryError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if end_ms < start_ms {
        return Err(QueryError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(QueryError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let parsed = parse::parse_expr(expr)?;
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
        _start: i64,
        _end: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let by_name = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME)
            .and_then(|m| m.equal_value());
        let pick = |s: &Series| matches_all(matchers, &s.labels).then(|| s.clone());
        Ok(match by_name {
            Some(name) => self
                .by_name
                .get(name)
                .map(|ix| ix.iter().filter_map(|&i| pick(&self.series[i])).collect())
                .unwrap_or_default(),
            None => self.series.iter().filter_map(pick).collect(),
        })
    }
}
