//! Helpers for plugin tests: config entries from TOML text and collect requests.

use chrono::Utc;
use skymeter_model::Window;
use skymeter_plugin::config::Source;
use skymeter_plugin::{CollectRequest, MetricSelection, RawConfig};
use std::sync::Arc;

/// Calls `f` with `toml` (the keys of one plugin entry) as a [`RawConfig`] named `test.toml`.
pub fn with_raw<T>(toml: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = Source::new("test.toml", toml);
    let value = src.parse().expect("test config is TOML");
    let raw = RawConfig::new(src.clone(), value, Arc::new(Vec::new()));
    f(&raw)
}

/// A request for the 10 s window ending now, selecting `metrics` (empty: all).
pub fn request(metrics: &[&str]) -> CollectRequest {
    let end = Utc::now();
    CollectRequest {
        window: Window {
            start: end - chrono::Duration::seconds(10),
            end,
        },
        metrics: MetricSelection::new(metrics).expect("test globs"),
        task: "test".into(),
    }
}

/// A clock for rate tests: every read is `step` seconds after the previous one, from 0.
pub fn stepping_clock(step: f64) -> Box<dyn Fn() -> f64 + Send + Sync> {
    let t = std::sync::Mutex::new(-step);
    Box::new(move || {
        let mut t = t.lock().unwrap();
        *t += step;
        *t
    })
}
