use super::*;
use crate::common::testing::{batch, config_err, point, resource, sample_entries, ts, with_raw};
use skymeter_model::{CollectError, Resource};
use skymeter_plugin_api::BuildContext;

fn build_from(text: &str) -> Result<Box<dyn Processor>, ConfigError> {
    with_raw(text, |raw| build(raw, &BuildContext::one_shot("test")))
}

fn metrics_of(b: &Batch) -> Vec<String> {
    b.points
        .iter()
        .map(|p| {
            let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}{{{}}}", p.metric, labels.join(","))
        })
        .collect()
}

fn host_resource(id: &str, kind: &str) -> Resource {
    Resource {
        provider: "host".into(),
        account: "acct".into(),
        region: "eu-west-1".into(),
        kind: kind.into(),
        native_type: String::new(),
        id: id.into(),
        name: id.into(),
        tags: Default::default(),
        attributes: Default::default(),
        observed_at: ts("2026-11-22T10:00:00Z"),
    }
}

const T: &str = "2026-11-22T10:00:00Z";

fn disks() -> Batch {
    batch(vec![
        point("cpu.utilization", 1.0, T, &[("cpu", "0")]),
        point(
            "disk.used",
            2.0,
            T,
            &[("device", "sda1"), ("mountpoint", "/")],
        ),
        point(
            "disk.used",
            3.0,
            T,
            &[("device", "sdb"), ("mountpoint", "/boot")],
        ),
        point(
            "disk.used",
            4.0,
            T,
            &[("device", "nvme0n1"), ("mountpoint", "/data")],
        ),
        point("disk.inodes_used", 5.0, T, &[("device", "sda1")]),
    ])
}

#[test]
fn include_and_exclude_globs() {
    let mut f =
        build_from("include = [\"disk.*\", \"cpu.*\"]\nexclude = [\"disk.inodes*\"]").unwrap();
    let mut b = disks();
    f.process(&mut b);
    assert_eq!(
        metrics_of(&b),
        [
            "cpu.utilization{cpu=0}",
            "disk.used{device=sda1,mountpoint=/}",
            "disk.used{device=sdb,mountpoint=/boot}",
            "disk.used{device=nvme0n1,mountpoint=/data}",
        ]
    );
}

