//! Aggregations. sum/avg/min/max/count/group/stddev/stdvar run series by series into
//! per-step accumulators of one group at a time: each step sees its samples in the same
//! order as Prometheus' per-step loop, so the float results are bit-identical. topk,
//! bottomk, quantile and count_values need a step's whole vector and run step by step.

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};

use super::functions::{quantile, RangeFn, RangeSource};
use super::{
    unwrap_parens, Assembler, Evaluator, Grid, SelectorSource, StepCursor, StepWalker, VSeries, Val,
};
use crate::error::{QueryError, Result};
use crate::labels::{is_valid_label_name, Labels, METRIC_NAME};
use crate::value::format_value;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

impl Op {
    fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "sum" => Op::Sum,
            "avg" => Op::Avg,
            "min" => Op::Min,
            "max" => Op::Max,
            "count" => Op::Count,
            "group" => Op::Group,
            "stddev" => Op::Stddev,
            "stdvar" => Op::Stdvar,
            "topk" => Op::Topk,
            "bottomk" => Op::Bottomk,
            "quantile" => Op::Quantile,
            "count_values" => Op::CountValues,
            _ => return None,
        })
    }
}

/// A binary heap that moves elements exactly like Go's `container/heap`, so topk and
/// bottomk pick the same series among equal values as Prometheus.
struct GoHeap {
    items: Vec<(u32, f64)>,
    /// bottomk keeps the largest value on top.
    reverse: bool,
}

impl GoHeap {
    fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.items[i].1, self.items[j].1);
        if a.is_nan() {
            return true;
        }
        if self.reverse {
            a > b
        } else {
            a < b
        }
    }

    fn up(&mut self, mut j: usize) {
        loop {
            let i = (j as isize - 1) / 2;
            let i = i as usize;
            if i == j || !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize, n: usize) {
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.less(j2, j1) {
                j = j2;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }

    fn push(&mut self, x: (u32, f64)) {
        self.items.push(x);
        let last = self.items.len() - 1;
        self.up(last);
    }

    fn pop(&mut self) {
        let n = self.items.len() - 1;
        self.items.swap(0, n);
        self.down(0, n);
        self.items.pop();
    }

    /// Adds a sample as Prometheus' topk/bottomk loop does.
    fn offer(&mut self, k: usize, x: (u32, f64)) {
        let top = self.items[0].1;
        let better = if self.reverse { top > x.1 } else { top < x.1 };
        if self.items.len() < k || better || top.is_nan() {
            if self.items.len() == k {
                if k == 1 {
                    self.items[0] = x;
                    return;
                }
                self.pop();
            }
            self.push(x);
        }
    }
}

/// Puts series into `by`/`without` groups. A group's key is hashed straight from the
/// series' labels and compared with a member's; only a new group allocates its labels.
struct Grouper<'a> {
    grouping: &'a [String],
    without: bool,
}

impl<'a> Grouper<'a> {
    fn new(grouping: &'a [String], without: bool) -> Self {
        Grouper { grouping, without }
    }

    /// Whether label `name` is part of the group key.
    fn in_key(&self, name: &str) -> bool {
        let listed = self.grouping.iter().any(|g| g == name);
        if self.without {
            !listed && name != METRIC_NAME
        } else {
            listed
        }
    }

    fn key<'l>(&'a self, l: &'l Labels) -> impl Iterator<Item = (&'l str, &'l str)> + 'a
    where
        'l: 'a,
    {
        l.iter().filter(move |(n, _)| self.in_key(n))
    }

    /// The labels a group's result carries.
    fn labels(&self, l: &Labels) -> Labels {
        Labels::from_pairs(self.key(l))
    }

