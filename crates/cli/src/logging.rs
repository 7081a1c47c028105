use crate::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

/// Logs go to stderr so that stdout stays clean for records. The agent (`run`) logs at
/// info; one-shot commands at warn, so their output is just the answer.
pub fn init(cli: &Cli) {
    let base = match (&cli.command, cli.quiet, cli.verbose) {
        (_, true, _) => "error",
        (_, _, 1) => "debug",
        (_, _, v) if v >= 2 => "trace",
        (Command::Run(_) | Command::Server(_) | Command::Up(_), _, _) => "info",
        _ => "warn",
    };
    let filter = std::env::var("SKYMETER_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{base},hyper=warn,reqwest=warn,rustls=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}
