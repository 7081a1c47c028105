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
mod options;
mod parse;
mod querier;
mod query;
mod range;
mod stale;
mod value;

pub use error::{ErrorKind, Limit, QueryError};
pub use labels::{common_prefix, is_valid_label_name, Labels, LabelsIter, METRIC_NAME};
pub use limits::MAX_REGEX_COMPILED_BYTES;
pub use matcher::{matches_all, parse_selector, MatchOp, Matcher};
pub use options::Options;
pub use querier::{MemoryQuerier, Querier, SelectBudget, Series};
pub use query::{instant_query, parse_query, range_query};
pub use range::{
    check_time, TimeRange, MAX_DURATION_MS, MAX_POINTS_PER_SERIES, MAX_TIME_MS, MIN_TIME_MS,
};
pub use stale::{is_stale_nan, stale_nan, STALE_NAN_BITS};
pub use value::{format_value, RangeSeries, Sample, Value};