#[test]
fn label_matchers_are_anded_and_regexes_anchored() {
    let mut f = build_from(r#"labels = ['device=~"sd.*"', 'mountpoint!="/boot"']"#).unwrap();
    let mut b = disks();
    f.process(&mut b);
    // cpu.utilization has no `device`: "" does not match ^(?:sd.*)$.
    assert_eq!(
        metrics_of(&b),
        [
            "disk.used{device=sda1,mountpoint=/}",
            "disk.inodes_used{device=sda1}"
        ]
    );

    // Anchored: `sd` alone does not match `sda1`.
    let mut f = build_from(r#"labels = ['device=~"sd"']"#).unwrap();
    let mut b = disks();
    f.process(&mut b);
    assert_eq!(metrics_of(&b), Vec::<String>::new());

    // `!~` and a missing label matching as "".
    let mut f = build_from(r#"labels = ['device!~"sd.*|nvme.*"', 'mountpoint=""']"#).unwrap();
    let mut b = disks();
    f.process(&mut b);
    assert_eq!(metrics_of(&b), ["cpu.utilization{cpu=0}"]);
}

#[test]
fn resource_fields_and_metric_name_can_be_matched() {
    let mut b = disks();
    b.points[1].resource = resource("h2").into();
    std::sync::Arc::make_mut(&mut b.points[2].resource).region = "us-east-1".into();
    let mut f = build_from(
        r#"labels = ['resource_id="h1"', 'region=~"eu-.*"', 'provider="host"', 'account!="x"', '__name__=~"disk\.used"']"#,
    )
    .unwrap();
    f.process(&mut b);
    assert_eq!(
        metrics_of(&b),
        ["disk.used{device=nvme0n1,mountpoint=/data}"]
    );
}

#[test]
fn matcher_syntax() {
    let m = LabelMatcher::parse(r#" path = 'a\'b\\c' "#).unwrap();
    assert_eq!(m.name, "path");
    assert!(matches!(&m.op, MatchOp::Equal(v) if v == r"a'b\c"));
    let m = LabelMatcher::parse(r"x=~`\d+`").unwrap();
    let p = point("m", 1.0, T, &[("x", "123")]);
    assert!(m.matches(&p));
    let p = point("m", 1.0, T, &[("x", "12a")]);
    assert!(!m.matches(&p));

    for (bad, why) in [
        ("device", "expected one of = != =~ !~"),
        ("=\"x\"", "expected a label name first"),
        ("device=sda", "the value must be quoted"),
        ("device=\"sda", "closing quote is missing"),
        ("device=\"sda\" or", "unexpected `or` after the value"),
        ("device=~\"(\"", "bad regex"),
    ] {
        let e = LabelMatcher::parse(bad).unwrap_err();
        assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn bad_matcher_is_a_located_config_error() {
    let err = config_err(build_from(
        "include = [\"cpu.*\"]\nlabels = ['device~\"x\"']",
    ));
    assert_eq!((err.line, err.key.as_deref()), (Some(2), Some("labels")));
    assert!(
        err.message.contains("label matcher `device~\"x\"`"),
        "{err}"
    );
    let err = config_err(build_from("kinds = [\"[oops\"]"));
    assert!(err.message.contains("bad kind glob `[oops`"), "{err}");
    let err = config_err(build_from("drop = [\"metrics\"]"));
    assert_eq!(err.line, Some(1), "{err}");
}

#[test]
fn kinds_drop_resources_and_their_points_in_the_same_batch() {
    let mut b = disks();
    b.resources = vec![
        host_resource("h1", "host"),
        host_resource("c1", "k8s.cluster"),
    ];
    b.points[0].resource = resource("c1").into();
    // A point of a resource that is not in this batch: its kind is unknown, it stays.
    b.points[1].resource = resource("elsewhere").into();
    let mut f = build_from("kinds = [\"host\", \"compute.*\"]").unwrap();
    f.process(&mut b);
    let ids: Vec<&str> = b.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["h1"]);
    assert_eq!(
        metrics_of(&b),
        [
            "disk.used{device=sda1,mountpoint=/}",
            "disk.used{device=sdb,mountpoint=/boot}",
            "disk.used{device=nvme0n1,mountpoint=/data}",
            "disk.inodes_used{device=sda1}",
        ]
    );
}

#[test]
fn resources_costs_and_errors_pass_unless_dropped() {
    let mut b = disks();
    b.resources = vec![host_resource("h1", "host")];
    b.errors = vec![CollectError {
        plugin: "host".into(),
        message: "m".into(),
        context: Default::default(),
        at: ts(T),
    }];
    let mut f = build_from("include = [\"nothing.*\"]").unwrap();
    let mut kept = b.clone();
    f.process(&mut kept);
    assert_eq!(
        (kept.resources.len(), kept.points.len(), kept.errors.len()),
        (1, 0, 1)
    );

    let mut f = build_from("drop = [\"errors\", \"resources\"]").unwrap();
    let mut dropped = b.clone();
    f.process(&mut dropped);
    assert_eq!(
        (
            dropped.resources.len(),
            dropped.points.len(),
            dropped.errors.len()
        ),
        (0, 5, 0)
    );
}

#[test]
fn no_settings_keeps_everything() {
    let mut f = build_from("").unwrap();
    let mut b = disks();
    f.process(&mut b);
    assert_eq!(b, {
        let mut d = disks();
        d.batch_id = b.batch_id;
        d
    });
}

#[test]
fn sample_builds() {
    for entry in sample_entries(include_str!("sample.toml"), "process", "filter") {
        build_from(&entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}
