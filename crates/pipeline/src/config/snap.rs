//! snap task manifests (version 1, JSON or YAML), read as skymeter tasks.
//!
//! A manifest is translated into the TOML of one `[[task]]` and loaded like any task file,
//! so every check of a TOML task (plugin configs included) runs on it too; errors are then
//! pointed back at the manifest's own lines.
//!
//! | manifest | task |
//! |---|---|
//! | `schedule {type: simple, interval}` | `schedule = { every }` |
//! | `schedule {type: windowed, interval, start_timestamp, stop_timestamp}` | `every` with `start` / `stop` |
//! | `schedule {type: cron, interval: "0 * * * * *"}` (or `@every 1m`) | `schedule = { cron }` |
//! | `schedule.count` | `count` |
//! | `max-failures` (−1: never) | `max_failures` (snap's default, 10, when absent) |
//! | `deadline` | `timeout` |
//! | `workflow.collect.metrics` namespaces | collect entries, by [`SNAP_SOURCES`], and the task's `metrics` |
//! | `workflow.collect.config` by namespace prefix | keys of the collect entry of that prefix |
//! | `workflow.collect.tags` by namespace prefix | a leading `relabel` adding those labels |
//! | `collect.publish` | the task's `publish` |
//! | each `process` node | a `[[task.branch]]` per path to its publishers |
//!
//! The workflow is a tree; a skymeter task has branches: every path from `collect` through
//! processors to a publish list becomes one branch with its own copy of each collected
//! batch (a processor shared by two paths runs once per path, on the same input).
//!
//! JSON and YAML parsers give no positions for values, only for syntax and type errors; the
//! lines of namespaces and plugin nodes are found by looking for their text in the manifest
//! (the k-th node of a plugin is the k-th `plugin_name` of that plugin in the file).

use serde::Deserialize;
use serde_json::{Map, Value};
use skymeter_plugin_api::{ConfigError, PluginKind, Registry};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Where collected namespaces come from: a namespace prefix, the skymeter collector that
/// reads it, and how the rest of a namespace names the collector's metric (or a glob).
pub struct SnapSource {
    pub prefix: &'static str,
    pub plugin: &'static str,
    pub metric: fn(&[&str]) -> Option<String>,
    /// What the table in docs/snap.md says about it.
    pub note: &'static str,
}

/// Every namespace prefix a manifest may collect.
pub const SNAP_SOURCES: &[SnapSource] = &[
    SnapSource {
        prefix: skymeter_plugins::collectors::osv::SNAP_PREFIX,
        plugin: "osv",
        metric: skymeter_plugins::collectors::osv::metric_for_snap_namespace,
        note: "snap's OSv collector; every namespace of it (the osv plugin's README maps all 200)",
    },
    SnapSource {
        prefix: "/intel/psutil",
        plugin: "host",
        metric: psutil_metric,
        note: "snap's psutil collector, by the nearest host metric (vm/*, cpu/*, net/*, disk/*)",
    },
    SnapSource {
        prefix: "/skymeter",
        plugin: "",
        metric: |_| None,
        note: "/skymeter/<collector>/<metric parts>: any skymeter collector; the parts after the collector joined with `.` are its metric name or glob",
    },
];

/// snap psutil namespaces → host metrics: the nearest equivalent, documented as such.
fn psutil_metric(rest: &[&str]) -> Option<String> {
    let m = match rest {
        ["*"] | [] => "*",
        ["vm", "total"] => "memory.total",
        ["vm", "available"] => "memory.available",
        ["vm", "used"] => "memory.used",
        ["vm", "used_percent"] => "memory.usage",
        ["vm", "*"] => "memory.*",
        ["cpu", ..] => "cpu.utilization",
        ["net", _, "bytes_recv"] => "network.received_throughput",
        ["net", _, "bytes_sent"] => "network.sent_throughput",
        ["net", _, "packets_recv"] => "network.received_pps",
        ["net", _, "packets_sent"] => "network.sent_pps",
        ["net", _, "errin" | "errout"] => "network.errors",
        ["net", ..] => "network.*",
        ["disk", _, "read_count"] => "disk.read_iops",
        ["disk", _, "write_count"] => "disk.write_iops",
        ["disk", _, "read_bytes"] => "disk.read_throughput",
        ["disk", _, "write_bytes"] => "disk.write_throughput",
        ["disk", ..] => "disk.*",
        _ => return None,
    };
    Some(m.to_string())
}

