use crate::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

/// The filter when `SKYMETER_LOG` is not set: `base` for skymeter, and the cloud SDKs'
/// own chatter (the AWS SDK warns about every IMDS probe on a machine without credentials,
/// with debug structs, before skymeter's one clear error) only with `-v`.
fn default_filter(base: &str) -> String {
    let sdk = match base {
        "debug" | "trace" => base,
        _ => "error",
    };
    format!(
        "{base},hyper=warn,reqwest=warn,rustls=warn,aws_config={sdk},aws_runtime={sdk},aws_smithy_runtime={sdk},\
         aws_smithy_runtime_api={sdk},aws_sdk_sts={sdk},aws_sdk_sso={sdk},aws_sdk_ssooidc={sdk},\
         azure_identity={sdk},azure_core={sdk},gcp_auth={sdk}"
    )
}

/// Logs go to stderr so that stdout stays clean for records. The agent (`run`) logs at
/// info; one-shot commands at warn, so their output is just the answer.
pub fn init(cli: &Cli) {
    let base = match (&cli.command, cli.quiet, cli.verbose) {
        (_, true, _) => "error",
        (_, _, 1) => "debug",
        (_, _, v) if v >= 2 => "trace",
        (
            Command::Run(_) | Command::Server(_) | Command::Up(_) | Command::CloudforetPlugin(_),
            _,
            _,
        ) => "info",
        _ => "warn",
    };
    let filter = std::env::var("SKYMETER_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter(base)));
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
