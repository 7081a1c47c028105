use super::*;
use crate::common::testing::{batch, config_err, labels_of, point, sample_entries, with_raw};
use skymeter_plugin_api::BuildContext;

fn build_from(text: &str) -> Result<Box<dyn Processor>, ConfigError> {
    with_raw(text, |raw| build(raw, &BuildContext::one_shot("test")))
}

const T: &str = "2026-11-22T10:00:00Z";

fn shown(b: &Batch) -> Vec<String> {
    b.points
        .iter()
        .map(|p| {
            let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}{{{}}}", p.metric, labels.join(","))
        })
        .collect()
}

#[test]
fn renames_exact_names_before_patterns_and_specific_patterns_first() {
    let mut r = build_from(
        r#"rename = { "node_load1" = "load.1m", "node_*" = "host.*", "node_disk_*_total" = "disk.*", "other" = "renamed" }"#,
    )
    .unwrap();
    let mut b = batch(vec![
        point("node_load1", 1.0, T, &[]),
        point("node_memory_free", 1.0, T, &[]),
        point("node_disk_reads_total", 1.0, T, &[]),
        point("unrelated", 1.0, T, &[]),
    ]);
    r.process(&mut b);
    assert_eq!(
        shown(&b),
        [
            "load.1m{}",
            "host.memory_free{}",
            "disk.reads{}",
            "unrelated{}"
        ]
    );
}

#[test]
fn label_operations_in_order() {
    let mut r = build_from(
        r#"
drop_labels = ["cpu", "tag_*"]
rename_labels = { device = "disk", a = "b", b = "a" }
add_labels = { env = "prod", disk = "never" }
"#,
    )
    .unwrap();
    let mut b = batch(vec![point(
        "m",
        1.0,
        T,
        &[
            ("cpu", "0"),
            ("tag_team", "x"),
            ("device", "sda"),
            ("a", "1"),
            ("b", "2"),
            ("env", "dev"),
        ],
    )]);
    r.process(&mut b);
    // Renames are simultaneous (a and b swap); add_labels keeps existing `env` and the
    // renamed `disk`.
    assert_eq!(shown(&b), ["m{a=2,b=1,disk=sda,env=dev}"]);

    let mut r = build_from("add_labels = { env = \"prod\" }\noverwrite = true").unwrap();
    r.process(&mut b);
    assert_eq!(b.points[0].labels["env"], "prod");
}

#[test]
fn renaming_onto_an_existing_label_replaces_it() {
    let mut r = build_from(r#"rename_labels = { device = "disk" }"#).unwrap();
    let mut b = batch(vec![point(
        "m",
        1.0,
        T,
        &[("device", "sda"), ("disk", "old")],
    )]);
    r.process(&mut b);
    assert_eq!(b.points[0].labels, labels_of(&[("disk", "sda")]));
}

#[test]
fn dropping_a_label_merges_series() {
    let mut r = build_from(r#"drop_labels = ["cpu"]"#).unwrap();
    let mut b = batch(vec![
        point("cpu.utilization", 10.0, T, &[("cpu", "0")]),
        point("cpu.utilization", 30.0, T, &[("cpu", "1")]),
    ]);
    r.process(&mut b);
    let (a, c) = (&b.points[0], &b.points[1]);
    assert_eq!(
        (&a.metric, &a.resource, &a.labels, a.stat, a.ts),
        (&c.metric, &c.resource, &c.labels, c.stat, c.ts),
        "two points of one series now"
    );
    assert_eq!((a.value, c.value), (10.0, 30.0));
}

#[test]
fn metrics_scope_the_changes() {
    let mut r = build_from(
        r#"metrics = ["disk.*"]
rename = { "disk.*" = "storage.*" }
add_labels = { tier = "ssd" }"#,
    )
    .unwrap();
    let mut b = batch(vec![
        point("disk.used", 1.0, T, &[]),
        point("cpu.utilization", 1.0, T, &[]),
    ]);
    r.process(&mut b);
    assert_eq!(shown(&b), ["storage.used{tier=ssd}", "cpu.utilization{}"]);
}

#[test]
fn bad_renames_are_located_config_errors() {
    for (text, want) in [
        (
            r#"rename = { "a.*" = "b" }"#,
            "exactly one `*` on each side",
        ),
        (
            r#"rename = { "a.*.*" = "b.*" }"#,
            "exactly one `*` on each side",
        ),
        (
            r#"rename = { "a" = "has space" }"#,
            "`has space` is not a metric name",
        ),
        (r#"rename_labels = { device = "" }"#, "must not be empty"),
        (r#"drop_labels = ["[x"]"#, "bad glob `[x`"),
    ] {
        let e = config_err(build_from(&format!("\n{text}")));
        assert_eq!(e.line, Some(2), "{text}: {e}");
        assert!(e.message.contains(want), "{text}: {e}");
    }
}

#[test]
fn sample_builds() {
    for entry in sample_entries(include_str!("sample.toml"), "process", "relabel") {
        build_from(&entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}
