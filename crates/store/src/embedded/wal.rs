//! The write-ahead log: whole batches, appended to segment files `wal/<first seq>.log`,
//! synced with group commit.
//!
//! Frame: `len: u32 LE | crc32(len bytes ‖ payload): u32 LE | payload`. A new segment is
//! started at every seal; a segment is deleted once every record in it is both sealed into
//! a block and synced into SQLite.
//!
//! Group commit: writers append under the commit lock (a `write` of the whole frame, no
//! sync), then call [`GroupSync::sync_to`] with their sequence number. One caller at a time
//! becomes the leader, syncs the file once for everything written so far, and wakes the
//! others; callers whose record the leader's sync covered return without a sync of their
//! own. So N concurrent ingests share one `fdatasync`.

use crate::StoreError;
use parking_lot::{Condvar, Mutex};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const HEADER: usize = 8;
/// Larger than any batch the server accepts; a length above it is damage, not data.
const MAX_RECORD: u32 = 1 << 30;

pub fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Makes a directory entry (a new or renamed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    let len = payload.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// The segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<Segment>, StoreError> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match name
            .strip_suffix(".log")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(first_seq) => segs.push(Segment {
                first_seq,
                path: entry.path(),
            }),
            None => {
                tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a WAL segment")
            }
        }
    }
    segs.sort_by_key(|s| s.first_seq);
    Ok(segs)
}

/// Reads every record of every segment, in order, calling `f(payload, path, offset)`.
/// A torn record at the very end of the last segment (a crash in the middle of a write:
/// too short, or a bad checksum on a record that runs to the end of the file, or zeros) is
/// cut off with a warning. Damage anywhere else is [`StoreError::Corrupt`].
pub fn replay(
    segs: &[Segment],
    mut f: impl FnMut(&[u8], &Path, u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let data = fs::read(&seg.path).map_err(|e| io_err(&seg.path, e))?;
        let mut off = 0usize;
        while off < data.len() {
            let rest = &data[off..];
            let torn = |why: &str| -> Result<(), StoreError> {
                if last {
                    tracing::warn!(
                        file = %seg.path.display(), offset = off, bytes = rest.len(),
                        "WAL ends in a torn record ({why}), from a crash during a write; cutting it off (that batch was never acknowledged)"
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&seg.path)
                        .map_err(|e| io_err(&seg.path, e))?;
                    file.set_len(off as u64).map_err(|e| io_err(&seg.path, e))?;
                    file.sync_all().map_err(|e| io_err(&seg.path, e))?;
                    Ok(())
                } else {
                    Err(corrupt(&seg.path, off, why))
                }
            };
            if rest.len() < HEADER {
                return torn("incomplete header");
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().unwrap());
            let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
            if len == 0 && crc == 0 && rest.iter().all(|&b| b == 0) {
                return torn("zero-filled tail");
            }
            let end = HEADER + len as usize;
            if len > MAX_RECORD || rest.len() < end {
                // Either the write was cut short, or the length field is damaged. A
                // complete record further on tells them apart: then it is damage.
                if let Some(at) = valid_frame_after(&data, off + 1) {
                    return Err(corrupt(
                        &seg.path,
                        off,
                        &format!("bad record length {len} (a valid record follows at offset {at})"),
                    ));
                }
                return torn("record shorter than its length");
            }
            let payload = &rest[HEADER..end];
            let mut h = crc32fast::Hasher::new();
            h.update(&len.to_le_bytes());
            h.update(payload);
            if h.finalize() != crc {
                if end == rest.len() {
                    return torn("checksum mismatch on the last record");
                }
                return Err(corrupt(&seg.path, off, "checksum mismatch"));
            }
            f(payload, &seg.path, off as u64)?;
            off += end;
        }
    }
    Ok(())
}

/// The offset of the first complete, checksummed frame at or after `from`, if any. Only
/// used on the error path, to tell a damaged length field from a torn tail.
fn valid_frame_after(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(HEADER)).find(|&p| {
        let len = u32::from_le_bytes(data[p..p + 4].try_into().unwrap()) as usize;
        // Every payload starts with the record version, 1.
        if len == 0 || p + HEADER + len > data.len() || data[p + HEADER] != 1 {
            return false;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&data[p..p + 4]);
        h.update(&data[p + HEADER..p + HEADER + len]);
        h.finalize() == u32::from_le_bytes(data[p + 4..p + 8].try_into().unwrap())
    })
}

