use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Collects inventory, utilization metrics and cost from clouds, hosts and custom sources,
/// normalizes them into one record format and delivers them on a schedule.
#[derive(Debug, Parser)]
#[command(
    name = "skymeter",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log line format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "SKYMETER_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// More log output (-v debug, -vv trace). SKYMETER_LOG=<filter> overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

pub use crate::output::OutputFormat;

impl Command {
    /// A command that prints a listing or an answer and exits (no agent, no server).
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Plugins(_)
                | Command::Metrics(_)
                | Command::Schema(_)
                | Command::Prices(_)
                | Command::Query(_)
                | Command::Validate(_)
                | Command::Rating(_)
                | Command::Costs(_)
                | Command::Findings(_)
                | Command::Budgets(_)
                | Command::Anomalies(_)
                | Command::Task(_)
                | Command::Metric(_)
                | Command::Plugin(_)
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tasks of a task file on their schedules (the agent); with --api, tasks are
    /// also created, stopped and watched while it runs (`skymeter task`).
    Run(RunArgs),
    /// Check a task file without running it; exit status 2 and every mistake located when wrong.
    Validate(ValidateArgs),
    /// Collect once with one collector and print the records, no task file needed.
    Collect(CollectArgs),
    /// List the built-in plugins, or describe one (config schema and metrics).
    Plugins(PluginsArgs),
    /// List the metrics collectors emit, with units.
    Metrics(MetricsArgs),
    /// Print the JSON Schema of the record format.
    Schema(SchemaArgs),
    /// Run the server: embedded store, ingest and query API, agent registry.
    Server(Box<ServerArgs>),
    /// Server plus a local agent collecting this host, in one process, no setup: the
    /// zero-configuration way to try skymeter.
    Up(UpArgs),
    /// Manage the server's API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run a PromQL query against a skymeter server and print the result.
    Query(QueryArgs),
    /// Price tables behind estimated costs: show the table in use, or read current prices
    /// from a cloud's price API (`skymeter prices aws update --regions eu-west-1`).
    Prices(crate::prices::PricesArgs),
    /// Rating rules (CloudKitty's hashmap and scripts): check a rules file, or price a
    /// usage with it before it happens.
    #[command(subcommand)]
    Rating(crate::rating::RatingCommand),
    /// Cost lines out of the server: `skymeter costs export` writes them as a FinOps FOCUS
    /// 1.2 file (CSV or Parquet).
    #[command(subcommand)]
    Costs(crate::costs::CostsCommand),
    /// What the server found could be stopped, released or resized: idle, orphaned,
    /// oversized and untagged resources with the money per month (table, JSON or CSV).
    Findings(crate::findings::FindingsArgs),
    /// Each `[[budget]]` of the server: the month's spend so far, its forecast and the
    /// thresholds crossed (table or JSON).
    Budgets(crate::budgets::BudgetsArgs),
    /// Days whose cost left its weekly pattern (spikes and level shifts), per provider,
    /// account and service, with the resources that drove them (table or JSON).
    Anomalies(crate::budgets::AnomaliesArgs),
    /// Tasks of a running agent (`skymeter run --api`): create from TOML or a snap
    /// manifest, list, get, start, stop, enable, remove, watch.
    Task(crate::tasks::TaskArgs),
    /// The metrics a running agent's collectors can emit (`skymeter run --api`).
    Metric(crate::tasks::MetricArgs),
    /// The plugins a running agent has (`skymeter run --api`).
    Plugin(crate::tasks::PluginArgs),
    /// Serve a Cloudforet (SpaceONE) inventory collector plugin (gRPC) over a skymeter
    /// server: its servers with their utilization in `data.monitoring` (docs/cloudforet.md).
    CloudforetPlugin(crate::cloudforet::CloudforetPluginArgs),
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Server config file (TOML, a `[server]` table with the keys of these flags:
    /// listen, data_dir, no_auth, tls_cert, tls_key, cors_origins, allowed_hosts, retention,
    /// max_body_bytes, ingest_budget_bytes; `[server.consume]` for NATS: url, stream,
    /// subject, durable, ack_wait, max_in_flight, token, username, password, creds_file),
    /// and optionally a `[rating]` table for the
    /// rating job (docs/rating.md). Flags given on the command line win over the file.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Where the embedded store keeps its data [default: skymeter-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve without tokens. Refused unless --listen is a loopback address.
    #[arg(long)]
    pub no_auth: bool,
    /// PEM certificate chain, to serve HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow browser requests from this origin (repeatable; CORS is off without it).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// A host name clients use to reach the server (repeatable; `*` for any). Requests
    /// addressed to other names are refused (421), which stops DNS rebinding; the listen
    /// address, loopback names and IP addresses are always accepted.
    #[arg(long = "allowed-host", value_name = "HOST[:PORT]")]
    pub allowed_hosts: Vec<String>,
    /// Most ingest request bytes in flight at once (e.g. 512MiB); over it, requests are
    /// answered 429 with Retry-After [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = byte_size)]
    pub ingest_budget: Option<skymeter_plugin_api::config::ByteSize>,
    /// Delete data older than this (e.g. 90d); keep everything when absent.
    #[arg(long, value_parser = humantime_duration)]
    pub retention: Option<std::time::Duration>,
    /// Keep resources, costs, agents, tokens and batch ids in PostgreSQL
    /// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`; write the password as `${ENV}` in
    /// the config file, or set SKYMETER_METADATA, which keeps it out of the process list)
    /// instead of the data dir, so that several servers share them. TLS as libpq:
    /// `?sslmode=verify-full&sslrootcert=/ca.pem` (or `sslmode=require`). Needs --tsdb. See
    /// docs/scaling.md.
    #[arg(
        long,
        value_name = "URL",
        env = "SKYMETER_METADATA",
        hide_env_values = true
    )]
    pub metadata: Option<String>,
    /// Keep points in a Prometheus-compatible TSDB: `remote-write=URL,query=URL` (e.g.
    /// VictoriaMetrics: `remote-write=http://vm:8428/api/v1/write,query=http://vm:8428`).
    /// Points are sent by remote-write through an on-disk queue in the data dir and read
    /// back through the TSDB's query API. Needs --metadata.
    #[arg(long, value_name = "remote-write=URL,query=URL")]
    pub tsdb: Option<String>,
    /// Also store the batches of a NATS JetStream stream (the agents' `nats` publisher),
    /// through a durable consumer every server shares (repeatable: a cluster's servers).
    #[arg(long, value_name = "nats://HOST:PORT")]
    pub consume: Vec<String>,
    /// The stream consumed [default: SKYMETER].
    #[arg(long, value_name = "NAME", requires = "consume")]
    pub consume_stream: Option<String>,
    /// Only these subjects of the stream (e.g. `skymeter.batches.>`) [default: all].
    #[arg(long, value_name = "SUBJECT", requires = "consume")]
    pub consume_subject: Option<String>,
    /// The durable consumer's name, the same on every server [default: skymeter].
    #[arg(long, value_name = "NAME", requires = "consume")]
    pub consume_durable: Option<String>,
    /// How long a batch may take before NATS hands it to another server [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = humantime_duration, requires = "consume")]
    pub consume_ack_wait: Option<std::time::Duration>,
    /// Batches from NATS stored at once by this server [default: 16].
    #[arg(long, value_name = "N", requires = "consume")]
    pub consume_max_in_flight: Option<usize>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address to listen on (must be loopback: `up` runs without tokens).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Where the store and the local agent keep their data.
    #[arg(long, default_value = "skymeter-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// How often the local agent collects this host.
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    pub every: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (the only time it is shown; only its hash is kept).
    Create(TokenCreateArgs),
    /// List tokens (ids, names, scopes; never the tokens).
    List(TokenListArgs),
    /// Revoke a token by its id.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token may do (repeatable): ingest, read, admin.
    #[arg(long = "scope", value_enum, required = true)]
    pub scopes: Vec<ScopeArg>,
    /// A name to recognise it by.
    #[arg(long, default_value = "")]
    pub name: String,
    #[arg(long, default_value = "skymeter-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The tokens of servers run with --metadata: this PostgreSQL URL instead of the data
    /// dir.
    #[arg(
        long,
        value_name = "URL",
        env = "SKYMETER_METADATA",
        hide_env_values = true
    )]
    pub metadata: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    #[arg(long, default_value = "skymeter-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The tokens of servers run with --metadata: this PostgreSQL URL instead of the data
    /// dir.
    #[arg(
        long,
        value_name = "URL",
        env = "SKYMETER_METADATA",
        hide_env_values = true
    )]
    pub metadata: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `token list`).
    pub id: String,
    #[arg(long, default_value = "skymeter-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The tokens of servers run with --metadata: this PostgreSQL URL instead of the data
    /// dir.
    #[arg(
        long,
        value_name = "URL",
        env = "SKYMETER_METADATA",
        hide_env_values = true
    )]
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Ingest,
    Read,
    Admin,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task file: TOML, or a snap task manifest (JSON or YAML, docs/snap.md). Optional with
    /// --api, whose tasks can all be created at run time.
    #[arg(short, long, value_name = "FILE", required_unless_present = "api")]
    pub config: Option<PathBuf>,
    /// Run every task once over its last complete window, flush, and exit.
    #[arg(long, conflicts_with = "api")]
    pub once: bool,
    /// Run only this task (repeatable).
    #[arg(long = "task", value_name = "NAME")]
    pub tasks: Vec<String>,
    /// Serve the agent API on this address: tasks created, started, stopped, removed and
    /// watched while the agent runs (`skymeter task …`); tasks made there are kept in the
    /// data dir and survive a restart.
    #[arg(long, value_name = "ADDR")]
    pub api: Option<std::net::SocketAddr>,
    /// The agent API's bearer token file; created with a fresh token (mode 0600) when
    /// missing [default: <data dir>/agent-api-token].
    #[arg(long, value_name = "FILE", requires = "api")]
    pub api_token_file: Option<PathBuf>,
    /// Serve the agent API without a token. Refused unless --api is a loopback address.
    #[arg(long, requires = "api")]
    pub api_no_auth: bool,
    /// The agent's data dir when there is no task file (with one, its `[agent] data_dir`)
    /// [default: skymeter-data].
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Task file: TOML, or a snap task manifest (JSON or YAML).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Collector to run (see `skymeter plugins`).
    pub plugin: String,
    /// A config key of the collector, KEY=VALUE (repeatable; dotted keys nest, values are
    /// TOML when they parse as TOML and strings otherwise).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output: a table, or JSON with one standard record per line.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Only these metrics (globs such as `cpu.*`; repeatable).
    #[arg(long = "metrics", value_name = "GLOB")]
    pub metrics: Vec<String>,
    /// Length of the window collected, ending at the last multiple of it.
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    pub period: std::time::Duration,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    pub timeout: std::time::Duration,
    /// Only check config and credentials against the source; collect nothing.
    #[arg(long)]
    pub verify: bool,
    /// skymeter's data directory: collectors read files of their own there (the aws
    /// collector its price table, `<DIR>/prices/aws.json`, when it exists).
    #[arg(long, default_value = "skymeter-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Discover, then print the plan (API calls per API, metrics requested, their estimated
    /// cost) without the billed calls. Collectors with a `dry_run` key only (aws, azure).
    #[arg(long, conflicts_with = "verify")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Describe this plugin: summary, config schema, metrics.
    pub name: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Only this collector's metrics.
    #[arg(long)]
    pub plugin: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `skymeter query 'avg by (region) (cpu_utilization_percent)' --range 6h --step 5m`
