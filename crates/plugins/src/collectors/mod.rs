//! Collectors: sources of resources, points and costs.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod exec;
#[cfg(feature = "gcp")]
pub mod gcp;
pub mod host;
pub mod http_json;
pub mod internal;
pub mod osv;
pub mod prometheus;
