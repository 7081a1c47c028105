use super::*;

fn labels(s: &OwnedSample) -> Vec<(&str, &str)> {
    s.labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn reads_every_family_type_and_resolves_parts_to_their_family() {
    let body = "\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000

# A normal comment.
# HELP temperature_celsius Current temperature.
# TYPE temperature_celsius gauge
temperature_celsius 21.5
# TYPE rpc_duration_seconds histogram
rpc_duration_seconds_bucket{le=\"0.05\"} 24054
rpc_duration_seconds_bucket{le=\"+Inf\"} 144320
rpc_duration_seconds_sum 53423
rpc_duration_seconds_count 144320
# TYPE gc_seconds summary
gc_seconds{quantile=\"0.5\"} 4.2e-05
gc_seconds_sum 1.7560473e+07
gc_seconds_count 2693
no_type_at_all -3
";
    let s = parse(body).unwrap();
    let got: Vec<(&str, &str, MetricType, SampleKind, f64)> = s
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.family.as_str(),
                s.family_type,
                s.kind,
                s.value,
            )
        })
        .collect();
    use MetricType::*;
    use SampleKind::*;
    assert_eq!(
        got,
        [
            (
                "http_requests_total",
                "http_requests_total",
                Counter,
                Value,
                1027.0
            ),
            (
                "http_requests_total",
                "http_requests_total",
                Counter,
                Value,
                3.0
            ),
            (
                "temperature_celsius",
                "temperature_celsius",
                Gauge,
                Value,
                21.5
            ),
            (
                "rpc_duration_seconds_bucket",
                "rpc_duration_seconds",
                Histogram,
                Bucket,
                24054.0
            ),
            (
                "rpc_duration_seconds_bucket",
                "rpc_duration_seconds",
                Histogram,
                Bucket,
                144320.0
            ),
            (
                "rpc_duration_seconds_sum",
                "rpc_duration_seconds",
                Histogram,
                Sum,
                53423.0
            ),
            (
                "rpc_duration_seconds_count",
                "rpc_duration_seconds",
                Histogram,
                Count,
                144320.0
            ),
            ("gc_seconds", "gc_seconds", Summary, Value, 4.2e-05),
            ("gc_seconds_sum", "gc_seconds", Summary, Sum, 1.7560473e+07),
            ("gc_seconds_count", "gc_seconds", Summary, Count, 2693.0),
            ("no_type_at_all", "no_type_at_all", Untyped, Value, -3.0),
        ]
    );
    assert_eq!(labels(&s[0]), [("method", "post"), ("code", "200")]);
    assert_eq!(s[1].timestamp_ms, Some(1395066363000));
    assert_eq!(s[2].timestamp_ms, None);
    assert_eq!(labels(&s[4]), [("le", "+Inf")]);
    assert_eq!(labels(&s[7]), [("quantile", "0.5")]);
}

#[test]
fn special_and_exponent_values() {
    let body = "a NaN\nb +Inf\nc -Inf\nd 1.5e3\ne -2E-2\nf 0x1\n";
    let err = parse(body).unwrap_err();
    assert_eq!(err.line, 6, "{err}");
    let s = parse(&body[..body.find("f 0x1").unwrap()]).unwrap();
    assert!(s[0].value.is_nan());
    assert_eq!(s[1].value, f64::INFINITY);
    assert_eq!(s[2].value, f64::NEG_INFINITY);
    assert_eq!(s[3].value, 1500.0);
    assert_eq!(s[4].value, -0.02);
    assert_eq!(
        parse_value("123456789012345678"),
        Some(123456789012345678.0)
    );
    assert_eq!(parse_value("-0"), Some(-0.0));
    assert_eq!(parse_value("007"), Some(7.0));
    assert_eq!(parse_value(""), None);
    assert_eq!(parse_value("-"), None);
}

#[test]
fn escaped_label_values_are_unescaped_and_plain_ones_borrowed() {
    let body = r#"msg{path="C:\\dir\\file",quote="say \"hi\"",nl="a\nb",plain="x y, z}"} 1
"#;
    let mut seen = 0;
    parse_each(body, |s| {
        seen += 1;
        assert_eq!(s.label("path"), Some(r"C:\dir\file"));
        assert_eq!(s.label("quote"), Some(r#"say "hi""#));
        assert_eq!(s.label("nl"), Some("a\nb"));
        assert_eq!(s.label("plain"), Some("x y, z}"));
        assert!(matches!(s.labels[3].value, Cow::Borrowed(_)));
        assert!(matches!(s.labels[0].value, Cow::Owned(_)));
    })
    .unwrap();
    assert_eq!(seen, 1);
}

#[test]
fn whitespace_trailing_commas_empty_braces_and_crlf() {
    let body = "# TYPE x gauge\r\nx{ a = \"1\" , b=\"2\", } 7\r\ny{} 8\r\n\r\n  \t\nz\t9\t123\n";
    let s = parse(body).unwrap();
    assert_eq!(labels(&s[0]), [("a", "1"), ("b", "2")]);
    assert_eq!((s[0].value, s[0].family_type), (7.0, MetricType::Gauge));
    assert_eq!((s[1].name.as_str(), s[1].value), ("y", 8.0));
    assert!(s[1].labels.is_empty());
    assert_eq!((s[2].value, s[2].timestamp_ms), (9.0, Some(123)));
}

#[test]
fn openmetrics_text_is_accepted() {
    let body = "\
# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32
acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0
acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0
# TYPE foo counter
foo_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67
foo_created 1520430000.123
# TYPE build info
build_info{version=\"1.2\"} 1
# EOF
";
    let mut kinds = Vec::new();
    let summary = parse_each(body, |s| {
        kinds.push((s.name, s.family, s.kind, s.timestamp_ms))
    })
    .unwrap();
    use SampleKind::*;
    assert_eq!(
        kinds,
        [
            (
                "acme_http_router_request_seconds_sum",
                "acme_http_router_request_seconds",
                Sum,
                None
            ),
            (
                "acme_http_router_request_seconds_count",
                "acme_http_router_request_seconds",
                Count,
                None
            ),
            (
                "acme_http_router_request_seconds_created",
                "acme_http_router_request_seconds",
                Created,
                None
            ),
            ("foo_total", "foo", Total, Some(1520879607789)),
            ("foo_created", "foo", Created, None),
            ("build_info", "build", Info, None),
        ]
    );
    assert!(summary.eof);
    assert_eq!(summary.samples, 6);
    let fam = &summary.families[0];
    assert_eq!(fam.unit, Some("seconds"));
    assert_eq!(
        fam.help.as_deref(),
        Some("Latency though all of ACME's HTTP request router.")
    );
    let err = parse("a 1\n# EOF\nb 2\n").unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    assert!(err.message.contains("after `# EOF`"), "{err}");
}

#[test]
fn help_text_escapes() {
    let summary = parse_each("# HELP x a\\\\b\\nc \\q\nx 1\n", |_| {}).unwrap();
    assert_eq!(summary.families[0].help.as_deref(), Some("a\\b\nc \\q"));
}

#[test]
fn samples_out_of_order_still_find_their_family() {
    let body = "\
# TYPE h histogram
# TYPE g gauge
g 1
h_bucket{le=\"1\"} 2
h_count 2
";
    let s = parse(body).unwrap();
    assert_eq!((s[1].family.as_str(), s[1].kind), ("h", SampleKind::Bucket));
    assert_eq!(s[2].family_type, MetricType::Histogram);
}

/// Each bad line is named by number, with what is wrong.
#[test]
fn errors_name_the_line_and_the_problem() {
    let cases: &[(&str, usize, &str)] = &[
        ("ok 1\n{a=\"b\"} 1\n", 2, "must start with a metric name"),
        ("ok 1\n\nx{a=\"b\" 1\n", 3, "expected `,` or `}`"),
        ("x{a=\"b\",a=\"c\"} 1\n", 1, "label `a` appears twice"),
        ("x{a=b} 1\n", 1, "must be in double quotes"),
        ("x{a=\"b} 1\n", 1, "no closing `\"`"),
        ("x{a=\"\\t\"} 1\n", 1, "unknown escape `\\t`"),
        ("x{1a=\"b\"} 1\n", 1, "expected a label name"),
        ("x{a \"b\"} 1\n", 1, "expected `=` after label name `a`"),
        ("x{a=\"b\"\n", 1, "expected `,` or `}`"),
        ("x{a=\"b\",\n", 1, "unclosed `{`"),
        ("x\n", 1, "sample `x` has no value"),
        ("x abc\n", 1, "`abc` is not a number"),
        ("x 1 12:00\n", 1, "`12:00` is not a timestamp"),
        ("x 1 2 3\n", 1, "unexpected `3` after the timestamp"),
        ("x-y 1\n", 1, "unexpected `-` after metric name `x`"),
        ("# TYPE x countr\n", 1, "unknown metric type `countr`"),
        (
            "# TYPE x gauge\n# TYPE x gauge\n",
            2,
            "second `# TYPE` line for `x`",
        ),
        ("# TYPE\n", 1, "needs a metric name"),
        ("# HELP 9x y\n", 1, "needs a metric name"),
    ];
    for (body, line, what) in cases {
        let err = parse(body).unwrap_err();
        assert_eq!(err.line, *line, "{body:?}: {err}");
        assert!(err.message.contains(what), "{body:?}: {err}");
        assert!(
            err.to_string().starts_with(&format!("line {line}: ")),
            "{err}"
        );
    }
    let long = format!("x{{a=\"{}\" 1\n", "v".repeat(300));
    let err = parse(&long).unwrap_err();
    assert_eq!(
        err.text.chars().count(),
        121,
        "cut to 120 characters and an ellipsis"
    );
}

#[test]
fn empty_bodies_and_plain_comments() {
    assert!(parse("").unwrap().is_empty());
    assert!(parse("\n\n# just a comment\n#\n# EOFX\n")
        .unwrap()
        .is_empty());
    let s = parse("x 1").unwrap();
    assert_eq!(s.len(), 1, "no final newline is fine");
}
