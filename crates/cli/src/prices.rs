//! `skymeter prices <cloud> show|update`: the price tables behind estimated costs, for every
//! cloud the registry has a price source for. Nothing here knows a cloud: the subcommands,
//! their help and the options each cloud's `update` takes come from its `PriceSource`.

use crate::output::{
    align_numbers, format_usd, new_table, write_atomically, Progress, FAILURE, USAGE,
};
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use skymeter_plugin_api::api_calls::ApiCallCounts;
use skymeter_plugin_api::prices::{PriceSource, PriceTable, PriceUpdate, UpdateOption};
use skymeter_plugin_api::Registry;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The parsed `prices …` command line, read against the registry when run.
#[derive(Debug, Clone)]
pub struct PricesArgs {
    matches: ArgMatches,
}

impl clap::FromArgMatches for PricesArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(PricesArgs { matches: m.clone() })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.matches = m.clone();
        Ok(())
    }
}

/// The clouds' subcommands are added by [`augment`] once the registry is known.
impl clap::Args for PricesArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        cmd
    }
}

/// `skymeter <cloud> prices …` (the spelling before `prices <cloud>`) still works: the
/// arguments are rewritten to the new order.
pub fn rewrite_old_spelling(args: &mut [String], registry: &Registry) {
    if args.len() >= 3 && args[2] == "prices" && registry.price_source(&args[1]).is_some() {
        args.swap(1, 2);
    }
}

/// Adds one subcommand per cloud with a price table to `prices`.
pub fn augment(prices: Command, registry: &Registry) -> Command {
    let mut cmd = prices
        .subcommand_required(true)
        .arg_required_else_help(true);
    for id in registry.price_sources() {
        let Some(src) = registry.price_source(id) else {
            continue;
        };
        cmd = cmd.subcommand(cloud_command(src));
    }
    cmd
}

fn cloud_command(src: &dyn PriceSource) -> Command {
    let p = src.provider();
    let example = src.example_region();
    let region_arg = move |name: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name(if name == "regions" { "R1,R2" } else { "REGION" })
            .value_parser(move |s: &str| region(s, p.display_name, example))
    };
    let data_dir = Arg::new("data-dir")
        .long("data-dir")
        .value_name("DIR")
        .default_value("skymeter-data")
        .value_parser(value_parser!(PathBuf))
        .help("skymeter's data directory");
    let format = |what: &'static str| {
        Arg::new("format")
            .long("format")
            .value_parser(["table", "json"])
            .default_value("table")
            .help(what)
    };
    let show = Command::new("show")
        .about("Print the price table in use (or one file): per region, every price with its unit")
        .arg(region_arg("region").help("Only this region"))
        .arg(
            Arg::new("prices")
                .long("prices")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help(format!(
                    "A price table file [default: <data-dir>/prices/{}.json when it exists, else the table shipped with skymeter]",
                    p.id
                )),
        )
        .arg(data_dir.clone())
        .arg(format("A table, or the price table's JSON"));
    let mut update = Command::new("update")
        .about(format!(
            "Read current {} prices from {} and write the price table",
            src.kind(),
            src.api()
        ))
        .long_about(format!(
            "Read current {} prices and write the price table.\n\n{}\n\nWrites the table atomically to <data-dir>/prices/{}.json, where the {} collector's estimated costs look first.",
            src.kind(),
            src.update_help(),
            p.id,
            p.id
        ))
        .arg(
            region_arg("regions")
                .value_delimiter(',')
                .action(ArgAction::Append)
                .help(format!(
                    "Regions to read, comma-separated (e.g. {example}) [default: the regions of the table in use]"
                )),
        )
        .arg(
            Arg::new("output")
                .long("output")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help(format!(
                    "Where to write the table [default: <data-dir>/prices/{}.json]",
                    p.id
                )),
        )
        .arg(data_dir)
        .arg(format("The summary: a table, or one JSON object"));
    for opt in src.update_options() {
        update = update.arg(option_arg(*opt));
    }
    Command::new(p.id)
        .about(format!("{} {} prices", p.display_name, src.kind()))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(update)
        .subcommand(show)
}

