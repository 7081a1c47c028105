//! The state of an open embedded store, behind the `Arc` that [`EmbeddedStore`](super::EmbeddedStore)
//! and its background thread share. Its methods are written where their work is: the write
//! path and recovery in `mod.rs`, seal, compaction, retention and the generic reads in
//! `tsdb.rs`, the Prometheus view in `prom.rs`.

use super::block::Block;
use super::chunk_cache::ChunkCache;
use super::head::Head;
use super::index::Index;
use super::meta::Meta;
use super::options::EmbeddedOptions;
use super::series::KeyHasher;
use super::wal::{GroupSync, WalWriter};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

/// What the commit lock guards: the WAL being appended to and the next record's number.
pub(super) struct Commit {
    pub(super) wal: WalWriter,
    pub(super) next_seq: u64,
    /// WAL written since the last seal: bytes, and when the first record was.
    pub(super) bytes_since_seal: u64,
    pub(super) first_since_seal: Option<Instant>,
}

/// The in-memory points not yet in a block.
#[derive(Default)]
pub(super) struct Heads {
    pub(super) active: Head,
    /// The head being written into a block by a seal; still read by queries.
    pub(super) frozen: Option<Arc<Head>>,
}

/// Everything an open store holds: files, locks, indexes, heads and blocks.
pub(super) struct Inner {
    pub(super) opts: EmbeddedOptions,
    pub(super) blocks_dir: PathBuf,
    pub(super) _lock: File,
    pub(super) meta: Meta,
    pub(super) commit: Mutex<Commit>,
    pub(super) sync: GroupSync,
    /// Highest sequence number applied; records apply strictly in order.
    pub(super) applied: Mutex<u64>,
    pub(super) applied_cv: Condvar,
    pub(super) hasher: KeyHasher,
    /// Every series: its key, its Prometheus labels, postings (see `index.rs`).
    pub(super) index: RwLock<Index>,
    pub(super) chunk_cache: ChunkCache,
    pub(super) head: RwLock<Heads>,
    /// Sorted by `min_seq` (= by age; their seq ranges are disjoint).
    pub(super) blocks: RwLock<Arc<Vec<Arc<Block>>>>,
    pub(super) next_block_id: AtomicU64,
    pub(super) sealed_seq: AtomicU64,
    /// One seal, compaction or retention at a time.
    pub(super) maintenance: Mutex<()>,
    pub(super) inflight: Mutex<HashSet<uuid::Uuid>>,
    pub(super) inflight_cv: Condvar,
    pub(super) failed: AtomicBool,
    pub(super) failure: Mutex<Option<String>>,
    pub(super) stop: Mutex<bool>,
    pub(super) wake: Condvar,
}
