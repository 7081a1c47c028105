//! `skymeter findings`: what the server found could be stopped, released or resized, with
//! the money, through `GET /api/v1/findings` (every page), as a table, JSON or CSV.
//!
//! Exit codes: 0 printed (findings or none); 2 the arguments are wrong (here or as the
//! server says: 400); 1 anything else (server unreachable, auth).

use crate::output::USAGE;
use clap::{Args, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FindingsFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Idle,
    Orphaned,
    Rightsizing,
    Untagged,
}

#[derive(Debug, Args)]
pub struct FindingsArgs {
    #[command(flatten)]
    pub server: crate::remote::ServerOpts,
    /// Only findings of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Only resources of this provider (`aws`, `gcp`, `azure`).
    #[arg(long)]
    pub provider: Option<String>,
    /// Only resources of this account (AWS account, GCP project, Azure subscription).
    #[arg(long)]
    pub account: Option<String>,
    /// Only resources of this region.
    #[arg(long)]
    pub region: Option<String>,
    /// Only resources of this kind (`compute.instance`, `storage.volume`, …).
    #[arg(long, value_name = "KIND")]
    pub resource_kind: Option<String>,
    /// Only resources with this tag, KEY=VALUE (repeatable; all must hold).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Only findings saving at least this many USD a month.
    #[arg(long, value_name = "USD")]
    pub min_monthly_usd: Option<f64>,
    /// Compute as of this time: RFC 3339, Unix seconds, or relative (`-1d`) [default: now].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[arg(long, value_enum, default_value_t = FindingsFormat::Table)]
    pub format: FindingsFormat,
}

fn query_string(args: &FindingsArgs, cursor: Option<&str>) -> Result<String, String> {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(k) = args.kind {
        q.append_pair(
            "kind",
            match k {
                Kind::Idle => "idle",
                Kind::Orphaned => "orphaned",
                Kind::Rightsizing => "rightsizing",
                Kind::Untagged => "untagged",
            },
        );
    }
    for (name, value) in [
        ("provider", &args.provider),
        ("account", &args.account),
        ("region", &args.region),
        ("resource_kind", &args.resource_kind),
        ("at", &args.at),
    ] {
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    for t in &args.tags {
        let (k, v) = t
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("--tag {t}: write KEY=VALUE, e.g. --tag env=prod"))?;
        q.append_pair(&format!("tag.{k}"), v);
    }
    if let Some(m) = args.min_monthly_usd {
        q.append_pair("min_monthly_usd", &m.to_string());
    }
    q.append_pair("group_by", "kind");
    q.append_pair("limit", "1000");
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    Ok(q.finish())
}

pub async fn findings(args: FindingsArgs) -> ExitCode {
    let mut items: Vec<Value> = Vec::new();
    let mut first: Option<Value> = None;
    let mut cursor: Option<String> = None;
    loop {
        let q = match query_string(&args, cursor.as_deref()) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(USAGE);
            }
        };
        let page = match crate::remote::call(
            &args.server,
            reqwest::Method::GET,
            &format!("/api/v1/findings?{q}"),
            None,
        )
        .await
        {
            Ok(p) => p,
            Err(code) => return code,
        };
        if let Some(Value::Array(a)) = page.get("items") {
            items.extend(a.iter().cloned());
        }
        cursor = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        // The totals and groups of the first page stand for the whole list.
        first.get_or_insert(page);
        if cursor.is_none() {
            break;
        }
    }
    let first = first.unwrap_or(Value::Null);
    match args.format {
        FindingsFormat::Json => {
            let out = serde_json::json!({
                "at": first.get("at"),
                "totals": first.get("totals"),
                "groups": first.get("groups"),
                "items": items,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        FindingsFormat::Csv => print_csv(&items),
        FindingsFormat::Table => print_table(&first, &items),
    }
    ExitCode::SUCCESS
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn money(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map(|m| format!("{m:.2}"))
        .unwrap_or_else(|| "?".into())
}

fn print_table(page: &Value, items: &[Value]) {
    if items.is_empty() {
        println!("no findings");
        return;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "kind",
        "USD/month",
        "action",
        "resource",
        "region",
        "why",
    ]);
    for f in items {
        let name = s(f, &["resource", "name"]);
        let id = s(f, &["resource", "id"]);
        let resource = if name.is_empty() || name == id {
            format!("{} {id}", s(f, &["resource", "kind"]))
        } else {
            format!("{} {id} ({name})", s(f, &["resource", "kind"]))
        };
        t.add_row([
            s(f, &["kind"]).to_string(),
            money(f.get("monthly_usd")),
            s(f, &["action"]).to_string(),
            resource,
            s(f, &["resource", "region"]).to_string(),
            s(f, &["reason"]).to_string(),
        ]);
    }
    println!("{t}");
    let totals = page.get("totals");
    let mut line = format!(
        "{} finding(s), {} USD/month",
        totals
            .and_then(|t| t.get("count"))
            .and_then(Value::as_u64)
            .unwrap_or(items.len() as u64),
        money(totals.and_then(|t| t.get("monthly_usd")))
    );
    if let Some(Value::Array(groups)) = page.get("groups") {
        let parts: Vec<String> = groups
            .iter()
            .map(|g| {
                format!(
                    "{} {}",
                    s(g, &["group", "kind"]),
                    money(g.get("monthly_usd"))
                )
            })
            .collect();
        if !parts.is_empty() {
            line.push_str(&format!(" ({})", parts.join(", ")));
        }
    }
    println!("{line}");
}

fn print_csv(items: &[Value]) {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    let _ = w.write_record([
        "kind",
        "monthly_usd",
        "action",
        "reason",
        "provider",
        "account",
        "region",
        "resource_kind",
        "resource_id",
        "resource_name",
        "recommended_type",
        "current_monthly_usd",
        "id",
    ]);
    for f in items {
        let m = |k: &str| {
            f.get(k)
                .and_then(Value::as_f64)
                .map(|v| format!("{v:.2}"))
                .unwrap_or_default()
        };
        let _ = w.write_record([
            s(f, &["kind"]),
            &m("monthly_usd"),
            s(f, &["action"]),
            s(f, &["reason"]),
            s(f, &["resource", "provider"]),
            s(f, &["resource", "account"]),
            s(f, &["resource", "region"]),
            s(f, &["resource", "kind"]),
            s(f, &["resource", "id"]),
            s(f, &["resource", "name"]),
            s(f, &["recommended_type"]),
            &m("current_monthly_usd"),
            s(f, &["id"]),
        ]);
    }
    let _ = w.flush();
}
