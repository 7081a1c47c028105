//! The evaluator. Like Prometheus, every expression is evaluated over a grid of steps at
//! once (an instant query is a grid of one step), so each selector is fetched once per
//! evaluation and samples are walked with moving indexes, never searched per step.
//!
//! An instant-vector result is a list of series whose points sit on grid timestamps;
//! operators work series by series where Prometheus' per-step results can be rebuilt
//! that way (same operands in the same order), and step by step where they cannot.

mod aggregate;
mod binary;
mod functions;

use std::sync::Arc;
use std::time::Instant;

use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};
use rustc_hash::FxHashMap;

use crate::error::{ErrorKind, QueryError, Result};
use crate::labels::Labels;
use crate::matcher::{selector_matchers, Matcher};
use crate::{is_stale_nan, Options, Querier, Series};

/// The evaluation timestamps `start, start + interval, ..., <= end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub interval: i64,
}

impl Grid {
    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.interval) as usize + 1
        }
    }

    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.interval
    }

    pub fn index(&self, ts: i64) -> usize {
        ((ts - self.start) / self.interval) as usize
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.ts(i))
    }
}

/// Maps the increasing grid timestamps of one series' points to step indexes by walking
/// forward, instead of dividing for every point.
pub(crate) struct StepCursor {
    g: Grid,
    i: usize,
    t: i64,
}

impl StepCursor {
    pub fn new(g: Grid) -> Self {
        StepCursor {
            g,
            i: 0,
            t: g.start,
        }
    }

    /// The step index of grid timestamp `ts`.
    #[inline]
    pub fn index(&mut self, ts: i64) -> usize {
        if ts < self.t {
            self.i = self.g.index(ts);
            self.t = self.g.ts(self.i);
        }
        while self.t < ts {
            self.i += 1;
            self.t += self.g.interval;
        }
        self.i
    }
}

/// Whether any value is Prometheus' stale marker; written to let the compiler compare
/// many values per instruction, as it runs over every selected sample.
pub(crate) fn any_stale(values: &[f64]) -> bool {
    values.chunks(64).any(|c| {
        c.iter()
            .fold(false, |acc, v| acc | (v.to_bits() == crate::STALE_NAN_BITS))
    })
}

/// One evaluated series: labels and points (time in ms, value), sorted by time.
#[derive(Clone, Debug)]
pub(crate) struct VSeries {
    pub labels: Labels,
    pub ts: Vec<i64>,
    pub vs: Vec<f64>,
}

/// The value of an evaluated expression over a grid.
pub(crate) enum Val {
    /// One value per grid step.
    Scalar(Vec<f64>),
    String(String),
    /// An instant vector per step, stored as series with points on grid timestamps.
    Vector(Vec<VSeries>),
    /// Raw samples of a range selector or subquery (instant evaluation only).
    Matrix(Vec<VSeries>),
}

/// Series to be windowed by a range function: samples without stale markers, and how a
/// grid timestamp maps to the window `[end - range, end]`.
pub(crate) struct RangeInput {
    pub series: Vec<WinSeries>,
    pub range: i64,
    pub at: Option<i64>,
    pub offset: i64,
}

impl RangeInput {
    /// The end of the window evaluated at grid timestamp `ts`.
    pub fn window_end(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts) - self.offset
    }
}

pub(crate) struct WinSeries {
    pub labels: Labels,
    pub ts: Arc<[i64]>,
    pub vs: Arc<[f64]>,
    /// The part of `ts`/`vs` any window can reach.
    pub lo: usize,
    pub hi: usize,
}

pub(crate) const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// Collects output points by label set, merging series that end up with the same labels
/// (after dropping `__name__`, say) and failing, as Prometheus does, when two of them
/// have a point at the same step.
pub(crate) struct Assembler {
    index: FxHashMap<Labels, usize>,
    out: Vec<VSeries>,
    unsorted: Vec<bool>,
}

impl Assembler {
    pub fn new() -> Self {
        Assembler {
            index: FxHashMap::default(),
            out: Vec::new(),
            unsorted: Vec::new(),
        }
    }

