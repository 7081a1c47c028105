//! Cost lines keyed: a line sent again replaces the stored one; the v0 → v1 migration.

use super::*;
use skymeter_model::Batch;

fn batch_at(collected_at: &str, costs: Vec<Cost>) -> Batch {
    let mut b = Batch::new("agent-1", "billing", t(collected_at));
    b.costs = costs;
    b
}

fn grouped(s: &EmbeddedStore, group_by: &[&str]) -> Vec<CostGroup> {
    s.costs(&CostQuery {
        group_by: group_by.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
}

/// (service, billed, effective, lines) of each group by service.
fn by_service(s: &EmbeddedStore) -> Vec<(String, f64, f64, u64)> {
    grouped(s, &["service"])
        .into_iter()
        .map(|g| {
            (
                g.group["service"].clone(),
                g.billed_cost,
                g.effective_cost,
                g.lines,
            )
        })
        .collect()
}

#[test]
fn a_line_sent_again_in_a_new_batch_replaces_the_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d1 = t("2026-11-01T00:00:00Z");
    let d2 = t("2026-11-02T00:00:00Z");
    let first = batch_at(
        "2026-11-02T06:00:00Z",
        vec![
            cost(1.25, "USD", "EC2", d1),
            cost(0.50, "USD", "S3", d1),
            cost(2.00, "USD", "EC2", d2),
        ],
    );
    assert_eq!(s.ingest(&first).unwrap(), IngestOutcome::Stored);
    // Cost Explorer revised day 1 of EC2 and day 2 is still growing: read again, same keys.
    let again = batch_at(
        "2026-11-02T12:00:00Z",
        vec![cost(1.75, "USD", "EC2", d1), cost(3.00, "USD", "EC2", d2)],
    );
    assert_eq!(s.ingest(&again).unwrap(), IngestOutcome::Stored);

    assert_eq!(
        by_service(&s),
        [
            ("EC2".to_string(), 4.75, 2.375, 2),
            ("S3".to_string(), 0.50, 0.25, 1)
        ]
    );
    let days: Vec<(String, f64, u64)> = grouped(&s, &["day"])
        .into_iter()
        .map(|g| (g.group["day"].clone(), g.billed_cost, g.lines))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-11-01".to_string(), 2.25, 2),
            ("2026-11-02".to_string(), 3.0, 1)
        ]
    );
    assert_eq!(s.stats().unwrap().costs, 3);
}

#[test]
fn lines_that_differ_in_any_key_field_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d = t("2026-11-01T00:00:00Z");
    let base = cost(1.0, "USD", "EC2", d);
    // One change of one key field each (SubAccountId twice: another value, and absent).
    let variants: [fn(&mut Cost); 12] = [
        |c| c.x_source = CostSource::Estimated,
        |c| c.provider_name = "Google Cloud".into(),
        |c| c.sub_account_id = Some("222".into()),
        |c| c.sub_account_id = None,
        |c| c.region_id = Some("eu-west-1".into()),
        |c| c.service_name = "S3".into(),
        |c| c.resource_id = Some("i-1".into()),
        |c| c.sku_id = Some("SKU1".into()),
        |c| c.charge_category = ChargeCategory::Tax,
        |c| c.charge_period_start = t("2026-10-31T00:00:00Z"),
        |c| c.charge_period_end = t("2026-11-01T12:00:00Z"),
        |c| c.billing_currency = "EUR".into(),
    ];
    let mut lines = vec![base.clone()];
    for change in variants {
        let mut c = base.clone();
        change(&mut c);
        lines.push(c);
    }
    s.ingest(&batch_at("2026-11-02T00:00:00Z", lines.clone()))
        .unwrap();
    assert_eq!(s.stats().unwrap().costs, 1 + variants.len() as u64);

    // The same lines again, each worth 10× more: every one replaced, none added.
    for c in &mut lines {
        c.billed_cost *= 10.0;
        c.effective_cost *= 10.0;
    }
    s.ingest(&batch_at("2026-11-03T00:00:00Z", lines)).unwrap();
    assert_eq!(s.stats().unwrap().costs, 1 + variants.len() as u64);
    let totals: Vec<(String, f64, u64)> = grouped(&s, &[])
        .into_iter()
        .map(|g| (g.currency, g.billed_cost, g.lines))
        .collect();
    assert_eq!(
        totals,
        [("EUR".to_string(), 10.0, 1), ("USD".to_string(), 120.0, 12)]
    );
}

