//! The list of built-in plugins. Adding a plugin: its folder, plus one line here.

use crate::{collectors, processors, publishers};
use skymeter_plugin_api::Registry;

/// Every plugin compiled into this build.
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    #[cfg(feature = "aws")]
    crate::cloud::register::<collectors::aws::AwsCloud>(&mut r);
    #[cfg(feature = "azure")]
    crate::cloud::register::<collectors::azure::AzureCloud>(&mut r);
    r.add_collector(collectors::exec::factory());
    #[cfg(feature = "gcp")]
    crate::cloud::register::<collectors::gcp::GcpCloud>(&mut r);
    r.add_collector(collectors::host::factory());
    r.add_collector(collectors::http_json::factory());
    r.add_collector(collectors::internal::factory());
    r.add_collector(collectors::osv::factory());
    r.add_collector(collectors::prometheus::factory());
    r.add_processor(processors::aggregate::factory());
    r.add_processor(processors::filter::factory());
    r.add_processor(processors::passthru::factory());
    r.add_processor(processors::relabel::factory());
    r.add_processor(processors::scale::factory());
    r.add_publisher(publishers::file::factory());
    r.add_publisher(publishers::http::factory());
    r.add_publisher(publishers::mqtt::factory());
    r.add_publisher(publishers::remote_write::factory());
    r.add_publisher(publishers::otlp::factory());
    r.add_publisher(publishers::nats::factory());
    r.add_publisher(publishers::postgres::factory());
    r.add_publisher(publishers::server::factory());
    r.add_publisher(publishers::stdout::factory());
    r
}

#[cfg(test)]
mod tests {
    use skymeter_plugin_api::PluginKind;
    use std::path::Path;

    /// Every registered plugin describes itself, has a config schema, and has its folder
    /// with a README (naming each metric it can emit) and a sample config, so that
    /// `skymeter plugins`, `skymeter metrics` and the docs agree.
    #[test]
    fn every_plugin_is_described_and_documented() {
        let reg = super::builtin();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for d in reg.descriptions() {
            assert!(
                !d.summary.is_empty() && !d.summary.contains('\n'),
                "{} summary",
                d.name
            );
            assert!((d.config_schema)().is_object(), "{} schema", d.name);
            let folder = src.join(format!("{}s", d.kind.as_str())).join(d.name);
            let readme = std::fs::read_to_string(folder.join("README.md"))
                .unwrap_or_else(|e| panic!("{}: README.md: {e}", folder.display()));
            assert!(
                folder.join("sample.toml").exists(),
                "{} has no sample.toml",
                d.name
            );
            for m in (d.metrics)() {
                assert!(
                    skymeter_model::is_valid_metric_name(&m.name),
                    "{}: {}",
                    d.name,
                    m.name
                );
                assert!(
                    readme.contains(&format!("`{}`", m.name)),
                    "{}'s README does not list `{}`",
                    d.name,
                    m.name
                );
            }
        }
        assert!(reg.names(PluginKind::Collector).len() >= 5);
    }
}