    /// The output slot of a label set.
    pub fn slot(&mut self, labels: &Labels) -> usize {
        if let Some(&i) = self.index.get(labels) {
            return i;
        }
        let i = self.out.len();
        self.index.insert(labels.clone(), i);
        self.out.push(VSeries {
            labels: labels.clone(),
            ts: Vec::new(),
            vs: Vec::new(),
        });
        self.unsorted.push(false);
        i
    }

    pub fn push(&mut self, slot: usize, ts: i64, v: f64) -> Result<()> {
        let s = &mut self.out[slot];
        if let Some(&last) = s.ts.last() {
            if last == ts {
                return Err(QueryError::execution(DUPLICATE_LABELSET));
            }
            if last > ts {
                self.unsorted[slot] = true;
            }
        }
        s.ts.push(ts);
        s.vs.push(v);
        Ok(())
    }

    /// Adds a whole series' points to a slot.
    pub fn extend(&mut self, slot: usize, ts: &[i64], vs: &[f64]) -> Result<()> {
        let s = &mut self.out[slot];
        if s.ts.is_empty() {
            s.ts.extend_from_slice(ts);
            s.vs.extend_from_slice(vs);
            return Ok(());
        }
        for (t, v) in ts.iter().zip(vs) {
            self.push(slot, *t, *v)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<VSeries>> {
        for (s, unsorted) in self.out.iter_mut().zip(&self.unsorted) {
            if *unsorted {
                let mut pts: Vec<(i64, f64)> =
                    s.ts.iter().copied().zip(s.vs.iter().copied()).collect();
                pts.sort_by_key(|p| p.0);
                if pts.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(QueryError::execution(DUPLICATE_LABELSET));
                }
                s.ts = pts.iter().map(|p| p.0).collect();
                s.vs = pts.iter().map(|p| p.1).collect();
            }
        }
        self.out.retain(|s| !s.ts.is_empty());
        Ok(self.out)
    }
}

/// Walks the steps of a grid over a set of series, handing each step the samples that
/// sit on it (series index, value) in series order — Prometheus' per-step vectors.
pub(crate) struct StepWalker<'a> {
    series: &'a [VSeries],
    cursors: Vec<usize>,
    pub buf: Vec<(u32, f64)>,
}

impl<'a> StepWalker<'a> {
    pub fn new(series: &'a [VSeries]) -> Self {
        StepWalker {
            series,
            cursors: vec![0; series.len()],
            buf: Vec::with_capacity(series.len()),
        }
    }

    /// Fills `buf` with the samples at `ts`; call with increasing `ts`.
    pub fn step(&mut self, ts: i64) {
        self.buf.clear();
        for (i, s) in self.series.iter().enumerate() {
            let c = &mut self.cursors[i];
            while *c < s.ts.len() && s.ts[*c] < ts {
                *c += 1;
            }
            if *c < s.ts.len() && s.ts[*c] == ts {
                self.buf.push((i as u32, s.vs[*c]));
                *c += 1;
            }
        }
    }
}

/// The number of leading timestamps for which `before(t)` holds (`ts` is sorted, and
/// `before` true for a prefix), like `partition_point` but guessing the position from
/// the time span first: samples are usually evenly spaced, so this reads two or three
/// cache lines where a binary search reads a dozen.
pub(crate) fn search_ts(ts: &[i64], x: i64, inclusive: bool) -> usize {
    let before = |t: i64| if inclusive { t <= x } else { t < x };
    let n = ts.len();
    if n == 0 || !before(ts[0]) {
        return 0;
    }
    if before(ts[n - 1]) {
        return n;
    }
    // Now ts[0] is before and ts[n - 1] is not: the answer is in 1..n.
    let span = (ts[n - 1] - ts[0]) as f64;
    let guess = (((x - ts[0]) as f64 / span) * (n - 1) as f64) as usize;
    let mut lo = guess.clamp(0, n - 2); // before(ts[lo]) is to be established
    if before(ts[lo]) {
        // Gallop right until a timestamp is not before.
        let mut step = 1;
        loop {
            let hi = (lo + step).min(n - 1);
            if !before(ts[hi]) {
                return lo + 1 + ts[lo + 1..hi].partition_point(|&t| before(t));
            }
            lo = hi;
            step *= 2;
        }
    }
    // Gallop left until a timestamp is before.
    let mut hi = lo;
    let mut step = 1;
    loop {
        let l = hi.saturating_sub(step);
        if before(ts[l]) {
            return l + 1 + ts[l + 1..hi].partition_point(|&t| before(t));
        }
        hi = l;
        step *= 2;
    }
}

