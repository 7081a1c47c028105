//! `promtool query instant|range|series|labels` (Prometheus' own client, Debian package
//! `prometheus`) against skymeter: each succeeds and prints the expected data. promtool
//! 2.42 cannot send a bearer token, so this server runs without auth (loopback only).

mod promsupport;

use chrono::DateTime;
use promsupport::Sky;
use skymeter_model::{Batch, Point, Resource, ResourceRef, Stat, Unit};
use skymeter_server::Auth;
use skymeter_testkit::tool;
use std::path::Path;

/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600;

fn rref(region: &str, id: &str) -> ResourceRef {
    ResourceRef {
        provider: "aws".into(),
        account: "111".into(),
        region: region.into(),
        id: id.into(),
    }
}

async fn seeded() -> Sky {
    let sky = Sky::start(Auth::Disabled).await;
    let mut b = Batch::new("agent", "seed", DateTime::from_timestamp(T0, 0).unwrap());
    for (i, (region, id)) in [
        ("us-east-1", "i-a"),
        ("us-east-1", "i-b"),
        ("eu-west-1", "i-c"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = rref(region, id);
        b.resources.push(Resource {
            provider: "aws".into(),
            account: "111".into(),
            region: region.into(),
            kind: "compute.instance".into(),
            native_type: String::new(),
            id: id.into(),
            name: format!("web-{id}"),
            tags: Default::default(),
            attributes: Default::default(),
            observed_at: DateTime::from_timestamp(T0, 0).unwrap(),
        });
        for k in 1..=10i64 {
            b.points.push(Point {
                metric: "cpu.utilization".into(),
                unit: Unit::Percent,
                stat: Stat::Avg,
                period_s: 60,
                ts: DateTime::from_timestamp(T0 + 60 * k, 0).unwrap(),
                value: (10 * (i as i64 + 1) + k) as f64,
                resource: r.clone().into(),
                labels: Default::default(),
            });
        }
    }
    sky.ingest(&b).await;
    sky
}

async fn promtool(bin: &Path, args: Vec<String>) -> String {
    let bin = bin.to_path_buf();
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "promtool {shown} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn promtool_queries_work_against_skymeter() {
    let test = "promtool_queries_work_against_skymeter";
    let Some(bin) = tool::require_tool(test, tool::program("promtool", "prometheus")) else {
        return;
    };
    let sky = seeded().await;
    let url = sky.url.clone();
    let s = |x: &str| x.to_string();

    let out = promtool(
        &bin,
        vec![
            s("query"),
            s("instant"),
            format!("--time={}", T0 + 600),
            url.clone(),
            s("avg by (region) (cpu_utilization_percent)"),
        ],
    )
    .await;
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"{region="eu-west-1"} => 40 @[1767226200]"#,
            r#"{region="us-east-1"} => 25 @[1767226200]"#
        ],
        "{out}"
    );

    let out = promtool(
        &bin,
        vec![
            s("query"),
            s("range"),
            format!("--start={}", T0 + 480),
            format!("--end={}", T0 + 600),
            s("--step=1m"),
            url.clone(),
            s(r#"sum(cpu_utilization_percent{region="us-east-1"})"#),
        ],
    )
    .await;
    assert_eq!(
        out.trim(),
        "{} =>\n46 @[1767226080]\n48 @[1767226140]\n50 @[1767226200]",
        "{out}"
    );

    let out = promtool(
        &bin,
        vec![
            s("query"),
            s("series"),
            s(r#"--match=cpu_utilization_percent{resource_id="i-c"}"#),
            url.clone(),
        ],
    )
    .await;
    assert_eq!(
        out.trim(),
        r#"{__name__="cpu_utilization_percent", account="111", kind="compute.instance", provider="aws", region="eu-west-1", resource_id="i-c", resource_name="web-i-c", stat="avg"}"#
    );

    let out = promtool(
        &bin,
        vec![s("query"), s("labels"), url.clone(), s("resource_name")],
    )
    .await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["web-i-a", "web-i-b", "web-i-c"],
        "{out}"
    );
}
