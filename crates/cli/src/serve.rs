//! `server`, `up` and `token`: wiring of the store, the HTTP server and (for `up`) a local
//! agent. No business logic here.

use crate::cli::{ScopeArg, ServerArgs, TokenCommand, UpArgs};
use crate::output::{report_config_errors, shutdown_signal, FAILURE, USAGE};
use skymeter_plugin_api::config::{ByteSize, DurationStr, Source};
use skymeter_plugin_api::Registry;
use skymeter_plugin_api::SecretString;
use skymeter_plugins::publishers::nats;
use skymeter_server::{Auth, NatsConsume, NatsLogin, Server, ServerConfig, TlsFiles};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Scope, Store, TokenAdmin};
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

fn open_store(dir: &Path) -> Result<EmbeddedStore, ExitCode> {
    EmbeddedStore::open(EmbeddedOptions::new(dir)).map_err(|e| {
        eprintln!("error: cannot open the store in {}: {e}", dir.display());
        ExitCode::from(FAILURE)
    })
}

/// `[server]` in the file of `skymeter server -c FILE`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    #[serde(default)]
    server: ServerSection,
    rating: Option<RatingSection>,
    /// Thresholds and exclusions of `/api/v1/findings` (docs/savings.md).
    findings: Option<skymeter_savings::findings::FindingsConfig>,
    /// `[[budget]]`: monthly budgets (docs/savings.md).
    #[serde(default, rename = "budget")]
    budgets: Vec<skymeter_savings::budget::BudgetConfig>,
    /// `[anomalies]`: how cost anomalies are found.
    anomalies: Option<skymeter_savings::anomaly::AnomalyConfig>,
    /// `[webhook]`: where budget crossings and anomalies are posted.
    webhook: Option<skymeter_savings::notify::WebhookConfig>,
    /// `[savings]`: how often budgets and anomalies are evaluated.
    savings: Option<SavingsSection>,
}

/// `[savings]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SavingsSection {
    /// How often budgets, anomalies and the findings totals are evaluated (default 15m).
    every: Option<DurationStr>,
}

/// `[rating]`: the rating job (docs/rating.md). Relative paths are relative to the config
/// file's folder.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingSection {
    /// The rating rules file.
    rules: PathBuf,
    period: Option<DurationStr>,
    wait_periods: Option<u32>,
    scope_by: Option<String>,
    /// RFC 3339 text: the first period rated.
    start: Option<String>,
    currency: Option<String>,
    issuer: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    no_auth: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    cors_origins: Vec<String>,
    /// Host names clients use to reach the server besides its address and loopback names.
    #[serde(default)]
    allowed_hosts: Vec<String>,
    retention: Option<DurationStr>,
    max_body_bytes: Option<ByteSize>,
    /// Most ingest request bytes in flight at once before requests are answered 429.
    ingest_budget_bytes: Option<ByteSize>,
    #[serde(default)]
    query: QuerySection,
    /// `--metadata`: a PostgreSQL URL (write its password as `${ENV}`).
    metadata: Option<String>,
    /// `--tsdb`: `remote-write=URL,query=URL`.
    tsdb: Option<String>,
    /// `[server.consume]`: batches from a NATS JetStream stream.
    consume: Option<ConsumeSection>,
}

/// `[server.consume]`: the keys of the `--consume*` flags, and the NATS login.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeSection {
    /// `"nats://host:4222"` or a list of a cluster's servers.
    url: Option<UrlList>,
    stream: Option<String>,
    subject: Option<String>,
    durable: Option<String>,
    ack_wait: Option<DurationStr>,
    max_in_flight: Option<usize>,
    token: Option<SecretString>,
    username: Option<String>,
    password: Option<SecretString>,
    creds_file: Option<PathBuf>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum UrlList {
    One(String),
    Many(Vec<String>),
}

/// `[server.query]`: limits of one PromQL query (see `skymeter_server::QueryLimits`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuerySection {
    max_series: Option<usize>,
    max_samples: Option<usize>,
    timeout: Option<DurationStr>,
}

