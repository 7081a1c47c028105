//! `host`: the machine skymeter runs on, read straight from Linux `/proc` and `statvfs(2)`:
//! CPU, memory, swap, filesystems, disks, network, load, processes and uptime.
//!
//! It is meant to be cheap enough to leave running every 10 s next to the workload: each
//! `/proc` file is read once per collection into a reused buffer, only the files the task's
//! metric selection needs are read, processes are counted from the names in `/proc` without
//! opening any of them, and counters become rates against the previous collection's reading.
//!
//! The work is split in three so that everything but the system calls is testable with text
//! fixtures: [`engine`] turns parsed `/proc` contents into points (pure), [`read`] reads the
//! live files, and [`Host`] runs the two on a blocking thread (a `statvfs` of a dead NFS
//! mount can hang, and must not hang the async runtime with it). What all three go by has
//! modules of its own: [`config`] (the keys and their checked form, `Settings`) and
//! [`catalog`] (the metrics, and which of them a task wants).

// `ConfigError` is what the plugin API's `build` returns; boxing it here would not help.

use catalog::{metrics, Wants};
use config::{settings, Settings};
pub use config::{HostConfig, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNTPOINTS_EXCLUDE};
use skymeter_plugin_api::{
    async_trait, BuildContext, CollectRequest, Collector, CollectorFactory, ConfigError,
    MetricSelection, Output, PluginDescription, PluginError, PluginKind, RawConfig,
};

mod catalog;
mod config;
#[cfg(target_os = "linux")]
mod engine;
#[cfg(target_os = "linux")]
mod read;
#[cfg(all(test, target_os = "linux"))]
mod tests;

pub fn factory() -> CollectorFactory {
    CollectorFactory {
        description: PluginDescription {
            name: "host",
            kind: PluginKind::Collector,
            summary: "this Linux machine from /proc and statvfs: CPU, memory, swap, filesystems, disks, network, load, processes, uptime",
            config_schema: PluginDescription::schema_of::<HostConfig>,
            metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Collector>, ConfigError> {
    let settings = settings(raw)?;
    Ok(Box::new(Host::new(settings)))
}

/// The collector. On Linux it owns a [`read::Worker`] (buffers, previous readings) behind a
/// mutex that a blocking thread locks for the duration of one collection.
pub struct Host {
    #[cfg(target_os = "linux")]
    worker: std::sync::Arc<std::sync::Mutex<read::Worker>>,
    /// What the worker is doing right now, to name a stuck `statvfs` in the error.
    #[cfg(target_os = "linux")]
    step: std::sync::Arc<std::sync::Mutex<String>>,
    #[cfg(target_os = "linux")]
    warmup: std::time::Duration,
    /// Whether a collection has run, so the worker holds previous readings.
    #[cfg(target_os = "linux")]
    primed: bool,
    /// Whether the runner called `warm_up`: then `collect` never waits itself (a one-shot
    /// `skymeter collect host` has no warm-up step and waits inside its collection).
    #[cfg(target_os = "linux")]
    warm_up_done: bool,
    /// The last selection's patterns and what they want, so the globs run once per task.
    wants: Option<(Vec<String>, Wants)>,
}

impl Host {
    #[cfg(target_os = "linux")]
    pub(crate) fn new(settings: Settings) -> Host {
        let step = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        Host {
            warmup: settings.warmup,
            worker: std::sync::Arc::new(std::sync::Mutex::new(read::Worker::new(
                settings,
                step.clone(),
            ))),
            step,
            primed: false,
            warm_up_done: false,
            wants: None,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new(_settings: Settings) -> Host {
        Host { wants: None }
    }

    fn wants(&mut self, sel: &MetricSelection) -> Wants {
        match &self.wants {
            Some((p, w)) if p.as_slice() == sel.patterns() => *w,
            _ => {
                let w = Wants::of(sel);
                self.wants = Some((sel.patterns().to_vec(), w));
                w
            }
        }
    }

    /// Runs `f` on the worker in a blocking thread. If the previous collection still holds
    /// the worker (a `statvfs` that never returned), says which step is stuck.
    #[cfg(target_os = "linux")]
    async fn on_worker<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut read::Worker) -> T + Send + 'static,
    ) -> Result<T, PluginError> {
        use skymeter_plugin_api::ErrorKind;
        use std::sync::TryLockError;
        let worker = self.worker.clone();
        let step = self.step.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = match worker.try_lock() {
                Ok(w) => w,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    let step = step.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    return Err(PluginError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the previous host collection has not finished; it is stuck at {step}. \
                             A network filesystem that does not answer is the usual cause: \
                             leave it out with `mountpoints_exclude` or `fs_types_exclude`"
                        ),
                    ));
                }
            };
            Ok(f(&mut w))
        })
        .await
        .map_err(|e| {
            PluginError::new(
                ErrorKind::Other,
                format!("the host collection thread failed: {e}"),
            )
        })?
    }
}

#[async_trait]
impl Collector for Host {
    /// Takes the first reading of the counters and waits `warmup`, so that the first
    /// collection already has rates; the runner bounds this apart from the collection's
    /// `timeout` (a 1 s warm-up on a 1 s schedule used to time out every first run).
    #[cfg(target_os = "linux")]
    async fn warm_up(&mut self, metrics: &MetricSelection) -> Result<(), PluginError> {
        // Set first: if the runner's bound cuts the wait short, `collect` must not wait again.
        self.warm_up_done = true;
        if self.primed || self.warmup.is_zero() {
            return Ok(());
        }
        let wants = self.wants(metrics);
        self.on_worker(move |w| w.prime(&wants)).await?;
        tokio::time::sleep(self.warmup).await;
        Ok(())
    }

    #[cfg(target_os = "linux")]
    async fn collect(&mut self, req: &CollectRequest, out: &mut Output) -> Result<(), PluginError> {
        let wants = self.wants(&req.metrics);
        if !self.primed && !self.warm_up_done && !self.warmup.is_zero() {
            self.on_worker(move |w| w.prime(&wants)).await?;
            tokio::time::sleep(self.warmup).await;
        }
        let ts = req.window.end;
        let got = self.on_worker(move |w| w.collect(&wants, ts)).await??;
        self.primed = true;
        out.resources.push(got.resource);
        out.points.extend(got.points);
        out.errors.extend(got.errors);
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    async fn collect(
        &mut self,
        req: &CollectRequest,
        _out: &mut Output,
    ) -> Result<(), PluginError> {
        let _ = self.wants(&req.metrics);
        Err(PluginError::new(
            skymeter_plugin_api::ErrorKind::Config,
            format!(
                "the host collector supports Linux only (this is {}); remove it from the task, \
                 or collect this machine with the `exec` or `prometheus` collector",
                std::env::consts::OS
            ),
        ))
    }
}
