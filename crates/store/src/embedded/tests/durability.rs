//! Atomicity, dedupe, crash safety.

use super::*;
use skymeter_model::api::AgentRegistration;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

/// The shared rule for a missing outside tool (a skip on a laptop, a failure under CI).
use skymeter_testkit::tool;

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

const SYNC_CHILD_ENV: &str = "SKYMETER_STORE_SYNC_CHILD";

/// In the child: each change between two markers, each marker one `write` to stderr, so
/// that the parent's system call trace shows what the change synced.
fn sync_child(dir: &str) {
    let mark = |m: &str| {
        std::io::stderr()
            .write_all(format!("MARK {m}\n").as_bytes())
            .unwrap()
    };
    let s = open(Path::new(dir));
    s.check().unwrap();
    mark("create-begin");
    let (token, info) = s.create_token("ci", &[Scope::Read]).unwrap();
    mark("create-end");
    let (token2, info2) = s.create_token("ci2", &[Scope::Read]).unwrap();
    mark("register-begin");
    let reg = AgentRegistration {
        id: "agent-sync".into(),
        hostname: "h".into(),
        version: "0".into(),
        tasks: vec![],
        labels: Default::default(),
        heartbeat_interval_s: 10,
    };
    s.register_agent(&reg, Utc::now()).unwrap();
    mark("register-end");
    mark("revoke-begin");
    assert!(s.revoke_token(&info.id).unwrap());
    mark("revoke-end");
    // `skymeter token revoke` beside a running server goes through `TokenAdmin`.
    let admin = super::super::TokenAdmin::open(Path::new(dir)).unwrap();
    mark("admin-revoke-begin");
    assert!(admin.revoke(&info2.id).unwrap());
    mark("admin-revoke-end");
    println!("TOKENS {token} {token2}");
}

/// A power cut keeps what was synced. The embedded store's token and agent changes are
/// not in its WAL, so each must be synced to SQLite's WAL file before the call returns:
/// the test runs the changes in a child process under `strace` and checks that between
/// the start and the end of each call there is an `fsync`/`fdatasync` of `meta.sqlite-wal`
/// (with `synchronous = NORMAL` there is none: the commit would live in the page cache
/// only, and a revoked token could come back after the power cut).
#[test]
fn token_and_agent_changes_are_synced_before_they_return() {
    if let Ok(dir) = std::env::var(SYNC_CHILD_ENV) {
        sync_child(&dir);
        return;
    }
    let name = "embedded::tests::durability::token_and_agent_changes_are_synced_before_they_return";
    let tool_missing = |why: String| {
        tool::missing_tool(
            name,
            &format!("strace is needed ({why}); install the Debian package `strace`"),
        )
    };
    match std::process::Command::new("strace").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return tool_missing(format!("strace -V failed: {}", o.status)),
        Err(e) => return tool_missing(format!("strace not found: {e}")),
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let data = dir.path().join("data");
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-y",
            "-s",
            "64",
            "-e",
            "trace=write,fsync,fdatasync",
            "-o",
        ])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(SYNC_CHILD_ENV, &data)
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    if !out.status.success() && text.contains("Operation not permitted") {
        return tool_missing("ptrace is not permitted here".into());
    }
    assert!(out.status.success(), "child failed: {out:?}");
    let mut open_op: Option<String> = None;
    let mut synced = false;
    let mut checked = Vec::new();
    for line in text.lines() {
        if let Some(at) = line.find("MARK ") {
            let m = &line[at + 5..];
            let m = &m[..m.find('\\').unwrap_or(m.len())];
            if let Some(op) = m.strip_suffix("-begin") {
                open_op = Some(op.to_string());
                synced = false;
            } else if let Some(op) = m.strip_suffix("-end") {
                assert_eq!(open_op.as_deref(), Some(op), "markers out of order");
                assert!(synced, "{op}: returned without syncing meta.sqlite-wal");
                checked.push(op.to_string());
                open_op = None;
            }
        } else if (line.contains("fsync(") || line.contains("fdatasync("))
            && line.contains("meta.sqlite-wal>")
        {
            synced = true;
        }
    }
    assert_eq!(
        checked,
        ["create", "register", "revoke", "admin-revoke"],
        "trace:\n{text}"
    );

    // And what the calls did is there after the restart.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tokens: Vec<&str> = stdout
        .lines()
        // libtest may print the test's name on the same line first.
        .find_map(|l| l.split_once("TOKENS ").map(|(_, t)| t))
        .expect("the child prints its tokens")
        .split(' ')
        .collect();
    let s = open(&data);
    for t in tokens {
        assert!(
            s.authenticate(t).unwrap().is_none(),
            "a revoked token authenticates"
        );
    }
    assert!(s.agent_registration("agent-sync").unwrap().is_some());
}

/// `/health` calls `check`: it must answer while a writer holds the commit lock, the SQLite
/// writer connection and SQLite's write lock (a long batch), not queue behind it.
#[test]
fn the_health_check_does_not_wait_for_writers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    s.ingest(&full_batch(0)).unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let (s, released) = (s.clone(), released.clone());
        std::thread::spawn(move || {
            let _commit = s.inner.commit.lock();
            s.inner
                .meta
                .write("holding the writer", |c| {
                    c.execute_batch(
                        "BEGIN IMMEDIATE; INSERT OR REPLACE INTO state (k, v) VALUES ('held', 1);",
                    )?;
                    held_tx.send(()).unwrap();
                    // Until the checks are done, or 20 s (then the checks are blocked).
                    let _ = done_rx.recv_timeout(std::time::Duration::from_secs(20));
                    released.store(true, Ordering::SeqCst);
                    c.execute_batch("COMMIT")
                })
                .unwrap();
        })
    };
    held_rx.recv().unwrap();
    for _ in 0..100 {
        s.check().unwrap();
    }
    assert!(
        !released.load(Ordering::SeqCst),
        "the health check waited for the writer"
    );
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    // And it reports a store that stopped accepting writes.
    s.inner.fail(&StoreError::Database("simulated".into()));
    assert!(s.check().is_err());
}
