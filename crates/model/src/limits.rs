//! The bounds every record must keep, in one place.
//!
//! A receiver (the server, a publisher) stores what it accepts, and indexes every label
//! and tag: a 10 MB label value or 100,000 labels on one point would be held in memory and
//! on disk for as long as the series lives, and a NUL character breaks the tools the data
//! is exported to (Prometheus, CSV, SQL). So [`crate::Batch::validate`] refuses, with the
//! field's path and the limit, anything past these bounds. They are far above what any
//! real source produces (AWS tags: 50 per resource, keys up to 128 characters, values up
//! to 256; ARNs and Azure resource URIs stay well under 1 KiB), and `docs/format.md`
//! documents them. The JSON Schemas carry them too (`maxLength`, `maxProperties`,
//! `pattern`), so a client can check a batch before sending it.

use schemars::{json_schema, Schema, SchemaGenerator};

// Lengths count characters (Unicode scalar values), as JSON Schema's `maxLength` does, so
// that every string the published schema allows is accepted; in memory that is at most
// four times as many bytes.

/// Labels on one point; tags on one resource or cost line; attributes of one resource;
/// context entries of one collect error.
pub const MAX_LABELS: usize = 64;
/// Characters of a label, tag, attribute or context key. Keys are never empty.
pub const MAX_KEY_CHARS: usize = 256;
/// Characters of a label, tag or context value.
pub const MAX_VALUE_CHARS: usize = 4096;
/// Characters of an identifier or name: a resource's `id`, `name`, `account`, `region`, `kind`,
/// `native_type`; a batch's `agent_id` and `task`; a cost line's text columns.
pub const MAX_ID_CHARS: usize = 1024;
/// Characters of a provider name (`aws`, `custom`, …): lowercase letters, digits, `_`, `-`.
pub const MAX_PROVIDER_CHARS: usize = 64;
/// Characters of a metric name: letters, digits, `_ . : / -`.
pub const MAX_METRIC_CHARS: usize = 256;
/// Characters of a collect error's `message` (which may span lines).
pub const MAX_MESSAGE_CHARS: usize = 16384;
/// Characters of one resource attribute's value, written as compact JSON.
pub const MAX_ATTRIBUTE_CHARS: usize = 16384;

/// JSON Schema `pattern` of a string without control characters (Unicode `Cc`: NUL and the
/// rest of C0, DEL, C1), the rule for identifiers, names, keys and values.
pub const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// JSON Schema `pattern` of free text: as [`NO_CONTROL_PATTERN`] but tab, line feed and
/// carriage return are allowed.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";
/// JSON Schema `pattern` of a metric name.
pub const METRIC_PATTERN: &str = "^[A-Za-z0-9_.:/-]+$";
/// JSON Schema `pattern` of a provider name.
pub const PROVIDER_PATTERN: &str = "^[a-z0-9_-]+$";

/// Whether `v` is longer than `max` characters (cheap when its bytes already fit).
pub fn too_long(v: &str, max: usize) -> bool {
    v.len() > max && v.chars().count() > max
}

/// Whether `v` holds a control character (identifiers, keys, values refuse all of them).
pub fn has_control(v: &str) -> bool {
    v.chars().any(char::is_control)
}

/// Whether `v` holds a control character other than tab, line feed, carriage return.
pub fn has_control_in_text(v: &str) -> bool {
    v.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// `v` for an error message: at most 40 characters, controls escaped, so that a 10 MB
/// value or a NUL never ends up in the answer or a log line.
pub fn shown(v: &str) -> String {
    let mut out: String = v.chars().take(40).flat_map(char::escape_debug).collect();
    if v.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

/// Schema of an identifier or name: up to [`MAX_ID_CHARS`], no control characters.
pub fn id_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": MAX_ID_CHARS,
        "pattern": NO_CONTROL_PATTERN,
    })
}

/// Schema of an identifier that must not be empty.
pub fn required_id_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_CHARS,
        "pattern": NO_CONTROL_PATTERN,
    })
}

/// Schema of an optional identifier (`null` or absent when unknown).
pub fn optional_id_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "maxLength": MAX_ID_CHARS,
        "pattern": NO_CONTROL_PATTERN,
    })
}

/// Schema of a batch id: a UUID, never the nil one (a UUID with no non-zero digit).
pub fn batch_id_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "format": "uuid",
        "not": {"pattern": "^[^1-9a-fA-F]*$"},
    })
}

/// Schema of a provider name.
pub fn provider_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PROVIDER_CHARS,
        "pattern": PROVIDER_PATTERN,
    })
}

/// Schema of a metric name.
pub fn metric_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_METRIC_CHARS,
        "pattern": METRIC_PATTERN,
    })
}

/// Schema of a collect error's message.
pub fn message_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": MAX_MESSAGE_CHARS,
        "pattern": TEXT_PATTERN,
    })
}

fn key_schema() -> serde_json::Value {
    serde_json::json!({
        "minLength": 1,
        "maxLength": MAX_KEY_CHARS,
        "pattern": NO_CONTROL_PATTERN,
    })
}

/// Schema of labels and tags: string → string, bounded.
pub fn labels_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_LABELS,
        "propertyNames": key_schema(),
        "additionalProperties": {
            "type": "string",
            "maxLength": MAX_VALUE_CHARS,
            "pattern": NO_CONTROL_PATTERN,
        },
    })
}

/// Schema of a resource's attributes: string → any JSON value, bounded in count and keys.
pub fn attributes_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_LABELS,
        "propertyNames": key_schema(),
        "additionalProperties": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_is_short_and_escapes_controls() {
        assert_eq!(shown("a\0b"), "a\\0b");
        let long = "x".repeat(10_000_000);
        assert_eq!(shown(&long).chars().count(), 41);
    }

    #[test]
    fn control_rules() {
        assert!(has_control("a\0") && has_control("a\n") && has_control("\u{85}"));
        assert!(!has_control("ü ß ✓"));
        assert!(!has_control_in_text("line 1\nline 2\t\r"));
        assert!(has_control_in_text("bell\u{7}"));
    }
}
