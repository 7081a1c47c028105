//! The settings of one evaluation: lookback, limits, timeout, cancellation.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

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
