//! What skymeter's tests share. Not published.
//!
//! [`testcloud`] is a fourth cloud provider built like the real three (one folder on the
//! cloud driver); [`registry`] is the built-in registry plus it: the one line a new
//! provider adds. The CLI's `fourth_provider` test runs the command line over this registry
//! and finds the provider in `plugins`, `metrics`, `collect --dry-run` and `prices` without
//! any change in the CLI, the server or the store.

pub mod testcloud;

use skymeter_plugin_api::Registry;

/// The built-in plugins and the test provider.
pub fn registry() -> Registry {
    let mut r = skymeter_plugins::builtin();
    skymeter_plugins::cloud::register::<testcloud::TestCloud>(&mut r);
    r
}
