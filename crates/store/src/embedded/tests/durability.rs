//! Atomicity, dedupe, crash safety.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

fn wal_segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn full_batch(i: i64) -> Batch {
    let mut b = batch();
    b.points = (0..10)
        .map(|j| {
            point(
                "cpu.utilization",
                "h1",
                ts(1_000_000 + i * 100 + j),
                j as f64,
            )
        })
        .collect();
    b.resources = vec![resource("h1", ts(1_000_000 + i))];
    b.costs = vec![cost(1.0, "USD", "EC2", ts(1_000_000))];
    b
}

#[test]
fn a_batch_is_stored_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = full_batch(0);
    b.points[7].ts = t("2300-01-01T00:00:00Z"); // beyond what the store can keep
    let err = s.ingest(&b).unwrap_err();
    assert!(
        matches!(&err, StoreError::BadRequest(m) if m.contains("points[7].ts")),
        "{err}"
    );
    let st = s.stats().unwrap();
    assert_eq!(
        (st.points, st.resources, st.costs, st.batches, st.series),
        (0, 0, 0, 0, 0)
    );

    // The refused batch's id was not consumed: the fixed batch is stored, all of it.
    b.points[7].ts = ts(1_000_007);
    assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Stored);
    let st = s.stats().unwrap();
    assert_eq!(
        (st.points, st.resources, st.costs, st.batches, st.series),
        (10, 1, 1, 1, 1)
    );
}

#[test]
fn a_retried_batch_is_stored_once_across_reopen_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let b = full_batch(0);
    {
        let s = open(dir.path());
        assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Stored);
        assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Duplicate);
    }
    {
        // Reopened: the id comes back from SQLite (and the points from the WAL).
        let s = open(dir.path());
        assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Duplicate);
        assert_eq!(all_points(&s, "cpu.utilization").len(), 10);
        s.flush().unwrap();
    }
    let s = open(dir.path());
    assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Duplicate);
    let st = s.stats().unwrap();
    assert_eq!((st.points, st.costs, st.batches), (10, 1, 1));
    assert_eq!(st.point_block_points, 10, "flushed into a block");
}

#[test]
fn concurrent_retries_of_one_batch_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let b = Arc::new(full_batch(0));
    let outcomes: Vec<IngestOutcome> = (0..8)
        .map(|_| {
            let (s, b) = (s.clone(), b.clone());
            std::thread::spawn(move || s.ingest(&b).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == IngestOutcome::Stored)
            .count(),
        1
    );
    assert_eq!(s.stats().unwrap().costs, 1);
}

#[test]
fn concurrent_ingest_keeps_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open_with(dir.path(), |o| o.head_max_points = 2_000));
    let handles: Vec<_> = (0..4)
        .map(|th| {
            let s = s.clone();
            std::thread::spawn(move || {
                for k in 0..50 {
                    let mut b = batch();
                    b.points = (0..100)
                        .map(|j| {
                            point(
                                "load",
                                &format!("h{th}"),
                                ts(k * 100 + j),
                                (th * 1000 + k) as f64,
                            )
                        })
                        .collect();
                    assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Stored);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let st = s.stats().unwrap();
    assert_eq!((st.points, st.batches, st.series), (20_000, 200, 4));
    assert!(
        st.point_block_points > 0,
        "the head was sealed along the way"
    );
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.stats().unwrap().points, 20_000);
}

#[test]
fn a_torn_wal_tail_is_cut_off_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        for i in 0..3 {
            s.ingest(&full_batch(i)).unwrap();
        }
    }
    let seg = wal_segments(dir.path())
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let good_len = seg.metadata().unwrap().len();
    // A crash in the middle of a write: a header announcing 1,000 bytes, and 10 of them.
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&1000u32.to_le_bytes()).unwrap();
    f.write_all(&[7u8; 14]).unwrap();
    drop(f);
    {
        let s = open(dir.path());
        assert_eq!(
            seg.metadata().unwrap().len(),
            good_len,
            "torn bytes cut off"
        );
        assert_eq!(all_points(&s, "cpu.utilization").len(), 30);
        s.ingest(&full_batch(3)).unwrap();
    }
    let s = open(dir.path());
    assert_eq!(all_points(&s, "cpu.utilization").len(), 40);
    assert_eq!(s.stats().unwrap().batches, 4);
}

