//! A parser of the Prometheus text exposition format 0.0.4, which also reads OpenMetrics
//! text (`# EOF`, `# UNIT`, `_created` samples, exemplars after ` # `).
//!
//! Why hand-written: the crates on crates.io were measured on the 10 MB node_exporter-like
//! body of `benches/prometheus_parse.rs` (release build, this project's 2-core machine) and
//! none comes near the 100 MB/s skymeter wants, to scrape large targets cheaply:
//!
//! | parser | MB/s | samples/s |
//! |---|---|---|
//! | `prometheus-parse` 0.2.5 (regex per line, owned `String`s) | 36 | 0.32 M (histogram and summary lines folded) |
//! | `prom_text_format_parser` 0.1.0 (winnow, owned `String`s, values left as text) | 68 | 0.85 M |
//! | `promtool check metrics` 2.42 (Prometheus' own parser plus its lint) | 17 | |
//! | this parser, [`parse_each`] | 585 | 7.2 M |
//! | this parser, [`parse`] (owned samples) | 168 | 2.1 M |
//!
//! (`openmetrics-parser` is LGPL-3.0, which this Apache-2.0 project does not link, so it was
//! not considered.) This one works on bytes with no regex, borrows every name and label value
//! from the input (a label value is copied only when it holds an escape), reuses one label
//! buffer for all samples, parses values with `fast-float2`, and finds each sample's family
//! by remembering the last `# TYPE`, so a node_exporter body costs no hash lookup per
//! sample. `bench/prometheus_parse.sh` reproduces the figures.
//!
//! Errors: the first bad line rejects the whole body, as Prometheus does (its scrape then
//! fails and `up` is 0); [`ParseError`] names the 1-based line and what is wrong with it.
//!
//! Timestamps: an integer is Prometheus' milliseconds; a number with a fraction or exponent
//! is OpenMetrics' seconds, converted to milliseconds.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The type a `# TYPE` line declares; samples of families without one are `Untyped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// `untyped`, OpenMetrics `unknown`, or no `# TYPE` line at all.
    Untyped,
    /// OpenMetrics `gaugehistogram`: `_bucket`, `_gcount`, `_gsum` are gauges.
    GaugeHistogram,
    /// OpenMetrics `info`: the `_info` sample is 1, the facts are labels.
    Info,
    /// OpenMetrics `stateset`: one 0/1 sample per state.
    StateSet,
}

impl MetricType {
    fn parse(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" => MetricType::Untyped,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }

    /// The sample name suffixes a family of this type may use besides its bare name.
    fn suffixes(self) -> &'static [(&'static str, SampleKind)] {
        use SampleKind::*;
        match self {
            MetricType::Counter => &[("_total", Total), ("_created", Created)],
            MetricType::Histogram => &[
                ("_bucket", Bucket),
                ("_sum", Sum),
                ("_count", Count),
                ("_created", Created),
            ],
            MetricType::Summary => &[("_sum", Sum), ("_count", Count), ("_created", Created)],
            MetricType::GaugeHistogram => {
                &[("_bucket", Bucket), ("_gsum", Sum), ("_gcount", Count)]
            }
            MetricType::Info => &[("_info", Info)],
            MetricType::Gauge | MetricType::Untyped | MetricType::StateSet => &[],
        }
    }
}

/// Which part of its family a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// The family's own name: a counter, gauge, untyped value, or a summary quantile.
    Value,
    /// A counter's `_total` sample.
    Total,
    /// A histogram's `_bucket` (label `le`).
    Bucket,
    /// A histogram's or summary's `_sum` (gauge histogram `_gsum`).
    Sum,
    /// A histogram's or summary's `_count` (gauge histogram `_gcount`).
    Count,
    /// OpenMetrics `_created`: when the series started, in seconds since the epoch.
    Created,
    /// OpenMetrics `_info`.
    Info,
}

