//! The plugin API: what a collector, processor or publisher implements, how it describes
//! itself, how it decodes its config, and the registry that lists them.
//!
//! A plugin knows this crate and `skymeter-model`, never the pipeline, the server or the
//! CLI. Adding a plugin is one folder in `skymeter-plugins` plus one line in its registry.

pub mod api_calls;
pub mod config;
mod describe;
pub mod history;
pub mod prices;
pub mod rate;
mod registry;
pub mod retry;
pub mod selection;
pub mod selfstats;
mod traits;

pub use config::{ConfigError, RawConfig};
pub use describe::{MetricInfo, PluginDescription, PluginKind};
pub use registry::{
    BuildContext, BuildFn, CollectorFactory, ProcessorFactory, PublisherFactory, Registry,
};
pub use secrecy::{ExposeSecret, SecretString};
pub use selection::MetricSelection;
pub use traits::{CollectRequest, Collector, ErrorKind, Output, PluginError, Processor, Publisher};

/// This machine's host name, as `hostname` prints it (the kernel's, else `$HOSTNAME`, else
/// `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Re-exported so plugins and the pipeline agree on the crate versions.
pub use async_trait::async_trait;
pub use schemars;

/// The message of a panic's payload (`panic!("…")` gives a `&str` or a `String`), for the
/// error or log line that reports it: a task that catches a plugin's panic goes on.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message")
}

/// The text of an error and of every error in its source chain, joined by `: ` (what an SDK
/// error means is often only in its sources: "dispatch failure: io error: connection
/// refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
