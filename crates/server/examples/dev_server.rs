//! The server on an in-memory store with some sample data, authentication off, on
//! 127.0.0.1 (port from the first argument, default 8080): for trying the API and the
//! docs page without the embedded store. Ctrl-C stops it.
//!
//! `cargo run -p skymeter-server --example dev_server -- 8080`, then open
//! http://127.0.0.1:8080/api/docs

use skymeter_model::Stat;
use skymeter_server::{serve, Auth, ServerConfig};
use skymeter_store::Store;
use skymeter_testkit::memstore::MemStore;
use skymeter_testkit::records::{batch, host, point};

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let store = MemStore::new();
    let mut b = batch(60);
    let r = host("h1");
    let now = chrono::Utc::now();
    b.points
        .push(point("cpu.utilization", Stat::Max, now, 93.0, &r));
    store.ingest(&b).expect("sample data");
    let config = ServerConfig {
        listen: ([127, 0, 0, 1], port).into(),
        auth: Auth::Disabled,
        ..Default::default()
    };
    println!("serving on http://127.0.0.1:{port} (docs: /api/docs)");
    serve(config, store, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .expect("server");
}
