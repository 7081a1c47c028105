//! The engine through its public API on small hand-made series: lookback, stale markers,
//! offset/@, subquery alignment, limits and errors. (What a real Prometheus cannot be
//! fed — stale markers — or need not be asked — option limits — is checked here.)

use std::time::Duration;

use skymeter_promql::{
    instant_query, range_query, stale_nan, ErrorKind, Labels, Limit, Matcher, MemoryQuerier,
    Options, Querier, QueryError, SelectBudget, Series, Value,
};

const S: i64 = 1000;
const M: i64 = 60 * S;

fn series(name: &str, extra: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
    let mut labels: Vec<(&str, &str)> = vec![("__name__", name)];
    labels.extend_from_slice(extra);
    Series::new(
        Labels::from_pairs(labels),
        points.iter().map(|p| p.0).collect(),
        points.iter().map(|p| p.1).collect(),
    )
}

/// `(labels, value)` of an instant vector, or `(labels, points)` of a matrix.
fn vector(v: Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(s) => s.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

fn matrix(v: Value) -> Vec<(String, Vec<(i64, f64)>)> {
    match v {
        Value::Matrix(m) => m
            .into_iter()
            .map(|s| {
                let pts = s.timestamps.into_iter().zip(s.values).collect();
                (s.labels.to_string(), pts)
            })
            .collect(),
        other => panic!("expected a matrix, got {other:?}"),
    }
}

fn opts() -> Options {
    Options::default()
}

#[test]
fn lookback_is_closed_at_five_minutes() {
    let q = MemoryQuerier::new(vec![series("up", &[], &[(0, 1.0)])]);
    assert_eq!(
        vector(instant_query(&q, "up", 5 * M, &opts()).unwrap()).len(),
        1
    );
    assert!(vector(instant_query(&q, "up", 5 * M + 1, &opts()).unwrap()).is_empty());
    // Before the sample there is nothing either.
    assert!(vector(instant_query(&q, "up", -1, &opts()).unwrap()).is_empty());
    let short = Options {
        lookback_delta_ms: M,
        ..opts()
    };
    assert!(vector(instant_query(&q, "up", 2 * M, &short).unwrap()).is_empty());
}

#[test]
fn a_stale_marker_ends_the_series() {
    let q = MemoryQuerier::new(vec![series(
        "up",
        &[],
        &[(0, 1.0), (M, 2.0), (2 * M, stale_nan()), (3 * M, 4.0)],
    )]);
    let at = |t| vector(instant_query(&q, "up", t, &opts()).unwrap());
    assert_eq!(at(M + 30 * S), [("{__name__=\"up\"}".to_string(), 2.0)]);
    assert!(
        at(2 * M + 30 * S).is_empty(),
        "the marker hides the earlier sample"
    );
    assert_eq!(at(3 * M)[0].1, 4.0);
    // Range windows skip the marker.
    let c = vector(instant_query(&q, "count_over_time(up[5m])", 3 * M, &opts()).unwrap());
    assert_eq!(c, [("{}".to_string(), 3.0)]);
    // An ordinary NaN is a value like any other.
    let q = MemoryQuerier::new(vec![series("up", &[], &[(0, f64::NAN)])]);
    let v = vector(instant_query(&q, "up", M, &opts()).unwrap());
    assert!(v[0].1.is_nan());
}

#[test]
fn offset_and_at_move_the_reference_time() {
    let pts: Vec<(i64, f64)> = (0..=20).map(|i| (i * M, i as f64)).collect();
    let q = MemoryQuerier::new(vec![series("c", &[], &pts)]);
    let one = |e: &str, t: i64| vector(instant_query(&q, e, t, &opts()).unwrap())[0].1;
    assert_eq!(one("c offset 3m", 10 * M), 7.0);
    assert_eq!(one("c offset -3m", 10 * M), 13.0);
    assert_eq!(one("c @ 120", 10 * M), 2.0);
    assert_eq!(one("c @ 120 offset 1m", 10 * M), 1.0);
    assert_eq!(one("timestamp(c @ 120)", 10 * M), 120.0);
    // In a range query `@ start()` is the same value at every step.
    let m = matrix(range_query(&q, "c @ start()", 5 * M, 8 * M, M, &opts()).unwrap());
    assert_eq!(
        m[0].1,
        [(5 * M, 5.0), (6 * M, 5.0), (7 * M, 5.0), (8 * M, 5.0)]
    );
    let m = matrix(range_query(&q, "c @ end() - c", 5 * M, 7 * M, M, &opts()).unwrap());
    assert_eq!(m[0].1, [(5 * M, 2.0), (6 * M, 1.0), (7 * M, 0.0)]);
}

#[test]
fn subquery_steps_align_to_multiples_of_the_step() {
    let pts: Vec<(i64, f64)> = (-20..=20).map(|i| (i * M, i as f64)).collect();
    let q = MemoryQuerier::new(vec![series("c", &[], &pts)]);
    // At 130 s a 5 m range starts at -170 s; steps fall on multiples of 1 m from -120 s.
    let m = matrix(instant_query(&q, "c[5m:1m]", 130 * S, &opts()).unwrap());
    let ts: Vec<i64> = m[0].1.iter().map(|p| p.0).collect();
    assert_eq!(ts, [-2 * M, -M, 0, M, 2 * M]);
    // A range selector window is closed at both ends.
    let m = matrix(instant_query(&q, "c[2m]", 2 * M, &opts()).unwrap());
    assert_eq!(m[0].1, [(0, 0.0), (M, 1.0), (2 * M, 2.0)]);
}

#[test]
fn rate_of_a_steady_counter() {
    let pts: Vec<(i64, f64)> = (0..=30).map(|i| (i * M, (i * 600) as f64)).collect();
    let q = MemoryQuerier::new(vec![series("bytes_total", &[("job", "a")], &pts)]);
    let v = vector(instant_query(&q, "rate(bytes_total[5m])", 20 * M, &opts()).unwrap());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, r#"{job="a"}"#, "rate drops the metric name");
    assert!((v[0].1 - 10.0).abs() < 1e-12, "{}", v[0].1);
}

#[test]
fn instant_results_keep_sort_and_topk_order() {
    let q = MemoryQuerier::new(vec![
        series("m", &[("i", "a")], &[(0, 3.0)]),
        series("m", &[("i", "b")], &[(0, f64::NAN)]),
        series("m", &[("i", "c")], &[(0, 1.0)]),
        series("m", &[("i", "d")], &[(0, 2.0)]),
    ]);
    let vals = |e: &str| -> Vec<String> {
        vector(instant_query(&q, e, 0, &opts()).unwrap())
            .into_iter()
            .map(|(l, _)| l)
            .collect()
    };
    let i = |x: &str| format!(r#"{{__name__="m", i="{x}"}}"#);
    assert_eq!(vals("sort(m)"), [i("c"), i("d"), i("a"), i("b")]);
    assert_eq!(vals("sort_desc(m)"), [i("a"), i("d"), i("c"), i("b")]);
    assert_eq!(vals("topk(2, m)"), [i("a"), i("d")]);
    assert_eq!(vals("bottomk(2, m)"), [i("c"), i("d")]);
}

#[test]
fn range_query_parameters_are_checked() {
    let q = MemoryQuerier::new(vec![]);
    let bad = |r: Result<Value, QueryError>| {
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadData, "{}", e.message);
        e.message
    };
    assert!(bad(range_query(&q, "1", 0, M, 0, &opts())).contains("step"));
    assert!(bad(range_query(&q, "1", M, 0, S, &opts())).contains("before start"));
    assert!(bad(range_query(&q, "1", 0, 12_000 * S, S, &opts())).contains("11,000"));
    assert!(bad(range_query(&q, "up[5m]", 0, M, S, &opts())).contains("range vector"));
    assert!(bad(range_query(&q, "\"s\"", 0, M, S, &opts())).contains("string"));
    // A scalar becomes one series without labels.
    let m = matrix(range_query(&q, "time()", 0, 2 * M, M, &opts()).unwrap());
    assert_eq!(
        m,
        [("{}".to_string(), vec![(0, 0.0), (M, 60.0), (2 * M, 120.0)])]
    );
}

#[test]
fn parse_errors_carry_their_position() {
    let q = MemoryQuerier::new(vec![]);
    let e = instant_query(&q, "sum(rate(x[5m])) by (a) +", 0, &opts()).unwrap_err();
    assert_eq!(e.error_type(), "bad_data");
    assert_eq!(e.position, Some(25));
    assert!(e.message.starts_with("1:26: parse error:"), "{}", e.message);
}

#[test]
fn limits_fail_with_a_clear_error() {
    let pts: Vec<(i64, f64)> = (0..100).map(|i| (i * S, 1.0)).collect();
    let q = MemoryQuerier::new(
        (0..10)
            .map(|i| series("m", &[("i", &i.to_string())], &pts))
            .collect(),
    );
    let small = Options {
        max_samples: 500,
        ..opts()
    };
    let e = instant_query(&q, "sum_over_time(m[100s])", 99 * S, &small).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Execution);
    assert!(e.message.contains("max_samples"), "{}", e.message);
    let few = Options {
        max_series: 5,
        ..opts()
    };
    let e = instant_query(&q, "m", 0, &few).unwrap_err();
    assert!(e.message.contains("max_series"), "{}", e.message);
    let none = Options {
        timeout: Some(Duration::ZERO),
        ..opts()
    };
    let e = instant_query(&q, "m", 0, &none).unwrap_err();
    assert_eq!((e.kind, e.error_type()), (ErrorKind::Timeout, "timeout"));
    assert_eq!(
        e.message,
        "query timed out in expression evaluation (limit timeout = 0ns)"
    );
    assert_eq!(e.limit, Some(Limit::Timeout));
}

