//! The PostgreSQL metadata against the embedded store: the same batches, the same answers.
//! On the machine's PostgreSQL (127.0.0.1:5432, trust auth), each test in a database of
//! its own, dropped at the end.

use super::*;
use crate::embedded::tests::{cost, open, point, resource, t};
use crate::EmbeddedStore;
use parking_lot::Mutex;
use skymeter_model::{Batch, CostSource};
use std::sync::Arc;

/// A database for one test, dropped (with its connections) when the test ends.
struct TestDb {
    name: String,
}

impl TestDb {
    fn create(test: &str) -> Option<TestDb> {
        if std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
            skymeter_testkit::tool::missing_tool(
                test,
                "no PostgreSQL on 127.0.0.1:5432 (these machines run one, trust auth)",
            );
            return None;
        }
        let name = format!(
            "skymeter_t_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut c = postgres::Client::connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            postgres::NoTls,
        )
        .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        Some(TestDb { name })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            postgres::NoTls,
        ) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Keeps what it is given, for the tests to look at.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Batch>>>);

impl PointWriter for Recorder {
    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        self.0.lock().push(batch.clone());
        Ok(())
    }
}

fn scale_out(db: &TestDb, writer: Recorder) -> ScaleOutStore {
    ScaleOutStore::open(
        &ScaleOutOptions {
            metadata_url: db.url(),
            // Not read by these tests: nothing listens there.
            query_url: "http://127.0.0.1:9".into(),
            max_connections: 4,
        },
        Box::new(writer),
    )
    .unwrap()
}

/// Batches that exercise every metadata rule: resources observed out of order and
/// changing, cost lines replaced by later collections and not by earlier ones, points of
/// several series, errors.
fn history() -> Vec<Batch> {
    let mut out = Vec::new();
    let mut b = Batch::new("agent-1", "inventory", t("2026-11-01T10:00:00Z"));
    let mut web = resource("web-1", t("2026-11-01T10:00:00Z"));
    web.tags.insert("env".into(), "prod".into());
    b.resources.push(web.clone());
    b.resources
        .push(resource("db-1", t("2026-11-01T10:00:00Z")));
    for m in 0..5 {
        let at = t("2026-11-01T10:00:00Z") + chrono::Duration::minutes(m);
        b.points
            .push(point("cpu.utilization", "web-1", at, m as f64 * 1.5));
        b.points
            .push(point("cpu.utilization", "db-1", at, 40.0 + m as f64));
    }
    b.costs
        .push(cost(1.25, "USD", "EC2", t("2026-11-01T00:00:00Z")));
    b.costs
        .push(cost(0.5, "USD", "S3", t("2026-11-01T00:00:00Z")));
    b.costs
        .push(cost(7.0, "EUR", "EC2", t("2026-11-02T00:00:00Z")));
    out.push(b);

    // Later: web-1 renamed and retagged; a revised EC2 line.
    let mut b = Batch::new("agent-1", "inventory", t("2026-11-02T10:00:00Z"));
    let mut web2 = web.clone();
    web2.name = "web-one".into();
    web2.tags.insert("env".into(), "staging".into());
    web2.observed_at = t("2026-11-02T10:00:00Z");
    b.resources.push(web2);
    b.costs
        .push(cost(1.75, "USD", "EC2", t("2026-11-01T00:00:00Z")));
    let mut rated = cost(3.0, "USD", "Compute", t("2026-11-01T00:00:00Z"));
    rated.x_source = CostSource::Rated;
    rated.x_price_date = Some("2026-10-01".into());
    b.costs.push(rated);
    out.push(b);

    // A late retry of an old collection: older observation of web-1 (only moves
    // first_seen back), an EC2 line from an earlier collection (must not replace).
    let mut b = Batch::new("agent-2", "inventory", t("2026-10-31T10:00:00Z"));
    let mut old = web.clone();
    old.observed_at = t("2026-10-31T10:00:00Z");
    b.resources.push(old);
    b.costs
        .push(cost(9.99, "USD", "EC2", t("2026-11-01T00:00:00Z")));
    b.errors.push(skymeter_model::CollectError {
        plugin: "host".into(),
        message: "reading /proc failed".into(),
        context: Default::default(),
        at: t("2026-10-31T10:00:00Z"),
    });
    out.push(b);

    // Many resources, for paging.
    let mut b = Batch::new("agent-1", "inventory", t("2026-11-03T10:00:00Z"));
    for i in 0..25 {
        let mut r = resource(&format!("node-{i:02}"), t("2026-11-03T10:00:00Z"));
        r.kind = if i % 2 == 0 { "host" } else { "vm" }.into();
        r.name = format!("N{}", 25 - i);
        b.resources.push(r);
    }
    out.push(b);
    out
}

