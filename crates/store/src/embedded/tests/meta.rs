//! Resources, costs, agents, tokens.

use super::*;
use serde_json::json;
use skymeter_model::api::{AgentRegistration, AgentStatus, Heartbeat};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn resources_keep_first_seen_and_record_changes_only_when_something_changed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut r = resource("i-1", t("2026-11-22T10:00:00Z"));
    r.attributes.insert("state".into(), json!("running"));
    r.tags.insert("env".into(), "dev".into());
    let ingest = |r: &Resource| {
        let mut b = batch();
        b.resources = vec![r.clone()];
        s.ingest(&b).unwrap();
    };
    ingest(&r);
    r.observed_at = t("2026-11-22T10:05:00Z");
    ingest(&r); // nothing changed
    r.observed_at = t("2026-11-22T10:10:00Z");
    r.attributes.insert("state".into(), json!("stopped"));
    r.attributes.insert("vcpus".into(), json!(2));
    r.tags.remove("env");
    r.tags.insert("team".into(), "core".into());
    ingest(&r);
    r.observed_at = t("2026-11-22T10:15:00Z");
    r.name = "renamed".into();
    ingest(&r);
    // An older observation arriving late moves first_seen back and changes nothing else.
    let mut old = r.clone();
    old.observed_at = t("2026-11-22T09:00:00Z");
    old.name = "ancient".into();
    ingest(&old);

    let key = "host/acct//i-1";
    let got = s.resource(key).unwrap().unwrap();
    assert_eq!(got.first_seen, t("2026-11-22T09:00:00Z"));
    assert_eq!(got.last_seen, t("2026-11-22T10:15:00Z"));
    assert_eq!(got.resource.name, "renamed");
    assert_eq!(got.key, key);

    let h = s.resource_history(key).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].at, t("2026-11-22T10:10:00Z"));
    let c = &h[0].changes;
    assert_eq!(c.len(), 4, "{c:?}");
    assert_eq!(c["attributes.state"], [json!("running"), json!("stopped")]);
    assert_eq!(c["attributes.vcpus"], [json!(null), json!(2)]);
    assert_eq!(c["tags.env"], [json!("dev"), json!(null)]);
    assert_eq!(c["tags.team"], [json!(null), json!("core")]);
    assert_eq!(h[1].changes["name"], [json!("I-1"), json!("renamed")]);
    assert!(s.resource("host/acct//nope").unwrap().is_none());

    // Tag filters follow the current tags.
    let q = |k: &str, v: &str| ResourceQuery {
        tags: [(k.to_string(), v.to_string())].into(),
        ..Default::default()
    };
    assert_eq!(s.resources(&q("team", "core")).unwrap().items.len(), 1);
    assert_eq!(s.resources(&q("env", "dev")).unwrap().items.len(), 0);
}

#[test]
fn resource_filters_and_sorts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut b = batch();
    for (i, (id, kind, name)) in [
        ("a", "host", "zeta"),
        ("b", "compute.instance", "alpha"),
        ("c", "host", "Mid-Web"),
    ]
    .iter()
    .enumerate()
    {
        let mut r = resource(id, ts(1000 + i as i64));
        r.kind = kind.to_string();
        r.name = name.to_string();
        b.resources.push(r);
    }
    s.ingest(&b).unwrap();
    let keys = |q: ResourceQuery| -> Vec<String> {
        s.resources(&q)
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.resource.id)
            .collect()
    };
    assert_eq!(keys(ResourceQuery::default()), ["a", "b", "c"]);
    assert_eq!(
        keys(ResourceQuery {
            sort: Some("name".into()),
            ..Default::default()
        }),
        ["c", "b", "a"],
        "by name, byte order"
    );
    assert_eq!(
        keys(ResourceQuery {
            sort: Some("-last_seen".into()),
            ..Default::default()
        }),
        ["c", "b", "a"]
    );
    assert_eq!(
        keys(ResourceQuery {
            kind: Some("host".into()),
            ..Default::default()
        }),
        ["a", "c"]
    );
    assert_eq!(
        keys(ResourceQuery {
            q: Some("web".into()),
            ..Default::default()
        }),
        ["c"]
    );
    assert_eq!(
        keys(ResourceQuery {
            q: Some("C".into()),
            ..Default::default()
        }),
        ["c"],
        "matches the id too"
    );
    assert_eq!(
        keys(ResourceQuery {
            provider: Some("aws".into()),
            ..Default::default()
        }),
        Vec::<String>::new()
    );
    let bad = s.resources(&ResourceQuery {
        sort: Some("color".into()),
        ..Default::default()
    });
    assert!(matches!(bad, Err(StoreError::BadRequest(_))));

    // Paging with a non-key sort, descending.
    let mut q = ResourceQuery {
        sort: Some("-name".into()),
        page: PageQuery {
            limit: Some(2),
            cursor: None,
        },
        ..Default::default()
    };
    let p1 = s.resources(&q).unwrap();
    q.page.cursor = p1.next_cursor.clone();
    let p2 = s.resources(&q).unwrap();
    let ids: Vec<_> = p1
        .items
        .iter()
        .chain(&p2.items)
        .map(|r| r.resource.id.clone())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(p2.next_cursor.is_none());
    // A cursor of one sort is refused by another.
    q.sort = Some("kind".into());
    q.page.cursor = p1.next_cursor;
    assert!(matches!(s.resources(&q), Err(StoreError::BadRequest(_))));
}

