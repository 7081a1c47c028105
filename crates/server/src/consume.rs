//! `skymeter server --consume nats://…`: batches from a NATS JetStream stream, taken
//! through a durable pull consumer that every server of a deployment shares (JetStream hands
//! each message to one of them), and stored through the very path of `POST /api/v1/ingest`
//! ([`crate::handlers::ingest::ingest_raw`]).
//!
//! A message is acknowledged only once its batch is durable (stored, or a duplicate of a
//! stored batch). A batch that can never be stored (not a batch, invalid, a conflicting
//! reuse of a batch id, over the size limit) is terminated (`AckKind::Term`) with an error
//! log naming the batch; a storage failure is negatively acknowledged with a delay, so
//! JetStream redelivers it. A server that dies holding messages never acknowledged them:
//! they come back to a server after `ack_wait`.

use crate::body::Encoding;
use crate::config::{NatsConsume, NatsLogin};
use crate::handlers::ingest::{count, ingest_raw};
use crate::state::AppState;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::AckKind;
use async_nats::ConnectOptions;
use futures::StreamExt;
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// The wait before a batch whose storing failed is delivered again.
const NAK_DELAY: Duration = Duration::from_secs(5);
/// The wait before connecting again after the connection or the consumer failed.
const RECONNECT_WAIT: Duration = Duration::from_secs(2);

/// Consumes until `stop` turns true; then takes no more messages, lets the batches in
/// flight finish (and be acknowledged) and returns.
pub async fn run(st: AppState, cfg: NatsConsume, mut stop: watch::Receiver<bool>) {
    let stats = st.metrics.consumer.clone();
    stats.enabled.store(true, Ordering::Relaxed);
    let cfg = Arc::new(cfg);
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight));
    let mut failures = 0u32;
    while !*stop.borrow() {
        let bound = Arc::new(AtomicBool::new(false));
        let outcome = consume(&st, &cfg, &in_flight, &mut stop, &bound).await;
        stats.connected.store(false, Ordering::Relaxed);
        if bound.load(Ordering::Relaxed) {
            // It worked for a while: a failure now is news again.
            failures = 0;
        }
        match outcome {
            Ok(()) => break,
            Err(message) => {
                failures += 1;
                // Said once as a warning, then quietly while it repeats.
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(nats = %cfg.shown(), stream = %cfg.stream, "consuming from NATS: {message}; trying again every {}s", RECONNECT_WAIT.as_secs());
                } else {
                    tracing::debug!(nats = %cfg.shown(), "consuming from NATS: {message}");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_WAIT) => {}
            _ = stop.changed() => {}
        }
    }
    // Every permit back: no batch of ours is being stored any more.
    let _ = in_flight.acquire_many(cfg.max_in_flight as u32).await;
    tracing::info!(nats = %cfg.shown(), "NATS consumer stopped");
}