    /// Each series' group index (groups numbered by first appearance), and each
    /// group's labels.
    fn assign<'l>(&self, series: impl Iterator<Item = &'l Labels>) -> (Vec<u32>, Vec<Labels>) {
        let mut by_hash: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        let mut first: Vec<&'l Labels> = Vec::new();
        let mut names = Vec::new();
        let mut out = Vec::new();
        for l in series {
            let mut h = FxHasher::default();
            for (n, v) in self.key(l) {
                n.hash(&mut h);
                v.hash(&mut h);
            }
            let candidates = by_hash.entry(h.finish()).or_default();
            let found = candidates
                .iter()
                .copied()
                .find(|&gi| self.key(first[gi as usize]).eq(self.key(l)));
            let gi = match found {
                Some(gi) => gi,
                None => {
                    let gi = first.len() as u32;
                    candidates.push(gi);
                    first.push(l);
                    names.push(self.labels(l));
                    gi
                }
            };
            out.push(gi);
        }
        (out, names)
    }
}

/// Per-step accumulator arrays for one group at a time.
struct Acc {
    present: Vec<bool>,
    value: Vec<f64>,
    mean: Vec<f64>,
    count: Vec<f64>,
}

impl Evaluator<'_> {
    pub(crate) fn eval_aggregate(&mut self, a: &AggregateExpr, g: Grid) -> Result<Val> {
        let name = a.op.to_string();
        let op = Op::from_name(&name).ok_or_else(|| {
            QueryError::bad_data(format!(
                "aggregation {name:?} is not supported by this engine"
            ))
        })?;
        let (without, mut grouping) = match &a.modifier {
            None => (false, Vec::new()),
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        };
        grouping.sort();
        let param_scalar = match (op, &a.param) {
            (Op::Topk | Op::Bottomk | Op::Quantile, Some(p)) => Some(self.eval_scalar(p, g)?),
            _ => None,
        };
        let param_string = match (op, &a.param) {
            (Op::CountValues, Some(p)) => match unwrap_parens(p) {
                Expr::StringLiteral(s) => Some(s.val.clone()),
                other => {
                    return Err(QueryError::bad_data(format!(
                        "count_values needs a string literal label name, got {other}"
                    )))
                }
            },
            _ => None,
        };
        let grouper = Grouper::new(&grouping, without);
        let out = match op {
            Op::Topk | Op::Bottomk | Op::Quantile => {
                // A range function's results keep their input labels until output: the
                // group key ignores `__name__` anyway (unless `by` names it), and only
                // the few series topk picks need it dropped.
                let keeps_name = !without && grouping.iter().any(|g| g == METRIC_NAME);
                let (input, drop_name) = match unwrap_parens(&a.expr) {
                    Expr::Call(c) if !keeps_name => self.eval_range_fn_keep_names(c, g)?,
                    _ => (self.eval_vector(&a.expr, g)?, false),
                };
                let param = param_scalar.as_deref().unwrap_or(&[]);
                self.aggregate_by_step(op, &input, drop_name, g, &grouper, param)?
            }
            Op::CountValues => {
                let input = self.eval_vector(&a.expr, g)?;
                let label = param_string.unwrap_or_default();
                self.count_values(&input, g, &label, without, &grouping)?
            }
            _ => {
                let keeps_name = !without && grouping.iter().any(|g| g == METRIC_NAME);
                let src = self.source(&a.expr, g, keeps_name)?;
                self.aggregate_by_series(op, &src, g, &grouper)?
            }
        };
        Ok(Val::Vector(out))
    }

    /// An aggregation's input: a selector or range function computed one series at a
    /// time as the aggregation consumes it, or else the evaluated vector.
    /// `keeps_name`: whether the grouping looks at `__name__`; if not, a range
    /// function's results are grouped by their input labels, sparing a label set each.
    fn source(&mut self, e: &Expr, g: Grid, keeps_name: bool) -> Result<Source> {
        match unwrap_parens(e) {
            Expr::VectorSelector(vs) => Ok(Source::Selector(self.selector_source(vs, g, false)?)),
            Expr::Call(c) => {
                let args: Vec<&Expr> = c.args.args.iter().map(|a| &**a).collect();
                if let Some(f) = RangeFn::from_name(c.func.name).filter(|f| *f != RangeFn::Absent) {
                    let src = self.range_source(f, c.func.name, &args, g)?;
                    // Rare: results could repeat labels, which Prometheus refuses before
                    // aggregating; the full evaluation checks that.
                    if !src.may_collide() {
                        let labels = keeps_name
                            .then(|| (0..src.input.series.len()).map(|i| src.labels(i)).collect());
                        return Ok(Source::Range(src, labels));
                    }
                }
                Ok(Source::Done(self.eval_vector(e, g)?))
            }
            other => Ok(Source::Done(self.eval_vector(other, g)?)),
        }
    }

    fn aggregate_by_series(
        &mut self,
        op: Op,
        src: &Source,
        g: Grid,
        grouper: &Grouper,
    ) -> Result<Vec<VSeries>> {
        let (group_of, names) = grouper.assign((0..src.len()).map(|i| src.labels(i)));
        let mut groups: Vec<(Labels, Vec<usize>)> =
            names.into_iter().map(|l| (l, Vec::new())).collect();
        for (i, gi) in group_of.into_iter().enumerate() {
            groups[gi as usize].1.push(i);
        }
        let n = g.len();
        let mut acc = Acc {
            present: vec![false; n],
            value: vec![0.0; n],
            mean: vec![0.0; n],
            count: vec![0.0; n],
        };
        let mut out = Vec::with_capacity(groups.len());
        let mut total = 0;
        let mut buf = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (labels, members) in groups {
            acc.present.fill(false);
            for &m in &members {
                if m % 64 == 63 {
                    self.check_deadline()?;
                }
                let (ts, vs) = src.points(m, g, &mut buf)?;
                total += ts.len();
                let mut cursor = StepCursor::new(g);
                for (&t, &v) in ts.iter().zip(vs) {
                    let i = cursor.index(t);
                    if !acc.present[i] {
                        acc.present[i] = true;
                        acc.value[i] = match op {
                            Op::Stddev | Op::Stdvar => 0.0,
                            Op::Group => 1.0,
                            _ => v,
                        };
                        acc.mean[i] = v;
                        acc.count[i] = 1.0;
                        continue;
                    }
                    match op {
                        Op::Sum => acc.value[i] += v,
                        Op::Avg => {
                            acc.count[i] += 1.0;
                            let mean = acc.mean[i];
                            if mean.is_infinite() {
                                // Inf - Inf would turn a correct infinite mean into NaN.
                                if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                                    continue;
                                }
                                if !v.is_infinite() && !v.is_nan() {
                                    continue;
                                }
                            }
                            let c = acc.count[i];
                            acc.mean[i] += v / c - mean / c;
                        }
                        Op::Group => {}
                        Op::Max => {
                            if acc.value[i] < v || acc.value[i].is_nan() {
                                acc.value[i] = v;
                            }
                        }
                        Op::Min => {
                            if acc.value[i] > v || acc.value[i].is_nan() {
                                acc.value[i] = v;
                            }
                        }
                        Op::Count => acc.count[i] += 1.0,
                        Op::Stddev | Op::Stdvar => {
                            acc.count[i] += 1.0;
                            let delta = v - acc.mean[i];
                            acc.mean[i] += delta / acc.count[i];
                            acc.value[i] += delta * (v - acc.mean[i]);
                        }
                        _ => unreachable!("step-wise aggregations are handled elsewhere"),
                    }
                }
            }
            let mut ts = Vec::new();
            let mut vs = Vec::new();
            for i in 0..n {
                if !acc.present[i] {
                    continue;
                }
                ts.push(g.ts(i));
                vs.push(match op {
                    Op::Avg => acc.mean[i],
                    Op::Count => acc.count[i],
                    Op::Stdvar => acc.value[i] / acc.count[i],
                    Op::Stddev => (acc.value[i] / acc.count[i]).sqrt(),
                    _ => acc.value[i],
                });
            }
            // Selected series can lack samples in the range; so can a whole group.
            if !ts.is_empty() {
                total += ts.len();
                out.push(VSeries { labels, ts, vs });
            }
        }
        self.account(total)?;
        Ok(out)
    }

    fn aggregate_by_step(
        &mut self,
        op: Op,
        input: &[VSeries],
        drop_name: bool,
        g: Grid,
        grouper: &Grouper,
        param: &[f64],
    ) -> Result<Vec<VSeries>> {
        let (group_of, group_names) = grouper.assign(input.iter().map(|s| &s.labels));
        let mut asm = Assembler::new();
        let mut series_slot: Vec<Option<usize>> = vec![None; input.len()];
        let mut group_slot: Vec<Option<usize>> = vec![None; group_names.len()];
        let mut walker = StepWalker::new(input);
        // Per step: groups in order of first appearance, each with its samples.
        let mut stamp: Vec<usize> = vec![usize::MAX; group_names.len()];
        let mut pos: Vec<usize> = vec![0; group_names.len()];
        let mut ordered: Vec<(u32, Vec<(u32, f64)>)> = Vec::new();
        for (step, ts) in g.iter().enumerate() {
            if step % 256 == 255 {
                self.check_deadline()?;
            }
            walker.step(ts);
            let k = if matches!(op, Op::Topk | Op::Bottomk) {
                let f = param[step];
                // Go converts to int64 only within its range; NaN is outside too.
                // 2^63 - 1024: the largest float below i64::MAX (Prometheus' maxInt64).
                let (min, max) = (i64::MIN as f64, 9_223_372_036_854_774_784_i64 as f64);
                if !(min..=max).contains(&f) {
                    return Err(QueryError::execution(format!(
                        "Scalar value {} overflows int64",
                        format_value(f)
                    )));
                }
                let k = f as i64;
                if k < 1 {
                    continue;
                }
                k as usize
            } else {
                0
            };
            let mut used = 0;
            for &(si, v) in &walker.buf {
                let gi = group_of[si as usize] as usize;
                if stamp[gi] != step {
                    stamp[gi] = step;
                    pos[gi] = used;
                    if used == ordered.len() {
                        ordered.push((gi as u32, Vec::new()));
                    } else {
                        ordered[used].0 = gi as u32;
                        ordered[used].1.clear();
                    }
                    used += 1;
                }
                ordered[pos[gi]].1.push((si, v));
            }
            for (gi, members) in ordered.iter().take(used) {
                match op {
                    Op::Topk | Op::Bottomk => {
                        let mut heap = GoHeap {
                            items: Vec::with_capacity(k.min(members.len())),
                            reverse: op == Op::Bottomk,
                        };
                        heap.items.push(members[0]);
                        for &m in &members[1..] {
                            heap.offer(k, m);
                        }
                        // Output order as Prometheus: best first, NaN last.
                        let mut items = heap.items;
                        items.sort_by(|a, b| {
                            let (x, y) = (a.1, b.1);
                            match (x.is_nan(), y.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if op == Op::Topk => y.partial_cmp(&x).unwrap(),
                                _ => x.partial_cmp(&y).unwrap(),
                            }
                        });
                        for (si, v) in items {
                            let slot = match series_slot[si as usize] {
                                Some(s) => s,
                                None => {
                                    let l = &input[si as usize].labels;
                                    let s = if drop_name {
                                        asm.slot(&l.without_metric_name())
                                    } else {
                                        asm.slot(l)
                                    };
                                    series_slot[si as usize] = Some(s);
                                    s
                                }
                            };
                            asm.push(slot, ts, v)?;
                        }
                    }
                    Op::Quantile => {
                        let mut values: Vec<f64> = members.iter().map(|m| m.1).collect();
                        let v = quantile(param[step], &mut values);
                        let slot = match group_slot[*gi as usize] {
                            Some(s) => s,
                            None => {
                                let s = asm.slot(&group_names[*gi as usize]);
                                group_slot[*gi as usize] = Some(s);
                                s
                            }
                        };
                        asm.push(slot, ts, v)?;
                    }
                    _ => unreachable!("series-wise aggregations are handled elsewhere"),
                }
            }
        }
        let out = asm.finish()?;
        self.account(out.iter().map(|s| s.ts.len()).sum())?;
        Ok(out)
    }

    fn count_values(
        &mut self,
        input: &[VSeries],
        g: Grid,
        label: &str,
        without: bool,
        grouping: &[String],
    ) -> Result<Vec<VSeries>> {
        if g.len() == 0 {
            return Ok(Vec::new());
        }
        if !is_valid_label_name(label) {
            return Err(QueryError::execution(format!(
                "invalid label name {label:?}"
            )));
        }
        let mut by = grouping.to_vec();
        by.push(label.to_string());
        let mut drop = grouping.to_vec();
        drop.push(METRIC_NAME.to_string());
        let mut asm = Assembler::new();
        let mut walker = StepWalker::new(input);
        for ts in g.iter() {
            walker.step(ts);
            let mut counts: Vec<(usize, f64)> = Vec::new();
            let mut pos: FxHashMap<usize, usize> = FxHashMap::default();
            for &(si, v) in &walker.buf {
                let with_value = input[si as usize].labels.with(label, &format_value(v));
                let key = if without {
                    with_value.drop_names(&drop)
                } else {
                    with_value.keep(&by)
                };
                let slot = asm.slot(&key);
                match pos.get(&slot) {
                    Some(&p) => counts[p].1 += 1.0,
                    None => {
                        pos.insert(slot, counts.len());
                        counts.push((slot, 1.0));
                    }
                }
            }
            for (slot, c) in counts {
                asm.push(slot, ts, c)?;
            }
        }
        let out = asm.finish()?;
        self.account(out.iter().map(|s| s.ts.len()).sum())?;
        Ok(out)
    }
}

