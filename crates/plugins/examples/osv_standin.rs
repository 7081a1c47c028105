//! A local stand-in of an OSv unikernel's REST API, to try the `osv` collector without OSv:
//!
//! ```sh
//! cargo run -p skymeter-plugins --no-default-features --features standin --example osv_standin -- --listen 127.0.0.1:8000
//! skymeter collect osv --set url=http://127.0.0.1:8000
//! ```
//!
//! Serves `/os/{name,version,vendor,hostname,uptime}`, `/os/memory/{free,total}` and
//! `/trace/count` in OSv's answer shapes, with values that move like a running instance.
//! `--count NAME` turns counting of a trace point on from the start (repeatable; the
//! collector also turns on those a task selects). Runs until interrupted.

use skymeter_plugins::collectors::osv::standin::OsvStandin;

fn usage() -> ! {
    eprintln!("usage: osv_standin [--listen ADDR:PORT] [--count TRACEPOINT]...  (default --listen 127.0.0.1:8000)");
    std::process::exit(2)
}

fn main() {
    let mut listen = "127.0.0.1:8000".to_string();
    let mut counted = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            "--count" => counted.push(args.next().unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument `{other}`");
                usage()
            }
        }
    }
    let standin = match OsvStandin::bind(&listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on {listen}: {e}");
            std::process::exit(1)
        }
    };
    for name in &counted {
        standin.enable(name);
    }
    println!("OSv REST API stand-in on {}", standin.url);
    println!("try: skymeter collect osv --set url={}", standin.url);
    loop {
        std::thread::park();
    }
}
