//! Bounds on a query's text and shape, so that no query can exhaust the stack, the CPU or
//! the memory of the process that evaluates it.
//!
//! Two checks, both cheap and neither recursive:
//! 1. [`scan_text`] before the parser sees the text: its length, bracket nesting, the
//!    number of binary operators and the length and compiled size of regex matchers.
//!    promql-parser recurses over the expressions it builds (its type checks walk a
//!    chain of binary operators once per operator) and compiles regexes with the regex
//!    crate's default limits, so it must never be handed a text that would make it
//!    recurse deeply, work quadratically on a long input or build a huge automaton.
//! 2. [`check_tree`] after parsing: the depth and node count of the expression, and every
//!    duration and `@` time within the bounds of [`crate::range`]. The evaluator recurses
//!    once per level of the tree, so this depth bound is its stack bound.

use std::time::Duration;

use promql_parser::parser::{AtModifier, Expr, Offset};

use crate::error::{QueryError, Result};
use crate::range::{check_time, MAX_DURATION_MS};
use crate::Options;

/// The compiled size a regex matcher may reach (the regex crate's `size_limit`); a
/// pattern past it is refused before promql-parser compiles it with its default (10 MiB).
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;

fn too_big(what: String, hint: &str) -> QueryError {
    QueryError::bad_data(format!("{what}; {hint}"))
}

/// Checks the raw text against `opts`' size limits, before it is parsed.
pub(crate) fn scan_text(q: &str, opts: &Options) -> Result<()> {
    if q.len() > opts.max_query_bytes {
        return Err(too_big(
            format!(
                "the query is {} bytes long, more than the limit of {} bytes (max_query_bytes)",
                q.len(),
                opts.max_query_bytes
            ),
            "shorten it",
        ));
    }
    let b = q.as_bytes();
    let mut depth = 0usize;
    let mut braces = 0usize;
    let mut operators = 0usize;
    // Whether the last token outside strings was `=~` or `!~` inside braces.
    let mut after_regex_op = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(b.len());
                if after_regex_op {
                    check_regex_literal(&q[start..end], start, opts)?;
                }
                after_regex_op = false;
                i = end;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if c == b'{' {
                    braces += 1;
                }
                if depth > opts.max_depth {
                    return Err(too_big(
                        format!(
                            "the query nests brackets more than {} deep (max_depth), at byte {i}",
                            opts.max_depth
                        ),
                        "simplify it",
                    ));
                }
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if c == b'}' {
                    braces = braces.saturating_sub(1);
                }
            }
            b'=' | b'!' if braces > 0 => {
                after_regex_op = b.get(i + 1) == Some(&b'~');
                i += 1 + usize::from(after_regex_op);
                continue;
            }
            // Operators outside braces. `+`/`-` in a number's exponent (`1e-3`) are not.
            b'+' | b'-' if braces == 0 => {
                let exponent = i >= 2
                    && matches!(b[i - 1], b'e' | b'E')
                    && b[i - 2].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit);
                operators += usize::from(!exponent);
            }
            b'*' | b'/' | b'%' | b'^' if braces == 0 => operators += 1,
            b'=' | b'!' | b'<' | b'>' if braces == 0 => {
                operators += 1;
                if b.get(i + 1) == Some(&b'=') {
                    i += 1;
                }
            }
            c if braces == 0 && (c.is_ascii_alphabetic() || c == b'_') => {
                let w = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &q[w..i];
                if ["and", "or", "unless", "atan2"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    operators += 1;
                }
                continue;
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            after_regex_op = false;
        }
        i += 1;
    }
    // n binary operators make at least 2n + 1 nodes: refuse here what `check_tree` would
    // refuse, before the parser spends quadratic time and deep recursion on it.
    let min_nodes = operators.saturating_mul(2).saturating_add(1);
    if min_nodes > opts.max_nodes {
        return Err(too_big(
            format!(
                "the query has {operators} binary operators, so at least {min_nodes} \
                 expression nodes, more than the limit of {} (max_nodes)",
                opts.max_nodes
            ),
            "split it into several queries",
        ));
    }
    Ok(())
}

