//! Task files.
//!
//! ```toml
//! [agent]                      # optional
//! id = "web-01"                # default: the host name
//! data_dir = "/var/lib/skymeter"
//!
//! [[task]]
//! name = "host"
//! schedule = { every = "10s" } # or { cron = "0 */5 * * * *" }; optional start / stop
//! timeout = "10s"              # per collection; default: the period, at most 60s
//! warm_up_timeout = "60s"      # bound of each collector's warm-up before the first run
//! catch_up = "24h"             # windows missed while down that history readers fill; "0s": off
//! metrics = ["cpu.*"]          # optional: what collectors are asked for
//! collect = [{ plugin = "host" }]
//! process = [{ plugin = "filter", include = ["cpu.*", "memory.*"] }]
//! publish = [{ plugin = "stdout", format = "json" }]
//! ```
//!
//! Loading validates everything before anything runs and reports every mistake, each with
//! file, line and key. Plugin entries are built here (so a plugin's own checks run at
//! validation time too); `plugin` and `name` are the pipeline's keys, the rest of an entry
//! belongs to the plugin. A plugin's own `timeout` (a scrape's, a command's) is the
//! plugin's; the task's `timeout` bounds each whole collection.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use skymeter_plugin_api::config::{interpolate, DurationStr, Source};
use skymeter_plugin_api::{
    BuildContext, Collector, ConfigError, MetricSelection, PluginKind, Processor, Publisher,
    RawConfig, Registry,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

use crate::schedule::Schedule;

pub mod snap;

/// `[agent]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Identifies this agent in batches; defaults to the host name.
    pub id: Option<String>,
    /// Where plugins keep state (buffers, cursors). Default `./skymeter-data`.
    pub data_dir: Option<PathBuf>,
}

impl AgentSettings {
    /// The configured id, else the one kept in the data dir, else the host name (a
    /// stand-in for validation, which must not write anything).
    pub fn agent_id(&self) -> String {
        self.id
            .clone()
            .or_else(|| self.stored_agent_id())
            .unwrap_or_else(hostname)
    }

    fn id_file(&self) -> PathBuf {
        self.data_dir().join("agent-id")
    }

    fn stored_agent_id(&self) -> Option<String> {
        std::fs::read_to_string(self.id_file())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The agent's id for running: the configured one, else the one kept in
    /// `<data_dir>/agent-id`, created on first start as `<hostname>-<8 hex>` so that two
    /// agents on one host differ and a restart keeps its identity.
    pub fn ensure_agent_id(&self) -> Result<String, ConfigError> {
        if let Some(id) = self.id.clone().or_else(|| self.stored_agent_id()) {
            return Ok(id);
        }
        let id = format!(
            "{}-{}",
            hostname(),
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        let file = self.id_file();
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(self.data_dir())?;
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, format!("{id}\n"))?;
            std::fs::rename(&tmp, &file)
        };
        write().map_err(|e| ConfigError {
            file: file.display().to_string(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot keep the agent id in the data dir: {e}; set `[agent] data_dir` to a writable directory or `[agent] id`"),
            snippet: None,
        })?;
        Ok(id)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("skymeter-data"))
    }
}

pub use skymeter_plugin_api::hostname;

/// A collector instance of a task.
pub struct CollectorEntry {
    /// The entry's `name`, else the plugin's name (suffixed `#2`… when repeated).
    pub name: String,
    pub plugin: &'static str,
    pub timeout: Duration,
    /// How far back a restart fills windows this collector missed (if it reads history):
    /// the entry's `catch_up`, else the task's; zero turns catch-up off.
    pub catch_up: Duration,
    pub collector: Box<dyn Collector>,
}

pub struct ProcessorEntry {
    pub name: String,
    pub processor: Box<dyn Processor>,
}

pub struct PublisherEntry {
    pub name: String,
    pub publisher: Box<dyn Publisher>,
}

