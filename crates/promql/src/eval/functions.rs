//! Function calls, with Prometheus 2.42's arithmetic (Kahan sums in `*_over_time`, its
//! rate extrapolation, NaN handling of Go's math package).

use std::sync::Arc;

use promql_parser::parser::{Call, Expr};
use regex::Regex;
use rustc_hash::FxHashMap;

use super::{
    unwrap_parens, Assembler, Evaluator, Grid, RangeInput, StepCursor, StepWalker, VSeries, Val,
    WinSeries,
};
use crate::error::{QueryError, Result};
use crate::labels::{is_valid_label_name, Labels, METRIC_NAME};
use crate::matcher::{selector_matchers, MatchOp};

/// Go's `math.Max`: NaN wins, and +0 beats -0.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins, and -0 beats +0.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// One step of Kahan-Neumaier summation, as Prometheus' `kahanSumInc`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus' `quantile`: NaNs sort first, linear interpolation between neighbours.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap(),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = go_max(0.0, rank.floor());
    let upper = go_min(n - 1.0, lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Prometheus 2.42's `bucketQuantile` over classic histogram buckets `(le, count)`:
/// linear interpolation within the bucket holding the rank, a lower bound of 0 for the
/// first bucket, the second-highest bound when the rank falls into `+Inf`; NaN without
/// a `+Inf` bucket, with fewer than two buckets or with no observations. Counts are made
/// monotonic first.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets with the same bound count together.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in merged.iter_mut() {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    let n = merged.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..n - 1].partition_point(|x| x.1 < rank);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Least squares fit of `(t - intercept_time) / 1000` to the values, as Prometheus'
/// `linearRegression` (Kahan sums; a constant series has slope 0).
fn linear_regression(ts: &[i64], vs: &[f64], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = vs[0];
    let mut const_y = true;
    for (i, (&t, &v)) in ts.iter().zip(vs).enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov_xy = sxy - sx * sy / n;
    let var_x = sx2 - sx * sx / n;
    let slope = cov_xy / var_x;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// The range functions: evaluated on the samples of one window.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RangeFn {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Quantile,
    Stddev,
    Stdvar,
    Last,
    Present,
    Absent,
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Changes,
    Resets,
    HoltWinters,
}

impl RangeFn {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "avg_over_time" => RangeFn::Avg,
            "min_over_time" => RangeFn::Min,
            "max_over_time" => RangeFn::Max,
            "sum_over_time" => RangeFn::Sum,
            "count_over_time" => RangeFn::Count,
            "quantile_over_time" => RangeFn::Quantile,
            "stddev_over_time" => RangeFn::Stddev,
            "stdvar_over_time" => RangeFn::Stdvar,
            "last_over_time" => RangeFn::Last,
            "present_over_time" => RangeFn::Present,
            "absent_over_time" => RangeFn::Absent,
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "changes" => RangeFn::Changes,
            "resets" => RangeFn::Resets,
            "holt_winters" => RangeFn::HoltWinters,
            _ => return None,
        })
    }
}

/// What a range function sees besides the window's samples.
struct WindowCtx {
    /// The grid timestamp being evaluated.
    ts: i64,
    /// The window: `[end - range, end]`.
    end: i64,
    range: i64,
    /// The function's scalar arguments at this step.
    args: [f64; 2],
}

