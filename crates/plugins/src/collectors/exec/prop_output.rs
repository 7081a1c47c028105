//! Property tests of the readers of a command's output (`output.rs`): a command can print
//! anything, so no output may panic the agent, every error must name a real line, and good
//! lines must be read whatever bad lines sit between them.
//!
//! Case count: proptest's default (256 per property), raised with `PROPTEST_CASES`
//! (`scripts/fuzz` runs 20,000). Test names start with `prop_` so that `scripts/fuzz` finds
//! them.

use super::output::{self, Parsed};
use super::{Column, ReadingKind};
use proptest::prelude::*;
use skymeter_model::{Stat, Unit};
use skymeter_plugin_api::MetricSelection;

/// The line an error names (its `line` context), checked against its message.
fn error_line(e: &skymeter_plugin_api::PluginError) -> Result<usize, TestCaseError> {
    let Some(line) = e.context.get("line") else {
        return Err(TestCaseError::fail(format!("error without a line: {e:?}")));
    };
    let n: usize = line
        .parse()
        .map_err(|_| TestCaseError::fail(format!("line `{line}` is not a number: {e:?}")))?;
    Ok(n)
}

/// Every error of `parsed` names a line of `text` (1-based).
fn errors_name_real_lines(text: &str, parsed: &Parsed) -> Result<Vec<usize>, TestCaseError> {
    let lines = text.split('\n').count();
    let mut out = Vec::new();
    for e in &parsed.errors {
        let n = error_line(e)?;
        prop_assert!(
            (1..=lines).contains(&n),
            "line {n} outside 1..={lines}: {e:?}\nin {text:?}"
        );
        out.push(n);
    }
    Ok(out)
}

fn metric_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}(\\.[a-z0-9_]{1,6}){0,2}"
}

/// A finite value, printed as a command would.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        (-1e12f64..1e12),
        Just(0.0),
    ]
}