/// The rating job of `[rating]`: its rules file read and checked (errors with file:line).
fn rating_config(
    section: RatingSection,
    config_file: &Path,
) -> Result<skymeter_server::RatingConfig, ExitCode> {
    let dir = config_file.parent().unwrap_or(Path::new("."));
    let rules_path = dir.join(&section.rules);
    let rules = skymeter_rating::rules::load_file(&rules_path)
        .map_err(|errs| report_config_errors(&errs.0))?;
    let mut c = skymeter_server::RatingConfig::new(rules);
    c.rules_file = Some(rules_path);
    if let Some(p) = section.period {
        c.period = p.0;
    }
    if let Some(w) = section.wait_periods {
        c.wait_periods = w;
    }
    if let Some(s) = section.scope_by {
        c.scope_by = s;
    }
    if let Some(start) = section.start {
        match chrono::DateTime::parse_from_rfc3339(&start) {
            Ok(t) => c.start = Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                eprintln!(
                    "error: {}: rating.start = `{start}`: {e}; write RFC 3339 text such as \"2026-12-01T00:00:00Z\"",
                    config_file.display()
                );
                return Err(ExitCode::from(USAGE));
            }
        }
    }
    if let Some(cur) = section.currency {
        c.currency = cur;
    }
    if let Some(i) = section.issuer {
        c.issuer = i;
    }
    Ok(c)
}

/// `[findings]`, `[[budget]]`, `[anomalies]`, `[webhook]` and `[savings]` of the server's
/// file, checked: a mistake names the file, the line and the setting (exit status 2).
fn savings_config(
    f: &mut ServerFile,
    raw: &skymeter_plugin_api::RawConfig<'_>,
) -> Result<skymeter_server::SavingsConfig, ExitCode> {
    let fail = |key: &str, message: String| report_config_errors(&[raw.error(key, message)]);
    let mut c = skymeter_server::SavingsConfig::default();
    if let Some(fc) = f.findings.take() {
        fc.validate().map_err(|e| fail("findings", e))?;
        c.findings = fc;
    }
    c.budgets = std::mem::take(&mut f.budgets);
    skymeter_savings::budget::validate_budgets(&c.budgets)
        .map_err(|e| fail("budget", e.to_string()))?;
    if let Some(a) = f.anomalies.take() {
        a.validate()
            .map_err(|e| fail(&format!("anomalies.{}", e.field), e.to_string()))?;
        c.anomalies = a;
    }
    if let Some(w) = f.webhook.take() {
        skymeter_savings::notify::WebhookNotifier::new(
            &w,
            Arc::new(skymeter_savings::notify::MemorySentLog::default()),
        )
        .map_err(|e| fail("webhook.url", e.to_string()))?;
        c.webhook = Some(w);
    }
    if let Some(every) = f.savings.take().and_then(|s| s.every) {
        if every.0 < std::time::Duration::from_secs(1) {
            return Err(fail("savings.every", "use at least 1s".into()));
        }
        c.every = every.0;
    }
    Ok(c)
}

/// Where a server keeps its data: the embedded store in the data dir, or PostgreSQL and a
/// TSDB (the data dir then holds the remote-write queue).
struct StoreChoice {
    data_dir: PathBuf,
    scale_out: Option<(String, crate::scaleout::TsdbSpec)>,
}

