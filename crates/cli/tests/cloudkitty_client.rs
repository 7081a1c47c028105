//! CloudKitty's own client against a running skymeter: `python-cloudkittyclient`'s
//! `cloudkitty` CLI (PyPI; scripts/test installs it and sets `SKYMETER_CLOUDKITTY`) creates
//! hashmap services, fields, mappings, a threshold and a group, sets a module's priority,
//! then reads the rated totals of a seeded fleet back with `summary get` and
//! `dataframes get` (API v2). First with a skymeter token in `X-Auth-Token` (the client's
//! `admin_token` auth), then, after a restart, in `cloudkitty-noauth` mode on a `--no-auth`
//! loopback server, where the rules edited before are still there.

mod common;

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Only where the usage comes from: every price is set through CloudKitty's API.
const SERVICES: &str = r#"
[[service]]
metric = "instance"
unit = "hour"
usage = { kind = "compute.instance" }
groupby = ["id", "account"]
metadata = ["instance_type"]

[[service]]
metric = "volume"
unit = "GiB-hour"
usage = { kind = "storage.volume", attribute = "size_gib" }
groupby = ["id", "account"]
"#;

fn cloudkitty_cli() -> Result<PathBuf, String> {
    tool::venv_program("SKYMETER_CLOUDKITTY", "venv-cloudkitty", "cloudkitty").ok_or_else(|| {
        "the `cloudkitty` CLI is not installed (PyPI python-cloudkittyclient==6.2.0; \
         scripts/test installs it and sets SKYMETER_CLOUDKITTY)"
            .to_string()
    })
}

/// The client, pointed at `base`/cloudkitty, with a token (admin_token auth) or none.
struct Client {
    program: PathBuf,
    endpoint: String,
    token: Option<String>,
}

impl Client {
    /// The same client with another token (`None`: the client's noauth mode).
    fn with_token(&self, token: Option<&str>) -> Client {
        Client {
            program: self.program.clone(),
            endpoint: self.endpoint.clone(),
            token: token.map(String::from),
        }
    }