/// One `name="value"` pair. The value is borrowed from the body unless it held an escape.
#[derive(Debug, Clone, PartialEq)]
pub struct Label<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
}

/// One sample line, borrowing from the body (`'a`) and from the parser's label buffer (`'l`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a, 'l> {
    /// The name as written (`http_requests_total`, `rpc_duration_seconds_bucket`).
    pub name: &'a str,
    /// The family it belongs to (`http_requests`, `rpc_duration_seconds`); equal to `name`
    /// for families without a `# TYPE`.
    pub family: &'a str,
    pub family_type: MetricType,
    pub kind: SampleKind,
    pub labels: &'l [Label<'a>],
    /// May be NaN or ±Inf.
    pub value: f64,
    /// Milliseconds since the epoch, when the line has one.
    pub timestamp_ms: Option<i64>,
}

impl Sample<'_, '_> {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_ref())
    }

    pub fn to_owned(&self) -> OwnedSample {
        OwnedSample {
            name: self.name.to_string(),
            family: self.family.to_string(),
            family_type: self.family_type,
            kind: self.kind,
            labels: self
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            value: self.value,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// A [`Sample`] that owns its strings, from [`parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedSample {
    pub name: String,
    pub family: String,
    pub family_type: MetricType,
    pub kind: SampleKind,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// What the `# TYPE`, `# HELP` and `# UNIT` lines said about one family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family<'a> {
    pub name: &'a str,
    pub metric_type: MetricType,
    pub help: Option<Cow<'a, str>>,
    /// OpenMetrics `# UNIT`.
    pub unit: Option<&'a str>,
}

/// What a whole body held besides its samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary<'a> {
    pub samples: usize,
    pub lines: usize,
    /// Families with a `# TYPE`, `# HELP` or `# UNIT` line, in order of first mention.
    pub families: Vec<Family<'a>>,
    /// Whether the body ended with OpenMetrics' `# EOF`.
    pub eof: bool,
}

/// A line the parser could not read. The whole body is rejected with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub message: String,
    /// The line, cut to 120 characters.
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: `{}`", self.line, self.message, self.text)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole body into owned samples. Convenient for small bodies and tests; the
/// collectors use [`parse_each`], which allocates nothing per sample.
pub fn parse(body: &str) -> Result<Vec<OwnedSample>, ParseError> {
    let mut out = Vec::new();
    parse_each(body, |s| out.push(s.to_owned()))?;
    Ok(out)
}

/// Parses `body`, calling `f` for each sample in order. On the first bad line, stops and
/// returns its error (samples already handed to `f` should then be discarded).
pub fn parse_each<'a, F>(body: &'a str, mut f: F) -> Result<Summary<'a>, ParseError>
where
    F: FnMut(&Sample<'a, '_>),
{
    let mut p = Parser {
        families: Vec::new(),
        by_name: HashMap::new(),
        typed: Vec::new(),
        current: None,
        labels: Vec::with_capacity(16),
        line_no: 0,
    };
    let bytes = body.as_bytes();
    let mut pos = 0;
    let mut samples = 0;
    let mut eof = false;
    while pos < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
        p.line_no += 1;
        let mut line_end = end;
        if line_end > pos && bytes[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        let line = &body[pos..line_end];
        pos = end + 1;
        if eof {
            if line.trim().is_empty() {
                continue;
            }
            return Err(p.error(line, "data after `# EOF`; `# EOF` must be the last line"));
        }
        match line.as_bytes().first() {
            None => continue,
            Some(b'#') => {
                if p.comment(line)? {
                    eof = true;
                }
            }
            Some(b' ' | b'\t') if line.trim().is_empty() => continue,
            Some(_) => {
                let sample = p.sample(line)?;
                samples += 1;
                f(&sample);
            }
        }
    }
    Ok(Summary {
        samples,
        lines: p.line_no,
        families: p.families,
        eof,
    })
}

