//! Collectors: sources of resources, points and costs.

pub mod exec;
pub mod internal;
pub mod prometheus;
