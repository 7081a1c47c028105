//! Property tests of the exposition-text parser: it reads bodies from any scrape target, so
//! no input may panic it, every error must point at a real line, and what a well-behaved
//! exporter writes must come back exactly.
//!
//! Case count: proptest's default (256 per property), raised with `PROPTEST_CASES`
//! (`scripts/fuzz` runs 20,000). Test names start with `prop_` so that `scripts/fuzz` finds
//! them.

use super::*;
use proptest::prelude::*;
use proptest::sample::SizeRange;

/// Lines in `body` as the parser counts them (a final line without `\n` counts).
fn line_count(body: &str) -> usize {
    body.split('\n').count()
}

/// Parses `body` both ways and checks what every outcome must satisfy.
fn check_any(body: &str) -> Result<(), TestCaseError> {
    let lines = line_count(body);
    let mut seen = 0usize;
    let each = parse_each(body, |_| seen += 1);
    let owned = parse(body);
    match (&each, &owned) {
        (Ok(summary), Ok(samples)) => {
            prop_assert_eq!(summary.samples, seen);
            prop_assert_eq!(samples.len(), seen);
            prop_assert!(summary.lines <= lines);
        }
        (Err(a), Err(b)) => {
            prop_assert_eq!(a, b, "parse and parse_each disagree");
            prop_assert!(
                a.line >= 1 && a.line <= lines,
                "error line {} outside 1..={lines}: {a}",
                a.line
            );
            prop_assert!(!a.message.is_empty());
            // The error's text is the line it names, cut to 120 characters.
            let named = body.split('\n').nth(a.line - 1).unwrap_or("");
            let named = named.strip_suffix('\r').unwrap_or(named);
            let shown = a.text.strip_suffix('…').unwrap_or(&a.text);
            prop_assert!(
                named.starts_with(shown),
                "error text {:?} is not line {}: {:?}",
                a.text,
                a.line,
                named
            );
            prop_assert!(a.text.chars().count() <= 121);
        }
        _ => prop_assert!(
            false,
            "parse and parse_each disagree: {each:?} vs {owned:?}"
        ),
    }
    Ok(())
}

/// One family of a generated exposition.
#[derive(Debug, Clone)]
struct GenFamily {
    name: String,
    /// None: no `# TYPE` line (an untyped family).
    typ: Option<MetricType>,
    help: Option<String>,
    samples: Vec<GenSample>,
}

#[derive(Debug, Clone)]
struct GenSample {
    /// Index into the type's suffixes, or None for the bare name.
    suffix: Option<usize>,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn metric_type() -> impl Strategy<Value = Option<MetricType>> {
    prop_oneof![
        Just(None),
        Just(Some(MetricType::Counter)),
        Just(Some(MetricType::Gauge)),
        Just(Some(MetricType::Histogram)),
        Just(Some(MetricType::Summary)),
        Just(Some(MetricType::Untyped)),
        Just(Some(MetricType::GaugeHistogram)),
        Just(Some(MetricType::Info)),
        Just(Some(MetricType::StateSet)),
    ]
}

/// Any value the format can carry: finite numbers of every size, NaN, ±Inf.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

/// Label values: any characters, including the three the format escapes.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 ._/:-]{0,12}",
        2 => any::<String>(),
        1 => proptest::collection::vec(
            prop_oneof![Just('"'), Just('\\'), Just('\n'), Just('x'), Just('{'), Just('}'), Just(','), Just('#')],
            0..8
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}

fn labels() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", label_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

fn sample() -> impl Strategy<Value = GenSample> {
    (
        proptest::option::of(0usize..4),
        labels(),
        value(),
        proptest::option::of(-4_000_000_000_000i64..4_000_000_000_000),
    )
        .prop_map(|(suffix, labels, value, timestamp_ms)| GenSample {
            suffix,
            labels,
            value,
            timestamp_ms,
        })
}

fn family(index: usize) -> impl Strategy<Value = GenFamily> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,10}",
        metric_type(),
        // HELP text: anything but a leading blank (the parser skips blanks before it) or a
        // carriage return (a line's own `\r\n` end is taken off).
        proptest::option::of("[^ \t\r][^\r]{0,30}"),
        proptest::collection::vec(sample(), SizeRange::from(0..6)),
    )
        .prop_map(move |(stem, typ, help, samples)| GenFamily {
            // A unique prefix per family: no family's name plus a suffix is another's name.
            name: format!("f{index}_{stem}"),
            typ,
            help,
            samples,
        })
}

fn families() -> impl Strategy<Value = Vec<GenFamily>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(family).collect::<Vec<_>>())
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust prints the shortest text that reads back as the same f64.
        format!("{v}")
    }
}

/// The sample's name and part of its family.
fn sample_name(f: &GenFamily, s: &GenSample) -> (String, SampleKind) {
    let t = f.typ.unwrap_or(MetricType::Untyped);
    let suffixes = t.suffixes();
    match s.suffix {
        Some(i) if !suffixes.is_empty() => {
            let (suffix, kind) = suffixes[i % suffixes.len()];
            (format!("{}{suffix}", f.name), kind)
        }
        _ => (f.name.clone(), SampleKind::Value),
    }
}

