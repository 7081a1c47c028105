//! Property tests: PromQL parse + evaluate over random input never panics and always
//! returns within the engine's own timeout.
//!
//! Three generators: a grammar-driven one (expressions built from the PromQL grammar, with
//! hostile durations, times, numbers, regexes and nesting mixed in), random text over
//! PromQL's characters, and random bytes. Each query is evaluated as an instant query and
//! as a range query over a small `MemoryQuerier` whose series hold NaN, infinities, stale
//! markers and far-apart timestamps.
//!
//! 256 cases per property by default; `PROPTEST_CASES=N` runs N (`scripts/fuzz` runs a
//! large budget). Each test prints how many cases it ran.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use skymeter_promql::{
    instant_query, range_query, stale_nan, Labels, MemoryQuerier, Options, Series,
};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// The engine's timeout in these tests, and the slack allowed past it (for the work
/// between two clock checks and dropping what was built; a debug build on a busy machine).
const TIMEOUT: Duration = Duration::from_millis(500);
const SLACK: Duration = Duration::from_secs(5);

fn opts() -> Options {
    Options {
        timeout: Some(TIMEOUT),
        max_samples: 2_000_000,
        max_series: 1_000,
        ..Options::default()
    }
}

fn querier() -> MemoryQuerier {
    let s = |name: &str, extra: &[(&str, &str)], pts: Vec<(i64, f64)>| {
        let mut labels = vec![("__name__", name)];
        labels.extend_from_slice(extra);
        Series::new(
            Labels::from_pairs(labels),
            pts.iter().map(|p| p.0).collect(),
            pts.iter().map(|p| p.1).collect(),
        )
    };
    let regular: Vec<(i64, f64)> = (0..120).map(|i| (i * 60_000, i as f64)).collect();
    let odd = vec![
        (-86_400_000, f64::NAN),
        (0, f64::INFINITY),
        (60_000, f64::NEG_INFINITY),
        (120_000, stale_nan()),
        (180_000, -0.0),
        (240_000, f64::MAX),
        (300_000, f64::MIN_POSITIVE),
        (7_200_000, 1e308),
    ];
    MemoryQuerier::new(vec![
        s("m", &[("a", "1"), ("le", "0.5")], regular.clone()),
        s("m", &[("a", "2"), ("le", "+Inf")], regular.clone()),
        s("m", &[("a", "3"), ("le", "1")], odd.clone()),
        s("n", &[("a", "1"), ("b", "x")], odd),
        s("n", &[("a", "2"), ("b", "")], regular.clone()),
        s("up", &[("job", "a"), ("instance", "i")], regular),
    ])
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["1ms", "1s", "30s", "1m", "5m", "1h", "1d", "1w"])
            .prop_map(str::to_string),
        1 => prop::sample::select(vec!["1y", "100y", "9999y", "10001y", "99999999999y", "0s", "1h30m5s", "1ms1ms"])
            .prop_map(str::to_string),
        1 => (0u64..u64::MAX).prop_map(|n| format!("{n}ms")),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-1000i64..1000).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "NaN", "Inf", "-Inf", "1e308", "1e309", "-1e-320", "0x7fffffffffffffff", "0",
            "-0", "9223372036854775807", "0.5", "18446744073709551616"
        ])
        .prop_map(str::to_string),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
    ]
}

fn time() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0i64..7200).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec!["-1e18", "1e18", "253402300800", "-62167219201", "start()", "end()", "1e300"])
            .prop_map(str::to_string),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn regex() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        ".*",
        ".+",
        "1|2",
        "[",
        "(a",
        "a{1000}",
        "(?i)X",
        "\\\\d+",
        "",
        "a{2,1}",
        ".*x.*",
        "\\\\pL{50}",
    ])
    .prop_map(str::to_string)
}

