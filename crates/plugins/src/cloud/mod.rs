//! The cloud driver: what every cloud collector does the same way, written once.
//!
//! A cloud is a [`CloudProvider`]: how it authenticates (a per-collection [`Session`] that
//! counts its calls), which scopes it has (projects, subscriptions, account × region), what
//! one scope's inventory is, which metric calls that inventory needs (the plan) and how to
//! make them, how its price table estimates cost and how its billing source is read.
//! [`CloudCollector`] drives any provider: the shared config keys, fan-out over scopes with
//! bounded concurrency, the metric window, call counting, the dry-run plan, estimated and
//! billed cost on their own schedules, self-metrics and the error rule (a collection fails
//! only when no scope could be listed). Adding a cloud is one folder implementing the trait
//! and one `register::<P>` line in `registry.rs` (see docs/adding-a-provider.md).
//!
//! [`Session`]: CloudProvider::Session

pub mod attrs;
pub mod catalog;
pub mod collector;
pub mod config;
pub mod flat_pricing;
pub mod prices;
pub mod provider;
#[cfg(any(feature = "gcp", feature = "azure"))]
pub mod rest;
pub mod window;

pub use attrs::Attrs;
pub use collector::{join_fetches, register, CloudCollector};
pub use provider::{BilledRange, CloudConfig, CloudProvider, CollectContext, Defaults, Inventory};
pub use window::{metric_window, MetricWindow, SeriesHead};

/// Every statistic a cloud metric API may be asked for (CloudWatch and Cloud Monitoring give
/// all of them; Azure Monitor has no percentile).
pub const EVERY_STAT: &[skymeter_model::Stat] = &[
    skymeter_model::Stat::Avg,
    skymeter_model::Stat::Max,
    skymeter_model::Stat::Min,
    skymeter_model::Stat::Sum,
    skymeter_model::Stat::Count,
    skymeter_model::Stat::P95,
];