/// Whether a task file's text is a snap manifest rather than TOML: by extension, else by a
/// JSON object or YAML `version:` at the start.
pub fn is_manifest(path: &str, text: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".json") || lower.ends_with(".yaml") || lower.ends_with(".yml") {
        return true;
    }
    if lower.ends_with(".toml") {
        return false;
    }
    let start = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    start.is_some_and(|l| l.starts_with('{') || l.starts_with("version:") || l == "---")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    schedule: SnapSchedule,
    workflow: Workflow,
    #[serde(rename = "max-failures")]
    max_failures: Option<i64>,
    deadline: Option<String>,
    /// Not snap's (its REST API takes it beside the manifest): the task's name.
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapSchedule {
    #[serde(rename = "type")]
    kind: String,
    interval: Option<String>,
    start_timestamp: Option<String>,
    stop_timestamp: Option<String>,
    count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Workflow {
    collect: Collect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Collect {
    metrics: BTreeMap<String, Value>,
    #[serde(default)]
    config: Option<BTreeMap<String, Option<Map<String, Value>>>>,
    #[serde(default)]
    tags: Option<BTreeMap<String, BTreeMap<String, Value>>>,
    #[serde(default)]
    process: Option<Vec<Node>>,
    #[serde(default)]
    publish: Option<Vec<Node>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Node {
    plugin_name: String,
    #[serde(default)]
    #[allow(dead_code)]
    plugin_version: Option<i64>,
    #[serde(default)]
    config: Option<Map<String, Value>>,
    #[serde(default)]
    process: Option<Vec<Node>>,
    #[serde(default)]
    publish: Option<Vec<Node>>,
}

/// A manifest turned into task TOML, with the way back from its lines to the manifest's.
pub struct Translated {
    pub toml: String,
    /// (first line of the TOML, manifest line it came from), ascending.
    lines: Vec<(usize, usize)>,
    manifest_file: String,
    manifest_text: String,
}

impl Translated {
    /// Points an error found in the translated TOML at the manifest line it came from.
    pub fn relocate(&self, mut e: ConfigError, toml_file: &str) -> ConfigError {
        if e.file != toml_file {
            return e;
        }
        e.file = self.manifest_file.clone();
        e.column = None;
        if let Some(line) = e.line {
            let at = self
                .lines
                .iter()
                .rev()
                .find(|(t, _)| *t <= line)
                .map(|(_, m)| *m);
            e.line = at;
            e.snippet = at.and_then(|l| {
                self.manifest_text
                    .lines()
                    .nth(l - 1)
                    .map(|s| s.trim_end().to_string())
            });
        }
        e
    }
}

/// Line-finding in the manifest's text (see the module doc for why by text).
struct Lines<'a> {
    text: &'a str,
    /// How many nodes of each plugin were placed so far.
    seen: BTreeMap<String, usize>,
}

impl Lines<'_> {
    /// The 1-based line of the n-th (0-based) occurrence of `needle`, if any.
    fn nth(&self, needle: &str, n: usize) -> Option<usize> {
        let (at, _) = self.text.match_indices(needle).nth(n)?;
        Some(self.text[..at].matches('\n').count() + 1)
    }

    /// The line of a key: quoted (JSON, YAML) or bare at the start of a YAML line.
    fn key(&self, key: &str) -> usize {
        self.nth(&format!("\"{key}\""), 0)
            .or_else(|| self.nth(&format!("'{key}'"), 0))
            .or_else(|| {
                self.text
                    .lines()
                    .position(|l| {
                        let l = l.trim_start().trim_start_matches("- ");
                        l.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
                    })
                    .map(|i| i + 1)
            })
            .unwrap_or(1)
    }

    /// The line of the next node of `plugin`.
    fn node(&mut self, plugin: &str) -> usize {
        let n = self.seen.entry(plugin.to_string()).or_insert(0);
        let k = *n;
        *n += 1;
        // Every `plugin_name` line naming this plugin, in file order.
        let mut hits = self.text.lines().enumerate().filter(|(_, l)| {
            l.contains("plugin_name")
                && (l.contains(&format!("\"{plugin}\""))
                    || l.contains(&format!("'{plugin}'"))
                    || l.trim_end().ends_with(&format!(": {plugin}")))
        });
        hits.nth(k).map(|(i, _)| i + 1).unwrap_or(1)
    }
}

/// One error at a manifest line.
fn at(file: &str, text: &str, line: usize, key: Option<&str>, message: String) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: Some(line),
        column: None,
        key: key.map(str::to_string),
        message,
        snippet: text
            .lines()
            .nth(line.saturating_sub(1))
            .map(|s| s.trim_end().to_string()),
    }
}

