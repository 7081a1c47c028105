use super::standin::OsvStandin;
use super::*;
use skymeter_model::Window;
use skymeter_plugin_api::config::Source as TomlSource;
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------- helpers

fn with_raw<T>(text: &str, f: impl FnOnce(&RawConfig<'_>) -> T) -> T {
    let src = TomlSource::new("osv.toml", text);
    let v = src.parse().expect("test TOML parses");
    let raw = RawConfig::new(src.clone(), v, Arc::new(Vec::new()));
    f(&raw)
}

fn collector(text: &str) -> Osv {
    with_raw(text, |raw| Osv::from_raw(raw).expect("builds"))
}

fn config_error(text: &str) -> ConfigError {
    with_raw(text, |raw| Osv::from_raw(raw).err().expect("fails"))
}

fn for_standin(s: &OsvStandin, extra: &str) -> Osv {
    collector(&format!("url = \"{}\"\n{extra}", s.url))
}

fn request(selection: &[&str]) -> CollectRequest {
    CollectRequest {
        window: Window {
            start: "2026-03-01T12:00:00Z".parse().unwrap(),
            end: "2026-03-01T12:00:10Z".parse().unwrap(),
        },
        metrics: MetricSelection::new(selection).unwrap(),
        task: "t".into(),
    }
}

async fn poll(c: &mut Osv, selection: &[&str]) -> Result<Output, PluginError> {
    let mut out = Output::default();
    c.collect(&request(selection), &mut out).await.map(|()| out)
}

fn values(out: &Output) -> Vec<(String, f64, Unit, Stat)> {
    let mut v: Vec<_> = out
        .points
        .iter()
        .map(|p| (p.metric.to_string(), p.value, p.unit, p.stat))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn manual_clock(c: &mut Osv) -> Arc<AtomicU64> {
    let ms = Arc::new(AtomicU64::new(0));
    let m = ms.clone();
    c.clock = Arc::new(move || m.load(Ordering::SeqCst) as f64 / 1000.0);
    ms
}

// ---------------------------------------------------------------- values

#[tokio::test]
async fn every_metric_comes_exactly_from_its_endpoint() {
    let s = OsvStandin::start().await;
    s.set_memory(500_000_000, 2_000_000_000);
    s.set_uptime(3600);
    s.set_time_ms(176_521_305);
    s.set_hostname("osv-a.lab");
    s.set_count("waitqueue_wake_one", 1_319_942);
    s.set_count("callout_reset", 206_217);
    s.set_count("sched_switch", 42);
    let mut c = for_standin(&s, "resource = { tags = { env = \"lab\" } }");
    let out = poll(&mut c, &[]).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        values(&out),
        vec![
            (
                "memory.available".into(),
                500_000_000.0,
                Unit::Bytes,
                Stat::Last
            ),
            (
                "memory.total".into(),
                2_000_000_000.0,
                Unit::Bytes,
                Stat::Last
            ),
            ("memory.usage".into(), 75.0, Unit::Percent, Stat::Last),
            (
                "memory.used".into(),
                1_500_000_000.0,
                Unit::Bytes,
                Stat::Last
            ),
            (
                "osv.cpu.cputime".into(),
                176_521_305.0,
                Unit::Milliseconds,
                Stat::Last
            ),
            (
                "osv.trace.callout.callout_reset".into(),
                206_217.0,
                Unit::Count,
                Stat::Last
            ),
            (
                "osv.trace.sched.sched_switch".into(),
                42.0,
                Unit::Count,
                Stat::Last
            ),
            (
                "osv.trace.wait.waitqueue_wake_one".into(),
                1_319_942.0,
                Unit::Count,
                Stat::Last
            ),
            ("system.uptime".into(), 3600.0, Unit::Seconds, Stat::Last),
        ]
    );
    assert!(out
        .points
        .iter()
        .all(|p| p.ts == request(&[]).window.end && p.period_s == 0));
    // A task selecting everything enables no counting of its own.
    assert_eq!(s.count_requests("POST"), 0);

    let r = &out.resources[0];
    let id = s.addr.to_string();
    assert_eq!(
        (r.provider.as_str(), r.kind.as_str(), r.native_type.as_str()),
        ("host", "host", "osv")
    );
    assert_eq!((r.id.as_str(), r.name.as_str()), (id.as_str(), "osv-a.lab"));
    assert_eq!(r.attributes["os_version"], "v0.57.0");
    assert_eq!(r.attributes["memory_total"], 2_000_000_000u64);
    assert_eq!(r.tags["env"], "lab");
    assert_eq!(out.points[0].resource, r.reference().into());
}

#[tokio::test]
async fn the_selection_decides_which_endpoints_are_asked() {
    let s = OsvStandin::start().await;
    s.set_memory(1, 4);
    // Counting left as it is, so that only what the test enabled is read.
    let mut c = for_standin(&s, "enable_trace_counts = false");
    let out = poll(&mut c, &["memory.available"]).await.unwrap();
    assert_eq!(
        values(&out),
        vec![("memory.available".into(), 1.0, Unit::Bytes, Stat::Last)]
    );
    assert_eq!(s.count_requests("GET /os/memory/free"), 1);
    assert_eq!(s.count_requests("GET /os/memory/total"), 0);
    assert_eq!(s.count_requests("GET /trace/count"), 0);
    assert_eq!(s.count_requests("GET /os/uptime"), 0);

    // memory.usage needs both reads but emits only itself.
    let out = poll(&mut c, &["memory.usage"]).await.unwrap();
    assert_eq!(
        values(&out),
        vec![("memory.usage".into(), 75.0, Unit::Percent, Stat::Last)]
    );
    assert_eq!(s.count_requests("GET /os/memory/total"), 1);
    assert_eq!(s.count_requests("GET /trace/count"), 0);

    // Nothing of this collector's: no request at all.
    let before = s.requests().len();
    let out = poll(&mut c, &["cpu.utilization"]).await.unwrap();
    assert!(out.points.is_empty() && out.resources.is_empty());
    assert_eq!(s.requests().len(), before);

    // A trace glob reads /trace/count only.
    s.set_count("vfs_open", 7);
    let out = poll(&mut c, &["osv.trace.vfs.*"]).await.unwrap();
    assert_eq!(
        values(&out),
        vec![(
            "osv.trace.vfs.vfs_open".into(),
            7.0,
            Unit::Count,
            Stat::Last
        )]
    );
    assert_eq!(s.count_requests("GET /trace/count"), 1);
    assert_eq!(s.count_requests("GET /os/memory/free"), 2);
}

#[tokio::test]
async fn selected_trace_points_get_counting_enabled_as_snap_does() {
    let s = OsvStandin::start().await;
    s.forget_trace_point("callout_stop");
    let mut c = for_standin(&s, "");
    let sel = [
        "osv.trace.wait.waitqueue_wake_one",
        "osv.trace.callout.callout_stop",
        "osv.trace.sched.sched_wait",
        "osv.cpu.cputime",
    ];
    let out = poll(&mut c, &sel).await.unwrap();
    let mut counted = s.counted();
    counted.sort();
    assert_eq!(counted, vec!["sched_wait", "waitqueue_wake_one"]);
    assert_eq!(
        s.count_requests("POST /trace/count/waitqueue_wake_one?enabled=true"),
        1
    );
    // Read again after enabling: both counters are there (near zero).
    let names: Vec<String> = values(&out).into_iter().map(|v| v.0).collect();
    assert_eq!(
        names,
        vec![
            "osv.cpu.cputime",
            "osv.trace.sched.sched_wait",
            "osv.trace.wait.waitqueue_wake_one"
        ]
    );
    // The unknown trace point is reported once, by name, and not asked again.
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("callout_stop"), "{}", e.message);
    assert!(e.context["url"].starts_with(&s.url), "{:?}", e.context);
    let out = poll(&mut c, &sel).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(s.count_requests("POST /trace/count/callout_stop"), 1);
    assert_eq!(s.count_requests("POST"), 3);

    // A glob enables every trace point of snap's catalog it matches, as snap's wildcard did.
    let mut glob = for_standin(&s, "");
    poll(&mut glob, &["osv.trace.net.*"]).await.unwrap();
    assert_eq!(s.count_requests("POST /trace/count/net_"), 3);

    // Switched off, nothing is enabled.
    let mut off = for_standin(&s, "enable_trace_counts = false");
    poll(&mut off, &["osv.trace.vfs.vfs_open"]).await.unwrap();
    assert_eq!(s.count_requests("POST"), 6);
}

