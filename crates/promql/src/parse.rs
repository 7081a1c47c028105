//! Parsing with promql-parser, then refusing what Prometheus 2.42 does not know (newer
//! syntax the parser accepts), and locating syntax errors in the query text.

use std::sync::Once;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, Function};

use crate::error::{QueryError, Result};
use crate::limits::{check_tree, scan_text};
use crate::Options;

/// Functions this engine evaluates: Prometheus 2.42's float functions.
pub(crate) const SUPPORTED_FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Prometheus 2.42 has `holt_winters`, which newer parsers renamed; teach it to the parser.
fn register_functions() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Registration fails only if the name exists, which then is fine as well.
        let _ = parser::register_extra_functions(vec![Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
}

/// `scalar`, `string`, `instant vector` or `range vector`, as Prometheus words types.
pub(crate) fn expr_kind(e: &Expr) -> &'static str {
    match e.value_type() {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

/// Parses a PromQL expression within `opts`' size limits (checked on the text first,
/// then on the tree: see `limits.rs`); errors are `bad_data` with the position
/// (line:column prefix like Prometheus, and the byte offset in `QueryError::position`).
pub(crate) fn parse_expr(q: &str, opts: &Options) -> Result<Expr> {
    register_functions();
    scan_text(q, opts)?;
    match parser::parse(q) {
        Ok(expr) => {
            // The bounds first: `check_supported` recurses.
            check_tree(&expr, opts)?;
            check_supported(&expr)?;
            Ok(expr)
        }
        Err(msg) => Err(match error_position(q) {
            Some(pos) => {
                let (line, col) = line_col(q, pos);
                let mut err = QueryError::bad_data(format!("{line}:{col}: parse error: {msg}"));
                err.position = Some(pos);
                err
            }
            None => QueryError::bad_data(format!("parse error: {msg}")),
        }),
    }
}

fn unsupported(what: String) -> QueryError {
    QueryError::bad_data(format!("parse error: {what}"))
}

/// Refuses syntax that promql-parser accepts but Prometheus 2.42 does not.
fn check_supported(e: &Expr) -> Result<()> {
    match e {
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if matches!(op.as_str(), "limitk" | "limit_ratio") {
                return Err(unsupported(format!(
                    "unknown aggregation {op:?} (not in Prometheus 2.42)"
                )));
            }
            if let Some(p) = &a.param {
                check_supported(p)?;
            }
            check_supported(&a.expr)
        }
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(unsupported(
                        "fill modifiers are not in Prometheus 2.42".to_string(),
                    ));
                }
            }
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Subquery(s) => {
            if s.expr.value_type() != ValueType::Vector {
                return Err(unsupported(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    expr_kind(&s.expr)
                )));
            }
            check_supported(&s.expr)
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Call(c) => {
            if !SUPPORTED_FUNCTIONS.contains(&c.func.name) {
                return Err(unsupported(format!(
                    "unknown function with name {:?}",
                    c.func.name
                )));
            }
            c.args.args.iter().try_for_each(|a| check_supported(a))
        }
        Expr::Extension(_) => Err(unsupported("extension expressions".to_string())),
    }
}

fn check_selector(vs: &parser::VectorSelector) -> Result<()> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(unsupported(
            "`or` between matchers inside braces is not in Prometheus 2.42".to_string(),
        ));
    }
    Ok(())
}

