//! The on-disk buffer: one file per batch, named `<seq>-<batch_id>.json.gz` with a
//! zero-padded sequence number, so that name order is send order and survives restarts.
//!
//! A file is written to `<name>.tmp`, fsynced, renamed to its name, and the directory is
//! fsynced: once `push` returns, the batch survives a crash or a power cut. A `.tmp` left
//! by a crash is a torn write and is deleted when the buffer is opened. Deletions are not
//! fsynced: a delivered batch whose deletion is lost is sent again and the server dedupes it.
//!
//! The directory is locked (`flock` on `.lock`, Linux) while a publisher uses it, so that
//! two publishers (or two agents) never drain the same buffer.

use super::config::Terms;
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;
use tokio::time::Instant;

const SUFFIX: &str = ".json.gz";
const TMP: &str = ".tmp";
pub const REJECTED: &str = "rejected";
const SEQ_DIGITS: usize = 20;

/// One buffered batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub batch_id: String,
    pub size: u64,
}

impl Entry {
    pub fn file_name(&self) -> String {
        format!(
            "{:0width$}-{}{SUFFIX}",
            self.seq,
            self.batch_id,
            width = SEQ_DIGITS
        )
    }

    /// `<seq>-<batch_id>.json.gz` back into its parts.
    fn parse(name: &str, size: u64) -> Option<Entry> {
        let stem = name.strip_suffix(SUFFIX)?;
        let (seq, batch_id) = stem.split_once('-')?;
        if seq.len() != SEQ_DIGITS || batch_id.is_empty() {
            return None;
        }
        Some(Entry {
            seq: seq.parse().ok()?,
            batch_id: batch_id.to_string(),
            size,
        })
    }
}

#[derive(Default)]
struct State {
    entries: BTreeMap<u64, Entry>,
    bytes: u64,
    next_seq: u64,
    /// The batch the sender is sending now: never dropped under it.
    in_flight: Option<u64>,
}

impl State {
    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.bytes -= e.size;
        Some(e)
    }
}

pub struct Queue {
    pub dir: PathBuf,
    terms: Terms,
    state: Mutex<State>,
    /// A batch was pushed: wakes an idle sender.
    pub pushed: Notify,
    /// `flush` wants a try now: cuts the sender's backoff short.
    pub kick: Notify,
    /// A batch left the buffer: wakes publishers waiting for room and `flush`.
    left: Notify,
    dropped: AtomicU64,
}

fn io_error(terms: Terms, what: String, e: io::Error) -> PluginError {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied => {
            format!(
                "; let the agent's user write there, or set `{}`",
                terms.dir_key
            )
        }
        io::ErrorKind::StorageFull => {
            format!("; free disk space or lower `{}`", terms.max_size_key)
        }
        _ => String::new(),
    };
    PluginError::new(ErrorKind::Other, format!("{what}: {e}{hint}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, PluginError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(PluginError::new(
            ErrorKind::Other,
            format!("buffer I/O task failed: {e}"),
        ))
    })
}

