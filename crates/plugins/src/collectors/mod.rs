//! Collectors: sources of resources, points and costs.

pub mod host;
pub mod http_json;
pub mod internal;
