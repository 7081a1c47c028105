//! `skymeter`'s command line: argument parsing and wiring only. Everything it does lives in
//! the library crates; this crate turns their results into output and exit codes: 0 ok,
//! 2 usage or config error, 1 runtime failure.
//!
//! It is a library so that a build (or a test) can run the command line over its own plugin
//! registry: [`main_with`] knows no plugin or cloud by name.

mod agent;
mod agent_api;
mod budgets;
mod cli;
mod cloudforet;
mod commands;
mod costs;
mod findings;
mod logging;
mod output;
mod prices;
mod query;
mod rating;
mod remote;
mod scaleout;
mod serve;
mod tasks;

use clap::{CommandFactory, FromArgMatches};
use skymeter_plugin_api::Registry;
use std::process::ExitCode;

/// Runs the command line of this process with `registry`'s plugins.
pub fn main_with(registry: Registry) -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    prices::rewrite_old_spelling(&mut argv, &registry);
    let command = cli::Cli::command().mut_subcommand("prices", |c| prices::augment(c, &registry));
    let args = match command
        .try_get_matches_from(argv)
        .and_then(|m| cli::Cli::from_arg_matches(&m))
    {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    logging::init(&args);
    if args.command.only_prints() {
        restore_sigpipe();
    }
    // A server's store calls block (the embedded store's files, PostgreSQL in scale-out
    // mode) and run on the blocking pool, one per request in flight: more of them than an
    // agent needs. Idle blocking threads end after ten seconds.
    let blocking_threads = if matches!(args.command, cli::Command::Server(_)) {
        32
    } else {
        4
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Collection is I/O bound; two workers keep the agent's footprint small.
        .worker_threads(2)
        .max_blocking_threads(blocking_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(output::FAILURE);
        }
    };
    let code = runtime.block_on(commands::dispatch(args, registry));
    // Do not wait for stray blocking work (a hung read of a network filesystem).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// `skymeter metrics | head` must end quietly when `head` closes the pipe, as `ls` does:
/// Rust ignores SIGPIPE, which turns every later `println!` into a panic with a backtrace.
/// No std or clap API restores the default, hence libc. Only for commands that print and
/// exit: an agent or a server must survive a peer (an `exec` child) closing a pipe.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; setting a signal's
    // disposition to SIG_DFL has no other precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
