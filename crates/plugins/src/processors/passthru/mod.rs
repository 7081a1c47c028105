//! `passthru`: hands every batch on unchanged. snap's `passthru` processor, so that a snap
//! task that lists it (as the OSv collector's example does) moves over as written; also a
//! placeholder while a task's processing is being worked out.

use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::Batch;
use skymeter_plugin_api::{
    BuildContext, ConfigError, PluginDescription, PluginKind, Processor, ProcessorFactory,
    RawConfig,
};

#[cfg(test)]
mod tests;

/// `passthru` takes no settings (any key is refused, so a typo is not silently ignored).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassthruConfig {}

pub fn factory() -> ProcessorFactory {
    ProcessorFactory {
        description: PluginDescription {
            name: "passthru",
            kind: PluginKind::Processor,
            summary: "hands every batch on unchanged (snap's passthru processor)",
            config_schema: PluginDescription::schema_of::<PassthruConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigError> {
    let PassthruConfig {} = raw.decode()?;
    Ok(Box::new(Passthru))
}

/// The processor: nothing to do.
#[derive(Debug, Default)]
pub struct Passthru;

impl Processor for Passthru {
    fn process(&mut self, _batch: &mut Batch) {}
}
