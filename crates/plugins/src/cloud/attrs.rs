//! The attributes of an inventory resource, built from an API answer: absent values are left
//! out, whole numbers stay integers in JSON.

use serde_json::Value;
use std::collections::BTreeMap;

/// Attributes being built (`Attrs::default().s("state", …).n("vcpus", …)`).
#[derive(Debug, Default)]
pub struct Attrs(pub BTreeMap<String, Value>);

impl Attrs {
    /// A text value.
    pub fn s(mut self, k: &str, v: Option<impl Into<String>>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), Value::String(v.into()));
        }
        self
    }

    /// A number: an integer when it is a whole number JSON can hold exactly.
    pub fn n(mut self, k: &str, v: Option<impl Into<f64>>) -> Self {
        if let Some(v) = v {
            let v: f64 = v.into();
            let json = if v.fract() == 0.0 && v.abs() < 9e15 {
                Value::from(v as i64)
            } else {
                Value::from(v)
            };
            self.0.insert(k.into(), json);
        }
        self
    }

    pub fn b(mut self, k: &str, v: Option<bool>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), Value::Bool(v));
        }
        self
    }

    /// Any JSON value, as is.
    pub fn v(mut self, k: &str, v: Value) -> Self {
        self.0.insert(k.into(), v);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_left_out_and_whole_numbers_stay_integers() {
        let a = Attrs::default()
            .s("state", Some("running"))
            .s("missing", None::<String>)
            .n("vcpus", Some(4u32))
            .n("gib", Some(1.5))
            .n("none", None::<f64>)
            .b("spot", Some(false))
            .v("raw", Value::Null);
        assert_eq!(
            serde_json::to_string(&a.0).unwrap(),
            r#"{"gib":1.5,"raw":null,"spot":false,"state":"running","vcpus":4}"#
        );
    }
}
