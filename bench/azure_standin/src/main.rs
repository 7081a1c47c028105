//! `skymeter-azure-standin --vms N [--latency-ms L] [--region R]`: serves the Azure APIs the
//! azure collector calls (the same code as its tests' stand-in,
//! crates/plugins/src/collectors/azure/standin.rs) on 127.0.0.1 and prints where, one
//! `key value` per line (`arm`, `login`, `metrics`, `ca`), then `ready`. `GET {arm}/_stats` answers the call counts. Stops on Ctrl-C / SIGINT.

use skymeter_plugins::collectors::azure::standin::{Mock, Spec};

fn main() {
    let mut spec = Spec {
        vms: 5000,
        page_size: 1000,
        others: false,
        ..Spec::default()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--vms" => spec.vms = value.parse().expect("--vms N"),
            "--latency-ms" => spec.latency_ms = value.parse().expect("--latency-ms L"),
            "--region" => spec.region = value,
            "--page-size" => spec.page_size = value.parse().expect("--page-size N"),
            other => {
                eprintln!(
                    "unknown argument {other}; use --vms N --latency-ms L --region R --page-size N"
                );
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let m = Mock::start(spec).await;
        println!("arm {}", m.arm);
        println!("login {}", m.login);
        println!("metrics {}", m.metrics_endpoint());
        println!("ca {}", m.ca_file.display());
        println!("ready");
        let _ = tokio::signal::ctrl_c().await;
    });
}
