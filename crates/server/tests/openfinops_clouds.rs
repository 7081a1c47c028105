//! The OpenFinOps Azure and GCP agents' posts through the server's HTTP routes: registered
//! and ingested under `/openfinops/<token>/…`, then read back from `/api/v1/resources`, the
//! query API and `/api/v1/costs`. The agents themselves cannot run here (they call the
//! clouds' real endpoints); their posts are `testdata/openfinops/*.json`, built from their
//! source (see its README).

mod support;

use serde_json::{json, Value};
use skymeter_server::ServerConfig;
use skymeter_store::Scope;
use support::*;

fn post_of(file: &str) -> Value {
    let path = format!(
        "{}/../../testdata/openfinops/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Posted now, so that the query API's instant queries see its points.
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    body["timestamp"] = json!(now);
    body
}

async fn send(s: &TestServer, url: &str, body: &Value) {
    let resp = s.client.post(url).json(body).send().await.unwrap();
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{url}: {answer}");
    assert_eq!(answer["status"], "success", "{answer}");
}

async fn get(s: &TestServer, token: &str, path: &str) -> Value {
    let resp = s.get(path, Some(token)).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// `(kind, id) → resource` of one provider.
async fn resources(s: &TestServer, token: &str, provider: &str) -> Vec<Value> {
    let page = get(
        s,
        token,
        &format!("/api/v1/resources?provider={provider}&limit=1000"),
    )
    .await;
    page["items"].as_array().unwrap().clone()
}

fn one<'a>(items: &'a [Value], kind: &str, name: &str) -> &'a Value {
    items
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {items:#?}"))
}

/// The value of the one series `query` selects.
async fn promql(s: &TestServer, token: &str, query: &str) -> f64 {
    let v = get(s, token, &format!("/api/v1/query?query={}", enc(query))).await;
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{query}: {v}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn openfinops_azure_and_gcp_posts_become_resources_and_points() {
    let s = TestServer::start(ServerConfig::default()).await;
    let ingest = s.token(&[Scope::Ingest]);
    let read = s.token(&[Scope::Read]);
    let base = format!("{}/openfinops/{ingest}", s.url);

    // The GCP agent registers first (gcp:123-141); the Azure one's registration has no
    // region. Then each posts one collection.
    let gcp = post_of("gcp-ingest.json");
    let gcp_id = gcp["agent_id"].as_str().unwrap();
    send(
        &s,
        &format!("{base}/api/v1/agents/register"),
        &json!({"agent_id": gcp_id, "agent_type": "gcp_telemetry", "hostname": "vm",
                "cloud_provider": "gcp", "project_id": "skymeter-demo", "region": "us-central1",
                "capabilities": ["compute_engine_monitoring"], "version": "1.0.0",
                "registration_time": 1796634300.1}),
    )
    .await;
    send(&s, &format!("{base}/api/v1/telemetry/ingest"), &gcp).await;
    let azure = post_of("azure-ingest.json");
    send(&s, &format!("{base}/api/v1/telemetry/ingest"), &azure).await;

    // Azure: ARM ids, the subscription as the account.
    let sub = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let items = resources(&s, &read, "azure").await;
    assert_eq!(items.len(), 6, "{items:#?}");
    let vm = one(&items, "compute.instance", "web-1");
    assert_eq!(
        vm["id"],
        format!("/subscriptions/{sub}/resourceGroups/RG-WEB/providers/Microsoft.Compute/virtualMachines/web-1")
    );
    assert_eq!(vm["account"], sub);
    assert_eq!(vm["region"], "westeurope");
    assert_eq!(vm["attributes"]["instance_type"], "Standard_D2s_v3");
    assert_eq!(vm["tags"]["env"], "prod");
    let db = one(&items, "database.instance", "orders");
    assert!(
        db["id"].as_str().unwrap().ends_with(
            "/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-prod/databases/orders"
        ),
        "{db}"
    );
    one(&items, "k8s.node_group", "spot");
    one(&items, "storage.bucket", "skymeterlogs");

    // GCP: the collector's ids, the project as the account.
    let items = resources(&s, &read, "gcp").await;
    assert_eq!(items.len(), 7, "{items:#?}");
    let vm = one(&items, "compute.instance", "web-1");
    assert_eq!(vm["id"], "4567890123456789012");
    assert_eq!(vm["account"], "skymeter-demo");
    assert_eq!(vm["region"], "us-central1");
    assert_eq!(
        one(&items, "function", "thumbnail")["id"],
        "projects/skymeter-demo/locations/us-central1/functions/thumbnail"
    );
    one(&items, "k8s.cluster", "gke-prod");
    one(&items, "database.instance", "orders-pg");

    // The figures the GCP agent really measured, through the query API.
    let sent = &gcp["metrics"];
    for (query, want) in [
        (
            "cpu_utilization_percent{provider=\"gcp\",resource_id=\"4567890123456789012\"}",
            &sent["compute_engine"]["instances"][0]["cpu_utilization"],
        ),
        (
            "function_invocations{provider=\"gcp\",resource_name=\"thumbnail\"}",
            &sent["cloud_functions"]["functions"][0]["invocations"],
        ),
        (
            "storage_size_bytes{provider=\"gcp\",resource_id=\"skymeter-demo-logs\"}",
            &sent["cloud_storage"]["buckets"][0]["total_size"],
        ),
        (
            "storage_objects{provider=\"gcp\",resource_id=\"skymeter-demo-logs\"}",
            &sent["cloud_storage"]["buckets"][0]["object_count"],
        ),
    ] {
        assert_eq!(
            promql(&s, &read, query).await,
            want.as_f64().unwrap(),
            "{query}"
        );
    }
    // The Azure agent's utilisation figures are placeholders: no series.
    let v = get(
        &s,
        &read,
        &format!(
            "/api/v1/query?query={}",
            enc("cpu_utilization_percent{provider=\"azure\"}")
        ),
    )
    .await;
    assert_eq!(v["data"]["result"], json!([]), "{v}");

    // Neither agent prices anything (their cost_metrics are zeros): no cost lines.
    let costs = get(&s, &read, "/api/v1/costs?start=-7d&group_by=provider").await;
    let lines: u64 = costs["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["lines"].as_u64().unwrap())
        .sum();
    assert_eq!(lines, 0, "{costs}");

    // Both agents are known, with their cloud.
    let agents = get(&s, &read, "/api/v1/agents").await;
    let list = agents
        .as_array()
        .or_else(|| agents["items"].as_array())
        .or_else(|| agents["agents"].as_array())
        .unwrap_or_else(|| panic!("{agents}"));
    let cloud = |id: &str| {
        list.iter()
            .find(|a| a["id"] == id)
            .map(|a| a["labels"]["cloud_provider"].clone())
            .unwrap_or_else(|| panic!("no agent {id}: {agents}"))
    };
    assert_eq!(cloud(gcp_id), "gcp");
    assert_eq!(cloud(azure["agent_id"].as_str().unwrap()), "azure");
}
