//! Property tests of the on-disk formats against damage: WAL replay after random
//! truncation and bit flips, the WAL record decoder, block files and chunks. None may
//! panic; a batch is recovered whole or not at all; everything before the damage is kept.
//!
//! A fixed number of cases per property (64; `PROPTEST_CASES` raises it, as `scripts/fuzz`
//! does). proptest records a failing case under `proptest-regressions/` and replays it
//! first on the next run.

use super::super::{block, chunk, record, wal};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const BATCHES: usize = 12;
const POINTS: usize = 7;

/// Batch `i`: `POINTS` points of its own series (resource `b<i>`), so which batches
/// survived, and whether whole, can be read back per series.
fn numbered_batch(i: usize) -> Batch {
    let mut b = batch();
    b.points = (0..POINTS)
        .map(|j| {
            point(
                "fz",
                &format!("b{i}"),
                ts(1_000 + (i * POINTS + j) as i64),
                j as f64,
            )
        })
        .collect();
    b
}

/// A data directory whose WAL holds `BATCHES` records (none sealed), built once, and the
/// byte range of each record in the WAL segment.
struct Base {
    _dir: tempfile::TempDir,
    path: PathBuf,
    segment: PathBuf,
    frames: Vec<std::ops::Range<usize>>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        {
            let s = open(&path);
            for i in 0..BATCHES {
                s.ingest(&numbered_batch(i)).unwrap();
            }
        }
        let segment = wal::list_segments(&path.join("wal"))
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .max_by_key(|p| p.metadata().unwrap().len())
            .unwrap();
        let data = std::fs::read(&segment).unwrap();
        let mut frames = Vec::new();
        let mut off = 0;
        while off < data.len() {
            let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
            frames.push(off..off + 8 + len);
            off += 8 + len;
        }
        assert_eq!(frames.len(), BATCHES);
        Base {
            _dir: dir,
            path,
            segment,
            frames,
        }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Opens a copy of the base store whose WAL segment is `wal_bytes`; returns the open
/// result and, when it opened, the number of points of each batch found.
fn reopen_with_wal(wal_bytes: &[u8]) -> Result<BTreeMap<usize, usize>, StoreError> {
    let b = base();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&b.path, dir.path());
    let seg = dir.path().join("wal").join(b.segment.file_name().unwrap());
    std::fs::write(&seg, wal_bytes).unwrap();
    let s = EmbeddedStore::open(EmbeddedOptions {
        background: false,
        ..EmbeddedOptions::new(dir.path())
    })?;
    let page = s
        .points(&PointsQuery {
            series: SeriesQuery {
                metric: Some("fz".into()),
                page: PageQuery {
                    limit: Some(1000),
                    cursor: None,
                },
                ..Default::default()
            },
            start: ts(0),
            end: ts(1_000_000),
            step_s: None,
            agg: None,
        })
        .unwrap();
    Ok(page
        .items
        .iter()
        .map(|p| (p.key.resource.id[1..].parse().unwrap(), p.points.len()))
        .collect())
}

/// The byte offset a WAL error names.
fn named_offset(message: &str) -> Option<usize> {
    let rest = &message[message.find("byte offset ")? + "byte offset ".len()..];
    rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())]
        .parse()
        .ok()
}

/// Every batch in `0..n` whole, none after.
fn exactly_first(n: usize) -> BTreeMap<usize, usize> {
    (0..n).map(|i| (i, POINTS)).collect()
}