fn extrapolated_rate(
    ts: &[i64],
    vs: &[f64],
    c: &WindowCtx,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if ts.len() < 2 {
        return None;
    }
    let n = ts.len();
    let mut result = vs[n - 1] - vs[0];
    if counter {
        let mut prev = vs[0];
        for &v in &vs[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let range_start = c.end - c.range;
    let mut to_start = (ts[0] - range_start) as f64 / 1000.0;
    let to_end = (c.end - ts[n - 1]) as f64 / 1000.0;
    let sampled = (ts[n - 1] - ts[0]) as f64 / 1000.0;
    let avg_between = sampled / (n - 1) as f64;
    if counter && result > 0.0 && vs[0] >= 0.0 {
        // A counter cannot go below zero: do not extrapolate past where it would be 0.
        let to_zero = sampled * (vs[0] / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_between / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_between / 2.0
    };
    let mut factor = interval / sampled;
    if rate {
        factor /= c.range as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(ts: &[i64], vs: &[f64], rate: bool) -> Option<f64> {
    let n = ts.len();
    if n < 2 {
        return None;
    }
    let (last, prev) = (vs[n - 1], vs[n - 2]);
    let mut result = if rate && last < prev {
        last
    } else {
        last - prev
    };
    let interval = ts[n - 1] - ts[n - 2];
    if interval == 0 {
        return None;
    }
    if rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn holt_winters(vs: &[f64], sf: f64, tf: f64) -> Result<Option<f64>> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(QueryError::execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(QueryError::execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    if vs.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, vs[0]);
    let mut b = vs[1] - vs[0];
    for (i, &v) in vs.iter().enumerate().skip(1) {
        let x = sf * v;
        // The trend at i-1: the first step keeps the initial trend.
        if i - 1 != 0 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

fn apply_range_fn(f: RangeFn, ts: &[i64], vs: &[f64], c: &WindowCtx) -> Result<Option<f64>> {
    Ok(match f {
        RangeFn::Avg => {
            let (mut mean, mut count, mut comp) = (0.0f64, 0.0f64, 0.0f64);
            for &v in vs {
                count += 1.0;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                (mean, comp) = kahan_inc(v / count - mean / count, mean, comp);
            }
            Some(if mean.is_infinite() {
                mean
            } else {
                mean + comp
            })
        }
        RangeFn::Min => {
            let mut m = vs[0];
            for &v in vs {
                if v < m || m.is_nan() {
                    m = v;
                }
            }
            Some(m)
        }
        RangeFn::Max => {
            let mut m = vs[0];
            for &v in vs {
                if v > m || m.is_nan() {
                    m = v;
                }
            }
            Some(m)
        }
        RangeFn::Sum => {
            let (mut sum, mut comp) = (0.0, 0.0);
            for &v in vs {
                (sum, comp) = kahan_inc(v, sum, comp);
            }
            Some(if f64::is_infinite(sum) {
                sum
            } else {
                sum + comp
            })
        }
        RangeFn::Count => Some(vs.len() as f64),
        RangeFn::Quantile => {
            let mut values = vs.to_vec();
            Some(quantile(c.args[0], &mut values))
        }
        RangeFn::Stddev | RangeFn::Stdvar => {
            let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &v in vs {
                count += 1.0;
                let delta = v - (mean + cmean);
                (mean, cmean) = kahan_inc(delta / count, mean, cmean);
                (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
            }
            let var = (aux + caux) / count;
            Some(if f == RangeFn::Stddev {
                var.sqrt()
            } else {
                var
            })
        }
        RangeFn::Last => Some(vs[vs.len() - 1]),
        RangeFn::Present | RangeFn::Absent => Some(1.0),
        RangeFn::Rate => extrapolated_rate(ts, vs, c, true, true),
        RangeFn::Increase => extrapolated_rate(ts, vs, c, true, false),
        RangeFn::Delta => extrapolated_rate(ts, vs, c, false, false),
        RangeFn::Irate => instant_value(ts, vs, true),
        RangeFn::Idelta => instant_value(ts, vs, false),
        RangeFn::Deriv => {
            if ts.len() < 2 {
                None
            } else {
                Some(linear_regression(ts, vs, ts[0]).0)
            }
        }
        RangeFn::PredictLinear => {
            if ts.len() < 2 {
                None
            } else {
                // Prometheus anchors the fit at the evaluation time, even with an offset.
                let (slope, intercept) = linear_regression(ts, vs, c.ts);
                Some(slope * c.args[0] + intercept)
            }
        }
        RangeFn::Changes => {
            let mut n = 0;
            let mut prev = vs[0];
            for &v in &vs[1..] {
                if v != prev && !(v.is_nan() && prev.is_nan()) {
                    n += 1;
                }
                prev = v;
            }
            Some(n as f64)
        }
        RangeFn::Resets => {
            let mut n = 0;
            let mut prev = vs[0];
            for &v in &vs[1..] {
                if v < prev {
                    n += 1;
                }
                prev = v;
            }
            Some(n as f64)
        }
        RangeFn::HoltWinters => holt_winters(vs, c.args[0], c.args[1])?,
    })
}

/// The labels `absent()` gives its result: those the selector fixes with `=`, unless
/// another matcher names the same label.
fn absent_labels(arg: &Expr) -> Result<Labels> {
    let vs = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Ok(Labels::empty()),
    };
    let mut set: Vec<(String, String)> = Vec::new();
    let mut drop: Vec<String> = Vec::new();
    for m in selector_matchers(vs)? {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !set.iter().any(|l| l.0 == m.name) {
            set.push((m.name, m.value));
        } else {
            drop.push(m.name);
        }
    }
    Ok(Labels::from_pairs(set).drop_names(&drop))
}

fn string_arg(e: &Expr) -> Result<String> {
    match unwrap_parens(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        other => Err(QueryError::bad_data(format!(
            "expected a string literal, got {other}"
        ))),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// A date function of Unix seconds, in UTC like Prometheus.
fn date_part(name: &str, secs: i64) -> f64 {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "year" => y as f64,
        "month" => m as f64,
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
            let leap = u32::from(m > 2 && is_leap(y));
            (CUM[m as usize - 1] + d + leap) as f64
        }
        "days_in_month" => match m {
            2 if is_leap(y) => 29.0,
            2 => 28.0,
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
        "hour" => (sod / 3600) as f64,
        "minute" => (sod % 3600 / 60) as f64,
        _ => f64::NAN,
    }
}

/// Applies a per-sample function to every point, dropping `__name__`.
fn map_samples(
    input: Vec<VSeries>,
    g: Grid,
    mut f: impl FnMut(f64, usize) -> Option<f64>,
) -> Result<Vec<VSeries>> {
    let mut asm = Assembler::new();
    for s in input {
        let labels = s.labels.without_metric_name();
        let slot = asm.slot(&labels);
        let mut cursor = StepCursor::new(g);
        for (&t, &v) in s.ts.iter().zip(&s.vs) {
            if let Some(out) = f(v, cursor.index(t)) {
                asm.push(slot, t, out)?;
            }
        }
    }
    asm.finish()
}

fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Go's `regexp.Expand` template syntax is also Rust's: `$1`, `${1}`, `$name`, `$$`.
fn expand(re: &Regex, template: &str, src: &str) -> Option<String> {
    let caps = re.captures(src)?;
    let mut out = String::new();
    caps.expand(template, &mut out);
    Some(out)
}

/// Sorts an instant vector's series by value; NaNs go last either way.
fn sort_by_value(series: &mut [VSeries], descending: bool) {
    series.sort_by(|a, b| {
        let (x, y) = (a.vs[0], b.vs[0]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if descending => y.partial_cmp(&x).unwrap(),
            _ => x.partial_cmp(&y).unwrap(),
        }
    });
}

impl Evaluator<'_> {
    pub(crate) fn eval_call(&mut self, c: &Call, g: Grid) -> Result<Val> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| &**a).collect();
        if let Some(f) = RangeFn::from_name(name) {
            return self.eval_range_fn(f, name, &args, g).map(Val::Vector);
        }
        let n = g.len();
        match name {
            "time" => Ok(Val::Scalar(g.iter().map(|t| t as f64 / 1000.0).collect())),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
            "vector" => {
                let v = self.eval_scalar(args[0], g)?;
                let series = if n == 0 {
                    Vec::new()
                } else {
                    vec![VSeries {
                        labels: Labels::empty(),
                        ts: g.iter().collect(),
                        vs: v,
                    }]
                };
                Ok(Val::Vector(series))
            }
            "scalar" => {
                let input = self.eval_vector(args[0], g)?;
                let mut count = vec![0u32; n];
                let mut value = vec![f64::NAN; n];
                for s in &input {
                    for (&t, &v) in s.ts.iter().zip(&s.vs) {
                        let i = g.index(t);
                        count[i] += 1;
                        value[i] = v;
                    }
                }
                for (v, c) in value.iter_mut().zip(&count) {
                    if *c != 1 {
                        *v = f64::NAN;
                    }
                }
                Ok(Val::Scalar(value))
            }
            "timestamp" => {
                let input = match unwrap_parens(args[0]) {
                    // The sample's own time, not the step's.
                    Expr::VectorSelector(vs) => self.eval_selector(vs, g, true)?,
                    other => {
                        let mut v = self.eval_vector(other, g)?;
                        for s in v.iter_mut() {
                            for (t, x) in s.ts.iter().zip(s.vs.iter_mut()) {
                                *x = *t as f64 / 1000.0;
                            }
                        }
                        v
                    }
                };
                Ok(Val::Vector(map_samples(input, g, |v, _| Some(v))?))
            }
            "absent" => {
                let input = self.eval_vector(args[0], g)?;
                let mut present = vec![false; n];
                for s in &input {
                    for &t in &s.ts {
                        present[g.index(t)] = true;
                    }
                }
                let (ts, vs): (Vec<i64>, Vec<f64>) = g
                    .iter()
                    .zip(&present)
                    .filter(|(_, p)| !**p)
                    .map(|(t, _)| (t, 1.0))
                    .unzip();
                let out = if ts.is_empty() {
                    Vec::new()
                } else {
                    vec![VSeries {
                        labels: absent_labels(args[0])?,
                        ts,
                        vs,
                    }]
                };
                Ok(Val::Vector(out))
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(args[0], g)?;
                let input = self.eval_vector(args[1], g)?;
                Ok(Val::Vector(histogram_quantile(&q, &input, g)?))
            }
            "sort" | "sort_desc" => {
                let mut input = self.eval_vector(args[0], g)?;
                // Only an instant query shows the order; a range query sorts by labels.
                if n == 1 {
                    sort_by_value(&mut input, name == "sort_desc");
                }
                Ok(Val::Vector(input))
            }
            "round" => {
                let input = self.eval_vector(args[0], g)?;
                let to = match args.get(1) {
                    Some(a) => self.eval_scalar(a, g)?,
                    None => vec![1.0; n],
                };
                let out = map_samples(input, g, |v, i| {
                    let inv = 1.0 / to[i];
                    Some((v * inv + 0.5).floor() / inv)
                })?;
                Ok(Val::Vector(out))
            }
            "clamp" => {
                let input = self.eval_vector(args[0], g)?;
                let lo = self.eval_scalar(args[1], g)?;
                let hi = self.eval_scalar(args[2], g)?;
                // A step whose bounds are reversed has no output at all.
                let out = map_samples(input, g, |v, i| {
                    let reversed = hi[i].partial_cmp(&lo[i]) == Some(std::cmp::Ordering::Less);
                    (!reversed).then(|| go_max(lo[i], go_min(hi[i], v)))
                })?;
                Ok(Val::Vector(out))
            }
            "clamp_min" | "clamp_max" => {
                let input = self.eval_vector(args[0], g)?;
                let bound = self.eval_scalar(args[1], g)?;
                let is_min = name == "clamp_min";
                let out = map_samples(input, g, |v, i| {
                    Some(if is_min {
                        go_max(bound[i], v)
                    } else {
                        go_min(bound[i], v)
                    })
                })?;
                Ok(Val::Vector(out))
            }
            "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour"
            | "minute" | "month" | "year" => {
                if args.is_empty() {
                    let series = if n == 0 {
                        Vec::new()
                    } else {
                        vec![VSeries {
                            labels: Labels::empty(),
                            ts: g.iter().collect(),
                            vs: g
                                .iter()
                                .map(|t| date_part(name, t.div_euclid(1000)))
                                .collect(),
                        }]
                    };
                    return Ok(Val::Vector(series));
                }
                let input = self.eval_vector(args[0], g)?;
                let out = map_samples(input, g, |v, _| Some(date_part(name, v as i64)))?;
                Ok(Val::Vector(out))
            }
            "label_replace" => {
                let input = self.eval_vector(args[0], g)?;
                let dst = string_arg(args[1])?;
                let repl = string_arg(args[2])?;
                let src = string_arg(args[3])?;
                let re_src = string_arg(args[4])?;
                if n == 0 {
                    return Ok(Val::Vector(Vec::new()));
                }
                if re_src.len() > self.opts.max_regex_bytes {
                    return Err(QueryError::bad_data(format!(
                        "the regular expression of label_replace() is {} bytes long, more than the limit of {} bytes (max_regex_bytes)",
                        re_src.len(),
                        self.opts.max_regex_bytes
                    )));
                }
                let re = regex::RegexBuilder::new(&format!("^(?:{re_src})$"))
                    .size_limit(crate::MAX_REGEX_COMPILED_BYTES)
                    .build()
                    .map_err(|e| {
                        QueryError::execution(format!(
                            "invalid regular expression in label_replace(): {re_src} ({e})"
                        ))
                    })?;
                if !is_valid_label_name(&dst) {
                    return Err(QueryError::execution(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                let mut asm = Assembler::new();
                for s in input {
                    let src_val = s.labels.get_or_empty(&src).to_string();
                    let labels = match expand(&re, &repl, &src_val) {
                        None => s.labels,
                        Some(res) => s.labels.with(&dst, &res),
                    };
                    let slot = asm.slot(&labels);
                    asm.extend(slot, &s.ts, &s.vs)?;
                }
                Ok(Val::Vector(asm.finish()?))
            }
            "label_join" => {
                let input = self.eval_vector(args[0], g)?;
                let dst = string_arg(args[1])?;
                let sep = string_arg(args[2])?;
                let srcs: Vec<String> = args[3..]
                    .iter()
                    .map(|a| string_arg(a))
                    .collect::<Result<_>>()?;
                if n == 0 {
                    return Ok(Val::Vector(Vec::new()));
                }
                if let Some(bad) = srcs.iter().find(|s| !is_valid_label_name(s)) {
                    return Err(QueryError::execution(format!(
                        "invalid source label name in label_join(): {bad}"
                    )));
                }
                if !is_valid_label_name(&dst) {
                    return Err(QueryError::execution(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                let mut asm = Assembler::new();
                for s in input {
                    let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get_or_empty(n)).collect();
                    let labels = s.labels.with(&dst, &joined.join(&sep));
                    let slot = asm.slot(&labels);
                    asm.extend(slot, &s.ts, &s.vs)?;
                }
                Ok(Val::Vector(asm.finish()?))
            }
            _ => {
                if let Some(f) = simple_fn(name) {
                    let input = self.eval_vector(args[0], g)?;
                    return Ok(Val::Vector(map_samples(input, g, |v, _| Some(f(v)))?));
                }
                Err(QueryError::bad_data(format!(
                    "function {name:?} is not supported by this engine"
                )))
            }
        }
    }

    /// A function over a range vector: the window of each series at each step.
    fn eval_range_fn(
        &mut self,
        f: RangeFn,
        name: &str,
        args: &[&Expr],
        g: Grid,
    ) -> Result<Vec<VSeries>> {
        let src = self.range_source(f, name, args, g)?;
        if f == RangeFn::Absent {
            return self.absent_over_time(&src, args[0], g);
        }
        let mut out: Vec<VSeries> = Vec::with_capacity(src.input.series.len());
        for i in 0..src.input.series.len() {
            if i % 16 == 15 {
                self.check_deadline()?;
            }
            let (mut ts, mut vs) = (Vec::new(), Vec::new());
            src.points(i, g, &mut ts, &mut vs)?;
            if !ts.is_empty() {
                // Counted per series: a window function can produce more points than
                // it loaded samples (one per step), so the limit applies as they come.
                self.account(ts.len())?;
                out.push(VSeries {
                    labels: src.labels(i),
                    ts,
                    vs,
                });
            }
        }
        if src.may_collide() {
            check_unique(out.iter().map(|s| &s.labels))?;
        }
        Ok(out)
    }

    /// For an aggregation over a range function: its results with the input labels,
    /// `__name__` still in (the flag says to drop it on output), or any other
    /// expression evaluated normally (flag false).
    pub(crate) fn eval_range_fn_keep_names(
        &mut self,
        c: &Call,
        g: Grid,
    ) -> Result<(Vec<VSeries>, bool)> {
        let f = RangeFn::from_name(c.func.name)
            .filter(|f| !matches!(f, RangeFn::Absent | RangeFn::Last));
        let Some(f) = f else {
            return Ok((self.eval_vector(&Expr::Call(c.clone()), g)?, false));
        };
        let args: Vec<&Expr> = c.args.args.iter().map(|a| &**a).collect();
        let src = self.range_source(f, c.func.name, &args, g)?;
        if src.may_collide() {
            // Let the normal path refuse or accept repeated labels as Prometheus does.
            let mut out = Vec::new();
            for i in 0..src.input.series.len() {
                let (mut ts, mut vs) = (Vec::new(), Vec::new());
                src.points(i, g, &mut ts, &mut vs)?;
                if !ts.is_empty() {
                    // Counted per series: a window function can produce more points than
                    // it loaded samples (one per step), so the limit applies as they come.
                    self.account(ts.len())?;
                    out.push(VSeries {
                        labels: src.labels(i),
                        ts,
                        vs,
                    });
                }
            }
            check_unique(out.iter().map(|s| &s.labels))?;
            return Ok((out, false));
        }
        let mut out = Vec::with_capacity(src.input.series.len());
        for (i, s) in src.input.series.iter().enumerate() {
            if i % 16 == 15 {
                self.check_deadline()?;
            }
            let (mut ts, mut vs) = (Vec::new(), Vec::new());
            src.points(i, g, &mut ts, &mut vs)?;
            if !ts.is_empty() {
                // Counted per series: a window function can produce more points than
                // it loaded samples (one per step), so the limit applies as they come.
                self.account(ts.len())?;
                out.push(VSeries {
                    labels: s.labels.clone(),
                    ts,
                    vs,
                });
            }
        }
        Ok((out, true))
    }

    fn absent_over_time(&mut self, src: &RangeSource, arg: &Expr, g: Grid) -> Result<Vec<VSeries>> {
        let n = g.len();
        let mut seen = vec![false; n];
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        for i in 0..src.input.series.len() {
            src.points(i, g, &mut ts, &mut vs)?;
            let mut cursor = StepCursor::new(g);
            for &t in &ts {
                seen[cursor.index(t)] = true;
            }
        }
        let (ts, vs): (Vec<i64>, Vec<f64>) = g
            .iter()
            .zip(&seen)
            .filter(|(_, seen)| !**seen)
            .map(|(t, _)| (t, 1.0))
            .unzip();
        if ts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![VSeries {
            labels: absent_labels(unwrap_parens(arg))?,
            ts,
            vs,
        }])
    }

    /// Evaluates a range function's arguments and selects (or evaluates, for a
    /// subquery) its range vector; the results come from [`RangeSource::points`].
    pub(crate) fn range_source(
        &mut self,
        f: RangeFn,
        name: &str,
        args: &[&Expr],
        g: Grid,
    ) -> Result<RangeSource> {
        let matrix_index = match f {
            RangeFn::Quantile => 1,
            _ => 0,
        };
        // Scalar arguments, one value per step.
        let mut scalars: Vec<Vec<f64>> = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i != matrix_index {
                scalars.push(self.eval_scalar(a, g)?);
            }
        }
        let arg = unwrap_parens(args[matrix_index]);
        // Prometheus 2.42 evaluates `@` for predict_linear (the one range function whose
        // result depends on the evaluation time) as an offset from the query start, so
        // its window moves with the steps; reproduce that.
        let at_expr = match arg {
            Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
            Expr::Subquery(sq) => sq.at.is_some(),
            _ => false,
        };
        let shift = if f == RangeFn::PredictLinear && at_expr {
            let at = match arg {
                Expr::MatrixSelector(ms) => self.resolve_at(&ms.vs.at),
                Expr::Subquery(sq) => self.resolve_at(&sq.at),
                _ => None,
            };
            at.map(|a| g.start - a)
        } else {
            None
        };
        let input = match arg {
            Expr::MatrixSelector(ms) => {
                self.range_selector(&ms.vs, ms.range.as_millis() as i64, g, shift)?
            }
            Expr::Subquery(sq) => {
                let (series, at, offset) = self.eval_subquery(sq, g, shift)?;
                let series = series
                    .into_iter()
                    .map(|s| {
                        let n = s.ts.len();
                        WinSeries {
                            labels: s.labels,
                            ts: Arc::from(s.ts),
                            vs: Arc::from(s.vs),
                            lo: 0,
                            hi: n,
                        }
                    })
                    .collect();
                RangeInput {
                    series,
                    range: sq.range.as_millis() as i64,
                    at,
                    offset,
                }
            }
            other => {
                return Err(QueryError::bad_data(format!(
                    "expected a range vector in call to {name}, got {other}"
                )))
            }
        };
        Ok(RangeSource { input, f, scalars })
    }
}

/// A range function's input, evaluated one series at a time.
pub(crate) struct RangeSource {
    pub input: RangeInput,
    f: RangeFn,
    scalars: Vec<Vec<f64>>,
}

impl RangeSource {
    /// The labels of series `i`'s result: `__name__` goes, except for last_over_time,
    /// which acts like an offset.
    pub fn labels(&self, i: usize) -> Labels {
        let l = &self.input.series[i].labels;
        if self.f == RangeFn::Last {
            l.clone()
        } else {
            l.without_metric_name()
        }
    }

    /// Whether two results may end up with the same labels: only when dropping
    /// `__name__` can make distinct input series equal.
    pub fn may_collide(&self) -> bool {
        self.f != RangeFn::Last && !same_metric_name(self.input.series.iter().map(|s| &s.labels))
    }

    /// Fills `ts_out`/`vs_out` (cleared first) with series `i`'s results per step.
    pub fn points(
        &self,
        i: usize,
        g: Grid,
        ts_out: &mut Vec<i64>,
        vs_out: &mut Vec<f64>,
    ) -> Result<()> {
        ts_out.clear();
        vs_out.clear();
        let s = &self.input.series[i];
        let (ts_all, vs_all) = (&s.ts[..s.hi], &s.vs[..s.hi]);
        let (mut lo, mut hi) = (s.lo, s.lo);
        let mut ctx = WindowCtx {
            ts: 0,
            end: 0,
            range: self.input.range,
            args: [0.0; 2],
        };
        for (step, t) in g.iter().enumerate() {
            let end = self.input.window_end(t);
            let start = end - self.input.range;
            while hi < ts_all.len() && ts_all[hi] <= end {
                hi += 1;
            }
            while lo < hi && ts_all[lo] < start {
                lo += 1;
            }
            if lo >= hi {
                continue;
            }
            if self.f == RangeFn::Absent {
                ts_out.push(t);
                vs_out.push(1.0);
                continue;
            }
            ctx.ts = t;
            ctx.end = end;
            for (k, sc) in self.scalars.iter().enumerate().take(2) {
                ctx.args[k] = sc[step];
            }
            if let Some(v) = apply_range_fn(self.f, &ts_all[lo..hi], &vs_all[lo..hi], &ctx)? {
                ts_out.push(t);
                vs_out.push(v);
            }
        }
        Ok(())
    }
}

/// `histogram_quantile` over classic histograms: per step, the buckets of each histogram
/// (same labels but `le`, and same metric name) give one quantile, labelled without
/// `le` and `__name__`. Series whose `le` is not a number are ignored.
fn histogram_quantile(q: &[f64], input: &[VSeries], g: Grid) -> Result<Vec<VSeries>> {
    // Each series' histogram and bound, once: labels do not change between steps.
    let mut ids: FxHashMap<(Labels, Option<&str>), usize> = FxHashMap::default();
    let mut names: Vec<Labels> = Vec::new();
    let drop = [METRIC_NAME.to_string(), "le".to_string()];
    let member: Vec<Option<(usize, f64)>> = input
        .iter()
        .map(|s| {
            // Like Go's ParseFloat, Rust's accepts "+Inf", "inf", "NaN" in any case.
            let le: f64 = s.labels.get("le")?.parse().ok()?;
            let out = s.labels.drop_names(&drop);
            let key = (out.clone(), s.labels.metric_name());
            let id = *ids.entry(key).or_insert_with(|| {
                names.push(out);
                names.len() - 1
            });
            Some((id, le))
        })
        .collect();
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); names.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut asm = Assembler::new();
    let slots: Vec<usize> = names.iter().map(|l| asm.slot(l)).collect();
    let mut walker = StepWalker::new(input);
    for (step, t) in g.iter().enumerate() {
        walker.step(t);
        for &(si, v) in &walker.buf {
            if let Some((id, le)) = member[si as usize] {
                if buckets[id].is_empty() {
                    touched.push(id);
                }
                buckets[id].push((le, v));
            }
        }
        for id in touched.drain(..) {
            let v = bucket_quantile(q[step], &mut buckets[id]);
            buckets[id].clear();
            asm.push(slots[id], t, v)?;
        }
    }
    asm.finish()
}

/// Whether all label sets carry the same metric name (or none).
pub(crate) fn same_metric_name<'a>(mut labels: impl Iterator<Item = &'a Labels>) -> bool {
    let first = match labels.next() {
        Some(l) => l.metric_name(),
        None => return true,
    };
    labels.all(|l| l.metric_name() == first)
}

/// Fails, as Prometheus does, when two series of a result have the same labels.
pub(crate) fn check_unique<'a>(labels: impl Iterator<Item = &'a Labels>) -> Result<()> {
    let mut seen: FxHashMap<&Labels, ()> = FxHashMap::default();
    for l in labels {
        if seen.insert(l, ()).is_some() {
            return Err(QueryError::execution(super::DUPLICATE_LABELSET));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(end: i64, range: i64) -> WindowCtx {
        WindowCtx {
            ts: end,
            end,
            range,
            args: [0.0; 2],
        }
    }

    #[test]
    fn rate_extrapolates_to_the_window_edges() {
        // Samples every 60 s at 30 s .. 270 s in a 300 s window ending at 300 s: the
        // edges are 30 s away (< 1.1 × 60 s), so the 240 s of data extend to 300 s.
        let ts = [30_000, 90_000, 150_000, 210_000, 270_000];
        let vs = [10.0, 20.0, 30.0, 40.0, 50.0];
        let inc = extrapolated_rate(&ts, &vs, &ctx(300_000, 300_000), true, false).unwrap();
        assert!((inc - 50.0).abs() < 1e-12, "{inc}");
        let rate = extrapolated_rate(&ts, &vs, &ctx(300_000, 300_000), true, true).unwrap();
        assert!((rate - 50.0 / 300.0).abs() < 1e-12, "{rate}");
    }

    #[test]
    fn rate_does_not_extrapolate_below_zero_and_handles_resets() {
        // The counter would reach zero 10 s before the first sample: extrapolate 10 s,
        // not the 30 s to the window start.
        let ts = [30_000, 90_000];
        let vs = [10.0, 70.0];
        let inc = extrapolated_rate(&ts, &vs, &ctx(120_000, 120_000), true, false).unwrap();
        // sampled 60 s, +10 s to zero, +30 s to the end: 60 * 100/60.
        assert!((inc - 100.0).abs() < 1e-12, "{inc}");
        // A reset (5 after 20) adds the value before it.
        let ts = [0, 60_000, 120_000];
        let vs = [10.0, 20.0, 5.0];
        let inc = extrapolated_rate(&ts, &vs, &ctx(120_000, 120_000), true, false).unwrap();
        assert!((inc - 15.0).abs() < 1e-12, "{inc}");
        // delta does not treat decreases as resets, and may go negative.
        let d = extrapolated_rate(&ts, &vs, &ctx(120_000, 120_000), false, false).unwrap();
        assert!((d + 5.0).abs() < 1e-12, "{d}");
    }

    #[test]
    fn rate_extrapolates_only_half_an_interval_past_far_edges() {
        // Edges 200 s away (> 1.1 × 60 s): extend by 30 s on each side.
        let ts = [200_000, 260_000, 320_000];
        let vs = [0.0, 60.0, 120.0];
        let d = extrapolated_rate(&ts, &vs, &ctx(520_000, 520_000), false, false).unwrap();
        assert!((d - 180.0).abs() < 1e-12, "{d}");
        assert!(
            extrapolated_rate(&ts[..1], &vs[..1], &ctx(520_000, 520_000), true, true).is_none()
        );
    }

    #[test]
    fn irate_uses_the_last_two_samples() {
        let ts = [0, 10_000, 20_000];
        assert_eq!(instant_value(&ts, &[1.0, 5.0, 9.0], true), Some(0.4));
        assert_eq!(instant_value(&ts, &[1.0, 5.0, 2.0], true), Some(0.2));
        assert_eq!(instant_value(&ts, &[1.0, 5.0, 2.0], false), Some(-3.0));
    }

    #[test]
    fn quantile_interpolates_and_bounds() {
        let mut v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(0.0, &mut v), 1.0);
        assert_eq!(quantile(1.0, &mut v), 4.0);
        assert_eq!(quantile(-1.0, &mut v), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &mut v), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn bucket_quantile_interpolates_within_the_bucket() {
        let mut b = vec![
            (f64::INFINITY, 100.0),
            (0.1, 20.0),
            (0.5, 70.0),
            (1.0, 90.0),
        ];
        // rank 50 is in (0.1, 0.5]: 0.1 + 0.4 * 30/50.
        assert!((bucket_quantile(0.5, &mut b) - 0.34).abs() < 1e-12);
        // In the first bucket, from 0.
        assert!((bucket_quantile(0.1, &mut b.clone()) - 0.05).abs() < 1e-12);
        // In +Inf: the highest finite bound.
        assert_eq!(bucket_quantile(0.99, &mut b.clone()), 1.0);
        assert!(bucket_quantile(0.5, &mut [(1.0, 5.0), (2.0, 9.0)]).is_nan());
        assert!(bucket_quantile(0.5, &mut [(f64::INFINITY, 0.0), (1.0, 0.0)]).is_nan());
        // A decreasing count is lifted to the envelope.
        let mut b = vec![(1.0, 10.0), (2.0, 8.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 0.5);
    }

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(1.0, 2.0), 2.0);
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(0.0, -0.0).is_sign_negative());
    }

    #[test]
    fn dates_in_utc() {
        // 2024-02-29T13:45:00Z, a Thursday.
        let t = 1_709_214_300;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("year", -1), 1969.0);
    }

    #[test]
    fn deriv_of_a_line() {
        let ts = [0, 60_000, 120_000];
        let (slope, _) = linear_regression(&ts, &[1.0, 2.0, 3.0], 0);
        assert!((slope - 1.0 / 60.0).abs() < 1e-15);
        assert_eq!(linear_regression(&ts, &[5.0, 5.0, 5.0], 0), (0.0, 5.0));
    }
}