fn option_arg(opt: UpdateOption) -> Arg {
    let name = opt.flag().trim_start_matches("--");
    let arg = Arg::new(name).long(name);
    match opt {
        UpdateOption::EndpointUrl => arg
            .value_name("URL")
            .value_parser(http_url)
            .help("The price API's base URL (an emulator, a proxy)"),
        UpdateOption::CredentialsFile => arg
            .value_name("FILE")
            .help("A key file for the price API [default: the cloud's default credentials]"),
        UpdateOption::Profile => arg
            .value_name("NAME")
            .help("The credentials profile to use [default: the SDK's chain]"),
        UpdateOption::CaFile => arg.value_name("FILE").help(
            "PEM certificates to trust besides the system's (a proxy's or a test server's CA)",
        ),
    }
}

/// A region name as the clouds write them: lower-case letters, digits and hyphens
/// (`us-east-1`, `europe-west1`, `westeurope`).
fn region(s: &str, cloud: &str, example: &str) -> Result<String, String> {
    let ok = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a region name of {cloud}; write e.g. {example}"
        ))
    }
}

fn http_url(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.trim_end_matches('/').to_string())
    } else {
        Err(format!("`{s}` must start with http:// or https://"))
    }
}

/// Runs `prices <cloud> show|update`.
pub async fn prices(args: PricesArgs, registry: &Registry) -> ExitCode {
    let Some((id, cloud)) = args.matches.subcommand() else {
        eprintln!(
            "error: name a cloud: {}",
            registry.price_sources().join(", ")
        );
        return ExitCode::from(USAGE);
    };
    let Some(src) = registry.price_source(id) else {
        eprintln!("error: no price table for `{id}`");
        return ExitCode::from(USAGE);
    };
    match cloud.subcommand() {
        Some(("show", m)) => show(src, m),
        Some(("update", m)) => update(src, m).await,
        _ => {
            eprintln!("error: `skymeter prices {id}` takes `show` or `update`");
            ExitCode::from(USAGE)
        }
    }
}

fn data_dir(m: &ArgMatches) -> PathBuf {
    m.get_one::<PathBuf>("data-dir")
        .cloned()
        .unwrap_or_else(|| PathBuf::from("skymeter-data"))
}

fn json_format(m: &ArgMatches) -> bool {
    m.get_one::<String>("format").map(String::as_str) == Some("json")
}