#[test]
fn a_paged_walk_returns_each_resource_once_while_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let at = t("2026-11-22T10:00:00Z");
    for chunk in 0..10 {
        let mut b = batch();
        b.resources = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| resource(&format!("r{i:05}0"), at))
            .collect();
        s.ingest(&b).unwrap();
    }
    // New resources whose keys fall between the originals, and re-observations of
    // originals, arrive while the walk runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 10_000 {
                let mut b = batch();
                b.resources = (i..i + 50)
                    .map(|j| resource(&format!("r{:05}5", (j * 7919) % 10_000), at))
                    .collect();
                b.resources.push(resource(
                    &format!("r{:05}0", i % 10_000),
                    at + chrono::Duration::minutes(1),
                ));
                s.ingest(&b).unwrap();
                i += 50;
            }
            i
        })
    };
    let mut seen = std::collections::HashMap::<String, u32>::new();
    let mut q = ResourceQuery {
        page: PageQuery {
            limit: Some(137),
            cursor: None,
        },
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let p = s.resources(&q).unwrap();
        pages += 1;
        assert!(p.items.len() <= 137);
        for r in p.items {
            *seen.entry(r.key).or_default() += 1;
        }
        match p.next_cursor {
            Some(c) => q.page.cursor = Some(c),
            None => break,
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0 && pages >= 73);
    for i in 0..10_000 {
        assert_eq!(
            seen.get(&format!("host/acct//r{i:05}0")),
            Some(&1),
            "original r{i:05}0"
        );
    }
    assert!(seen.values().all(|n| *n == 1), "no row twice");
}

#[test]
fn costs_group_exactly_and_split_currencies() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d1 = t("2026-11-01T00:00:00Z");
    let d2 = t("2026-11-02T00:00:00Z");
    let mut b = batch();
    b.costs = vec![
        cost(1.25, "USD", "EC2", d1),
        cost(2.50, "USD", "EC2", d2),
        cost(0.75, "USD", "S3", d1),
        cost(10.0, "EUR", "S3", d2),
    ];
    let mut est = cost(4.0, "USD", "EC2", t("2026-12-01T00:00:00Z"));
    est.x_source = CostSource::Estimated;
    est.provider_name = "Google Cloud".into();
    b.costs.push(est);
    s.ingest(&b).unwrap();

    let q = |group_by: &[&str], f: fn(&mut CostQuery)| {
        let mut q = CostQuery {
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        f(&mut q);
        s.costs(&q).unwrap()
    };
    // One total per currency when currencies differ.
    let total = q(&[], |_| {});
    assert_eq!(total.len(), 2);
    assert_eq!(
        (
            total[0].currency.as_str(),
            total[0].billed_cost,
            total[0].lines
        ),
        ("EUR", 10.0, 1)
    );
    assert_eq!(
        total[0].group,
        [("currency".to_string(), "EUR".to_string())].into()
    );
    assert_eq!(
        (
            total[1].currency.as_str(),
            total[1].billed_cost,
            total[1].effective_cost,
            total[1].lines
        ),
        ("USD", 8.5, 4.25, 4)
    );

    let by_service = q(&["service"], |q| q.source = Some("billed".into()));
    let rows: Vec<_> = by_service
        .iter()
        .map(|g| {
            (
                g.group.get("service").unwrap().as_str(),
                g.group.get("currency").map(|c| c.as_str()),
                g.billed_cost,
                g.lines,
            )
        })
        .collect();
    // EC2 is all USD: no currency key. S3 mixes USD and EUR: split, each naming its currency.
    assert_eq!(
        rows,
        [
            ("EC2", None, 3.75, 2),
            ("S3", Some("EUR"), 10.0, 1),
            ("S3", Some("USD"), 0.75, 1)
        ]
    );

    let by_day = q(&["day", "provider"], |q| {
        q.start = Some("2026-11-02T00:00:00Z".parse().unwrap());
        q.provider = Some("aws".into());
    });
    assert_eq!(by_day.len(), 2, "{by_day:?}");
    assert!(by_day
        .iter()
        .all(|g| g.group["day"] == "2026-11-02" && g.group["provider"] == "Amazon Web Services"));
    let by_month = q(&["month", "source"], |_| {});
    let months: Vec<_> = by_month
        .iter()
        .map(|g| {
            (
                g.group["month"].as_str(),
                g.group["source"].as_str(),
                g.lines,
            )
        })
        .collect();
    assert_eq!(
        months,
        [
            ("2026-11", "billed", 1),
            ("2026-11", "billed", 3),
            ("2026-12", "estimated", 1)
        ]
    );
    assert!(matches!(
        s.costs(&CostQuery {
            group_by: vec!["color".into()],
            ..Default::default()
        }),
        Err(StoreError::BadRequest(_))
    ));
    let gcp = q(&[], |q| q.provider = Some("Google Cloud".into()));
    assert_eq!((gcp.len(), gcp[0].billed_cost), (1, 4.0));
}

