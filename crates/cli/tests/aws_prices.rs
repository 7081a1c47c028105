//! `skymeter prices aws …` end to end: the binary against a local stand-in of the AWS Price
//! List Query API (awsJson1_1 GetProducts on 127.0.0.1; moto has no Pricing API).
#![cfg(feature = "aws")]

mod common;

use common::{serve, skymeter_in, stderr, stdout};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// A PriceList document as GetProducts returns it (FormatVersion aws_v1).
fn product(service: &str, family: &str, attrs: Value, unit: &str, usd: &str) -> (String, Value) {
    let mut attributes = attrs;
    attributes["regionCode"] = json!("us-east-1");
    attributes["servicecode"] = json!(service);
    let sku = format!("SKU{:08}", attributes.to_string().len());
    let doc = json!({
        "product": {"productFamily": family, "attributes": attributes, "sku": sku},
        "serviceCode": service,
        "terms": {"OnDemand": {format!("{sku}.JRTCKXETXF"): {
            "priceDimensions": {format!("{sku}.JRTCKXETXF.6YS6EN2CT7"): {
                "unit": unit, "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "description": format!("${usd} per {unit}"), "rateCode": format!("{sku}.JRTCKXETXF.6YS6EN2CT7"),
                "pricePerUnit": {"USD": usd}
            }},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF", "termAttributes": {}
        }}},
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z"
    });
    (service.to_string(), doc)
}

fn instance(ty: &str, os: &str, op: &str, usd: &str) -> (String, Value) {
    product(
        "AmazonEC2",
        "Compute Instance",
        json!({"instanceType": ty, "operatingSystem": os, "operation": op, "tenancy": "Shared",
               "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
               "marketoption": "OnDemand", "usagetype": format!("BoxUsage:{ty}")}),
        "Hrs",
        usd,
    )
}

fn products() -> Vec<(String, Value)> {
    vec![
        instance("m5.large", "Linux", "RunInstances", "0.0960000000"),
        instance("m5.large", "Windows", "RunInstances:0002", "0.1880000000"),
        instance("t3.micro", "Linux", "RunInstances", "0.0104000000"),
        product(
            "AmazonEC2",
            "Storage",
            json!({"volumeApiName": "gp3", "usagetype": "EBS:VolumeUsage.gp3"}),
            "GB-Mo",
            "0.0800000000",
        ),
        product(
            "AmazonEC2",
            "System Operation",
            json!({"usagetype": "EBS:VolumeP-IOPS.gp3"}),
            "IOPS-Mo",
            "0.0050000000",
        ),
        product(
            "AmazonEC2",
            "Provisioned Throughput",
            json!({"usagetype": "EBS:VolumeP-Throughput.gp3"}),
            "GiBps-mo",
            "40.9600000000",
        ),
        product(
            "AmazonRDS",
            "Database Instance",
            json!({"instanceType": "db.t4g.micro", "databaseEngine": "PostgreSQL", "deploymentOption": "Single-AZ", "licenseModel": "No license required", "usagetype": "InstanceUsage:db.t4g.micro"}),
            "Hrs",
            "0.0160000000",
        ),
        product(
            "AmazonRDS",
            "Database Storage",
            json!({"volumeType": "General Purpose-GP3", "databaseEngine": "Any", "deploymentOption": "Single-AZ", "usagetype": "RDS:GP3-Storage"}),
            "GB-Mo",
            "0.1150000000",
        ),
        product(
            "AWSLambda",
            "Serverless",
            json!({"usagetype": "USE1-Lambda-GB-Second"}),
            "Lambda-GB-Second",
            "0.0000166667",
        ),
        product(
            "AWSLambda",
            "Serverless",
            json!({"usagetype": "USE1-Request"}),
            "Requests",
            "0.0000002000",
        ),
        product(
            "AmazonS3",
            "Storage",
            json!({"volumeType": "Standard", "storageClass": "General Purpose", "usagetype": "TimedStorage-ByteHrs"}),
            "GB-Mo",
            "0.0230000000",
        ),
        product(
            "AmazonEKS",
            "Compute",
            json!({"usagetype": "USE1-AmazonEKS-Hours:perCluster"}),
            "Hours",
            "0.1000000000",
        ),
    ]
}