fn selector() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["m", "n", "up", "absent_metric", ""]);
    let matcher = (
        prop::sample::select(vec!["a", "b", "le", "__name__", "job"]),
        prop::sample::select(vec!["=", "!=", "=~", "!~"]),
        prop_oneof![
            regex(),
            prop::sample::select(vec!["1", "x", ""]).prop_map(str::to_string)
        ],
    )
        .prop_map(|(l, op, v)| format!("{l}{op}\"{v}\""));
    let modifier = prop_oneof![
        4 => Just(String::new()),
        1 => duration().prop_map(|d| format!(" offset {d}")),
        1 => duration().prop_map(|d| format!(" offset -{d}")),
        1 => time().prop_map(|t| format!(" @ {t}")),
    ];
    (name, prop::collection::vec(matcher, 0..3), modifier).prop_map(|(n, ms, m)| {
        if ms.is_empty() && n.is_empty() {
            format!("m{m}")
        } else if ms.is_empty() {
            format!("{n}{m}")
        } else {
            format!("{n}{{{}}}{m}", ms.join(","))
        }
    })
}

const RANGE_FNS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "changes",
    "resets",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "absent_over_time",
];

const VECTOR_FNS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "sort",
    "sort_desc",
    "timestamp",
    "absent",
    "scalar",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
    "deg",
    "rad",
    "acos",
    "asinh",
    "round",
    "vector",
];

const BINARY_OPS: &[&str] = &[
    "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2",
    "> bool", "== bool",
];

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => selector(),
        2 => number(),
        1 => Just("time()".to_string()),
        1 => Just("pi()".to_string()),
        1 => Just("\"str\"".to_string()),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        let range_arg = prop_oneof![
            (selector(), duration()).prop_map(|(s, d)| {
                // A range goes before offset/@: move them after it.
                match s.find(" offset").or_else(|| s.find(" @")) {
                    Some(i) => format!("{}[{d}]{}", &s[..i], &s[i..]),
                    None => format!("{s}[{d}]"),
                }
            }),
            (inner.clone(), duration(), prop::option::of(duration()))
                .prop_map(|(e, r, s)| format!("({e})[{r}:{}]", s.unwrap_or_default())),
        ];
        prop_oneof![
            (prop::sample::select(RANGE_FNS), range_arg.clone())
                .prop_map(|(f, a)| format!("{f}({a})")),
            (
                prop::sample::select(vec!["quantile_over_time", "predict_linear", "holt_winters"]),
                number(),
                range_arg.clone(),
                number()
            )
                .prop_map(|(f, n, a, n2)| match f {
                    "quantile_over_time" => format!("{f}({n}, {a})"),
                    "predict_linear" => format!("{f}({a}, {n})"),
                    _ => format!("{f}({a}, {n}, {n2})"),
                }),
            range_arg,
            (prop::sample::select(VECTOR_FNS), inner.clone())
                .prop_map(|(f, e)| format!("{f}({e})")),
            (inner.clone(), number(), number())
                .prop_map(|(e, a, b)| format!("clamp({e}, {a}, {b})")),
            (inner.clone(), number()).prop_map(|(e, n)| format!("histogram_quantile({n}, {e})")),
            (
                inner.clone(),
                prop::sample::select(vec!["(.*)", "[", "(\\\\pL{30}){30}"])
            )
                .prop_map(|(e, r)| format!("label_replace({e}, \"dst\", \"$1\", \"a\", \"{r}\")")),
            inner
                .clone()
                .prop_map(|e| format!("label_join({e}, \"dst\", \",\", \"a\", \"b\")")),
            inner.clone().prop_map(|e| format!("-{e}")),
            inner.clone().prop_map(|e| format!("({e})")),
            (
                inner.clone(),
                prop::sample::select(BINARY_OPS),
                prop::sample::select(vec![
                    "",
                    " on(a)",
                    " ignoring(a)",
                    " on(a) group_left(b)",
                    " ignoring(b) group_right",
                    " on()"
                ]),
                inner.clone()
            )
                .prop_map(|(l, op, m, r)| format!("{l} {op}{m} {r}")),
            (
                prop::sample::select(vec![
                    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"
                ]),
                prop::sample::select(vec![
                    "",
                    " by (a)",
                    " without (a)",
                    " by ()",
                    " by (__name__)"
                ]),
                inner.clone()
            )
                .prop_map(|(op, g, e)| format!("{op}{g} ({e})")),
            (
                prop::sample::select(vec!["topk", "bottomk", "quantile"]),
                number(),
                inner.clone()
            )
                .prop_map(|(op, n, e)| format!("{op}({n}, {e})")),
            inner
                .clone()
                .prop_map(|e| format!("count_values(\"v\", {e})")),
        ]
    })
}