/// fsync of a directory, so that a rename or a new file in it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Queue {
    /// Creates the buffer directory when missing, locks it, deletes torn writes and loads
    /// what is waiting. Returns the queue and the lock, held until dropped.
    pub async fn open(dir: PathBuf, terms: Terms) -> Result<(Arc<Queue>, File), PluginError> {
        let at = dir.clone();
        let (state, lock) = blocking(move || {
            let dir = at;
            let d = dir.display();
            fs::create_dir_all(dir.join(REJECTED))
                .map_err(|e| io_error(terms, format!("cannot create the buffer directory {d}"), e))?;
            let lock = lock_dir(&dir, terms)?;
            let mut state = State {
                next_seq: 1,
                ..State::default()
            };
            let read =
                fs::read_dir(&dir).map_err(|e| io_error(terms, format!("cannot list {d}"), e))?;
            for item in read {
                let item = item.map_err(|e| io_error(terms, format!("cannot list {d}"), e))?;
                let name = item.file_name().to_string_lossy().into_owned();
                if name.ends_with(TMP) {
                    tracing::info!(target: "skymeter::delivery", "deleting {name} in {d}: an unfinished write from a crash");
                    fs::remove_file(item.path())
                        .map_err(|e| io_error(terms, format!("cannot delete {name} in {d}"), e))?;
                    continue;
                }
                let Ok(meta) = item.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                if let Some(e) = Entry::parse(&name, meta.len()) {
                    state.next_seq = state.next_seq.max(e.seq + 1);
                    state.bytes += e.size;
                    state.entries.insert(e.seq, e);
                }
            }
            Ok((state, lock))
        })
        .await?;
        Ok((
            Arc::new(Queue {
                dir,
                terms,
                state: Mutex::new(state),
                pushed: Notify::new(),
                kick: Notify::new(),
                left: Notify::new(),
                dropped: AtomicU64::new(0),
            }),
            lock,
        ))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    pub fn bytes(&self) -> u64 {
        self.state().bytes
    }

    /// Batches deleted by `drop_oldest` since the queue was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether a batch of `size` bytes fits under `max`. An empty buffer takes any batch, so
    /// that one batch larger than the bound does not wait forever.
    pub fn fits(&self, size: u64, max: u64) -> bool {
        let s = self.state();
        s.entries.is_empty() || s.bytes + size <= max
    }

    /// Waits until a batch of `size` bytes fits.
    pub async fn wait_for_room(&self, size: u64, max: u64) {
        loop {
            let left = self.left.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            if self.fits(size, max) {
                return;
            }
            left.await;
        }
    }

    /// Waits until the buffer is empty or `deadline`; returns how many batches are left.
    pub async fn wait_until_empty(&self, deadline: Instant) -> usize {
        loop {
            let left = self.left.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            let n = self.len();
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, left).await.is_err() {
                return self.len();
            }
        }
    }

    /// Deletes the oldest batches (not the one being sent) until `size` more bytes fit
    /// under `max`; returns how many it deleted.
    pub async fn drop_oldest(&self, size: u64, max: u64) -> u64 {
        let victims: Vec<Entry> = {
            let mut s = self.state();
            let mut v = Vec::new();
            while s.bytes + size > max {
                let in_flight = s.in_flight;
                let Some(seq) = s.entries.keys().copied().find(|k| Some(*k) != in_flight) else {
                    break;
                };
                v.extend(s.remove(seq));
            }
            v
        };
        if victims.is_empty() {
            return 0;
        }
        let n = victims.len() as u64;
        self.dropped.fetch_add(n, Ordering::Relaxed);
        let dir = self.dir.clone();
        let _ = blocking(move || {
            for e in victims {
                if let Err(err) = fs::remove_file(dir.join(e.file_name())) {
                    if err.kind() != io::ErrorKind::NotFound {
                        tracing::error!(target: "skymeter::delivery", "cannot delete dropped batch file {}: {err}", dir.join(e.file_name()).display());
                    }
                }
            }
            Ok(())
        })
        .await;
        self.left.notify_waiters();
        n
    }

    /// Writes a batch durably and queues it for the sender.
    pub async fn push(&self, batch_id: &str, body: Vec<u8>) -> Result<(), PluginError> {
        let entry = {
            let mut s = self.state();
            let seq = s.next_seq;
            s.next_seq += 1;
            Entry {
                seq,
                batch_id: batch_id.to_string(),
                size: body.len() as u64,
            }
        };
        let (dir, terms) = (self.dir.clone(), self.terms);
        let name = entry.file_name();
        blocking(move || {
            let path = dir.join(&name);
            let tmp = dir.join(format!("{name}{TMP}"));
            let write = || -> io::Result<()> {
                let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
                f.write_all(&body)?;
                f.sync_all()?;
                fs::rename(&tmp, &path)?;
                sync_dir(&dir)
            };
            write().map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_error(
                    terms,
                    format!("cannot write batch to the buffer {}", path.display()),
                    e,
                )
            })
        })
        .await?;
        {
            let mut s = self.state();
            s.bytes += entry.size;
            s.entries.insert(entry.seq, entry);
        }
        self.pushed.notify_one();
        Ok(())
    }

    /// The oldest batch, marked as being sent.
    pub fn begin_next(&self) -> Option<Entry> {
        let mut s = self.state();
        let e = s.entries.values().next().cloned()?;
        s.in_flight = Some(e.seq);
        Some(e)
    }

    /// The batch being sent was not delivered: it stays, and may be dropped again.
    pub fn end_attempt(&self) {
        self.state().in_flight = None;
    }

    pub async fn read(&self, e: &Entry) -> io::Result<Vec<u8>> {
        tokio::fs::read(self.dir.join(e.file_name())).await
    }

    /// The batch was delivered (or its file vanished): deletes it.
    pub async fn done(&self, e: &Entry) {
        let path = self.dir.join(e.file_name());
        if let Err(err) = tokio::fs::remove_file(&path).await {
            if err.kind() != io::ErrorKind::NotFound {
                // It will be sent again at the next start; the server dedupes it.
                tracing::error!(target: "skymeter::delivery", "cannot delete delivered batch file {}: {err}", path.display());
            }
        }
        self.forget(e);
    }

    fn forget(&self, e: &Entry) {
        {
            let mut s = self.state();
            s.remove(e.seq);
            s.in_flight = None;
        }
        self.left.notify_waiters();
    }

    /// Moves a batch the receiver will never take to `rejected/`, with `report` (the
    /// receiver's answer) beside it as `<name>.error.json`. Returns the new path.
    pub async fn reject(
        &self,
        e: &Entry,
        report: serde_json::Value,
    ) -> Result<PathBuf, PluginError> {
        let (dir, terms) = (self.dir.clone(), self.terms);
        let name = e.file_name();
        let moved = blocking(move || {
            let rejected = dir.join(REJECTED);
            let to = rejected.join(&name);
            let report_path = rejected.join(format!("{name}.error.json"));
            let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
            let go = || -> io::Result<()> {
                fs::create_dir_all(&rejected)?;
                let mut f = File::create(&report_path)?;
                f.write_all(&text)?;
                f.sync_all()?;
                fs::rename(dir.join(&name), &to)?;
                sync_dir(&rejected)?;
                sync_dir(&dir)
            };
            go().map_err(|err| {
                io_error(
                    terms,
                    format!(
                        "cannot move rejected batch file {name} to {}",
                        rejected.display()
                    ),
                    err,
                )
            })?;
            Ok(to)
        })
        .await;
        if moved.is_ok() {
            self.forget(e);
        } else {
            self.end_attempt();
        }
        moved
    }
}