/// Serves `products` as GetProducts does, one product per page; returns the URL and the
/// bodies of the requests it answered.
fn stand_in() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let all = Arc::new(products());
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let all = all.clone();
            let record = record.clone();
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                record.lock().unwrap().push(body.clone());
                let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
                let reply = |status: u16, v: Value| {
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/x-amz-json-1.1")],
                        v.to_string(),
                    )
                };
                if target != Some("AWSPriceListService.GetProducts") {
                    return reply(400, json!({"__type": "UnknownOperationException"}));
                }
                let filters = body["Filters"].as_array().cloned().unwrap_or_default();
                let matching: Vec<&Value> = all
                    .iter()
                    .filter(|(svc, doc)| {
                        *svc == body["ServiceCode"]
                            && filters.iter().all(|f| {
                                let field = f["Field"].as_str().unwrap_or("");
                                if field == "productFamily" {
                                    doc["product"]["productFamily"] == f["Value"]
                                } else {
                                    doc["product"]["attributes"][field] == f["Value"]
                                }
                            })
                    })
                    .map(|(_, d)| d)
                    .collect();
                let at: usize = body["NextToken"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                let mut answer = json!({
                    "FormatVersion": "aws_v1",
                    "PriceList": matching.get(at).map(|d| vec![d.to_string()]).unwrap_or_default(),
                });
                if at + 1 < matching.len() {
                    answer["NextToken"] = json!((at + 1).to_string());
                }
                reply(200, answer)
            }
        }),
    );
    (serve(app), seen)
}