pub fn corrupt(path: &Path, offset: usize, why: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        message: format!(
            "{why} in the WAL record at byte offset {offset}, not at the end of the log, so it is damage \
             rather than a torn write. Restore the data directory from a backup, or move this file aside \
             to start without the batches from this record on"
        ),
    }
}

/// The segment being appended to. Lives inside the store's commit lock.
pub struct WalWriter {
    dir: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    /// Segments older than the current one, oldest first.
    pub closed: Vec<Segment>,
    pub current_first_seq: u64,
}

impl WalWriter {
    /// Starts a fresh segment whose first record will be `first_seq`; `closed` are the
    /// segments already on disk.
    pub fn create(dir: &Path, first_seq: u64, closed: Vec<Segment>) -> Result<Self, StoreError> {
        let path = segment_path(dir, first_seq);
        let file = open_new(&path)?;
        sync_dir(dir)?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            path,
            file: Arc::new(file),
            closed,
            current_first_seq: first_seq,
        })
    }

    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Appends one framed record (no sync).
    pub fn write(&mut self, framed: &[u8]) -> Result<(), StoreError> {
        (&*self.file)
            .write_all(framed)
            .map_err(|e| io_err(&self.path, e))
    }

    /// Closes the current segment (already synced by the caller's protocol) and starts
    /// another whose first record is `first_seq`.
    pub fn rotate(&mut self, first_seq: u64) -> Result<(), StoreError> {
        if first_seq == self.current_first_seq {
            return Ok(()); // nothing was written since the last rotation
        }
        let path = segment_path(&self.dir, first_seq);
        let file = open_new(&path)?;
        sync_dir(&self.dir)?;
        self.closed.push(Segment {
            first_seq: self.current_first_seq,
            path: std::mem::replace(&mut self.path, path),
        });
        self.file = Arc::new(file);
        self.current_first_seq = first_seq;
        Ok(())
    }

    /// Deletes closed segments whose records all have seq ≤ `upto`.
    pub fn delete_upto(&mut self, upto: u64) -> Result<(), StoreError> {
        let mut keep = Vec::new();
        let closed = std::mem::take(&mut self.closed);
        let n = closed.len();
        for i in 0..n {
            let next_first = closed
                .get(i + 1)
                .map_or(self.current_first_seq, |s| s.first_seq);
            let seg = &closed[i];
            if next_first.saturating_sub(1) <= upto {
                fs::remove_file(&seg.path).map_err(|e| io_err(&seg.path, e))?;
            } else {
                keep.push(seg.clone());
            }
        }
        self.closed = keep;
        Ok(())
    }
}

fn open_new(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))
}

struct SyncState {
    synced: u64,
    syncing: bool,
    file: Arc<File>,
    failed: Option<String>,
}

/// Group commit; see the module docs.
pub struct GroupSync {
    state: Mutex<SyncState>,
    cv: Condvar,
    /// Highest sequence number whose record has been completely written.
    written: AtomicU64,
    path: Mutex<PathBuf>,
}

impl GroupSync {
    pub fn new(file: Arc<File>, path: PathBuf, synced: u64) -> Self {
        GroupSync {
            state: Mutex::new(SyncState {
                synced,
                syncing: false,
                file,
                failed: None,
            }),
            cv: Condvar::new(),
            written: AtomicU64::new(synced),
            path: Mutex::new(path),
        }
    }

    pub fn mark_written(&self, seq: u64) {
        self.written.fetch_max(seq, Ordering::Release);
    }

    /// Called with the commit lock held, when nothing is waiting to be synced.
    pub fn set_file(&self, file: Arc<File>, path: PathBuf) {
        self.state.lock().file = file;
        *self.path.lock() = path;
    }

    /// Returns once record `seq` is on disk.
    pub fn sync_to(&self, seq: u64) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        loop {
            if let Some(msg) = &st.failed {
                return Err(StoreError::Io {
                    path: self.path.lock().display().to_string(),
                    source: std::io::Error::other(msg.clone()),
                });
            }
            if st.synced >= seq {
                return Ok(());
            }
            if st.syncing {
                self.cv.wait(&mut st);
                continue;
            }
            st.syncing = true;
            let target = self.written.load(Ordering::Acquire);
            let file = st.file.clone();
            drop(st);
            let res = file.sync_data();
            st = self.state.lock();
            st.syncing = false;
            match res {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => {
                    st.failed = Some(format!(
                        "fdatasync of the WAL failed: {e}; the store must be reopened"
                    ))
                }
            }
            self.cv.notify_all();
        }
    }
}
