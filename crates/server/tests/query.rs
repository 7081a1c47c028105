//! Reads: resources, one resource with history and monitoring, series, points, costs.

mod support;

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use skymeter_model::{Batch, ChargeCategory, Cost, CostSource, Resource, Stat};
use skymeter_server::{Server, ServerConfig};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Scope, Store};
use std::sync::Arc;
use support::*;

fn resource(provider: &str, id: &str, name: &str, env: &str) -> Resource {
    Resource {
        provider: provider.into(),
        account: "123".into(),
        region: "us-east-1".into(),
        kind: "compute.instance".into(),
        native_type: "AWS::EC2::Instance".into(),
        id: id.into(),
        name: name.into(),
        tags: [("env".to_string(), env.to_string())].into(),
        attributes: [("state".to_string(), json!("running"))].into(),
        observed_at: Utc::now() - Duration::minutes(5),
    }
}

struct Api {
    s: TestServer,
    token: String,
}

impl Api {
    async fn new() -> Api {
        let s = TestServer::start(ServerConfig::default()).await;
        let token = s.token(&[Scope::Read]);
        Api { s, token }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .s
            .client
            .get(format!("{}{path}", self.s.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

#[tokio::test]
async fn resources_filter_sort_and_page() {
    let api = Api::new().await;
    let mut b = Batch::new("a", "inv", Utc::now());
    for i in 0..7 {
        let env = if i % 2 == 0 { "prod" } else { "dev" };
        b.resources.push(resource(
            "aws",
            &format!("i-{i:03}"),
            &format!("web-{}", 9 - i),
            env,
        ));
    }
    b.resources.push(resource("gcp", "vm-1", "db", "prod"));
    api.s.store.ingest(&b).unwrap();

    let (code, page) = api.get("/api/v1/resources?provider=aws&tag.env=prod").await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["i-000", "i-002", "i-004", "i-006"]);
    assert_eq!(page["items"][0]["key"], "aws/123/us-east-1/i-000");
    assert_eq!(page["items"][0]["attributes"]["state"], "running");
    assert!(page["items"][0]["first_seen"].is_string());

    let (_, page) = api.get("/api/v1/resources?q=DB").await;
    assert_eq!(page["items"][0]["id"], "vm-1");

    // Walking the pages returns every row once, in order.
    let mut names = Vec::new();
    let mut path = "/api/v1/resources?provider=aws&sort=-name&limit=3".to_string();
    loop {
        let (code, page) = api.get(&path).await;
        assert_eq!(code, 200, "{page}");
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/api/v1/resources?provider=aws&sort=-name&limit=3&cursor={}",
                    urlencode(c)
                )
            }
            None => break,
        }
    }
    assert_eq!(
        names,
        ["web-9", "web-8", "web-7", "web-6", "web-5", "web-4", "web-3"]
    );

    for (path, says) in [
        ("/api/v1/resources?sort=colour", "sort"),
        ("/api/v1/resources?limit=5000", "limit"),
        ("/api/v1/resources?limit=many", "limit"),
        (
            "/api/v1/resources?color=red",
            "unknown query parameter `color`",
        ),
    ] {
        let (code, err) = api.get(path).await;
        assert_eq!(code, 400, "{path}");
        assert_eq!(err["error"]["code"], "bad_request");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(says),
            "{path}: {err}"
        );
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn one_resource_with_history_and_a_cloudforet_monitoring_summary() {
    let api = Api::new().await;
    let now = Utc::now();
    let mut r = resource("host", "h1", "box", "prod");
    r.account = "lab".into();
    r.region = String::new();
    r.kind = "host".into();
    let mut b1 = Batch::new("a", "inv", now);
    b1.resources.push(r.clone());
    let href = r.reference();
    // Over the last day: cpu avg series 10, 20, 30 and a max series up to 95; memory only
    // as `last`; per-core cpu (labelled) must not mix into the total.
    for (i, v) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        let ts = now - Duration::hours(i as i64 + 1);
        b1.points
            .push(point("cpu.utilization", Stat::Avg, ts, v, &href));
        b1.points.push(point(
            "cpu.utilization",
            Stat::Max,
            ts,
            90.0 + i as f64 * 2.5,
            &href,
        ));
        b1.points
            .push(point("memory.usage", Stat::Last, ts, 40.0 + v, &href));
        let mut core = point("cpu.utilization", Stat::Avg, ts, 100.0, &href);
        core.labels.insert("cpu".into(), "0".into());
        b1.points.push(core);
    }
    // Older than the period: ignored.
    b1.points.push(point(
        "cpu.utilization",
        Stat::Max,
        now - Duration::days(3),
        100.0,
        &href,
    ));
    api.s.store.ingest(&b1).unwrap();
    let mut b2 = Batch::new("a", "inv", now);
    r.attributes.insert("state".into(), json!("stopped"));
    r.observed_at = now;
    b2.resources.push(r);
    api.s.store.ingest(&b2).unwrap();