/// A JSON lines output: good compact points, bad lines, blank lines, in any order.
#[derive(Debug, Clone)]
enum JsonLine {
    Good {
        metric: String,
        value: f64,
        labels: Vec<(String, String)>,
    },
    Bad(&'static str),
    Blank(&'static str),
}

fn json_line() -> impl Strategy<Value = JsonLine> {
    prop_oneof![
        4 => (
            metric_name(),
            number(),
            proptest::collection::vec(("[a-z]{1,5}", any::<String>()), 0..3),
        )
            .prop_map(|(metric, value, labels)| JsonLine::Good { metric, value, labels }),
        2 => prop::sample::select(vec![
            "not json",
            "[1, 2]",
            "\"a string\"",
            "42",
            "{\"metric\": \"a\"}",
            "{\"value\": 1}",
            "{\"metric\": \"bad name!\", \"value\": 1}",
            "{\"metric\": \"a\", \"value\": 1, \"extra\": true}",
            "{\"metric\": \"a\", \"value\": \"high\"}",
            "{\"type\": \"weird\", \"metric\": \"a\", \"value\": 1}",
            "{\"type\": \"point\", \"metric\": \"a\"}",
            "{\"metric\": \"a\", \"value\": 1e999}",
            "{\"metric\": \"a\", \"value\": 1",
            "{\"metric\": \"a\", \"value\": 1, \"labels\": {\"k\": 1}}",
        ])
        .prop_map(JsonLine::Bad),
        1 => prop::sample::select(vec!["", "   ", "\t"]).prop_map(JsonLine::Blank),
    ]
}

fn render_json_line(l: &JsonLine) -> String {
    match l {
        JsonLine::Good {
            metric,
            value,
            labels,
        } => {
            let labels: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            serde_json::json!({"metric": metric, "value": value, "labels": labels}).to_string()
        }
        JsonLine::Bad(s) | JsonLine::Blank(s) => s.to_string(),
    }
}

/// A CSV column as `columns` describes it.
fn column() -> impl Strategy<Value = Column> {
    prop_oneof![
        "[a-z]{1,6}".prop_map(Column::Label),
        (
            metric_name(),
            prop_oneof![Just(1.0), Just(1024.0), Just(0.001)]
        )
            .prop_map(|(name, factor)| Column::Metric {
                name,
                factor,
                kind: ReadingKind::Gauge {
                    unit: Unit::None,
                    stat: Stat::Last,
                },
            }),
        Just(Column::Skip),
    ]
}

/// One CSV cell for `col`: good, blank (skipped), or junk in a metric column.
#[derive(Debug, Clone)]
enum Cell {
    Text(String),
    Number(f64),
    Blank(&'static str),
    Junk(&'static str),
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        4 => number().prop_map(Cell::Number),
        2 => "[a-zA-Z0-9 _./-]{0,8}".prop_map(Cell::Text),
        1 => prop::sample::select(vec!["", "N/A", "[Not Supported]", "[N/A]"]).prop_map(Cell::Blank),
        1 => prop::sample::select(vec!["12 %", "abc", "0x10", "NaN", "inf", "1,5"]).prop_map(Cell::Junk),
    ]
}

fn delimiter() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![b',', b';', b'\t', b'|'])
}

proptest! {
    /// Any output at all: no panic, and each error names a real line.
    #[test]
    fn prop_json_lines_any_text_never_panics(text in any::<String>()) {
        let parsed = output::json_lines(&text, &MetricSelection::all());
        errors_name_real_lines(&text, &parsed)?;
    }

    /// Good lines are read whatever bad lines sit between them; each bad line gives exactly
    /// one error naming its own line; blank lines give nothing.
    #[test]
    fn prop_json_lines_good_lines_read_bad_lines_named(
        lines in proptest::collection::vec(json_line(), 0..20),
        crlf in any::<bool>(),
    ) {
        let text = lines
            .iter()
            .map(render_json_line)
            .collect::<Vec<_>>()
            .join(if crlf { "\r\n" } else { "\n" });
        let parsed = output::json_lines(&text, &MetricSelection::all());
        let error_lines = errors_name_real_lines(&text, &parsed)?;
        let bad: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, JsonLine::Bad(_)))
            .map(|(i, _)| i + 1)
            .collect();
        prop_assert_eq!(error_lines, bad, "errors: {:?}\nin {:?}", parsed.errors, text);
        let good: Vec<(&String, f64)> = lines
            .iter()
            .filter_map(|l| match l {
                JsonLine::Good { metric, value, .. } => Some((metric, *value)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(parsed.readings.len(), good.len());
        for (r, (metric, value)) in parsed.readings.iter().zip(good) {
            prop_assert_eq!(&r.metric, metric);
            // serde_json's default float parsing may be one unit in the last place off.
            prop_assert!((r.value - value).abs() <= 1e-12 * value.abs().max(1.0), "{} != {}", r.value, value);
        }
    }

    /// Any output read as CSV with any columns: no panic, and each error names a real line.
    #[test]
    fn prop_csv_any_text_never_panics(
        text in any::<String>(),
        columns in proptest::collection::vec(column(), 0..5),
        header in any::<bool>(),
        delimiter in delimiter(),
    ) {
        let parsed = output::csv(&text, &columns, header, delimiter, &MetricSelection::all());
        errors_name_real_lines(&text, &parsed)?;
    }

    /// Rows that fit `columns`: every number read (times its factor, labelled by the row's
    /// label cells); every junk cell one error on its own row's line; blank cells skipped;
    /// rows with the wrong number of fields one error each.
    #[test]
    fn prop_csv_rows_read_and_bad_cells_named(
        columns in proptest::collection::vec(column(), 1..5),
        rows in proptest::collection::vec((proptest::collection::vec(cell(), 5), any::<bool>(), any::<bool>()), 0..12),
        header in any::<bool>(),
        delimiter in delimiter(),
    ) {
        let d = delimiter as char;
        let mut text = String::new();
        let mut line = 0usize;
        let mut expected_errors = Vec::new();
        let mut expected_readings: Vec<(String, f64)> = Vec::new();
        if header {
            let names: Vec<String> = (0..columns.len()).map(|i| format!("col{i}")).collect();
            text.push_str(&names.join(&d.to_string()));
            text.push('\n');
            line += 1;
        }
        for (cells, short, blank_line_before) in &rows {
            if *blank_line_before {
                text.push('\n');
                line += 1;
            }
            line += 1;
            // A short row: one field missing.
            let n = if *short && columns.len() > 1 { columns.len() - 1 } else { columns.len() };
            let mut written = Vec::new();
            for (col, c) in columns.iter().zip(cells.iter()).take(n) {
                let shown = match (col, c) {
                    (Column::Metric { .. }, Cell::Text(_)) => "7".to_string(),
                    (_, Cell::Number(v)) => format!("{v}"),
                    (_, Cell::Text(t)) => t.trim().to_string(),
                    (_, Cell::Blank(b) | Cell::Junk(b)) => b.to_string(),
                };
                written.push(shown);
            }
            // A junk cell with the delimiter in it (`1,5`) would split; quote every cell.
            let quoted: Vec<String> = written.iter().map(|c| format!("\"{c}\"")).collect();
            text.push_str(&quoted.join(&d.to_string()));
            text.push('\n');
            if n != columns.len() {
                // A row of one empty field is a blank line to the reader.
                if !(n == 1 && written[0].is_empty()) {
                    expected_errors.push(line);
                }
                continue;
            }
            for (col, shown) in columns.iter().zip(&written) {
                if let Column::Metric { name, factor, .. } = col {
                    let blank = shown.is_empty() || shown.eq_ignore_ascii_case("n/a")
                        || (shown.starts_with('[') && shown.ends_with(']'));
                    if blank {
                        continue;
                    }
                    match shown.parse::<f64>() {
                        Ok(v) if v.is_finite() => expected_readings.push((name.clone(), v * factor)),
                        _ => expected_errors.push(line),
                    }
                }
            }
        }
        let parsed = output::csv(&text, &columns, header, delimiter, &MetricSelection::all());
        let got_errors = errors_name_real_lines(&text, &parsed)?;
        prop_assert_eq!(got_errors, expected_errors, "errors: {:?}\nin {:?}", parsed.errors, text);
        let got: Vec<(String, f64)> = parsed
            .readings
            .iter()
            .map(|r| (r.metric.clone(), r.value))
            .collect();
        prop_assert_eq!(got, expected_readings, "in {:?}", text);
    }

    /// The `prometheus` format: any output, no panic; a rejection names a real line.
    #[test]
    fn prop_prometheus_output_any_text_never_panics(text in any::<String>()) {
        if let Err(e) = output::prometheus(&text, &MetricSelection::all()) {
            let n = error_line(&e)?;
            let lines = text.split('\n').count();
            prop_assert!((1..=lines).contains(&n), "line {n} outside 1..={lines}: {e:?}");
        }
    }
}
