//! Collectors: sources of resources, points and costs.

pub mod internal;