#[test]
fn a_late_retry_of_an_older_collection_does_not_undo_newer_figures() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d = t("2026-11-01T00:00:00Z");
    let newer = batch_at("2026-11-02T12:00:00Z", vec![cost(9.0, "USD", "EC2", d)]);
    let older = batch_at("2026-11-02T06:00:00Z", vec![cost(7.0, "USD", "EC2", d)]);
    s.ingest(&newer).unwrap();
    assert_eq!(s.ingest(&older).unwrap(), IngestOutcome::Stored);
    assert_eq!(by_service(&s), [("EC2".to_string(), 9.0, 4.5, 1)]);

    // Within one batch (one collection time) the line applied last wins.
    let twice = batch_at(
        "2026-11-03T00:00:00Z",
        vec![cost(1.0, "USD", "EC2", d), cost(2.0, "USD", "EC2", d)],
    );
    s.ingest(&twice).unwrap();
    assert_eq!(by_service(&s), [("EC2".to_string(), 2.0, 1.0, 1)]);
}

#[test]
fn keyed_lines_survive_reopen_and_a_replay_of_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let d = t("2026-11-01T00:00:00Z");
    let mut priced = cost(3.0, "USD", "Lambda", d);
    priced.x_source = CostSource::Estimated;
    priced.x_price_date = Some("2026-10-15".into());
    let b1 = batch_at(
        "2026-11-02T06:00:00Z",
        vec![cost(1.0, "USD", "EC2", d), priced.clone()],
    );
    priced.billed_cost = 4.0;
    priced.x_price_date = Some("2026-10-20".into());
    let b2 = batch_at(
        "2026-11-02T12:00:00Z",
        vec![cost(5.0, "USD", "EC2", d), priced],
    );
    {
        let s = open(dir.path());
        s.ingest(&b1).unwrap();
        s.ingest(&b2).unwrap();
    }
    let expect = [
        ("EC2".to_string(), 5.0, 2.5, 1),
        ("Lambda".to_string(), 4.0, 1.5, 1),
    ];
    {
        let s = open(dir.path());
        assert_eq!(by_service(&s), expect);
        assert_eq!(s.ingest(&b1).unwrap(), IngestOutcome::Duplicate);
    }
    // SQLite lost everything (as a power cut may lose commits made with synchronous =
    // NORMAL): both batches come back from the store's WAL, in order, and the newer value
    // wins again.
    for f in ["meta.sqlite", "meta.sqlite-wal", "meta.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let s = open(dir.path());
    assert_eq!(by_service(&s), expect);
    let est = s
        .costs(&CostQuery {
            source: Some("estimated".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(est[0].oldest_price_date.as_deref(), Some("2026-10-20"));
}

#[test]
fn groups_carry_the_oldest_price_date_of_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d = t("2026-11-01T00:00:00Z");
    let estimated = |service: &str, price_date: Option<&str>| {
        let mut c = cost(1.0, "USD", service, d);
        c.x_source = CostSource::Estimated;
        c.x_price_date = price_date.map(str::to_string);
        c
    };
    s.ingest(&batch_at(
        "2026-11-02T00:00:00Z",
        vec![
            estimated("EC2", Some("2026-10-20")),
            estimated("S3", Some("2026-09-30")),
            estimated("Lambda", None),
            cost(2.0, "USD", "EC2", d),
        ],
    ))
    .unwrap();
    let dates: Vec<(String, String, Option<String>)> = grouped(&s, &["source", "service"])
        .into_iter()
        .map(|g| {
            (
                g.group["source"].clone(),
                g.group["service"].clone(),
                g.oldest_price_date,
            )
        })
        .collect();
    let date = |d: &str| Some(d.to_string());
    assert_eq!(
        dates,
        [
            ("billed".into(), "EC2".into(), None),
            ("estimated".into(), "EC2".into(), date("2026-10-20")),
            ("estimated".into(), "Lambda".into(), None),
            ("estimated".into(), "S3".into(), date("2026-09-30")),
        ]
    );
    let total = grouped(&s, &["source"]);
    assert_eq!(total[1].oldest_price_date, date("2026-09-30"));
    // In the API's JSON the field is absent, not null, when no line has a price date.
    let billed = serde_json::to_value(&total[0]).unwrap();
    assert!(billed.get("oldest_price_date").is_none(), "{billed}");
}

/// The `costs` table as skymeter wrote it before cost lines were keyed (schema version 0).
const V0_COSTS: &str = "CREATE TABLE costs (
    n INTEGER PRIMARY KEY, provider TEXT NOT NULL, provider_name TEXT NOT NULL, service TEXT NOT NULL,
    account TEXT NOT NULL, region TEXT NOT NULL, resource TEXT NOT NULL, category TEXT NOT NULL,
    source TEXT NOT NULL, currency TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    billed REAL NOT NULL, effective REAL NOT NULL, record TEXT NOT NULL
);
CREATE INDEX costs_start ON costs (start);
CREATE INDEX costs_end ON costs (end);";

fn insert_v0(db: &rusqlite::Connection, c: &Cost) {
    db.execute(
        "INSERT INTO costs (provider, provider_name, service, account, region, resource, category, source, currency,
                            start, end, billed, effective, record)
         VALUES ('aws', ?, ?, ?, ?, ?, 'Usage', ?, ?, ?, ?, ?, ?, ?)",
        rusqlite::params![
            c.provider_name,
            c.service_name,
            c.sub_account_id.as_deref().unwrap_or_default(),
            c.region_id.as_deref().unwrap_or_default(),
            c.resource_id.as_deref().unwrap_or_default(),
            serde_json::to_value(c.x_source).unwrap().as_str().unwrap(),
            c.billing_currency,
            c.charge_period_start.timestamp_nanos_opt().unwrap(),
            c.charge_period_end.timestamp_nanos_opt().unwrap(),
            c.billed_cost,
            c.effective_cost,
            serde_json::to_string(c).unwrap(),
        ],
    )
    .unwrap();
}

