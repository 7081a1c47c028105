//! `skymeter aws …`: the price tables behind the aws collector's estimated costs.

use crate::cli::{AwsCommand, OutputFormat, PricesCommand, PricesShowArgs, PricesUpdateArgs};
use crate::commands::{FAILURE, USAGE};
use crate::prices::{align_numbers, format_usd, new_table, write_atomically, Progress};
use skymeter_plugins::collectors::aws::calls::ApiCalls;
use skymeter_plugins::collectors::aws::pricing::{
    default_path, fetch_price_list, sdk_config, PriceTable, RegionPrices,
};
use std::process::ExitCode;

pub async fn dispatch(cmd: AwsCommand) -> ExitCode {
    match cmd {
        AwsCommand::Prices(PricesCommand::Update(a)) => update(a).await,
        AwsCommand::Prices(PricesCommand::Show(a)) => show(a),
    }
}

async fn update(args: PricesUpdateArgs) -> ExitCode {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_path(&args.data_dir));
    let mut regions: Vec<String> = Vec::new();
    if args.regions.is_empty() {
        match PriceTable::load(None, &args.data_dir) {
            Ok(t) => regions.extend(t.regions.keys().cloned()),
            Err(e) => {
                eprintln!("error: {e}; pass --regions to choose the regions instead");
                return ExitCode::from(USAGE);
            }
        }
    } else {
        for r in &args.regions {
            if !regions.contains(r) {
                regions.push(r.clone());
            }
        }
    }
    if regions.is_empty() {
        eprintln!(
            "error: the price table in use has no region; pass --regions, e.g. --regions us-east-1"
        );
        return ExitCode::from(USAGE);
    }
    let sdk = sdk_config(args.profile.as_deref(), args.endpoint_url.as_deref()).await;
    let calls = ApiCalls::default();
    let progress = Progress::new("products");
    let fetched =
        fetch_price_list(&sdk, &regions, &calls, &|what, n| progress.update(what, n)).await;
    progress.finish();
    let table = match fetched {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "nothing was written; {} pricing:GetProducts call(s) made",
                calls.get("pricing:GetProducts")
            );
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
    let call_count = calls.get("pricing:GetProducts");
    match args.format {
        OutputFormat::Json => {
            let regions: serde_json::Map<String, serde_json::Value> = table
                .regions
                .iter()
                .map(|(r, p)| {
                    (
                        r.clone(),
                        serde_json::to_value(p.counts()).unwrap_or_default(),
                    )
                })
                .collect();
            let summary = serde_json::json!({
                "output": output.display().to_string(),
                "date": table.date,
                "source": table.source,
                "regions": regions,
                "prices": table.counts().total(),
                "calls": {"pricing:GetProducts": call_count},
            });
            println!("{summary}");
        }
        OutputFormat::Table => {
            println!(
                "wrote {}: AWS on-demand prices of {}",
                output.display(),
                table.date
            );
            let mut t = new_table(&[
                "region", "ec2", "ebs", "rds", "lambda", "s3", "eks", "total",
            ]);
            for (region, p) in &table.regions {
                let c = p.counts();
                t.add_row(vec![
                    region.clone(),
                    c.ec2.to_string(),
                    c.ebs.to_string(),
                    c.rds.to_string(),
                    c.lambda.to_string(),
                    c.s3.to_string(),
                    c.eks.to_string(),
                    c.total().to_string(),
                ]);
            }
            align_numbers(&mut t, 1..8);
            println!("{t}");
            println!("pricing:GetProducts calls: {call_count}");
        }
    }
    ExitCode::SUCCESS
}

fn show(args: PricesShowArgs) -> ExitCode {
    let mut table = match PriceTable::load(args.prices.as_deref(), &args.data_dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if let Some(r) = &args.region {
        if !table.regions.contains_key(r) {
            let have: Vec<&str> = table.regions.keys().map(String::as_str).collect();
            eprintln!(
                "error: the price table of {} has no prices for {r} (it has: {}); run `skymeter aws prices update --regions {r}`",
                table.date,
                have.join(", ")
            );
            return ExitCode::from(FAILURE);
        }
        table.regions.retain(|k, _| k == r);
    }
    match args.format {
        OutputFormat::Json => print!("{}", table.to_json()),
        OutputFormat::Table => {
            println!(
                "AWS on-demand prices of {} ({})",
                table.date, table.currency
            );
            println!("source: {}", table.source);
            let mut t = new_table(&["region", "price", "USD", "per"]);
            for (region, p) in &table.regions {
                for (key, usd, unit) in rows(p) {
                    t.add_row(vec![region.clone(), key, format_usd(usd), unit.to_string()]);
                }
            }
            align_numbers(&mut t, 2..3);
            println!("{t}");
        }
    }
    ExitCode::SUCCESS
}

/// Every price of a region as (key, USD, unit), in the estimator's key form.
fn rows(p: &RegionPrices) -> Vec<(String, f64, &'static str)> {
    let mut out = Vec::new();
    for (ty, oses) in &p.ec2 {
        for (os, v) in oses {
            out.push((format!("ec2/{ty}/{os}"), *v, "hour"));
        }
    }
    for (ty, v) in &p.ebs.storage_gb_month {
        out.push((format!("ebs/{ty}/storage"), *v, "GB-month"));
    }
    for (ty, tiers) in &p.ebs.iops_month {
        for t in tiers {
            let key = if t.from == 0 {
                format!("ebs/{ty}/iops")
            } else {
                format!("ebs/{ty}/iops from {}", t.from)
            };
            out.push((key, t.usd, "IOPS-month"));
        }
    }
    for (ty, v) in &p.ebs.throughput_mibps_month {
        out.push((format!("ebs/{ty}/throughput"), *v, "MiB/s-month"));
    }
    for (class, engines) in &p.rds.instance_hour {
        for (engine, d) in engines {
            for (dep, v) in [("single_az", d.single_az), ("multi_az", d.multi_az)] {
                if let Some(v) = v {
                    out.push((format!("rds/{class}/{engine}/{dep}"), v, "hour"));
                }
            }
        }
    }
    for (ty, d) in &p.rds.storage_gb_month {
        for (dep, v) in [("single_az", d.single_az), ("multi_az", d.multi_az)] {
            if let Some(v) = v {
                out.push((format!("rds/storage/{ty}/{dep}"), v, "GB-month"));
            }
        }
    }
    for (arch, v) in &p.lambda.gb_second {
        out.push((format!("lambda/{arch}/gb_second"), *v, "GB-second"));
    }
    for (arch, v) in &p.lambda.request {
        out.push((format!("lambda/{arch}/request"), *v, "request"));
    }
    if let Some(v) = p.s3.standard_gb_month {
        out.push(("s3/standard".into(), v, "GB-month"));
    }
    if let Some(v) = p.eks.cluster_hour {
        out.push(("eks/cluster".into(), v, "hour"));
    }
    out
}