/// How far back a restart fills the windows it missed, unless the task says otherwise.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(24 * 3600);
/// How long each collector's warm-up may take, unless the task says otherwise.
pub const DEFAULT_WARM_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// A validated, built task, ready to run.
pub struct Task {
    pub name: String,
    pub schedule: Schedule,
    /// Bound of each collector's warm-up (apart from the collection `timeout`).
    pub warm_up_timeout: Duration,
    /// Where the task's window marks are kept (`<data_dir>`), when the config was loaded
    /// for running; `None` when it was loaded for validation (nothing is written then).
    pub marks_dir: Option<PathBuf>,
    pub start: Option<DateTime<Utc>>,
    pub stop: Option<DateTime<Utc>>,
    pub metrics: MetricSelection,
    pub collectors: Vec<CollectorEntry>,
    /// The task's own `process` → `publish`: the first branch.
    pub processors: Vec<ProcessorEntry>,
    pub publishers: Vec<PublisherEntry>,
    /// More `[[task.branch]]`es: each gets its own copy of the collected batch, runs its
    /// processors and hands the result to its publishers (a snap workflow tree is a task
    /// with one branch per path from `collect` to a publisher).
    pub branches: Vec<Branch>,
    /// End after this many runs (snap's `count`); `None`: run until stopped.
    pub max_runs: Option<u64>,
    /// End with [`TaskEnd::Disabled`](crate::outcome::TaskEnd) after this many failed runs in
    /// a row (snap's `max-failures`); `None`: never.
    pub max_failures: Option<u32>,
    /// Told about every run (the agent API's `watch` and task states).
    pub observer: Option<Arc<dyn crate::outcome::RunObserver>>,
}

/// A `process` → `publish` path of a task besides its own.
pub struct Branch {
    pub processors: Vec<ProcessorEntry>,
    pub publishers: Vec<PublisherEntry>,
}

/// A whole task file, validated and built.
pub struct LoadedConfig {
    pub agent: AgentSettings,
    /// The id batches carry (see [`AgentSettings::ensure_agent_id`]).
    pub agent_id: String,
    pub tasks: Vec<Task>,
}

/// The part of `[[task]]` that is not a plugin list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskHeader {
    name: String,
    schedule: ScheduleSpec,
    timeout: Option<DurationStr>,
    warm_up_timeout: Option<DurationStr>,
    catch_up: Option<DurationStr>,
    #[serde(default)]
    metrics: Vec<String>,
    /// Stop after this many runs.
    count: Option<u64>,
    /// Disable the task after this many failed runs in a row.
    max_failures: Option<u32>,
    /// Free text for humans.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSpec {
    every: Option<DurationStr>,
    cron: Option<String>,
    start: Option<Timestamp>,
    stop: Option<Timestamp>,
}

/// A point in time as a TOML datetime (`2026-11-22T10:00:00Z`) or an RFC 3339 string.
#[derive(Debug, Clone, Copy)]
struct Timestamp(DateTime<Utc>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Toml(toml::value::Datetime),
            Text(String),
        }
        let text = match Either::deserialize(d)? {
            Either::Toml(dt) => dt.to_string(),
            Either::Text(s) => s,
        };
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "bad time `{text}` ({e}); write e.g. 2026-11-22T10:00:00Z"
                ))
            })
    }
}

/// Loads and builds a task file. `persist_identity` (for `run`): create the agent's data
/// dir and id file when missing; validation passes false and writes nothing. On failure,
/// returns every mistake found.
pub fn load_file(
    path: &Path,
    registry: &Registry,
    persist_identity: bool,
) -> Result<LoadedConfig, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.display().to_string(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
            snippet: None,
        }]
    })?;
    let file = path.display().to_string();
    if snap::is_manifest(&file, &text) {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snap-task".into());
        return load_manifest_str(
            &file,
            &text,
            &stem,
            None,
            registry,
            &|k| std::env::var(k).ok(),
            persist_identity,
        );
    }
    load_str(
        Source::new(file, text),
        registry,
        &|k| std::env::var(k).ok(),
        persist_identity,
    )
}