/// skymeter with dummy credentials and nothing of the caller's AWS setup: no profile, no
/// shared files, no instance metadata.
fn aws_skymeter(cwd: &Path, args: &[&str]) -> Output {
    // Empty shared files: the SDK warns about a named file that does not exist.
    std::fs::write(cwd.join("empty-aws-config"), "").unwrap();
    Command::new(common::bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("SKYMETER_LOG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", cwd.join("empty-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", cwd.join("empty-aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("skymeter runs")
}

fn expected_us_east_1() -> Value {
    json!({
        "ebs": {
            "iops_month": {"gp3": [{"from": 0, "usd": 0.005}]},
            "storage_gb_month": {"gp3": 0.08},
            "throughput_mibps_month": {"gp3": 0.04}
        },
        "ec2": {"m5.large": {"Linux": 0.096, "Windows": 0.188}, "t3.micro": {"Linux": 0.0104}},
        "eks": {"cluster_hour": 0.1},
        "lambda": {"gb_second": {"x86_64": 0.0000166667}, "request": {"x86_64": 0.0000002}},
        "rds": {
            "instance_hour": {"db.t4g.micro": {"postgres": {"single_az": 0.016}}},
            "storage_gb_month": {"gp3": {"single_az": 0.115}}
        },
        "s3": {"standard_gb_month": 0.023}
    })
}

// One query per (service, product family) and one call per product (pages of one): EC2
// instances 3, EBS storage 1, system operation 1, throughput 1, RDS instances 1, storage 1,
// Lambda 2, S3 1, EKS 1; and one empty page each for EBS snapshots, NAT gateways (EC2 and
// AmazonVPC) and load balancers (AWSELB), which the stand-in does not list.
const CALLS: u64 = 16;

#[test]
fn update_writes_the_table_read_from_every_page() {
    let (url, seen) = stand_in();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out").join("aws.json");
    let o = aws_skymeter(
        dir.path(),
        &[
            "prices",
            "aws",
            "update",
            "--endpoint-url",
            &url,
            "--regions",
            "us-east-1",
            "--output",
            out_file.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    // stderr is not a terminal here: no progress line.
    assert_eq!(stderr(&o), "");
    let table: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(table["currency"], "USD");
    assert_eq!(
        table["date"],
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    );
    assert!(table["source"].as_str().unwrap().contains(&url));
    assert_eq!(table["regions"], json!({"us-east-1": expected_us_east_1()}));
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(summary["output"], out_file.display().to_string());
    assert_eq!(summary["calls"]["pricing:GetProducts"], CALLS);
    assert_eq!(summary["prices"], 12);
    assert_eq!(summary["regions"]["us-east-1"]["ec2"], 3);
    assert_eq!(summary["regions"]["us-east-1"]["ebs"], 3);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, CALLS);
    assert!(seen
        .iter()
        .all(|b| b["MaxResults"] == 100 && b["FormatVersion"] == "aws_v1"));
    // No temporary file is left beside the table.
    let left: Vec<_> = std::fs::read_dir(out_file.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn update_defaults_to_the_regions_and_the_file_of_the_data_dir() {
    let (url, _) = stand_in();
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("data").join("prices");
    std::fs::create_dir_all(&prices).unwrap();
    std::fs::write(
        prices.join("aws.json"),
        r#"{"date":"2025-01-01","currency":"USD","source":"old","regions":{"us-east-1":{}}}"#,
    )
    .unwrap();
    let o = aws_skymeter(
        dir.path(),
        &[
            "prices",
            "aws",
            "update",
            "--endpoint-url",
            &url,
            "--data-dir",
            "data",
        ],
    );
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let text = stdout(&o);
    assert!(
        text.contains("wrote data/prices/aws.json: Amazon Web Services on-demand prices of"),
        "{text}"
    );
    assert!(text.contains("us-east-1"), "{text}");
    assert!(
        text.contains(&format!("pricing:GetProducts calls: {CALLS}")),
        "{text}"
    );
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(prices.join("aws.json")).unwrap()).unwrap();
    assert_eq!(table["regions"], json!({"us-east-1": expected_us_east_1()}));

    // `show` reads the table just written.
    let o = aws_skymeter(
        dir.path(),
        &[
            "prices",
            "aws",
            "show",
            "--data-dir",
            "data",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["regions"], table["regions"]);
    // The spelling before `prices <cloud>` still works.
    let o = aws_skymeter(dir.path(), &["aws", "prices", "show", "--data-dir", "data"]);
    assert!(
        stdout(&o).contains("ec2/m5.large/Windows"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("0.0000166667"), "{}", stdout(&o));
}

#[test]
fn a_bad_region_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = aws_skymeter(
        dir.path(),
        &[
            "prices",
            "aws",
            "update",
            "--regions",
            "us-east-1,US_EAST_1",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`US_EAST_1` is not a region name of Amazon Web Services"),
        "{}",
        stderr(&o)
    );
    let o = aws_skymeter(
        dir.path(),
        &["prices", "aws", "update", "--endpoint-url", "127.0.0.1:1"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("must start with http:// or https://"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_region_the_api_does_not_know_fails_and_writes_nothing() {
    let (url, _) = stand_in();
    let dir = tempfile::tempdir().unwrap();
    let o = aws_skymeter(
        dir.path(),
        &[
            "prices",
            "aws",
            "update",
            "--endpoint-url",
            &url,
            "--regions",
            "us-esat-1",
            "--output",
            "t.json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no EC2 on-demand prices for region \"us-esat-1\""),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("t.json").exists());
}

#[test]
fn an_unreachable_endpoint_is_a_runtime_failure() {
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let o = aws_skymeter(
        dir.path(),
        &[
            "prices",
            "aws",
            "update",
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
            "--regions",
            "us-east-1",
            "--output",
            "t.json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("error: GetProducts failed"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!dir.path().join("t.json").exists());
}

#[test]
fn help_says_what_update_does() {
    let o = skymeter_in(Path::new("."), &["prices", "aws", "update", "--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("Price List API"), "{text}");
    assert!(text.contains("pricing:GetProducts"), "{text}");
    assert!(text.contains("--regions"), "{text}");
}

#[test]
fn show_prints_the_shipped_table_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let o = aws_skymeter(
        dir.path(),
        &[
            "prices",
            "aws",
            "show",
            "--region",
            "us-east-1",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let t: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(t["regions"]["us-east-1"]["ec2"]["m5.large"]["Linux"], 0.096);
    assert_eq!(t["regions"].as_object().unwrap().len(), 1);
    let o = aws_skymeter(
        dir.path(),
        &["prices", "aws", "show", "--region", "eu-west-9"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("skymeter prices aws update --regions eu-west-9"),
        "{}",
        stderr(&o)
    );
}
