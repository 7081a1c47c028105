//! `skymeter cloudforet-plugin`: serves Cloudforet's inventory collector protocol (gRPC)
//! over a skymeter server (the `skymeter-cloudforet` crate does the work).

use crate::output::{shutdown_signal, FAILURE, USAGE};
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CloudforetPluginArgs {
    /// Address the gRPC service listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
    pub listen: std::net::SocketAddr,
    /// The skymeter server to read, when a request's secret_data has no `skymeter_url`.
    #[arg(long, value_name = "URL", env = "SKYMETER_SERVER")]
    pub server: Option<String>,
    /// A token with the `read` scope, when a request's secret_data has no `token`.
    #[arg(long, env = "SKYMETER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn cloudforet_plugin(args: CloudforetPluginArgs) -> ExitCode {
    if let Some(s) = &args.server {
        let ok = reqwest::Url::parse(s)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !ok {
            eprintln!(
                "error: --server `{s}` is not an http(s) URL; write e.g. http://127.0.0.1:8080"
            );
            return ExitCode::from(USAGE);
        }
    }
    let config = skymeter_cloudforet::Config {
        listen: args.listen,
        server: args.server,
        token: args.token.filter(|t| !t.is_empty()),
    };
    match skymeter_cloudforet::serve(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(FAILURE)
        }
    }
}