/// Loads a snap task manifest (JSON or YAML; see [`snap`]) as a one-task config. The task
/// is named by the manifest's `name`, else `default_name`; `agent` (a running agent's own
/// settings) replaces the defaults when given.
pub fn load_manifest_str(
    file: &str,
    text: &str,
    default_name: &str,
    agent: Option<&AgentSettings>,
    registry: &Registry,
    env: &dyn Fn(&str) -> Option<String>,
    persist_identity: bool,
) -> Result<LoadedConfig, Vec<ConfigError>> {
    let translated = snap::translate(file, text, default_name, registry)?;
    let toml_name = format!("{file} (as a task)");
    load_source(
        Source::new(toml_name.clone(), translated.toml.clone()),
        registry,
        env,
        persist_identity,
        agent,
    )
    .map_err(|errs| {
        errs.into_iter()
            .map(|e| translated.relocate(e, &toml_name))
            .collect()
    })
}

/// Loads and builds a task file from text; `env` resolves `${VAR}` references.
pub fn load_str(
    source: Arc<Source>,
    registry: &Registry,
    env: &dyn Fn(&str) -> Option<String>,
    persist_identity: bool,
) -> Result<LoadedConfig, Vec<ConfigError>> {
    load_source(source, registry, env, persist_identity, None)
}