/// The body a conforming exporter writes for `families` (with `\r\n` line ends when asked).
fn render(families: &[GenFamily], crlf: bool) -> String {
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    for f in families {
        if let Some(h) = &f.help {
            out.push_str(&format!("# HELP {} {}{nl}", f.name, escape_help(h)));
        }
        if let Some(t) = f.typ {
            out.push_str(&format!("# TYPE {} {}{nl}", f.name, t.as_str()));
        }
        for s in &f.samples {
            let (name, _) = sample_name(f, s);
            out.push_str(&name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                out.push_str(&format!("{{{}}}", labels.join(",")));
            }
            out.push_str(&format!(" {}", format_value(s.value)));
            if let Some(t) = s.timestamp_ms {
                out.push_str(&format!(" {t}"));
            }
            out.push_str(nl);
        }
    }
    out
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// A few edits of the kinds that corrupt real bodies: a byte inserted, a span cut, a line
/// doubled or dropped, the body cut short.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, char),
    Delete(usize, usize),
    DuplicateLine(usize),
    DropLine(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop_oneof![
        Just('"'),
        Just('\\'),
        Just('{'),
        Just('}'),
        Just('='),
        Just(','),
        Just('#'),
        Just(' '),
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just('\0'),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), special).prop_map(|(at, c)| Mutation::Insert(at, c)),
        (any::<usize>(), 1usize..20).prop_map(|(at, n)| Mutation::Delete(at, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// The char boundary at or before `at % (len + 1)`.
fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(body: &mut String, m: &Mutation) {
    match *m {
        Mutation::Insert(at, c) => {
            let i = boundary(body, at);
            body.insert(i, c);
        }
        Mutation::Delete(at, n) => {
            let i = boundary(body, at);
            let j = boundary(body, i.saturating_add(n).min(body.len()));
            body.replace_range(i..j.max(i), "");
        }
        Mutation::DuplicateLine(at) | Mutation::DropLine(at) => {
            let mut lines: Vec<&str> = body.split('\n').collect();
            let k = at % lines.len();
            if matches!(m, Mutation::DuplicateLine(_)) {
                lines.insert(k, lines[k]);
            } else {
                lines.remove(k);
            }
            *body = lines.join("\n");
        }
        Mutation::Truncate(at) => {
            let i = boundary(body, at);
            body.truncate(i);
        }
    }
}

/// Bodies of the right shape with hostile parts: long names, many labels, odd numbers.
fn line_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        Just("{".to_string()),
        Just("}".to_string()),
        Just("=".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just(" ".to_string()),
        Just("# TYPE ".to_string()),
        Just("# HELP ".to_string()),
        Just("# UNIT ".to_string()),
        Just("# EOF".to_string()),
        Just("counter".to_string()),
        Just("histogram".to_string()),
        "[-+]?[0-9]{0,20}(\\.[0-9]{0,5})?([eE][-+]?[0-9]{1,4})?",
        "(?i)[-+]?(nan|inf|infinity)",
        any::<String>(),
    ];
    proptest::collection::vec(token, 0..12).prop_map(|t| t.concat())
}

proptest! {
    /// Any text at all: no panic, and an error names a real line.
    #[test]
    fn prop_any_text_never_panics(body in any::<String>()) {
        check_any(&body)?;
    }

    /// Lines built from the format's own tokens in random order reach deep into the parser.
    #[test]
    fn prop_token_soup_never_panics(lines in proptest::collection::vec(line_like(), 0..8)) {
        check_any(&lines.join("\n"))?;
    }

    /// What a conforming exporter writes reads back exactly: names, families, types, parts,
    /// labels in order, values (NaN and ±Inf too), timestamps, HELP text.
    #[test]
    fn prop_generated_exposition_round_trips(fams in families(), crlf in any::<bool>()) {
        let body = render(&fams, crlf);
        let parsed = match parse(&body) {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\nin\n{body}"))),
        };
        let expected: Vec<(&GenFamily, &GenSample)> = fams
            .iter()
            .flat_map(|f| f.samples.iter().map(move |s| (f, s)))
            .collect();
        prop_assert_eq!(parsed.len(), expected.len());
        for (got, (f, s)) in parsed.iter().zip(&expected) {
            let (name, kind) = sample_name(f, s);
            prop_assert_eq!(&got.name, &name);
            prop_assert_eq!(&got.family, &f.name);
            prop_assert_eq!(got.family_type, f.typ.unwrap_or(MetricType::Untyped));
            prop_assert_eq!(got.kind, kind);
            prop_assert_eq!(&got.labels, &s.labels);
            prop_assert!(same_value(got.value, s.value), "{} != {}", got.value, s.value);
            prop_assert_eq!(got.timestamp_ms, s.timestamp_ms);
        }
        let summary = parse_each(&body, |_| {}).unwrap();
        for f in &fams {
            let described = summary.families.iter().find(|d| d.name == f.name);
            if f.help.is_some() || f.typ.is_some() {
                let d = described.expect("a family with HELP or TYPE is listed");
                prop_assert_eq!(d.help.as_deref(), f.help.as_deref());
                prop_assert_eq!(d.metric_type, f.typ.unwrap_or(MetricType::Untyped));
            }
        }
    }

    /// Valid bodies with a few corruptions: no panic, and an error names a real line.
    #[test]
    fn prop_mutated_exposition_never_panics(
        fams in families(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut body = render(&fams, false);
        for m in &mutations {
            apply(&mut body, m);
        }
        check_any(&body)?;
    }
}
