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

/// Builds every `collect` entry of the factory's plugin in a sample task file the way the pipeline does
/// (keys `plugin`, `name` and `timeout` removed), so that sample.toml files never rot.
/// Returns how many entries were built.
pub fn build_sample_entries(sample: &str, factory: skymeter_plugin::CollectorFactory) -> usize {
    let plugin = factory.description.name;
    use toml::de::DeValue;
    let src = Source::new("sample.toml", sample);
    let mut doc = src.parse().expect("sample.toml is TOML");
    // `${VAR:-default}` references take their defaults.
    skymeter_plugin::config::interpolate(&src, &mut doc, &|_| None)
        .expect("sample references have defaults");
    let ctx = skymeter_plugin::BuildContext::one_shot("test");
    let mut built = 0;
    let tasks = doc
        .get_ref()
        .as_table()
        .and_then(|t| t.get("task"))
        .expect("[[task]]");
    for task in tasks.get_ref().as_array().expect("[[task]] array") {
        let Some(collect) = task.get_ref().as_table().and_then(|t| t.get("collect")) else {
            continue;
        };
        for entry in collect.get_ref().as_array().expect("collect = [...]") {
            let table = entry
                .get_ref()
                .as_table()
                .expect("collect entries are tables");
            if table.get("plugin").and_then(|p| p.get_ref().as_str()) != Some(plugin) {
                continue;
            }
            let mut table = table.clone();
            for key in ["plugin", "name", "timeout"] {
                table.remove(key);
            }
            let value = toml::Spanned::new(entry.span(), DeValue::Table(table));
            let raw = RawConfig::new(src.clone(), value, Arc::new(Vec::new()));
            if let Err(e) = (factory.build)(&raw, &ctx) {
                panic!("sample entry of {plugin} does not build: {e}");
            }
            built += 1;
        }
    }
    built
}