/// [`load_str`] for a running agent's tasks: with `agent` given, the text may not have an
/// `[agent]` table of its own (the agent's settings are the agent's).
pub fn load_source(
    source: Arc<Source>,
    registry: &Registry,
    env: &dyn Fn(&str) -> Option<String>,
    persist_identity: bool,
    agent_override: Option<&AgentSettings>,
) -> Result<LoadedConfig, Vec<ConfigError>> {
    let mut root = source.parse().map_err(|e| vec![e])?;
    let secrets = Arc::new(interpolate(&source, &mut root, env)?);
    let mut errors = Vec::new();
    let root_span = root.span();
    let DeValue::Table(mut root_table) = root.into_inner() else {
        unreachable!("a document is a table")
    };

    let agent = match (root_table.remove("agent"), agent_override) {
        (Some(v), Some(a)) => {
            errors.push(source.error(
                Some(v.span().start..v.span().start),
                "a task given to a running agent cannot have an `[agent]` table; the agent's own settings apply",
            ));
            a.clone()
        }
        (None, Some(a)) => a.clone(),
        (Some(v), None) => decode::<AgentSettings>(&source, &secrets, v).unwrap_or_else(|e| {
            errors.push(e);
            AgentSettings::default()
        }),
        (None, None) => AgentSettings::default(),
    };
    let tasks_value = root_table.remove("task");
    for (key, _) in root_table.iter() {
        errors.push(source.error(
            Some(key.span()),
            format!(
                "unknown top-level key `{}`; a task file has `[agent]` and `[[task]]` only",
                key.get_ref()
            ),
        ));
    }

    let agent_id = if persist_identity {
        agent.ensure_agent_id().map_err(|e| vec![e])?
    } else {
        agent.agent_id()
    };
    let ctx_base = BuildContext {
        agent_id,
        data_dir: agent.data_dir(),
        task: String::new(),
        interval: None,
    };
    let marks_dir = persist_identity.then(|| agent.data_dir());
    let mut tasks = Vec::new();
    let mut task_spans = Vec::new();
    match tasks_value {
        None => errors.push(source.error(
            Some(root_span.start..root_span.start),
            "no `[[task]]` defined; add at least one",
        )),
        Some(v) => {
            let span = v.span();
            match v.into_inner() {
                DeValue::Array(arr) => {
                    for t in arr {
                        let task_span = t.span();
                        if let Some(mut task) =
                            build_task(&source, &secrets, registry, &ctx_base, t, &mut errors)
                        {
                            task.marks_dir = marks_dir.clone();
                            tasks.push(task);
                            task_spans.push(task_span);
                        }
                    }
                }
                _ => errors.push(source.error(
                    Some(span),
                    "`task` must be an array of tables: write `[[task]]`",
                )),
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (t, span) in tasks.iter().zip(&task_spans) {
        if !seen.insert(t.name.clone()) {
            // At the second task of that name, so that the error has a line to go to.
            errors.push(source.error(
                Some(span.start..span.start),
                format!(
                    "two tasks are named `{}`; task names must be unique",
                    t.name
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(LoadedConfig {
            agent,
            agent_id: ctx_base.agent_id,
            tasks,
        })
    } else {
        Err(errors)
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    source: &Arc<Source>,
    secrets: &Arc<Vec<String>>,
    value: Spanned<DeValue<'_>>,
) -> Result<T, ConfigError> {
    RawConfig::new(source.clone(), value, secrets.clone()).decode()
}

fn build_task(
    source: &Arc<Source>,
    secrets: &Arc<Vec<String>>,
    registry: &Registry,
    ctx_base: &BuildContext,
    value: Spanned<DeValue<'_>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Task> {
    let span = value.span();
    let DeValue::Table(mut table) = value.into_inner() else {
        errors.push(source.error(Some(span), "each `[[task]]` must be a table"));
        return None;
    };
    let lists: Vec<_> = ["collect", "process", "publish"]
        .iter()
        .map(|k| table.remove(*k))
        .collect();
    let branch_value = table.remove("branch");
    let header = match decode::<TaskHeader>(
        source,
        secrets,
        Spanned::new(span.clone(), DeValue::Table(table)),
    ) {
        Ok(h) => h,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let ctx = BuildContext {
        task: header.name.clone(),
        ..ctx_base.clone()
    };
    let before = errors.len();
    let at_task = |msg: String| source.error(Some(span.start..span.start), msg);

    let schedule = match (&header.schedule.every, &header.schedule.cron) {
        (Some(every), None) if every.0 >= Duration::from_millis(100) => {
            Some(Schedule::Every(every.0))
        }
        (Some(_), None) => {
            errors.push(at_task(format!(
                "task `{}`: `every` must be at least 100ms",
                header.name
            )));
            None
        }
        (None, Some(expr)) => match expr.parse::<cron::Schedule>() {
            Ok(s) => Some(Schedule::Cron {
                expr: expr.clone(),
                schedule: Box::new(s),
            }),
            Err(e) => {
                errors.push(at_task(format!(
                    "task `{}`: bad cron expression `{expr}` ({e}); six fields, seconds first: \"0 */5 * * * *\"",
                    header.name
                )));
                None
            }
        },
        _ => {
            errors.push(at_task(format!(
                "task `{}`: `schedule` needs exactly one of `every = \"30s\"` or `cron = \"0 */5 * * * *\"`",
                header.name
            )));
            None
        }
    };
    if let (Some(a), Some(b)) = (header.schedule.start, header.schedule.stop) {
        if b.0 <= a.0 {
            errors.push(at_task(format!(
                "task `{}`: schedule `stop` must be after `start`",
                header.name
            )));
        }
    }
    let metrics = MetricSelection::new(&header.metrics).unwrap_or_else(|e| {
        errors.push(at_task(format!("task `{}`: {e}", header.name)));
        MetricSelection::all()
    });
    let default_timeout = schedule
        .as_ref()
        .map(|s| s.period_at(Utc::now()).min(Duration::from_secs(60)))
        .unwrap_or(Duration::from_secs(60));
    let task_timeout = header.timeout.map(|d| d.0).unwrap_or(default_timeout);
    let task_catch_up = header.catch_up.map(|d| d.0).unwrap_or(DEFAULT_CATCH_UP);
    let warm_up_timeout = header
        .warm_up_timeout
        .map(|d| d.0)
        .unwrap_or(DEFAULT_WARM_UP_TIMEOUT);
    if warm_up_timeout.is_zero() {
        errors.push(at_task(format!(
            "task `{}`: `warm_up_timeout` must be more than 0s; the default is \"60s\"",
            header.name
        )));
    }
    let ctx = BuildContext {
        interval: schedule.as_ref().map(|s| s.period_at(Utc::now())),
        ..ctx
    };

    // `[[task.branch]]`: each a table with `process` (optional) and `publish`.
    let mut branch_lists = Vec::new();
    if let Some(v) = branch_value {
        let vspan = v.span();
        match v.into_inner() {
            DeValue::Array(arr) => {
                for b in arr {
                    let bspan = b.span();
                    let DeValue::Table(mut bt) = b.into_inner() else {
                        errors.push(source.error(Some(bspan), "each `[[task.branch]]` must be a table with `publish` (and optionally `process`)"));
                        continue;
                    };
                    let process = bt.remove("process");
                    let publish = bt.remove("publish");
                    for (key, _) in bt.iter() {
                        errors.push(source.error(
                            Some(key.span()),
                            format!("unknown key `{}` in a branch; a branch has `process` and `publish`", key.get_ref()),
                        ));
                    }
                    if publish.is_none() {
                        errors.push(source.error(
                            Some(bspan.start..bspan.start),
                            "this branch has no `publish` list; add e.g. publish = [{ plugin = \"stdout\" }]",
                        ));
                    }
                    branch_lists.push((process, publish));
                }
            }
            _ => errors.push(source.error(
                Some(vspan),
                "`branch` must be an array of tables: write `[[task.branch]]`",
            )),
        }
    }
    let [collect_list, process_list, publish_list]: [_; 3] = lists.try_into().ok()?;
    let mut builder = EntryBuilder {
        source,
        secrets,
        registry,
        ctx: &ctx,
        errors,
    };
    let collectors: Vec<CollectorEntry> = match collect_list {
        None => {
            builder.errors.push(at_task(format!(
                "task `{}` has no `collect` list; add e.g. collect = [{{ plugin = \"host\" }}]",
                header.name
            )));
            Vec::new()
        }
        Some(list) => builder
            .entries(PluginKind::Collector, list)
            .into_iter()
            .filter_map(|e| {
                let f = registry.collector(e.plugin).expect("checked");
                match (f.build)(&e.raw, &ctx) {
                    Ok(c) => Some(CollectorEntry {
                        name: e.name,
                        plugin: e.plugin,
                        timeout: task_timeout,
                        catch_up: e.catch_up.unwrap_or(task_catch_up),
                        collector: c,
                    }),
                    Err(err) => {
                        builder.errors.push(err);
                        None
                    }
                }
            })
            .collect(),
    };
    // The task's own publish list may be left out when branches publish.
    if publish_list.is_none() && branch_lists.is_empty() {
        builder.errors.push(at_task(format!(
            "task `{}` has no `publish` list; add e.g. publish = [{{ plugin = \"stdout\" }}]",
            header.name
        )));
    }
    let main = builder.branch(process_list, publish_list);
    let branches: Vec<Branch> = branch_lists
        .into_iter()
        .map(|(process, publish)| builder.branch(process, publish))
        .collect();
    if errors.len() > before {
        return None;
    }
    Some(Task {
        name: header.name,
        schedule: schedule?,
        warm_up_timeout,
        marks_dir: None,
        start: header.schedule.start.map(|t| t.0),
        stop: header.schedule.stop.map(|t| t.0),
        metrics,
        collectors,
        processors: main.processors,
        publishers: main.publishers,
        branches,
        max_runs: header.count,
        max_failures: header.max_failures,
        observer: None,
    })
}

/// Builds plugin entries of one task, collecting every mistake.
struct EntryBuilder<'s, 'e> {
    source: &'s Arc<Source>,
    secrets: &'s Arc<Vec<String>>,
    registry: &'s Registry,
    ctx: &'s BuildContext,
    errors: &'e mut Vec<ConfigError>,
}

impl EntryBuilder<'_, '_> {
    /// The entries of one plugin list, names made unique (`name#2`…).
    fn entries<'a>(&mut self, kind: PluginKind, list: Spanned<DeValue<'a>>) -> Vec<Entry<'a>> {
        let list_span = list.span();
        let DeValue::Array(items) = list.into_inner() else {
            self.errors.push(self.source.error(
                Some(list_span),
                format!("`{}` must be a list of tables", list_key(kind)),
            ));
            return Vec::new();
        };
        if items.is_empty() && kind != PluginKind::Processor {
            self.errors.push(self.source.error(
                Some(list_span),
                format!("`{}` is empty; name at least one plugin", list_key(kind)),
            ));
        }
        let mut names = std::collections::HashMap::<String, usize>::new();
        let mut out = Vec::new();
        for item in items {
            let Some(mut e) = split_entry(
                self.source,
                self.secrets,
                self.registry,
                kind,
                item,
                self.errors,
            ) else {
                continue;
            };
            let n = names.entry(e.name.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                e.name = format!("{}#{}", e.name, n);
            }
            out.push(e);
        }
        out
    }

    /// A `process` → `publish` pair, built.
    fn branch(
        &mut self,
        process: Option<Spanned<DeValue<'_>>>,
        publish: Option<Spanned<DeValue<'_>>>,
    ) -> Branch {
        let mut processors = Vec::new();
        for e in process
            .map(|l| self.entries(PluginKind::Processor, l))
            .unwrap_or_default()
        {
            let f = self.registry.processor(e.plugin).expect("checked");
            match (f.build)(&e.raw, self.ctx) {
                Ok(p) => processors.push(ProcessorEntry {
                    name: e.name,
                    processor: p,
                }),
                Err(err) => self.errors.push(err),
            }
        }
        let mut publishers = Vec::new();
        for e in publish
            .map(|l| self.entries(PluginKind::Publisher, l))
            .unwrap_or_default()
        {
            let f = self.registry.publisher(e.plugin).expect("checked");
            match (f.build)(&e.raw, self.ctx) {
                Ok(p) => publishers.push(PublisherEntry {
                    name: e.name,
                    publisher: p,
                }),
                Err(err) => self.errors.push(err),
            }
        }
        Branch {
            processors,
            publishers,
        }
    }
}

fn list_key(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Collector => "collect",
        PluginKind::Processor => "process",
        PluginKind::Publisher => "publish",
    }
}

struct Entry<'a> {
    plugin: &'static str,
    name: String,
    /// A collect entry's own `catch_up` (a pipeline key, like `plugin` and `name`).
    catch_up: Option<Duration>,
    raw: RawConfig<'a>,
}

/// Takes the pipeline's keys out of one plugin entry and checks the plugin exists.
fn split_entry<'a>(
    source: &Arc<Source>,
    secrets: &Arc<Vec<String>>,
    registry: &Registry,
    kind: PluginKind,
    entry: Spanned<DeValue<'a>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Entry<'a>> {
    let span = entry.span();
    let DeValue::Table(mut table) = entry.into_inner() else {
        errors.push(source.error(
            Some(span),
            "each plugin entry must be a table such as { plugin = \"host\" }",
        ));
        return None;
    };
    let known = registry.names(kind);
    let plugin = match table.remove("plugin") {
        None => {
            errors.push(source.error(
                Some(span),
                format!(
                    "this entry has no `plugin` key; add plugin = \"NAME\" with one of: {}",
                    known.join(", ")
                ),
            ));
            return None;
        }
        Some(v) => {
            let vspan = v.span();
            let Some(name) = v.get_ref().as_str() else {
                errors.push(source.error(Some(vspan), "`plugin` must be a string"));
                return None;
            };
            match known.iter().find(|k| **k == name) {
                Some(k) => *k,
                None => {
                    let mut e = source.error(
                        Some(vspan),
                        format!(
                            "unknown {} plugin `{name}`; available: {} (run `skymeter plugins`)",
                            kind.as_str(),
                            known.join(", ")
                        ),
                    );
                    e.key = Some("plugin".into());
                    errors.push(e);
                    return None;
                }
            }
        }
    };
    let name = match table.remove("name") {
        Some(v) => match v.get_ref().as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => {
                errors.push(source.error(Some(v.span()), "`name` must be a non-empty string"));
                return None;
            }
        },
        None => plugin.to_string(),
    };
    let catch_up = match (kind, table.remove("catch_up")) {
        (_, None) => None,
        (PluginKind::Collector, Some(v)) => {
            let vspan = v.span();
            match v.get_ref().as_str().map(humantime::parse_duration) {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    let mut err = source.error(
                        Some(vspan),
                        format!("bad `catch_up` ({e}); write e.g. \"24h\", or \"0s\" to turn catch-up off"),
                    );
                    err.key = Some("catch_up".into());
                    errors.push(err);
                    return None;
                }
                None => {
                    let mut err = source.error(
                        Some(vspan),
                        "`catch_up` must be a duration string such as \"24h\"",
                    );
                    err.key = Some("catch_up".into());
                    errors.push(err);
                    return None;
                }
            }
        }
        (_, Some(v)) => {
            let mut err = source.error(
                Some(v.span()),
                format!(
                    "`catch_up` belongs on a collect entry or the task, not on a {} entry",
                    kind.as_str()
                ),
            );
            err.key = Some("catch_up".into());
            errors.push(err);
            return None;
        }
    };
    Some(Entry {
        plugin,
        name,
        catch_up,
        raw: RawConfig::new(
            source.clone(),
            Spanned::new(span, DeValue::Table(table)),
            secrets.clone(),
        ),
    })
}

/// Turns `--set key=value` arguments into a config source: each value is read as a TOML
/// value when it parses as one (`3`, `true`, `["a","b"]`, `{ id = "x" }`) and as a string
/// otherwise, and dotted keys nest (`resource.id=web`).
pub fn one_shot_source(sets: &[String]) -> Result<Arc<Source>, ConfigError> {
    let mut text = String::new();
    for set in sets {
        let Some((key, value)) = set.split_once('=') else {
            return Err(ConfigError {
                file: "--set".into(),
                line: None,
                column: None,
                key: None,
                message: format!("`{set}` is not KEY=VALUE"),
                snippet: None,
            });
        };
        let key = key.trim();
        let value = value.trim();
        let literal = format!("v = {value}");
        let as_toml = toml::from_str::<toml::Table>(&literal).is_ok();
        if as_toml {
            text.push_str(&format!("{key} = {value}\n"));
        } else {
            text.push_str(&format!(
                "{key} = {}\n",
                toml::Value::String(value.to_string())
            ));
        }
    }
    Ok(Source::new("--set", text))
}

/// Builds one collector from `--set` arguments, for `skymeter collect`.
pub fn build_one_shot_collector(
    registry: &Registry,
    plugin: &str,
    sets: &[String],
    ctx: &BuildContext,
) -> Result<Box<dyn Collector>, Vec<ConfigError>> {
    let Some(factory) = registry.collector(plugin) else {
        return Err(vec![ConfigError {
            file: "command line".into(),
            line: None,
            column: None,
            key: None,
            message: format!(
                "unknown collector `{plugin}`; available: {}",
                registry.names(PluginKind::Collector).join(", ")
            ),
            snippet: None,
        }]);
    };
    let source = one_shot_source(sets).map_err(|e| vec![e])?;
    let mut root = source.parse().map_err(|e| vec![e])?;
    let secrets = Arc::new(interpolate(&source, &mut root, &|k| std::env::var(k).ok())?);
    (factory.build)(&RawConfig::new(source.clone(), root, secrets), ctx).map_err(|e| vec![e])
}

#[cfg(test)]
mod tests;
