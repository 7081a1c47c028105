//! `skymeter budgets` and `skymeter anomalies`: each budget's month so far and its forecast
//! (`GET /api/v1/budgets`), and the days whose cost left its weekly pattern
//! (`GET /api/v1/anomalies`), as a table or JSON.
//!
//! Exit codes: 0 printed (even when empty); 2 the arguments are wrong (here or as the
//! server says: 400); 1 anything else (server unreachable, auth).

use clap::{Args, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct BudgetsArgs {
    #[command(flatten)]
    pub server: crate::remote::ServerOpts,
    /// Evaluate as of this time: RFC 3339, Unix seconds, or relative (`-1d`) [default: now].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnomalyKind {
    Spike,
    LevelShift,
}

#[derive(Debug, Args)]
pub struct AnomaliesArgs {
    #[command(flatten)]
    pub server: crate::remote::ServerOpts,
    /// Only groups of this provider (`aws`, `gcp`, `azure`).
    #[arg(long)]
    pub provider: Option<String>,
    /// Only groups of this account (AWS account, GCP project, Azure subscription).
    #[arg(long)]
    pub account: Option<String>,
    /// Only groups of this service (any case).
    #[arg(long)]
    pub service: Option<String>,
    /// Only spikes or only level shifts.
    #[arg(long, value_enum)]
    pub kind: Option<AnomalyKind>,
    /// Only anomalies on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DAY")]
    pub from: Option<String>,
    /// Only anomalies on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DAY")]
    pub to: Option<String>,
    /// Judge the days before this time: RFC 3339, Unix seconds, or relative [default: now].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    q.finish()
}

async fn get(server: &crate::remote::ServerOpts, path: &str) -> Result<Value, ExitCode> {
    crate::remote::call(server, reqwest::Method::GET, path, None).await
}

fn print(format: Format, answer: &Value, table: impl FnOnce(&Value) -> String) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        ),
        Format::Table => print!("{}", table(answer)),
    }
}

pub async fn budgets(args: BudgetsArgs) -> ExitCode {
    let q = query(&[("at", args.at.as_deref())]);
    match get(&args.server, &format!("/api/v1/budgets?{q}")).await {
        Ok(answer) => {
            print(args.format, &answer, budgets_table);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub async fn anomalies(args: AnomaliesArgs) -> ExitCode {
    let kind = args.kind.map(|k| match k {
        AnomalyKind::Spike => "spike",
        AnomalyKind::LevelShift => "level_shift",
    });
    let q = query(&[
        ("provider", args.provider.as_deref()),
        ("account", args.account.as_deref()),
        ("service", args.service.as_deref()),
        ("kind", kind),
        ("from", args.from.as_deref()),
        ("to", args.to.as_deref()),
        ("at", args.at.as_deref()),
    ]);
    match get(&args.server, &format!("/api/v1/anomalies?{q}")).await {
        Ok(answer) => {
            print(args.format, &answer, anomalies_table);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn usd(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map(|m| format!("{m:.2}"))
        .unwrap_or_else(|| "–".into())
}

fn percent(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map(|m| format!("{m:.1} %"))
        .unwrap_or_else(|| "–".into())
}

/// The budgets as printed: one row each, the thresholds crossed named.
fn budgets_table(answer: &Value) -> String {
    let budgets = answer["budgets"].as_array().cloned().unwrap_or_default();
    if budgets.is_empty() {
        return "no budgets (add [[budget]] to the server's config; see docs/savings.md)\n"
            .to_string();
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "budget",
        "month",
        "spent",
        "amount",
        "spent %",
        "forecast",
        "forecast %",
        "crossed",
    ]);
    for b in &budgets {
        let crossed: Vec<String> = b["thresholds"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| t["crossed"] == true)
                    .map(|t| format!("{} % {}", t["percent"], t["on"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        t.add_row([
            b["name"].as_str().unwrap_or("").to_string(),
            b["month"].as_str().unwrap_or("").to_string(),
            usd(b.get("actual")),
            usd(b.get("amount")),
            percent(b.get("percent_actual")),
            usd(b.get("forecast")),
            percent(b.get("percent_forecast")),
            if crossed.is_empty() {
                "–".to_string()
            } else {
                crossed.join(", ")
            },
        ]);
    }
    format!("{t}\nas of {}\n", answer["as_of"].as_str().unwrap_or("?"))
}

/// The anomalies as printed: newest first, each with its largest driver.
fn anomalies_table(answer: &Value) -> String {
    let items = answer["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return format!(
            "no cost anomalies in the days before {}\n",
            answer["as_of"].as_str().unwrap_or("today")
        );
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "day",
        "kind",
        "group",
        "actual",
        "expected",
        "size",
        "score",
        "top driver",
    ]);
    for a in &items {
        let group = a["group"]
            .as_object()
            .map(|g| {
                g.values()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut kind = a["kind"].as_str().unwrap_or("").replace('_', " ");
        if a["provisional"] == true {
            kind.push_str(" (provisional)");
        }
        let driver = a["drivers"]
            .get(0)
            .map(|d| {
                format!(
                    "{} {:+.2}",
                    d["resource"].as_str().unwrap_or(""),
                    d["delta"].as_f64().unwrap_or(0.0)
                )
            })
            .unwrap_or_else(|| "–".into());
        t.add_row([
            a["day"].as_str().unwrap_or("").to_string(),
            kind,
            group,
            usd(a.get("actual")),
            usd(a.get("expected")),
            a["size"]
                .as_f64()
                .map(|s| format!("{s:+.2}"))
                .unwrap_or_default(),
            a["score"]
                .as_f64()
                .map(|s| format!("{s:.1}"))
                .unwrap_or_default(),
            driver,
        ]);
    }
    format!("{t}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tables_say_what_was_found() {
        let budgets = json!({"as_of": "2026-12-15", "budgets": [{
        "name": "ec2", "month": "2026-12", "amount": 300.0, "actual": 150.0,
        "percent_actual": 50.0, "forecast": 310.0, "percent_forecast": 103.33,
        "thresholds": [
            {"percent": 80.0, "on": "actual", "limit": 240.0, "crossed": false},
            {"percent": 100.0, "on": "forecast", "limit": 300.0, "crossed": true}
        ]}]});
        let t = budgets_table(&budgets);
        for want in [
            "ec2",
            "150.00",
            "300.00",
            "50.0 %",
            "310.00",
            "103.3 %",
            "100.0 % forecast",
            "as of 2026-12-15",
        ] {
            assert!(t.contains(want), "{want} in\n{t}");
        }
        assert!(budgets_table(&json!({"budgets": []})).starts_with("no budgets"));
        let anomalies = json!({"as_of": "2026-12-07", "items": [{
            "group": {"account": "111", "provider": "aws", "service": "EC2"},
            "day": "2026-12-03", "kind": "level_shift", "provisional": false,
            "actual": 500.0, "expected": 100.0, "size": 400.0, "score": 41.25, "direction": "up",
            "drivers": [{"resource": "i-runaway", "actual": 400.0, "baseline": 0.0, "delta": 400.0}]}]});
        let t = anomalies_table(&anomalies);
        for want in [
            "2026-12-03",
            "level shift",
            "111 aws EC2",
            "500.00",
            "+400.00",
            "41.2",
            "i-runaway +400.00",
        ] {
            assert!(t.contains(want), "{want} in\n{t}");
        }
        assert_eq!(
            anomalies_table(&json!({"as_of": "2026-12-07", "items": []})),
            "no cost anomalies in the days before 2026-12-07\n"
        );
    }
}