/// The series of an instant selector and how to pick their samples per step.
pub(crate) struct SelectorSource {
    pub series: Vec<Series>,
    at: Option<i64>,
    offset: i64,
    lookback: i64,
    /// Samples after this time are invisible (see `Evaluator::visible_until`).
    limit: Option<i64>,
    sample_time: bool,
    first_ref: i64,
}

impl SelectorSource {
    /// Fills `ts_out`/`vs_out` (cleared first) with series `i`'s points on the grid.
    pub fn points(&self, i: usize, g: Grid, ts_out: &mut Vec<i64>, vs_out: &mut Vec<f64>) {
        ts_out.clear();
        vs_out.clear();
        let s = &self.series[i];
        let (mut sts, mut svs) = (&*s.timestamps, &*s.values);
        if let Some(limit) = self.limit {
            let n = search_ts(sts, limit, true);
            (sts, svs) = (&sts[..n], &svs[..n]);
        }
        let value = |k: usize| {
            if self.sample_time {
                sts[k] as f64 / 1000.0
            } else {
                svs[k]
            }
        };
        let lookback = self.lookback;
        if self.at.is_some() {
            // One reference time for every step: look it up once.
            let j = search_ts(sts, self.first_ref, true);
            if j > 0 && sts[j - 1] >= self.first_ref - lookback && !is_stale_nan(svs[j - 1]) {
                let v = value(j - 1);
                ts_out.extend(g.iter());
                vs_out.resize(g.len(), v);
            }
            return;
        }
        // j: how many samples are at or before the current reference time.
        let mut j = search_ts(sts, self.first_ref - lookback, false);
        let n = sts.len();
        for ts in g.iter() {
            let r = ts - self.offset;
            while j + 4 <= n && sts[j + 3] <= r {
                j += 4;
            }
            while j < n && sts[j] <= r {
                j += 1;
            }
            if j == 0 {
                continue;
            }
            let k = j - 1;
            if sts[k] < r - lookback || is_stale_nan(svs[k]) {
                continue;
            }
            ts_out.push(ts);
            vs_out.push(value(k));
        }
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

pub(crate) struct Evaluator<'a> {
    querier: &'a dyn Querier,
    opts: &'a Options,
    query_start: i64,
    query_end: i64,
    deadline: Option<Instant>,
    samples: usize,
    series: usize,
    /// Latest reference time (sample time + the selector's offset) whose samples are
    /// visible. Prometheus selects each selector's data for the time range its `@`
    /// implies; only the `predict_linear` quirk below ever evaluates outside that range,
    /// and then must not see later samples.
    visible_until: Option<i64>,
}

impl<'a> Evaluator<'a> {
    pub fn new(querier: &'a dyn Querier, opts: &'a Options, start: i64, end: i64) -> Self {
        Evaluator {
            querier,
            opts,
            query_start: start,
            query_end: end,
            deadline: opts.timeout.map(|t| Instant::now() + t),
            samples: 0,
            series: 0,
            visible_until: None,
        }
    }

    pub fn check_deadline(&self) -> Result<()> {
        if self
            .opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(QueryError::canceled("expression evaluation"));
        }
        match self.deadline {
            Some(d) if Instant::now() > d => Err(QueryError::timed_out(
                self.opts.timeout,
                "expression evaluation",
            )),
            _ => Ok(()),
        }
    }

