//! Binary operators: arithmetic, comparison (with `bool`) and set operators between
//! scalars and instant vectors, with `on`/`ignoring` and `group_left`/`group_right`.
//!
//! Vector-to-vector matching runs step by step, because which series match (and
//! whether matching is many-to-many, an error) can change from one step to the next.
//! Matching signatures and result label sets are computed once per series or pair,
//! never per step.

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use rustc_hash::FxHashMap;

use super::{Assembler, Evaluator, Grid, StepCursor, StepWalker, VSeries, Val};
use crate::error::{QueryError, Result};
use crate::labels::{Labels, METRIC_NAME};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    fn parse(s: &str) -> Option<BinOp> {
        Some(match s {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Mod,
            "^" => BinOp::Pow,
            "atan2" => BinOp::Atan2,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            ">" => BinOp::Gt,
            "<" => BinOp::Lt,
            ">=" => BinOp::Ge,
            "<=" => BinOp::Le,
            "and" => BinOp::And,
            "or" => BinOp::Or,
            "unless" => BinOp::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Whether the result loses `__name__` (Prometheus 2.42 keeps it for atan2).
    fn drops_name(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Mod
        )
    }
}

/// The value and whether to keep the element, as Prometheus' `vectorElemBinop`:
/// comparisons keep the left value when true.
pub(crate) fn elem_binop(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

fn btos(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// How two vectors' series are paired.
struct Matching {
    card: VectorMatchCardinality,
    on: bool,
    names: Vec<String>,
    return_bool: bool,
}

impl Matching {
    /// The labels two series must share to match.
    fn signature(&self, l: &Labels) -> Labels {
        if self.on {
            l.keep(&self.names)
        } else {
            let mut drop = self.names.clone();
            drop.push(METRIC_NAME.to_string());
            l.drop_names(&drop)
        }
    }

    fn include(&self) -> &[String] {
        match &self.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                &l.labels
            }
            _ => &[],
        }
    }

    /// The labels of a result, as Prometheus' `resultMetric`.
    fn result_labels(&self, op: BinOp, many: &Labels, one: &Labels) -> Labels {
        let mut l = if op.drops_name() {
            many.without_metric_name()
        } else {
            many.clone()
        };
        if matches!(self.card, VectorMatchCardinality::OneToOne) {
            l = if self.on {
                l.keep(&self.names)
            } else {
                l.drop_names(&self.names)
            };
        }
        for name in self.include() {
            l = l.with(name, one.get_or_empty(name));
        }
        if self.return_bool {
            l = l.without_metric_name();
        }
        l
    }
}

/// Interns signatures so per-step matching indexes arrays instead of hashing labels.
struct Signatures {
    ids: FxHashMap<Labels, u32>,
    labels: Vec<Labels>,
}

impl Signatures {
    fn id(&mut self, sig: Labels) -> u32 {
        if let Some(&id) = self.ids.get(&sig) {
            return id;
        }
        let id = self.labels.len() as u32;
        self.ids.insert(sig.clone(), id);
        self.labels.push(sig);
        id
    }
}

impl Evaluator<'_> {
    pub(crate) fn eval_binary(&mut self, b: &BinaryExpr, g: Grid) -> Result<Val> {
        let op_name = b.op.to_string();
        let op = BinOp::parse(&op_name).ok_or_else(|| {
            QueryError::bad_data(format!("operator {op_name:?} is not supported"))
        })?;
        let modifier = b.modifier.clone().unwrap_or_default();
        let (on, names) = match &modifier.matching {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        let matching = Matching {
            card: modifier.card.clone(),
            on,
            names,
            return_bool: modifier.return_bool,
        };
        use promql_parser::parser::value::ValueType as T;
        match (b.lhs.value_type(), b.rhs.value_type()) {
            (T::Scalar, T::Scalar) => {
                let l = self.eval_scalar(&b.lhs, g)?;
                let r = self.eval_scalar(&b.rhs, g)?;
                let out = l
                    .iter()
                    .zip(&r)
                    .map(|(&l, &r)| {
                        let (v, keep) = elem_binop(op, l, r);
                        if op.is_comparison() {
                            btos(keep)
                        } else {
                            v
                        }
                    })
                    .collect();
                Ok(Val::Scalar(out))
            }
            (T::Vector, T::Scalar) => {
                let l = self.eval_vector(&b.lhs, g)?;
                let r = self.eval_scalar(&b.rhs, g)?;
                Ok(Val::Vector(vector_scalar(op, l, &r, false, matching.return_bool, g)?))
            }
            (T::Scalar, T::Vector) => {
                let l = self.eval_scalar(&b.lhs, g)?;
                let r = self.eval_vector(&b.rhs, g)?;
                Ok(Val::Vector(vector_scalar(op, r, &l, true, matching.return_bool, g)?))
            }
            (T::Vector, T::Vector) => {
                let l = self.eval_vector(&b.lhs, g)?;
                let r = self.eval_vector(&b.rhs, g)?;
                let out = if op.is_set() {
                    set_op(op, &l, &r, &matching, g)?
                } else {
                    vector_binop(op, &l, &r, &matching, g)?
                };
                self.account(out.iter().map(|s| s.ts.len()).sum())?;
                Ok(Val::Vector(out))
            }
            (lt, rt) => Err(QueryError::bad_data(format!(
                "binary expression must contain only scalar and instant vector types, got {lt} and {rt}"
            ))),
        }
    }
}

fn vector_scalar(
    op: BinOp,
    vector: Vec<VSeries>,
    scalar: &[f64],
    scalar_left: bool,
    return_bool: bool,
    g: Grid,
) -> Result<Vec<VSeries>> {
    let mut asm = Assembler::new();
    for s in vector {
        let labels = if op.drops_name() || return_bool {
            s.labels.without_metric_name()
        } else {
            s.labels
        };
        let slot = asm.slot(&labels);
        let mut cursor = StepCursor::new(g);
        for (&t, &v) in s.ts.iter().zip(&s.vs) {
            let sv = scalar[cursor.index(t)];
            let (l, r) = if scalar_left { (sv, v) } else { (v, sv) };
            let (mut value, mut keep) = elem_binop(op, l, r);
            // A comparison filters the vector's elements and keeps their values, even
            // when the scalar stands on the left.
            if op.is_comparison() && scalar_left {
                value = r;
            }
            if return_bool {
                value = btos(keep);
                keep = true;
            }
            if keep {
                asm.push(slot, t, value)?;
            }
        }
    }
    asm.finish()
}

fn set_op(
    op: BinOp,
    lhs: &[VSeries],
    rhs: &[VSeries],
    m: &Matching,
    g: Grid,
) -> Result<Vec<VSeries>> {
    let mut sigs = Signatures {
        ids: FxHashMap::default(),
        labels: Vec::new(),
    };
    let lsig: Vec<u32> = lhs
        .iter()
        .map(|s| sigs.id(m.signature(&s.labels)))
        .collect();
    let rsig: Vec<u32> = rhs
        .iter()
        .map(|s| sigs.id(m.signature(&s.labels)))
        .collect();
    let mut stamp = vec![usize::MAX; sigs.labels.len()];
    let mut asm = Assembler::new();
    let mut lslot: Vec<Option<usize>> = vec![None; lhs.len()];
    let mut rslot: Vec<Option<usize>> = vec![None; rhs.len()];
    let mut wl = StepWalker::new(lhs);
    let mut wr = StepWalker::new(rhs);
    let push = |asm: &mut Assembler,
                slots: &mut Vec<Option<usize>>,
                series: &[VSeries],
                i: u32,
                t: i64,
                v: f64|
     -> Result<()> {
        let slot = match slots[i as usize] {
            Some(s) => s,
            None => {
                let s = asm.slot(&series[i as usize].labels);
                slots[i as usize] = Some(s);
                s
            }
        };
        asm.push(slot, t, v)
    };
    for (step, t) in g.iter().enumerate() {
        wl.step(t);
        wr.step(t);
        let (lb, rb) = (&wl.buf, &wr.buf);
        match op {
            BinOp::And => {
                if lb.is_empty() || rb.is_empty() {
                    continue;
                }
                for &(i, _) in rb {
                    stamp[rsig[i as usize] as usize] = step;
                }
                for &(i, v) in lb {
                    if stamp[lsig[i as usize] as usize] == step {
                        push(&mut asm, &mut lslot, lhs, i, t, v)?;
                    }
                }
            }
            BinOp::Or => {
                for &(i, v) in lb {
                    stamp[lsig[i as usize] as usize] = step;
                    push(&mut asm, &mut lslot, lhs, i, t, v)?;
                }
                for &(i, v) in rb {
                    if lb.is_empty() || stamp[rsig[i as usize] as usize] != step {
                        push(&mut asm, &mut rslot, rhs, i, t, v)?;
                    }
                }
            }
            BinOp::Unless => {
                if !lb.is_empty() && !rb.is_empty() {
                    for &(i, _) in rb {
                        stamp[rsig[i as usize] as usize] = step;
                    }
                }
                for &(i, v) in lb {
                    if rb.is_empty() || stamp[lsig[i as usize] as usize] != step {
                        push(&mut asm, &mut lslot, lhs, i, t, v)?;
                    }
                }
            }
            _ => unreachable!("not a set operator"),
        }
    }
    asm.finish()
}

fn vector_binop(
    op: BinOp,
    lhs: &[VSeries],
    rhs: &[VSeries],
    m: &Matching,
    g: Grid,
) -> Result<Vec<VSeries>> {
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    // The "many" side is the left one unless group_right swapped them.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut sigs = Signatures {
        ids: FxHashMap::default(),
        labels: Vec::new(),
    };
    let many_sig: Vec<u32> = many
        .iter()
        .map(|s| sigs.id(m.signature(&s.labels)))
        .collect();
    let one_sig: Vec<u32> = one
        .iter()
        .map(|s| sigs.id(m.signature(&s.labels)))
        .collect();
    let nsig = sigs.labels.len();
    let mut one_stamp = vec![usize::MAX; nsig];
    let mut one_val = vec![(0u32, 0.0f64); nsig];
    let mut matched_stamp = vec![usize::MAX; nsig];
    let mut out_stamp: Vec<(usize, u32)> = Vec::new();
    let mut pair_slot: FxHashMap<(u32, u32), usize> = FxHashMap::default();
    let mut asm = Assembler::new();
    let mut wm = StepWalker::new(many);
    let mut wo = StepWalker::new(one);
    for (step, t) in g.iter().enumerate() {
        wm.step(t);
        wo.step(t);
        if wm.buf.is_empty() || wo.buf.is_empty() {
            continue;
        }
        for &(oi, ov) in &wo.buf {
            let sig = one_sig[oi as usize] as usize;
            if one_stamp[sig] == step {
                let prev = &one[one_val[sig].0 as usize].labels;
                return Err(QueryError::execution(format!(
                    "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    sigs.labels[sig],
                    if one_to_many { "left" } else { "right" },
                    one[oi as usize].labels,
                    prev
                )));
            }
            one_stamp[sig] = step;
            one_val[sig] = (oi, ov);
        }
        for &(mi, mv) in &wm.buf {
            let sig = many_sig[mi as usize] as usize;
            if one_stamp[sig] != step {
                continue;
            }
            let (oi, ov) = one_val[sig];
            let (vl, vr) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let (mut value, keep) = elem_binop(op, vl, vr);
            if m.return_bool {
                value = btos(keep);
            } else if !keep {
                continue;
            }
            let slot = match pair_slot.get(&(mi, oi)) {
                Some(&s) => s,
                None => {
                    let labels =
                        m.result_labels(op, &many[mi as usize].labels, &one[oi as usize].labels);
                    let s = asm.slot(&labels);
                    pair_slot.insert((mi, oi), s);
                    s
                }
            };
            if one_to_one {
                if matched_stamp[sig] == step {
                    return Err(QueryError::execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                matched_stamp[sig] = step;
            } else {
                if out_stamp.len() <= slot {
                    out_stamp.resize(slot + 1, (usize::MAX, 0));
                }
                if out_stamp[slot] == (step, sig as u32) {
                    return Err(QueryError::execution(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    ));
                }
                out_stamp[slot] = (step, sig as u32);
            }
            asm.push(slot, t, value)?;
        }
    }
    asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pairs: &[(&str, &str)], points: &[(i64, f64)]) -> VSeries {
        VSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            ts: points.iter().map(|p| p.0).collect(),
            vs: points.iter().map(|p| p.1).collect(),
        }
    }

    fn grid() -> Grid {
        Grid {
            start: 0,
            end: 60_000,
            interval: 60_000,
        }
    }

    fn one_to_one() -> Matching {
        Matching {
            card: VectorMatchCardinality::OneToOne,
            on: false,
            names: vec![],
            return_bool: false,
        }
    }

    #[test]
    fn many_to_many_is_an_error_naming_the_series() {
        let l = vec![series(&[("__name__", "a"), ("x", "1")], &[(0, 1.0)])];
        let r = vec![
            series(&[("__name__", "b"), ("x", "1"), ("y", "1")], &[(0, 1.0)]),
            series(&[("__name__", "b"), ("x", "1"), ("y", "2")], &[(0, 2.0)]),
        ];
        let m = Matching {
            card: VectorMatchCardinality::OneToOne,
            on: true,
            names: vec!["x".into()],
            return_bool: false,
        };
        let err = vector_binop(BinOp::Add, &l, &r, &m, grid()).unwrap_err();
        assert_eq!(err.error_type(), "execution");
        assert!(
            err.message.contains("many-to-many matching not allowed"),
            "{}",
            err.message
        );
        assert!(err.message.contains(r#"{x="1"}"#), "{}", err.message);
    }

    #[test]
    fn one_to_one_needs_group_left_for_many_matches() {
        let l = vec![
            series(&[("x", "1"), ("y", "1")], &[(0, 1.0)]),
            series(&[("x", "1"), ("y", "2")], &[(0, 2.0)]),
        ];
        let r = vec![series(&[("x", "1")], &[(0, 10.0)])];
        let m = Matching {
            card: VectorMatchCardinality::OneToOne,
            on: true,
            names: vec!["x".into()],
            return_bool: false,
        };
        let err = vector_binop(BinOp::Mul, &l, &r, &m, grid()).unwrap_err();
        assert!(
            err.message.contains("group_left/group_right"),
            "{}",
            err.message
        );

        let m = Matching {
            card: VectorMatchCardinality::ManyToOne(promql_parser::label::Labels::new(vec![])),
            on: true,
            names: vec!["x".into()],
            return_bool: false,
        };
        let out = vector_binop(BinOp::Mul, &l, &r, &m, grid()).unwrap();
        let vals: Vec<f64> = out.iter().map(|s| s.vs[0]).collect();
        assert_eq!(vals, [10.0, 20.0]);
        assert_eq!(out[0].labels.to_string(), r#"{x="1", y="1"}"#);
    }

    #[test]
    fn matching_ignores_the_name_and_drops_it_for_arithmetic() {
        let l = vec![series(
            &[("__name__", "a"), ("x", "1")],
            &[(0, 3.0), (60_000, 4.0)],
        )];
        let r = vec![series(&[("__name__", "b"), ("x", "1")], &[(60_000, 2.0)])];
        let out = vector_binop(BinOp::Sub, &l, &r, &one_to_one(), grid()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels.to_string(), r#"{x="1"}"#);
        assert_eq!(
            (out[0].ts.clone(), out[0].vs.clone()),
            (vec![60_000], vec![2.0])
        );
        // Comparisons filter and keep the left name; with bool they give 0/1 unnamed.
        let out = vector_binop(BinOp::Gt, &l, &r, &one_to_one(), grid()).unwrap();
        assert_eq!(out[0].labels.metric_name(), Some("a"));
        let mut m = one_to_one();
        m.return_bool = true;
        let out = vector_binop(BinOp::Lt, &l, &r, &m, grid()).unwrap();
        assert_eq!((out[0].labels.metric_name(), out[0].vs[0]), (None, 0.0));
    }

    #[test]
    fn scalar_on_the_left_of_a_comparison_keeps_vector_values() {
        let v = vec![series(&[("__name__", "a")], &[(0, 5.0), (60_000, 1.0)])];
        let out = vector_scalar(BinOp::Lt, v, &[3.0, 3.0], true, false, grid()).unwrap();
        assert_eq!((out[0].ts.clone(), out[0].vs.clone()), (vec![0], vec![5.0]));
    }

    #[test]
    fn dropping_names_can_collide() {
        let v = vec![
            series(&[("__name__", "a"), ("x", "1")], &[(0, 1.0)]),
            series(&[("__name__", "b"), ("x", "1")], &[(0, 2.0)]),
        ];
        let err = vector_scalar(BinOp::Add, v, &[1.0, 1.0], false, false, grid()).unwrap_err();
        assert_eq!(err.message, crate::eval::DUPLICATE_LABELSET);
        // At different steps the two become one series.
        let v = vec![
            series(&[("__name__", "a"), ("x", "1")], &[(60_000, 1.0)]),
            series(&[("__name__", "b"), ("x", "1")], &[(0, 2.0)]),
        ];
        let out = vector_scalar(BinOp::Add, v, &[1.0, 1.0], false, false, grid()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ts, vec![0, 60_000]);
        assert_eq!(out[0].vs, vec![3.0, 2.0]);
    }

    #[test]
    fn set_operators() {
        let l = vec![
            series(&[("__name__", "a"), ("x", "1")], &[(0, 1.0)]),
            series(&[("__name__", "a"), ("x", "2")], &[(0, 2.0)]),
        ];
        let r = vec![series(
            &[("__name__", "b"), ("x", "2")],
            &[(0, 9.0), (60_000, 9.0)],
        )];
        let m = Matching {
            card: VectorMatchCardinality::ManyToMany,
            on: false,
            names: vec![],
            return_bool: false,
        };
        let and = set_op(BinOp::And, &l, &r, &m, grid()).unwrap();
        assert_eq!(and.len(), 1);
        assert_eq!(and[0].labels.get("x"), Some("2"));
        let unless = set_op(BinOp::Unless, &l, &r, &m, grid()).unwrap();
        assert_eq!(unless.len(), 1);
        assert_eq!(unless[0].labels.get("x"), Some("1"));
        let or = set_op(BinOp::Or, &l, &r, &m, grid()).unwrap();
        let shown: Vec<(String, Vec<i64>)> = or
            .iter()
            .map(|s| (s.labels.to_string(), s.ts.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (r#"{__name__="a", x="1"}"#.to_string(), vec![0]),
                (r#"{__name__="a", x="2"}"#.to_string(), vec![0]),
                (r#"{__name__="b", x="2"}"#.to_string(), vec![60_000]),
            ]
        );
    }
}