/// Whether `dir` holds batch files (a quick look, for `flush` before any `publish`: a
/// buffer that is not there is not created).
pub fn has_batches(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut it| {
        it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(SUFFIX)))
    })
}

/// Locks the buffer directory for this publisher: a second user gets a clear error
/// instead of sending the same batches in parallel.
#[cfg(target_os = "linux")]
fn lock_dir(dir: &Path, terms: Terms) -> Result<File, PluginError> {
    use rustix::fs::{flock, FlockOperation};
    let path = dir.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(terms, format!("cannot open {}", path.display()), e))?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(PluginError::new(
            ErrorKind::Config,
            format!(
                "the buffer directory {} is in use by another `{}` publisher (of this agent or another process); give each one its own `{}`",
                dir.display(), terms.plugin, terms.dir_key
            ),
        )),
        Err(e) => Err(io_error(
            terms,
            format!("cannot lock {}", path.display()),
            e.into(),
        )),
    }
}

/// Without `flock` the directory is not locked: one publisher per buffer directory is on
/// the user (the README says so).
#[cfg(not(target_os = "linux"))]
fn lock_dir(dir: &Path, terms: Terms) -> Result<File, PluginError> {
    let path = dir.join(".lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(terms, format!("cannot open {}", path.display()), e))
}
