//! The real server on 127.0.0.1:0 over a [`MemStore`], for the server's tests and
//! examples.

use crate::memstore::MemStore;
use skymeter_server::{Server, ServerConfig};
use skymeter_store::{Scope, Store, StoreStats};
use std::sync::Arc;

/// A server running on 127.0.0.1:0 until dropped.
pub struct TestServer {
    pub url: String,
    pub store: Arc<MemStore>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<Result<(), skymeter_server::ServerError>>>,
}

impl TestServer {
    pub async fn start(mut config: ServerConfig) -> TestServer {
        TestServer::start_with(&mut config, MemStore::new()).await
    }

    pub async fn start_with(config: &mut ServerConfig, store: Arc<MemStore>) -> TestServer {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let server = Server::bind(config.clone(), store.clone()).await.unwrap();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer {
            url,
            store,
            client: reqwest::Client::builder().no_gzip().build().unwrap(),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// `GET <url><path>`, with `Authorization: Bearer <token>` when a token is given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub fn token(&self, scopes: &[Scope]) -> String {
        self.store.create_token("test", scopes).unwrap().0
    }

    pub fn stats(&self) -> StoreStats {
        self.store.stats().unwrap()
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