/// The config file (if any) with the command line's flags on top, and the data dir.
fn server_config(args: &ServerArgs) -> Result<(ServerConfig, StoreChoice), ExitCode> {
    let mut rating = None;
    let mut savings = skymeter_server::SavingsConfig::default();
    let (file, consume) = match &args.config {
        None => (ServerSection::default(), consume_config(args, None, None)?),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                eprintln!(
                    "error: {}: cannot read the server config: {e}",
                    path.display()
                );
                ExitCode::from(USAGE)
            })?;
            let source = Source::new(path.display().to_string(), text);
            let mut root = source.parse().map_err(|e| report_config_errors(&[e]))?;
            // `${NATS_TOKEN}` and the like, as in task files; their values are kept out of
            // error messages.
            let secrets = skymeter_plugin_api::config::interpolate(&source, &mut root, &|k| {
                std::env::var(k).ok()
            })
            .map_err(|errs| report_config_errors(&errs))?;
            let raw = skymeter_plugin_api::RawConfig::new(source.clone(), root, Arc::new(secrets));
            match raw.decode::<ServerFile>() {
                Ok(mut f) => {
                    if let Some(r) = f.rating.take() {
                        rating = Some(rating_config(r, path)?);
                    }
                    savings = savings_config(&mut f, &raw)?;
                    let consume = consume_config(args, f.server.consume.take(), Some(&raw))?;
                    (f.server, consume)
                }
                Err(e) => return Err(report_config_errors(&[e])),
            }
        }
    };
    let defaults = ServerConfig::default();
    let tls = match (
        args.tls_cert.clone().or(file.tls_cert),
        args.tls_key.clone().or(file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => {
            eprintln!("error: give both tls_cert and tls_key, or neither");
            return Err(ExitCode::from(USAGE));
        }
    };
    let config = ServerConfig {
        listen: args.listen.or(file.listen).unwrap_or(defaults.listen),
        auth: if args.no_auth || file.no_auth {
            Auth::Disabled
        } else {
            Auth::Tokens
        },
        tls,
        cors_origins: if args.cors_origins.is_empty() {
            file.cors_origins
        } else {
            args.cors_origins.clone()
        },
        allowed_hosts: if args.allowed_hosts.is_empty() {
            file.allowed_hosts
        } else {
            args.allowed_hosts.clone()
        },
        retention: args.retention.or(file.retention.map(|d| d.0)),
        max_body_bytes: file
            .max_body_bytes
            .map_or(defaults.max_body_bytes, |b| saturating_usize(b.0)),
        ingest_budget_bytes: args
            .ingest_budget
            .or(file.ingest_budget_bytes)
            .map_or(defaults.ingest_budget_bytes, |b| saturating_usize(b.0)),
        query: skymeter_server::QueryLimits {
            max_series: file.query.max_series.unwrap_or(defaults.query.max_series),
            max_samples: file.query.max_samples.unwrap_or(defaults.query.max_samples),
            timeout: file.query.timeout.map_or(defaults.query.timeout, |d| d.0),
        },
        rating,
        consume,
        savings,
        ..defaults
    };
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("skymeter-data"));
    let scale_out = match (
        args.metadata.clone().or(file.metadata),
        args.tsdb.clone().or(file.tsdb),
    ) {
        (None, None) => None,
        (Some(metadata), Some(tsdb)) => match tsdb.parse() {
            Ok(spec) => Some((metadata, spec)),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(USAGE));
            }
        },
        _ => {
            eprintln!(
                "error: metadata and tsdb go together: PostgreSQL keeps what the TSDB cannot \
                 (resources, costs, tokens), the TSDB the points; give both or neither"
            );
            return Err(ExitCode::from(USAGE));
        }
    };
    Ok((
        config,
        StoreChoice {
            data_dir,
            scale_out,
        },
    ))
}