#[test]
fn an_old_database_is_migrated_keeping_the_newest_line_of_each_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = t("2026-11-01T00:00:00Z");
    {
        let db = rusqlite::Connection::open(dir.path().join("meta.sqlite")).unwrap();
        db.execute_batch(V0_COSTS).unwrap();
        // The same EC2 line stored three times by re-sent billing periods: the last is newest.
        for billed in [1.0, 2.0, 3.0] {
            insert_v0(&db, &cost(billed, "USD", "EC2", d));
        }
        // Two lines that differ only in SkuId (a column v0 did not have): both kept.
        let mut a = cost(0.25, "USD", "S3", d);
        a.sku_id = Some("SKU-A".into());
        let mut b = a.clone();
        b.sku_id = Some("SKU-B".into());
        b.billed_cost = 0.5; // effective stays 0.125
        insert_v0(&db, &a);
        insert_v0(&db, &b);
        let mut est = cost(8.0, "USD", "Lambda", d);
        est.x_source = CostSource::Estimated;
        est.x_price_date = Some("2026-10-01".into());
        insert_v0(&db, &est);
    }
    let s = open(dir.path());
    assert_eq!(
        by_service(&s),
        [
            ("EC2".to_string(), 3.0, 1.5, 1),
            ("Lambda".to_string(), 8.0, 4.0, 1),
            ("S3".to_string(), 0.75, 0.25, 2),
        ]
    );
    let lambda = grouped(&s, &["service"]).remove(1);
    assert_eq!(lambda.oldest_price_date.as_deref(), Some("2026-10-01"));
    // The migrated lines are keyed like new ones: sent again, each replaces its line.
    let mut b_again = cost(0.6, "USD", "S3", d);
    b_again.sku_id = Some("SKU-B".into());
    s.ingest(&batch_at(
        "2026-11-05T00:00:00Z",
        vec![cost(4.0, "USD", "EC2", d), b_again],
    ))
    .unwrap();
    assert_eq!(
        by_service(&s),
        [
            ("EC2".to_string(), 4.0, 2.0, 1),
            ("Lambda".to_string(), 8.0, 4.0, 1),
            ("S3".to_string(), 0.85, 0.425, 2),
        ]
    );
    drop(s);
    let db = rusqlite::Connection::open(dir.path().join("meta.sqlite")).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::super::meta::SCHEMA_VERSION);
}

#[test]
fn a_database_from_a_newer_skymeter_is_refused_naming_its_version() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = rusqlite::Connection::open(dir.path().join("meta.sqlite")).unwrap();
        db.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let mut o = EmbeddedOptions::new(dir.path());
    o.background = false;
    let err = EmbeddedStore::open(o).err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("meta.sqlite") && msg.contains("schema version 99"),
        "{msg}"
    );
}