    /// Runs `cloudkitty ARGS -f json`, the parsed answer; panics with its stderr on failure.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args, true);
        assert!(
            out.status.success(),
            "cloudkitty {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "cloudkitty {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn run(&self, args: &[&str], json: bool) -> std::process::Output {
        let mut cmd = Command::new(&self.program);
        match &self.token {
            Some(t) => cmd.args(["--os-auth-type", "admin_token", "--os-token", t]),
            None => cmd.args(["--os-auth-type", "cloudkitty-noauth"]),
        };
        cmd.args(["--os-endpoint", &self.endpoint]).args(args);
        if json {
            cmd.args(["-f", "json"]);
        }
        // The client reads OS_* variables; none of the developer's may leak in.
        for (k, _) in std::env::vars() {
            if k.starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        cmd.output().expect("cloudkitty runs")
    }

    /// The id column of a create or list answer (`Service ID`, `Field ID`…).
    fn id(&self, args: &[&str], column: &str) -> String {
        let v = self.json(args);
        let row = if v.is_array() { v[0].clone() } else { v };
        row[column]
            .as_str()
            .unwrap_or_else(|| panic!("{args:?}: no `{column}` in {row}"))
            .to_string()
    }
}

fn resource(kind: &str, id: &str, account: &str, attrs: Value, at: DateTime<Utc>) -> Value {
    json!({"provider": "aws", "account": account, "region": "us-east-1", "kind": kind,
           "id": id, "attributes": attrs, "observed_at": at.to_rfc3339()})
}

fn fleet(at: DateTime<Utc>) -> Value {
    json!({"schema": 1, "batch_id": uuid::Uuid::now_v7().to_string(), "agent_id": "seed",
           "task": "seed", "collected_at": Utc::now().to_rfc3339(), "resources": [
        resource("compute.instance", "i-1", "team-a", json!({"instance_type": "m5.large"}), at),
        resource("compute.instance", "i-2", "team-b", json!({"instance_type": "t3.micro"}), at),
        resource("storage.volume", "vol-1", "team-a", json!({"size_gib": 100}), at),
    ]})
}

fn write_config(dir: &Path, port: u16, no_auth: bool, t0: DateTime<Utc>) {
    std::fs::write(dir.join("services.toml"), SERVICES).unwrap();
    std::fs::write(
        dir.join("server.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nno_auth = {no_auth}\n\n\
             [rating]\nrules = \"services.toml\"\nperiod = \"1h\"\nwait_periods = 0\nstart = \"{}\"\n",
            t0.to_rfc3339()
        ),
    )
    .unwrap();
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn cloudkittys_client_edits_rules_and_reads_rated_totals() {
    let test = "cloudkittys_client_edits_rules_and_reads_rated_totals";
    let Some(program) = skymeter_testkit::tool::require_tool(test, cloudkitty_cli()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Utc::now().duration_trunc(Span::hours(1)).unwrap() - Span::hours(3);
    let t3 = t0 + Span::hours(3);
    write_config(dir.path(), port, false, t0);
    let data = dir.path().join("data");
    let admin = create_token(&data, "admin", &["admin"]);
    let read = create_token(&data, "read", &["read"]);
    let ingest = create_token(&data, "ingest", &["ingest"]);
    let server = spawn(&["server", "-c", "server.toml"], dir.path());
    wait_healthy(&base);
    let http = reqwest::blocking::Client::new();
    for at in [t0, Utc::now()] {
        let r = http
            .post(format!("{base}/api/v1/ingest"))
            .bearer_auth(&ingest)
            .json(&fleet(at))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    let ck = Client {
        program,
        endpoint: format!("{base}/cloudkitty"),
        token: Some(admin.clone()),
    };
    // A read token may read, not change.
    let reader = ck.with_token(Some(&read));
    assert_eq!(reader.json(&["module", "list"])[0]["Module"], "hashmap");
    let refused = reader.run(&["hashmap", "service", "create", "nope"], false);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("admin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let bad = ck.with_token(Some("sky_not_a_token"));
    assert!(!bad.run(&["module", "list"], false).status.success());

    // The rules, as a CloudKitty operator writes them: instances priced by type in a
    // `compute` group with team-b's 1.5 markup; volumes at 0.0001 per GiB-hour, halved
    // from 50 GiB by a threshold.
    let instance = ck.id(&["hashmap", "service", "create", "instance"], "Service ID");
    let volume = ck.id(&["hashmap", "service", "create", "volume"], "Service ID");
    let itype = ck.id(
        &["hashmap", "field", "create", &instance, "instance_type"],
        "Field ID",
    );
    let account = ck.id(
        &["hashmap", "field", "create", &instance, "account"],
        "Field ID",
    );
    let compute = ck.id(&["hashmap", "group", "create", "compute"], "Group ID");
    for (field, value, kind, cost) in [
        (&itype, "m5.large", "flat", "0.096"),
        (&itype, "t3.micro", "flat", "0.0104"),
        (&account, "team-b", "rate", "1.5"),
    ] {
        ck.json(&[
            "hashmap",
            "mapping",
            "create",
            "--field-id",
            field,
            "--value",
            value,
            "-t",
            kind,
            "-g",
            &compute,
            cost,
        ]);
    }
    let flat = ck.id(
        &[
            "hashmap", "mapping", "create", "-s", &volume, "-t", "flat", "0.0002",
        ],
        "Mapping ID",
    );
    // Corrected through an update, as the client does it (read, change, PUT).
    ck.json(&["hashmap", "mapping", "update", &flat, "--cost", "0.0001"]);
    ck.json(&[
        "hashmap",
        "threshold",
        "create",
        "-s",
        &volume,
        "-t",
        "rate",
        "50",
        "0.5",
    ]);
    let mappings = ck.json(&["hashmap", "group", "mappings", "get", &compute]);
    assert_eq!(mappings.as_array().unwrap().len(), 3, "{mappings}");
    let listed = ck.json(&["hashmap", "mapping", "list", "-s", &volume]);
    assert_eq!(listed[0]["Cost"], "0.0001", "{listed}");
    ck.json(&["module", "set", "priority", "hashmap", "3"]);
    assert_eq!(ck.json(&["module", "get", "hashmap"])[0]["Priority"], 3);

    // The seeded hours rated again with these rules.
    let out = skymeter(&[
        "rating",
        "rerate",
        "--server",
        &base,
        "--token",
        &admin,
        "--wait",
        "--from",
        &t0.to_rfc3339(),
        "--to",
        &t3.to_rfc3339(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Per hour: team-a 0.096 + 100 × 0.0001 × 0.5 = 0.101, team-b 0.0104 × 1.5 = 0.0156.
    let (b, e) = (t0.to_rfc3339(), t3.to_rfc3339());
    let by_scope = ck.json(&["summary", "get", "-b", &b, "-e", &e, "-g", "project_id"]);
    let rows = by_scope.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{by_scope}");
    assert_eq!(rows[0]["Project id"], "team-a");
    assert!(close(&rows[0]["Rate"], 0.303), "{by_scope}");
    assert_eq!(rows[1]["Project id"], "team-b");
    assert!(close(&rows[1]["Rate"], 0.0468), "{by_scope}");
    let by_type = ck.json(&["summary", "get", "-b", &b, "-e", &e, "-g", "type"]);
    let rows = by_type.as_array().unwrap();
    assert!(
        rows[0]["Type"] == "instance" && close(&rows[0]["Rate"], 0.3348),
        "{by_type}"
    );
    assert!(
        rows[1]["Type"] == "volume" && close(&rows[1]["Rate"], 0.015),
        "{by_type}"
    );
    assert!(close(&rows[1]["Qty"], 300.0), "{by_type}");
    let filtered = ck.json(&[
        "summary",
        "get",
        "-b",
        &b,
        "-e",
        &e,
        "-g",
        "type",
        "--filter",
        "project_id:team-b",
    ]);
    assert_eq!(filtered.as_array().unwrap().len(), 1, "{filtered}");

    let frames = ck.json(&["dataframes", "get", "-b", &b, "-e", &e]);
    let frames = frames.as_array().unwrap();
    // Three hours of two instances and a volume.
    assert_eq!(frames.len(), 9, "{frames:?}");
    let i2 = frames
        .iter()
        .find(|f| f["Group By"].as_str().unwrap().contains("id=\"i-2\""))
        .unwrap();
    assert_eq!(i2["Metric Type"], "instance");
    assert!(close(&i2["Price"], 0.0156), "{i2}");
    assert!(
        i2["Metadata"]
            .as_str()
            .unwrap()
            .contains("instance_type=\"t3.micro\""),
        "{i2}"
    );
    drop(server);

    // No tokens, the client's noauth mode: the rules edited above survived the restart.
    write_config(dir.path(), port, true, t0);
    let server = spawn(&["server", "-c", "server.toml"], dir.path());
    wait_healthy(&base);
    let open = ck.with_token(None);
    let services = open.json(&["hashmap", "service", "list"]);
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["instance", "volume"], "{services}");
    assert_eq!(open.json(&["module", "get", "hashmap"])[0]["Priority"], 3);
    // Deleting the group with its mappings leaves the instances unpriced.
    let out = open.run(
        &["hashmap", "group", "delete", "--recursive", &compute],
        false,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = open.json(&["hashmap", "mapping", "list", "--field-id", &itype]);
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");
    drop(server);
}