/// `--consume*` on top of `[server.consume]`; `None` when neither names a NATS server. A
/// mistake names the flag, or the file's line (`raw`) when the value came from the file.
fn consume_config(
    args: &ServerArgs,
    file: Option<ConsumeSection>,
    raw: Option<&skymeter_plugin_api::RawConfig<'_>>,
) -> Result<Option<NatsConsume>, ExitCode> {
    let fail = |key: &str, flag: Option<&str>, message: String| match (flag, raw) {
        (None, Some(raw)) => {
            report_config_errors(&[raw.error(&format!("server.consume.{key}"), message)])
        }
        _ => {
            let name = flag.map_or_else(|| format!("server.consume.{key}"), str::to_string);
            eprintln!("error: {name}: {message}");
            ExitCode::from(USAGE)
        }
    };
    let flag = |given: bool, name: &'static str| given.then_some(name);
    let file = file.unwrap_or_default();
    let from_flags = !args.consume.is_empty();
    let urls = if from_flags {
        args.consume.clone()
    } else {
        match file.url {
            None => return Ok(None),
            Some(UrlList::One(u)) => vec![u],
            Some(UrlList::Many(us)) => us,
        }
    };
    let url_flag = flag(from_flags, "--consume");
    let servers = urls
        .iter()
        .map(|u| nats::parse_server(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| fail("url", url_flag, m))?;
    if servers.is_empty() {
        return Err(fail(
            "url",
            url_flag,
            "give at least one NATS server, e.g. \"nats://127.0.0.1:4222\"".into(),
        ));
    }
    let mut c = NatsConsume::new(servers);
    if let Some(s) = args.consume_stream.clone().or(file.stream) {
        let f = flag(args.consume_stream.is_some(), "--consume-stream");
        nats::check_stream_name(&s).map_err(|m| fail("stream", f, m))?;
        c.stream = s;
    }
    c.subject = args.consume_subject.clone().or(file.subject);
    if let Some(d) = args.consume_durable.clone().or(file.durable) {
        let f = flag(args.consume_durable.is_some(), "--consume-durable");
        // A consumer name obeys the rules of a stream name.
        nats::check_stream_name(&d)
            .map_err(|m| fail("durable", f, m.replace("stream name", "consumer name")))?;
        c.durable = d;
    }
    if let Some(w) = args.consume_ack_wait.or(file.ack_wait.map(|d| d.0)) {
        if w < std::time::Duration::from_secs(1) {
            let f = flag(args.consume_ack_wait.is_some(), "--consume-ack-wait");
            return Err(fail("ack_wait", f, "must be at least 1s".into()));
        }
        c.ack_wait = w;
    }
    if let Some(n) = args.consume_max_in_flight.or(file.max_in_flight) {
        if n == 0 {
            let f = flag(
                args.consume_max_in_flight.is_some(),
                "--consume-max-in-flight",
            );
            return Err(fail("max_in_flight", f, "must be at least 1".into()));
        }
        c.max_in_flight = n;
    }
    let ways = [
        file.token.is_some(),
        file.username.is_some(),
        file.creds_file.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        return Err(fail(
            "token",
            None,
            "give one way to log in: `token`, `username`/`password` or `creds_file`".into(),
        ));
    }
    c.login = if let Some(t) = file.token {
        NatsLogin::Token(t)
    } else if let Some(u) = file.username {
        NatsLogin::UserPassword(u, file.password.unwrap_or_else(|| SecretString::from("")))
    } else if let Some(f) = file.creds_file {
        NatsLogin::CredsFile(f)
    } else if file.password.is_some() {
        return Err(fail(
            "password",
            None,
            "a password needs a `username`".into(),
        ));
    } else {
        NatsLogin::None
    };
    Ok(Some(c))
}

/// A byte size from a config as `usize` (sizes past the address space mean "as much as
/// can be": the config's own checks then say what is wrong).
fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub async fn server(args: ServerArgs, registry: &Registry) -> ExitCode {
    let (mut config, choice) = match server_config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    config.savings.prices = price_tables(registry, &choice.data_dir);
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(USAGE);
    }
    let data_dir = &choice.data_dir;
    let (store, token_place): (Arc<dyn Store>, String) = match &choice.scale_out {
        None => match open_store(data_dir) {
            Ok(s) => (Arc::new(s), format!("--data-dir {}", data_dir.display())),
            Err(code) => return code,
        },
        Some((metadata, tsdb)) => match crate::scaleout::open(metadata, tsdb, data_dir, registry) {
            Ok(s) => {
                tracing::info!(
                    metadata = %skymeter_store::scaleout::meta::redact(metadata),
                    remote_write = %tsdb.remote_write,
                    query = %tsdb.query,
                    "scale-out store: metadata in PostgreSQL, points in the TSDB"
                );
                (Arc::new(s), "--metadata URL".to_string())
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(FAILURE);
            }
        },
    };
    if config.auth == Auth::Tokens && store.tokens().map(|t| t.is_empty()).unwrap_or(false) {
        tracing::warn!(
            "no API tokens yet: every request but /health will be refused; create one with `skymeter token create --scope ingest {token_place}`"
        );
    }
    if !config.listen.ip().is_loopback() && config.allowed_hosts.is_empty() {
        tracing::warn!(
            listen = %config.listen,
            "no `allowed_hosts`: requests must address this server by IP address or a loopback \
             name; ones naming it by a DNS name are answered 421. List the names clients use in \
             `allowed_hosts` (or --allowed-host)"
        );
    }
    match bind(config, store).await {
        Ok(server) => run_until_signal(server).await,
        Err(code) => code,
    }
}

