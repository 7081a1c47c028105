//! A Cloudforet (SpaceONE) inventory collector plugin over a skymeter server.
//!
//! Cloudforet runs collector plugins as gRPC services (`spaceone.api.inventory.plugin.
//! Collector`: `init`, `verify`, `collect`) and merges what `collect` streams into its
//! inventory. This plugin reads a skymeter server's HTTP API (the resource list and the
//! Prometheus-compatible query API) and streams each server (and, when asked, each other
//! resource) with `data.monitoring.{cpu,memory,disk,network}` `avg` and `max` over a
//! period, as Cloudforet's monitoring-metric collector fills them, so that Cloudforet's
//! servers show skymeter's utilization. See `README.md` for options and the mapping.
//!
//! The protocol comes from `proto/` (vendored from cloudforet-io/api), compiled at build
//! time by protox (pure Rust: no protoc).

pub mod mapping;
pub mod options;
pub mod proto;
pub mod provider;
pub mod service;
pub mod source;
pub mod structs;

pub use service::{metadata, serve, Config, Plugin, ServeError};
