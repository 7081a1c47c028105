//! Label matchers (`=`, `!=`, `=~`, `!~`) as the series source receives them.

use std::fmt;

use promql_parser::label::{MatchOp as PMatchOp, Matcher as PMatcher};
use promql_parser::parser::{Expr, VectorSelector};
use regex::Regex;

use crate::error::{QueryError, Result};
use crate::labels::{Labels, METRIC_NAME};

/// How a matcher compares a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

/// One label matcher. Regexes are fully anchored, as in Prometheus: `a=~"b"` matches
/// only the value `b`, not `abc`. A missing label has the value `""`, so `a=""` matches
/// series without `a` and `a!=""` requires it.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// A matcher; for the regex kinds `value` is compiled anchored as `^(?:value)$`.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::Equal | MatchOp::NotEqual => None,
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(crate::MAX_REGEX_COMPILED_BYTES)
                    .build()
                    .map_err(|e| {
                        QueryError::bad_data(format!(
                            "invalid regular expression {value:?} for label {name:?}: {e}"
                        ))
                    })?,
            ),
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// Whether a label value (or `""` for a missing label) satisfies this matcher.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == v,
            MatchOp::NotEqual => self.value != v,
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::RegexNoMatch => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// The value an `=` matcher requires, for index lookups by the series source.
    pub fn equal_value(&self) -> Option<&str> {
        (self.op == MatchOp::Equal).then_some(self.value.as_str())
    }

    pub(crate) fn from_parser(m: &PMatcher) -> Self {
        let (op, regex) = match &m.op {
            PMatchOp::Equal => (MatchOp::Equal, None),
            PMatchOp::NotEqual => (MatchOp::NotEqual, None),
            // promql-parser already compiled the anchored regex (with Go's `{` quirk
            // escaped), so reuse it rather than compile again.
            PMatchOp::Re(r) => (MatchOp::RegexMatch, Some(r.clone())),
            PMatchOp::NotRe(r) => (MatchOp::RegexNoMatch, Some(r.clone())),
        };
        Matcher {
            name: m.name.clone(),
            op,
            value: m.value.clone(),
            regex,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Whether a series' labels satisfy every matcher.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get_or_empty(&m.name)))
}

/// The matchers of a vector selector, including its metric name as a `__name__` matcher.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::bad_data(format!(
            "the `or` inside a selector ({vs}) is not supported: Prometheus 2.42 has no such syntax; use `or` between two selectors"
        )));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name.clone())?);
    }
    out.extend(vs.matchers.matchers.iter().map(Matcher::from_parser));
    Ok(out)
}

/// Parses a series selector such as `cpu_utilization_percent{region=~"eu-.*"}` into its
/// matchers, as `/api/v1/series?match[]=` takes them. Offsets, `@` and ranges are refused.
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>> {
    let expr = crate::parse::parse_expr(s, &crate::Options::default())?;
    match expr {
        Expr::VectorSelector(vs) => {
            if vs.offset.is_some() || vs.at.is_some() {
                return Err(QueryError::bad_data(format!(
                    "invalid series selector {s:?}: offset and @ are not allowed in a series selector"
                )));
            }
            selector_matchers(&vs)
        }
        other => Err(QueryError::bad_data(format!(
            "invalid series selector {s:?}: expected a selector like metric{{label=\"value\"}}, got {} expression",
            crate::parse::expr_kind(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_four_kinds_and_missing_labels() {
        let eq = Matcher::new(MatchOp::Equal, "a", "x").unwrap();
        let ne = Matcher::new(MatchOp::NotEqual, "a", "x").unwrap();
        let re = Matcher::new(MatchOp::RegexMatch, "a", "x|y").unwrap();
        let nre = Matcher::new(MatchOp::RegexNoMatch, "a", "x.*").unwrap();
        assert!(eq.matches("x") && !eq.matches("xx"));
        assert!(ne.matches("y") && !ne.matches("x"));
        assert!(re.matches("y") && !re.matches("xy"), "regexes are anchored");
        assert!(nre.matches("y") && !nre.matches("xyz"));

        let empty = Matcher::new(MatchOp::Equal, "b", "").unwrap();
        let labels = Labels::from_pairs([("a", "x")]);
        assert!(matches_all(&[eq.clone(), empty.clone()], &labels));
        let nonempty = Matcher::new(MatchOp::RegexMatch, "b", ".+").unwrap();
        assert!(!matches_all(&[eq, nonempty], &labels));
    }

    #[test]
    fn bad_regex_names_the_label() {
        let err = Matcher::new(MatchOp::RegexMatch, "region", "(").unwrap_err();
        assert_eq!(err.error_type(), "bad_data");
        assert!(err.message.contains("region"), "{}", err.message);
    }

    #[test]
    fn parse_selector_includes_the_metric_name() {
        let ms = parse_selector(r#"cpu{region=~"eu-.*",kind!="x"}"#).unwrap();
        let shown: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            shown,
            [r#"__name__="cpu""#, r#"region=~"eu-.*""#, r#"kind!="x""#]
        );
        assert!(ms[1].matches("eu-west-1") && !ms[1].matches("us-east-1"));
    }

    #[test]
    fn parse_selector_refuses_other_expressions() {
        for bad in [
            "rate(cpu[5m])",
            "cpu offset 5m",
            "cpu[5m]",
            r#"{a=~".*"}"#,
            "cpu{",
        ] {
            let err = parse_selector(bad).unwrap_err();
            assert_eq!(err.error_type(), "bad_data", "{bad}: {}", err.message);
        }
    }
}