/// The price table of every cloud the binary has, as its collectors use them
/// (`<data_dir>/prices/<cloud>.json` after `skymeter prices <cloud> update`, else the table
/// shipped): what findings price resources with. A table that cannot be read is left out
/// with a warning (its findings carry no amount).
fn price_tables(registry: &Registry, data_dir: &Path) -> skymeter_savings::findings::Prices {
    let mut out = skymeter_savings::findings::Prices::new();
    for id in registry.price_sources() {
        let Some(source) = registry.price_source(id) else {
            continue;
        };
        match source.load(None, data_dir) {
            Ok(table) => {
                out.insert(id.to_string(), Arc::from(table));
            }
            Err(e) => tracing::warn!(cloud = id, error = %e, "no price table for findings"),
        }
    }
    out
}

/// Binds the listener first, so that a taken port or a bad TLS file is reported before
/// anything else starts.
async fn bind(config: ServerConfig, store: Arc<dyn Store>) -> Result<Server, ExitCode> {
    Server::bind(config, store).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(FAILURE)
    })
}

/// Serves until SIGINT/SIGTERM; the server finishes requests in flight and flushes the
/// store on its way out.
async fn run_until_signal(server: Server) -> ExitCode {
    run_until(server, shutdown_signal()).await
}

/// Serves until `stop` resolves, then shuts the server down gracefully.
async fn run_until(server: Server, stop: impl std::future::Future<Output = ()> + Send) -> ExitCode {
    match server.run(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(FAILURE)
        }
    }
}

/// The task `up` runs: this host (and skymeter's own counters), sent to the server in the
/// same process through the `server` publisher, exactly as a remote agent would.
fn up_task_file(args: &UpArgs) -> String {
    let agent_dir = args.data_dir.join("agent");
    format!(
        r#"[agent]
data_dir = {agent_dir}

[[task]]
name = "host"
schedule = {{ every = "{every}" }}
collect = [{{ plugin = "host" }}, {{ plugin = "internal" }}]
publish = [{{ plugin = "server", url = "http://{listen}" }}]
"#,
        agent_dir = toml::Value::String(agent_dir.display().to_string()),
        every = humantime::format_duration(args.every),
        listen = args.listen,
    )
}

