//! `GET /api/v1/findings` through the real HTTP surface over the embedded store: a
//! reconciliation finding (billed vs estimated per account and service) comes back with
//! its group, days and drivers, filtered by `kind`, its money kept out of the savings
//! total, and in the CSV with its service.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use skymeter_model::{Batch, ChargeCategory, Cost, CostSource};
use skymeter_server::{Server, ServerConfig};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Scope, Store};
use std::sync::Arc;

const AT: &str = "2026-12-01T00:00:00Z";

struct Running {
    url: String,
    token: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn line(source: CostSource, resource: &str, day: u32, amount: f64) -> Cost {
    let start: DateTime<Utc> = NaiveDate::from_ymd_opt(2026, 11, day)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    Cost {
        billed_cost: amount,
        effective_cost: amount,
        billing_currency: "USD".into(),
        charge_period_start: start,
        charge_period_end: start + Duration::days(1),
        charge_category: ChargeCategory::Usage,
        provider_name: "Amazon Web Services".into(),
        service_name: "Amazon Elastic Compute Cloud".into(),
        sub_account_id: Some("111111111111".into()),
        region_id: Some("us-east-1".into()),
        resource_id: Some(resource.into()),
        x_source: source,
        ..Cost::default()
    }
}

/// November 26th to 29th estimated, 26th to 28th billed: `i-mispriced` billed 5.00 a day
/// against 4.00 estimated, `i-unpriced` billed 2.00 and never estimated (nor inventoried).
async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap());
    let mut b = Batch::new(
        "agent",
        "aws",
        Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap(),
    );
    for day in 26..=29 {
        b.costs
            .push(line(CostSource::Estimated, "i-mispriced", day, 4.0));
        if day < 29 {
            b.costs
                .push(line(CostSource::Billed, "i-mispriced", day, 5.0));
            b.costs
                .push(line(CostSource::Billed, "i-unpriced", day, 2.0));
        }
    }
    store.ingest(&b).unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::bind(config, store.clone()).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let token = store.create_token("findings", &[Scope::Read]).unwrap().0;
    Running {
        url,
        token,
        client: reqwest::Client::new(),
        _stop: tx,
        _dir: dir,
    }
}

impl Running {
    async fn get(&self, query: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}/api/v1/findings?at={AT}&{query}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn json(&self, query: &str) -> Value {
        let (status, body) = self.get(query).await;
        assert_eq!(status, 200, "{query}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

#[tokio::test]
async fn reconciliation_findings_are_served_apart_from_the_savings() {
    let s = start().await;
    let page = s.json("kind=reconciliation").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page:#}");
    let f = &items[0];
    assert_eq!(f["kind"], "reconciliation");
    assert_eq!(
        f["id"],
        "reconciliation/aws/111111111111/Amazon Elastic Compute Cloud"
    );
    assert_eq!(
        f["group"],
        json!({"provider": "aws", "account": "111111111111",
               "service": "Amazon Elastic Compute Cloud", "currency": "USD"})
    );
    assert_eq!(f["resource"]["kind"], "billing.service");
    assert_eq!(f["resource"]["key"], "");
    // 3 days compared (the 29th is estimated only) × (7.00 billed − 4.00 estimated);
    // 3.00 a day × 30.42.
    assert_eq!(f["monthly_usd"], 91.26);
    let facts = &f["evidence"]["facts"];
    assert_eq!(
        (&facts["billed"], &facts["estimated"], &facts["gap"]),
        (&json!(21.0), &json!(12.0), &json!(9.0))
    );
    assert_eq!(facts["days_estimated_only"], json!(["2026-11-29"]));
    assert_eq!(
        f["evidence"]["days"][0],
        json!({"day": "2026-11-26", "billed": 7.0, "estimated": 4.0, "gap": 3.0})
    );
    let drivers: Vec<(&str, f64, &str)> = f["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["resource"].as_str().unwrap(),
                d["delta"].as_f64().unwrap(),
                d["cause"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        drivers,
        vec![
            ("i-unpriced", 6.0, "not_estimated"),
            ("i-mispriced", 3.0, "priced_differently")
        ]
    );
    // Not a saving: out of the total, in its kind's.
    assert_eq!(page["totals"]["monthly_usd"], 0.0);
    assert_eq!(
        page["totals"]["by_kind"]["reconciliation"],
        json!({"count": 1, "monthly_usd": 91.26})
    );
    let by_account = s.json("group_by=account").await;
    assert_eq!(
        by_account["groups"][0]["monthly_usd"], 0.0,
        "{by_account:#}"
    );
    let by_kind = s.json("group_by=kind").await;
    assert_eq!(
        by_kind["groups"][0],
        json!({"group": {"kind": "reconciliation"}, "count": 1, "monthly_usd": 91.26})
    );

    // Other kinds leave it out; the CSV names its service.
    assert_eq!(s.json("kind=idle").await["items"], json!([]));
    let (status, csv) = s.get("format=csv").await;
    assert_eq!(status, 200);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].ends_with(",id,service,currency"), "{csv}");
    assert!(
        rows[1].starts_with("reconciliation,91.26,")
            && rows[1].ends_with(",Amazon Elastic Compute Cloud,USD"),
        "{csv}"
    );
    // The answer is the documented one, and the documented `kind` names the new kind.
    let doc: Value = s
        .client
        .get(format!("{}/api/openapi.json", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/components/schemas/FindingsPage",
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&page), "{page:#}");
    let kinds = doc["paths"]["/api/v1/findings"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "kind")
        .map(|p| p["schema"]["enum"].clone());
    assert_eq!(
        kinds,
        Some(json!([
            "",
            "idle",
            "orphaned",
            "rightsizing",
            "untagged",
            "reconciliation"
        ]))
    );
    let (status, body) = s.get("kind=wasteful").await;
    assert_eq!(status, 400);
    assert!(body.contains("or reconciliation"), "{body}");
}
