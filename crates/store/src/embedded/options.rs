//! The settings of an embedded store: where it lives, when the head is sealed, how blocks
//! are compacted, and the memory queries may keep.

use std::path::PathBuf;
use std::time::Duration;

/// Options of the embedded store. `EmbeddedOptions::new(dir)` (or `{ dir, ..Default::default() }`)
/// gives the defaults.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub dir: PathBuf,
    /// Seal the head into a block when it holds this many points (default 4,000,000,
    /// about 100 MB of memory and ~45 MB of WAL).
    pub head_max_points: usize,
    /// ... or when its oldest point was applied this long ago (default 2 h; the same age
    /// bounds WAL records without points, e.g. inventory-only batches).
    pub head_max_age: Duration,
    /// ... or when the WAL since the last seal reaches this size (default 512 MiB), which
    /// bounds replay time and disk use when batches carry large resource or cost payloads.
    pub wal_max_bytes: u64,
    /// Compaction merges this many adjacent blocks of one level into one of the next
    /// (default 4).
    pub compaction_fan_in: usize,
    /// Blocks at this level are not merged further (default 5: 4^5 = 1,024 seals).
    pub max_level: u32,
    /// Nor are blocks that would grow past this size (default 1 GiB).
    pub max_block_bytes: u64,
    /// How long a batch id is remembered for dedupe (default 7 days; retention may
    /// forget sooner).
    pub dedupe_window: Duration,
    /// Run sealing and compaction on a background thread (default true). When false they
    /// happen only on `flush()` and when an ingest finds the head over its limit.
    pub background: bool,
    /// Memory for decoded chunks that PromQL queries read (default 256 MiB; 0: none).
    /// Repeated queries over the same data (dashboards) then skip decompression; about
    /// 8 bytes per cached sample, timestamps of regular series shared.
    pub query_cache_bytes: u64,
}

impl EmbeddedOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            dir: dir.into(),
            ..Default::default()
        }
    }
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            dir: PathBuf::from("data"),
            head_max_points: 4_000_000,
            head_max_age: Duration::from_secs(2 * 3600),
            wal_max_bytes: 512 << 20,
            compaction_fan_in: 4,
            max_level: 5,
            max_block_bytes: 1 << 30,
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
            background: true,
            query_cache_bytes: 256 << 20,
        }
    }
}
