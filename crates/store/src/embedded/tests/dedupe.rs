//! A retried batch (same id, same content) is a duplicate; a reused id with other content
//! is a conflict; both verdicts survive a restart, a lost SQLite file (WAL replay) and the
//! re-serialization of the retry.

use super::*;

fn sample() -> Batch {
    let mut b = batch();
    b.points = (0..5)
        .map(|j| point("cpu.utilization", "h1", ts(1_000_000 + j), j as f64 / 3.0))
        .collect();
    b.points[2].labels = [("cpu", "3")].into_iter().collect();
    b.resources = vec![resource("h1", ts(1_000_000))];
    b.costs = vec![cost(1.5, "USD", "EC2", ts(1_000_000))];
    b
}

fn counts(s: &EmbeddedStore) -> (u64, u64, u64) {
    let st = s.stats().unwrap();
    (st.points, st.costs, st.batches)
}

#[test]
fn same_content_is_a_duplicate_other_content_a_conflict_durably() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample();
    let mut changed = b.clone();
    changed.points[4].value += 1.0;
    // The same records written again by another serializer: other key order, another
    // offset for the same instants, escapes, a whole number written as a float.
    let mut text = serde_json::to_string(&b).unwrap();
    text = text.replace("1970-01-12T13:46:40Z", "1970-01-12T15:46:40+02:00");
    text = text.replace("\"period_s\":60", "\"period_s\":60.0");
    text = text.replace("\"host\"", "\"ho\\u0073t\"");
    assert!(text.contains("+02:00") && text.contains("60.0") && text.contains("\\u0073"));
    let rewritten: Batch = serde_json::from_str(&text).unwrap();
    assert_eq!(rewritten, b, "the rewrite decodes to the same batch");

    {
        let s = open(dir.path());
        assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Stored);
        let stored = counts(&s);
        assert_eq!(s.ingest(&rewritten).unwrap(), IngestOutcome::Duplicate);
        assert_eq!(s.ingest(&changed).unwrap(), IngestOutcome::Conflict);
        let mut relabelled = b.clone();
        relabelled.points[2].labels = [("cpu", "4")].into_iter().collect();
        assert_eq!(s.ingest(&relabelled).unwrap(), IngestOutcome::Conflict);
        let mut other_task = b.clone();
        other_task.task = "other".into();
        assert_eq!(s.ingest(&other_task).unwrap(), IngestOutcome::Conflict);
        assert_eq!(
            counts(&s),
            stored,
            "neither a duplicate nor a conflict stores anything"
        );
    }
    {
        // Reopened: the hash comes back from SQLite.
        let s = open(dir.path());
        assert_eq!(s.ingest(&changed).unwrap(), IngestOutcome::Conflict);
        assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Duplicate);
    }
    // SQLite lost: the batch row, hash included, comes back from the store's WAL.
    for f in ["meta.sqlite", "meta.sqlite-wal", "meta.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let s = open(dir.path());
    assert_eq!(s.ingest(&changed).unwrap(), IngestOutcome::Conflict);
    assert_eq!(s.ingest(&rewritten).unwrap(), IngestOutcome::Duplicate);
    assert_eq!(counts(&s).2, 1);
}

#[test]
fn a_batch_stored_before_hashes_were_kept_stays_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample();
    {
        let s = open(dir.path());
        assert_eq!(s.ingest(&b).unwrap(), IngestOutcome::Stored);
        s.flush().unwrap();
    }
    // What an older skymeter left: the row without a hash.
    let conn = rusqlite::Connection::open(dir.path().join("meta.sqlite")).unwrap();
    assert_eq!(
        conn.execute("UPDATE batches SET content_hash = NULL", [])
            .unwrap(),
        1
    );
    drop(conn);
    let s = open(dir.path());
    let mut changed = b.clone();
    changed.points[0].value = 99.0;
    assert_eq!(
        s.ingest(&changed).unwrap(),
        IngestOutcome::Duplicate,
        "without a stored hash the store cannot tell, and keeps the old answer"
    );
}
