//! Running the router: listen (plain or TLS), serve HTTP/1.1 connections with hyper and its
//! header limits, enforce retention in the background, and shut down gracefully.

use crate::config::{ServerConfig, ServerError, TlsFiles};
use crate::routes::router_with_state;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use skymeter_store::Store;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often retention runs when configured.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// A server that is listening but not yet serving: [`Server::local_addr`] tells the port
/// when the config asked for port 0.
pub struct Server {
    config: ServerConfig,
    store: Arc<dyn Store>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    state: crate::state::AppState,
}

impl Server {
    /// Validates the config, loads the TLS files and binds the address.
    pub async fn bind(config: ServerConfig, store: Arc<dyn Store>) -> Result<Server, ServerError> {
        config.validate()?;
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    listen: config.listen,
                    source,
                })?;
        let (app, state) = router_with_state(&config, store.clone());
        Ok(Server {
            config,
            store,
            listener,
            tls,
            app,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish (up to `shutdown_grace`), and flushes the store.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let Server {
            config,
            store,
            listener,
            tls,
            app,
            state,
        } = self;
        let rating = state.rating.clone();
        let addr = listener.local_addr().ok();
        tracing::info!(
            listen = ?addr,
            tls = tls.is_some(),
            auth = ?config.auth,
            "server listening"
        );
        let retention = config
            .retention
            .map(|keep| tokio::spawn(enforce_retention(store.clone(), keep)));
        let rating = rating.map(|r| tokio::spawn(crate::rating::run(r, store.clone())));
        let savings = tokio::spawn(crate::savings::run(state.savings.clone(), store.clone()));
        let (stop_consuming, stop) = tokio::sync::watch::channel(false);
        let consumer = config
            .consume
            .clone()
            .map(|c| tokio::spawn(crate::consume::run(state.clone(), c, stop)));

        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_headers(config.max_headers)
            .max_header_size(config.max_header_bytes)
            .keep_alive(true);
        let http = Arc::new(http);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone());
            let http = http.clone();
            let watcher = graceful.watcher();
            let tls = tls.clone();
            tokio::spawn(async move {
                let result = match tls {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(tcp), service);
                        watcher.watch(conn).await
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down: finishing requests in flight");
        // The consumer takes no more messages; the batches it is storing finish and are
        // acknowledged (one cut off by the grace period is not, and is delivered again).
        let _ = stop_consuming.send(true);
        let consumed = async {
            if let Some(c) = consumer {
                let _ = c.await;
            }
        };
        tokio::select! {
            ((), ()) = async { tokio::join!(graceful.shutdown(), consumed) } => {}
            () = tokio::time::sleep(config.shutdown_grace) => {
                tracing::warn!(
                    grace = %humantime::format_duration(config.shutdown_grace),
                    "requests still in flight at the end of the shutdown grace period were cut off"
                );
            }
        }
        if let Some(r) = retention {
            r.abort();
        }
        // A round in progress finishes on its blocking thread (its series batch is stored
        // whole or not at all; an event not yet posted is posted by the next start).
        savings.abort();
        if let Some(r) = rating {
            // A round in progress finishes on its blocking thread; its period is stored
            // whole or not at all, and the next start resumes from the saved progress.
            r.abort();
        }
        let flushed = tokio::task::spawn_blocking(move || store.flush()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "flushing the store at shutdown failed"),
            Err(e) => tracing::error!(error = %e, "flushing the store at shutdown failed"),
        }
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Binds and serves until `shutdown` completes. See [`Server`] to learn the bound port
/// before serving.
pub async fn serve(
    config: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    Server::bind(config, store).await?.run(shutdown).await
}

/// Deletes data older than `keep`, now and every hour.
async fn enforce_retention(store: Arc<dyn Store>, keep: Duration) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let Ok(keep) = chrono::Duration::from_std(keep) else {
        tracing::error!("retention period is too long; retention is off");
        return;
    };
    loop {
        every.tick().await;
        let before = chrono::Utc::now() - keep;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.enforce_retention(before)).await {
            Ok(Ok(r)) => tracing::info!(
                before = %before.to_rfc3339(),
                points = r.points,
                costs = r.costs,
                resources = r.resources,
                "retention enforced"
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "retention failed; will try again in an hour")
            }
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
    }
}

fn load_tls(files: &TlsFiles) -> Result<TlsAcceptor, ServerError> {
    let cert_err = |message: String| ServerError::TlsCert {
        path: files.cert.clone(),
        message,
    };
    let key_err = |message: String| ServerError::TlsKey {
        path: files.key.clone(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_err(pem_message(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(pem_message(e)))?;
    if certs.is_empty() {
        return Err(cert_err(
            "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => key_err(
            "holds no PEM private key (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
             `EC PRIVATE KEY`)"
                .into(),
        ),
        other => key_err(pem_message(other)),
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls {
            cert: files.cert.clone(),
            key: files.key.clone(),
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls {
            cert: files.cert.clone(),
            key: files.key.clone(),
            message: format!("the key does not fit the certificate or is unusable: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn pem_message(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => format!("cannot be read: {io}"),
        rustls_pki_types::pem::Error::NoItemsFound => "holds no PEM item".into(),
        other => format!("is not valid PEM: {other:?}"),
    }
}