/// Parses a manifest (JSON, else YAML) and translates it. `default_name` names the task when
/// the manifest does not.
pub fn translate(
    file: &str,
    text: &str,
    default_name: &str,
    registry: &Registry,
) -> Result<Translated, Vec<ConfigError>> {
    let manifest = parse(file, text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut lines = Lines {
        text,
        seen: BTreeMap::new(),
    };
    let err = |line: usize, key: Option<&str>, msg: String| at(file, text, line, key, msg);

    if manifest.version != 1 {
        errors.push(err(
            lines.key("version"),
            Some("version"),
            format!(
                "manifest version {} is not supported; skymeter reads snap manifests of version 1",
                manifest.version
            ),
        ));
    }

    let mut out = Translated {
        toml: String::new(),
        lines: Vec::new(),
        manifest_file: file.to_string(),
        manifest_text: text.to_string(),
    };
    let mut toml = String::new();
    let mut line_no = 1usize;
    let mut push = |toml: &mut String, out: &mut Translated, manifest_line: usize, s: &str| {
        out.lines.push((line_no, manifest_line));
        toml.push_str(s);
        toml.push('\n');
        line_no += 1 + s.matches('\n').count();
    };
    let name = manifest
        .name
        .clone()
        .unwrap_or_else(|| default_name.to_string());
    push(&mut toml, &mut out, 1, "[[task]]");
    let name_line = if manifest.name.is_some() {
        lines.key("name")
    } else {
        1
    };
    push(
        &mut toml,
        &mut out,
        name_line,
        &format!("name = {}", toml_string(&name)),
    );

    // Schedule.
    let sched = &manifest.schedule;
    let sline = lines.key("schedule");
    let interval = sched.interval.as_deref().map(str::trim);
    let mut sched_toml = Vec::new();
    match sched.kind.as_str() {
        "simple" | "windowed" => match interval {
            Some(i) if !i.is_empty() => match go_duration(i) {
                Some(d) => sched_toml.push(format!("every = {}", toml_string(&humantime::format_duration(d).to_string()))),
                None => errors.push(err(
                    lines.key("interval"),
                    Some("interval"),
                    format!("bad `interval` `{i}`; write a duration such as \"1s\", \"500ms\" or \"1m30s\""),
                )),
            },
            _ => errors.push(err(
                sline,
                Some("interval"),
                format!("a `{}` schedule needs an `interval` such as \"10s\"", sched.kind),
            )),
        },
        "cron" => match interval {
            Some(i) if i.starts_with("@every ") => match go_duration(i["@every ".len()..].trim()) {
                Some(d) => sched_toml.push(format!("every = {}", toml_string(&humantime::format_duration(d).to_string()))),
                None => errors.push(err(
                    lines.key("interval"),
                    Some("interval"),
                    format!("bad `@every` duration in `{i}`"),
                )),
            },
            Some(i) if !i.is_empty() => match i.parse::<cron::Schedule>() {
                Ok(_) => sched_toml.push(format!("cron = {}", toml_string(i))),
                Err(e) => errors.push(err(
                    lines.key("interval"),
                    Some("interval"),
                    format!("bad cron expression `{i}` ({}); six fields, seconds first: \"0 */5 * * * *\", or \"@every 1m\"", e.to_string().lines().last().unwrap_or_default()),
                )),
            },
            _ => errors.push(err(
                sline,
                Some("interval"),
                "a `cron` schedule needs `interval` = a cron expression, seconds first: \"0 */5 * * * *\"".into(),
            )),
        },
        other => errors.push(err(
            lines.key("type"),
            Some("type"),
            format!("schedule type `{other}` is not supported; use simple, windowed or cron"),
        )),
    }
    for (key, value) in [
        ("start_timestamp", &sched.start_timestamp),
        ("stop_timestamp", &sched.stop_timestamp),
    ] {
        if let Some(v) = value {
            if sched.kind != "windowed" {
                errors.push(err(
                    lines.key(key),
                    Some(key),
                    format!(
                        "`{key}` belongs to a `windowed` schedule, not `{}`",
                        sched.kind
                    ),
                ));
            }
            let toml_key = if key == "start_timestamp" {
                "start"
            } else {
                "stop"
            };
            sched_toml.push(format!("{toml_key} = {}", toml_string(v)));
        }
    }
    push(
        &mut toml,
        &mut out,
        sline,
        &format!("schedule = {{ {} }}", sched_toml.join(", ")),
    );
    if let Some(count) = sched.count {
        if count == 0 {
            errors.push(err(
                lines.key("count"),
                Some("count"),
                "`count` must be at least 1; leave it out to run until stopped".into(),
            ));
        }
        push(
            &mut toml,
            &mut out,
            lines.key("count"),
            &format!("count = {count}"),
        );
    }
    // snap disables a task after 10 failures in a row unless told otherwise; -1 never does.
    match manifest.max_failures {
        Some(n) if n < 0 => {}
        Some(0) => errors.push(err(
            lines.key("max-failures"),
            Some("max-failures"),
            "`max-failures` must be at least 1, or -1 for never".into(),
        )),
        Some(n) => push(
            &mut toml,
            &mut out,
            lines.key("max-failures"),
            &format!("max_failures = {}", n.min(u32::MAX as i64)),
        ),
        None => push(&mut toml, &mut out, 1, "max_failures = 10"),
    }
    if let Some(d) = &manifest.deadline {
        match go_duration(d) {
            Some(d) => push(
                &mut toml,
                &mut out,
                lines.key("deadline"),
                &format!(
                    "timeout = {}",
                    toml_string(&humantime::format_duration(d).to_string())
                ),
            ),
            None => errors.push(err(
                lines.key("deadline"),
                Some("deadline"),
                format!("bad `deadline` `{d}`; write a duration such as \"5s\""),
            )),
        }
    }

    // Namespaces → collectors and metric globs.
    let collect = &manifest.workflow.collect;
    if collect.metrics.is_empty() {
        errors.push(err(
            lines.key("metrics"),
            Some("metrics"),
            "`workflow.collect.metrics` is empty; name at least one namespace".into(),
        ));
    }
    // Collector plugin → (its namespace prefixes, the manifest line of its first namespace).
    let mut collectors: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut globs: Vec<String> = Vec::new();
    // Each namespace with its metric glob, for the tags of a prefix.
    let mut ns_globs: Vec<(&str, String)> = Vec::new();
    for ns in collect.metrics.keys() {
        let line = lines.key(ns);
        match resolve(ns, registry) {
            Ok((plugin, prefix, glob)) => {
                ns_globs.push((ns.as_str(), glob.clone()));
                let (prefixes, _) = collectors.entry(plugin).or_insert((Vec::new(), line));
                if !prefixes.contains(&prefix) {
                    prefixes.push(prefix);
                }
                if !globs.contains(&glob) {
                    globs.push(glob);
                }
            }
            Err(msg) => errors.push(err(line, Some("metrics"), msg)),
        }
    }
    let glob_list: Vec<String> = globs.iter().map(|g| toml_string(g)).collect();
    push(
        &mut toml,
        &mut out,
        lines.key("metrics"),
        &format!("metrics = [{}]", glob_list.join(", ")),
    );

    // Config by namespace prefix, merged into the collector(s) the prefix covers: a prefix
    // above a collector's (`/intel`) or at or below it (`/intel/osv`); deeper wins.
    let mut configs: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    if let Some(cfg) = &collect.config {
        let mut by_depth: Vec<(&String, &Option<Map<String, Value>>)> = cfg.iter().collect();
        by_depth.sort_by_key(|(k, _)| k.matches('/').count());
        for (prefix, values) in by_depth {
            let Some(values) = values else { continue };
            let covered = covered_by(&collectors, prefix);
            if covered.is_empty() {
                errors.push(err(
                    lines.key(prefix),
                    Some("config"),
                    format!(
                        "config for `{prefix}` applies to no collected namespace (collected: {}); fix the prefix or remove it",
                        collectors.values().flat_map(|(ps, _)| ps.iter().map(String::as_str)).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            for plugin in covered {
                let entry = configs.entry(plugin.clone()).or_default();
                for (k, v) in values {
                    entry.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let mut collect_lines = Vec::new();
    for (plugin, (_, line)) in &collectors {
        let mut entry = Map::new();
        entry.insert("plugin".into(), Value::String(plugin.clone()));
        for (k, v) in configs.remove(plugin).unwrap_or_default() {
            entry.insert(k, v);
        }
        collect_lines.push((*line, format!("  {},", inline_table(&entry))));
    }
    push(&mut toml, &mut out, lines.key("collect"), "collect = [");
    for (line, s) in collect_lines {
        push(&mut toml, &mut out, line, &s);
    }
    push(&mut toml, &mut out, lines.key("collect"), "]");

    // Tags → a relabel adding them, first on every branch.
    let mut tag_processors: Vec<(usize, String)> = Vec::new();
    if let Some(tags) = &collect.tags {
        for (prefix, labels) in tags {
            if covered_by(&collectors, prefix).is_empty() {
                errors.push(err(
                    lines.key(prefix),
                    Some("tags"),
                    format!("tags for `{prefix}` apply to no collected namespace; fix the prefix or remove them"),
                ));
                continue;
            }
            let mut add = Map::new();
            for (k, v) in labels {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                add.insert(k.clone(), Value::String(v));
            }
            // Only the metrics of the namespaces at, below or above the prefix.
            let tagged: Vec<Value> = ns_globs
                .iter()
                .filter(|(ns, _)| covers(prefix, ns))
                .map(|(_, g)| Value::String(g.clone()))
                .collect();
            let mut relabel = Map::new();
            relabel.insert("plugin".into(), Value::String("relabel".into()));
            relabel.insert("name".into(), Value::String(format!("tags {prefix}")));
            relabel.insert("metrics".into(), Value::Array(tagged));
            relabel.insert("add_labels".into(), Value::Object(add));
            tag_processors.push((lines.key(prefix), inline_table(&relabel)));
        }
    }

    // The tree → the task's own publish list plus one branch per path.
    let mut branches: Vec<Path> = Vec::new();
    let root_publish = collect.publish.as_deref().unwrap_or_default();
    let root_process = collect.process.as_deref().unwrap_or_default();
    if root_publish.is_empty() && root_process.is_empty() {
        errors.push(err(
            lines.key("workflow"),
            Some("workflow"),
            "the workflow publishes nowhere; add `publish` (or `process` with `publish`) under `collect`".into(),
        ));
    }
    let mut main_publish = Vec::new();
    for p in root_publish {
        let line = lines.node(&p.plugin_name);
        main_publish.push((line, publisher_entry(p)));
    }
    for p in root_process {
        walk(
            p,
            &tag_processors,
            &mut lines,
            &mut branches,
            &mut errors,
            file,
            text,
        );
    }
    if !main_publish.is_empty() {
        // Tags apply here too: the own branch gets the relabels as its processors.
        if !tag_processors.is_empty() {
            push(&mut toml, &mut out, tag_processors[0].0, "process = [");
            for (line, s) in &tag_processors {
                push(&mut toml, &mut out, *line, &format!("  {s},"));
            }
            push(&mut toml, &mut out, tag_processors[0].0, "]");
        }
        push(&mut toml, &mut out, main_publish[0].0, "publish = [");
        for (line, s) in &main_publish {
            push(&mut toml, &mut out, *line, &format!("  {s},"));
        }
        push(&mut toml, &mut out, main_publish[0].0, "]");
    }
    for (process, publish) in branches {
        let first = process.first().or(publish.first()).map_or(1, |(l, _)| *l);
        push(&mut toml, &mut out, first, "[[task.branch]]");
        push(&mut toml, &mut out, first, "process = [");
        for (line, s) in &process {
            push(&mut toml, &mut out, *line, &format!("  {s},"));
        }
        push(&mut toml, &mut out, first, "]");
        push(&mut toml, &mut out, first, "publish = [");
        for (line, s) in &publish {
            push(&mut toml, &mut out, *line, &format!("  {s},"));
        }
        push(&mut toml, &mut out, first, "]");
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.toml = toml;
    Ok(out)
}

/// A plugin entry of the translated TOML with the manifest line it came from.
type Placed = (usize, String);
/// One path of the workflow tree: its processors, then its publishers.
type Path = (Vec<Placed>, Vec<Placed>);

/// One process node and everything under it: a branch for its own publish list (the
/// processors on the way there, in order) and, recursively, for its child processors.
#[allow(clippy::too_many_arguments)]
fn walk(
    node: &Node,
    path: &[(usize, String)],
    lines: &mut Lines<'_>,
    branches: &mut Vec<Path>,
    errors: &mut Vec<ConfigError>,
    file: &str,
    text: &str,
) {
    let line = lines.node(&node.plugin_name);
    let mut here = path.to_vec();
    here.push((line, processor_entry(node)));
    let publish = node.publish.as_deref().unwrap_or_default();
    let process = node.process.as_deref().unwrap_or_default();
    if publish.is_empty() && process.is_empty() {
        errors.push(at(
            file,
            text,
            line,
            Some("publish"),
            format!(
                "processor `{}` hands its output to nothing; add a `publish` list under it",
                node.plugin_name
            ),
        ));
        return;
    }
    if !publish.is_empty() {
        let pubs = publish
            .iter()
            .map(|p| (lines.node(&p.plugin_name), publisher_entry(p)))
            .collect();
        branches.push((here.clone(), pubs));
    }
    for child in process {
        walk(child, &here, lines, branches, errors, file, text);
    }
}

fn processor_entry(node: &Node) -> String {
    let mut entry = Map::new();
    entry.insert("plugin".into(), Value::String(node.plugin_name.clone()));
    for (k, v) in node.config.iter().flatten() {
        entry.insert(k.clone(), v.clone());
    }
    inline_table(&entry)
}

/// A publish node; snap's `file` and `mock-file` publishers are skymeter's `file`, whose
/// `file` key is its `path`.
fn publisher_entry(node: &Node) -> String {
    let plugin = match node.plugin_name.as_str() {
        "mock-file" => "file",
        other => other,
    };
    let mut entry = Map::new();
    entry.insert("plugin".into(), Value::String(plugin.to_string()));
    for (k, v) in node.config.iter().flatten() {
        let k = if plugin == "file" && k == "file" {
            "path"
        } else {
            k.as_str()
        };
        entry.insert(k.to_string(), v.clone());
    }
    inline_table(&entry)
}

/// The collectors (plugin → its namespace prefixes, first line) a config or tags prefix
/// concerns.
fn covered_by<'c>(
    collectors: &'c BTreeMap<String, (Vec<String>, usize)>,
    prefix: &str,
) -> Vec<&'c String> {
    collectors
        .iter()
        .filter(|(_, (ps, _))| ps.iter().any(|p| covers(prefix, p)))
        .map(|(plugin, _)| plugin)
        .collect()
}

/// Whether a config or tags prefix concerns a collector whose namespaces start at `source`.
fn covers(prefix: &str, source: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    under(source, prefix) || under(prefix, source)
}

/// Whether namespace `ns` is `base` or below it (by whole parts).
fn under(ns: &str, base: &str) -> bool {
    ns == base
        || ns
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A collected namespace → (collector plugin, its namespace prefix, metric name or glob).
fn resolve(ns: &str, registry: &Registry) -> Result<(String, String, String), String> {
    if !ns.starts_with('/') {
        return Err(format!(
            "namespace `{ns}` must start with `/`, e.g. /intel/osv/memory/free"
        ));
    }
    let parts: Vec<&str> = ns.trim_end_matches('/').split('/').skip(1).collect();
    if let ["skymeter", plugin, rest @ ..] = parts.as_slice() {
        if registry.collector(plugin).is_none() {
            return Err(format!(
                "namespace `{ns}`: no skymeter collector `{plugin}`; available: {}",
                registry.names(PluginKind::Collector).join(", ")
            ));
        }
        let glob = if rest.is_empty() {
            "*".to_string()
        } else {
            rest.join(".")
        };
        return Ok((plugin.to_string(), format!("/skymeter/{plugin}"), glob));
    }
    for s in SNAP_SOURCES.iter().filter(|s| !s.plugin.is_empty()) {
        if under(ns, s.prefix) {
            let rest: Vec<&str> = ns[s.prefix.len()..]
                .split('/')
                .filter(|p| !p.is_empty())
                .collect();
            return match (s.metric)(&rest) {
                Some(glob) => Ok((s.plugin.to_string(), s.prefix.to_string(), glob)),
                None => Err(format!(
                    "namespace `{ns}` is not one the `{}` collector knows (`skymeter plugins {}` lists its metrics; docs/snap.md maps namespaces)",
                    s.plugin, s.plugin
                )),
            };
        }
    }
    Err(format!(
        "no collector serves namespace `{ns}`; known prefixes: {} (docs/snap.md)",
        SNAP_SOURCES
            .iter()
            .map(|s| s.prefix)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// JSON when it starts as JSON, YAML otherwise; syntax and shape errors keep their line.
fn parse(file: &str, text: &str) -> Result<Manifest, ConfigError> {
    let json = text.trim_start().starts_with('{');
    let (line, column, message) = if json {
        match serde_json::from_str::<Manifest>(text) {
            Ok(m) => return Ok(m),
            Err(e) => (Some(e.line()), Some(e.column()), e.to_string()),
        }
    } else {
        match serde_yaml_ng::from_str::<Manifest>(text) {
            Ok(m) => return Ok(m),
            Err(e) => {
                let loc = e.location();
                (
                    loc.as_ref().map(|l| l.line()),
                    loc.as_ref().map(|l| l.column()),
                    e.to_string(),
                )
            }
        }
    };
    // serde's own " at line N column M" is said by our position already.
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    Err(ConfigError {
        file: file.to_string(),
        line: line.filter(|l| *l > 0),
        column: column.filter(|c| *c > 0),
        key: None,
        message: format!(
            "not a valid snap task manifest ({}): {message}",
            if json { "JSON" } else { "YAML" }
        ),
        snippet: line
            .filter(|l| *l > 0)
            .and_then(|l| text.lines().nth(l - 1))
            .map(|s| s.trim_end().to_string()),
    })
}

/// Go's duration syntax (`1s`, `1.5s`, `1m30s`, `500ms`, `2h`), which snap manifests use.
/// Hand-written: humantime wants spaces or no fractions, and Go's form is small.
pub fn go_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    (total > 0.0 && total.is_finite()).then(|| std::time::Duration::from_secs_f64(total))
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A JSON object as a one-line TOML inline table (keys quoted; nulls left out).
fn inline_table(map: &Map<String, Value>) -> String {
    let mut s = String::from("{ ");
    let mut first = true;
    for (k, v) in map {
        let Some(v) = toml_value(v) else { continue };
        if !first {
            s.push_str(", ");
        }
        first = false;
        let key = if k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            k.clone()
        } else {
            toml_string(k)
        };
        let _ = write!(s, "{key} = {v}");
    }
    s.push_str(" }");
    s
}

fn toml_value(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => toml::Value::Float(f).to_string(),
            _ => toml_string(&n.to_string()),
        },
        Value::String(s) => toml_string(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .filter_map(toml_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(o) => inline_table(o),
    })
}

#[cfg(test)]
mod tests;