/// A regex matcher's quoted pattern (`quoted` with its quotes, at byte `at`): its length,
/// then its compiled size with the regex crate's `size_limit`.
fn check_regex_literal(quoted: &str, at: usize, opts: &Options) -> Result<()> {
    let inner_len = quoted.len().saturating_sub(2);
    if inner_len > opts.max_regex_bytes {
        return Err(too_big(
            format!(
                "the regular expression at byte {at} is {inner_len} bytes long, more than the \
                 limit of {} bytes (max_regex_bytes)",
                opts.max_regex_bytes
            ),
            "match fewer alternatives, or select by a label with fewer values",
        ));
    }
    // Only the size matters here: a pattern this cannot read (an escape it does not know)
    // is left to the parser, which reports syntax errors.
    let Some(pattern) = unquote(quoted) else {
        return Ok(());
    };
    if let Err(regex::Error::CompiledTooBig(limit)) = regex::RegexBuilder::new(&pattern)
        .size_limit(MAX_REGEX_COMPILED_BYTES)
        .build()
    {
        return Err(too_big(
            format!(
                "the regular expression at byte {at} compiles to more than {limit} bytes \
                 (the limit for regex matchers)"
            ),
            "use fewer or smaller repetitions and character classes",
        ));
    }
    Ok(())
}

/// The value of a PromQL string literal (Go's escapes), or `None` for one it cannot read.
fn unquote(quoted: &str) -> Option<String> {
    let mut chars = quoted.chars();
    let q = chars.next()?;
    let body = quoted.get(q.len_utf8()..quoted.len().checked_sub(q.len_utf8())?)?;
    if q == '`' {
        return Some(body.to_string());
    }
    let mut out = String::with_capacity(body.len());
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next()?;
        let hex = |it: &mut std::str::Chars<'_>, n: usize| -> Option<char> {
            let s: String = it.by_ref().take(n).collect();
            char::from_u32(u32::from_str_radix(&s, 16).ok()?)
        };
        out.push(match e {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' | '\'' | '"' => e,
            'x' => hex(&mut it, 2)?,
            'u' => hex(&mut it, 4)?,
            'U' => hex(&mut it, 8)?,
            '0'..='7' => {
                let rest: String = it.by_ref().take(2).collect();
                char::from_u32(u32::from_str_radix(&format!("{e}{rest}"), 8).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn check_duration(what: &str, d: &Duration) -> Result<()> {
    if duration_ms(d) > MAX_DURATION_MS {
        return Err(QueryError::bad_data(format!(
            "the {what} {d:?} is longer than the longest supported duration, \
             {MAX_DURATION_MS} ms (about 10,000 years)"
        )));
    }
    Ok(())
}

fn check_offset(o: &Option<Offset>) -> Result<()> {
    match o {
        Some(Offset::Pos(d)) | Some(Offset::Neg(d)) => check_duration("offset", d),
        None => Ok(()),
    }
}

fn check_at(at: &Option<AtModifier>) -> Result<()> {
    if let Some(AtModifier::At(t)) = at {
        let ms = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => duration_ms(&d),
            Err(e) => duration_ms(&e.duration()).saturating_neg(),
        };
        check_time("the @ time", ms)?;
    }
    Ok(())
}

/// The direct sub-expressions of `e`, for the iterative walks below.
fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Aggregate(a) => std::iter::once(&*a.expr)
            .chain(a.param.as_deref())
            .collect(),
        Expr::Unary(u) => vec![&*u.expr],
        Expr::Binary(b) => vec![&*b.lhs, &*b.rhs],
        Expr::Paren(p) => vec![&*p.expr],
        Expr::Subquery(s) => vec![&*s.expr],
        Expr::Call(c) => c.args.args.iter().map(|a| &**a).collect(),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_) => Vec::new(),
    }
}