/// The input of a series-wise aggregation.
enum Source {
    Selector(SelectorSource),
    /// With each series' result labels, or `None` to group by the input labels.
    Range(RangeSource, Option<Vec<Labels>>),
    Done(Vec<VSeries>),
}

impl Source {
    fn len(&self) -> usize {
        match self {
            Source::Selector(s) => s.series.len(),
            Source::Range(r, _) => r.input.series.len(),
            Source::Done(v) => v.len(),
        }
    }

    fn labels(&self, i: usize) -> &Labels {
        match self {
            Source::Selector(s) => &s.series[i].labels,
            Source::Range(_, Some(labels)) => &labels[i],
            Source::Range(r, None) => &r.input.series[i].labels,
            Source::Done(v) => &v[i].labels,
        }
    }

    /// Series `i`'s points, computed into `buf` unless already at hand.
    fn points<'a>(
        &'a self,
        i: usize,
        g: Grid,
        buf: &'a mut (Vec<i64>, Vec<f64>),
    ) -> Result<(&'a [i64], &'a [f64])> {
        match self {
            Source::Selector(s) => s.points(i, g, &mut buf.0, &mut buf.1),
            Source::Range(r, _) => r.points(i, g, &mut buf.0, &mut buf.1)?,
            Source::Done(v) => return Ok((&v[i].ts, &v[i].vs)),
        }
        Ok((&buf.0, &buf.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_heap_keeps_the_k_largest() {
        let mut h = GoHeap {
            items: vec![(0, 5.0)],
            reverse: false,
        };
        for (i, v) in [1.0, 9.0, 3.0, 7.0, f64::NAN, 8.0].into_iter().enumerate() {
            h.offer(3, (i as u32 + 1, v));
        }
        let mut vals: Vec<f64> = h.items.iter().map(|x| x.1).collect();
        vals.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(vals, [7.0, 8.0, 9.0]);
    }

    #[test]
    fn go_heap_bottomk_keeps_the_k_smallest() {
        let mut h = GoHeap {
            items: vec![(0, 5.0)],
            reverse: true,
        };
        for (i, v) in [1.0, 9.0, 3.0, 7.0].into_iter().enumerate() {
            h.offer(2, (i as u32 + 1, v));
        }
        let mut vals: Vec<f64> = h.items.iter().map(|x| x.1).collect();
        vals.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(vals, [1.0, 3.0]);
    }
}