    let (code, v) = api.get("/api/v1/resources/host%2Flab%2F%2Fh1").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["key"], "host/lab//h1");
    assert_eq!(v["attributes"]["state"], "stopped");
    assert_eq!(
        v["history"][0]["changes"]["attributes.state"],
        json!(["running", "stopped"])
    );
    assert_eq!(
        v["monitoring"],
        json!({
            "cpu": {"utilization": {"avg": 20.0, "max": 95.0, "unit": "percent"}},
            "memory": {"usage": {"avg": 60.0, "max": 70.0, "unit": "percent"}},
        }),
        "{v}"
    );
    // A shorter period sees only the last hour and a half.
    let (_, v) = api
        .get("/api/v1/resources/host%2Flab%2F%2Fh1?period=90m")
        .await;
    assert_eq!(v["monitoring"]["cpu"]["utilization"]["avg"], 10.0, "{v}");
    // The unencoded form reaches the same resource.
    let (code, _) = api.get("/api/v1/resources/host/lab//h1").await;
    assert_eq!(code, 200);

    let (code, err) = api.get("/api/v1/resources/aws%2Fnope%2Fx%2Fy").await;
    assert_eq!(code, 404);
    assert_eq!(err["error"]["code"], "not_found");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aws/nope/x/y"),
        "{err}"
    );
    let (code, _) = api
        .get("/api/v1/resources/host%2Flab%2F%2Fh1?period=soon")
        .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn series_and_points_with_relative_times_steps_and_pages() {
    let api = Api::new().await;
    let now = Utc::now();
    let mut b = Batch::new("a", "t", now);
    for h in 0..3 {
        let r = host(&format!("h{h}"));
        for m in 0..120 {
            let mut p = point(
                "cpu.utilization",
                Stat::Avg,
                now - Duration::minutes(m),
                m as f64,
                &r,
            );
            p.labels.insert("core".into(), "total".into());
            b.points.push(p);
        }
        b.points.push(point(
            "load.1m",
            Stat::Last,
            now - Duration::minutes(1),
            1.0,
            &r,
        ));
    }
    api.s.store.ingest(&b).unwrap();

    let (code, v) = api
        .get("/api/v1/series?metric=cpu.*&label.core=total")
        .await;
    assert_eq!(code, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["metric"], "cpu.utilization");
    assert_eq!(items[0]["resource"]["id"], "h0");
    assert_eq!(items[0]["points"], 120);
    let (_, v) = api.get("/api/v1/series?provider=host&stat=last").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 3);

    // Default range: the last hour; raw points as [ts, value].
    let (code, v) = api
        .get("/api/v1/points?metric=cpu.utilization&resource=host%2Flab%2F%2Fh1")
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["series"].as_array().unwrap().len(), 1);
    let pts = v["series"][0]["points"].as_array().unwrap();
    assert!((59..=60).contains(&pts.len()), "{}", pts.len());
    assert!(pts[0][0].is_string() && pts[0][1].is_number(), "{}", pts[0]);
    assert_eq!(v["series"][0]["labels"]["core"], "total");
    assert!(v.get("next_cursor").is_none());

    // Downsampled over two hours, paged one series at a time.
    let mut seen = 0;
    let mut cursor = String::new();
    loop {
        let (code, v) = api
            .get(&format!(
                "/api/v1/points?metric=cpu.utilization&start=now-2h&end=now&step=1h&agg=max&limit=1{cursor}"
            ))
            .await;
        assert_eq!(code, 200, "{v}");
        let s = v["series"].as_array().unwrap();
        assert_eq!(s.len(), 1);
        let maxes: Vec<f64> = s[0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .collect();
        assert!(
            maxes.len() <= 3 && maxes.iter().all(|m| *m <= 119.0),
            "{maxes:?}"
        );
        seen += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={}", urlencode(c)),
            None => break,
        }
    }
    assert_eq!(seen, 3);

    let start = (now - Duration::minutes(10)).to_rfc3339();
    let (code, v) = api
        .get(&format!(
            "/api/v1/points?resource=host%2Flab%2F%2Fh2&metric=load.1m&start={}",
            urlencode(&start)
        ))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["series"][0]["points"][0][1], 1.0);

    for (q, says) in [
        ("start=now&end=-1h", "before"),
        ("start=yesterday", "RFC 3339"),
        ("step=1s&start=-1d", "at most 11000"),
        ("agg=max", "needs a `step`"),
        ("agg=median&step=1m", "unknown stat"),
        ("stat=mean", "stat"),
    ] {
        let (code, err) = api.get(&format!("/api/v1/points?{q}")).await;
        assert_eq!(code, 400, "{q}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(says),
            "{q}: {err}"
        );
    }
}