fn all_resources(s: &dyn Store, sort: &str) -> Vec<StoredResource> {
    let mut q = ResourceQuery {
        sort: Some(sort.into()),
        page: PageQuery {
            limit: Some(7),
            cursor: None,
        },
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let page = s.resources(&q).unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.page.cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn postgres_metadata_answers_as_the_embedded_store() {
    let test = "postgres_metadata_answers_as_the_embedded_store";
    let Some(db) = TestDb::create(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let embedded: EmbeddedStore = open(dir.path());
    let recorder = Recorder::default();
    let pg = scale_out(&db, recorder.clone());
    for b in history() {
        assert_eq!(embedded.ingest(&b).unwrap(), IngestOutcome::Stored);
        assert_eq!(pg.ingest(&b).unwrap(), IngestOutcome::Stored);
    }
    // Resources, every sort order, walked a page of 7 at a time.
    for sort in [
        "key",
        "-key",
        "name",
        "-name",
        "kind",
        "last_seen",
        "-first_seen",
    ] {
        assert_eq!(
            all_resources(&pg, sort),
            all_resources(&embedded, sort),
            "resources sorted by {sort}"
        );
    }
    for q in [
        ResourceQuery {
            kind: Some("vm".into()),
            ..Default::default()
        },
        ResourceQuery {
            tags: [("env".to_string(), "staging".to_string())].into(),
            ..Default::default()
        },
        ResourceQuery {
            q: Some("WEB".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(
            pg.resources(&q).unwrap(),
            embedded.resources(&q).unwrap(),
            "{q:?}"
        );
    }
    let key = "host/acct//web-1";
    assert_eq!(pg.resource(key).unwrap(), embedded.resource(key).unwrap());
    assert!(pg.resource(key).unwrap().is_some());
    let history = pg.resource_history(key).unwrap();
    assert_eq!(history, embedded.resource_history(key).unwrap());
    assert_eq!(history.len(), 1, "{history:?}");

    // Costs: groupings, filters, the lines themselves.
    for group_by in [
        vec![],
        vec!["service"],
        vec!["service", "day"],
        vec!["month", "source"],
        vec!["provider", "account", "region", "category"],
    ] {
        for source in [None, Some("billed"), Some("rated")] {
            let q = CostQuery {
                group_by: group_by.iter().map(|g| g.to_string()).collect(),
                source: source.map(String::from),
                ..Default::default()
            };
            assert_eq!(pg.costs(&q).unwrap(), embedded.costs(&q).unwrap(), "{q:?}");
        }
    }
    let q = CostQuery {
        start: Some(t("2026-11-02T00:00:00Z")),
        provider: Some("aws".into()),
        ..Default::default()
    };
    assert_eq!(pg.costs(&q).unwrap(), embedded.costs(&q).unwrap());
    let lines = |s: &dyn Store| {
        let mut q = CostLineQuery {
            limit: Some(2),
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let page = s.cost_lines(&q).unwrap();
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return out,
            }
        }
    };
    let mut ours = lines(&pg);
    let mut theirs = lines(&embedded);
    let order = |c: &Cost| {
        (
            c.service_name.clone(),
            c.charge_period_start,
            c.x_source.as_str(),
        )
    };
    ours.sort_by_key(order);
    theirs.sort_by_key(order);
    assert_eq!(ours, theirs);
    assert!(pg
        .costs(&CostQuery {
            group_by: vec!["colour".into()],
            ..Default::default()
        })
        .is_err());

    // Series: the catalog lists what the embedded store lists.
    let sq = SeriesQuery {
        metric: Some("cpu.*".into()),
        ..Default::default()
    };
    let mut a = pg.series(&sq).unwrap().items;
    let mut b = embedded.series(&sq).unwrap().items;
    a.sort_by(|x, y| x.key.cmp(&y.key));
    b.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    let metrics = pg.prom_metrics().unwrap();
    assert_eq!(metrics, embedded.prom_metrics().unwrap());

    // The writer got each batch with points, with the resource records of its points.
    let written = recorder.0.lock();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].points.len(), 10);

    // Sizes.
    let (ps, es) = (pg.stats().unwrap(), embedded.stats().unwrap());
    assert_eq!(
        (ps.resources, ps.costs, ps.batches, ps.series, ps.points),
        (es.resources, es.costs, es.batches, es.series, es.points)
    );
}

#[test]
fn servers_sharing_the_database_store_a_batch_once() {
    let test = "servers_sharing_the_database_store_a_batch_once";
    let Some(db) = TestDb::create(test) else {
        return;
    };
    // Servers starting together: the migration runs once, under the advisory lock.
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url();
            std::thread::spawn(move || PgMeta::connect(&url, 2).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let (w1, w2) = (Recorder::default(), Recorder::default());
    let (s1, s2) = (scale_out(&db, w1.clone()), scale_out(&db, w2.clone()));
    assert_eq!(s1.metadata().schema_version().unwrap(), 1);

    let mut b = Batch::new("agent-1", "host", t("2026-11-01T10:00:00Z"));
    b.resources
        .push(resource("web-1", t("2026-11-01T10:00:00Z")));
    b.points.push(point(
        "cpu.utilization",
        "web-1",
        t("2026-11-01T10:00:00Z"),
        1.0,
    ));
    assert_eq!(s1.ingest(&b).unwrap(), IngestOutcome::Stored);
    assert_eq!(s2.ingest(&b).unwrap(), IngestOutcome::Duplicate);
    let mut changed = b.clone();
    changed.points[0].value = 2.0;
    assert_eq!(s2.ingest(&changed).unwrap(), IngestOutcome::Conflict);
    assert_eq!(w1.0.lock().len(), 1);
    assert!(
        w2.0.lock().is_empty(),
        "a duplicate's points are not written again"
    );

    // The same new batch sent to both at once: one stores it, the other calls it a
    // duplicate, and the catalog counts its points once.
    let mut b = Batch::new("agent-1", "host", t("2026-11-01T10:01:00Z"));
    for i in 0..50 {
        b.points.push(point(
            "cpu.utilization",
            "web-1",
            t("2026-11-01T10:01:00Z") + chrono::Duration::seconds(i),
            i as f64,
        ));
    }
    let (s1, s2) = (Arc::new(s1), Arc::new(s2));
    let outcomes: Vec<IngestOutcome> = [s1.clone(), s2.clone()]
        .into_iter()
        .map(|s| {
            let b = b.clone();
            std::thread::spawn(move || s.ingest(&b).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let stored = outcomes
        .iter()
        .filter(|o| **o == IngestOutcome::Stored)
        .count();
    assert_eq!(stored, 1, "{outcomes:?}");
    let series = s1.series(&SeriesQuery::default()).unwrap().items;
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].points, 51);

    // Tokens made on one server authenticate on the other; revoked on one, refused on both.
    let (token, info) = s1.create_token("ci", &[Scope::Read]).unwrap();
    assert_eq!(s2.authenticate(&token).unwrap().unwrap().id, info.id);
    assert!(s2.authenticate(&format!("{token}x")).unwrap().is_none());
    assert!(s2.revoke_token(&info.id).unwrap());
    assert!(s1.authenticate(&token).unwrap().is_none());

    // Agents and the server's state are shared too.
    let reg: AgentRegistration = serde_json::from_value(serde_json::json!({
        "id": "agent-1", "hostname": "h", "version": "0", "heartbeat_interval_s": 30
    }))
    .unwrap();
    s1.register_agent(&reg, Utc::now()).unwrap();
    assert!(s2
        .heartbeat("agent-1", &Heartbeat::default(), Utc::now())
        .unwrap());
    assert!(!s2
        .heartbeat("agent-9", &Heartbeat::default(), Utc::now())
        .unwrap());
    assert_eq!(s2.agent_registration("agent-1").unwrap(), Some(reg));
    s1.put_server_state("rating.progress", "x").unwrap();
    assert_eq!(
        s2.server_state("rating.progress").unwrap().as_deref(),
        Some("x")
    );
}

#[test]
fn a_bad_url_or_an_absent_database_is_named_without_its_password() {
    let e = PgMeta::connect("mysql://u:sekret@h/db", 1)
        .err()
        .unwrap()
        .to_string();
    assert!(!e.contains("sekret"), "{e}");
    if std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        return;
    }
    let e = PgMeta::connect(
        "postgres://postgres:sekret@127.0.0.1:5432/skymeter_no_such_database",
        1,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(!e.contains("sekret"), "{e}");
    assert!(e.contains("skymeter_no_such_database"), "{e}");
}

#[test]
fn metadata_over_tls_checks_the_servers_certificate() {
    // The machine's PostgreSQL serves Debian's snakeoil certificate, issued to `localhost`.
    const CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let test = "metadata_over_tls_checks_the_servers_certificate";
    let Some(db) = TestDb::create(test) else {
        return;
    };
    if !std::path::Path::new(CERT).is_file() {
        skymeter_testkit::tool::missing_tool(
            test,
            "no /etc/ssl/certs/ssl-cert-snakeoil.pem (Debian's ssl-cert)",
        );
        return;
    }
    let url = format!(
        "postgres://postgres@localhost:5432/{}?sslmode=verify-full&sslrootcert={CERT}",
        db.name
    );
    let meta = PgMeta::connect(&url, 2).unwrap();
    let encrypted: bool = meta
        .conn()
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted, "the metadata connection is not encrypted");
    // 127.0.0.1 is not a name the certificate holds: refused, and the message says why.
    let e = PgMeta::connect(
        &format!(
            "postgres://postgres:sekret@127.0.0.1:5432/{}?sslmode=verify-full&sslrootcert={CERT}",
            db.name
        ),
        1,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("not valid for name"), "{e}");
    assert!(!e.contains("sekret"), "{e}");
}
