//! The Prometheus view of the store: every stored series as a Prometheus series (name and
//! labels by `skymeter_model::prom`, the one mapping), selected by label matchers, with
//! its raw samples; what the PromQL engine (`skymeter-promql`) and the Prometheus HTTP API
//! (`/api/v1/query`, `series`, `labels`, ...) read.
//!
//! A series' labels:
//!
//! | label | from |
//! |---|---|
//! | `__name__` | `prom::metric_name(metric, unit)`: `cpu_utilization_percent` |
//! | `provider`, `account`, `region`, `resource_id` | the series' resource reference |
//! | `stat` | the point's statistic: `avg`, `max`, ... |
//! | the point's own labels | names through `prom::sanitize`; a name that collides with one above becomes `exported_<name>` (Prometheus' rule for scraped labels) |
//! | `kind`, `resource_name`, `tag_<key>` | the resource's latest stored record, when there is one; they follow its changes |
//!
//! Empty values are absent labels, as in Prometheus. Timestamps are milliseconds (the
//! store keeps nanoseconds; sub-millisecond parts are cut, and of two samples in the same
//! millisecond the later one is kept).
//!
//! The [`Store`] trait carries the `prom_*` methods; the embedded store answers them from
//! an in-memory label index (see `embedded/prom.rs`). Their default implementations work
//! on any backend through the generic `series`/`resources`/`points` reads (correct, but
//! they read everything: fine for tests and small stores; see `store.rs`). [`PromQuerier`]
//! adapts any store to the engine's [`Querier`].

mod labels;

use crate::store::Store;
pub use labels::{
    label_names_of, label_values_of, matches_any, series_labels, PromMetric, ResourceLabels,
    RESERVED,
};
pub use skymeter_promql::{Labels, MatchOp, Matcher, Querier, QueryError, SelectBudget, Series};

/// The engine's [`Querier`] over any store: `range_query(&PromQuerier(&*store), ...)`.
pub struct PromQuerier<'a>(pub &'a dyn Store);

impl Querier for PromQuerier<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        self.0.prom_select(matchers, start_ms, end_ms, budget)
    }
}
