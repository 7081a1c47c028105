use crate::config::{ConfigError, RawConfig};
use crate::describe::{PluginDescription, PluginKind};
use crate::prices::PriceSource;
use crate::traits::{Collector, Processor, Publisher};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What a plugin may know about where it runs.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub agent_id: String,
    /// The agent's data directory, for plugins that keep state (buffers, cursors).
    pub data_dir: PathBuf,
    /// The task the plugin instance belongs to.
    pub task: String,
    /// The task's time between runs (a cron's current gap), when the plugin is built for a
    /// scheduled task; `None` outside one (`skymeter collect`).
    pub interval: Option<Duration>,
}

impl BuildContext {
    /// For one-shot use outside a task (`skymeter collect`).
    pub fn one_shot(agent_id: &str) -> Self {
        BuildContext {
            agent_id: agent_id.to_string(),
            data_dir: std::env::temp_dir(),
            task: "collect".into(),
            interval: None,
        }
    }
}

/// Builds a plugin of type `T` from its config entry.
pub type BuildFn<T> = fn(&RawConfig<'_>, &BuildContext) -> Result<Box<T>, ConfigError>;

/// Builds a collector from its config entry.
pub struct CollectorFactory {
    pub description: PluginDescription,
    pub build: BuildFn<dyn Collector>,
}

/// Builds a processor from its config entry.
pub struct ProcessorFactory {
    pub description: PluginDescription,
    pub build: BuildFn<dyn Processor>,
}

/// Builds a publisher from its config entry.
pub struct PublisherFactory {
    pub description: PluginDescription,
    pub build: BuildFn<dyn Publisher>,
}

/// Every plugin this build knows, by kind and name.
#[derive(Default)]
pub struct Registry {
    collectors: BTreeMap<&'static str, CollectorFactory>,
    processors: BTreeMap<&'static str, ProcessorFactory>,
    publishers: BTreeMap<&'static str, PublisherFactory>,
    /// Price tables of the collectors that estimate cost, by provider id.
    price_sources: BTreeMap<&'static str, Box<dyn PriceSource>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_collector(&mut self, f: CollectorFactory) -> &mut Self {
        assert_eq!(
            f.description.kind,
            PluginKind::Collector,
            "{} registered as a collector",
            f.description.name
        );
        let prev = self.collectors.insert(f.description.name, f);
        assert!(prev.is_none(), "collector registered twice");
        self
    }

    pub fn add_processor(&mut self, f: ProcessorFactory) -> &mut Self {
        assert_eq!(
            f.description.kind,
            PluginKind::Processor,
            "{} registered as a processor",
            f.description.name
        );
        let prev = self.processors.insert(f.description.name, f);
        assert!(prev.is_none(), "processor registered twice");
        self
    }

    pub fn add_publisher(&mut self, f: PublisherFactory) -> &mut Self {
        assert_eq!(
            f.description.kind,
            PluginKind::Publisher,
            "{} registered as a publisher",
            f.description.name
        );
        let prev = self.publishers.insert(f.description.name, f);
        assert!(prev.is_none(), "publisher registered twice");
        self
    }

    /// The price table of a cloud's estimated costs (`skymeter prices <id> …`).
    pub fn add_price_source(&mut self, p: Box<dyn PriceSource>) -> &mut Self {
        let prev = self.price_sources.insert(p.provider().id, p);
        assert!(prev.is_none(), "price source registered twice");
        self
    }

    pub fn price_source(&self, provider: &str) -> Option<&dyn PriceSource> {
        self.price_sources.get(provider).map(|p| p.as_ref())
    }

    /// The providers with a price table, sorted.
    pub fn price_sources(&self) -> Vec<&'static str> {
        self.price_sources.keys().copied().collect()
    }

    pub fn collector(&self, name: &str) -> Option<&CollectorFactory> {
        self.collectors.get(name)
    }

    pub fn processor(&self, name: &str) -> Option<&ProcessorFactory> {
        self.processors.get(name)
    }

    pub fn publisher(&self, name: &str) -> Option<&PublisherFactory> {
        self.publishers.get(name)
    }

    /// Names of the plugins of one kind, sorted.
    pub fn names(&self, kind: PluginKind) -> Vec<&'static str> {
        match kind {
            PluginKind::Collector => self.collectors.keys().copied().collect(),
            PluginKind::Processor => self.processors.keys().copied().collect(),
            PluginKind::Publisher => self.publishers.keys().copied().collect(),
        }
    }

    /// Every plugin's description: collectors, then processors, then publishers.
    pub fn descriptions(&self) -> Vec<PluginDescription> {
        self.collectors
            .values()
            .map(|f| f.description)
            .chain(self.processors.values().map(|f| f.description))
            .chain(self.publishers.values().map(|f| f.description))
            .collect()
    }
}