    /// Counts samples held by the query against `Options::max_samples`.
    pub fn account(&mut self, n: usize) -> Result<()> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.opts.max_samples {
            return Err(QueryError::too_many_samples(self.opts.max_samples));
        }
        Ok(())
    }

    /// Fails unless `n` more samples would fit in `Options::max_samples`, without counting
    /// them: for a check before an allocation whose result is counted later.
    pub fn would_fit(&self, n: usize) -> Result<()> {
        if self.samples.saturating_add(n) > self.opts.max_samples {
            return Err(QueryError::too_many_samples(self.opts.max_samples));
        }
        Ok(())
    }

    /// What the next select may load.
    fn budget(&self) -> crate::SelectBudget {
        crate::SelectBudget {
            max_series: self.opts.max_series,
            series_left: self.opts.max_series.saturating_sub(self.series),
            max_samples: self.opts.max_samples,
            samples_left: self.opts.max_samples.saturating_sub(self.samples),
            deadline: self.deadline,
            timeout: self.opts.timeout,
            cancel: self.opts.cancel.clone(),
        }
    }

    fn resolve_at(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            },
        })
    }

    /// Fetches the series of a selector, sorted by labels like Prometheus' storage.
    fn select(&mut self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>> {
        self.check_deadline()?;
        let budget = self.budget();
        let mut series = self
            .querier
            .select(matchers, start, end, &budget)
            .map_err(|mut e| {
                if e.kind == ErrorKind::Internal {
                    e.message = format!("selecting series: {}", e.message);
                }
                e
            })?;
        // Checked again: a source may not honour the budget.
        self.series = self.series.saturating_add(series.len());
        if self.series > self.opts.max_series {
            return Err(QueryError::too_many_series(self.opts.max_series));
        }
        if !series.windows(2).all(|w| w[0].labels <= w[1].labels) {
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(series)
    }

    /// Evaluates one node; the deadline is checked before and after it, so that a node
    /// that took the query past its deadline fails the query even when nothing inside
    /// it looked at the clock.
    pub fn eval(&mut self, e: &Expr, g: Grid) -> Result<Val> {
        self.check_deadline()?;
        let v = self.eval_node(e, g)?;
        self.check_deadline()?;
        Ok(v)
    }

    fn eval_node(&mut self, e: &Expr, g: Grid) -> Result<Val> {
        match e {
            // A grid is never longer than `max_samples` (a range query has at most
            // 11,001 steps, a subquery's are checked against the limit), so a value per
            // step is a bounded allocation.
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; g.len()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, g),
            Expr::Unary(u) => match self.eval(&u.expr, g)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut series) => {
                    let mut seen = FxHashMap::default();
                    for s in series.iter_mut() {
                        s.labels = s.labels.without_metric_name();
                        s.vs.iter_mut().for_each(|x| *x = -*x);
                        if seen.insert(s.labels.clone(), ()).is_some() {
                            return Err(QueryError::execution(DUPLICATE_LABELSET));
                        }
                    }
                    Ok(Val::Vector(series))
                }
                _ => Err(QueryError::execution(
                    "unary minus applies to scalars and instant vectors only",
                )),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_selector(vs, g, false)?)),
            Expr::MatrixSelector(ms) => {
                if g.len() != 1 {
                    return Err(QueryError::bad_data(
                        "a range vector can only be the result of an instant query",
                    ));
                }
                let input = self.range_selector(&ms.vs, ms.range.as_millis() as i64, g, None)?;
                let end = input.window_end(g.start);
                let start = end - input.range;
                let mut out = Vec::with_capacity(input.series.len());
                for s in input.series {
                    let ts = &s.ts[s.lo..s.hi];
                    let a = ts.partition_point(|&t| t < start);
                    let b = ts.partition_point(|&t| t <= end);
                    if a < b {
                        out.push(VSeries {
                            labels: s.labels,
                            ts: ts[a..b].to_vec(),
                            vs: s.vs[s.lo + a..s.lo + b].to_vec(),
                        });
                    }
                }
                Ok(Val::Matrix(out))
            }
            Expr::Subquery(sq) => {
                let (series, _, _) = self.eval_subquery(sq, g, None)?;
                Ok(Val::Matrix(series))
            }
            Expr::Call(c) => self.eval_call(c, g),
            Expr::Aggregate(a) => self.eval_aggregate(a, g),
            Expr::Binary(b) => self.eval_binary(b, g),
            Expr::Extension(_) => Err(QueryError::bad_data(
                "extension expressions are not supported",
            )),
        }
    }

    /// Evaluates an expression that must yield a scalar per step.
    pub fn eval_scalar(&mut self, e: &Expr, g: Grid) -> Result<Vec<f64>> {
        match self.eval(e, g)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(QueryError::execution(format!("expected a scalar from {e}"))),
        }
    }

    /// Evaluates an expression that must yield an instant vector.
    pub fn eval_vector(&mut self, e: &Expr, g: Grid) -> Result<Vec<VSeries>> {
        match self.eval(e, g)? {
            Val::Vector(v) => Ok(v),
            _ => Err(QueryError::execution(format!(
                "expected an instant vector from {e}"
            ))),
        }
    }

    /// An instant vector selector: per step, the latest sample within the lookback
    /// window `[ref - lookback, ref]`, unless it is a stale marker. With `sample_time`
    /// the value is the sample's own timestamp in seconds (for `timestamp()`), and, as in
    /// Prometheus 2.42, `@` then pins the sample time while the offset is ignored.
    pub fn eval_selector(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
        sample_time: bool,
    ) -> Result<Vec<VSeries>> {
        let src = self.selector_source(vs, g, sample_time)?;
        let mut out = Vec::with_capacity(src.series.len());
        // Points are counted series by series, so that a broad selector stops at the
        // limit instead of after materialising every series.
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        for i in 0..src.series.len() {
            if i % 16 == 15 {
                self.check_deadline()?;
            }
            src.points(i, g, &mut ts, &mut vs);
            if ts.is_empty() {
                continue;
            }
            self.account(ts.len())?;
            // A series with a point at every step takes the buffers as they are; one
            // with gaps gets a copy of its own size, so that memory follows the count.
            let (ts_i, vs_i) = if ts.len() == g.len() {
                (std::mem::take(&mut ts), std::mem::take(&mut vs))
            } else {
                (ts.clone(), vs.clone())
            };
            out.push(VSeries {
                labels: src.series[i].labels.clone(),
                ts: ts_i,
                vs: vs_i,
            });
        }
        Ok(out)
    }

    /// Selects the series of an instant selector; their points come from
    /// [`SelectorSource::points`], one series at a time.
    pub fn selector_source(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
        sample_time: bool,
    ) -> Result<SelectorSource> {
        let matchers = selector_matchers(vs)?;
        let at = self.resolve_at(&vs.at);
        let offset = if sample_time && at.is_some() {
            0
        } else {
            offset_ms(&vs.offset)
        };
        let lookback = self.opts.lookback_delta_ms;
        let (first_ref, last_ref) = match at {
            Some(a) => (a - offset, a - offset),
            None => (g.start - offset, g.end - offset),
        };
        let series = if g.len() == 0 {
            Vec::new()
        } else {
            self.select(&matchers, first_ref - lookback, last_ref)?
        };
        let limit = match (at, self.visible_until) {
            (None, Some(v)) => Some(v - offset),
            _ => None,
        };
        Ok(SelectorSource {
            series,
            at,
            offset,
            lookback,
            limit,
            sample_time,
            first_ref,
        })
    }
    /// The series of a range selector, trimmed to what the grid's windows reach, with
    /// stale markers removed (Prometheus skips them inside ranges). `shift` replaces
    /// `@`: an extra offset used to reproduce Prometheus' `predict_linear` quirk.
    pub fn range_selector(
        &mut self,
        vs: &VectorSelector,
        range: i64,
        g: Grid,
        shift: Option<i64>,
    ) -> Result<RangeInput> {
        let matchers = selector_matchers(vs)?;
        let own_offset = offset_ms(&vs.offset);
        let (at, offset) = match shift {
            Some(extra) => (None, own_offset + extra),
            None => (self.resolve_at(&vs.at), own_offset),
        };
        // Samples after this time are not visible (see `visible_until`).
        let limit = match shift {
            // The selector's data was selected up to its `@` time, `g.start - shift`.
            Some(extra) => Some(g.start - extra - own_offset),
            None if at.is_none() => self.visible_until.map(|v| v - own_offset),
            None => None,
        };
        let mut input = RangeInput {
            series: Vec::new(),
            range,
            at,
            offset,
        };
        if g.len() == 0 {
            return Ok(input);
        }
        let first_end = input.window_end(g.start);
        let last_end = input.window_end(g.end);
        let lo_t = first_end - range;
        let series = self.select(&matchers, lo_t, last_end)?;
        let mut total = 0;
        for s in series {
            let lo = search_ts(&s.timestamps, lo_t, false);
            let hi = search_ts(
                &s.timestamps,
                limit.map_or(last_end, |l| l.min(last_end)),
                true,
            );
            if lo >= hi {
                continue;
            }
            total += hi - lo;
            if any_stale(&s.values[lo..hi]) {
                let (ts, vs): (Vec<i64>, Vec<f64>) = s.timestamps[lo..hi]
                    .iter()
                    .zip(&s.values[lo..hi])
                    .filter(|(_, v)| !is_stale_nan(**v))
                    .map(|(t, v)| (*t, *v))
                    .unzip();
                let n = ts.len();
                input.series.push(WinSeries {
                    labels: s.labels,
                    ts: ts.into(),
                    vs: vs.into(),
                    lo: 0,
                    hi: n,
                });
            } else {
                input.series.push(WinSeries {
                    labels: s.labels,
                    ts: s.timestamps,
                    vs: s.values,
                    lo,
                    hi,
                });
            }
        }
        self.account(total)?;
        Ok(input)
    }

    /// Evaluates a subquery: its inner expression over the steps aligned to multiples of
    /// its step within `[start - offset - range, end - offset]`. Returns the inner series
    /// and the effective `@` and offset for windowing them. `shift` as in
    /// [`Self::range_selector`].
    pub fn eval_subquery(
        &mut self,
        sq: &SubqueryExpr,
        g: Grid,
        shift: Option<i64>,
    ) -> Result<(Vec<VSeries>, Option<i64>, i64)> {
        let range = sq.range.as_millis() as i64;
        let step = match sq.step {
            Some(s) => s.as_millis() as i64,
            None => self.opts.default_subquery_step_ms,
        };
        if step <= 0 {
            return Err(QueryError::bad_data("subquery step must be positive"));
        }
        let (at, offset) = match shift {
            Some(extra) => (None, offset_ms(&sq.offset) + extra),
            None => (self.resolve_at(&sq.at), offset_ms(&sq.offset)),
        };
        let (base_start, base_end) = match at {
            Some(a) => (a, a),
            None => (g.start, g.end),
        };
        if g.len() == 0 {
            return Ok((Vec::new(), at, offset));
        }
        let raw_start = base_start - offset - range;
        // Go's integer division truncates toward zero, and so does Rust's.
        let mut start = step * (raw_start / step);
        if start < raw_start {
            start += step;
        }
        let inner = Grid {
            start,
            end: base_end - offset,
            interval: step,
        };
        // Every inner step may produce a sample for every series: refuse a subquery
        // whose steps alone exceed the sample limit before evaluating (allocating) any.
        // (Times and durations are bounded by `limits::check_tree`, so this cannot
        // overflow; the division keeps it so even for a step of 1 ms.)
        let inner_steps = if inner.end < inner.start {
            0
        } else {
            ((inner.end - inner.start) / step).saturating_add(1)
        };
        self.would_fit(usize::try_from(inner_steps).unwrap_or(usize::MAX))?;
        // What the inner selectors may see: up to the subquery's `@` time when the
        // predict_linear quirk shifted it, nothing beyond an explicit `@`, and an
        // enclosing limit moved by this subquery's offset otherwise.
        let saved = self.visible_until;
        self.visible_until = match shift {
            Some(extra) => Some(g.start - extra - offset_ms(&sq.offset)),
            None if at.is_some() => None,
            None => saved.map(|v| v - offset),
        };
        let series = self.eval_vector(&sq.expr, inner);
        self.visible_until = saved;
        Ok((series?, at, offset))
    }
}