#[tokio::test]
async fn trace_rates_are_events_per_second_between_collections() {
    let s = OsvStandin::start().await;
    s.set_count("net_packet_in", 1000);
    let mut c = for_standin(&s, "trace_counts = \"rate\"\nenable_trace_counts = false");
    let clock = manual_clock(&mut c);
    let out = poll(&mut c, &["osv.trace.*"]).await.unwrap();
    assert!(out.points.is_empty(), "first read only remembers");
    s.set_count("net_packet_in", 1600);
    clock.store(10_000, Ordering::SeqCst);
    let out = poll(&mut c, &["osv.trace.*"]).await.unwrap();
    assert_eq!(
        values(&out),
        vec![(
            "osv.trace.net.net_packet_in".into(),
            60.0,
            Unit::CountPerSecond,
            Stat::Avg
        )]
    );
    assert_eq!(out.points[0].period_s, 10);
}

#[tokio::test]
async fn unpinned_values_move_like_a_running_instance() {
    let s = OsvStandin::start().await;
    let mut c = for_standin(&s, "");
    let sel = [
        "osv.trace.wait.waitqueue_wait",
        "memory.*",
        "osv.cpu.cputime",
    ];
    poll(&mut c, &sel).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = poll(&mut c, &sel).await.unwrap();
    let v = values(&out);
    let get = |m: &str| v.iter().find(|x| x.0 == m).unwrap().1;
    assert!(get("memory.available") < get("memory.total"));
    assert!(get("osv.cpu.cputime") >= 300.0);
    assert!(get("osv.trace.wait.waitqueue_wait") > 0.0);
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn a_failing_endpoint_leaves_the_others_and_names_its_url() {
    let s = OsvStandin::start().await;
    s.set_memory(10, 20);
    s.set_uptime(5);
    s.fail("/trace/count", 500);
    let mut c = for_standin(&s, "");
    let out = poll(&mut c, &[]).await.unwrap();
    let names: Vec<String> = values(&out).into_iter().map(|v| v.0).collect();
    assert_eq!(
        names,
        vec![
            "memory.available",
            "memory.total",
            "memory.usage",
            "memory.used",
            "system.uptime"
        ]
    );
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert_eq!(e.kind, ErrorKind::Unavailable);
    let url = format!("{}/trace/count", s.url);
    assert_eq!(e.context["url"], url);
    assert!(
        e.message.contains(&url) && e.message.contains("500"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_missing_endpoint_is_a_config_error_and_all_failing_fails_the_collection() {
    let s = OsvStandin::start().await;
    let mut c = collector(&format!("url = \"{}/api\"", s.url));
    let e = poll(&mut c, &["memory.total"]).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(
        e.message.contains("/api/os/memory/total") && e.message.contains("404"),
        "{e}"
    );
    assert!(e.message.contains("--api"), "{e}");

    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = collector(&format!("swag_ip = \"127.0.0.1\"\nswag_port = {port}"));
    let mut out = Output::default();
    let e = c.collect(&request(&[]), &mut out).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("cannot connect"), "{e}");
    assert!(!out.errors.is_empty());
}

#[tokio::test]
async fn an_answer_of_the_wrong_shape_is_a_bad_response() {
    // The stand-in answers OSv's shapes; a server that is not OSv answers others.
    let app = axum::Router::new()
        .route(
            "/os/memory/free",
            axum::routing::get(|| async { "\"lots\"" }),
        )
        .route("/os/hostname", axum::routing::get(|| async { "\"x\"" }))
        .route("/os/version", axum::routing::get(|| async { "\"v\"" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut c = collector(&format!("url = \"http://{addr}\""));
    let e = poll(&mut c, &["memory.available"]).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadResponse);
    assert!(e.message.contains("not a whole number"), "{e}");
}

// ---------------------------------------------------------------- the stand-in refuses

#[tokio::test]
async fn the_standin_refuses_as_osv_does() {
    let s = OsvStandin::start().await;
    let http = reqwest::Client::new();
    let call = |m: reqwest::Method, p: &str| {
        let r = http.request(m, format!("{}{p}", s.url)).send();
        async move {
            let r = r.await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    use reqwest::Method as M;
    let nf = r#"{"message": "Not found", "code": 404}"#;
    assert_eq!(call(M::GET, "/os/nope").await, (404, nf.into()));
    // No 405 in OSv: a known path with another method is not found.
    assert_eq!(call(M::POST, "/os/memory/free").await, (404, nf.into()));
    assert_eq!(call(M::DELETE, "/os/uptime").await, (404, nf.into()));
    // One trailing slash is ignored.
    assert_eq!(call(M::GET, "/os/name/").await, (200, "\"OSv\"".into()));
    // No counter enabled: no `list` key at all.
    let body = call(M::GET, "/trace/count").await.1;
    assert!(
        body.starts_with(r#"{"time_ms": "#) && !body.contains("list"),
        "{body}"
    );
    assert_eq!(
        call(M::POST, "/trace/count/vfs_open").await,
        (
            400,
            r#"{"message": "Missing mandatory parameter 'enabled'", "code": 400}"#.into()
        )
    );
    assert_eq!(
        call(M::POST, "/trace/count/vfs_open?enabled=maybe").await.0,
        400
    );
    assert_eq!(
        call(M::POST, "/trace/count/no_such_point?enabled=true").await,
        (
            400,
            r#"{"message": "Unknown tracepoint name", "code": 400}"#.into()
        )
    );
    assert_eq!(
        call(M::POST, "/trace/count/vfs/open?enabled=true").await,
        (
            400,
            r#"{"message": "Unknown tracepoint name", "code": 400}"#.into()
        )
    );
    assert_eq!(
        call(M::POST, "/trace/count/?enabled=true").await,
        (404, nf.into())
    );
    assert_eq!(
        call(M::POST, "/trace/count/vfs_open?enabled=True").await,
        (200, "\"\"".into())
    );
    let body = call(M::GET, "/trace/count").await.1;
    assert!(
        body.starts_with(r#"{"list": [{"name": "vfs_open", "count": "#),
        "{body}"
    );
    assert_eq!(call(M::DELETE, "/trace/count").await.0, 200);
    assert!(s.counted().is_empty());
}

// ---------------------------------------------------------------- config

#[test]
fn snap_config_keys_work_unchanged() {
    for text in [
        "swag_ip = \"192.168.122.89\"\nswag_port = 8000",
        "swagIP = \"192.168.122.89\"\nswagPort = 8000",
        "swag_ip = \"192.168.122.89\"",
    ] {
        let c = collector(text);
        assert_eq!(c.base, "http://192.168.122.89:8000", "{text}");
        assert_eq!(c.default_id, "192.168.122.89:8000");
    }
    let c = collector("swag_ip = \"fe80::1\"\nswag_port = 8001");
    assert_eq!(c.base, "http://[fe80::1]:8001");
    let c = collector("url = \"https://osv.example:9443/\"\ntimeout = \"2s\"");
    assert_eq!(
        (c.base.as_str(), c.timeout),
        ("https://osv.example:9443", Duration::from_secs(2))
    );
}

#[test]
fn bad_configs_say_what_to_write() {
    let cases = [
        ("", "no address"),
        ("url = \"http://a:8000\"\nswag_ip = \"b\"", "not both"),
        (
            "url = \"http://a:8000\"\nswag_port = 8000",
            "goes with `swag_ip`",
        ),
        ("swag_ip = \"a\"\nswag_port = 0", "1-65535"),
        ("swag_ip = \"a\"\nswag_port = 70000", ""),
        ("swag_ip = \"a/b\"", "address or host name"),
        ("url = \"ftp://a\"", "scheme `ftp`"),
        ("url = \"http://a:8000/?x=1\"", "no `?query`"),
        ("url = \"not a url\"", "is not a URL"),
        ("url = \"http://a\"\ntimeout = \"0s\"", "more than 0"),
        ("url = \"http://a\"\ntrace_counts = \"delta\"", "total"),
        (
            "url = \"http://a\"\nresource = { id = \" \" }",
            "`resource.id` is empty",
        ),
        (
            "url = \"http://a\"\nresource = { kind = \"vm\" }",
            "unknown field `kind`",
        ),
        ("url = \"http://a\"\nswagIp = \"x\"", "unknown field"),
        ("swag_ip = \"a\"\nswagIP = \"b\"", "duplicate"),
    ];
    for (text, want) in cases {
        let e = config_error(text);
        let shown = e.to_string();
        assert!(shown.starts_with("osv.toml"), "{text}: {shown}");
        assert!(shown.contains(want), "{text}: {shown}");
    }
}

// ---------------------------------------------------------------- snap namespaces

#[test]
fn snap_namespaces_map_to_metrics_and_globs() {
    let m = |parts: &[&str]| metric_for_snap_namespace(parts);
    assert_eq!(m(&["memory", "free"]).as_deref(), Some("memory.available"));
    assert_eq!(m(&["memory", "total"]).as_deref(), Some("memory.total"));
    assert_eq!(m(&["cpu", "cputime"]).as_deref(), Some("osv.cpu.cputime"));
    assert_eq!(
        m(&["trace", "wait", "waitqueue_wake_one"]).as_deref(),
        Some("osv.trace.wait.waitqueue_wake_one")
    );
    assert_eq!(
        m(&["trace", "*", "waitqueue_wake_one"]).as_deref(),
        Some("osv.trace.wait.waitqueue_wake_one")
    );
    assert_eq!(m(&["trace", "*"]).as_deref(), Some("osv.trace.*"));
    assert_eq!(
        m(&["trace", "vfs", "*"]).as_deref(),
        Some("osv.trace.vfs.*")
    );
    // snap's README typos.
    assert_eq!(
        m(&["trace", "anync", "async_worker_fire"]).as_deref(),
        Some("osv.trace.async.async_worker_fire")
    );
    assert_eq!(
        m(&["trace", "virtio", "virtio_blk_read_config_blk_siz"]).as_deref(),
        Some("osv.trace.virtio.virtio_blk_read_config_blk_size")
    );
    // A trace point outside snap's list, in the group its name gives.
    assert_eq!(
        m(&["trace", "sched", "sched_switch"]).as_deref(),
        Some("osv.trace.sched.sched_switch")
    );
    for unknown in [
        &["memory", "used"][..],
        &["disk", "free"],
        &["cpu"],
        &["trace"],
        &["trace", "wait"],
        &["trace", "wait", "vfs_open"],
        &["trace", "wait", "x", "y"],
        &["Memory", "free"],
        &["memory", ""],
        &[],
    ] {
        assert_eq!(m(unknown), None, "{unknown:?}");
    }

    // Globs select exactly what snap's wildcard selected.
    let sel = |parts: &[&str]| MetricSelection::new(&[m(parts).unwrap()]).unwrap();
    let mem = sel(&["memory", "*"]);
    assert!(mem.matches("memory.available") && mem.matches("memory.total"));
    assert!(!mem.matches("memory.usage"));
    let all = sel(&["*"]);
    assert!(all.matches("osv.trace.vfs.vfs_open") && all.matches("osv.cpu.cputime"));
    assert!(all.matches("memory.total") && !all.matches("system.uptime"));
    let two = sel(&["*", "*"]);
    assert!(two.matches("osv.cpu.cputime") && !two.matches("osv.trace.vfs.vfs_open"));
}

#[test]
fn the_snap_catalog_is_complete_and_every_entry_maps_back() {
    let all = snap_namespaces();
    // snap's osv/metrics.go: 1 cpu, 2 memory and 197 trace points (its README lists the
    // 199 of them, without vfs_chdir_err; its unit test still says 187, from before the
    // vfs list grew).
    assert_eq!(all.len(), 200);
    let described: Vec<String> = metrics().into_iter().map(|m| m.name).collect();
    for (ns, metric) in &all {
        let rest: Vec<&str> = ns
            .strip_prefix(SNAP_PREFIX)
            .unwrap()
            .trim_start_matches('/')
            .split('/')
            .collect();
        assert_eq!(
            metric_for_snap_namespace(&rest).as_ref(),
            Some(metric),
            "{ns}"
        );
        assert!(described.contains(metric), "{metric} not in metrics()");
        assert!(skymeter_model::is_valid_metric_name(metric));
    }
    assert_eq!(trace_group("waitqueue_wake_one"), "wait");
    assert_eq!(trace_group("sched_switch"), "sched");
}

#[test]
fn the_readme_table_lists_every_snap_namespace() {
    let readme = include_str!("README.md");
    for (ns, metric) in snap_namespaces() {
        assert!(
            readme.contains(&format!("| `{ns}` | `{metric}` |")),
            "README lacks {ns}"
        );
    }
}

#[test]
fn the_sample_builds() {
    let n = crate::common::testing::build_sample_entries(include_str!("sample.toml"), factory());
    assert_eq!(n, 2);
}