/// Evaluates `q` both ways; the only property is that it returns, in time, without a
/// panic (a panic fails the case with the query in the message).
fn check(q: &str, t: i64, start: i64, end: i64, step: i64) -> Result<(), TestCaseError> {
    let querier = querier();
    let opts = opts();
    for kind in ["instant", "range"] {
        let began = Instant::now();
        let _ = match kind {
            "instant" => instant_query(&querier, q, t, &opts),
            _ => range_query(&querier, q, start, end, step, &opts),
        };
        let took = began.elapsed();
        prop_assert!(
            took <= TIMEOUT + SLACK,
            "{kind} query {q:?} took {took:?}, past the engine's timeout {TIMEOUT:?}"
        );
    }
    Ok(())
}

fn times() -> impl Strategy<Value = (i64, i64, i64, i64)> {
    prop_oneof![
        4 => (0i64..7_200_000, 0i64..7_200_000, 0i64..7_200_000, 1i64..600_000),
        1 => (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
    ]
}

fn run<S: Strategy>(name: &str, strategy: S, f: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let count = std::cell::Cell::new(0u32);
    let result = runner().run(&strategy, |v| {
        count.set(count.get() + 1);
        f(v)
    });
    eprintln!(
        "{name}: {} cases run (PROPTEST_CASES={})",
        count.get(),
        cases()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

#[test]
fn prop_grammar_queries_never_panic_and_stay_within_the_timeout() {
    run("grammar", (expr(), times()), |(q, (t, a, b, step))| {
        check(&q, t, a.min(b), a.max(b), step)
    });
}

#[test]
fn prop_random_text_never_panics() {
    let text = "[a-z0-9_{}()\\[\\]=~!\"',:+*/%^<>@ .#\\n-]{0,120}";
    run("text", (text, times()), |(q, (t, a, b, step))| {
        check(&q, t, a.min(b), a.max(b), step)
    });
}

#[test]
fn prop_random_bytes_never_panic() {
    run(
        "bytes",
        (prop::collection::vec(any::<u8>(), 0..200), times()),
        |(bytes, (t, a, b, step))| {
            let q = String::from_utf8_lossy(&bytes);
            check(&q, t, a.min(b), a.max(b), step)
        },
    );
}

#[test]
fn prop_selector_parsing_never_panics() {
    run("selector", prop_oneof![selector(), ".{0,80}"], |s| {
        let _ = skymeter_promql::parse_selector(&s);
        Ok(())
    });
}

#[test]
fn prop_time_ranges_are_valid_exactly_when_prometheus_rules_hold() {
    use skymeter_promql::{TimeRange, MAX_POINTS_PER_SERIES, MAX_TIME_MS, MIN_TIME_MS};
    let t = prop_oneof![
        any::<i64>(),
        MIN_TIME_MS - 10..MIN_TIME_MS + 10,
        MAX_TIME_MS - 10..MAX_TIME_MS + 10,
        -1_000_000i64..1_000_000,
    ];
    let step = prop_oneof![any::<i64>(), -2i64..100, 1i64..1_000_000_000];
    run("time ranges", (t.clone(), t, step), |(start, end, step)| {
        let in_bounds = |t: i64| (MIN_TIME_MS..=MAX_TIME_MS).contains(&t);
        let ok = in_bounds(start)
            && in_bounds(end)
            && start <= end
            && step > 0
            && (end - start) / step <= MAX_POINTS_PER_SERIES;
        match TimeRange::steps(start, end, step) {
            Ok(r) => {
                prop_assert!(ok, "accepted {start} {end} {step}");
                prop_assert_eq!(r.points() as i64, (end - start) / step + 1);
                prop_assert!(r.points() as i64 <= MAX_POINTS_PER_SERIES + 1);
            }
            Err(e) => {
                prop_assert!(!ok, "refused {start} {end} {step}: {}", e.message);
                prop_assert_eq!(e.error_type(), "bad_data");
            }
        }
        let span_ok = in_bounds(start) && in_bounds(end) && start <= end;
        prop_assert_eq!(TimeRange::span(start, end).is_ok(), span_ok);
        prop_assert_eq!(TimeRange::instant(start).is_ok(), in_bounds(start));
        Ok(())
    });
}