const TOO_MANY_SAMPLES: &str = "query processing would load too many samples into memory in \
    query execution (more than 500, limit max_samples); narrow the selectors, the time range \
    or a subquery's range, or use a larger step";

#[test]
fn subquery_steps_are_checked_against_max_samples_before_evaluation() {
    // A querier that fails the test if asked: the subquery must be refused before its
    // inner expression is evaluated (and so before anything is selected or allocated).
    struct Unreachable;
    impl Querier for Unreachable {
        fn select(
            &self,
            _: &[Matcher],
            _: i64,
            _: i64,
            _: &SelectBudget,
        ) -> Result<Vec<Series>, QueryError> {
            panic!("the subquery was evaluated");
        }
    }
    let small = Options {
        max_samples: 500,
        ..opts()
    };
    // 30 days at 1 ms: 2.6 × 10^9 steps.
    let e = instant_query(&Unreachable, "count_over_time(m[30d:1ms])", 0, &small).unwrap_err();
    assert_eq!(
        (e.error_type(), e.message.as_str()),
        ("execution", TOO_MANY_SAMPLES)
    );
    assert_eq!(e.limit, Some(Limit::MaxSamples));
    // 501 steps of 1 s, just over; 500 steps are allowed.
    let e = instant_query(&Unreachable, "count_over_time(m[500s:1s])", 0, &small).unwrap_err();
    assert_eq!(e.message, TOO_MANY_SAMPLES);
    let q = MemoryQuerier::new(vec![series("m", &[], &[(0, 1.0)])]);
    instant_query(&q, "count_over_time(m[499s:1s])", 0, &small).unwrap();
    // Nested, and with a scalar inside (no selector at all).
    let e = instant_query(
        &Unreachable,
        "max_over_time(vector(1)[10000y:1ms])",
        0,
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.limit, Some(Limit::MaxSamples));
}

