use super::*;
use crate::common::testing::{batch, config_err, point, sample_entries, with_raw};

fn build_from(text: &str) -> Result<Box<dyn Processor>, ConfigError> {
    with_raw(text, |raw| build(raw, &BuildContext::one_shot("test")))
}

#[test]
fn batches_pass_unchanged() {
    let mut p = build_from("").unwrap();
    let b = batch(vec![
        point(
            "cpu.utilization",
            7.0,
            "2026-11-22T10:00:00Z",
            &[("cpu", "0")],
        ),
        point("memory.available", 1e9, "2026-11-22T10:00:00Z", &[]),
    ]);
    let before = serde_json::to_value(&b).unwrap();
    let mut after = b.clone();
    p.process(&mut after);
    let mut flushed = batch(vec![]);
    p.flush(&mut flushed);
    assert_eq!(serde_json::to_value(&after).unwrap(), before);
    assert!(flushed.points.is_empty());
}

#[test]
fn any_setting_is_refused_by_name() {
    let e = config_err(build_from("mode = \"fast\""));
    assert!(e.to_string().contains("unknown field `mode`"), "{e}");
}

#[test]
fn the_sample_builds() {
    for entry in sample_entries(include_str!("sample.toml"), "process", "passthru") {
        build_from(&entry).unwrap();
    }
}
