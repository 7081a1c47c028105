//! What skymeter's tests share. Not published.
//!
//! Always there (plain `std`, no feature): [`tool`] (finding an outside program, and the
//! CI-aware skip when it is missing), [`net`] (a free loopback port), [`nats`] (the machine's
//! NATS and a `nats-server` of a test's own), [`rng`] (a seeded generator for reproducible
//! data sets), [`victoria`] (a VictoriaMetrics of a test's own) and [`otlp`] (an OTLP/HTTP
//! receiver decoding with the official Python bindings).
//!
//! Behind features, so that a crate's tests compile only what they use:
//! - `records`: [`records`], builders of model records for tests;
//! - `nats-client`: the NATS client helpers of [`nats`] (the machine's JetStream, streams
//!   deleted when a test ends);
//! - `memstore`: [`memstore::MemStore`], an in-memory `Store` with honest semantics;
//! - `server`: [`server::TestServer`], the real server on 127.0.0.1:0 over a `MemStore`;
//! - `prometheus`: [`prometheus`], the harness both Prometheus differential tests share;
//! - `testcloud`: [`testcloud`], a fourth cloud provider built like the real three (one
//!   folder on the cloud driver), and [`registry`], the built-in registry plus it: the one
//!   line a new provider adds. The CLI's `fourth_provider` test runs the command line over
//!   this registry and finds the provider in `plugins`, `metrics`, `collect --dry-run` and
//!   `prices` without any change in the CLI, the server or the store.
//!
//! A crate's unit tests (`src/**/tests.rs`) that take a feature needing that same crate would
//! see its types twice (their own and the testkit's copy); such tests use the testkit from
//! integration tests (`tests/*.rs`) instead.

pub mod focus_validator;
pub mod nats;
pub mod net;
pub mod otlp;
pub mod rng;
pub mod tool;
pub mod victoria;

#[cfg(feature = "memstore")]
pub mod memstore;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "records")]
pub mod records;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "testcloud")]
pub mod testcloud;

/// The built-in plugins and the test provider.
#[cfg(feature = "testcloud")]
pub fn registry() -> skymeter_plugin_api::Registry {
    let mut r = skymeter_plugins::builtin();
    skymeter_plugins::cloud::register::<testcloud::TestCloud>(&mut r);
    r
}