///
/// Asks the server's Prometheus-compatible API (`/api/v1/query`, or `/api/v1/query_range`
/// with --range). Metric names and labels are the Prometheus ones: `cpu.utilization` in
/// percent is `cpu_utilization_percent`, with labels provider, account, region,
/// resource_id, stat, kind, resource_name and tag_<key>.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct QueryArgs {
    /// The PromQL expression.
    pub query: String,
    /// Evaluation time of an instant query: RFC 3339, Unix seconds, `now`, or relative to
    /// now (`-1h`, `now-30m`) [default: now].
    #[arg(long, value_name = "TIME", conflicts_with = "range")]
    pub time: Option<String>,
    /// Run a range query over this span, ending at --end: `1h`, `30m`, `7d`.
    #[arg(long, value_name = "DURATION", value_parser = humantime_duration)]
    pub range: Option<std::time::Duration>,
    /// Resolution of the range query [default: the range / 120, at least 1s].
    #[arg(long, value_name = "DURATION", value_parser = humantime_duration, requires = "range")]
    pub step: Option<std::time::Duration>,
    /// End of the range query, in the forms of --time [default: now].
    #[arg(long, value_name = "TIME", requires = "range")]
    pub end: Option<String>,
    #[command(flatten)]
    pub server: crate::remote::ServerOpts,
    /// `table`: one row per series; `json`: the API's `data` object.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// `batch` (the envelope on the wire) or `record` (one line of `--format json`).
    #[arg(value_enum, default_value_t = SchemaKind::Batch)]
    pub kind: SchemaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    Batch,
    Record,
}

fn humantime_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("bad duration `{s}` ({e}); write e.g. 30s, 5m"))
}

/// A byte size flag, written as in config files: `512MiB`, `1GB` or a number of bytes.
fn byte_size(s: &str) -> Result<skymeter_plugin_api::config::ByteSize, String> {
    let value = match s.trim().parse::<u64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(s),
    };
    serde_json::from_value(value).map_err(|e| e.to_string())
}