struct Parser<'a> {
    families: Vec<Family<'a>>,
    by_name: HashMap<&'a str, usize>,
    /// Whether `families[i]` had its `# TYPE` line.
    typed: Vec<bool>,
    /// The family of the last `# TYPE` line: the one the next samples most likely belong to.
    current: Option<(&'a str, MetricType)>,
    labels: Vec<Label<'a>>,
    line_no: usize,
}

#[inline]
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

#[inline]
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

#[inline]
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

fn shown(b: &[u8], i: usize) -> String {
    match std::str::from_utf8(&b[i..])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => format!("`{c}`"),
        None => "the end of the line".to_string(),
    }
}

/// A metric name at `i`; returns its end.
fn name_end(b: &[u8], i: usize) -> usize {
    let mut j = i;
    if j < b.len() && is_name_start(b[j]) {
        j += 1;
        while j < b.len() && is_name_char(b[j]) {
            j += 1;
        }
    }
    j
}

impl<'a> Parser<'a> {
    fn error(&self, line: &str, message: impl Into<String>) -> ParseError {
        let text = match line.char_indices().nth(120) {
            Some((i, _)) => format!("{}…", &line[..i]),
            None => line.to_string(),
        };
        ParseError {
            line: self.line_no,
            message: message.into(),
            text,
        }
    }

