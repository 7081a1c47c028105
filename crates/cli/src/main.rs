//! `skymeter`: argument parsing and wiring only. Everything it does lives in the library
//! crates; this file turns their results into output and exit codes:
//! 0 ok, 2 usage or config error, 1 runtime failure.

#[cfg(feature = "aws")]
mod aws;
mod cli;
mod commands;
mod logging;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
mod prices;
mod query;
mod serve;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    logging::init(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Collection is I/O bound; two workers keep the agent's footprint small.
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(commands::dispatch(args));
    // Do not wait for stray blocking work (a hung read of a network filesystem).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
