//! Price tables for the CLI: the flat SKU tables (GCP, Azure, and any cloud whose price API
//! lists SKUs) as a [`PriceSource`] described by data. [`PriceTable`] over them is in
//! `flat_pricing.rs`: a flat table prices one resource per month with its cloud's own
//! estimator (the one that makes the estimated cost lines) over a window of
//! [`HOURS_PER_MONTH`](skymeter_plugin_api::prices::HOURS_PER_MONTH) hours, so a monthly
//! figure and a month of cost lines always agree.

use crate::common::price_list::{Cloud, PriceList};
use skymeter_model::provider::Provider;
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::prices::{PriceSource, PriceTable, PriceUpdate, UpdateOption};
use skymeter_plugin_api::{async_trait, PluginError};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

/// The future a flat table's fetch returns.
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PriceList, PluginError>> + Send + 'a>>;

/// A cloud whose prices are one flat table, told by data.
pub struct FlatPriceSource {
    pub provider: &'static Provider,
    pub cloud: Cloud,
    /// The table shipped in the binary (JSON).
    pub shipped: &'static str,
    pub kind: &'static str,
    pub example_region: &'static str,
    pub api: &'static str,
    pub noun: &'static str,
    pub options: &'static [UpdateOption],
    pub help: &'static str,
    /// Reads current prices.
    pub fetch: for<'a> fn(&'a PriceUpdate<'a>, Arc<ApiCallCounts>) -> FetchFuture<'a>,
}

#[async_trait]
impl PriceSource for FlatPriceSource {
    fn provider(&self) -> &'static Provider {
        self.provider
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn example_region(&self) -> &'static str {
        self.example_region
    }
    fn api(&self) -> &'static str {
        self.api
    }
    fn noun(&self) -> &'static str {
        self.noun
    }
    fn update_options(&self) -> &'static [UpdateOption] {
        self.options
    }
    fn update_help(&self) -> &'static str {
        self.help
    }
    fn load(
        &self,
        explicit: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Box<dyn PriceTable>, PluginError> {
        Ok(Box::new(PriceList::load(
            self.cloud,
            explicit,
            data_dir,
            self.shipped,
        )?))
    }
    async fn fetch(
        &self,
        req: &PriceUpdate<'_>,
        calls: Arc<ApiCallCounts>,
    ) -> Result<Box<dyn PriceTable>, PluginError> {
        let table = (self.fetch)(req, calls).await?;
        Ok(Box::new(table))
    }
}

/// The three price methods of a [`CloudProvider`](super::CloudProvider) whose table is one
/// flat [`PriceList`] (`type Prices = PriceList`), written once: `flat_prices!(prices)` in
/// the `impl CloudProvider` block, where module `prices` has `source()` (its
/// [`FlatPriceSource`]), `CLOUD` and `PRICED_KINDS` (the kinds estimated, each with its
/// pricing function).
#[cfg(any(feature = "gcp", feature = "azure"))]
macro_rules! flat_prices {
    ($m:ident) => {
        fn load_prices(
            explicit: Option<&std::path::Path>,
            data_dir: &std::path::Path,
        ) -> Result<$crate::common::price_list::PriceList, skymeter_plugin_api::PluginError> {
            let s = $m::source();
            $crate::common::price_list::PriceList::load(s.cloud, explicit, data_dir, s.shipped)
        }

        fn price_source() -> Option<Box<dyn skymeter_plugin_api::prices::PriceSource>> {
            Some(Box::new($m::source()))
        }

        fn estimate(
            &self,
            table: &$crate::common::price_list::PriceList,
            start: chrono::DateTime<chrono::Utc>,
            end: chrono::DateTime<chrono::Utc>,
            resources: &[skymeter_model::Resource],
            _points: &[skymeter_model::Point],
        ) -> (
            Vec<skymeter_model::Cost>,
            Vec<skymeter_plugin_api::PluginError>,
        ) {
            $crate::common::price_list::Estimator::by_kind(
                $m::CLOUD,
                table,
                start,
                end,
                resources,
                $m::PRICED_KINDS,
            )
        }
    };
}
#[cfg(any(feature = "gcp", feature = "azure"))]
pub(crate) use flat_prices;