#[test]
fn points_are_counted_as_they_are_produced() {
    // 10 series, each with a point at every one of 1,001 steps: 10,010 points.
    let pts: Vec<(i64, f64)> = (0..=1000).map(|i| (i * S, 1.0)).collect();
    let q = MemoryQuerier::new(
        (0..10)
            .map(|i| series("m", &[("i", &i.to_string())], &pts))
            .collect(),
    );
    let small = Options {
        max_samples: 500,
        ..opts()
    };
    // The store-side check (the raw samples) and the produced points both stop it.
    for expr in ["m", "rate(m[5s])", "m * 2"] {
        let e = range_query(&q, expr, 0, 1000 * S, S, &small).unwrap_err();
        assert_eq!((expr, e.message.as_str()), (expr, TOO_MANY_SAMPLES));
    }
    // One series of 1,001 raw samples but 11 points: the raw samples are the limit.
    let one = MemoryQuerier::new(vec![series("m", &[], &pts)]);
    let e = range_query(&one, "m", 0, 1000 * S, 100 * S, &small).unwrap_err();
    assert_eq!(e.message, TOO_MANY_SAMPLES);
    let roomy = Options {
        max_samples: 1100,
        ..opts()
    };
    let v = range_query(&one, "m", 0, 1000 * S, 100 * S, &roomy).unwrap();
    assert_eq!(matrix(v)[0].1.len(), 11);
}

