//! Registration and heartbeats.
//!
//! An agent is one registration on the server however many tasks publish to it, so every
//! `server` publisher of the process with the same `url` and agent id shares one [`Link`]:
//! one registration listing all their tasks (sent again when a task joins), one heartbeat
//! loop reporting the sum of their buffers. The link ends with its last publisher.
//! Registration uses the token of the publisher that started the link; labels of all of them
//! are merged and the shortest `heartbeat_interval` wins.

use super::client::{Client, Known};
use crate::common::delivery::{show, Backoff, Buffer, FailureLog};
use skymeter_model::api::{AgentRegistration, AgentTask, Heartbeat};
use skymeter_plugin_api::retry::RetryPolicy;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What one publisher tells the server about its agent.
#[derive(Debug, Clone)]
pub(super) struct AgentInfo {
    pub id: String,
    pub task: AgentTask,
    pub labels: BTreeMap<String, String>,
    pub heartbeat_interval: Duration,
    /// The waits between tries of registration (the publisher's `retry`).
    pub retry: RetryPolicy,
}

/// The agent's link to one server; dropping the last handle stops its loop.
pub(super) struct Link {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Inner {
    client: Arc<Client>,
    id: String,
    hostname: String,
    retry: RetryPolicy,
    state: Mutex<State>,
    /// A task joined: register again with the longer list.
    changed: Notify,
}

struct State {
    tasks: BTreeMap<String, u64>,
    labels: BTreeMap<String, String>,
    heartbeat_interval: Duration,
    buffers: Vec<Weak<Buffer>>,
}

impl State {
    /// Adds a publisher; true when the registration changes.
    fn add(&mut self, info: &AgentInfo, buffer: &Arc<Buffer>) -> bool {
        self.buffers.retain(|b| b.strong_count() > 0);
        self.buffers.push(Arc::downgrade(buffer));
        let mut changed = self
            .tasks
            .insert(info.task.name.clone(), info.task.interval_s)
            != Some(info.task.interval_s);
        for (k, v) in &info.labels {
            match self.labels.get(k) {
                None => {
                    self.labels.insert(k.clone(), v.clone());
                    changed = true;
                }
                Some(old) if old != v => tracing::warn!(
                    target: "skymeter::server",
                    "label `{k}` of agent is `{old}` in one `server` publisher and `{v}` in task `{}`; keeping `{old}`",
                    info.task.name
                ),
                Some(_) => {}
            }
        }
        if info.heartbeat_interval < self.heartbeat_interval {
            self.heartbeat_interval = info.heartbeat_interval;
            changed = true;
        }
        changed
    }
}

/// Links by (server URL, agent id).
static LINKS: Mutex<BTreeMap<(String, String), Weak<Link>>> = Mutex::new(BTreeMap::new());

/// The agent's link to `client`'s server, with `info`'s task and `buffer` added; starts the
/// registration and heartbeat loop when this is the first publisher.
pub(super) fn join(client: &Arc<Client>, info: &AgentInfo, buffer: &Arc<Buffer>) -> Arc<Link> {
    let key = (client.shown().to_string(), info.id.clone());
    let mut links = LINKS.lock().unwrap_or_else(PoisonError::into_inner);
    links.retain(|_, l| l.strong_count() > 0);
    // A loop that ended (its runtime shut down) is replaced.
    if let Some(link) = links
        .get(&key)
        .and_then(Weak::upgrade)
        .filter(|l| !l.task.is_finished())
    {
        if link.inner.state().add(info, buffer) {
            link.inner.changed.notify_one();
        }
        return link;
    }
    let inner = Arc::new(Inner {
        client: client.clone(),
        id: info.id.clone(),
        hostname: hostname(),
        retry: info.retry,
        state: Mutex::new(State {
            tasks: BTreeMap::new(),
            labels: BTreeMap::new(),
            heartbeat_interval: info.heartbeat_interval,
            buffers: Vec::new(),
        }),
        changed: Notify::new(),
    });
    inner.state().add(info, buffer);
    let task = tokio::spawn(run(inner.clone()));
    let link = Arc::new(Link { inner, task });
    links.insert(key, Arc::downgrade(&link));
    link
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn registration(&self) -> AgentRegistration {
        let s = self.state();
        AgentRegistration {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            tasks: s
                .tasks
                .iter()
                .map(|(name, interval_s)| AgentTask {
                    name: name.clone(),
                    interval_s: *interval_s,
                })
                .collect(),
            labels: s.labels.clone(),
            heartbeat_interval_s: s.heartbeat_interval.as_secs(),
        }
    }

    fn heartbeat(&self) -> Heartbeat {
        let s = self.state();
        let mut hb = Heartbeat::default();
        for b in s.buffers.iter().filter_map(Weak::upgrade) {
            hb.buffered_batches += b.waiting() as u64;
            hb.dropped_batches += b.dropped();
        }
        hb
    }

    fn task_names(&self) -> String {
        self.state()
            .tasks
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn run(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(&inner.retry);
    let (mut reg_failures, mut hb_failures) = (FailureLog::default(), FailureLog::default());
    let url = inner.client.shown().to_string();
    loop {
        // Register until it works; publishing goes on meanwhile.
        loop {
            let reg = inner.registration();
            match inner.client.register(&reg).await {
                Ok(()) => {
                    tracing::info!(target: "skymeter::server", "registered with {url} as agent `{}` (tasks: {})", inner.id, inner.task_names());
                    backoff.reset();
                    reg_failures.ok();
                    break;
                }
                Err(f) => {
                    let wait = backoff.next(f.retry_after);
                    reg_failures.failed(
                        &inner.task_names(),
                        &f,
                        &format!("registering agent `{}` again in {}", inner.id, show(wait)),
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
        // Heartbeats until the server forgets the agent or a task joins.
        loop {
            let interval = inner.state().heartbeat_interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = inner.changed.notified() => break,
            }
            match inner.client.heartbeat(&inner.id, &inner.heartbeat()).await {
                Ok(Known::Yes) => hb_failures.ok(),
                Ok(Known::No) => {
                    tracing::info!(target: "skymeter::server", "{url} does not know agent `{}` (its data may have been reset); registering again", inner.id);
                    break;
                }
                Err(f) => hb_failures.failed(
                    &inner.task_names(),
                    &f,
                    &format!("next heartbeat in {}", show(interval)),
                ),
            }
        }
    }
}

pub(super) use skymeter_plugin_api::hostname;
