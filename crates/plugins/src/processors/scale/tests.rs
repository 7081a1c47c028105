use super::*;
use crate::common::testing::{batch, config_err, point, sample_entries, with_raw};
use skymeter_plugin_api::BuildContext;

fn build_from(text: &str) -> Result<Box<dyn Processor>, ConfigError> {
    with_raw(text, |raw| build(raw, &BuildContext::one_shot("test")))
}

const T: &str = "2026-11-22T10:00:00Z";

#[test]
fn first_matching_rule_wins_and_sets_the_unit() {
    let mut s = build_from(
        r#"rules = [
  { metric = "mem.*_kib", factor = 1024.0, unit = "bytes" },
  { metric = "mem.*", factor = 2.0 },
  { metric = "temp.f", factor = 0.5, offset = -16.0, unit = "celsius" },
]"#,
    )
    .unwrap();
    let mut b = batch(vec![
        point("mem.free_kib", 3.0, T, &[]),
        point("mem.other", 3.0, T, &[]),
        point("temp.f", 100.0, T, &[]),
        point("cpu.utilization", 7.0, T, &[]),
    ]);
    s.process(&mut b);
    let got: Vec<(&str, f64, Unit)> = b
        .points
        .iter()
        .map(|p| (p.metric.as_str(), p.value, p.unit))
        .collect();
    assert_eq!(
        got,
        [
            ("mem.free_kib", 3072.0, Unit::Bytes),
            ("mem.other", 6.0, Unit::Percent),
            ("temp.f", 34.0, Unit::Celsius),
            ("cpu.utilization", 7.0, Unit::Percent),
        ]
    );
}

#[test]
fn count_points_and_overflows_are_left_alone() {
    let mut s = build_from(r#"rules = [{ metric = "*", factor = 1e300 }]"#).unwrap();
    let mut b = batch(vec![
        point("a", 1e10, T, &[]),
        point("b", 4.0, T, &[]),
        point("c", 2.0, T, &[]),
    ]);
    b.points[1].stat = Stat::Count;
    s.process(&mut b);
    let values: Vec<f64> = b.points.iter().map(|p| p.value).collect();
    assert_eq!(values, [1e10, 4.0, 2e300]);
}

#[test]
fn config_errors() {
    for (text, want) in [
        ("rules = []", "no rules"),
        (
            r#"rules = [{ metric = "[x" }]"#,
            "rule 1: bad metric glob `[x`",
        ),
        (
            r#"rules = [{ metric = "a", factor = inf }]"#,
            "must be finite",
        ),
        (
            r#"rules = [{ metric = "a", unit = "furlongs" }]"#,
            "furlongs",
        ),
        (
            r#"rules = [{ metric = "a", scale = 2.0 }]"#,
            "unknown field `scale`",
        ),
    ] {
        let e = config_err(build_from(text));
        assert_eq!(e.line, Some(1), "{text}: {e}");
        assert!(e.message.contains(want), "{text}: {e}");
    }
}

#[test]
fn sample_builds() {
    for entry in sample_entries(include_str!("sample.toml"), "process", "scale") {
        build_from(&entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}
