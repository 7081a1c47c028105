//! `skymeter rating`: check a rating rules file and price usage with it.
//!
//! `rules` reads a rules file (docs/rating.md) and lists what it defines, or every mistake
//! with its line (exit 2). `quote` prices a usage you describe, as the rules would rate it,
//! before it happens.

use crate::output::{new_table, OutputFormat, USAGE};
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
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// The rating rules file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub rules: PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// The rating rules file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub rules: PathBuf,
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

pub fn rating(cmd: RatingCommand) -> ExitCode {
    match cmd {
        RatingCommand::Rules(a) => rules(a),
        RatingCommand::Quote(a) => quote(a),
    }
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

fn rules(a: RulesArgs) -> ExitCode {
    let rules = match load(&a.rules) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if a.format == OutputFormat::Json {
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
        let scripts: Vec<&str> = rules.scripts.iter().map(|s| s.name.as_str()).collect();
        println!(
            "{}",
            json!({
                "file": a.rules, "valid": true, "modules": modules, "services": services,
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
    for s in &rules.scripts {
        println!("script `{}` ({} lines)", s.name, s.source.lines().count());
    }
    println!(
        "{}: valid; runs {}",
        a.rules.display(),
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

fn quote(a: QuoteArgs) -> ExitCode {
    let rules = match load(&a.rules) {
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
            a.rules.display(),
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
