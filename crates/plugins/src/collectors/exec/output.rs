//! Readers of a command's standard output, one per `format`. Each keeps the good lines and
//! reports each bad one with its 1-based line number (the `prometheus` format excepted: a
//! bad line rejects the whole output, as a Prometheus scrape does).

use super::kind::{reading, reading_kind, Column, ValueType};
use crate::common::prom_points::PromConvert;
use crate::common::series::Reading;
use serde::Deserialize;
use skymeter_model::{is_valid_metric_name, Cost, Labels, Point, Record, Resource, Stat, Unit};
use skymeter_plugin_api::{ErrorKind, MetricSelection, PluginError};

/// What one run's output held.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Gauges and counters to turn into points for the configured resource.
    pub readings: Vec<Reading>,
    /// Full skymeter records, kept as written.
    pub points: Vec<Point>,
    pub resources: Vec<Resource>,
    pub costs: Vec<Cost>,
    /// One per bad line (or cell).
    pub errors: Vec<PluginError>,
}

fn line_error(line: usize, message: String) -> PluginError {
    PluginError::new(ErrorKind::BadResponse, format!("line {line}: {message}"))
        .with("line", line.to_string())
}

/// `{"metric": "gpu.utilization", "value": 87, "unit": "percent", "labels": {"gpu": "0"}}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactPoint {
    metric: String,
    value: f64,
    #[serde(default)]
    unit: Option<Unit>,
    #[serde(default)]
    stat: Option<Stat>,
    #[serde(default)]
    labels: Labels,
    #[serde(default, rename = "type")]
    value_type: ValueType,
}

/// `format = "json_lines"`.
pub fn json_lines(text: &str, wanted: &MetricSelection) -> Parsed {
    let mut p = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                p.errors.push(line_error(n, format!("not JSON ({e})")));
                continue;
            }
        };
        if !value.is_object() {
            p.errors
                .push(line_error(n, "expected a JSON object".into()));
            continue;
        }
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_owned);
        match kind.as_deref() {
            Some("point" | "resource" | "cost" | "error") => {
                match serde_json::from_value::<Record>(value) {
                    Ok(record) => record_line(&mut p, n, record, wanted),
                    Err(e) => p.errors.push(line_error(
                        n,
                        format!("not a skymeter {} record: {e}", kind.unwrap_or_default()),
                    )),
                }
            }
            None | Some("gauge" | "counter") => {
                match serde_json::from_value::<CompactPoint>(value) {
                    Ok(c) => compact_line(&mut p, n, c, wanted),
                    Err(e) => p.errors.push(line_error(
                        n,
                        format!(
                            "not a point ({e}); write {{\"metric\": \"name\", \"value\": 1}} with optional unit, stat, labels, type"
                        ),
                    )),
                }
            }
            Some(other) => p.errors.push(line_error(
                n,
                format!(
                    "unknown \"type\": \"{other}\"; use point, resource, cost or error for skymeter records, gauge or counter for compact points"
                ),
            )),
        }
    }
    p
}

fn record_line(p: &mut Parsed, n: usize, record: Record, wanted: &MetricSelection) {
    match record {
        Record::Point(point) => {
            if !is_valid_metric_name(&point.metric) {
                p.errors.push(line_error(
                    n,
                    format!(
                        "`{}` is not a metric name: use letters, digits, `_ . : / -`",
                        point.metric
                    ),
                ));
            } else if wanted.matches(&point.metric) {
                p.points.push(point);
            }
        }
        Record::Resource(r) => p.resources.push(r),
        Record::Cost(c) => p.costs.push(*c),
        Record::Error(e) => {
            let mut err = PluginError::new(ErrorKind::Other, e.message);
            err.context = e.context;
            p.errors.push(err.with("line", n.to_string()));
        }
    }
}

fn compact_line(p: &mut Parsed, n: usize, c: CompactPoint, wanted: &MetricSelection) {
    if !is_valid_metric_name(&c.metric) {
        p.errors.push(line_error(
            n,
            format!(
                "`{}` is not a metric name: use letters, digits, `_ . : / -`",
                c.metric
            ),
        ));
        return;
    }
    if !wanted.matches(&c.metric) {
        return;
    }
    let kind = reading_kind(
        c.value_type,
        c.unit.unwrap_or(Unit::None),
        c.stat.unwrap_or(Stat::Last),
    );
    p.readings.push(reading(c.metric, c.labels, c.value, kind));
}

/// `format = "prometheus"`: all or nothing.
pub fn prometheus(text: &str, wanted: &MetricSelection) -> Result<Parsed, PluginError> {
    let converted = PromConvert::default().convert(text, wanted).map_err(|e| {
        PluginError::new(
            ErrorKind::BadResponse,
            format!("the output is not valid Prometheus text: {e}"),
        )
        .with("line", e.line.to_string())
    })?;
    Ok(Parsed {
        readings: converted.readings,
        ..Default::default()
    })
}

/// Cells that hold no value: empty, `N/A`, and nvidia-smi's bracketed notes (`[N/A]`,
/// `[Not Supported]`, `[Unknown Error]`).
fn is_blank_cell(cell: &str) -> bool {
    cell.is_empty()
        || cell.eq_ignore_ascii_case("n/a")
        || (cell.starts_with('[') && cell.ends_with(']'))
}

/// `format = "csv"`: one row per line; label columns label the row's metric cells.
pub fn csv(
    text: &str,
    columns: &[Column],
    header: bool,
    delimiter: u8,
    wanted: &MetricSelection,
) -> Parsed {
    let mut p = Parsed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(header)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut lines = LineCounter {
        text: text.as_bytes(),
        at: 0,
        line: 1,
    };
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |pos| pos.line() as usize);
                p.errors.push(line_error(line, format!("not CSV ({e})")));
                // A broken quote swallows the rest: stop at the first such error.
                break;
            }
        }
        let n = lines.line_of(record.position().map_or(0, |pos| pos.byte() as usize));
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        if record.len() != columns.len() {
            p.errors.push(line_error(
                n,
                format!(
                    "has {} fields but `columns` lists {}; make them agree",
                    record.len(),
                    columns.len()
                ),
            ));
            continue;
        }
        let mut labels = Labels::new();
        for (col, cell) in columns.iter().zip(record.iter()) {
            if let Column::Label(name) = col {
                labels.insert(name.clone(), cell.to_string());
            }
        }
        for (i, (col, cell)) in columns.iter().zip(record.iter()).enumerate() {
            let Column::Metric { name, factor, kind } = col else {
                continue;
            };
            if is_blank_cell(cell) || !wanted.matches(name) {
                continue;
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    p.readings
                        .push(reading(name.clone(), labels.clone(), v * factor, *kind));
                }
                _ => p.errors.push(line_error(
                    n,
                    format!(
                        "column {} ({name}): `{cell}` is not a number (print values without units, e.g. nvidia-smi --format=csv,noheader,nounits)",
                        i + 1
                    ),
                )),
            }
        }
    }
    p
}

/// 1-based line numbers of byte offsets, read forward. (The csv crate's own record line is
/// that of the blank lines before the record, when there are some.)
struct LineCounter<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl LineCounter<'_> {
    /// The line of the first character at or after `offset` that is not a line break.
    fn line_of(&mut self, mut offset: usize) -> usize {
        while offset < self.text.len() && matches!(self.text[offset], b'\n' | b'\r') {
            offset += 1;
        }
        let offset = offset.min(self.text.len());
        if offset >= self.at {
            self.line += memchr::memchr_iter(b'\n', &self.text[self.at..offset]).count();
            self.at = offset;
        }
        self.line
    }
}