fn show(src: &dyn PriceSource, m: &ArgMatches) -> ExitCode {
    let p = src.provider();
    let explicit = m.get_one::<PathBuf>("prices");
    let mut table = match src.load(explicit.map(PathBuf::as_path), &data_dir(m)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if let Some(r) = m.get_one::<String>("region") {
        let have = table.regions();
        if !have.contains(r) {
            eprintln!(
                "error: the {} price table of {} has no prices for {r} (it has: {}); run `skymeter prices {} update --regions {r}`",
                p.display_name,
                table.date(),
                have.join(", "),
                p.id
            );
            return ExitCode::from(FAILURE);
        }
        table.retain_regions(&|x| x == r);
    }
    if json_format(m) {
        print!("{}", table.to_json());
        return ExitCode::SUCCESS;
    }
    println!(
        "{} {} prices of {} ({})",
        p.display_name,
        src.kind(),
        table.date(),
        table.currency()
    );
    println!("source: {}", table.source());
    let mut t = new_table(&["region", "price", "USD", "per"]);
    for region in table.regions() {
        for row in table.rows(&region) {
            t.add_row(vec![region.clone(), row.key, format_usd(row.usd), row.per]);
        }
    }
    align_numbers(&mut t, 2..3);
    println!("{t}");
    ExitCode::SUCCESS
}

/// The regions to read: those asked, else those of the table in use.
fn regions_to_read(
    src: &dyn PriceSource,
    m: &ArgMatches,
    data_dir: &Path,
) -> Result<Vec<String>, ExitCode> {
    let mut regions: Vec<String> = Vec::new();
    let asked: Vec<String> = m
        .get_many::<String>("regions")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    if asked.is_empty() {
        match src.load(None, data_dir) {
            Ok(t) => regions.extend(t.regions()),
            Err(e) => {
                eprintln!("error: {e}; pass --regions to choose the regions instead");
                return Err(ExitCode::from(USAGE));
            }
        }
    } else {
        for r in asked {
            if !regions.contains(&r) {
                regions.push(r);
            }
        }
    }
    if regions.is_empty() {
        eprintln!(
            "error: the price table in use has no region; pass --regions, e.g. --regions {}",
            src.example_region()
        );
        return Err(ExitCode::from(USAGE));
    }
    Ok(regions)
}

async fn update(src: &dyn PriceSource, m: &ArgMatches) -> ExitCode {
    let p = src.provider();
    let dir = data_dir(m);
    let regions = match regions_to_read(src, m, &dir) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let output = m
        .get_one::<PathBuf>("output")
        .cloned()
        .unwrap_or_else(|| src.default_path(&dir));
    let text = |opt: UpdateOption| {
        src.update_options()
            .contains(&opt)
            .then(|| m.get_one::<String>(opt.flag().trim_start_matches("--")))
            .flatten()
            .map(String::as_str)
    };
    let calls = Arc::new(ApiCallCounts::default());
    let progress = Progress::new(src.noun());
    let report = |what: &str, n: u64| progress.update(what, n);
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let req = PriceUpdate {
        regions: &regions,
        date: &date,
        endpoint_url: text(UpdateOption::EndpointUrl),
        credentials_file: text(UpdateOption::CredentialsFile),
        profile: text(UpdateOption::Profile),
        ca_file: text(UpdateOption::CaFile),
        progress: &report,
    };
    let fetched = src.fetch(&req, calls.clone()).await;
    progress.finish();
    let n = calls.get(src.api());
    let table = match fetched {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("nothing was written; {n} {} call(s) made", src.api());
            return ExitCode::from(FAILURE);
        }
    };
    if let Err(e) = write_atomically(&output, &table.to_json()) {
        eprintln!(
            "error: cannot write the price table to {}: {e}",
            output.display()
        );
        return ExitCode::from(FAILURE);
    }
    summarize(src, table.as_ref(), &output, n, json_format(m));
    for (region, by_kind) in table.counts() {
        if by_kind.values().sum::<usize>() == 0 {
            eprintln!(
                "warning: no price found for region {region}: is it a {} region name?",
                p.display_name
            );
        }
    }
    ExitCode::SUCCESS
}

/// What `update` wrote: per region, the prices of each kind.
fn summarize(src: &dyn PriceSource, table: &dyn PriceTable, output: &Path, calls: u64, json: bool) {
    let counts = table.counts();
    let total: usize = counts.values().flat_map(|c| c.values()).sum();
    if json {
        let summary = serde_json::json!({
            "output": output.display().to_string(),
            "date": table.date(),
            "source": table.source(),
            "regions": counts,
            "prices": total,
            "calls": {src.api(): calls},
        });
        println!("{summary}");
        return;
    }
    println!(
        "wrote {}: {} {} prices of {}",
        output.display(),
        src.provider().display_name,
        src.kind(),
        table.date()
    );
    let mut kinds: Vec<&String> = counts.values().flat_map(|c| c.keys()).collect();
    kinds.sort();
    kinds.dedup();
    let mut header: Vec<&str> = vec!["region"];
    header.extend(kinds.iter().map(|k| k.as_str()));
    header.push("total");
    let mut t = new_table(&header);
    for (region, c) in &counts {
        let mut row = vec![region.clone()];
        row.extend(
            kinds
                .iter()
                .map(|k| c.get(*k).copied().unwrap_or(0).to_string()),
        );
        row.push(c.values().sum::<usize>().to_string());
        t.add_row(row);
    }
    align_numbers(&mut t, 1..header.len());
    println!("{t}");
    println!("{} calls: {calls}", src.api());
}
