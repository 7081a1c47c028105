//! `skymeter rating rules|quote` through the real binary, on the shipped example rules
//! (examples/rating/) and on broken files.

mod common;

use common::*;

fn example() -> String {
    repo_root()
        .join("examples/rating/rating.toml")
        .display()
        .to_string()
}

#[test]
fn the_example_rules_check_and_list() {
    let out = skymeter(&["rating", "rules", "-r", &example()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("valid; runs hashmap then script"), "{text}");
    assert!(
        text.contains("m5.large") && text.contains("0.096"),
        "{text}"
    );
    let out = skymeter(&["rating", "rules", "-r", &example(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["run_order"], serde_json::json!(["hashmap", "script"]));
    assert_eq!(v["hashmap"]["mappings"].as_array().unwrap().len(), 6);
    assert_eq!(v["hashmap"]["thresholds"].as_array().unwrap().len(), 3);
    assert_eq!(v["scripts"], serde_json::json!(["gpu"]));
}

fn quote(args: &[&str]) -> String {
    let mut all = vec!["rating", "quote", "-r"];
    let file = example();
    all.push(&file);
    all.extend_from_slice(args);
    let out = skymeter(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn quotes_follow_cloudkitty_semantics() {
    // Instance type flat × the team's 1.10 rate in the compute group, plus the licence group.
    let q = quote(&[
        "--service",
        "instance",
        "--qty",
        "2",
        "--attr",
        "instance_type=m5.large",
        "--attr",
        "platform=Windows",
        "--attr",
        "account=team-research",
    ]);
    assert_eq!(q, "0.3032");
    // The documented volume discounts, with the scoped 3 %.
    assert_eq!(
        quote(&["--service", "volume.size", "--qty", "80"]),
        "0.0784"
    );
    assert_eq!(
        quote(&[
            "--service",
            "volume.size",
            "--qty",
            "80",
            "--scope",
            "2d5b39657dc542d4b2a14b685335304e"
        ]),
        "0.0776"
    );
    assert_eq!(
        quote(&["--service", "volume.size", "--qty", "250"]),
        "0.2375"
    );
    // The script module prices what the tables do not.
    let v: serde_json::Value = serde_json::from_str(&quote(&[
        "--service",
        "gpu",
        "--qty",
        "3",
        "--attr",
        "model=a100",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(v["price"], "8.79");
    assert_eq!(v["modules"], serde_json::json!(["hashmap", "script"]));
}

#[test]
fn mistakes_exit_2_and_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("rating.toml");
    std::fs::write(
        &bad,
        "[[hashmap.service]]\nname = \"instance\"\n\n[[hashmap.service.field]]\nname = \"flavor\"\nmapping = [{ value = \"a\", type = \"flat\", cost = \"ten\" }]\n",
    )
    .unwrap();
    let out = skymeter(&["rating", "rules", "-r", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("rating.toml:6") && err.contains("`ten` is not a number"),
        "{err}"
    );
    let tables = dir.path().join("tables.toml");
    std::fs::write(
        &tables,
        "[[hashmap.service]]\nname = \"instance\"\nmapping = [{ type = \"flat\", cost = \"1\" }]\n",
    )
    .unwrap();
    let tables = tables.to_str().unwrap();
    let out = skymeter(&[
        "rating",
        "quote",
        "-r",
        tables,
        "--service",
        "nope",
        "--qty",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no rule rates `nope` in") && err.contains("its services: instance"),
        "{err}"
    );
    // With scripts, any service may be priced: a quote, with a note that no table matched.
    let out = skymeter(&[
        "rating",
        "quote",
        "-r",
        &example(),
        "--service",
        "nope",
        "--qty",
        "1",
    ]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "0");
    assert!(
        stderr(&out).contains("no hashmap service `nope`"),
        "{}",
        stderr(&out)
    );
    let out = skymeter(&[
        "rating",
        "quote",
        "-r",
        &example(),
        "--service",
        "instance",
        "--qty",
        "lots",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--qty"), "{}", stderr(&out));
    let out = skymeter(&[
        "rating",
        "rules",
        "-r",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the rating rules file"),
        "{}",
        stderr(&out)
    );
}
