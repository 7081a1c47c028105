//! `skymeter gcp prices …` and `skymeter azure prices …`, and what every `prices` command
//! shares (progress line, atomic write, table layout).

use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// One line on stderr rewritten in place while pages arrive, only when stderr is a terminal:
/// logs and pipes get the summary alone.
pub struct Progress {
    on: bool,
    noun: &'static str,
}

impl Progress {
    /// `noun` names what is counted (`products`, `SKUs`, `prices`).
    pub fn new(noun: &'static str) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            noun,
        }
    }

    pub fn update(&self, what: &str, n: u64) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2Kreading prices: {what}: {n} {}", self.noun);
            let _ = err.flush();
        }
    }

    pub fn finish(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`, so that a
/// reader never sees half a table.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prices.json".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// A price as written in the table, without float noise or trailing zeros: 0.0000166667,
/// 0.096, 19.71.
pub fn format_usd(v: f64) -> String {
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}

pub fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

pub fn align_numbers(t: &mut Table, columns: std::ops::Range<usize>) {
    for i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

#[cfg(any(feature = "gcp", feature = "azure"))]
mod flat {
    use super::*;
    use crate::cli::{CloudPricesShowArgs, OutputFormat};
    use crate::commands::{FAILURE, USAGE};
    use skymeter_plugins::common::api_calls::ApiCallCounts;
    use skymeter_plugins::common::price_list::{Cloud, PriceList};
    use std::process::ExitCode;

    /// What differs between the clouds' `prices` commands.
    pub struct Tables {
        pub cloud: Cloud,
        pub shipped: &'static str,
        /// "on-demand", "pay-as-you-go".
        pub kind: &'static str,
        /// The API calls counted while reading (self-accounting name).
        pub api: &'static str,
        pub example_region: &'static str,
    }

    impl Tables {
        pub fn load(&self, explicit: Option<&Path>, data_dir: &Path) -> Result<PriceList, String> {
            PriceList::load(self.cloud, explicit, data_dir, self.shipped).map_err(|e| e.to_string())
        }

        /// The regions to read: those asked, else those of the table in use.
        pub fn regions(&self, asked: &[String], data_dir: &Path) -> Result<Vec<String>, ExitCode> {
            let mut regions: Vec<String> = Vec::new();
            if asked.is_empty() {
                match self.load(None, data_dir) {
                    Ok(t) => regions.extend(t.regions.keys().cloned()),
                    Err(e) => {
                        eprintln!("error: {e}; pass --regions to choose the regions instead");
                        return Err(ExitCode::from(USAGE));
                    }
                }
            } else {
                for r in asked {
                    if !regions.contains(r) {
                        regions.push(r.clone());
                    }
                }
            }
            if regions.is_empty() {
                eprintln!(
                    "error: the price table in use has no region; pass --regions, e.g. --regions {}",
                    self.example_region
                );
                return Err(ExitCode::from(USAGE));
            }
            Ok(regions)
        }

        /// Writes the fetched table and prints the summary.
        pub fn finish_update(
            &self,
            fetched: Result<PriceList, skymeter_plugin::PluginError>,
            output: &Path,
            calls: &ApiCallCounts,
            format: OutputFormat,
        ) -> ExitCode {
            let n = calls.get(self.api);
            let table = match fetched {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    eprintln!("nothing was written; {n} {} call(s) made", self.api);
                    return ExitCode::from(FAILURE);
                }
            };
            if let Err(e) = write_atomically(output, &table.to_json()) {
                eprintln!(
                    "error: cannot write the price table to {}: {e}",
                    output.display()
                );
                return ExitCode::from(FAILURE);
            }
            let counts = table.counts();
            let empty: Vec<&String> = counts
                .iter()
                .filter(|(_, c)| c.is_empty())
                .map(|(r, _)| r)
                .collect();
            match format {
                OutputFormat::Json => {
                    let summary = serde_json::json!({
                        "output": output.display().to_string(),
                        "date": table.date,
                        "source": table.source,
                        "regions": counts,
                        "prices": table.len(),
                        "calls": {self.api: n},
                    });
                    println!("{summary}");
                }
                OutputFormat::Table => {
                    println!(
                        "wrote {}: {} {} prices of {}",
                        output.display(),
                        self.cloud.display,
                        self.kind,
                        table.date
                    );
                    let kinds: std::collections::BTreeSet<&String> =
                        counts.values().flat_map(|c| c.keys()).collect();
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
                    println!("{} calls: {n}", self.api);
                }
            }
            for r in empty {
                eprintln!(
                    "warning: no price found for region {r}: is it a {} region name?",
                    self.cloud.display
                );
            }
            ExitCode::SUCCESS
        }

        pub fn show(&self, args: CloudPricesShowArgs) -> ExitCode {
            let mut table = match self.load(args.prices.as_deref(), &args.data_dir) {
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
                        "error: the {} price table of {} has no prices for {r} (it has: {}); run `skymeter {} prices update --regions {r}`",
                        self.cloud.display,
                        table.date,
                        have.join(", "),
                        self.cloud.id
                    );
                    return ExitCode::from(FAILURE);
                }
                table.regions.retain(|k, _| k == r);
            }
            match args.format {
                OutputFormat::Json => print!("{}", table.to_json()),
                OutputFormat::Table => {
                    println!(
                        "{} {} prices of {} ({})",
                        self.cloud.display, self.kind, table.date, table.currency
                    );
                    println!("source: {}", table.source);
                    let mut t = new_table(&["region", "price", "USD", "per"]);
                    for (region, prices) in &table.regions {
                        for (key, p) in prices {
                            t.add_row(vec![
                                region.clone(),
                                key.clone(),
                                format_usd(p.usd),
                                p.per.clone(),
                            ]);
                        }
                    }
                    align_numbers(&mut t, 2..3);
                    println!("{t}");
                }
            }
            ExitCode::SUCCESS
        }
    }

    /// Today, as the date of a fetched table.
    pub fn today() -> String {
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    }
}

#[cfg(feature = "gcp")]
pub async fn gcp(cmd: crate::cli::GcpPricesCommand) -> std::process::ExitCode {
    use crate::cli::GcpPricesCommand;
    use skymeter_plugins::collectors::gcp::prices;
    let tables = flat::Tables {
        cloud: prices::CLOUD,
        shipped: prices::SHIPPED,
        kind: "on-demand",
        api: prices::SKUS.api,
        example_region: "us-central1",
    };
    match cmd {
        GcpPricesCommand::Show(a) => tables.show(a),
        GcpPricesCommand::Update(a) => {
            let regions = match tables.regions(&a.regions, &a.data_dir) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let output = a
                .output
                .clone()
                .unwrap_or_else(|| prices::CLOUD.default_path(&a.data_dir));
            let calls =
                std::sync::Arc::new(skymeter_plugins::common::api_calls::ApiCallCounts::default());
            let progress = Progress::new("SKUs");
            let fetched = prices::fetch_with(
                a.credentials_file.as_deref(),
                a.endpoint_url.as_deref(),
                &regions,
                &flat::today(),
                calls.clone(),
                &|what, n| progress.update(what, n),
            )
            .await;
            progress.finish();
            tables.finish_update(fetched, &output, &calls, a.format)
        }
    }
}

#[cfg(feature = "azure")]
pub async fn azure(cmd: crate::cli::AzurePricesCommand) -> std::process::ExitCode {
    use crate::cli::AzurePricesCommand;
    use skymeter_plugins::collectors::azure::prices;
    let tables = flat::Tables {
        cloud: prices::CLOUD,
        shipped: prices::SHIPPED,
        kind: "pay-as-you-go",
        api: prices::RETAIL_PRICES,
        example_region: "westeurope",
    };
    match cmd {
        AzurePricesCommand::Show(a) => tables.show(a),
        AzurePricesCommand::Update(a) => {
            let regions = match tables.regions(&a.regions, &a.data_dir) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let output = a
                .output
                .clone()
                .unwrap_or_else(|| prices::CLOUD.default_path(&a.data_dir));
            let calls = skymeter_plugins::common::api_calls::ApiCallCounts::default();
            let progress = Progress::new("price items");
            let fetched = prices::fetch(
                &a.endpoint_url,
                a.ca_file.as_deref(),
                &regions,
                &flat::today(),
                &calls,
                &|what, n| progress.update(what, n),
            )
            .await;
            progress.finish();
            tables.finish_update(fetched, &output, &calls, a.format)
        }
    }
}