#[test]
fn tokens_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (token, info) = s
        .create_token("ci", &[Scope::Ingest, Scope::Read, Scope::Ingest])
        .unwrap();
    assert!(token.starts_with(&format!("sky_{}_", info.id)), "{token}");
    assert_eq!(info.scopes, [Scope::Ingest, Scope::Read]);
    let got = s.authenticate(&token).unwrap().unwrap();
    assert_eq!(
        (got.id.as_str(), got.name.as_str()),
        (info.id.as_str(), "ci")
    );
    // One character off, the public id with a wrong secret, garbage: all refused.
    let mut wrong = token.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'A' { b'B' } else { b'A' };
    assert!(s
        .authenticate(std::str::from_utf8(&wrong).unwrap())
        .unwrap()
        .is_none());
    assert!(s
        .authenticate(&format!("sky_{}_xyz", info.id))
        .unwrap()
        .is_none());
    assert!(s.authenticate("hello").unwrap().is_none());
    assert_eq!(s.tokens().unwrap(), std::slice::from_ref(&info));

    // The clear token is nowhere in the database files, the secret part neither.
    s.check().unwrap();
    let secret = token.strip_prefix(&format!("sky_{}_", info.id)).unwrap(); // may contain `_`
    assert_eq!(secret.len(), 43);
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("meta.sqlite")
        {
            bytes.extend(std::fs::read(&p).unwrap());
        }
    }
    assert!(
        bytes
            .windows(info.id.len())
            .any(|w| w == info.id.as_bytes()),
        "the public id is stored"
    );
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "secret found in the database"
    );

    assert!(s.revoke_token(&info.id).unwrap());
    assert!(!s.revoke_token(&info.id).unwrap());
    assert!(s.authenticate(&token).unwrap().is_none());
    assert!(s.tokens().unwrap().is_empty());
}

#[test]
fn agents_register_heartbeat_and_list_with_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t0 = t("2026-11-22T10:00:00Z");
    let reg = |id: &str| AgentRegistration {
        id: id.into(),
        hostname: format!("{id}.example"),
        version: "0.1.0".into(),
        tasks: vec![],
        labels: Default::default(),
        heartbeat_interval_s: 10,
    };
    for id in ["a1", "a2", "a3"] {
        s.register_agent(&reg(id), t0).unwrap();
    }
    let hb = Heartbeat {
        buffered_batches: 3,
        dropped_batches: 1,
    };
    assert!(s
        .heartbeat("a2", &hb, t0 + chrono::Duration::seconds(40))
        .unwrap());
    assert!(!s.heartbeat("ghost", &hb, t0).unwrap());
    let now = t0 + chrono::Duration::seconds(60);
    let p1 = s
        .agents(
            &PageQuery {
                limit: Some(2),
                cursor: None,
            },
            now,
        )
        .unwrap();
    let p2 = s
        .agents(
            &PageQuery {
                limit: Some(2),
                cursor: p1.next_cursor.clone(),
            },
            now,
        )
        .unwrap();
    assert!(p2.next_cursor.is_none());
    let all: Vec<_> = p1.items.into_iter().chain(p2.items).collect();
    let view: Vec<_> = all
        .iter()
        .map(|a| (a.registration.id.as_str(), a.status))
        .collect();
    assert_eq!(
        view,
        [
            ("a1", AgentStatus::Offline),
            ("a2", AgentStatus::Healthy),
            ("a3", AgentStatus::Offline)
        ]
    );
    assert_eq!(all[1].last_heartbeat_stats, hb);
    assert_eq!(all[1].registered_at, t0);
    assert_eq!(s.stats().unwrap().agents, 3);
}

#[test]
fn check_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.check().unwrap();
    let st = s.stats().unwrap();
    assert!(st.disk_bytes > 0);
    assert_eq!(st.points, 0);
}
