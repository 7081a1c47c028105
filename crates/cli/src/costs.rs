//! `skymeter costs export`: the server's cost lines as a FinOps FOCUS 1.2 file, CSV or
//! Parquet, through `GET /api/v1/costs/export`, written as it arrives (any size, flat
//! memory). To a file (`-o`), first as `FILE.part` and renamed when complete, so a failed
//! export never leaves a file that looks whole; or to standard output.
//!
//! Exit codes: 0 written; 2 the arguments are wrong (here or as the server says: 400);
//! 1 anything else (server unreachable, auth, the transfer broke off).

use crate::output::{FAILURE, USAGE};
use clap::{Args, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum CostsCommand {
    /// Export the server's cost lines as a FinOps FOCUS 1.2 file (CSV or Parquet): every
    /// FOCUS 1.2 mandatory column, the conditional ones skymeter knows, and skymeter's
    /// own as `x_` columns (see docs/focus.md).
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    Billed,
    Estimated,
    Rated,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub server: crate::remote::ServerOpts,
    /// File format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// Lines whose charge period starts at or after this time: RFC 3339, Unix seconds,
    /// `now`, or relative to now (`-30d`) [default: no lower bound].
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Lines whose charge period starts before this time, in the forms of --start
    /// [default: no upper bound].
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Only lines of this source [default: all].
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    /// Only this provider's lines (`aws`, or its name `Amazon Web Services`).
    #[arg(long)]
    pub provider: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn costs(c: CostsCommand) -> ExitCode {
    match c {
        CostsCommand::Export(a) => export(a).await,
    }
}

async fn export(args: ExportArgs) -> ExitCode {
    let format = match args.format {
        ExportFormat::Csv => "csv",
        ExportFormat::Parquet => "parquet",
    };
    if args.output.is_none()
        && args.format == ExportFormat::Parquet
        && std::io::stdout().is_terminal()
    {
        eprintln!("error: Parquet is binary; write it to a file with -o FILE (or redirect standard output)");
        return ExitCode::from(USAGE);
    }
    let mut params: Vec<(&str, String)> = vec![("format", format.into())];
    for (name, v) in [
        ("start", &args.start),
        ("end", &args.end),
        ("provider", &args.provider),
    ] {
        if let Some(v) = v {
            params.push((name, v.clone()));
        }
    }
    if let Some(s) = args.source {
        let s = match s {
            Source::Billed => "billed",
            Source::Estimated => "estimated",
            Source::Rated => "rated",
        };
        params.push(("source", s.into()));
    }
    let url = format!(
        "{}/api/v1/costs/export",
        args.server.server.trim_end_matches('/')
    );
    // No overall timeout: an export of millions of lines takes as long as it takes.
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build an HTTP client: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    let mut req = client.get(&url).query(&params);
    if let Some(t) = &args.server.token {
        req = req.bearer_auth(t);
    }
    let started = Instant::now();
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: GET {url}: {e}; is the server running there? (--server or SKYMETER_SERVER)"
            );
            return ExitCode::from(FAILURE);
        }
    };
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        eprintln!("error: GET {url}: {status}: {message}");
        if status == 401 || status == 403 {
            eprintln!("give a token with the `read` scope: --token or SKYMETER_TOKEN");
        }
        return ExitCode::from(if status == 400 { USAGE } else { FAILURE });
    }

    let (mut out, part): (Box<dyn Write>, Option<PathBuf>) = match &args.output {
        None => (Box::new(std::io::stdout().lock()), None),
        Some(path) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".part");
            let part = PathBuf::from(name);
            match std::fs::File::create(&part) {
                Ok(f) => (Box::new(std::io::BufWriter::new(f)), Some(part)),
                Err(e) => {
                    eprintln!("error: cannot create {}: {e}", part.display());
                    return ExitCode::from(FAILURE);
                }
            }
        }
    };
    let progress = args.output.is_some() && std::io::stderr().is_terminal();
    let mut bytes = 0u64;
    let mut shown = Instant::now();
    let fail = |part: &Option<PathBuf>, msg: String| {
        eprintln!("error: {msg}");
        if let Some(p) = part {
            let _ = std::fs::remove_file(p);
        }
        ExitCode::from(FAILURE)
    };
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(e) = out.write_all(&chunk) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return ExitCode::SUCCESS;
                    }
                    return fail(&part, format!("writing the export: {e}"));
                }
                bytes += chunk.len() as u64;
                if progress && shown.elapsed() >= Duration::from_secs(1) {
                    eprint!("\r{:.1} MiB…", bytes as f64 / (1024.0 * 1024.0));
                    shown = Instant::now();
                }
            }
            Ok(None) => break,
            Err(e) => {
                return fail(
                    &part,
                    format!("the export broke off after {bytes} bytes ({e}); the server's log says why; try again"),
                )
            }
        }
    }
    if let Err(e) = out.flush() {
        return fail(&part, format!("writing the export: {e}"));
    }
    drop(out);
    if let (Some(part), Some(path)) = (&part, &args.output) {
        if let Err(e) = std::fs::rename(part, path) {
            return fail(
                &Some(part.clone()),
                format!("renaming {} to {}: {e}", part.display(), path.display()),
            );
        }
        if progress {
            eprint!("\r");
        }
        eprintln!(
            "exported {:.1} MiB of FOCUS 1.2 {format} to {} in {:.1}s",
            bytes as f64 / (1024.0 * 1024.0),
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}