/// The depth of an expression tree (a leaf is 1), without recursion.
pub(crate) fn tree_depth(e: &Expr) -> usize {
    let mut stack: Vec<(&Expr, usize)> = vec![(e, 1)];
    let mut deepest = 0;
    while let Some((e, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        stack.extend(children(e).into_iter().map(|c| (c, depth + 1)));
    }
    deepest
}

/// The durations and `@` times one node carries itself (not its children's).
fn check_node_times(e: &Expr) -> Result<()> {
    match e {
        Expr::Subquery(s) => {
            check_duration("subquery range", &s.range)?;
            if let Some(step) = &s.step {
                check_duration("subquery step", step)?;
            }
            check_offset(&s.offset)?;
            check_at(&s.at)?;
        }
        Expr::VectorSelector(vs) => {
            check_offset(&vs.offset)?;
            check_at(&vs.at)?;
        }
        Expr::MatrixSelector(ms) => {
            check_duration("range", &ms.range)?;
            check_offset(&ms.vs.offset)?;
            check_at(&ms.vs.at)?;
        }
        _ => {}
    }
    Ok(())
}

/// Checks a parsed expression's depth, size, durations and `@` times; iterative, so that
/// it is safe on any tree the parser returns.
pub(crate) fn check_tree(e: &Expr, opts: &Options) -> Result<()> {
    let mut stack: Vec<(&Expr, usize)> = vec![(e, 1)];
    let mut nodes = 0usize;
    while let Some((e, depth)) = stack.pop() {
        nodes += 1;
        if nodes > opts.max_nodes {
            return Err(too_big(
                format!(
                    "the query has more than {} expression nodes (max_nodes)",
                    opts.max_nodes
                ),
                "split it into several queries",
            ));
        }
        if depth > opts.max_depth {
            return Err(too_big(
                format!(
                    "the query nests expressions more than {} deep (max_depth)",
                    opts.max_depth
                ),
                "use fewer nested calls and parentheses, or aggregate a long chain of \
                 binary operators (`a + b + c + ...`) with sum()",
            ));
        }
        check_node_times(e)?;
        stack.extend(children(e).into_iter().map(|c| (c, depth + 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options::default()
    }

    fn scan_err(q: &str) -> String {
        scan_text(q, &opts()).unwrap_err().message
    }

    #[test]
    fn long_queries_are_refused_by_length() {
        let q = "x".repeat(opts().max_query_bytes + 1);
        assert_eq!(
            scan_err(&q),
            "the query is 131073 bytes long, more than the limit of 131072 bytes \
             (max_query_bytes); shorten it"
        );
    }

    #[test]
    fn deep_brackets_are_refused_before_parsing() {
        let q = format!("{}1{}", "abs(".repeat(2000), ")".repeat(2000));
        assert_eq!(
            scan_err(&q),
            "the query nests brackets more than 128 deep (max_depth), at byte 515; simplify it"
        );
        // Brackets inside strings and comments do not count.
        let q = format!(
            "label_join(up, \"a\", \"{}\") # {}",
            "(".repeat(500),
            "(".repeat(500)
        );
        scan_text(&q, &opts()).unwrap();
    }

    #[test]
    fn long_operator_chains_are_refused_before_parsing() {
        let q = vec!["1"; 4000].join("+");
        assert_eq!(
            scan_err(&q),
            "the query has 3999 binary operators, so at least 7999 expression nodes, more \
             than the limit of 5000 (max_nodes); split it into several queries"
        );
        // Exponents, matchers and label names are not operators.
        scan_text(r#"1e-3 + up{a!="b", c=~"d", e!~"f"} + on(or) x"#, &opts()).unwrap();
        let q = format!("{} + x", vec!["1e-5"; 2499].join(" and "));
        scan_text(&q, &opts()).unwrap();
    }

    #[test]
    fn regex_matchers_are_bounded_by_length_and_compiled_size() {
        let q = format!("up{{a=~\"{}\"}}", "x|".repeat(20_000));
        assert_eq!(
            scan_err(&q),
            "the regular expression at byte 6 is 40000 bytes long, more than the limit of \
             32768 bytes (max_regex_bytes); match fewer alternatives, or select by a label \
             with fewer values"
        );
        let q = r#"up{a!~ "(\\pL{100}){100}"}"#;
        assert_eq!(
            scan_err(q),
            "the regular expression at byte 7 compiles to more than 1048576 bytes (the limit \
             for regex matchers); use fewer or smaller repetitions and character classes"
        );
        // The same text as a plain string (not a matcher) is not a regex.
        scan_text(r#"label_join(up, "a", "(\\pL{100}){100}")"#, &opts()).unwrap();
        scan_text(r#"up{a=~"eu-.*|us-.*"}"#, &opts()).unwrap();
    }

    #[test]
    fn unquote_reads_go_escapes() {
        assert_eq!(
            unquote(r#""a\\d\n\x41\u00e9\101""#).as_deref(),
            Some("a\\d\nA\u{e9}A")
        );
        assert_eq!(unquote("`a\\d`").as_deref(), Some("a\\d"));
        assert_eq!(unquote(r#"'it\'s'"#).as_deref(), Some("it's"));
        assert_eq!(unquote(r#""\q""#), None);
        assert_eq!(unquote("\""), None);
    }

    fn tree_err(q: &str) -> String {
        let e = promql_parser::parser::parse(q).unwrap();
        check_tree(&e, &opts()).unwrap_err().message
    }

    #[test]
    fn trees_are_bounded_by_depth_nodes_and_durations() {
        let q = format!("{} + x", vec!["1"; 200].join(" + "));
        assert_eq!(
            tree_err(&q),
            "the query nests expressions more than 128 deep (max_depth); use fewer nested \
             calls and parentheses, or aggregate a long chain of binary operators \
             (`a + b + c + ...`) with sum()"
        );
        let q = format!("label_join(up, \"a\", \",\"{})", ", \"b\"".repeat(5000));
        assert_eq!(
            tree_err(&q),
            "the query has more than 5000 expression nodes (max_nodes); split it into several queries"
        );
        assert!(
            tree_err("up[20000y]")
                .starts_with("the range 630720000000s is longer than the longest"),
            "{}",
            tree_err("up[20000y]")
        );
        assert!(tree_err("up offset 20000y").starts_with("the offset "));
        assert!(tree_err("up[5m:20000y]").starts_with("the subquery step "));
        assert!(tree_err("up @ 300000000000").starts_with("the @ time 300000000000000 ms"));
        let ok = promql_parser::parser::parse("sum(rate(up[5m] offset 1h @ 100)) by (a)").unwrap();
        check_tree(&ok, &opts()).unwrap();
    }
}

/// The largest and deepest queries the default limits admit (or refuse only after
/// parsing) are handled on a 2 MiB stack, the size of the server's blocking threads.
#[cfg(test)]
mod stack_tests {
    use super::*;
    use crate::{instant_query, range_query, Labels, MemoryQuerier, Series};

    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    fn querier() -> MemoryQuerier {
        MemoryQuerier::new(vec![Series::new(
            Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            (0..100).map(|i| i * 60_000).collect(),
            (0..100).map(f64::from).collect(),
        )])
    }

    #[test]
    fn the_limits_keep_parser_and_evaluator_within_a_small_stack() {
        on_small_stack(|| {
            let opts = Options::default();
            let q = querier();
            let t = std::time::Instant::now();
            // The longest operator chain the text scan lets through: parsed, then refused.
            let longest = vec!["1"; (opts.max_nodes - 1) / 2 + 1].join("+");
            let err = instant_query(&q, &longest, 0, &opts).unwrap_err();
            assert!(err.message.contains("max_depth"), "{}", err.message);
            // The deepest admitted expressions of each kind, evaluated.
            let d = opts.max_depth;
            let chain = vec!["up"; d - 1].join(" + ");
            instant_query(&q, &chain, 3_000_000, &opts).unwrap();
            let calls = format!("{}up{}", "abs(".repeat(d - 1), ")".repeat(d - 1));
            range_query(&q, &calls, 0, 6_000_000, 60_000, &opts).unwrap();
            let parens = format!("{}up{}", "(".repeat(d - 1), ")".repeat(d - 1));
            instant_query(&q, &parens, 3_000_000, &opts).unwrap();
            let mut sub = "up".to_string();
            for _ in 0..d / 3 - 1 {
                sub = format!("max_over_time(({sub})[5m:1m])");
            }
            instant_query(&q, &sub, 3_000_000, &opts).unwrap();
            let neg = format!("{}up", "-".repeat(d - 1));
            instant_query(&q, &neg, 3_000_000, &opts).unwrap();
            // Formatting the deepest admitted chain.
            let e = crate::parse_query(&chain, &opts).unwrap();
            assert!(e.prettify().len() > chain.len() / 2);
            // Loose: a bound that catches quadratic blow-ups, not a speed figure.
            assert!(
                t.elapsed() < std::time::Duration::from_secs(60),
                "{:?}",
                t.elapsed()
            );
        });
    }
}
