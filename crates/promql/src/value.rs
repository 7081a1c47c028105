//! Query results and their JSON form: exactly the `data` object of Prometheus' HTTP API.

use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

use crate::labels::Labels;

/// One sample of an instant vector: its labels, the evaluation time (ms) and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// One series of a matrix: its labels and points sorted by time (ms).
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// A query result. Serializes to `{"resultType": ..., "result": ...}`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<Sample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// `scalar`, `string`, `vector` or `matrix`.
    pub fn result_type(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Formats a value like Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest
/// decimal that reads back to the same float, never in exponent form, and `NaN`,
/// `+Inf`, `-Inf` for the special values.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display for f64 prints the shortest round-trip digits without an
        // exponent, which is what Go's 'f' with precision -1 does.
        format!("{v}")
    }
}

/// A timestamp in ms written as a JSON number of seconds, like Prometheus: whole
/// seconds as an integer, otherwise with the fraction (`1700000000.5`).
struct Ts(i64);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

/// A `[timestamp, "value"]` pair.
struct Point<'a, V: Serialize + ?Sized>(i64, &'a V);

impl<V: Serialize + ?Sized> Serialize for Point<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Ts(self.0))?;
        t.serialize_element(self.1)?;
        t.end()
    }
}

struct Values<'a>(&'a RangeSeries);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.timestamps.len()))?;
        for (t, v) in self.0.timestamps.iter().zip(&self.0.values) {
            seq.serialize_element(&Point(*t, format_value(*v).as_str()))?;
        }
        seq.end()
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &self.labels)?;
        m.serialize_entry("value", &Point(self.t, format_value(self.v).as_str()))?;
        m.end()
    }
}

impl Serialize for RangeSeries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &self.labels)?;
        m.serialize_entry("values", &Values(self))?;
        m.end()
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("resultType", self.result_type())?;
        match self {
            Value::Scalar { t, v } => {
                m.serialize_entry("result", &Point(*t, format_value(*v).as_str()))?
            }
            Value::String { t, v } => m.serialize_entry("result", &Point(*t, v.as_str()))?,
            Value::Vector(samples) => m.serialize_entry("result", samples)?,
            Value::Matrix(series) => m.serialize_entry("result", series)?,
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_like_go_format_float() {
        let cases = [
            (1.5, "1.5"),
            (1.0, "1"),
            (-0.0, "-0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1000000000000000000000"),
            (1e-7, "0.0000001"),
            (123456789.125, "123456789.125"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v:?}");
        }
    }

    #[test]
    fn matrix_json_matches_the_prometheus_api() {
        let v = Value::Matrix(vec![RangeSeries {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            timestamps: vec![1_700_000_000_000, 1_700_000_000_500],
            values: vec![1.5, f64::NAN],
        }]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1.5"],[1700000000.5,"NaN"]]}]}"#
        );
    }

    #[test]
    fn vector_scalar_and_string_json() {
        let v = Value::Vector(vec![Sample {
            labels: Labels::empty(),
            t: 1_000,
            v: f64::NEG_INFINITY,
        }]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"-Inf"]}]}"#
        );
        let s = Value::Scalar { t: 1_234, v: 2.0 };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"resultType":"scalar","result":[1.234,"2"]}"#
        );
        let s = Value::String {
            t: 0,
            v: "hi".into(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"resultType":"string","result":[0,"hi"]}"#
        );
    }
}
