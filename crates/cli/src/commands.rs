use crate::cli::{
    CollectArgs, Command, MetricsArgs, OutputFormat, PluginsArgs, SchemaArgs, SchemaKind,
    ValidateArgs,
};
use crate::output::{new_table, report_config_errors, FAILURE, USAGE};
use chrono::Utc;
use skymeter_model::{Batch, Window};
use skymeter_pipeline::config::{build_one_shot_collector, hostname};
use skymeter_pipeline::{load_file, Schedule};
use skymeter_plugin_api::config::Source;
use skymeter_plugin_api::{
    BuildContext, CollectRequest, MetricSelection, Output, PluginKind, RawConfig, Registry,
};
use std::process::ExitCode;

pub async fn dispatch(cli: crate::cli::Cli, registry: Registry) -> ExitCode {
    let registry = std::sync::Arc::new(registry);
    match cli.command {
        Command::Run(a) => crate::agent::run(a, &registry).await,
        Command::Validate(a) => validate(a, &registry),
        Command::Collect(a) => collect(a, &registry).await,
        Command::Plugins(a) => plugins(a, &registry),
        Command::Metrics(a) => metrics(a, &registry),
        Command::Schema(a) => schema(a),
        Command::Server(a) => crate::serve::server(*a, &registry).await,
        Command::Up(a) => crate::serve::up(a, &registry).await,
        // Blocking (files, or PostgreSQL with --metadata): off the async workers.
        Command::Token(c) => tokio::task::block_in_place(|| crate::serve::token(c)),
        Command::Query(a) => crate::query::query(a).await,
        Command::Prices(a) => crate::prices::prices(a, &registry).await,
        Command::Rating(c) => crate::rating::rating(c).await,
        Command::Costs(c) => crate::costs::costs(c).await,
        Command::Findings(a) => crate::findings::findings(a).await,
        Command::Budgets(a) => crate::budgets::budgets(a).await,
        Command::Anomalies(a) => crate::budgets::anomalies(a).await,
        Command::Task(a) => crate::tasks::task(a).await,
        Command::Metric(a) => crate::tasks::metric(a).await,
        Command::Plugin(a) => crate::tasks::plugin(a).await,
        Command::CloudforetPlugin(a) => crate::cloudforet::cloudforet_plugin(a).await,
    }
}

