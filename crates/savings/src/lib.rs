//! Savings: what the store's inventory, utilization and cost say a user could stop paying
//! for. [`findings`] reads resources, their points and their price and names idle,
//! orphaned and oversized resources with the money per month and the evidence read;
//! [`anomaly`] finds days whose cost left its weekly pattern; [`budget`] tracks spend and
//! its forecast against monthly budgets; [`spend`] reads daily spend one source per
//! account and day, and [`watch`] evaluates budgets and anomalies over a store. The server computes them from its store and
//! serves them (`/api/v1/findings`, `/api/v1/budgets`, `/api/v1/anomalies`).

pub mod anomaly;
pub mod budget;
pub mod finding;
pub mod findings;
pub mod findings_read;
pub mod notify;
pub mod spend;
#[cfg(test)]
mod test_costs;
#[cfg(test)]
mod test_prices;
pub mod watch;
#[cfg(test)]
mod watch_tests;
