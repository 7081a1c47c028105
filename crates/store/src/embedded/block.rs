//! Immutable block files: `blocks/<id>.blk`, one compressed chunk per series.
//!
//! ```text
//! "SKYBLK\0\1"
//! chunk*                       (see chunk.rs), in series-id order
//! meta: varint n_sources, n × u64 source block ids (blocks this one replaces),
//!       varint n_chunks, n × {series u64, offset u64, len u32, count u32,
//!                             min_ts i64, max_ts i64, crc32 u32,
//!                             min_value f64, max_value f64 (version 2 on)}
//! footer (56 bytes): meta_offset u64, meta_len u32, meta_crc u32, min_seq u64,
//!       max_seq u64, block_id u64, level u32, version u32, "SKYBLKFT"
//! ```
//!
//! Version 2 added each chunk's smallest and largest value, so that a reduction that wants a
//! series' peak over a range (the savings findings' screening) reads it from the index
//! instead of decoding the chunk. Version 1 blocks are read as they are (their chunks'
//! values unknown, decoded when asked) and gain the values when compaction rewrites them.
//!
//! A block holds the points of WAL records `min_seq..=max_seq`; blocks' ranges never
//! overlap, so "later write wins" across blocks is "higher max_seq wins". A block written by
//! compaction or retention lists the blocks it replaces (`sources`); after a crash between
//! writing it and deleting them, opening the store deletes the replaced ones.

use super::chunk::{self, ChunkBuffers};
use super::codec::{put_uvarint, Reader};
use super::wal::{io_err, sync_dir};
use crate::StoreError;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SKYBLK\0\x01";
const FOOTER_MAGIC: &[u8; 8] = b"SKYBLKFT";
const FOOTER: usize = 56;
const ENTRY_V1: usize = 44;
const ENTRY: usize = 60;
const VERSION: u32 = 2;

#[derive(Debug, Clone, Copy)]
pub struct ChunkMeta {
    pub series: u64,
    pub offset: u64,
    pub len: u32,
    pub count: u32,
    pub min_ts: i64,
    pub max_ts: i64,
    pub crc: u32,
    /// The smallest and largest value (NaN values aside; NaN when all are); `None` in
    /// version 1 blocks.
    pub value_range: Option<(f64, f64)>,
}

pub struct Block {
    pub id: u64,
    pub path: PathBuf,
    file: File,
    pub level: u32,
    /// The format it was written in (1: no values' range in the index).
    pub version: u32,
    pub min_seq: u64,
    pub max_seq: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub points: u64,
    pub bytes: u64,
    pub sources: Vec<u64>,
    /// Sorted by series id.
    pub chunks: Vec<ChunkMeta>,
}

/// The smallest and largest of `vals`, NaN aside (NaN, NaN when all are NaN).
pub fn value_range(vals: &[f64]) -> (f64, f64) {
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo > hi {
        (f64::NAN, f64::NAN)
    } else {
        (lo, hi)
    }
}

pub fn block_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.blk"))
}