/// Trees up to this deep are evaluated on the caller's thread: a few stack frames per
/// level (about 20 KiB per level in a debug build, a fraction of that optimised) fit in
/// any thread's stack.
const INLINE_DEPTH: usize = 24;

/// Stack for evaluating one level of the tree on a thread of its own, with a wide margin
/// over the largest frames seen (debug builds).
const STACK_PER_LEVEL: usize = 64 << 10;

/// Evaluates a parsed expression over a grid, for the public query functions.
///
/// The evaluator recurses once per level of the tree, whose depth `limits::check_tree`
/// bounds by `Options::max_depth`. A deep tree is evaluated on a scoped thread with a
/// stack sized for its depth, so that no admitted query can overflow the stack of the
/// thread that runs it (a server's worker threads have 2 MiB).
pub(crate) fn evaluate(querier: &dyn Querier, opts: &Options, expr: &Expr, g: Grid) -> Result<Val> {
    let depth = crate::limits::tree_depth(expr);
    let run = || Evaluator::new(querier, opts, g.start, g.end).eval(expr, g);
    if depth <= INLINE_DEPTH {
        return run();
    }
    let stack = (1 << 20) + depth.saturating_mul(STACK_PER_LEVEL);
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("promql-eval".into())
            .stack_size(stack)
            .spawn_scoped(scope, run)
            .map_err(|e| {
                QueryError::internal(format!(
                    "cannot start a thread to evaluate a deep query: {e}"
                ))
            })?;
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_ts_agrees_with_partition_point() {
        let shapes: Vec<Vec<i64>> = vec![
            vec![],
            vec![5],
            vec![5, 5, 5],
            (0..100).map(|i| i * 60).collect(),
            (0..100).map(|i| i * i * 7).collect(),
            vec![0, 1, 2, 3, 1000, 1001, 5000, 9000, 9001, 9002],
        ];
        for ts in &shapes {
            for x in -10..10_000 {
                for inclusive in [false, true] {
                    let want = ts.partition_point(|&t| if inclusive { t <= x } else { t < x });
                    assert_eq!(search_ts(ts, x, inclusive), want, "{ts:?} {x} {inclusive}");
                }
            }
        }
    }

    #[test]
    fn step_cursor_walks_and_rewinds() {
        let g = Grid {
            start: 100,
            end: 1000,
            interval: 100,
        };
        let mut c = StepCursor::new(g);
        assert_eq!(c.index(100), 0);
        assert_eq!(c.index(500), 4);
        assert_eq!(c.index(1000), 9);
        assert_eq!(c.index(200), 1);
    }

    #[test]
    fn assembler_merges_and_refuses_same_step_duplicates() {
        let l = Labels::from_pairs([("a", "1")]);
        let mut asm = Assembler::new();
        let s = asm.slot(&l);
        asm.push(s, 2, 2.0).unwrap();
        // The same labels again (e.g. from another input series) merge in time order.
        let again = asm.slot(&l);
        assert_eq!(again, s);
        asm.push(again, 1, 1.0).unwrap();
        let out = asm.finish().unwrap();
        assert_eq!(
            (out[0].ts.clone(), out[0].vs.clone()),
            (vec![1, 2], vec![1.0, 2.0])
        );

        let mut asm = Assembler::new();
        let s = asm.slot(&l);
        asm.push(s, 2, 2.0).unwrap();
        asm.push(s, 1, 1.0).unwrap();
        asm.push(s, 2, 3.0).unwrap();
        assert_eq!(asm.finish().unwrap_err().message, DUPLICATE_LABELSET);
    }
}
