//! `internal`: skymeter's own counters (runs, records, errors, collection time per task and
//! plugin) as points, like Telegraf's `internal` input. Reads the process-wide
//! [`SelfStats`] the runner keeps.

use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Labels, Point, ResourceRef, Stat, Unit};
use skymeter_plugin_api::selfstats::SelfStats;
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError,
    MetricInfo, Output, PluginDescription, PluginError, PluginKind, RawConfig,
};

/// `internal` takes no settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InternalConfig {}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "internal",
            kind: PluginKind::Collector,
            summary: "skymeter's own counters: runs, records, errors and collection time per task and plugin",
            config_schema: PluginDescription::schema_of::<InternalConfig>,
            metrics,
        },
        build,
    }
}

fn metrics() -> Vec<MetricInfo> {
    let m = |name: &str, unit, description: &str| MetricInfo {
        name: name.to_string(),
        unit,
        stats: vec![Stat::Last],
        labels: vec!["task", "plugin"],
        source: "skymeter runner".into(),
        description: description.into(),
    };
    vec![
        m("skymeter.runs", Unit::Count, "Collections run since start."),
        m(
            "skymeter.resources",
            Unit::Count,
            "Resources collected since start.",
        ),
        m(
            "skymeter.points",
            Unit::Count,
            "Points collected since start.",
        ),
        m(
            "skymeter.costs",
            Unit::Count,
            "Cost lines collected since start.",
        ),
        m(
            "skymeter.errors",
            Unit::Count,
            "Collection errors since start.",
        ),
        m(
            "skymeter.collect_duration",
            Unit::Seconds,
            "Wall time of the last collection.",
        ),
        m(
            "skymeter.collect_duration_total",
            Unit::Seconds,
            "Wall time of all collections since start.",
        ),
    ]
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let InternalConfig {} = raw.decode()?;
    Ok(Box::new(Internal {
        agent_id: ctx.agent_id.clone(),
        stats: SelfStats::global(),
    }))
}

pub struct Internal {
    agent_id: String,
    stats: &'static SelfStats,
}

#[async_trait]
impl Collector for Internal {
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let ts = req.window.end;
        let resource = std::sync::Arc::new(ResourceRef {
            provider: "skymeter".into(),
            account: Default::default(),
            region: Default::default(),
            id: self.agent_id.clone().into(),
        });
        if out.resources.is_empty() {
            out.resources.push(skymeter_model::Resource {
                provider: "skymeter".into(),
                account: Default::default(),
                region: Default::default(),
                kind: "agent".into(),
                native_type: "skymeter".into(),
                id: self.agent_id.clone(),
                name: self.agent_id.clone(),
                tags: Labels::new(),
                attributes: [("version".to_string(), env!("CARGO_PKG_VERSION").into())].into(),
                observed_at: Utc::now(),
            });
        }
        for ((task, plugin), c) in self.stats.snapshot() {
            let labels: Labels =
                [("task".to_string(), task), ("plugin".to_string(), plugin)].into();
            let values = [
                ("skymeter.runs", Unit::Count, c.runs as f64),
                ("skymeter.resources", Unit::Count, c.resources as f64),
                ("skymeter.points", Unit::Count, c.points as f64),
                ("skymeter.costs", Unit::Count, c.costs as f64),
                ("skymeter.errors", Unit::Count, c.errors as f64),
                (
                    "skymeter.collect_duration",
                    Unit::Seconds,
                    c.duration_last_s,
                ),
                (
                    "skymeter.collect_duration_total",
                    Unit::Seconds,
                    c.duration_total_s,
                ),
            ];
            for (metric, unit, value) in values {
                if !req.metrics.matches(metric) {
                    continue;
                }
                out.points.push(Point {
                    metric: metric.into(),
                    unit,
                    stat: Stat::Last,
                    period_s: 0,
                    ts,
                    value,
                    resource: resource.clone(),
                    labels: labels.clone().into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skymeter_model::Window;
    use skymeter_plugin_api::MetricSelection;

    #[tokio::test]
    async fn reports_what_the_runner_recorded() {
        let stats = Box::leak(Box::new(SelfStats::default()));
        stats.record("t1", "host", |c| {
            c.runs += 2;
            c.points += 40;
            c.duration_last_s = 0.25;
        });
        let mut col = Internal {
            agent_id: "a1".into(),
            stats,
        };
        let end = Utc::now();
        let req = CollectRequest {
            window: Window {
                start: end - chrono::Duration::seconds(10),
                end,
            },
            metrics: MetricSelection::new(&[
                "skymeter.runs",
                "skymeter.points",
                "skymeter.collect_duration",
            ])
            .unwrap(),
            task: "self".into(),
        };
        let mut out = Output::default();
        col.collect(&req, &mut out).await.unwrap();
        let got: Vec<(&str, f64)> = out
            .points
            .iter()
            .map(|p| (p.metric.as_str(), p.value))
            .collect();
        assert_eq!(
            got,
            [
                ("skymeter.runs", 2.0),
                ("skymeter.points", 40.0),
                ("skymeter.collect_duration", 0.25)
            ]
        );
        assert_eq!(out.points[0].labels["task"], "t1");
        assert_eq!(out.resources.len(), 1);
    }
}
