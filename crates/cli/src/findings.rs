//! `skymeter findings`: what the server found could be stopped, released or resized, with
//! the money, and where its estimate and the bill disagree, through `GET /api/v1/findings`
//! (every page), as a table, JSON or CSV.
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
    /// Estimated vs billed cost per account and service (not a saving).
    Reconciliation,
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
                Kind::Reconciliation => "reconciliation",
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
        FindingsFormat::Table => print!("{}", table(&first, &items)),
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

/// The table and its totals line, as printed.
fn table(page: &Value, items: &[Value]) -> String {
    if items.is_empty() {
        return "no findings\n".to_string();
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
        let resource = if let Some(g) = f.get("group").filter(|g| g.is_object()) {
            // A finding about a service of an account (reconciliation), not a resource.
            format!(
                "service {} of {} {}",
                s(g, &["service"]),
                s(g, &["provider"]),
                s(g, &["account"])
            )
        } else if name.is_empty() || name == id {
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
    let totals = page.get("totals");
    let mut line = format!(
        "{} finding(s), {} USD/month",
        totals
            .and_then(|t| t.get("count"))
            .and_then(Value::as_u64)
            .unwrap_or(items.len() as u64),
        money(totals.and_then(|t| t.get("monthly_usd")))
    );
    let mut gap = None;
    if let Some(Value::Array(groups)) = page.get("groups") {
        let parts: Vec<String> = groups
            .iter()
            .filter(|g| {
                // The reconciliation gap is not part of the saving: said apart.
                if s(g, &["group", "kind"]) == "reconciliation" {
                    gap = Some(money(g.get("monthly_usd")));
                    return false;
                }
                true
            })
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
    if let Some(gap) = gap {
        line.push_str(&format!(
            "; estimate vs bill: {gap} USD/month of error (reconciliation, not a saving)"
        ));
    }
    format!("{t}\n{line}\n")
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
        "service",
        "currency",
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
            s(f, &["group", "service"]),
            s(f, &["group", "currency"]),
        ]);
    }
    let _ = w.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A page as the server answers it: an orphaned volume and a reconciliation gap.
    fn page() -> (Value, Vec<Value>) {
        let items = vec![
            json!({"kind": "reconciliation", "monthly_usd": 45.63, "action": "reconcile: check",
                   "reason": "billed 172.80 vs estimated 132.30 USD",
                   "resource": {"kind": "billing.service", "id": "Amazon Elastic Compute Cloud",
                                "name": "Amazon Elastic Compute Cloud", "region": "",
                                "provider": "aws", "account": "111111111111", "key": ""},
                   "group": {"provider": "aws", "account": "111111111111",
                             "service": "Amazon Elastic Compute Cloud", "currency": "USD"},
                   "id": "reconciliation/aws/111111111111/Amazon Elastic Compute Cloud"}),
            json!({"kind": "orphaned", "monthly_usd": 8.0, "action": "snapshot and delete",
                   "reason": "unattached 100 GiB volume",
                   "resource": {"kind": "storage.volume", "id": "vol-1", "name": "vol-1",
                                "region": "us-east-1", "provider": "aws",
                                "account": "111111111111", "key": "aws/111111111111/us-east-1/vol-1"},
                   "id": "orphaned/aws/111111111111/us-east-1/vol-1"}),
        ];
        let page = json!({
            "totals": {"count": 2, "monthly_usd": 8.0},
            "groups": [
                {"group": {"kind": "reconciliation"}, "count": 1, "monthly_usd": 45.63},
                {"group": {"kind": "orphaned"}, "count": 1, "monthly_usd": 8.0}
            ]
        });
        (page, items)
    }

    #[test]
    fn the_table_shows_the_group_and_keeps_the_gap_out_of_the_savings() {
        let (page, items) = page();
        let text = table(&page, &items);
        assert!(
            text.contains("service Amazon Elastic Compute Cloud of aws 111111111111"),
            "{text}"
        );
        assert!(text.contains("storage.volume vol-1"), "{text}");
        assert!(
            text.ends_with(
                "2 finding(s), 8.00 USD/month (orphaned 8.00); estimate vs bill: 45.63 USD/month of error (reconciliation, not a saving)\n"
            ),
            "{text}"
        );
        assert_eq!(table(&page, &[]), "no findings\n");
    }
}
