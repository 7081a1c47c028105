//! The `estimated` cost source: on-demand price tables (shipped, or refreshed from the AWS
//! Price List API by `skymeter prices aws update`) and the estimator that turns resources and
//! usage points into FOCUS cost lines.
//!
//! Table lookup order: an explicit file, else `<data_dir>/prices/aws.json`, else the table
//! compiled in (`prices.json`, whose `source` and `date` say where its prices come from).
//! A price that is not in the table is never guessed: the estimator reports it.

mod estimate;
mod fetch;
mod source;
mod table;
#[cfg(test)]
mod tests;

pub use estimate::{
    estimate, monthly_usd, size_options, Estimate, GP3_FREE_IOPS, GP3_FREE_THROUGHPUT_MIBPS,
    HOURS_PER_MONTH,
};
pub use fetch::{fetch_price_list, sdk_config, PAGE_SIZE, PRICING_API_REGION};
pub use source::AwsPriceSource;
pub use table::{
    default_path, operating_system, Deployments, EbsPrices, EksPrices, ElbPrices, InstanceSpec,
    LambdaPrices, PriceCounts, PriceTable, RdsPrices, RegionPrices, S3Prices, Tier, VpcPrices,
    OPERATING_SYSTEMS,
};
