//! `exec`: runs a command and reads points from its standard output, in one of three
//! formats: `json_lines` (skymeter records, or compact `{"metric":…,"value":…}` points),
//! `prometheus` (the text exposition format, converted as the `prometheus` collector does)
//! or `csv` (one row per line, columns mapped to labels and metrics, as
//! `nvidia-smi --format=csv,noheader,nounits` prints).
//!
//! The command runs without a shell unless `shell = true`, in its own process group, so that
//! a timeout (or the task being cancelled) kills it and everything it started.

mod kind;
mod output;

use crate::common::series::{RateState, ReadingKind};
use chrono::Utc;
pub use kind::ValueType;
use kind::{reading_kind, Column};
use output::Parsed;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use skymeter_model::{Stat, Unit};
use skymeter_plugin_api::config::{DurationStr, ResourceTemplate};
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError, ErrorKind,
    ExposeSecret, Output, PluginDescription, PluginError, PluginKind, RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// `collect = [{ plugin = "exec", command = ["my-probe", "--json"], format = "json_lines" }]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments, e.g. `["nvidia-smi", "--query-gpu=index,utilization.gpu",
    /// "--format=csv,noheader,nounits"]`; or one string run by `sh -c` when `shell = true`.
    pub command: CommandSpec,
    /// Run `command` (a string) with `sh -c`. Default `false`: no shell, no quoting issues.
    #[serde(default)]
    pub shell: bool,
    /// Extra environment variables for the command (secrets: never logged). The agent's own
    /// environment is passed on too. Default none.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<String, SecretString>,
    /// Longest time the command may run; then it and its process group are killed.
    /// Default `"10s"`.
    #[serde(default = "default_timeout")]
    pub timeout: DurationStr,
    /// Directory to run the command in. Default: the agent's.
    pub working_dir: Option<PathBuf>,
    /// How to read standard output. Default `json_lines`.
    #[serde(default)]
    pub format: Format,
    /// `csv` only: what each column is, in order.
    #[serde(default)]
    pub columns: Vec<CsvColumn>,
    /// `csv` only: the first line is a header to skip. Default `false`.
    #[serde(default)]
    pub header: bool,
    /// `csv` only: the field separator, one character. Default `","`.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// On the first collection, when the output has counters, run the command again after
    /// this long so that counters give rates at once. `"0s"` turns it off. Default `"1s"`.
    #[serde(default = "default_warmup")]
    pub warmup: DurationStr,
    /// Who the points belong to. Defaults: provider `custom`, kind `service`, id the program
    /// name (`nvidia-smi`).
    #[serde(default)]
    pub resource: ResourceTemplate,
}

/// The command: an argv array, or a string for `sh -c`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum CommandSpec {
    Argv(Vec<String>),
    Line(String),
}

