//! `aggregate`: folds the points of each series into fixed windows (`1m`, `5m`, `1h`) and
//! emits summary statistics per window, the way CloudKitty or snap roll raw samples up into
//! rating periods. State per series and open window is a running count, sum, min and max,
//! never the samples themselves.
//!
//! Semantics (the README says the same for users):
//! - Windows are `(end - window, end]`, with `end` a multiple of the window since the Unix
//!   epoch. Left-open because a point's `ts` is the *end* of the period it summarises: a
//!   collection covering `[10:00:50, 10:01:00)` has `ts = 10:01:00` and belongs to the window
//!   ending 10:01:00.
//! - A window is emitted once the watermark reaches its end. The watermark is global to the
//!   processor: the latest of the aggregated points' `ts` and the batches' `window.end`.
//!   So a series that stops reporting does not hold its window open.
//! - A point whose window was already emitted is late: it is not aggregated, and the batch
//!   gets one error record saying how many there were.
//! - `flush` emits every open window as it is (partial), with its nominal end as `ts`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Batch, CollectError, Labels, Point, ResourceRef, Stat, Unit};
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::{
    BuildContext, ConfigError, MetricSelection, PluginDescription, PluginKind, Processor,
    ProcessorFactory, RawConfig,
};
use std::collections::BTreeMap;

/// `aggregate` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// Window length, whole seconds (`"1m"`, `"5m"`, `"1h"`); windows are aligned to
    /// multiples of it since the Unix epoch.
    pub window: DurationStr,
    /// Statistics to emit per series and window: `avg`, `max`, `min`, `sum`, `count`.
    #[serde(default = "default_stats")]
    pub stats: Vec<Stat>,
    /// Metric globs to aggregate; empty aggregates every point. Other points pass through.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Whether the points that were aggregated are removed from the batch.
    #[serde(default = "yes")]
    pub drop_original: bool,
}

fn default_stats() -> Vec<Stat> {
    vec![Stat::Avg, Stat::Max]
}

fn yes() -> bool {
    true
}

const STATS: [Stat; 5] = [Stat::Avg, Stat::Max, Stat::Min, Stat::Sum, Stat::Count];

pub fn factory() -> ProcessorFactory {
    ProcessorFactory {
        description: PluginDescription {
            name: "aggregate",
            kind: PluginKind::Processor,
            summary: "rolls the points of each series up into aligned windows (avg, max, min, sum, count)",
            config_schema: PluginDescription::schema_of::<AggregateConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigError> {
    let cfg: AggregateConfig = raw.decode()?;
    let w = cfg.window.0;
    if w.subsec_nanos() != 0 || w.as_secs() == 0 || w.as_secs() > u64::from(u32::MAX) {
        return Err(raw.error(
            "window",
            "the window must be a whole number of seconds, at least 1s (e.g. \"1m\", \"5m\", \"1h\")",
        ));
    }
    if cfg.stats.is_empty() {
        return Err(raw.error("stats", "no stats: list some of avg, max, min, sum, count"));
    }
    for (i, s) in cfg.stats.iter().enumerate() {
        if !STATS.contains(s) {
            return Err(raw.error(
                "stats",
                format!(
                    "`{s}` cannot be computed from running sums; use avg, max, min, sum or count"
                ),
            ));
        }
        if cfg.stats[..i].contains(s) {
            return Err(raw.error("stats", format!("`{s}` is listed twice")));
        }
    }
    let metrics = MetricSelection::new(&cfg.metrics).map_err(|e| raw.error("metrics", e))?;
    Ok(Box::new(Aggregate::new(
        w.as_secs() as u32,
        cfg.stats,
        metrics,
        cfg.drop_original,
    )))
}

/// End (Unix seconds) of the window `(end - window_s, end]` that holds `ts`.
fn window_end(window_s: u32, ts: DateTime<Utc>) -> i64 {
    let w = i64::from(window_s);
    let secs = ts.timestamp();
    if secs.rem_euclid(w) == 0 && ts.timestamp_subsec_nanos() == 0 {
        secs
    } else {
        (secs.div_euclid(w) + 1) * w
    }
}

/// What makes two points samples of the same series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    metric: String,
    resource: ResourceRef,
    labels: Labels,
    unit: Unit,
}

/// Running statistics of one series in one window.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn new(v: f64) -> Acc {
        Acc {
            count: 1,
            sum: v,
            min: v,
            max: v,
        }
    }

    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// `None` for the stats running sums cannot give (build() accepts none of them).
    fn get(&self, stat: Stat) -> Option<f64> {
        Some(match stat {
            Stat::Avg => self.sum / self.count as f64,
            Stat::Max => self.max,
            Stat::Min => self.min,
            Stat::Sum => self.sum,
            Stat::Count => self.count as f64,
            Stat::Last | Stat::P50 | Stat::P95 | Stat::P99 => return None,
        })
    }
}

