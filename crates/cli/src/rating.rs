//! `skymeter rating`: check a rating rules file and price usage with it; follow and steer
//! the server's rating job.
//!
//! `rules` reads a rules file (docs/rating.md) and lists what it defines, or every mistake
//! with its line (exit 2). `quote` prices a usage you describe, as the rules would rate it,
//! before it happens. `status` shows a server's rating progress per scope; `rerate` asks
//! it to rate a past range again (and with `--wait`, follows it to the end).

use crate::output::{new_table, OutputFormat, FAILURE, USAGE};
use crate::remote::{call, get, ServerOpts};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::json;
use skymeter_rating::decimal::parse_decimal;
use skymeter_rating::hashmap::HashMapRules;
use skymeter_rating::rules::load_file;
use skymeter_rating::{DataFrame, DataPoint, Decimal, RatingRules};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RatingCommand {
    /// Check a rating rules file and list its modules, services and rules.
    Rules(RulesArgs),
    /// Price a usage you describe with a rules file, before it happens.
    Quote(QuoteArgs),
    /// A server's rating progress: the last period rated per scope, the lag, re-rates.
    Status(StatusArgs),
    /// Rate a past range again on a server, replacing its rated lines (admin token).
    Rerate(RerateArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RerateArgs {
    /// Start of the range (RFC 3339); widened down to a period boundary.
    #[arg(long, value_name = "TIME")]
    pub from: DateTime<Utc>,
    /// End of the range, exclusive (RFC 3339); widened up to a period boundary and cut at
    /// the last period ready to rate.
    #[arg(long, value_name = "TIME")]
    pub to: DateTime<Utc>,
    /// Wait until the re-rate has finished, showing its progress.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub server: ServerOpts,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// The rating rules file (TOML); without it, the rules in force on the server
    /// (--server), as its rating job and CloudKitty API have them.
    #[arg(short, long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerOpts,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// The rating rules file (TOML); without it, the server (--server) prices the usage
    /// with the rules in force there.
    #[arg(short, long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerOpts,
    /// The rated service (a hashmap service name, e.g. `instance` or `volume.size`).
    #[arg(long)]
    pub service: String,
    /// How much of it, in the service's unit (e.g. `80` GiB, `1` instance).
    #[arg(long, value_name = "QUANTITY")]
    pub qty: String,
    /// An attribute of the usage, matched by field mappings (repeatable): `flavor=m1.large`.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attrs: Vec<String>,
    /// The scope (account, project, team) whose scoped rules apply.
    #[arg(long)]
    pub scope: Option<String>,
    /// The start of the period priced, for rules in force only part of the time (RFC 3339)
    /// [default: now].
    #[arg(long, value_name = "TIME")]
    pub at: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

pub async fn rating(cmd: RatingCommand) -> ExitCode {
    match cmd {
        RatingCommand::Rules(a) => match a.rules.clone() {
            Some(file) => match load(&file) {
                Ok(r) => print_rules(&file.display().to_string(), &r, &script_lines(&r), a.format),
                Err(code) => code,
            },
            None => server_rules(a).await,
        },
        RatingCommand::Quote(a) => match a.rules.clone() {
            Some(file) => quote(a, &file),
            None => server_quote(a).await,
        },
        RatingCommand::Status(a) => status(a).await,
        RatingCommand::Rerate(a) => rerate(a).await,
    }
}

fn print_rerate(r: &serde_json::Value) {
    println!(
        "re-rate {}: {} → {}: {} (done until {}, {} line(s) deleted, {} stored){}",
        r["id"],
        r["from"].as_str().unwrap_or_default(),
        r["to"].as_str().unwrap_or_default(),
        r["state"].as_str().unwrap_or_default(),
        r["done_until"].as_str().unwrap_or_default(),
        r["deleted"],
        r["lines"],
        r["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
    );
}

async fn status(a: StatusArgs) -> ExitCode {
    let s = match get(&a.server, "/api/v1/rating/status").await {
        Ok(s) => s,
        Err(code) => return code,
    };
    if a.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if s["enabled"] != true {
        println!("rating is not configured on this server (add `[rating]` to its config; docs/rating.md)");
        return ExitCode::SUCCESS;
    }
    println!(
        "period {}s, wait {} period(s), scopes by `{}`, rules {}",
        s["period_s"],
        s["wait_periods"],
        s["scope_by"].as_str().unwrap_or_default(),
        s["rules_file"].as_str().unwrap_or("-"),
    );
    println!(
        "ready until {}; rated everywhere until {}",
        s["ready_until"].as_str().unwrap_or("-"),
        s["rated_until"].as_str().unwrap_or("- (nothing rated yet)"),
    );
    if let Some(e) = s["error"].as_str() {
        println!("last round failed: {e}");
    }
    let mut t = new_table(&["scope", "rated until", "lag", "error"]);
    for sc in s["scopes"].as_array().into_iter().flatten() {
        let lag = sc["lag_s"].as_i64().unwrap_or(0).max(0) as u64;
        t.add_row(vec![
            sc["scope"].as_str().unwrap_or_default().to_string(),
            sc["rated_until"].as_str().unwrap_or_default().to_string(),
            humantime::format_duration(std::time::Duration::from_secs(lag)).to_string(),
            sc["error"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    println!("{t}");
    for r in s["rerates"].as_array().into_iter().flatten() {
        print_rerate(r);
    }
    ExitCode::SUCCESS
}

async fn rerate(a: RerateArgs) -> ExitCode {
    let body = json!({"from": a.from, "to": a.to});
    let queued = match call(
        &a.server,
        reqwest::Method::POST,
        "/api/v1/rating/rerate",
        Some(body),
    )
    .await
    {
        Ok(r) => r,
        Err(code) => return code,
    };
    let id = queued["id"].clone();
    let mut last = queued;
    if a.wait {
        use std::io::{IsTerminal, Write};
        let live = std::io::stderr().is_terminal();
        loop {
            let s = match get(&a.server, "/api/v1/rating/status").await {
                Ok(s) => s,
                Err(code) => return code,
            };
            if let Some(r) = s["rerates"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"] == id)
            {
                last = r.clone();
            }
            let state = last["state"].as_str().unwrap_or_default();
            if live {
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2Kre-rating: {state}, done until {}, {} line(s)",
                    last["done_until"].as_str().unwrap_or_default(),
                    last["lines"]
                );
                let _ = err.flush();
            }
            if state == "done" || state == "failed" {
                if live {
                    eprint!("\r\x1b[2K");
                }
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    if a.format == OutputFormat::Json {
        println!("{last}");
    } else {
        print_rerate(&last);
    }
    if last["state"] == "failed" {
        return ExitCode::from(FAILURE);
    }
    ExitCode::SUCCESS
}

fn load(path: &std::path::Path) -> Result<RatingRules, ExitCode> {
    load_file(path).map_err(|errs| {
        for e in &errs.0 {
            eprintln!("error: {e}");
        }
        eprintln!("{} error(s) in {}", errs.0.len(), path.display());
        ExitCode::from(USAGE)
    })
}

/// The rules in force on the server (`GET /api/v1/rating/rules`), printed as a file's.
async fn server_rules(a: RulesArgs) -> ExitCode {
    let v = match get(&a.server, "/api/v1/rating/rules").await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut rules = RatingRules::default();
    let parsed = serde_json::from_value(v["modules"].clone())
        .map(|m| rules.modules = m)
        .and_then(|()| serde_json::from_value(v["services"].clone()).map(|s| rules.services = s))
        .and_then(|()| serde_json::from_value(v["hashmap"].clone()).map(|h| rules.hashmap = h));
    if let Err(e) = parsed {
        eprintln!(
            "error: the server's rules do not read back ({e}); is it the same skymeter version?"
        );
        return ExitCode::from(FAILURE);
    }
    // The server shows scripts by name; their text stays in its rules file.
    let scripts: Vec<(String, Option<usize>)> = v["scripts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n.as_str()?.to_string(), None)))
        .collect();
    print_rules(&a.server.server, &rules, &scripts, a.format)
}

/// The scripts of a rules file: name and number of lines.
fn script_lines(rules: &RatingRules) -> Vec<(String, Option<usize>)> {
    rules
        .scripts
        .iter()
        .map(|s| (s.name.clone(), Some(s.source.lines().count())))
        .collect()
}

/// Lists `rules` (read from `origin`: a file, or a server's URL) and its `scripts` (name,
/// lines when known).
fn print_rules(
    origin: &str,
    rules: &RatingRules,
    scripts: &[(String, Option<usize>)],
    format: OutputFormat,
) -> ExitCode {
    if format == OutputFormat::Json {
        let modules: Vec<_> = rules
            .modules
            .iter()
            .map(|(name, s)| json!({"name": name, "enabled": s.enabled, "priority": s.priority}))
            .collect();
        let services: Vec<_> = rules
            .services
            .iter()
            .map(|s| {
                json!({
                    "metric": s.metric, "rated_as": s.rated_name(), "unit": s.unit,
                    "factor": format!("{}/{}", s.factor.num, s.factor.den),
                    "offset": s.offset, "mutate": s.mutate, "groupby": s.groupby,
                    "metadata": s.metadata,
                })
            })
            .collect();
        let scripts: Vec<&str> = scripts.iter().map(|(n, _)| n.as_str()).collect();
        println!(
            "{}",
            json!({
                "file": origin, "valid": true, "modules": modules, "services": services,
                "hashmap": rules.hashmap, "scripts": scripts, "run_order": rules.run_order(),
            })
        );
        return ExitCode::SUCCESS;
    }
    let mut modules = new_table(&["module", "enabled", "priority"]);
    for (name, s) in &rules.modules {
        modules.add_row(vec![
            name.clone(),
            s.enabled.to_string(),
            s.priority.to_string(),
        ]);
    }
    println!("{modules}");
    if !rules.services.is_empty() {
        let mut t = new_table(&[
            "rated as", "metric", "unit", "factor", "offset", "mutate", "groupby",
        ]);
        for s in &rules.services {
            let factor = if s.factor.den == Decimal::ONE {
                s.factor.num.to_string()
            } else {
                format!("{}/{}", s.factor.num, s.factor.den)
            };
            t.add_row(vec![
                s.rated_name().to_string(),
                s.metric.clone(),
                s.unit.clone(),
                factor,
                s.offset.to_string(),
                format!("{:?}", s.mutate).to_uppercase(),
                s.groupby.join(", "),
            ]);
        }
        println!("{t}");
    }
    let rows = rule_rows(&rules.hashmap);
    if !rows.is_empty() {
        let mut t = new_table(&[
            "service",
            "field",
            "value / level",
            "type",
            "cost",
            "group",
            "scope",
        ]);
        for r in rows {
            t.add_row(r);
        }
        println!("{t}");
    }
    for (name, lines) in scripts {
        match lines {
            Some(n) => println!("script `{name}` ({n} lines)"),
            None => println!("script `{name}`"),
        }
    }
    println!(
        "{origin}: valid; runs {}",
        match rules.run_order().as_slice() {
            [] => "no module (all disabled)".to_string(),
            order => order.join(" then "),
        }
    );
    ExitCode::SUCCESS
}

/// One row per mapping and threshold: where it hangs, what it matches, what it costs.
fn rule_rows(hm: &HashMapRules) -> Vec<Vec<String>> {
    let names = |service_id: Option<uuid::Uuid>, field_id: Option<uuid::Uuid>| {
        let field = field_id.and_then(|f| hm.field(f).ok());
        let service = service_id
            .or(field.map(|f| f.service_id))
            .and_then(|s| hm.service(s).ok())
            .map(|s| s.name.clone())
            .unwrap_or_default();
        (service, field.map(|f| f.name.clone()).unwrap_or_default())
    };
    let group = |g: Option<uuid::Uuid>| {
        g.and_then(|g| hm.group(g).ok())
            .map(|g| g.name.clone())
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    for m in &hm.mappings {
        let (service, field) = names(m.service_id, m.field_id);
        rows.push(vec![
            service,
            field,
            m.value.clone().unwrap_or_default(),
            format!("{:?}", m.map_type).to_lowercase(),
            m.cost.normalize().to_string(),
            group(m.group_id),
            m.tenant_id.clone().unwrap_or_default(),
        ]);
    }
    for t in &hm.thresholds {
        let (service, field) = names(t.service_id, t.field_id);
        rows.push(vec![
            service,
            field,
            format!("≥ {}", t.level.normalize()),
            format!("{:?} threshold", t.map_type).to_lowercase(),
            t.cost.normalize().to_string(),
            group(t.group_id),
            t.tenant_id.clone().unwrap_or_default(),
        ]);
    }
    rows
}

/// The server's price of the usage (`POST /api/v1/rating/quote`).
async fn server_quote(a: QuoteArgs) -> ExitCode {
    let mut attributes = serde_json::Map::new();
    for kv in &a.attrs {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("error: --attr `{kv}`: write KEY=VALUE");
            return ExitCode::from(USAGE);
        };
        attributes.insert(k.trim().to_string(), json!(v.trim()));
    }
    let body = json!({
        "items": [{"service": a.service, "qty": a.qty, "attributes": attributes}],
        "scope": a.scope, "at": a.at,
    });
    match call(
        &a.server,
        reqwest::Method::POST,
        "/api/v1/rating/quote",
        Some(body),
    )
    .await
    {
        Ok(v) if a.format == OutputFormat::Json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            println!("{}", v["total"].as_str().unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn quote(a: QuoteArgs, file: &std::path::Path) -> ExitCode {
    let rules = match load(file) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let qty = match parse_decimal(&a.qty) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error: --qty: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let unit = rules
        .services
        .iter()
        .find(|s| s.rated_name() == a.service)
        .map_or("unit", |s| s.unit.as_str())
        .to_string();
    let mut point = DataPoint::new(&unit, qty);
    for kv in &a.attrs {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("error: --attr `{kv}`: write KEY=VALUE");
            return ExitCode::from(USAGE);
        };
        point = point.with_metadata(k.trim(), v.trim());
    }
    if rules.hashmap.service_named(&a.service).is_none() && rules.scripts.is_empty() {
        let known: Vec<&str> = rules
            .hashmap
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        eprintln!(
            "error: no rule rates `{}` in {}; its services: {}",
            a.service,
            file.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return ExitCode::from(USAGE);
    }
    if rules.hashmap.service_named(&a.service).is_none() {
        eprintln!(
            "note: no hashmap service `{}`; only the scripts priced it",
            a.service
        );
    }
    let begin = a.at.unwrap_or_else(Utc::now);
    let mut frame = DataFrame::new(begin, begin + chrono::Duration::hours(1));
    frame.add_point(&a.service, point);
    let rated = match rules.rate(frame, a.scope.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(crate::output::FAILURE);
        }
    };
    let price = rated.total().normalize();
    if a.format == OutputFormat::Json {
        println!(
            "{}",
            json!({"service": a.service, "qty": qty.normalize(), "unit": unit, "scope": a.scope,
                   "price": price.to_string(), "modules": rules.run_order()})
        );
    } else {
        println!("{price}");
    }
    ExitCode::SUCCESS
}