#[test]
fn outside_times_are_refused_by_the_query_functions() {
    let q = MemoryQuerier::new(vec![]);
    let e = range_query(
        &q,
        "1",
        -9_100_000_000_000_000_000,
        9_100_000_000_000_000_000,
        1,
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.error_type(), "bad_data");
    assert!(e
        .message
        .starts_with("start -9100000000000000000 ms since the epoch is outside"));
    let e = instant_query(&q, "1", i64::MAX, &opts()).unwrap_err();
    assert!(
        e.message.starts_with("time 9223372036854775807 ms"),
        "{}",
        e.message
    );
    let e = range_query(&q, "1", 0, 11_001_000, 1000, &opts()).unwrap_err();
    assert_eq!(
        e.message,
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    );
    // Offsets and @ far out are refused when parsed, before any arithmetic on them.
    let e = instant_query(&q, "m offset 20000y", 0, &opts()).unwrap_err();
    assert!(e.message.starts_with("the offset "), "{}", e.message);
    let e = instant_query(&q, "m @ 300000000000", 0, &opts()).unwrap_err();
    assert!(e.message.starts_with("the @ time "), "{}", e.message);
}

struct Failing;

impl Querier for Failing {
    fn select(
        &self,
        _: &[Matcher],
        _: i64,
        _: i64,
        _: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        Err(QueryError::internal("reading block 7: disk on fire"))
    }
}

#[test]
fn source_errors_are_internal_and_keep_their_message() {
    let e = instant_query(&Failing, "sum(up)", 0, &opts()).unwrap_err();
    assert_eq!(e.error_type(), "internal");
    assert!(e.message.contains("disk on fire"), "{}", e.message);
    // Nothing is selected for expressions without selectors.
    assert!(instant_query(&Failing, "1 + 1", 0, &opts()).is_ok());
}

#[test]
fn json_is_the_data_object_of_the_http_api() {
    let q = MemoryQuerier::new(vec![series("up", &[("job", "a")], &[(0, 1.0), (M, 0.5)])]);
    let v = range_query(&q, "up", 0, 90 * S, 30 * S, &opts()).unwrap();
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[0,"1"],[30,"1"],[60,"0.5"],[90,"0.5"]]}]}"#
    );
    let v = instant_query(&q, "up", 1_500, &opts()).unwrap();
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1.5,"1"]}]}"#
    );
}