impl Block {
    pub fn open(path: &Path) -> Result<Block, StoreError> {
        let corrupt = |m: String| {
            StoreError::Corrupt {
            path: path.display().to_string(),
            message: format!(
                "{m}; this point block cannot be read. Move it out of the data directory to start without \
                 the points in it, or restore it from a backup"
            ),
        }
        };
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let bytes = file.metadata().map_err(|e| io_err(path, e))?.len();
        if bytes < (MAGIC.len() + FOOTER) as u64 {
            return Err(corrupt(format!(
                "file of {bytes} bytes is too short for a block"
            )));
        }
        let mut footer = [0u8; FOOTER];
        file.read_exact_at(&mut footer, bytes - FOOTER as u64)
            .map_err(|e| io_err(path, e))?;
        let mut r = Reader::new(&footer);
        let f = (|| -> Result<_, String> {
            Ok((
                r.u64("meta offset")?,
                r.u32("meta length")?,
                r.u32("meta crc")?,
                r.u64("min seq")?,
                r.u64("max seq")?,
                r.u64("block id")?,
                r.u32("level")?,
                r.u32("version")?,
                r.take(8, "magic")?,
            ))
        })()
        .map_err(corrupt)?;
        let (meta_offset, meta_len, meta_crc, min_seq, max_seq, id, level, version, magic) = f;
        if magic != FOOTER_MAGIC || !(1..=VERSION).contains(&version) {
            return Err(corrupt(format!("bad footer (magic or version {version})")));
        }
        // Checked: a damaged footer can hold any offset, and a sum that wraps could pass.
        if meta_offset
            .checked_add(u64::from(meta_len) + FOOTER as u64)
            .is_none_or(|end| end != bytes)
        {
            return Err(corrupt("footer does not match the file size".into()));
        }
        let mut meta = vec![0u8; meta_len as usize];
        file.read_exact_at(&mut meta, meta_offset)
            .map_err(|e| io_err(path, e))?;
        if crc32fast::hash(&meta) != meta_crc {
            return Err(corrupt(format!(
                "index checksum mismatch at byte offset {meta_offset}"
            )));
        }
        let mut r = Reader::new(&meta);
        let parsed = (|| -> Result<_, String> {
            let ns = r.uvarint("source count")? as usize;
            let mut sources = Vec::new();
            for _ in 0..ns.min(1 << 20) {
                sources.push(r.u64("source id")?);
            }
            let nc = r.uvarint("chunk count")? as usize;
            let entry = if version == 1 { ENTRY_V1 } else { ENTRY };
            if nc.saturating_mul(entry) > r.remaining() {
                return Err("chunk count larger than the index".into());
            }
            let mut chunks = Vec::with_capacity(nc);
            for _ in 0..nc {
                chunks.push(ChunkMeta {
                    series: r.u64("series")?,
                    offset: r.u64("offset")?,
                    len: r.u32("len")?,
                    count: r.u32("count")?,
                    min_ts: r.i64("min ts")?,
                    max_ts: r.i64("max ts")?,
                    crc: r.u32("crc")?,
                    value_range: if version == 1 {
                        None
                    } else {
                        Some((r.f64("min value")?, r.f64("max value")?))
                    },
                });
            }
            Ok((sources, chunks))
        })()
        .map_err(corrupt)?;
        let (sources, chunks) = parsed;
        if chunks.windows(2).any(|w| w[0].series >= w[1].series)
            || chunks
                .iter()
                .any(|c| c.offset.saturating_add(u64::from(c.len)) > meta_offset)
        {
            return Err(corrupt(
                "index entries out of order or out of bounds".into(),
            ));
        }
        Ok(Block {
            id,
            path: path.to_path_buf(),
            file,
            level,
            version,
            min_seq,
            max_seq,
            min_ts: chunks.iter().map(|c| c.min_ts).min().unwrap_or(i64::MAX),
            max_ts: chunks.iter().map(|c| c.max_ts).max().unwrap_or(i64::MIN),
            points: chunks.iter().map(|c| u64::from(c.count)).sum(),
            bytes,
            sources,
            chunks,
        })
    }

    pub fn find(&self, series: u64) -> Option<&ChunkMeta> {
        self.chunks
            .binary_search_by_key(&series, |c| c.series)
            .ok()
            .map(|i| &self.chunks[i])
    }

    pub fn read_raw(&self, c: &ChunkMeta) -> Result<Vec<u8>, StoreError> {
        let mut buf = Vec::new();
        self.read_raw_into(c, &mut buf)?;
        Ok(buf)
    }

    /// Chunk `c`'s bytes into `buf` (replacing what it held), checked against its CRC.
    fn read_raw_into(&self, c: &ChunkMeta, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        buf.clear();
        buf.resize(c.len as usize, 0);
        self.file
            .read_exact_at(buf, c.offset)
            .map_err(|e| io_err(&self.path, e))?;
        if crc32fast::hash(buf) != c.crc {
            return Err(StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: format!(
                    "checksum mismatch in the chunk of series {} at byte offset {}; move the block out of the \
                     data directory or restore it from a backup",
                    c.series, c.offset
                ),
            });
        }
        Ok(())
    }

    /// Chunk `c`'s points into `bufs.ts` and `bufs.vals`, through buffers the caller reuses.
    pub fn read_into(&self, c: &ChunkMeta, bufs: &mut ChunkBuffers) -> Result<(), StoreError> {
        self.read_raw_into(c, &mut bufs.raw)?;
        bufs.decode(c.count as usize)
            .map_err(|m| self.corrupt(c, m))
    }

    pub fn read(&self, c: &ChunkMeta) -> Result<(Vec<i64>, Vec<f64>), StoreError> {
        let raw = self.read_raw(c)?;
        chunk::decode(&raw, c.count as usize).map_err(|m| self.corrupt(c, m))
    }

    /// Chunk `c`'s points at `start` or later as (first timestamp, count), when its
    /// largest value (from the index) is among them; see [`chunk::tail_from`]. `None`
    /// when that takes decoding the whole chunk, or the block does not know the chunk's
    /// values (version 1).
    pub fn tail_from(
        &self,
        c: &ChunkMeta,
        start: i64,
        bufs: &mut ChunkBuffers,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        let Some((_, top)) = c.value_range else {
            return Ok(None);
        };
        self.read_raw_into(c, &mut bufs.raw)?;
        Ok(chunk::tail_from(&bufs.raw, c.count as usize, start, top)
            .map_err(|m| self.corrupt(c, m))?
            .map(|(first, n)| (first, n as u64)))
    }

    fn corrupt(&self, c: &ChunkMeta, m: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!(
                "chunk of series {} at byte offset {}: {m}",
                c.series, c.offset
            ),
        }
    }
}

/// Writes a block: chunks in increasing series order, then [`BlockWriter::finish`].
pub struct BlockWriter {
    dir: PathBuf,
    id: u64,
    tmp: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    chunks: Vec<ChunkMeta>,
    /// The format written: [`VERSION`], or 1 in tests of reading older blocks.
    version: u32,
}