impl<'de> Deserialize<'de> for CommandSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CommandSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of strings like [\"nvidia-smi\", \"-q\"], or a string with shell = true")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CommandSpec, E> {
                Ok(CommandSpec::Line(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CommandSpec, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(CommandSpec::Argv(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// How the command's standard output is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON object per line: a skymeter record (`"type": "point" | "resource" | "cost"
    /// | "error"`) or a compact point (`{"metric", "value", "unit", "stat", "labels",
    /// "type": "gauge" | "counter"}`).
    #[default]
    JsonLines,
    /// The Prometheus text exposition format.
    Prometheus,
    /// Comma-separated values, described by `columns`.
    Csv,
}

/// One CSV column: `{ label = "gpu" }`, `{ metric = "gpu.utilization", unit = "percent" }`,
/// `{ skip = true }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvColumn {
    /// The column is the value of this label for the row's metrics.
    pub label: Option<String>,
    /// The column is a value of this metric.
    pub metric: Option<String>,
    /// Unit of the metric (after `factor`). Default `none`.
    pub unit: Option<Unit>,
    /// Multiply the cell by this, e.g. 1048576 for MiB → bytes. Default 1.
    pub factor: Option<f64>,
    /// `gauge` (default) or `counter`.
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    /// Stat of a gauge. Default `last`.
    pub stat: Option<Stat>,
    /// Ignore the column.
    #[serde(default)]
    pub skip: bool,
}

fn default_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}

fn default_warmup() -> DurationStr {
    DurationStr(Duration::from_secs(1))
}

fn default_delimiter() -> String {
    ",".into()
}

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "exec",
            kind: PluginKind::Collector,
            summary: "runs a command and reads points from its output: JSON lines, Prometheus text or CSV (nvidia-smi)",
            config_schema: PluginDescription::schema_of::<ExecConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let cfg: ExecConfig = raw.decode()?;
    Ok(Box::new(Exec::new(cfg, raw)?))
}

/// Seconds on a monotonic clock; tests swap in one they drive.
type Clock = Box<dyn Fn() -> f64 + Send + Sync>;

pub struct Exec {
    program: String,
    args: Vec<String>,
    /// How errors name the command: the program, or the shell line.
    shown: String,
    env: Vec<(String, SecretString)>,
    working_dir: Option<PathBuf>,
    timeout: Duration,
    warmup: Duration,
    format: Format,
    columns: Vec<Column>,
    header: bool,
    delimiter: u8,
    default_id: String,
    resource: ResourceTemplate,
    state: RateState,
    clock: Clock,
}

impl Exec {
    fn new(cfg: ExecConfig, raw: &RawConfig<'_>) -> Result<Self, ConfigError> {
        let (program, args, shown) = match (&cfg.command, cfg.shell) {
            (CommandSpec::Argv(argv), false) => {
                let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
                    return Err(raw.error(
                        "command",
                        "is empty; write the program and its arguments, e.g. [\"nvidia-smi\", \"-q\"]",
                    ));
                };
                (program.clone(), argv[1..].to_vec(), program.clone())
            }
            (CommandSpec::Line(line), true) => {
                if line.trim().is_empty() {
                    return Err(raw.error("command", "is empty; write the shell command to run"));
                }
                ("sh".to_string(), vec!["-c".to_string(), line.clone()], line.clone())
            }
            (CommandSpec::Line(_), false) => {
                return Err(raw.error(
                    "command",
                    "is a string: write it as an array [\"program\", \"arg\", …], or set `shell = true` to run it with sh -c",
                ))
            }
            (CommandSpec::Argv(_), true) => {
                return Err(raw.error(
                    "command",
                    "with `shell = true`, write the command as one string, e.g. \"df -k | tail -n +2\"",
                ))
            }
        };
        let first_word = match &cfg.command {
            CommandSpec::Argv(_) => program.as_str(),
            CommandSpec::Line(l) => l.split_whitespace().next().unwrap_or("sh"),
        };
        let default_id = first_word
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(first_word)
            .to_string();

