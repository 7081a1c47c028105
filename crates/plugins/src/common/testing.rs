//! Test helpers: config entries from TOML text, the entries of a plugin's `sample.toml`,
//! and small record builders with fixed values so that tests can assert exact output.

use chrono::{DateTime, Utc};
use skymeter_model::{Batch, Labels, Point, ResourceRef, Stat, Unit, Window};
use skymeter_plugin_api::config::Source;
use skymeter_plugin_api::{CollectRequest, MetricSelection, RawConfig};
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
/// (`plugin`, `name`).
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
            for k in ["plugin", "name"] {
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
        resource: resource("h1").into(),
        labels: labels_of(labels).into(),
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

/// A batch of one `cpu.utilization` point of value `v`: tell batches apart by it.
pub fn batch_of(v: f64) -> Batch {
    batch(vec![point(
        "cpu.utilization",
        v,
        "2026-11-22T10:00:00Z",
        &[],
    )])
}

/// The message of a build of `text` (one plugin entry's keys) that must fail.
pub fn build_error<T>(
    text: &str,
    build: impl FnOnce(
        &RawConfig<'_>,
        &skymeter_plugin_api::BuildContext,
    ) -> Result<T, skymeter_plugin_api::ConfigError>,
) -> String {
    config_err(with_raw(text, |raw| {
        build(raw, &skymeter_plugin_api::BuildContext::one_shot("t"))
    }))
    .to_string()
}

/// The error of a build that must fail (plugin instances are not `Debug`).
pub fn config_err<T>(
    r: Result<T, skymeter_plugin_api::ConfigError>,
) -> skymeter_plugin_api::ConfigError {
    match r {
        Ok(_) => panic!("the config was accepted"),
        Err(e) => e,
    }
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
/// (keys `plugin` and `name` removed), so that sample.toml files never rot.
/// Returns how many entries were built.
pub fn build_sample_entries(sample: &str, factory: skymeter_plugin_api::CollectorFactory) -> usize {
    let plugin = factory.description.name;
    use toml::de::DeValue;
    let src = Source::new("sample.toml", sample);
    let mut doc = src.parse().expect("sample.toml is TOML");
    // `${VAR:-default}` references take their defaults.
    skymeter_plugin_api::config::interpolate(&src, &mut doc, &|_| None)
        .expect("sample references have defaults");
    let ctx = skymeter_plugin_api::BuildContext::one_shot("test");
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
            for key in ["plugin", "name"] {
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

/// A point reduced to what plugin tests compare: metric, labels, unit, stat, period, value.
pub type Row = (String, Vec<(String, String)>, Unit, Stat, u32, f64);

/// The points as rows, sorted by metric and labels.
pub fn rows(points: &[skymeter_model::Point]) -> Vec<Row> {
    let mut v: Vec<Row> = points
        .iter()
        .map(|p| {
            (
                p.metric.to_string(),
                p.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                p.unit,
                p.stat,
                p.period_s,
                p.value,
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

/// One expected row.
pub fn row(
    metric: &str,
    labels: &[(&str, &str)],
    unit: Unit,
    stat: Stat,
    period: u32,
    value: f64,
) -> Row {
    (
        metric.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        unit,
        stat,
        period,
        value,
    )
}

/// A local address nothing listens on (for now): a receiver that is down, and can come up
/// there later.
pub async fn free_addr() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Waits (up to 20 s) until `f` holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The batch files waiting in a delivery buffer's directory, in name (send) order.
pub fn batch_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json.gz"))
        .collect();
    names.sort();
    names
}

/// The batches' ids, as strings, in order.
pub fn ids(batches: &[&Batch]) -> Vec<String> {
    batches.iter().map(|b| b.batch_id.to_string()).collect()
}

/// A buffered publisher to `url` with its buffer in `buffer`, short waits between tries and
/// the keys of `extra`.
pub fn buffered_publisher(
    build: skymeter_plugin_api::BuildFn<dyn skymeter_plugin_api::Publisher>,
    url: &str,
    buffer: &std::path::Path,
    extra: &str,
) -> Box<dyn skymeter_plugin_api::Publisher> {
    let text = format!(
        "url = {url:?}\ntimeout = \"5s\"\nretry = {{ initial = \"20ms\", max = \"100ms\" }}\nbuffer = {{ dir = {:?} }}\n{extra}",
        buffer.display().to_string()
    );
    with_raw(&text, |raw| {
        build(raw, &skymeter_plugin_api::BuildContext::one_shot("agent-1"))
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The batch files waiting in a delivery buffer's directory, sorted.
pub fn buffered_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Polls `f` every 50 ms until it is true; panics after 90 s (a broker restarted on a
/// loaded machine has taken more than 30 s to be back and drained).
pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1800 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The record of host `id` (provider `host`, account `acct`, region `eu-west-1`, the
/// resource of [`point`] for `h1`), named `web-1`, tagged `team = <team>`.
pub fn host_record(id: &str, team: &str) -> skymeter_model::Resource {
    skymeter_model::Resource {
        provider: "host".into(),
        account: "acct".into(),
        region: "eu-west-1".into(),
        kind: "host".into(),
        native_type: "linux".into(),
        id: id.into(),
        name: "web-1".into(),
        tags: [("team".to_string(), team.to_string())].into(),
        attributes: Default::default(),
        observed_at: ts("2026-11-22T09:00:00Z"),
    }
}