    fn family_index(&mut self, name: &'a str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        self.families.push(Family {
            name,
            metric_type: MetricType::Untyped,
            help: None,
            unit: None,
        });
        self.typed.push(false);
        self.by_name.insert(name, self.families.len() - 1);
        self.families.len() - 1
    }

    /// A `#` line. Returns true for `# EOF`.
    fn comment(&mut self, line: &'a str) -> Result<bool, ParseError> {
        let b = line.as_bytes();
        let i = skip_blanks(b, 1);
        let kw_end = i + b[i..].iter().take_while(|c| !is_blank(**c)).count();
        let keyword = &line[i..kw_end];
        if !matches!(keyword, "HELP" | "TYPE" | "UNIT" | "EOF") {
            return Ok(false); // a plain comment
        }
        if keyword == "EOF" {
            return if line[kw_end..].trim().is_empty() {
                Ok(true)
            } else {
                Ok(false)
            };
        }
        let n_start = skip_blanks(b, kw_end);
        let n_end = name_end(b, n_start);
        if n_end == n_start || (n_end < b.len() && !is_blank(b[n_end])) {
            return Err(self.error(
                line,
                format!(
                    "`# {keyword}` needs a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), found {}",
                    shown(b, n_end)
                ),
            ));
        }
        let name = &line[n_start..n_end];
        let rest_start = skip_blanks(b, n_end);
        let rest = &line[rest_start..];
        match keyword {
            "TYPE" => {
                let t = rest.trim_end_matches([' ', '\t']);
                let Some(t) = MetricType::parse(t) else {
                    return Err(self.error(
                        line,
                        format!(
                            "unknown metric type `{t}`; use counter, gauge, histogram, summary or untyped"
                        ),
                    ));
                };
                let idx = self.family_index(name);
                if self.typed[idx] {
                    return Err(self.error(
                        line,
                        format!("second `# TYPE` line for `{name}`; each family is typed once"),
                    ));
                }
                self.typed[idx] = true;
                self.families[idx].metric_type = t;
                self.current = Some((name, t));
            }
            "HELP" => {
                let help = match unescape(rest, false) {
                    Ok(h) => h,
                    Err(msg) => return Err(self.error(line, format!("in HELP text: {msg}"))),
                };
                let idx = self.family_index(name);
                self.families[idx].help = Some(help);
            }
            _ => {
                let idx = self.family_index(name);
                self.families[idx].unit = Some(rest.trim_end_matches([' ', '\t']));
            }
        }
        Ok(false)
    }

    /// The family, its type and the sample's part of it, for a sample name.
    fn resolve(&self, name: &'a str) -> (&'a str, MetricType, SampleKind) {
        if let Some((fam, t)) = self.current {
            if let Some(rest) = name.strip_prefix(fam) {
                if rest.is_empty() {
                    return (fam, t, SampleKind::Value);
                }
                for (suffix, kind) in t.suffixes() {
                    if rest == *suffix {
                        return (fam, t, *kind);
                    }
                }
            }
        }
        // Out of order, or untyped: look the name and its possible stems up.
        if let Some(&i) = self.by_name.get(name) {
            let f = &self.families[i];
            return (f.name, f.metric_type, SampleKind::Value);
        }
        for (suffix, kind) in [
            ("_total", SampleKind::Total),
            ("_bucket", SampleKind::Bucket),
            ("_sum", SampleKind::Sum),
            ("_count", SampleKind::Count),
            ("_created", SampleKind::Created),
            ("_gsum", SampleKind::Sum),
            ("_gcount", SampleKind::Count),
            ("_info", SampleKind::Info),
        ] {
            if let Some(stem) = name.strip_suffix(suffix) {
                if let Some(&i) = self.by_name.get(stem) {
                    let f = &self.families[i];
                    if f.metric_type.suffixes().iter().any(|(s, _)| *s == suffix) {
                        return (f.name, f.metric_type, kind);
                    }
                }
            }
        }
        (name, MetricType::Untyped, SampleKind::Value)
    }

    fn sample(&mut self, line: &'a str) -> Result<Sample<'a, '_>, ParseError> {
        let b = line.as_bytes();
        let n_end = name_end(b, 0);
        if n_end == 0 {
            return Err(self.error(
                line,
                format!(
                    "a sample line must start with a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), found {}",
                    shown(b, 0)
                ),
            ));
        }
        let name = &line[..n_end];
        self.labels.clear();
        let mut i = n_end;
        if i < b.len() && b[i] == b'{' {
            i = self.label_set(line, i + 1)?;
        } else if i < b.len() && !is_blank(b[i]) {
            return Err(self.error(
                line,
                format!(
                    "unexpected {} after metric name `{name}`; expected `{{`, a space, then the value",
                    shown(b, i)
                ),
            ));
        }
        i = skip_blanks(b, i);
        let v_start = i;
        while i < b.len() && !is_blank(b[i]) {
            i += 1;
        }
        if v_start == i {
            return Err(self.error(line, format!("sample `{name}` has no value")));
        }
        let v_text = &line[v_start..i];
        let Some(value) = parse_value(v_text) else {
            return Err(self.error(
                line,
                format!("`{v_text}` is not a number (write e.g. 12, -3.5e-7, NaN, +Inf)"),
            ));
        };
        i = skip_blanks(b, i);
        let mut timestamp_ms = None;
        if i < b.len() && b[i] != b'#' {
            let t_start = i;
            while i < b.len() && !is_blank(b[i]) {
                i += 1;
            }
            let t_text = &line[t_start..i];
            timestamp_ms = match parse_timestamp(t_text) {
                Some(t) => Some(t),
                None => {
                    return Err(self.error(
                        line,
                        format!("`{t_text}` is not a timestamp (milliseconds since the epoch)"),
                    ))
                }
            };
            i = skip_blanks(b, i);
        }
        // An OpenMetrics exemplar (` # {labels} value [ts]`) is accepted and ignored.
        if i < b.len() && b[i] != b'#' {
            return Err(self.error(
                line,
                format!(
                    "unexpected {} after the timestamp; a sample is `name{{labels}} value [timestamp]`",
                    shown(b, i)
                ),
            ));
        }
        let (family, family_type, kind) = self.resolve(name);
        Ok(Sample {
            name,
            family,
            family_type,
            kind,
            labels: &self.labels,
            value,
            timestamp_ms,
        })
    }

    /// Labels from just after `{` to just after `}`; returns the index after `}`.
    fn label_set(&mut self, line: &'a str, mut i: usize) -> Result<usize, ParseError> {
        let b = line.as_bytes();
        loop {
            i = skip_blanks(b, i);
            if i >= b.len() {
                return Err(self.error(line, "unclosed `{`: the label set has no `}`"));
            }
            if b[i] == b'}' {
                return Ok(i + 1);
            }
            let n_start = i;
            if !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
                return Err(self.error(
                    line,
                    format!(
                        "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*) or `}}`, found {}",
                        shown(b, i)
                    ),
                ));
            }
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let lname = &line[n_start..i];
            i = skip_blanks(b, i);
            if i >= b.len() || b[i] != b'=' {
                return Err(self.error(
                    line,
                    format!(
                        "expected `=` after label name `{lname}`, found {}",
                        shown(b, i)
                    ),
                ));
            }
            i = skip_blanks(b, i + 1);
            if i >= b.len() || b[i] != b'"' {
                return Err(self.error(
                    line,
                    format!(
                        "the value of label `{lname}` must be in double quotes, found {}",
                        shown(b, i)
                    ),
                ));
            }
            i += 1;
            let v_start = i;
            let mut escaped = false;
            loop {
                match memchr::memchr2(b'"', b'\\', &b[i..]) {
                    None => {
                        return Err(self.error(
                            line,
                            format!("the value of label `{lname}` has no closing `\"`"),
                        ))
                    }
                    Some(k) if b[i + k] == b'"' => {
                        i += k;
                        break;
                    }
                    Some(k) => {
                        escaped = true;
                        i += k + 2;
                        if i > b.len() {
                            return Err(self.error(
                                line,
                                format!("the value of label `{lname}` has no closing `\"`"),
                            ));
                        }
                    }
                }
            }
            let raw = &line[v_start..i];
            i += 1;
            let value = if escaped {
                match unescape(raw, true) {
                    Ok(v) => v,
                    Err(msg) => {
                        return Err(
                            self.error(line, format!("in the value of label `{lname}`: {msg}"))
                        )
                    }
                }
            } else {
                Cow::Borrowed(raw)
            };
            if self.labels.iter().any(|l| l.name == lname) {
                return Err(self.error(line, format!("label `{lname}` appears twice")));
            }
            self.labels.push(Label { name: lname, value });
            i = skip_blanks(b, i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(i + 1),
                _ => {
                    return Err(self.error(
                        line,
                        format!(
                            "expected `,` or `}}` after the value of label `{lname}`, found {}",
                            shown(b, i)
                        ),
                    ))
                }
            }
        }
    }
}