#[test]
fn a_last_record_with_a_bad_checksum_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        for i in 0..3 {
            s.ingest(&full_batch(i)).unwrap();
        }
    }
    let seg = wal_segments(dir.path())
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    // SQLite already has the third batch (a process crash loses nothing of SQLite), so the
    // batch count stays 3; its points were only in the WAL.
    let s = open(dir.path());
    assert_eq!(all_points(&s, "cpu.utilization").len(), 20);
}

#[test]
fn damage_before_the_end_of_the_wal_is_a_corrupt_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        for i in 0..3 {
            s.ingest(&full_batch(i)).unwrap();
        }
    }
    let seg = wal_segments(dir.path())
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[20] ^= 0xff; // inside the first record's payload
    std::fs::write(&seg, &bytes).unwrap();
    let err = EmbeddedStore::open(EmbeddedOptions {
        background: false,
        ..EmbeddedOptions::new(dir.path())
    })
    .err()
    .expect("must refuse to open");
    match err {
        StoreError::Corrupt { path, message } => {
            assert!(
                path.ends_with(&*seg.file_name().unwrap().to_string_lossy()),
                "{path}"
            );
            assert!(message.contains("offset 0"), "{message}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn a_damaged_length_field_before_good_records_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        for i in 0..3 {
            s.ingest(&full_batch(i)).unwrap();
        }
    }
    let seg = wal_segments(dir.path())
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[3] = 0x7f; // the first record's length now runs past the end of the file
    std::fs::write(&seg, &bytes).unwrap();
    let err = EmbeddedStore::open(EmbeddedOptions {
        background: false,
        ..EmbeddedOptions::new(dir.path())
    })
    .err()
    .expect("must refuse to open");
    assert!(
        matches!(&err, StoreError::Corrupt { message, .. } if message.contains("offset 0") && message.contains("valid record follows")),
        "{err}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing truncated");
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _s = open(dir.path());
    let err = EmbeddedStore::open(EmbeddedOptions::new(dir.path()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
}

const CHILD_ENV: &str = "SKYMETER_STORE_CRASH_CHILD";
const CHILD_POINTS: usize = 20;

/// In the child: four threads ingest until killed (or 60 s pass), printing each
/// acknowledged batch id as `ACK <id>` once `ingest` has returned.
fn crash_child(dir: &str, round: i64) {
    let s = Arc::new(
        EmbeddedStore::open(EmbeddedOptions {
            head_max_points: 1_500,
            ..EmbeddedOptions::new(dir)
        })
        .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let threads: Vec<_> = (0..4i64)
        .map(|th| {
            let s = s.clone();
            std::thread::spawn(move || {
                for k in 0i64.. {
                    if std::time::Instant::now() > deadline {
                        return;
                    }
                    let mut b = batch();
                    let base = round * 100_000_000 + th * 10_000_000 + k * CHILD_POINTS as i64;
                    b.points = (0..CHILD_POINTS as i64)
                        .map(|j| point("crash.points", &format!("t{th}"), ts(base + j), j as f64))
                        .collect();
                    let mut c = cost(1.0, "USD", "EC2", ts(base));
                    c.resource_id = Some(b.batch_id.to_string());
                    b.costs = vec![c];
                    assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Stored);
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {}", b.batch_id).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_batch_and_stores_none_twice() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (dir, round) = spec.rsplit_once('|').unwrap();
        crash_child(dir, round.parse().unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<uuid::Uuid> = Vec::new();
    for (round, kill_after) in [(0i64, 150usize), (1, 400), (2, 37)] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "embedded::tests::durability::sigkill_mid_stream_loses_no_acknowledged_batch_and_stores_none_twice",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{}|{round}", dir.path().display()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).unwrap() == 0 {
                break;
            }
            // Only whole lines: a line cut by the kill was not acknowledged to us.
            if let Some(id) = line.strip_prefix("ACK ").and_then(|l| l.strip_suffix('\n')) {
                acked.push(id.parse().unwrap());
                seen += 1;
                if seen == kill_after {
                    child.kill().unwrap(); // SIGKILL
                }
            }
        }
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child was killed, not finished"
        );
        assert!(
            seen >= kill_after,
            "round {round}: child acknowledged only {seen}"
        );

        let s = open(dir.path());
        let groups = s
            .costs(&CostQuery {
                group_by: vec!["resource".into()],
                ..Default::default()
            })
            .unwrap();
        let lines_by_id: std::collections::HashMap<String, u64> = groups
            .iter()
            .map(|g| (g.group["resource"].clone(), g.lines))
            .collect();
        for id in &acked {
            assert_eq!(
                lines_by_id.get(&id.to_string()),
                Some(&1),
                "round {round}: acknowledged batch {id} lost"
            );
        }
        assert!(
            groups.iter().all(|g| g.lines == 1),
            "round {round}: a batch stored twice"
        );
        let points: usize = s
            .points(&PointsQuery {
                series: SeriesQuery {
                    metric: Some("crash.points".into()),
                    ..Default::default()
                },
                start: ts(0),
                end: ts(1_000_000_000),
                step_s: None,
                agg: None,
            })
            .unwrap()
            .items
            .iter()
            .map(|p| p.points.len())
            .sum();
        assert_eq!(
            points,
            groups.len() * CHILD_POINTS,
            "round {round}: points of stored batches, whole"
        );
        assert_eq!(s.stats().unwrap().batches as usize, groups.len());
        // The acked id survived the kill: reused with other content, it is refused.
        let mut again = batch();
        again.batch_id = acked[acked.len() / 2];
        assert_eq!(s.ingest(&again).unwrap(), IngestOutcome::Conflict);
    }
    let s = open(dir.path());
    assert!(
        s.stats().unwrap().point_block_points > 0,
        "the children sealed blocks along the way"
    );
}

#[test]
fn a_crash_between_writing_a_merged_block_and_deleting_its_sources_is_repaired_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let blocks_dir = dir.path().join("blocks");
    let saved = tempfile::tempdir().unwrap();
    {
        let s = open_with(dir.path(), |o| o.compaction_fan_in = 100);
        for i in 0..2 {
            let mut b = batch();
            b.points = (0..10)
                .map(|j| point("m", "h", ts(i * 10 + j), j as f64))
                .collect();
            s.ingest(&b).unwrap();
            s.flush().unwrap();
        }
        for f in std::fs::read_dir(&blocks_dir).unwrap() {
            let p = f.unwrap().path();
            std::fs::copy(&p, saved.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    {
        let s = open_with(dir.path(), |o| o.compaction_fan_in = 2);
        s.flush().unwrap(); // merges the two blocks into one
        assert_eq!(std::fs::read_dir(&blocks_dir).unwrap().count(), 1);
    }
    // As if the process died before deleting the merged blocks' sources, mid-way through
    // writing another block.
    for f in std::fs::read_dir(saved.path()).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, blocks_dir.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(blocks_dir.join("0000000000000099.blk.tmp"), b"partial").unwrap();
    let s = open(dir.path());
    assert_eq!(
        std::fs::read_dir(&blocks_dir).unwrap().count(),
        1,
        "sources and leftovers removed"
    );
    assert_eq!(all_points(&s, "m").len(), 20);
    assert_eq!(s.stats().unwrap().point_block_points, 20);
}

#[test]
fn the_background_seals_a_wal_of_batches_without_points() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(EmbeddedOptions {
        wal_max_bytes: 1,
        ..EmbeddedOptions::new(dir.path())
    })
    .unwrap();
    let mut b = batch();
    b.resources = vec![resource("h1", ts(1000))];
    s.ingest(&b).unwrap();
    let wal_bytes = || -> u64 {
        wal_segments(dir.path())
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum()
    };
    assert!(wal_bytes() > 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal_bytes() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was never checkpointed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(s);
    let s = open(dir.path());
    assert!(s.resource("host/acct//h1").unwrap().is_some());
    assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Duplicate);
}
