//! Test helpers: config entries from TOML text, the entries of a plugin's `sample.toml`,
//! and small record builders with fixed values so that tests can assert exact output.

use chrono::{DateTime, Utc};
use skymeter_model::{Batch, Labels, Point, ResourceRef, Stat, Unit};
use skymeter_plugin::config::Source;
use skymeter_plugin::RawConfig;
use std::sync::Arc;

/// Runs `f` with `text` (the keys of one plugin entry) as a [`RawConfig`].
pub fn with_raw<T>(text: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = Source::new("test.toml", text);
    let value = src.parse().expect("test config parses");
    let raw = RawConfig::new(src.clone(), value, Arc::new(Vec::new()));
    f(&raw)
}

/// The entries of `plugin` in the `stage` lists (`collect`, `process`, `publish`) of every
/// task of a sample file, re-serialized as TOML without the keys the pipeline removes
/// (`plugin`, `name`, `timeout`).
pub fn sample_entries(sample: &str, stage: &str, plugin: &str) -> Vec<String> {
    let doc: toml::Table = toml::from_str(sample).expect("sample.toml parses");
    let tasks = doc["task"].as_array().expect("sample has [[task]]");
    let mut out = Vec::new();
    for task in tasks {
        let Some(entries) = task.get(stage).and_then(|v| v.as_array()) else {
            continue;
        };
        for e in entries {
            let mut t = e.as_table().expect("entry is a table").clone();
            if t.get("plugin").and_then(|p| p.as_str()) != Some(plugin) {
                continue;
            }
            for k in ["plugin", "name", "timeout"] {
                t.remove(k);
            }
            out.push(toml::to_string(&t).expect("entry serializes"));
        }
    }
    assert!(!out.is_empty(), "sample has no `{plugin}` in `{stage}`");
    out
}

pub fn ts(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

pub fn resource(id: &str) -> ResourceRef {
    ResourceRef {
        provider: "host".into(),
        account: "acct".into(),
        region: "eu-west-1".into(),
        id: id.into(),
    }
}

/// A gauge point (`last`, period 0) of resource `h1`.
pub fn point(metric: &str, value: f64, at: &str, labels: &[(&str, &str)]) -> Point {
    Point {
        metric: metric.into(),
        unit: Unit::Percent,
        stat: Stat::Last,
        period_s: 0,
        ts: ts(at),
        value,
        resource: resource("h1"),
        labels: labels_of(labels),
    }
}

pub fn labels_of(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn batch(points: Vec<Point>) -> Batch {
    let mut b = Batch::new("agent", "t", ts("2026-11-22T10:00:00Z"));
    b.points = points;
    b
}

/// The error of a build that must fail (plugin instances are not `Debug`).
pub fn config_err<T>(r: Result<T, skymeter_plugin::ConfigError>) -> skymeter_plugin::ConfigError {
    match r {
        Ok(_) => panic!("the config was accepted"),
        Err(e) => e,
    }
}