/// The processor: open windows by end (Unix seconds), each with its series.
#[derive(Debug)]
pub struct Aggregate {
    window_s: u32,
    stats: Vec<Stat>,
    metrics: MetricSelection,
    drop_original: bool,
    open: BTreeMap<i64, BTreeMap<SeriesKey, Acc>>,
    /// Every window ending at or before this (Unix seconds) has been emitted.
    closed_until: Option<i64>,
}

impl Aggregate {
    pub fn new(
        window_s: u32,
        stats: Vec<Stat>,
        metrics: MetricSelection,
        drop_original: bool,
    ) -> Aggregate {
        Aggregate {
            window_s,
            stats,
            metrics,
            drop_original,
            open: BTreeMap::new(),
            closed_until: None,
        }
    }

    /// Emits every open window that ends at or before `upto` (Unix seconds), or all of them.
    fn emit(&mut self, upto: Option<i64>, out: &mut Vec<Point>) {
        let closed = match upto {
            Some(upto) => {
                let still_open = self.open.split_off(&(upto + 1));
                std::mem::replace(&mut self.open, still_open)
            }
            None => std::mem::take(&mut self.open),
        };
        for (end, series) in closed {
            let Some(ts) = DateTime::from_timestamp(end, 0) else {
                continue;
            };
            for (key, acc) in series {
                for &stat in &self.stats {
                    let Some(value) = acc.get(stat) else { continue };
                    out.push(Point {
                        metric: key.metric.clone().into(),
                        unit: key.unit,
                        stat,
                        period_s: self.window_s,
                        ts,
                        value,
                        resource: key.resource.clone().into(),
                        labels: key.labels.clone().into(),
                    });
                }
            }
        }
    }
}

impl Processor for Aggregate {
    fn process(&mut self, batch: &mut Batch) {
        let mut watermark = batch.window.map(|w| w.end);
        let mut late = 0usize;
        let mut first_late: Option<(String, DateTime<Utc>)> = None;
        let mut points = std::mem::take(&mut batch.points);
        points.retain(|p| {
            if !self.metrics.matches(&p.metric) || !p.value.is_finite() {
                return true;
            }
            let end = window_end(self.window_s, p.ts);
            if self.closed_until.is_some_and(|c| end <= c) {
                late += 1;
                first_late.get_or_insert_with(|| (p.metric.to_string(), p.ts));
                return !self.drop_original;
            }
            let key = SeriesKey {
                metric: p.metric.to_string(),
                resource: (*p.resource).clone(),
                labels: p.labels.clone().into(),
                unit: p.unit,
            };
            self.open
                .entry(end)
                .or_default()
                .entry(key)
                .and_modify(|a| a.add(p.value))
                .or_insert_with(|| Acc::new(p.value));
            watermark = watermark.max(Some(p.ts));
            !self.drop_original
        });
        if let Some(wm) = watermark {
            // The last window boundary at or before the watermark.
            let w = i64::from(self.window_s);
            let upto = wm.timestamp().div_euclid(w) * w;
            self.emit(Some(upto), &mut points);
            self.closed_until = self.closed_until.max(Some(upto));
        }
        batch.points = points;
        if let Some((metric, ts)) = first_late {
            let fate = if self.drop_original {
                "dropped"
            } else {
                "passed through unaggregated"
            };
            batch.errors.push(CollectError {
                plugin: "aggregate".into(),
                message: format!(
                    "{late} point(s) arrived after their {}s window had been emitted and were {fate} \
                     (first: `{metric}` at {}); timestamps went backwards: check the source's clock \
                     or give late sources their own task",
                    self.window_s,
                    ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ),
                context: Labels::new(),
                at: batch.collected_at,
            });
        }
    }

    fn flush(&mut self, batch: &mut Batch) {
        self.emit(None, &mut batch.points);
    }
}

#[cfg(test)]
mod tests;
