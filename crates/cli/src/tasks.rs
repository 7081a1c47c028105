//! The commands that talk to an agent started with `skymeter run --api`: `skymeter task …`,
//! `skymeter metric list`, `skymeter plugin list`, the counterparts of snap's
//! `snaptel task|metric|plugin`.

use crate::agent_api;
use crate::output::{new_table, OutputFormat, FAILURE, USAGE};
use crate::remote::{request, Body, Endpoint};
use clap::{Args, Subcommand};
use serde_json::Value;
use skymeter_pipeline::config::snap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the agent API is, its token, and how to print.
#[derive(Debug, Args)]
pub struct AgentOpts {
    /// The agent API's base URL (`skymeter run --api ADDR`).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "SKYMETER_AGENT",
        default_value = "http://127.0.0.1:8181"
    )]
    pub agent: String,
    /// The agent API token [default: the content of --token-file].
    #[arg(
        long,
        global = true,
        env = "SKYMETER_AGENT_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A file holding the agent API token [default: skymeter-data/agent-api-token, the
    /// token file of an agent started in this directory, when it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Output: tables (snaptel's shape for `task create`), or the API's JSON.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

impl AgentOpts {
    fn token(&self) -> Result<Option<String>, ExitCode> {
        if let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        let (file, explicit) = match &self.token_file {
            Some(f) => (f.clone(), true),
            None => (
                agent_api::default_token_file(std::path::Path::new("skymeter-data")),
                false,
            ),
        };
        match std::fs::read_to_string(&file) {
            Ok(t) => Ok(Some(t.trim().to_string())),
            Err(e) if explicit => {
                eprintln!("error: cannot read the token file {}: {e}", file.display());
                Err(ExitCode::from(USAGE))
            }
            Err(_) => Ok(None),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body,
    ) -> Result<Value, ExitCode> {
        let token = self.token()?;
        let endpoint = Endpoint {
            base: &self.agent,
            token: token.as_deref(),
            what: "an agent with --api",
            where_flag: "--agent or SKYMETER_AGENT",
            token_flag:
                "--token, SKYMETER_AGENT_TOKEN or --token-file (the agent's agent-api-token file)",
        };
        request(&endpoint, method, path, body).await
    }
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    #[command(subcommand)]
    pub command: TaskCommand,
    #[command(flatten)]
    pub agent: AgentOpts,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task from a file: TOML (`[[task]]`s) or a snap task manifest (JSON or YAML).
    /// It starts at once unless --no-start.
    Create {
        /// The task file.
        #[arg(short = 't', long = "task-file", value_name = "FILE")]
        file: PathBuf,
        /// Create it stopped.
        #[arg(long)]
        no_start: bool,
    },
    /// Every task of the agent, with its state and last run.
    List,
    /// One task (by id or name).
    Get { id: String },
    /// Start a stopped or ended task.
    Start { id: String },
    /// Stop a task: its run in flight finishes and is published first.
    Stop { id: String },
    /// Make a disabled task (too many failed runs in a row) stopped again, to start.
    Enable { id: String },
    /// Stop and remove a task created through the API.
    Remove { id: String },
    /// Print what each run of a task collects, as it happens, until the task stops
    /// (Ctrl-C ends the watch, not the task).
    Watch { id: String },
}

pub async fn task(args: TaskArgs) -> ExitCode {
    let opts = &args.agent;
    let json = opts.format == OutputFormat::Json;
    let result = match &args.command {
        TaskCommand::Create { file, no_start } => {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return ExitCode::from(USAGE);
                }
            };
            let name = file.display().to_string();
            let (content_type, format) = if snap::is_manifest(&name, &text) {
                ("application/json", "manifest")
            } else {
                ("application/toml", "toml")
            };
            let path = format!("/api/v1/tasks?start={}&format={format}", !no_start);
            opts.call(
                reqwest::Method::POST,
                &path,
                Body::Text { content_type, text },
            )
            .await
            .map(|v| {
                if json {
                    println!("{v}");
                } else {
                    for t in v["tasks"].as_array().into_iter().flatten() {
                        println!("Task created");
                        println!("ID: {}", t["id"].as_str().unwrap_or_default());
                        println!("Name: {}", t["name"].as_str().unwrap_or_default());
                        println!("State: {}", t["state"].as_str().unwrap_or_default());
                    }
                }
            })
        }
        TaskCommand::List => opts
            .call(reqwest::Method::GET, "/api/v1/tasks", Body::None)
            .await
            .map(|v| {
                if json {
                    println!("{v}");
                    return;
                }
                let mut table = new_table(&[
                    "ID", "NAME", "STATE", "SCHEDULE", "RUNS", "FAILED", "LAST RUN",
                ]);
                for t in v["tasks"].as_array().into_iter().flatten() {
                    table.add_row(vec![
                        text(&t["id"]),
                        text(&t["name"]),
                        text(&t["state"]),
                        text(&t["schedule"]),
                        text(&t["runs"]),
                        text(&t["failed_runs"]),
                        last_run(&t["last_run"]),
                    ]);
                }
                println!("{table}");
            }),
        TaskCommand::Get { id } => opts
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/tasks/{}", enc(id)),
                Body::None,
            )
            .await
            .map(|t| print_task(&t, json)),
        TaskCommand::Start { id } => lifecycle(opts, id, "start", json).await,
        TaskCommand::Stop { id } => lifecycle(opts, id, "stop", json).await,
        TaskCommand::Enable { id } => lifecycle(opts, id, "enable", json).await,
        TaskCommand::Remove { id } => opts
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/tasks/{}", enc(id)),
                Body::None,
            )
            .await
            .map(|v| {
                if json {
                    println!("{v}");
                } else {
                    println!(
                        "Task `{}` ({}) removed",
                        text(&v["removed"]["name"]),
                        text(&v["removed"]["id"])
                    );
                }
            }),
        TaskCommand::Watch { id } => return watch(opts, id, json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

async fn lifecycle(opts: &AgentOpts, id: &str, verb: &str, json: bool) -> Result<(), ExitCode> {
    let t = opts
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/tasks/{}/{verb}", enc(id)),
            Body::None,
        )
        .await?;
    if json {
        println!("{t}");
    } else {
        println!(
            "Task `{}` ({}) is {}",
            text(&t["name"]),
            text(&t["id"]),
            text(&t["state"])
        );
    }
    Ok(())
}