/// 1-based line and column of byte offset `pos`.
fn line_col(q: &str, pos: usize) -> (usize, usize) {
    let before = &q[..pos.min(q.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where a syntax error sits. promql-parser reports what went wrong but not where, so
/// this finds the longest prefix (ending on a token boundary) that some plausible
/// completion turns into a valid query: the parser is LR, so every prefix of a valid
/// query can be completed, and the error is at the token right after that prefix.
fn error_position(q: &str) -> Option<usize> {
    // Completions cover what can follow a prefix: an operand, a string, a duration, a
    // matcher's rest, a range, an aggregation's parts; then open brackets are closed.
    const FILLERS: &[&str] = &[
        "", "x", " x", "1", " 1", "\"\"", "=\"\"", "5m", " 5m", "[5m]", " (x)", " (x) (x)",
        "(x) x", "1, x", "\"\", x",
    ];
    // Each try parses the prefix again: give up on a position rather than spend long on
    // a huge query. The budget counts bytes handed to the parser, not wall time, so the
    // same query gets the same answer on a busy machine.
    const PARSE_BUDGET_BYTES: usize = 4 << 20;
    let mut spent: usize = 0;
    let mut out_of_time = false;
    let mut viable = |p: usize| {
        spent = spent.saturating_add(p.saturating_add(16).saturating_mul(FILLERS.len()));
        if spent > PARSE_BUDGET_BYTES {
            out_of_time = true;
            return false;
        }
        let prefix = &q[..p];
        let closers = closing_brackets(prefix);
        FILLERS
            .iter()
            .any(|f| parser::parse(&format!("{prefix}{f}{closers}")).is_ok())
    };
    let at = |p: usize| {
        if p >= q.len() {
            q.len()
        } else {
            skip_spaces(q, p)
        }
    };
    let bounds = token_boundaries(q);
    // Errors usually sit near the end: look there one boundary at a time...
    const NEAR: usize = 48;
    for &p in bounds.iter().rev().take(NEAR) {
        if viable(p) {
            return Some(at(p));
        }
    }
    // ...and bisect the rest (every prefix of a viable prefix is viable), so a long
    // query costs a few dozen parses, not thousands.
    let rest = &bounds[..bounds.len().saturating_sub(NEAR)];
    let (mut lo, mut hi) = (0, rest.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if viable(rest[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if out_of_time {
        return None;
    }
    Some(if lo == 0 { 0 } else { at(rest[lo - 1]) })
}

fn skip_spaces(q: &str, mut p: usize) -> usize {
    while q[p..].starts_with(char::is_whitespace) {
        p += q[p..].chars().next().map_or(1, char::len_utf8);
    }
    p
}

/// Byte offsets that end a token: not inside a word, number or quoted string.
fn token_boundaries(q: &str) -> Vec<usize> {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '.';
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let chars: Vec<(usize, char)> = q.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let end = at + c.len_utf8();
        if let Some(qc) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && qc != '`' {
                escaped = true;
            } else if c == qc {
                quote = None;
                out.push(end);
            }
            continue;
        }
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
            continue;
        }
        let next = chars.get(i + 1).map(|&(_, n)| n);
        if !(word(c) && next.is_some_and(word)) {
            out.push(end);
        }
    }
    if out.last() != Some(&q.len()) {
        out.push(q.len());
    }
    out
}

/// The brackets that close what `prefix` left open, innermost first.
fn closing_brackets(prefix: &str) -> String {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in prefix.chars() {
        if let Some(qc) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && qc != '`' {
                escaped = true;
            } else if c == qc {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' => stack.push(')'),
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            ')' | '}' | ']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    let mut out = String::new();
    if let Some(qc) = quote {
        out.push(qc);
    }
    out.extend(stack.iter().rev());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_expr(q: &str) -> Result<Expr> {
        super::parse_expr(q, &Options::default())
    }

    fn pos(q: &str) -> usize {
        parse_expr(q).unwrap_err().position.unwrap()
    }

    #[test]
    fn syntax_errors_point_at_the_offending_token() {
        assert_eq!(pos("sum(foo bar)"), 8);
        assert_eq!(pos("foo +"), 5);
        assert_eq!(pos("rate(foo[5m]))"), 13);
        assert_eq!(pos(r#"foo{a="b"}}"#), 10);
        let err = parse_expr("sum(foo bar)").unwrap_err();
        assert!(
            err.message.starts_with("1:9: parse error: "),
            "{}",
            err.message
        );
        assert_eq!(err.error_type(), "bad_data");
    }

    #[test]
    fn long_queries_locate_errors_quickly() {
        let long = format!("{} + foo bar", vec!["x"; 100].join(" + "));
        assert_eq!(&long[pos(&long)..], "bar");
        let early = format!("foo bar + {}", vec!["x"; 100].join(" + "));
        assert_eq!(pos(&early), 4);
        // A huge one gives up on the position in time, and still says what is wrong.
        let huge = format!("foo bar + {}", vec!["x"; 2_400].join(" + "));
        let t = std::time::Instant::now();
        let err = parse_expr(&huge).unwrap_err();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
        assert!(err.message.contains("parse error"), "{}", err.message);
    }

    #[test]
    fn unclosed_input_points_at_the_end() {
        assert_eq!(pos("sum(rate(foo[5m])"), 17);
        assert_eq!(pos(r#"foo{a="b""#), 9);
    }

    #[test]
    fn newer_syntax_is_refused() {
        for q in [
            "limitk(2, foo)",
            "sort_by_label(foo, \"a\")",
            "foo + fill(0) bar",
            r#"{a="1" or b="2"}"#,
            "mad_over_time(foo[5m])",
        ] {
            let err = parse_expr(q).unwrap_err();
            assert_eq!(err.error_type(), "bad_data", "{q}");
        }
        parse_expr("holt_winters(foo[5m], 0.5, 0.5)").unwrap();
    }
}
