//! Whole numbers that JSON writes either way: `304` or `304.0`.
//!
//! JSON Schema (and so the published schemas, and every client generated from them) calls
//! `304.0` an integer, and JavaScript clients cannot tell the two apart; serde's integer
//! types refuse the second. These deserializers take both, and refuse a fraction, a
//! negative number or a number past the type's range with a message that says so.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct Whole {
    max: u64,
}

impl Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number from 0 to {}", self.max)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v > self.max {
            return Err(E::invalid_value(de::Unexpected::Unsigned(v), &self));
        }
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // `self.max as f64` rounds up for u64::MAX; `<` keeps the cast below exact.
        if v.fract() == 0.0 && v >= 0.0 && v < self.max as f64 + 1.0 {
            Ok(v as u64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    d.deserialize_any(Whole {
        max: u64::from(u32::MAX),
    })
    .map(|v| v as u32)
}

pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Whole { max: u64::MAX })
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::u32")]
        a: u32,
    }

    fn parse(s: &str) -> Result<u32, String> {
        serde_json::from_str::<T>(&format!("{{\"a\": {s}}}"))
            .map(|t| t.a)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_in_either_form() {
        assert_eq!(parse("304"), Ok(304));
        assert_eq!(parse("304.0"), Ok(304));
        assert_eq!(parse("3.04e2"), Ok(304));
        assert_eq!(parse("4294967295"), Ok(u32::MAX));
        for bad in [
            "304.5",
            "-1",
            "-0.5",
            "4294967296",
            "4294967296.0",
            "\"1\"",
            "1e400",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("304.5")
            .unwrap_err()
            .contains("a whole number from 0 to 4294967295"));
    }
}