fn print_task(t: &Value, json: bool) {
    if json {
        println!("{t}");
        return;
    }
    let mut table = new_table(&["FIELD", "VALUE"]);
    for key in [
        "id",
        "name",
        "state",
        "origin",
        "format",
        "created",
        "schedule",
        "collect",
        "process",
        "publish",
        "runs",
        "failed_runs",
    ] {
        table.add_row(vec![key.to_string(), text(&t[key])]);
    }
    table.add_row(vec!["last_run".to_string(), last_run(&t["last_run"])]);
    if let Some(e) = t["last_error"].as_str() {
        table.add_row(vec!["last_error".to_string(), e.to_string()]);
    }
    println!("{table}");
}

/// A JSON value as a table cell: strings bare, lists joined.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        // Whole numbers as snap prints them (`2023403520`, not `2023403520.0`).
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.007e15 => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        },
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn last_run(v: &Value) -> String {
    if v.is_null() {
        return "never".into();
    }
    format!(
        "{}: {} points, {} errors",
        text(&v["finished"]),
        text(&v["points"]),
        text(&v["errors"])
    )
}

/// A path segment: an id or a name, percent-encoded.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Reads the watch stream (server-sent events). Parsed by hand: the format is a few lines
/// per event (`event:`, `data:`, a blank line), and no SSE client crate is in the tree.
async fn watch(opts: &AgentOpts, id: &str, json: bool) -> ExitCode {
    let token = match opts.token() {
        Ok(t) => t,
        Err(code) => return code,
    };
    let url = format!(
        "{}/api/v1/tasks/{}/watch",
        opts.agent.trim_end_matches('/'),
        enc(id)
    );
    let client = reqwest::Client::new();
    let mut req = client.get(&url);
    if let Some(t) = &token {
        req = req.bearer_auth(t);
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: GET {url}: {e}; is an agent with --api running there? (--agent or SKYMETER_AGENT)");
            return ExitCode::from(FAILURE);
        }
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        eprintln!(
            "error: GET {url}: {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
        return ExitCode::from(FAILURE);
    }
    let mut buf = String::new();
    let mut header_printed = false;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: the watch stream broke: {e}");
                return ExitCode::from(FAILURE);
            }
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let raw: String = buf.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data = String::new();
            for line in raw.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
            if json {
                println!("{}", serde_json::json!({"event": event, "data": v}));
            }
            match event.as_str() {
                "task" if !json => {
                    println!(
                        "Watching task `{}` ({}); Ctrl-C to stop watching",
                        text(&v["name"]),
                        text(&v["id"])
                    );
                }
                "collected" if !json => {
                    if !header_printed {
                        println!(
                            "{:<48} {:>20} {:<32} RESOURCE",
                            "NAMESPACE", "DATA", "TIMESTAMP"
                        );
                        header_printed = true;
                    }
                    for p in v["points"].as_array().into_iter().flatten() {
                        let labels = p["labels"]
                            .as_object()
                            .map(|m| {
                                let l: Vec<String> =
                                    m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
                                format!("{{{}}}", l.join(","))
                            })
                            .unwrap_or_default();
                        println!(
                            "{:<48} {:>20} {:<32} {}",
                            format!("{}{labels}", text(&p["metric"])),
                            text(&p["value"]),
                            text(&p["ts"]),
                            text(&p["resource"])
                        );
                    }
                }
                "state" => {
                    let state = text(&v["state"]);
                    if !json {
                        println!("Task `{}` is {state}", text(&v["task"]));
                    }
                    if state != "running" {
                        return ExitCode::SUCCESS;
                    }
                }
                "lagged" if !json => eprintln!(
                    "(this watch fell behind; {} events missed)",
                    text(&v["missed"])
                ),
                _ => {}
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct MetricArgs {
    #[command(subcommand)]
    pub command: ListOnly,
    #[command(flatten)]
    pub agent: AgentOpts,
}

#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    pub command: ListOnly,
    #[command(flatten)]
    pub agent: AgentOpts,
}

#[derive(Debug, Subcommand)]
pub enum ListOnly {
    /// List them.
    List,
}

pub async fn metric(args: MetricArgs) -> ExitCode {
    let ListOnly::List = args.command;
    match args
        .agent
        .call(reqwest::Method::GET, "/api/v1/metrics", Body::None)
        .await
    {
        Ok(v) if args.agent.format == OutputFormat::Json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            let mut table = new_table(&["PLUGIN", "METRIC", "UNIT", "STATS", "LABELS"]);
            for m in v["metrics"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&m["plugin"]),
                    text(&m["metric"]),
                    text(&m["unit"]),
                    text(&m["stats"]),
                    text(&m["labels"]),
                ]);
            }
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub async fn plugin(args: PluginArgs) -> ExitCode {
    let ListOnly::List = args.command;
    match args
        .agent
        .call(reqwest::Method::GET, "/api/v1/plugins", Body::None)
        .await
    {
        Ok(v) if args.agent.format == OutputFormat::Json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            let mut table = new_table(&["NAME", "TYPE", "SUMMARY"]);
            for p in v["plugins"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&p["name"]),
                    text(&p["kind"]),
                    text(&p["summary"]),
                ]);
            }
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