/// The grouping sums in Rust what SQLite's `SUM` sums (compensated), groups by day and
/// month as `strftime` did, and several groupings from one read equal each asked alone.
#[test]
fn groupings_equal_sqls_sums_and_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Awkward figures: tenths, a huge value and its negation, tiny ones, over 40 days and
    // two services, two sources.
    let mut costs = Vec::new();
    for d in 0..40i64 {
        let day = t("2026-10-15T00:00:00Z") + chrono::Duration::days(d);
        for (k, v) in [0.1, 0.2, 1e16, -1e16, 3.3, 1e-9, 7.77].iter().enumerate() {
            let mut c = cost(
                *v * (1.0 + d as f64 / 7.0),
                "USD",
                ["EC2", "S3"][k % 2],
                day,
            );
            c.resource_id = Some(format!("i-{k}"));
            c.x_source = if d % 3 == 0 {
                CostSource::Estimated
            } else {
                CostSource::Billed
            };
            costs.push(c);
        }
    }
    let mut b = batch_at("2026-11-30T00:00:00Z", costs);
    b.costs.sort_by_key(|c| c.charge_period_start);
    s.ingest(&b).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("meta.sqlite")).unwrap();
    let sql_sum = |service: &str, day: &str| -> f64 {
        db.query_row(
            "SELECT SUM(billed) FROM costs WHERE service = ? AND strftime('%Y-%m-%d', start / 1000000000, 'unixepoch') = ?",
            rusqlite::params![service, day],
            |r| r.get(0),
        )
        .unwrap()
    };
    let by_day = grouped(&s, &["service", "day"]);
    assert_eq!(by_day.len(), 80);
    for g in &by_day {
        let want = sql_sum(&g.group["service"], &g.group["day"]);
        assert_eq!(g.billed_cost.to_bits(), want.to_bits(), "{:?}", g.group);
    }
    let months: Vec<(String, u64)> = grouped(&s, &["month"])
        .into_iter()
        .map(|g| (g.group["month"].clone(), g.lines))
        .collect();
    assert_eq!(
        months,
        [
            ("2026-10".to_string(), 17 * 7),
            ("2026-11".to_string(), 23 * 7)
        ]
    );

    let q = |start: &str, end: &str, by: &[&str]| CostQuery {
        start: Some(t(start)),
        end: Some(t(end)),
        group_by: by.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    };
    let qs = [
        q(
            "2026-10-20T00:00:00Z",
            "2026-11-05T00:00:00Z",
            &["service", "source", "day"],
        ),
        q(
            "2026-11-01T12:00:00Z",
            "2026-11-30T00:00:00Z",
            &["resource", "source"],
        ),
        q("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z", &[]),
    ];
    let together = s.costs_many(&qs).unwrap();
    let alone: Vec<Vec<CostGroup>> = qs.iter().map(|q| s.costs(q).unwrap()).collect();
    assert_eq!(together, alone);
    assert_eq!(together[2][0].lines, 280);
}

/// A window of lines read in one pass holds exactly the lines the pages of `cost_lines`
/// hold for it.
#[test]
fn a_window_of_lines_in_one_pass_equals_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Ingested resource by resource (as collectors do), so a window's lines are spread
    // over the whole table.
    for r in 0..30 {
        let lines = (0..60)
            .map(|d| {
                let mut c = cost(
                    r as f64 + d as f64 / 100.0,
                    "USD",
                    "EC2",
                    t("2026-09-01T00:00:00Z") + chrono::Duration::days(d),
                );
                c.resource_id = Some(format!("i-{r}"));
                c
            })
            .collect();
        s.ingest(&batch_at("2026-11-30T00:00:00Z", lines)).unwrap();
    }
    let (start, end) = (t("2026-10-03T00:00:00Z"), t("2026-10-20T00:00:00Z"));
    let key = |c: &Cost| {
        (
            c.resource_id.clone(),
            c.charge_period_start,
            c.billed_cost.to_bits(),
        )
    };
    let mut one_pass = Vec::new();
    s.for_each_cost_line(start, end, &mut |c| one_pass.push(key(c)))
        .unwrap();
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .cost_lines(&CostLineQuery {
                start: Some(start),
                end: Some(end),
                limit: Some(100),
                cursor,
                ..Default::default()
            })
            .unwrap();
        paged.extend(page.items.iter().map(key));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    one_pass.sort();
    paged.sort();
    assert_eq!(one_pass.len(), 30 * 17);
    assert_eq!(one_pass, paged);
}