        if cfg.timeout.0.is_zero() {
            return Err(raw.error("timeout", "must be more than 0, e.g. \"10s\""));
        }
        for key in cfg.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(raw.error(
                    "env",
                    format!("`{key}` is not an environment variable name"),
                ));
            }
        }
        let delimiter = match cfg.delimiter.as_bytes() {
            [b] if b.is_ascii() => *b,
            _ => {
                return Err(raw.error(
                    "delimiter",
                    "must be one ASCII character, e.g. \",\" or \";\"",
                ))
            }
        };

        let mut columns = Vec::new();
        if cfg.format == Format::Csv && cfg.columns.is_empty() {
            return Err(raw.error(
                "columns",
                "format = \"csv\" needs `columns`, e.g. [{ label = \"gpu\" }, { metric = \"gpu.utilization\", unit = \"percent\" }]",
            ));
        }
        if cfg.format != Format::Csv && !cfg.columns.is_empty() {
            return Err(raw.error("columns", "is only read with format = \"csv\""));
        }
        for (i, c) in cfg.columns.iter().enumerate() {
            let n = i + 1;
            let col = match (&c.label, &c.metric, c.skip) {
                (Some(l), None, false) if c.unit.is_none() && c.factor.is_none() && c.value_type.is_none() && c.stat.is_none() => {
                    if l.is_empty() {
                        return Err(raw.error("columns", format!("column {n}: `label` is empty")));
                    }
                    Column::Label(l.clone())
                }
                (Some(_), None, false) => {
                    return Err(raw.error(
                        "columns",
                        format!("column {n}: a label column takes no unit, factor, type or stat"),
                    ))
                }
                (None, Some(m), false) => {
                    if !skymeter_model::is_valid_metric_name(m) {
                        return Err(raw.error(
                            "columns",
                            format!("column {n}: `{m}` is not a metric name: use letters, digits, `_ . : / -`"),
                        ));
                    }
                    let factor = c.factor.unwrap_or(1.0);
                    if !factor.is_finite() || factor == 0.0 {
                        return Err(raw.error(
                            "columns",
                            format!("column {n}: `factor` must be a finite number other than 0"),
                        ));
                    }
                    Column::Metric {
                        name: m.clone(),
                        factor,
                        kind: reading_kind(
                            c.value_type.unwrap_or_default(),
                            c.unit.unwrap_or(Unit::None),
                            c.stat.unwrap_or(Stat::Last),
                        ),
                    }
                }
                (None, None, true) => Column::Skip,
                _ => {
                    return Err(raw.error(
                        "columns",
                        format!("column {n}: give exactly one of `label = \"…\"`, `metric = \"…\"` or `skip = true`"),
                    ))
                }
            };
            columns.push(col);
        }

        let start = Instant::now();
        Ok(Exec {
            program,
            args,
            shown,
            env: cfg.env.into_iter().collect(),
            working_dir: cfg.working_dir,
            timeout: cfg.timeout.0,
            warmup: cfg.warmup.0,
            format: cfg.format,
            columns,
            header: cfg.header,
            delimiter,
            default_id,
            resource: cfg.resource,
            state: RateState::new(),
            clock: Box::new(move || start.elapsed().as_secs_f64()),
        })
    }

    fn err(&self, kind: ErrorKind, message: String) -> PluginError {
        PluginError::new(kind, message).with("command", &self.shown)
    }

    /// Runs the command to completion; returns its standard output.
    async fn run(&self) -> Result<Vec<u8>, PluginError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v.expose_secret());
        }
        if let Some(dir) = &self.working_dir {
            cmd.current_dir(dir);
        }
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        // Kills the whole group if this future is dropped (the task was cancelled) while
        // the command runs.
        let mut guard = GroupGuard(child.id());
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let io = async {
            let mut out = Vec::new();
            let (read_out, err, status) = tokio::join!(
                stdout.read_to_end(&mut out),
                read_head(&mut stderr, 500),
                child.wait()
            );
            (read_out.map(|_| out), err, status)
        };
        let (stdout, stderr, status) = match tokio::time::timeout(self.timeout, io).await {
            Ok(done) => done,
            Err(_) => {
                // The group leader is not reaped yet, so its id still names the group.
                guard.kill();
                let _ = child.kill().await;
                return Err(self.err(
                    ErrorKind::Timeout,
                    format!(
                        "`{}` did not finish within {}; killed it and its process group. Raise `timeout` or make the command faster",
                        self.shown,
                        humantime::format_duration(self.timeout)
                    ),
                ));
            }
        };
        guard.0 = None;
        let status = status.map_err(|e| {
            self.err(
                ErrorKind::Other,
                format!("waiting for `{}` failed: {e}", self.shown),
            )
        })?;
        let stdout = stdout.map_err(|e| {
            self.err(
                ErrorKind::Other,
                format!("reading the output of `{}` failed: {e}", self.shown),
            )
        })?;
        if !status.success() {
            let why = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => {
                    #[cfg(unix)]
                    {
                        use std::os::unix::process::ExitStatusExt;
                        format!("was killed by signal {}", status.signal().unwrap_or(0))
                    }
                    #[cfg(not(unix))]
                    {
                        "was killed".to_string()
                    }
                }
            };
            let stderr = String::from_utf8_lossy(&stderr);
            let stderr = stderr.trim();
            let tail = if stderr.is_empty() {
                " and wrote nothing to stderr".to_string()
            } else {
                format!("; stderr: {stderr}")
            };
            let mut e = self.err(ErrorKind::Other, format!("`{}` {why}{tail}", self.shown));
            if let Some(code) = status.code() {
                e = e.with("exit_code", code.to_string());
            }
            return Err(e);
        }
        Ok(stdout)
    }

    fn spawn_error(&self, e: std::io::Error) -> PluginError {
        if let Some(dir) = &self.working_dir {
            if !dir.is_dir() {
                return self.err(
                    ErrorKind::Config,
                    format!(
                        "working_dir `{}` is not a directory; create it or fix `working_dir`",
                        dir.display()
                    ),
                );
            }
        }
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                let path = self
                    .env
                    .iter()
                    .find(|(k, _)| k == "PATH")
                    .map(|(_, v)| v.expose_secret().to_string())
                    .or_else(|| std::env::var("PATH").ok())
                    .unwrap_or_default();
                let hint = if self.program.contains('/') {
                    "check the path".to_string()
                } else {
                    format!("it is not on PATH ({path}); install it, give its absolute path, or set `env = {{ PATH = \"…\" }}`")
                };
                self.err(
                    ErrorKind::Config,
                    format!("command `{}` not found: {hint}", self.program),
                )
            }
            std::io::ErrorKind::PermissionDenied => self.err(
                ErrorKind::Permission,
                format!(
                    "cannot run `{}`: permission denied; is it executable (chmod +x)?",
                    self.program
                ),
            ),
            _ if e.raw_os_error() == Some(8) => self.err(
                ErrorKind::Config,
                format!(
                    "cannot start `{}`: {e}; a script needs a `#!` first line (e.g. #!/bin/sh)",
                    self.program
                ),
            ),
            _ => self.err(
                ErrorKind::Other,
                format!("cannot start `{}`: {e}", self.program),
            ),
        }
    }

    /// Runs the command and reads its output.
    async fn run_and_parse(&self, req: &CollectRequest) -> Result<Parsed, PluginError> {
        let stdout = self.run().await?;
        let text = String::from_utf8(stdout).map_err(|e| {
            self.err(
                ErrorKind::BadResponse,
                format!(
                    "the output of `{}` is not UTF-8 text (bad byte at offset {})",
                    self.shown,
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        let parsed = match self.format {
            Format::JsonLines => output::json_lines(&text, &req.metrics),
            Format::Prometheus => output::prometheus(&text, &req.metrics)
                .map_err(|e| e.with("command", &self.shown))?,
            Format::Csv => output::csv(
                &text,
                &self.columns,
                self.header,
                self.delimiter,
                &req.metrics,
            ),
        };
        Ok(parsed)
    }
}

/// Reads `r` to its end, keeping the first `keep` bytes, so
/// that a command writing a lot to stderr never blocks on a full pipe.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R, keep: usize) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = keep.saturating_sub(head.len());
                head.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    head
}

/// Kills a process group (by its leader's pid) when dropped, unless disarmed.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            kill_group(pid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(target_os = "linux")]
fn kill_group(pid: u32) {
    use rustix::process::{kill_process_group, Pid, Signal};
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

#[cfg(not(target_os = "linux"))]
fn kill_group(_pid: u32) {
    // Elsewhere only the command itself is killed (kill_on_drop).
}

#[async_trait]
impl Collector for Exec {
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let resource = self.resource.build("service", &self.default_id, Utc::now());
        let res_ref = resource.reference();

        let mut parsed = self.run_and_parse(req).await?;
        let has_counters = |p: &Parsed| {
            p.readings
                .iter()
                .any(|r| matches!(r.kind, ReadingKind::Counter { .. }))
        };
        if !self.state.has_previous() && !self.warmup.is_zero() && has_counters(&parsed) {
            let mut e = self
                .state
                .begin((self.clock)(), res_ref.clone().into(), req.window.end);
            let mut discard = Vec::new();
            for r in std::mem::take(&mut parsed.readings) {
                e.push(r, &mut discard);
            }
            e.finish();
            tokio::time::sleep(self.warmup).await;
            parsed = self.run_and_parse(req).await?;
        }

        let good = parsed.readings.len()
            + parsed.points.len()
            + parsed.resources.len()
            + parsed.costs.len();
        if good == 0 && !parsed.errors.is_empty() {
            let n = parsed.errors.len();
            let first = parsed.errors.swap_remove(0);
            let more = if n > 1 {
                format!(" (and {} more bad lines)", n - 1)
            } else {
                String::new()
            };
            return Err(self.err(
                ErrorKind::BadResponse,
                format!(
                    "nothing in the output of `{}` could be read: {}{more}",
                    self.shown, first.message
                ),
            ));
        }

        out.resources.push(resource);
        let mut e = self
            .state
            .begin((self.clock)(), res_ref.into(), req.window.end);
        for r in parsed.readings {
            e.push(r, &mut out.points);
        }
        e.finish();
        out.points.extend(parsed.points);
        out.resources.extend(parsed.resources);
        out.costs.extend(parsed.costs);
        for err in parsed.errors {
            out.errors.push(err.with("command", &self.shown));
        }
        Ok(())
    }
}

#[cfg(test)]
mod prop_output;
#[cfg(test)]
mod tests;
