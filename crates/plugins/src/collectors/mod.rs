//! Collectors: sources of resources, points and costs.

pub mod exec;
pub mod host;
pub mod http_json;
pub mod internal;
pub mod prometheus;
