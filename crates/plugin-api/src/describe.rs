use skymeter_model::{Stat, Unit};

/// Which stage of a task a plugin serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PluginKind {
    Collector,
    Processor,
    Publisher,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Collector => "collector",
            PluginKind::Processor => "processor",
            PluginKind::Publisher => "publisher",
        }
    }
}

/// One metric a collector can emit.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    /// Normalized name when one exists in the catalog, else the native name.
    pub name: String,
    pub unit: Unit,
    /// The stats this metric is emitted with.
    pub stats: Vec<Stat>,
    /// Labels that distinguish the metric's series (`cpu`, `device`, `mountpoint`).
    pub labels: Vec<&'static str>,
    /// Where the value comes from (`/proc/stat`, `CloudWatch AWS/EC2 CPUUtilization`).
    pub source: String,
    pub description: String,
}

impl MetricInfo {
    /// A metric of the normalized catalog; unit and description come from the catalog.
    ///
    /// Panics when `name` is not in the catalog: that is a bug in the plugin, caught by its
    /// tests.
    pub fn normalized(
        name: &str,
        stats: &[Stat],
        labels: &[&'static str],
        source: &str,
    ) -> MetricInfo {
        let def = skymeter_model::catalog::lookup(name)
            .unwrap_or_else(|| panic!("`{name}` is not in the normalized metric catalog"));
        MetricInfo {
            name: def.name.to_string(),
            unit: def.unit,
            stats: stats.to_vec(),
            labels: labels.to_vec(),
            source: source.to_string(),
            description: def.description.to_string(),
        }
    }
}

/// What `skymeter plugins` and `skymeter metrics` print about a plugin.
#[derive(Debug, Clone, Copy)]
pub struct PluginDescription {
    pub name: &'static str,
    pub kind: PluginKind,
    /// One line: what it does.
    pub summary: &'static str,
    /// JSON Schema of the plugin's config, generated from its config struct.
    pub config_schema: fn() -> serde_json::Value,
    /// The metrics a collector can emit (empty for processors and publishers, and for
    /// collectors whose metrics are whatever their source exposes).
    pub metrics: fn() -> Vec<MetricInfo>,
}

impl PluginDescription {
    /// The JSON Schema of a config type, as `config_schema` wants it.
    pub fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).expect("schema serializes")
    }

    pub fn no_metrics() -> Vec<MetricInfo> {
        Vec::new()
    }
}