pub async fn up(args: UpArgs, registry: &Registry) -> ExitCode {
    let config = ServerConfig {
        listen: args.listen,
        auth: Auth::Disabled,
        savings: skymeter_server::SavingsConfig {
            prices: price_tables(registry, &args.data_dir),
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    if let Err(e) = config.validate() {
        eprintln!(
            "error: {e} (`up` runs without tokens; use `skymeter server` to listen elsewhere)"
        );
        return ExitCode::from(USAGE);
    }
    let source = Source::new("skymeter up (built-in task)", up_task_file(&args));
    let loaded =
        match skymeter_pipeline::load_str(source, registry, &|k| std::env::var(k).ok(), true) {
            Ok(l) => l,
            Err(errs) => return report_config_errors(&errs),
        };
    let store: Arc<dyn Store> = match open_store(&args.data_dir) {
        Ok(s) => Arc::new(s),
        Err(code) => return code,
    };
    let server = match bind(config, store).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    // Only now that the port is ours does the local agent start sending to it.
    let (tx, rx) = watch::channel(false);
    let runner = skymeter_pipeline::Runner {
        agent_id: loaded.agent_id,
        tasks: loaded.tasks,
    };
    let agent = tokio::spawn(runner.run(rx));
    println!(
        "skymeter is up: http://{}  (API docs: http://{}/api/docs; Ctrl-C stops)",
        args.listen, args.listen
    );
    // At a signal the agent stops first, while the server still answers: its run in flight
    // and its flush reach the server instead of retrying against a closed port. Bounded, so
    // that a stuck publisher cannot hold the exit. (Should the server fail on its own, the
    // agent goes with the process.)
    let agent_first = async move {
        shutdown_signal().await;
        let _ = tx.send(true);
        if tokio::time::timeout(std::time::Duration::from_secs(15), agent)
            .await
            .is_err()
        {
            tracing::warn!("the local agent did not stop within 15 s; stopping without it");
        }
    };
    run_until(server, agent_first).await
}

/// Where `skymeter token` finds the tokens: a data dir (beside a running server, see
/// [`TokenAdmin`]) or the PostgreSQL of servers run with `--metadata`.
enum Tokens {
    Embedded(TokenAdmin),
    Postgres(skymeter_store::PgMeta),
}

impl Tokens {
    fn create(
        &self,
        name: &str,
        scopes: &[Scope],
    ) -> Result<(String, skymeter_store::TokenInfo), skymeter_store::StoreError> {
        match self {
            Tokens::Embedded(t) => t.create(name, scopes),
            Tokens::Postgres(m) => m.create_token(name, scopes, chrono::Utc::now()),
        }
    }

    fn list(&self) -> Result<Vec<skymeter_store::TokenInfo>, skymeter_store::StoreError> {
        match self {
            Tokens::Embedded(t) => t.list(),
            Tokens::Postgres(m) => m.tokens(),
        }
    }

    fn revoke(&self, id: &str) -> Result<bool, skymeter_store::StoreError> {
        match self {
            Tokens::Embedded(t) => t.revoke(id),
            Tokens::Postgres(m) => m.revoke_token(id),
        }
    }
}

fn open_tokens(dir: &Path, metadata: Option<&str>) -> Result<Tokens, ExitCode> {
    match metadata {
        Some(url) => skymeter_store::PgMeta::connect(url, 1)
            .map(Tokens::Postgres)
            .map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::from(FAILURE)
            }),
        None => TokenAdmin::open(dir).map(Tokens::Embedded).map_err(|e| {
            eprintln!("error: cannot open the tokens in {}: {e}", dir.display());
            ExitCode::from(FAILURE)
        }),
    }
}

pub fn token(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::Create(a) => {
            let store = match open_tokens(&a.data_dir, a.metadata.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let scopes: Vec<Scope> = a
                .scopes
                .iter()
                .map(|s| match s {
                    ScopeArg::Ingest => Scope::Ingest,
                    ScopeArg::Read => Scope::Read,
                    ScopeArg::Admin => Scope::Admin,
                })
                .collect();
            match store.create(&a.name, &scopes) {
                Ok((token, info)) => {
                    eprintln!(
                        "created token {} ({:?}); it is shown once, keep it now:",
                        info.id, info.scopes
                    );
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(FAILURE)
                }
            }
        }
        TokenCommand::List(a) => {
            let store = match open_tokens(&a.data_dir, a.metadata.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match store.list() {
                Ok(list) => {
                    match a.format {
                        crate::cli::OutputFormat::Json => {
                            for t in list {
                                println!("{}", serde_json::to_string(&t).unwrap_or_default());
                            }
                        }
                        crate::cli::OutputFormat::Table => {
                            let mut t = comfy_table::Table::new();
                            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                                .set_header(vec!["id", "name", "scopes", "created"]);
                            for tok in list {
                                let scopes: Vec<String> = tok
                                    .scopes
                                    .iter()
                                    .map(|s| format!("{s:?}").to_lowercase())
                                    .collect();
                                t.add_row(vec![
                                    tok.id,
                                    tok.name,
                                    scopes.join(","),
                                    tok.created_at.to_rfc3339(),
                                ]);
                            }
                            println!("{t}");
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(FAILURE)
                }
            }
        }
        TokenCommand::Revoke(a) => {
            let store = match open_tokens(&a.data_dir, a.metadata.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match store.revoke(&a.id) {
                Ok(true) => {
                    println!("revoked {}", a.id);
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    eprintln!(
                        "error: no token with id `{}` (see `skymeter token list`)",
                        a.id
                    );
                    ExitCode::from(USAGE)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(FAILURE)
                }
            }
        }
    }
}
