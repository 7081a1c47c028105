//! `relabel`: renames metrics and labels, adds and drops labels, so that series from
//! different sources line up (`node_cpu_seconds_total` → `cpu.seconds`, `device` → `disk`).

use globset::{Glob, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{is_valid_metric_name, Batch, Point};
use skymeter_plugin_api::{
    BuildContext, ConfigError, MetricSelection, PluginDescription, PluginKind, Processor,
    ProcessorFactory, RawConfig,
};
use std::collections::BTreeMap;

/// `relabel` settings. The operations run in the order of the fields below.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Metric globs of the points to change (matched against the name before `rename`);
    /// empty changes every point.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Metric renames, `{ "old.name" = "new.name" }`. A key with one `*` is a pattern whose
    /// match is put in place of the `*` of the value: `{ "node_*" = "host.*" }`.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Label names or globs to remove (`cpu`, `tag_*`). Points that differed only by a
    /// dropped label become the same series.
    #[serde(default)]
    pub drop_labels: Vec<String>,
    /// Label renames, `{ device = "disk" }`; a label already named like the new name is
    /// replaced.
    #[serde(default)]
    pub rename_labels: BTreeMap<String, String>,
    /// Labels to add, `{ env = "prod" }`; a label the point already has is kept unless
    /// `overwrite` is true.
    #[serde(default)]
    pub add_labels: BTreeMap<String, String>,
    /// Whether `add_labels` replaces labels the point already has.
    #[serde(default)]
    pub overwrite: bool,
}

pub fn factory() -> ProcessorFactory {
    ProcessorFactory {
        description: PluginDescription {
            name: "relabel",
            kind: PluginKind::Processor,
            summary: "renames metrics and labels, adds and drops labels",
            config_schema: PluginDescription::schema_of::<RelabelConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigError> {
    let cfg: RelabelConfig = raw.decode()?;
    Ok(Box::new(
        Relabel::new(cfg).map_err(|(key, msg)| raw.error(key, msg))?,
    ))
}

/// `prefix*suffix` → `new_prefix*new_suffix`.
#[derive(Debug)]
struct RenamePattern {
    prefix: String,
    suffix: String,
    new_prefix: String,
    new_suffix: String,
}

impl RenamePattern {
    fn apply(&self, metric: &str) -> Option<String> {
        let middle = metric
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        let new = format!("{}{middle}{}", self.new_prefix, self.new_suffix);
        // Only a rename past the length limit can make a valid name invalid.
        is_valid_metric_name(&new).then_some(new)
    }
}

/// The compiled relabeling.
#[derive(Debug)]
pub struct Relabel {
    metrics: MetricSelection,
    exact: BTreeMap<String, String>,
    /// Most specific (longest fixed part) first.
    patterns: Vec<RenamePattern>,
    drop_labels: Option<GlobSet>,
    rename_labels: BTreeMap<String, String>,
    add_labels: BTreeMap<String, String>,
    overwrite: bool,
}

impl Relabel {
    /// Compiles a config; errors name the key and say what is wrong.
    pub fn new(cfg: RelabelConfig) -> Result<Relabel, (&'static str, String)> {
        let metrics = MetricSelection::new(&cfg.metrics).map_err(|e| ("metrics", e))?;
        let mut exact = BTreeMap::new();
        let mut patterns = Vec::new();
        for (old, new) in cfg.rename {
            let stars = (old.matches('*').count(), new.matches('*').count());
            let bad_name = |n: &str| {
                (
                    "rename",
                    format!(
                        "`{n}` is not a metric name: use 1-256 of letters, digits, `_ . : / -`"
                    ),
                )
            };
            match stars {
                (0, 0) => {
                    for n in [&old, &new] {
                        if !is_valid_metric_name(n) {
                            return Err(bad_name(n));
                        }
                    }
                    exact.insert(old, new);
                }
                (1, 1) => {
                    for n in [&old, &new] {
                        if !is_valid_metric_name(&n.replace('*', "x")) {
                            return Err(bad_name(n));
                        }
                    }
                    let (prefix, suffix) = old.split_once('*').expect("one star");
                    let (new_prefix, new_suffix) = new.split_once('*').expect("one star");
                    patterns.push(RenamePattern {
                        prefix: prefix.into(),
                        suffix: suffix.into(),
                        new_prefix: new_prefix.into(),
                        new_suffix: new_suffix.into(),
                    });
                }
                _ => {
                    return Err((
                        "rename",
                        format!(
                            "`{old}` = `{new}`: a pattern has exactly one `*` on each side \
                             (`\"node_*\" = \"host.*\"`); exact names have none"
                        ),
                    ))
                }
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.prefix.len() + p.suffix.len()));

        let drop_labels = if cfg.drop_labels.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for l in &cfg.drop_labels {
                b.add(Glob::new(l).map_err(|e| ("drop_labels", format!("bad glob `{l}`: {e}")))?);
            }
            Some(b.build().map_err(|e| ("drop_labels", e.to_string()))?)
        };
        for (key, map) in [
            ("rename_labels", &cfg.rename_labels),
            ("add_labels", &cfg.add_labels),
        ] {
            for (k, v) in map {
                if k.is_empty() || (key == "rename_labels" && v.is_empty()) {
                    return Err((key, "label names must not be empty".to_string()));
                }
            }
        }
        Ok(Relabel {
            metrics,
            exact,
            patterns,
            drop_labels,
            rename_labels: cfg.rename_labels,
            add_labels: cfg.add_labels,
            overwrite: cfg.overwrite,
        })
    }

    fn new_name(&self, metric: &str) -> Option<String> {
        if let Some(n) = self.exact.get(metric) {
            return Some(n.clone());
        }
        self.patterns.iter().find_map(|p| p.apply(metric))
    }

    fn relabel(&self, p: &mut Point) {
        if !self.metrics.matches(&p.metric) {
            return;
        }
        if let Some(n) = self.new_name(&p.metric) {
            p.metric = n.into();
        }
        if let Some(drop) = &self.drop_labels {
            p.labels.retain(|k, _| !drop.is_match(k));
        }
        // All renames read the labels as they were, so `{ a = "b", b = "a" }` swaps.
        let moved: Vec<(String, String)> = self
            .rename_labels
            .iter()
            .filter_map(|(old, new)| p.labels.remove(old).map(|v| (new.clone(), v)))
            .collect();
        p.labels.extend(moved);
        for (k, v) in &self.add_labels {
            if self.overwrite {
                p.labels.insert(k.clone(), v.clone());
            } else {
                p.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

impl Processor for Relabel {
    fn process(&mut self, batch: &mut Batch) {
        for p in &mut batch.points {
            self.relabel(p);
        }
    }
}

#[cfg(test)]
mod tests;
