//! Reading money and quantities as decimals. A rule's cost is written as text (`"0.001"`)
//! or a number; both become a 96-bit decimal (28 significant digits, CloudKitty's Python
//! decimal precision) without passing through a float where the text is available.

use rust_decimal::Decimal;
use std::str::FromStr;

/// `"0.001"`, `"12"`, `"-3.5"`, `"1e-3"` → a decimal; an error that says what is wrong.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty number".into());
    }
    let parsed = if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        Decimal::from_str_exact(t)
    };
    parsed.map_err(|e| match e {
        rust_decimal::Error::Underflow => {
            format!("`{t}` has more digits than a decimal holds (28 significant digits); round it")
        }
        rust_decimal::Error::ExceedsMaximumPossibleValue
        | rust_decimal::Error::LessThanMinimumPossibleValue => {
            format!("`{t}` is out of range (at most 7.9e28 in size)")
        }
        _ => format!("`{t}` is not a number"),
    })
}

/// A TOML or JSON number as a decimal: integers exactly; a float by its shortest text,
/// which is what the user wrote for up to 15 significant digits (write more as text).
pub fn decimal_from_f64(v: f64) -> Result<Decimal, String> {
    if !v.is_finite() {
        return Err(format!("`{v}` is not a finite number"));
    }
    let text = format!("{v}");
    Decimal::from_str(&text).or_else(|_| parse_decimal(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_scientific_and_refuses_junk() {
        assert_eq!(parse_decimal("0.001").unwrap().to_string(), "0.001");
        assert_eq!(parse_decimal(" 12 ").unwrap().to_string(), "12");
        assert_eq!(parse_decimal("1e-3").unwrap().to_string(), "0.001");
        assert!(parse_decimal("abc").unwrap_err().contains("not a number"));
        assert!(parse_decimal("").is_err());
        assert!(parse_decimal("0.00000000000000000000000000001")
            .unwrap_err()
            .contains("28 significant digits"));
    }

    #[test]
    fn floats_keep_what_was_written() {
        assert_eq!(decimal_from_f64(0.03).unwrap().to_string(), "0.03");
        assert_eq!(decimal_from_f64(0.98).unwrap().to_string(), "0.98");
        assert!(decimal_from_f64(f64::NAN).is_err());
    }
}