fn cost(provider: &str, service: &str, billed: f64, source: CostSource, days_ago: i64) -> Cost {
    let start = (Utc::now() - Duration::days(days_ago))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    Cost {
        billed_cost: billed,
        effective_cost: billed * 0.9,
        list_cost: None,
        billing_currency: "USD".into(),
        charge_period_start: start,
        charge_period_end: start + Duration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: provider.into(),
        service_name: service.into(),
        service_category: None,
        sub_account_id: None,
        region_id: None,
        resource_id: None,
        resource_type: None,
        sku_id: None,
        pricing_quantity: None,
        pricing_unit: None,
        consumed_quantity: None,
        consumed_unit: None,
        tags: Default::default(),
        x_source: source,
        x_price_date: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn costs_grouped_and_filtered() {
    let api = Api::new().await;
    let mut b = Batch::new("a", "costs", Utc::now());
    b.costs = vec![
        cost("Amazon Web Services", "EC2", 10.0, CostSource::Billed, 1),
        cost("Amazon Web Services", "EC2", 5.0, CostSource::Billed, 2),
        cost("Amazon Web Services", "S3", 1.0, CostSource::Estimated, 1),
        cost(
            "Google Cloud",
            "Compute Engine",
            7.0,
            CostSource::Billed,
            40,
        ),
    ];
    api.s.store.ingest(&b).unwrap();

    let (code, v) = api
        .get("/api/v1/costs?group_by=provider,service&start=-7d")
        .await;
    assert_eq!(code, 200, "{v}");
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{v}");
    assert_eq!(
        groups[0]["group"],
        json!({"provider": "Amazon Web Services", "service": "EC2"})
    );
    assert_eq!(groups[0]["billed_cost"], 15.0);
    assert_eq!(groups[0]["lines"], 2);
    assert_eq!(groups[0]["currency"], "USD");

    let (_, v) = api.get("/api/v1/costs?source=estimated").await;
    assert_eq!(v["groups"][0]["billed_cost"], 1.0);
    let (_, v) = api.get("/api/v1/costs").await;
    assert_eq!(v["groups"][0]["lines"], 4);
    assert_eq!(v["groups"][0]["group"], json!({}));

    for (q, says) in [
        ("group_by=colour", "colour"),
        ("source=guessed", "billed, estimated or rated"),
        ("start=-1d&end=-2d", "before"),
    ] {
        let (code, err) = api.get(&format!("/api/v1/costs?{q}")).await;
        assert_eq!(code, 400, "{q}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(says),
            "{q}: {err}"
        );
    }
}

/// The real store behind the real server: Cost Explorer re-read a day and revised its
/// figure, so the same cost line arrives in a second batch; it is counted once, newest value.
#[tokio::test]
async fn a_cost_line_posted_again_is_counted_once_with_the_newer_value() {
    let dir = std::env::temp_dir().join(format!("skymeter-server-cost-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = EmbeddedOptions::new(&dir);
    opts.background = false;
    let store = Arc::new(EmbeddedStore::open(opts).unwrap());
    let (token, _) = store
        .create_token("t", &[Scope::Ingest, Scope::Read])
        .unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::bind(config, store.clone()).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    for (collected_at, billed) in [(Utc::now() - Duration::hours(6), 10.0), (Utc::now(), 12.5)] {
        let mut b = Batch::new("agent", "billing", collected_at);
        b.costs = vec![cost(
            "Amazon Web Services",
            "EC2",
            billed,
            CostSource::Billed,
            1,
        )];
        let resp = client
            .post(format!("{url}/api/v1/ingest"))
            .bearer_auth(&token)
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (v["duplicate"].as_bool(), v["costs"].as_u64()),
            (Some(false), Some(1)),
            "{v}"
        );
    }
    let resp = client
        .get(format!(
            "{url}/api/v1/costs?group_by=provider,service&start=-7d"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"groups": [{
            "group": {"provider": "Amazon Web Services", "service": "EC2"},
            "billed_cost": 12.5, "effective_cost": 11.25, "currency": "USD", "lines": 1
        }]})
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn large_answers_are_gzip_compressed_for_clients_that_ask() {
    let api = Api::new().await;
    let mut b = Batch::new("a", "inv", Utc::now());
    for i in 0..200 {
        b.resources
            .push(resource("aws", &format!("i-{i:04}"), "web", "prod"));
    }
    api.s.store.ingest(&b).unwrap();
    let resp = api
        .s
        .client
        .get(format!("{}/api/v1/resources?limit=200", api.s.url))
        .bearer_auth(&api.token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let bytes = resp.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 200);
}