/// Resolves `\\`, `\n` and (in label values) `\"`. HELP text keeps other backslashes as they
/// are, as Prometheus does; a label value rejects them.
fn unescape(s: &str, label: bool) -> Result<Cow<'_, str>, String> {
    if !s.contains('\\') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label => out.push('"'),
            Some(other) if !label => {
                out.push('\\');
                out.push(other);
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}`; only \\\\, \\\" and \\n are allowed"
                ))
            }
            None if !label => out.push('\\'),
            None => return Err("a lone `\\` at the end".to_string()),
        }
    }
    Ok(Cow::Owned(out))
}

/// A sample value: `12`, `-3.5e-7`, `NaN`, `+Inf`, `-Inf` (any case, as Go's ParseFloat,
/// which Prometheus uses, reads them). `fast-float2` measured faster than std's
/// `parse::<f64>` on the bench body's values (59 vs 54 M values/s; an integer fast path in
/// front of std was slower, 47).
#[inline]
pub fn parse_value(s: &str) -> Option<f64> {
    fast_float2::parse::<f64, _>(s).ok()
}

fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    // OpenMetrics: seconds, with a fraction.
    let secs = s.parse::<f64>().ok().filter(|v| v.is_finite())?;
    Some((secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod prop;
#[cfg(test)]
mod tests;
