//! JSON Schemas generated from the record types; `docs/schema/` holds the checked-in copies.

/// Schema of a [`crate::Batch`], the envelope on the wire.
pub fn batch() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(crate::Batch)).expect("schema serializes")
}

/// Schema of one [`crate::Record`], one line of `--format json` output.
pub fn record() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(crate::Record)).expect("schema serializes")
}

/// Pretty JSON with a trailing newline: the exact bytes of the checked-in files.
pub fn to_file_text(schema: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("schema serializes");
    s.push('\n');
    s
}
