//! Fails when the record types and the schemas checked in under `docs/schema/` disagree.
//! Regenerate with `SKYMETER_UPDATE_SCHEMA=1 cargo test -p skymeter-model --test schema_drift`.

use std::path::PathBuf;

fn check(file: &str, generated: serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/schema")
        .join(file);
    let text = skymeter_model::schema::to_file_text(&generated);
    if std::env::var_os("SKYMETER_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "{} is out of date with the Rust types; run SKYMETER_UPDATE_SCHEMA=1 cargo test -p skymeter-model --test schema_drift and commit it",
        path.display()
    );
}

#[test]
fn batch_schema_matches_docs() {
    check("batch.schema.json", skymeter_model::schema::batch());
}

#[test]
fn record_schema_matches_docs() {
    check("record.schema.json", skymeter_model::schema::record());
}

#[test]
fn schemas_accept_a_real_batch_and_reject_a_wrong_type() {
    let batch = skymeter_model::schema::batch();
    let validator = jsonschema::validator_for(&batch).unwrap();
    let good = serde_json::json!({
        "schema": 1, "batch_id": "0190f5e0-0000-7000-8000-000000000000", "agent_id": "a", "task": "t",
        "collected_at": "2026-11-22T10:00:00Z",
        "points": [{"metric": "cpu.utilization", "unit": "percent", "stat": "avg", "period_s": 60,
                    "ts": "2026-11-22T10:00:00Z", "value": 3.5,
                    "resource": {"provider": "host", "account": "", "region": "", "id": "h"}}]
    });
    assert!(
        validator.is_valid(&good),
        "{:?}",
        validator
            .iter_errors(&good)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut bad = good.clone();
    bad["points"][0]["unit"] = "furlongs".into();
    assert!(!validator.is_valid(&bad));
}

#[test]
fn format_doc_lists_every_normalized_metric() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/format.md");
    let doc = std::fs::read_to_string(path).unwrap();
    for def in skymeter_model::catalog::NORMALIZED {
        let row = format!("| `{}` | {} |", def.name, def.unit);
        assert!(doc.contains(&row), "docs/format.md lacks the row `{row}`");
    }
}