impl BlockWriter {
    pub fn create(dir: &Path, id: u64) -> Result<Self, StoreError> {
        let tmp = dir.join(format!("{id:016}.blk.tmp"));
        let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC).map_err(|e| io_err(&tmp, e))?;
        Ok(BlockWriter {
            dir: dir.to_path_buf(),
            id,
            tmp,
            out,
            offset: MAGIC.len() as u64,
            chunks: Vec::new(),
            version: VERSION,
        })
    }

    /// Writes the version 1 format (no values' range), as skymeter did before version 2.
    #[cfg(test)]
    pub fn version_1(mut self) -> Self {
        self.version = 1;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Adds a series' sorted, de-duplicated points (nothing when empty).
    pub fn add(&mut self, series: u64, ts: &[i64], vals: &[f64]) -> Result<(), StoreError> {
        if ts.is_empty() {
            return Ok(());
        }
        let enc = chunk::encode(ts, vals).map_err(|m| StoreError::Corrupt {
            path: self.tmp.display().to_string(),
            message: format!("cannot encode series {series}: {m}"),
        })?;
        let meta = ChunkMeta {
            series,
            offset: 0,
            len: enc.len() as u32,
            count: ts.len() as u32,
            min_ts: ts[0],
            max_ts: ts[ts.len() - 1],
            crc: crc32fast::hash(&enc),
            value_range: Some(value_range(vals)),
        };
        self.add_raw(meta, &enc)
    }

    /// Copies an already encoded chunk (decoding it once when it comes from a version 1
    /// block, for its values' range).
    pub fn add_raw(&mut self, mut meta: ChunkMeta, raw: &[u8]) -> Result<(), StoreError> {
        debug_assert!(self.chunks.last().is_none_or(|c| c.series < meta.series));
        if meta.value_range.is_none() {
            let (_, vals) =
                chunk::decode(raw, meta.count as usize).map_err(|m| StoreError::Corrupt {
                    path: self.tmp.display().to_string(),
                    message: format!("cannot decode the chunk of series {}: {m}", meta.series),
                })?;
            meta.value_range = Some(value_range(&vals));
        }
        meta.offset = self.offset;
        self.out.write_all(raw).map_err(|e| io_err(&self.tmp, e))?;
        self.offset += raw.len() as u64;
        self.chunks.push(meta);
        Ok(())
    }

    /// Writes the index and footer, syncs, renames into place, and opens the block.
    pub fn finish(
        mut self,
        level: u32,
        min_seq: u64,
        max_seq: u64,
        sources: &[u64],
    ) -> Result<Block, StoreError> {
        let mut meta = Vec::with_capacity(16 + sources.len() * 8 + self.chunks.len() * ENTRY);
        put_uvarint(&mut meta, sources.len() as u64);
        for s in sources {
            meta.extend_from_slice(&s.to_le_bytes());
        }
        put_uvarint(&mut meta, self.chunks.len() as u64);
        for c in &self.chunks {
            meta.extend_from_slice(&c.series.to_le_bytes());
            meta.extend_from_slice(&c.offset.to_le_bytes());
            meta.extend_from_slice(&c.len.to_le_bytes());
            meta.extend_from_slice(&c.count.to_le_bytes());
            meta.extend_from_slice(&c.min_ts.to_le_bytes());
            meta.extend_from_slice(&c.max_ts.to_le_bytes());
            meta.extend_from_slice(&c.crc.to_le_bytes());
            if self.version >= 2 {
                let (lo, hi) = c.value_range.unwrap_or((f64::NAN, f64::NAN));
                meta.extend_from_slice(&lo.to_le_bytes());
                meta.extend_from_slice(&hi.to_le_bytes());
            }
        }
        let mut footer = Vec::with_capacity(FOOTER);
        footer.extend_from_slice(&self.offset.to_le_bytes());
        footer.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&meta).to_le_bytes());
        footer.extend_from_slice(&min_seq.to_le_bytes());
        footer.extend_from_slice(&max_seq.to_le_bytes());
        footer.extend_from_slice(&self.id.to_le_bytes());
        footer.extend_from_slice(&level.to_le_bytes());
        footer.extend_from_slice(&self.version.to_le_bytes());
        footer.extend_from_slice(FOOTER_MAGIC);
        let tmp = self.tmp.clone();
        self.out.write_all(&meta).map_err(|e| io_err(&tmp, e))?;
        self.out.write_all(&footer).map_err(|e| io_err(&tmp, e))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| io_err(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(file);
        let path = block_path(&self.dir, self.id);
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        sync_dir(&self.dir)?;
        Block::open(&path)
    }

    /// Abandons the block (removes the temporary file).
    pub fn abandon(self) {
        let tmp = self.tmp.clone();
        drop(self);
        let _ = fs::remove_file(tmp);
    }
}
