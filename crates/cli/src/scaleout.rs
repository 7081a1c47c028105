//! `skymeter server --metadata postgres://… --tsdb remote-write=URL,query=URL`: the wiring
//! of the scale-out store. Points leave through the agents' own `remote_write` publisher
//! (its on-disk buffer in the server's data dir, its retries), driven by one task;
//! the store's [`PointWriter`] hands it batches from the blocking threads that ingest.

use skymeter_model::Batch;
use skymeter_plugin_api::config::Source;
use skymeter_plugin_api::{BuildContext, Publisher, RawConfig, Registry};
use skymeter_store::{PointWriter, ScaleOutOptions, ScaleOutStore, StoreError};
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// The two URLs of `--tsdb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsdbSpec {
    pub remote_write: String,
    pub query: String,
}

impl std::str::FromStr for TsdbSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (mut remote_write, mut query) = (None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("remote-write" | "remote_write", url)) => {
                    remote_write = Some(url.to_string())
                }
                Some(("query", url)) => query = Some(url.to_string()),
                _ => {
                    return Err(format!(
                        "--tsdb: `{part}` is not `remote-write=URL` nor `query=URL`"
                    ))
                }
            }
        }
        match (remote_write, query) {
            (Some(remote_write), Some(query)) => Ok(TsdbSpec {
                remote_write,
                query,
            }),
            _ => Err(format!(
                "--tsdb `{s}`: give both, as `remote-write=http://vm:8428/api/v1/write,query=http://vm:8428`"
            )),
        }
    }
}

enum Job {
    Write(Box<Batch>, oneshot::Sender<Result<(), String>>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// A [`PointWriter`] over a publisher running on the server's runtime.
struct PublisherWriter {
    jobs: mpsc::Sender<Job>,
}

impl PublisherWriter {
    fn ask(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Job,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            StoreError::Database(
                "the remote-write queue has stopped (the server is shutting down)".into(),
            )
        };
        // Called from the store's blocking threads (`spawn_blocking`), never from a task.
        self.jobs.blocking_send(job(tx)).map_err(|_| gone())?;
        rx.blocking_recv()
            .map_err(|_| gone())?
            .map_err(|e| StoreError::Database(format!("queueing points for the TSDB: {e}")))
    }
}

impl PointWriter for PublisherWriter {
    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        self.ask(|tx| Job::Write(Box::new(batch.clone()), tx))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.ask(Job::Flush)
    }
}

async fn drive(mut publisher: Box<dyn Publisher>, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Write(batch, reply) => {
                let r = publisher.publish(&batch).await.map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Job::Flush(reply) => {
                let r = publisher.flush().await.map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
        }
    }
    if let Err(e) = publisher.flush().await {
        tracing::warn!(error = %e, "flushing the remote-write queue at shutdown failed; undelivered points stay on disk for the next start");
    }
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Builds the `remote_write` publisher for `spec` (its buffer under `data_dir`) and the
/// store over it and `metadata_url`.
///
/// The publisher runs on a runtime of its own, on a thread of its own: the store's
/// callers wait for it from the server's blocking pool, and a publisher needing that same
/// pool (file I/O goes through it) could otherwise wait for a thread that is waiting for
/// it.
pub fn open(
    metadata_url: &str,
    spec: &TsdbSpec,
    data_dir: &Path,
    registry: &Registry,
) -> Result<ScaleOutStore, String> {
    let factory = registry.publisher("remote_write").ok_or_else(|| {
        "this skymeter has no `remote_write` publisher, which --tsdb needs".to_string()
    })?;
    let text = format!("url = {}\n", toml_str(&spec.remote_write));
    let source = Source::new("--tsdb remote-write", text);
    let root = source.parse().map_err(|e| e.to_string())?;
    let raw = RawConfig::new(source.clone(), root, Default::default());
    let ctx = BuildContext {
        agent_id: "skymeter-server".into(),
        data_dir: data_dir.to_path_buf(),
        task: "tsdb".into(),
        interval: None,
    };
    let publisher = (factory.build)(&raw, &ctx).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the remote-write runtime: {e}"))?;
    std::thread::Builder::new()
        .name("remote-write".into())
        .spawn(move || runtime.block_on(drive(publisher, rx)))
        .map_err(|e| format!("cannot start the remote-write thread: {e}"))?;
    let writer = PublisherWriter { jobs: tx };
    let opts = ScaleOutOptions {
        metadata_url: metadata_url.to_string(),
        query_url: spec.query.clone(),
        max_connections: 16,
    };
    // Connecting and migrating block: off the runtime's worker threads.
    tokio::task::block_in_place(|| ScaleOutStore::open(&opts, Box::new(writer)))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsdb_specs_name_both_urls() {
        let s: TsdbSpec = "remote-write=http://vm:8428/api/v1/write,query=http://vm:8428"
            .parse()
            .unwrap();
        assert_eq!(s.remote_write, "http://vm:8428/api/v1/write");
        assert_eq!(s.query, "http://vm:8428");
        assert!("query=http://vm:8428"
            .parse::<TsdbSpec>()
            .unwrap_err()
            .contains("give both"));
        assert!("write=x,query=y"
            .parse::<TsdbSpec>()
            .unwrap_err()
            .contains("`write=x`"));
    }
}