/// One connection's life: connect, bind the durable consumer (then `bound` turns true), take
/// messages until `stop` (`Ok`) or a failure (`Err`, said as a sentence). The client
/// reconnects by itself after a short outage; `connected` follows it.
async fn consume(
    st: &AppState,
    cfg: &Arc<NatsConsume>,
    in_flight: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    bound: &Arc<AtomicBool>,
) -> Result<(), String> {
    let options = match &cfg.login {
        NatsLogin::None => ConnectOptions::new(),
        NatsLogin::Token(t) => ConnectOptions::with_token(t.expose_secret().to_string()),
        NatsLogin::UserPassword(u, p) => {
            ConnectOptions::with_user_and_password(u.clone(), p.expose_secret().to_string())
        }
        NatsLogin::CredsFile(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| format!("cannot read the credentials file {}: {e}", path.display()))?,
    };
    let events = (st.metrics.consumer.clone(), bound.clone());
    let client = options
        .event_callback(move |event| {
            let (stats, bound) = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => stats
                        .connected
                        .store(bound.load(Ordering::Relaxed), Ordering::Relaxed),
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        stats.connected.store(false, Ordering::Relaxed)
                    }
                    _ => {}
                }
            }
        })
        .name("skymeter server")
        .connection_timeout(Duration::from_secs(10))
        .connect(cfg.servers.clone())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(&cfg.stream).await.map_err(|e| {
        format!(
            "stream `{}`: {e} (the agents' `nats` publishers create it at their first batch, or create it yourself)",
            cfg.stream
        )
    })?;
    let consumer = stream
        .get_or_create_consumer(
            &cfg.durable,
            PullConfig {
                durable_name: Some(cfg.durable.clone()),
                filter_subject: cfg.subject.clone().unwrap_or_default(),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: cfg.ack_wait,
                // Left at JetStream's default (1,000): the bound is the consumer's, shared by
                // every server; each server bounds its own share by its pulls.
                description: Some("skymeter servers storing the agents' batches".into()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("durable consumer `{}`: {e}", cfg.durable))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(cfg.max_in_flight)
        .messages()
        .await
        .map_err(|e| format!("pulling from consumer `{}`: {e}", cfg.durable))?;
    bound.store(true, Ordering::Relaxed);
    st.metrics.consumer.connected.store(true, Ordering::Relaxed);
    tracing::info!(nats = %cfg.shown(), stream = %cfg.stream, durable = %cfg.durable, "consuming batches from NATS");
    loop {
        // A permit first: a message is taken only when it can be worked on at once, so
        // none waits here past its ack_wait.
        let permit = tokio::select! {
            p = in_flight.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => return Ok(()),
        };
        let next = tokio::select! {
            m = messages.next() => m,
            _ = stop.changed() => return Ok(()),
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(format!("receiving: {e}")),
            None => return Err("the consumer's message stream ended".into()),
        };
        let st = st.clone();
        tokio::spawn(async move {
            handle(&st, message).await;
            drop(permit);
        });
    }
}

/// Stores one message's batch and answers JetStream as its fate says.
async fn handle(st: &AppState, message: async_nats::jetstream::Message) {
    let stats = &st.metrics.consumer;
    let started = Instant::now();
    if let Ok(info) = message.info() {
        stats.pending.store(info.pending, Ordering::Relaxed);
        if info.delivered > 1 {
            stats.redelivered.fetch_add(1, Ordering::Relaxed);
        }
    }
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let batch = header("Nats-Msg-Id").unwrap_or_else(|| "(no Nats-Msg-Id)".into());
    let result = match Encoding::from_name(&header("Content-Encoding").unwrap_or_default()) {
        Ok(enc) => ingest_raw(st, message.payload.clone(), enc, started).await,
        Err(e) => {
            let refused = Err(e);
            count(st, started, &refused);
            refused
        }
    };
    let (kind, what) = match &result {
        Ok(_) => (AckKind::Ack, &stats.acked),
        Err(e) if e.status.is_server_error() => {
            tracing::warn!(batch_id = %batch, subject = %message.subject, "storing a batch from NATS failed ({}); it is delivered again in {}s", e.body.message, NAK_DELAY.as_secs());
            (AckKind::Nak(Some(NAK_DELAY)), &stats.nacked)
        }
        Err(e) => {
            tracing::error!(batch_id = %batch, subject = %message.subject, code = %e.body.code, "a batch from NATS can never be stored: {}; it is terminated (not delivered again)", e.body.message);
            (AckKind::Term, &stats.terminated)
        }
    };
    match message.ack_with(kind).await {
        Ok(()) => {
            what.fetch_add(1, Ordering::Relaxed);
        }
        // Unacknowledged: JetStream delivers it again after ack_wait, and the store
        // answers that a stored batch is a duplicate.
        Err(e) => {
            tracing::warn!(batch_id = %batch, "acknowledging a NATS message failed: {e}; it will be delivered again")
        }
    }
}
