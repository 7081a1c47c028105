//! The entry points: parse a query, evaluate it at an instant or over a range of steps.

use crate::error::QueryError;
use crate::eval::{self, Grid, Val};
use crate::labels::Labels;
use crate::options::Options;
use crate::parse;
use crate::querier::Querier;
use crate::range::TimeRange;
use crate::value::{RangeSeries, Sample, Value};

/// Parses a query and checks it against `opts`' size limits (text length, nesting, node
/// count, regex size, durations), as the query functions do before evaluating it: for
/// callers that only format or validate a query.
pub fn parse_query(expr: &str, opts: &Options) -> Result<promql_parser::parser::Expr, QueryError> {
    parse::parse_expr(expr, opts)
}

/// Evaluates `expr` at `time_ms` (checked as [`TimeRange::instant`]). The result is a vector, scalar or string, or a matrix
/// for a range selector or subquery (`metric[5m]`).
pub fn instant_query(
    q: &dyn Querier,
    expr: &str,
    time_ms: i64,
    opts: &Options,
) -> Result<Value, QueryError> {
    TimeRange::instant(time_ms)?;
    let parsed = parse::parse_expr(expr, opts)?;
    let grid = Grid {
        start: time_ms,
        end: time_ms,
        interval: 1,
    };
    Ok(match eval::evaluate(q, opts, &parsed, grid)? {
        Val::Scalar(v) => Value::Scalar {
            t: time_ms,
            v: v[0],
        },
        Val::String(s) => Value::String { t: time_ms, v: s },
        Val::Vector(series) => Value::Vector(
            series
                .into_iter()
                .map(|s| Sample {
                    labels: s.labels,
                    t: time_ms,
                    v: s.vs[0],
                })
                .collect(),
        ),
        Val::Matrix(series) => Value::Matrix(
            series
                .into_iter()
                .map(|s| RangeSeries {
                    labels: s.labels,
                    timestamps: s.ts,
                    values: s.vs,
                })
                .collect(),
        ),
    })
}

/// Evaluates `expr` at `start_ms, start_ms + step_ms, ..., <= end_ms` (checked as
/// [`TimeRange::steps`]: at most 11,000 steps). The expression
/// must give a scalar or an instant vector; the result is a matrix sorted by labels.
pub fn range_query(
    q: &dyn Querier,
    expr: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &Options,
) -> Result<Value, QueryError> {
    TimeRange::steps(start_ms, end_ms, step_ms)?;
    let parsed = parse::parse_expr(expr, opts)?;
    use promql_parser::parser::value::ValueType;
    match parsed.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        _ => {
            return Err(QueryError::bad_data(format!(
                "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                parse::expr_kind(&parsed)
            )))
        }
    }
    let grid = Grid {
        start: start_ms,
        end: end_ms,
        interval: step_ms,
    };
    let mut out: Vec<RangeSeries> = match eval::evaluate(q, opts, &parsed, grid)? {
        Val::Scalar(v) => vec![RangeSeries {
            labels: Labels::empty(),
            timestamps: grid.iter().collect(),
            values: v,
        }],
        Val::Vector(series) => series
            .into_iter()
            .map(|s| RangeSeries {
                labels: s.labels,
                timestamps: s.ts,
                values: s.vs,
            })
            .collect(),
        Val::String(_) | Val::Matrix(_) => {
            return Err(QueryError::bad_data(
                "a range query must evaluate to a scalar or an instant vector",
            ))
        }
    };
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Matrix(out))
}