proptest! {
    #![proptest_config(config())]

    /// A crash cuts the WAL anywhere: every record that was whole is recovered, whole;
    /// the cut one is dropped.
    #[test]
    fn wal_replay_after_truncation_keeps_every_whole_batch(cut_at in any::<prop::sample::Index>()) {
        let b = base();
        let data = std::fs::read(&b.segment).unwrap();
        let cut = cut_at.index(data.len() + 1);
        let whole = b.frames.iter().filter(|f| f.end <= cut).count();
        let got = reopen_with_wal(&data[..cut]).expect("a truncated WAL opens");
        prop_assert_eq!(got, exactly_first(whole));
    }

    /// Bit flips: damage in the last record is a torn write (cut off; the rest kept);
    /// damage before it is refused with an error naming the segment and the offset of the
    /// damaged record. Never a panic, never part of a batch.
    #[test]
    fn wal_replay_after_bit_flips_never_keeps_part_of_a_batch(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)
    ) {
        let b = base();
        let original = std::fs::read(&b.segment).unwrap();
        let mut data = original.clone();
        for (at, bit) in &flips {
            let i = at.index(data.len());
            data[i] ^= 1 << bit;
        }
        // The first record with a changed byte (flips may cancel out: then none).
        let first_damaged = data
            .iter()
            .zip(&original)
            .position(|(a, b)| a != b)
            .map_or(BATCHES, |i| b.frames.iter().position(|f| f.contains(&i)).unwrap());
        match reopen_with_wal(&data) {
            // A damaged last record reads as a torn write, and so does damage whose
            // every later record is damaged too: what precedes it is kept, whole.
            Ok(got) => prop_assert_eq!(got, exactly_first(first_damaged)),
            Err(StoreError::Corrupt { path, message }) => {
                prop_assert!(first_damaged < BATCHES, "{}", message);
                prop_assert!(path.ends_with(&*b.segment.file_name().unwrap().to_string_lossy()));
                let at = b.frames[first_damaged].start;
                prop_assert_eq!(named_offset(&message), Some(at), "{}", message);
            }
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
    }

    /// `wal::replay` itself hands over exactly the records before the first damaged one,
    /// in order, before it stops.
    #[test]
    fn wal_replay_delivers_every_record_before_the_damage(
        at in any::<prop::sample::Index>(), bit in 0u8..8
    ) {
        let b = base();
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join(b.segment.file_name().unwrap());
        let mut data = std::fs::read(&b.segment).unwrap();
        let i = at.index(data.len());
        data[i] ^= 1 << bit;
        std::fs::write(&seg, &data).unwrap();
        let damaged = b.frames.iter().position(|f| f.contains(&i)).unwrap();
        let mut seen = Vec::new();
        let segs = wal::list_segments(dir.path()).unwrap();
        let res = wal::replay(&segs, |payload, _, off| {
            let rec = record::decode(payload).map_err(StoreError::BadRequest)?;
            seen.push((off as usize, rec.ids.len()));
            Ok(())
        });
        let expect: Vec<(usize, usize)> = b.frames[..damaged].iter().map(|f| (f.start, POINTS)).collect();
        prop_assert_eq!(seen, expect);
        if res.is_ok() {
            prop_assert_eq!(damaged, BATCHES - 1, "damage before the last record passed as a torn write");
        }
    }

    /// The record decoder on any bytes, and on damaged real records: an error or a record,
    /// never a panic, never more points than bytes.
    #[test]
    fn wal_records_decode_or_fail_cleanly(
        junk in prop::collection::vec(any::<u8>(), 0..512),
        which in 0..BATCHES, at in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let _ = record::decode(&junk);
        let mut with_version = junk.clone();
        with_version.insert(0, 1);
        if let Ok(r) = record::decode(&with_version) {
            prop_assert!(r.ids.len() <= with_version.len());
        }
        let b = base();
        let data = std::fs::read(&b.segment).unwrap();
        let f = &b.frames[which];
        let mut payload = data[f.start + 8..f.end].to_vec();
        let i = at.index(payload.len());
        payload[i] = byte;
        if let Ok(r) = record::decode(&payload) {
            prop_assert_eq!(r.ids.len(), r.ts.len());
            prop_assert_eq!(r.ids.len(), r.vals.len());
        }
    }

    /// Chunks: a damaged chunk decodes to an error or to exactly `n` points; never a panic.
    #[test]
    fn chunks_decode_or_fail_cleanly(
        start in -1_000_000_000_000i64..1_000_000_000_000,
        gaps in prop::collection::vec(1i64..10_000_000_000, 0..200),
        vals in prop::collection::vec(prop_oneof![any::<f64>(), (-100_000i64..100_000).prop_map(|v| v as f64 / 100.0)], 200),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut ts = vec![start];
        for g in &gaps {
            ts.push(ts.last().unwrap() + g);
        }
        let vals = &vals[..ts.len()];
        let enc = chunk::encode(&ts, vals).unwrap();
        let (t2, v2) = chunk::decode(&enc, ts.len()).unwrap();
        prop_assert_eq!(&t2, &ts);
        prop_assert!(v2.iter().zip(vals).all(|(a, b)| a.to_bits() == b.to_bits()));
        let mut bad = enc.clone();
        for (at, byte) in &damage {
            let i = at.index(bad.len());
            bad[i] = *byte;
        }
        if let Ok((t, v)) = chunk::decode(&bad, ts.len()) {
            prop_assert_eq!((t.len(), v.len()), (ts.len(), ts.len()));
        }
        let _ = chunk::decode(&enc[..cut.index(enc.len())], ts.len());
    }

    /// Block files: any damage (bytes changed, file cut) is refused at open or at read with
    /// a `Corrupt` error naming the file; never a panic, never wrong points.
    #[test]
    fn damaged_blocks_are_refused_not_misread(
        series in 1usize..20,
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = block::BlockWriter::create(dir.path(), 1).unwrap();
        let mut expect = BTreeMap::new();
        for s in 0..series as u64 {
            let ts: Vec<i64> = (0..50).map(|k| 1_000 + k * 60 + (s as i64 % 3) * k * k).collect();
            let vals: Vec<f64> = (0..50).map(|k| (k * s as i64) as f64 / 4.0).collect();
            w.add(s + 1, &ts, &vals).unwrap();
            expect.insert(s + 1, (ts, vals));
        }
        let blk = w.finish(0, 1, 1, &[]).unwrap();
        let path = blk.path.clone();
        drop(blk);
        let mut bytes = std::fs::read(&path).unwrap();
        let original = bytes.clone();
        for (at, byte) in &damage {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        std::fs::write(&path, &bytes).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let is_corrupt_here = |e: &StoreError| matches!(e, StoreError::Corrupt { path, .. } if path.ends_with(&name));
        match block::Block::open(&path) {
            Err(e) => prop_assert!(is_corrupt_here(&e), "{}", e),
            Ok(b) => {
                for c in &b.chunks {
                    match b.read(c) {
                        Err(e) => prop_assert!(is_corrupt_here(&e), "{}", e),
                        Ok((ts, vals)) => {
                            // What reads back is what was written, unless only footer
                            // fields outside every checksum were changed.
                            let (ets, evals) = &expect[&c.series];
                            prop_assert_eq!(&ts, ets);
                            prop_assert!(vals.iter().zip(evals).all(|(a, b)| a.to_bits() == b.to_bits()));
                        }
                    }
                }
                if bytes == original {
                    prop_assert_eq!(b.chunks.len(), series);
                }
            }
        }
    }
}
