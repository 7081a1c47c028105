//! `google.protobuf.Struct` ⇄ JSON: every payload of Cloudforet's plugin protocol is a
//! Struct, while the plugin thinks in `serde_json` values.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number, Value as Json};

/// A Struct as a JSON object (`None`, as a missing message field arrives, is `{}`).
pub fn to_json(s: Option<&Struct>) -> Map<String, Json> {
    s.map(|s| {
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect()
    })
    .unwrap_or_default()
}

fn value_to_json(v: &Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        // Protobuf numbers are doubles; a whole number within ±2^53 comes back as an integer
        // so that `period_hours: 24` reads as 24, not 24.0.
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                Json::Number(Number::from(*n as i64))
            } else {
                Number::from_f64(*n).map_or(Json::Null, Json::Number)
            }
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => Json::Object(to_json(Some(s))),
    }
}

/// A JSON object as a Struct.
pub fn from_json(m: &Map<String, Json>) -> Struct {
    Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// A JSON value as a Struct: objects as they are, anything else under no key is not a
/// Struct, so callers pass objects (`json!({...})`); a non-object gives an empty Struct.
pub fn struct_of(v: &Json) -> Struct {
    match v {
        Json::Object(m) => from_json(m),
        _ => Struct::default(),
    }
}

fn json_to_value(v: &Json) -> Value {
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Json::Object(m) => Kind::StructValue(from_json(m)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_survives_the_round_trip() {
        let v = json!({"a": 1, "b": 2.5, "c": "x", "d": [true, null, {"e": -3}], "f": {}});
        let s = struct_of(&v);
        assert_eq!(Json::Object(to_json(Some(&s))), v);
        assert!(to_json(None).is_empty());
    }
}
