//! `scale`: `value × factor + offset`, optionally with a new unit, per metric glob; the
//! same conversion CloudKitty's `factor` / `offset` do (KiB → bytes, ratio → percent,
//! seconds → hours for billing).

use globset::{Glob, GlobMatcher};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Batch, Stat, Unit};
use skymeter_plugin_api::{
    BuildContext, ConfigError, PluginDescription, PluginKind, Processor, ProcessorFactory,
    RawConfig,
};

/// `scale` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    /// Conversions, tried in order; the first rule whose `metric` matches a point applies.
    pub rules: Vec<ScaleRule>,
}

/// One conversion: `value' = value × factor + offset`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRule {
    /// Metric glob (`mem.*_kib`, `cpu.utilization`).
    pub metric: String,
    #[serde(default = "one")]
    pub factor: f64,
    #[serde(default)]
    pub offset: f64,
    /// The unit of the converted value; unchanged when absent.
    pub unit: Option<Unit>,
}

fn one() -> f64 {
    1.0
}

pub fn factory() -> ProcessorFactory {
    ProcessorFactory {
        description: PluginDescription {
            name: "scale",
            kind: PluginKind::Processor,
            summary: "converts values as value × factor + offset, optionally with a new unit, per metric glob",
            config_schema: PluginDescription::schema_of::<ScaleConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigError> {
    let cfg: ScaleConfig = raw.decode()?;
    if cfg.rules.is_empty() {
        return Err(raw.error(
            "rules",
            "no rules: add e.g. `rules = [{ metric = \"mem.*\", factor = 1024.0, unit = \"bytes\" }]`",
        ));
    }
    let mut rules = Vec::with_capacity(cfg.rules.len());
    for (i, r) in cfg.rules.into_iter().enumerate() {
        let glob = Glob::new(&r.metric)
            .map_err(|e| {
                raw.error(
                    "rules",
                    format!("rule {}: bad metric glob `{}`: {e}", i + 1, r.metric),
                )
            })?
            .compile_matcher();
        if !r.factor.is_finite() || !r.offset.is_finite() {
            return Err(raw.error(
                "rules",
                format!(
                    "rule {} (`{}`): factor and offset must be finite numbers",
                    i + 1,
                    r.metric
                ),
            ));
        }
        rules.push(Rule {
            glob,
            factor: r.factor,
            offset: r.offset,
            unit: r.unit,
        });
    }
    Ok(Box::new(Scale { rules }))
}

#[derive(Debug)]
struct Rule {
    glob: GlobMatcher,
    factor: f64,
    offset: f64,
    unit: Option<Unit>,
}

/// The compiled rules.
#[derive(Debug)]
pub struct Scale {
    rules: Vec<Rule>,
}

impl Processor for Scale {
    fn process(&mut self, batch: &mut Batch) {
        for p in &mut batch.points {
            // A `count` point counts samples; it is not in the metric's unit.
            if p.stat == Stat::Count {
                continue;
            }
            let Some(rule) = self.rules.iter().find(|r| r.glob.is_match(&p.metric)) else {
                continue;
            };
            let value = p.value * rule.factor + rule.offset;
            // Only an overflow makes a finite value infinite; keep the point as it was
            // rather than send a value no receiver accepts.
            if !value.is_finite() {
                continue;
            }
            p.value = value;
            if let Some(u) = rule.unit {
                p.unit = u;
            }
        }
    }
}

#[cfg(test)]
mod tests;
