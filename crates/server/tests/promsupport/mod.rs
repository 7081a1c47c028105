//! A real server over a real embedded store in a temporary directory, for the tests of the
//! Prometheus-compatible API; batches go in through `POST /api/v1/ingest`.

#![allow(dead_code)]

use serde_json::Value;
use skymeter_model::Batch;
use skymeter_server::{Auth, Server, ServerConfig};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Scope, Store};
use std::sync::Arc;

pub struct Sky {
    pub url: String,
    /// A token with ingest and read scopes (also sent when auth is disabled).
    pub token: String,
    pub client: reqwest::Client,
    pub store: Arc<EmbeddedStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), skymeter_server::ServerError>>>,
    _dir: tempfile::TempDir,
}

impl Sky {
    pub async fn start(auth: Auth) -> Sky {
        Sky::start_with(ServerConfig {
            auth,
            ..Default::default()
        })
        .await
    }

    /// A server with `config` (its `listen` is replaced by 127.0.0.1 and a free port).
    pub async fn start_with(config: ServerConfig) -> Sky {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = EmbeddedOptions::new(dir.path());
        opts.background = false;
        let store = Arc::new(EmbeddedStore::open(opts).unwrap());
        let (token, _) = store
            .create_token("test", &[Scope::Ingest, Scope::Read])
            .unwrap();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        };
        let server = Server::bind(config, store.clone()).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Sky {
            url,
            token,
            client: reqwest::Client::new(),
            store,
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn ingest(&self, b: &Batch) {
        let resp = self
            .client
            .post(format!("{}/api/v1/ingest", self.url))
            .bearer_auth(&self.token)
            .json(b)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(status, 200, "ingest: {}", resp.text().await.unwrap());
    }

    /// `GET <url><path_and_query>` with the token: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
        (status, v)
    }

    /// `GET` with the parameters URL-encoded.
    pub async fn get_params(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let q = serde_urlencoded::to_string(params).unwrap();
        self.get(&format!("{path}?{q}")).await
    }

    /// `POST` with an `application/x-www-form-urlencoded` body.
    pub async fn post_form(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .form(params)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for Sky {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