fn validate(args: ValidateArgs, registry: &Registry) -> ExitCode {
    match load_file(&args.config, registry, false) {
        Ok(cfg) => {
            if args.format == OutputFormat::Json {
                let tasks: Vec<_> = cfg
                    .tasks
                    .iter()
                    .map(|t| {
                        let branches: Vec<_> = t
                            .branches
                            .iter()
                            .map(|b| {
                                serde_json::json!({
                                    "process": b.processors.iter().map(|c| &c.name).collect::<Vec<_>>(),
                                    "publish": b.publishers.iter().map(|c| &c.name).collect::<Vec<_>>(),
                                })
                            })
                            .collect();
                        serde_json::json!({
                            "name": t.name,
                            "collect": t.collectors.iter().map(|c| &c.name).collect::<Vec<_>>(),
                            "process": t.processors.iter().map(|c| &c.name).collect::<Vec<_>>(),
                            "publish": t.publishers.iter().map(|c| &c.name).collect::<Vec<_>>(),
                            "branches": branches,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "file": args.config, "tasks": tasks})
                );
            } else {
                for t in &cfg.tasks {
                    let names = |v: Vec<&String>| {
                        v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    };
                    // The task's own branch (when it publishes) and each `[[task.branch]]`.
                    let mut paths = Vec::new();
                    let own = (&t.processors, &t.publishers);
                    for (processors, publishers) in std::iter::once(own)
                        .filter(|(_, p)| !p.is_empty())
                        .chain(t.branches.iter().map(|b| (&b.processors, &b.publishers)))
                    {
                        paths.push(format!(
                            "process [{}] → publish [{}]",
                            names(processors.iter().map(|c| &c.name).collect()),
                            names(publishers.iter().map(|c| &c.name).collect()),
                        ));
                    }
                    let paths = if paths.len() == 1 {
                        paths.remove(0)
                    } else {
                        format!("{{{}}}", paths.join("; "))
                    };
                    println!(
                        "task `{}`: {} → collect [{}] → {paths}",
                        t.name,
                        skymeter_pipeline::schedule::describe(&t.schedule),
                        names(t.collectors.iter().map(|c| &c.name).collect()),
                    );
                }
                println!(
                    "{}: valid ({} task(s))",
                    args.config.display(),
                    cfg.tasks.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errs) => {
            if args.format == OutputFormat::Json {
                let list: Vec<_> = errs
                    .iter()
                    .map(|e| serde_json::json!({"file": e.file, "line": e.line, "column": e.column, "key": e.key, "message": e.message}))
                    .collect();
                println!("{}", serde_json::json!({"valid": false, "errors": list}));
                ExitCode::from(USAGE)
            } else {
                report_config_errors(&errs)
            }
        }
    }
}

/// The stdout publisher renders records for `collect`, so the command prints exactly what
/// a task publishing to stdout would.
fn stdout_publisher(
    registry: &Registry,
    format: OutputFormat,
) -> Result<Box<dyn skymeter_plugin_api::Publisher>, String> {
    let f = registry
        .publisher("stdout")
        .ok_or("this build has no stdout publisher")?;
    let text = match format {
        OutputFormat::Table => "format = \"table\"",
        OutputFormat::Json => "format = \"json\"",
    };
    let source = Source::new("--format", text);
    let root = source.parse().map_err(|e| e.to_string())?;
    (f.build)(
        &RawConfig::new(source.clone(), root, Default::default()),
        &BuildContext::one_shot(&hostname()),
    )
    .map_err(|e| e.to_string())
}

async fn collect(args: CollectArgs, registry: &Registry) -> ExitCode {
    let mut ctx = BuildContext::one_shot(&hostname());
    ctx.data_dir = args.data_dir.clone();
    let mut sets = args.sets.clone();
    if args.dry_run {
        let has_dry_run = registry
            .descriptions()
            .iter()
            .find(|d| d.name == args.plugin)
            .map(|d| (d.config_schema)().pointer("/properties/dry_run").is_some());
        if has_dry_run == Some(false) {
            eprintln!(
                "error: --dry-run: the `{}` collector has no dry run; run it without --dry-run",
                args.plugin
            );
            return ExitCode::from(USAGE);
        }
        sets.push("dry_run=true".into());
    }
    let mut collector = match build_one_shot_collector(registry, &args.plugin, &sets, &ctx) {
        Ok(c) => c,
        Err(errs) => return report_config_errors(&errs),
    };
    let timeout = args.timeout;
    let metrics = match MetricSelection::new(&args.metrics) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: --metrics: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if args.verify {
        return match tokio::time::timeout(timeout, collector.verify()).await {
            Ok(Ok(())) => {
                println!("{}: config and credentials verified", args.plugin);
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("error: {}: {e}", args.plugin);
                ExitCode::from(FAILURE)
            }
            Err(_) => {
                eprintln!(
                    "error: {}: verification timed out after {:?}",
                    args.plugin, args.timeout
                );
                ExitCode::from(FAILURE)
            }
        };
    }
    let mut publisher = match stdout_publisher(registry, args.format) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    let (start, end) = Schedule::Every(args.period).first_window(Utc::now());
    let req = CollectRequest {
        window: Window { start, end },
        metrics,
        task: "collect".into(),
    };
    let mut out = Output::default();
    let collected_at = Utc::now();
    let outcome = tokio::time::timeout(timeout, collector.collect(&req, &mut out)).await;
    let mut batch = Batch::new(ctx.agent_id.clone(), "collect", collected_at);
    batch.window = Some(req.window);
    batch.resources = out.resources;
    batch.points = out.points;
    batch.costs = out.costs;
    batch.errors = out
        .errors
        .into_iter()
        .map(|e| e.into_record(&args.plugin, collected_at))
        .collect();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => batch.errors.push(e.into_record(&args.plugin, collected_at)),
        Err(_) => {
            batch.errors.push(
                skymeter_plugin_api::PluginError::new(
                    skymeter_plugin_api::ErrorKind::Timeout,
                    format!(
                        "collection timed out after {:?}; raise --timeout",
                        args.timeout
                    ),
                )
                .into_record(&args.plugin, collected_at),
            );
        }
    }
    let written = if args.format == OutputFormat::Json {
        // JSON lines go straight to stdout as they are rendered: a large collection (10,000
        // instances × 24 metric queries) would otherwise hold its whole text in memory.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        skymeter_plugins::publishers::stdout::write_batch(
            &mut out,
            &batch,
            skymeter_plugins::publishers::stdout::Format::Json,
        )
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| e.to_string())
    } else {
        match publisher.publish(&batch).await {
            Ok(()) => publisher.flush().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    if let Err(e) = written {
        eprintln!("error: cannot write the output: {e}");
        return ExitCode::from(FAILURE);
    }
    if args.format == OutputFormat::Table {
        print_summary(&batch, &args.plugin);
    }
    for e in &batch.errors {
        eprintln!("error: {}: {}", e.plugin, e.message);
    }
    // One-shot: the user asked for one thing, so any failure, even partial, is status 1
    // (the records that were collected are printed all the same).
    if !batch.errors.is_empty() {
        ExitCode::from(FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// After the records of `collect --format table`: one line per resource with its type,
/// state, newest CPU avg/max and estimated hourly cost, then the run summary (API calls,
/// metrics requested, what the collection cost) from the collector's self-metrics.
fn print_summary(batch: &Batch, plugin: &str) {
    use skymeter_model::{CostSource, Point, Stat};
    use std::collections::HashMap;
    if !batch.resources.is_empty() {
        // Indexed once: a large account has 10,000 resources and hundreds of thousands of
        // points, too many to scan per resource.
        let mut newest_cpu: HashMap<(&str, &str, Stat), &Point> = HashMap::new();
        for p in &batch.points {
            if p.metric == "cpu.utilization"
                && matches!(p.stat, Stat::Avg | Stat::Max)
                && p.labels.is_empty()
            {
                let slot = newest_cpu
                    .entry((p.resource.account.as_str(), p.resource.id.as_str(), p.stat))
                    .or_insert(p);
                if p.ts > slot.ts {
                    *slot = p;
                }
            }
        }
        // Per resource id: estimated cost per hour, and whether it has any cost line.
        let mut cost_of: HashMap<&str, (f64, bool)> = HashMap::new();
        for c in &batch.costs {
            let Some(id) = c.resource_id.as_deref() else {
                continue;
            };
            let entry = cost_of.entry(id).or_default();
            entry.1 = true;
            if c.x_source == CostSource::Estimated {
                let hours =
                    (c.charge_period_end - c.charge_period_start).num_seconds() as f64 / 3600.0;
                if hours > 0.0 {
                    entry.0 += c.billed_cost / hours;
                }
            }
        }
        let mut t = new_table(&[
            "kind",
            "id",
            "name",
            "type",
            "state",
            "cpu avg %",
            "cpu max %",
            "cost/h USD",
        ]);
        for r in &batch.resources {
            let attr = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| r.attributes.get(*k))
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            };
            let cpu = |stat: Stat| {
                newest_cpu
                    .get(&(r.account.as_str(), r.id.as_str(), stat))
                    .map(|p| format!("{:.1}", p.value))
                    .unwrap_or_default()
            };
            let (per_hour, has_cost) = cost_of.get(r.id.as_str()).copied().unwrap_or_default();
            t.add_row(vec![
                r.kind.clone(),
                r.id.clone(),
                r.name.clone(),
                attr(&[
                    "instance_type",
                    "instance_class",
                    "volume_type",
                    "runtime",
                    "version",
                ]),
                attr(&["state", "status"]),
                cpu(Stat::Avg),
                cpu(Stat::Max),
                if has_cost {
                    format!("{per_hour:.4}")
                } else {
                    String::new()
                },
            ]);
        }
        println!("\nsummary\n{t}");
    }
    let planned = batch
        .points
        .iter()
        .any(|p| p.metric.ends_with(".planned_calls"));
    let calls_metric = if planned {
        ".planned_calls"
    } else {
        ".api_calls"
    };
    let calls: Vec<String> = batch
        .points
        .iter()
        .filter(|p| p.metric.ends_with(calls_metric))
        .filter_map(|p| Some(format!("{}={}", p.labels.get("api")?, p.value)))
        .collect();
    if calls.is_empty() {
        return;
    }
    println!(
        "\nrun summary{}: API calls {}",
        if planned { " (dry run: planned)" } else { "" },
        calls.join(" ")
    );
    // The collector's other figures about itself (`aws.cloudwatch_metrics_requested`,
    // `aws.collection_cost`): label-less points of its own resource.
    let own = format!("skymeter-{plugin}-collector");
    for p in batch
        .points
        .iter()
        .filter(|p| p.resource.id == own.as_str() && p.labels.is_empty())
    {
        print!("  {}: {}", p.metric, p.value);
    }
    println!();
}

fn plugins(args: PluginsArgs, registry: &Registry) -> ExitCode {
    let descriptions = registry.descriptions();
    if let Some(name) = &args.name {
        let found: Vec<_> = descriptions.iter().filter(|d| d.name == name).collect();
        if found.is_empty() {
            let all: Vec<_> = descriptions.iter().map(|d| d.name).collect();
            eprintln!(
                "error: no plugin named `{name}`; available: {}",
                all.join(", ")
            );
            return ExitCode::from(USAGE);
        }
        for d in found {
            let detail = serde_json::json!({
                "name": d.name, "kind": d.kind.as_str(), "summary": d.summary,
                "config_schema": (d.config_schema)(),
                "metrics": (d.metrics)().iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            });
            match args.format {
                OutputFormat::Json => println!("{detail}"),
                OutputFormat::Table => {
                    println!("{} ({}): {}\n", d.name, d.kind.as_str(), d.summary);
                    println!(
                        "config schema:\n{}",
                        serde_json::to_string_pretty(&detail["config_schema"]).unwrap_or_default()
                    );
                    let m = (d.metrics)();
                    if !m.is_empty() {
                        println!(
                            "\n{} metric(s): see `skymeter metrics --plugin {}`",
                            m.len(),
                            d.name
                        );
                    }
                }
            }
        }
        return ExitCode::SUCCESS;
    }
    match args.format {
        OutputFormat::Json => {
            for d in &descriptions {
                println!(
                    "{}",
                    serde_json::json!({"name": d.name, "kind": d.kind.as_str(), "summary": d.summary})
                );
            }
        }
        OutputFormat::Table => {
            let mut t = new_table(&["plugin", "kind", "summary"]);
            for d in &descriptions {
                t.add_row(vec![d.name, d.kind.as_str(), d.summary]);
            }
            println!("{t}");
        }
    }
    ExitCode::SUCCESS
}

fn metrics(args: MetricsArgs, registry: &Registry) -> ExitCode {
    let collectors = registry.names(PluginKind::Collector);
    let selected: Vec<&str> = match &args.plugin {
        Some(p) if collectors.contains(&p.as_str()) => vec![p.as_str()],
        Some(p) => {
            eprintln!(
                "error: no collector named `{p}`; available: {}",
                collectors.join(", ")
            );
            return ExitCode::from(USAGE);
        }
        None => collectors.clone(),
    };
    let mut t = new_table(&[
        "plugin",
        "metric",
        "unit",
        "stats",
        "labels",
        "source",
        "description",
    ]);
    for name in selected {
        let d = registry.collector(name).expect("listed").description;
        let list = (d.metrics)();
        if list.is_empty() && args.format == OutputFormat::Table {
            t.add_row(vec![
                name,
                "(whatever the source exposes)",
                "",
                "",
                "",
                "",
                "see the plugin's README",
            ]);
        }
        for m in list {
            let stats: Vec<&str> = m.stats.iter().map(|s| s.as_str()).collect();
            match args.format {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({"plugin": name, "metric": m.name, "unit": m.unit, "stats": stats,
                        "labels": m.labels, "source": m.source, "description": m.description})
                ),
                OutputFormat::Table => {
                    t.add_row(vec![
                        name.to_string(),
                        m.name,
                        m.unit.to_string(),
                        stats.join(","),
                        m.labels.join(","),
                        m.source,
                        m.description,
                    ]);
                }
            }
        }
    }
    if args.format == OutputFormat::Table {
        println!("{t}");
    }
    ExitCode::SUCCESS
}

fn schema(args: SchemaArgs) -> ExitCode {
    let s = match args.kind {
        SchemaKind::Batch => skymeter_model::schema::batch(),
        SchemaKind::Record => skymeter_model::schema::record(),
    };
    print!("{}", skymeter_model::schema::to_file_text(&s));
    ExitCode::SUCCESS
}
