//! Property tests of task-file loading (`load_str` with every built-in plugin): whatever a
//! user writes, loading never panics, and every mistake it reports names the file and a line
//! of it, so the user can find what to fix.
//!
//! Inputs: any text; the project's own example and sample task files with random edits (a
//! line dropped, doubled or swapped, a value replaced by one of another type, characters
//! inserted or cut); and task files generated from the format's keys and values.
//!
//! Case count: proptest's default (256 per property), raised with `PROPTEST_CASES`
//! (`scripts/fuzz` runs 20,000). Test names start with `prop_` so that `scripts/fuzz` finds
//! them.

use proptest::prelude::*;
use skymeter_pipeline::load_str;
use skymeter_plugin_api::config::Source;
use skymeter_plugin_api::Registry;
use std::sync::OnceLock;

const FILE: &str = "prop-task.toml";

/// Task files written by the project itself: realistic starting points for edits.
const SEEDS: &[&str] = &[
    include_str!("../../../examples/exec.toml"),
    include_str!("../../../examples/host.toml"),
    include_str!("../../../examples/http_json.toml"),
    include_str!("../../../examples/pipeline.toml"),
    include_str!("../../../examples/prometheus.toml"),
    include_str!("../../../examples/scheduled.toml"),
    include_str!("../../../crates/plugins/src/collectors/exec/sample.toml"),
    include_str!("../../../crates/plugins/src/collectors/host/sample.toml"),
    include_str!("../../../crates/plugins/src/collectors/http_json/sample.toml"),
    include_str!("../../../crates/plugins/src/collectors/internal/sample.toml"),
    include_str!("../../../crates/plugins/src/collectors/osv/sample.toml"),
    include_str!("../../../crates/plugins/src/processors/passthru/sample.toml"),
    include_str!("../../../crates/plugins/src/collectors/prometheus/sample.toml"),
    include_str!("../../../crates/plugins/src/collectors/aws/sample.toml"),
];

/// The built-in registry, built once; loading runs from a scratch directory so that a
/// relative path in a generated file (a `data_dir`, a publisher's `path`) lands there.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<(Registry, tempfile::TempDir)> = OnceLock::new();
    &REGISTRY
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a scratch directory");
            std::env::set_current_dir(dir.path()).expect("cd into the scratch directory");
            (skymeter_plugins::builtin(), dir)
        })
        .0
}

fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("value".into()),
        "EMPTY" => Some(String::new()),
        "NUMBER" => Some("12".into()),
        _ => None,
    }
}

/// Loads `text` and checks that every error names the file and a line of it.
fn check(text: &str) -> Result<(), TestCaseError> {
    let lines = text.split('\n').count();
    let result = load_str(Source::new(FILE, text), registry(), &env, false);
    if let Err(errors) = result {
        prop_assert!(
            !errors.is_empty(),
            "a failed load reports at least one error"
        );
        for e in &errors {
            prop_assert_eq!(&e.file, FILE, "error names another file: {}", e);
            let Some(line) = e.line else {
                return Err(TestCaseError::fail(format!(
                    "error without a line: {e}\nin\n{text}"
                )));
            };
            prop_assert!(
                (1..=lines).contains(&line),
                "line {line} outside 1..={lines}: {e}\nin\n{text}"
            );
            prop_assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
        }
    }
    Ok(())
}

/// TOML values of every type, well and badly formed, and strings the loader interprets.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"10s\"".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"1ms\"".to_string()),
        Just("\"ten seconds\"".to_string()),
        Just("\"99999999999999999999h\"".to_string()),
        Just("\"0 */5 * * * *\"".to_string()),
        Just("\"* * *\"".to_string()),
        Just("\"${SET}\"".to_string()),
        Just("\"${UNSET}\"".to_string()),
        Just("\"${UNSET:-fallback}\"".to_string()),
        Just("\"${\"".to_string()),
        Just("\"$${SET}\"".to_string()),
        Just("\"${NUMBER}\"".to_string()),
        Just("\"2026-01-01T00:00:00Z\"".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("\"host\"".to_string()),
        Just("\"stdout\"".to_string()),
        Just("\"exec\"".to_string()),
        Just("\"no-such-plugin\"".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[{}]".to_string()),
        Just("[\"cpu.*\", \"[\"]".to_string()),
        Just("true".to_string()),
        Just("-1".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("1e400".to_string()),
        Just("9223372036854775807".to_string()),
        Just("{ every = \"1s\" }".to_string()),
        Just("{ cron = \"0 * * * * *\", every = \"1s\" }".to_string()),
        Just("[{ plugin = \"stdout\" }]".to_string()),
        Just("[{ plugin = \"host\", name = \"\" }]".to_string()),
        Just("[{ plugin = 1 }]".to_string()),
        (-1000i64..1000).prop_map(|v| v.to_string()),
        "\"[a-z0-9 ./*_-]{0,12}\"",
        any::<String>().prop_map(|s| toml_basic_string(&s)),
    ]
}

/// `s` as a TOML basic string (everything escaped that must be).
fn toml_basic_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const KEYS: &[&str] = &[
    "name",
    "schedule",
    "timeout",
    "metrics",
    "collect",
    "process",
    "publish",
    "description",
    "start",
    "stop",
    "every",
    "cron",
    "plugin",
    "id",
    "data_dir",
    "format",
    "path",
    "command",
    "url",
    "unknown_key",
    "catch_up",
];

/// An edit of a task file.
#[derive(Debug, Clone)]
enum Edit {
    DropLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replaces the value of the `key = value` on a line.
    ReplaceValue(usize, String),
    /// Adds a `key = value` line.
    AddLine(usize, &'static str, String),
    InsertChar(usize, char),
    Cut(usize, usize),
    /// Appends the file's tasks again (same names, same plugins).
    RepeatTasks,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => any::<usize>().prop_map(Edit::DropLine),
        1 => any::<usize>().prop_map(Edit::DuplicateLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        3 => (any::<usize>(), toml_value()).prop_map(|(l, v)| Edit::ReplaceValue(l, v)),
        2 => (any::<usize>(), prop::sample::select(KEYS), toml_value())
            .prop_map(|(l, k, v)| Edit::AddLine(l, k, v)),
        1 => (any::<usize>(), prop_oneof![
            Just('['), Just(']'), Just('{'), Just('}'), Just('"'), Just('='), Just(','),
            Just('\n'), Just('#'), Just('\\'), Just('\''), any::<char>(),
        ])
            .prop_map(|(at, c)| Edit::InsertChar(at, c)),
        1 => (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Cut(at, n)),
        1 => Just(Edit::RepeatTasks),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, e: &Edit) {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len();
    match e {
        Edit::DropLine(i) => {
            lines.remove(i % n);
        }
        Edit::DuplicateLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Edit::SwapLines(a, b) => lines.swap(a % n, b % n),
        Edit::ReplaceValue(i, v) => {
            let l = &mut lines[i % n];
            if let Some(eq) = l.find('=') {
                l.replace_range(eq + 1.., &format!(" {v}"));
            }
        }
        Edit::AddLine(i, k, v) => lines.insert(i % (n + 1), format!("{k} = {v}")),
        Edit::InsertChar(at, c) => {
            let i = boundary(text, *at);
            text.insert(i, *c);
            return;
        }
        Edit::RepeatTasks => {
            if let Some(i) = text.find("[[task]]") {
                let tasks = text[i..].to_string();
                text.push('\n');
                text.push_str(&tasks);
            }
            return;
        }
        Edit::Cut(at, len) => {
            let i = boundary(text, *at);
            let j = boundary(text, i.saturating_add(*len).min(text.len())).max(i);
            text.replace_range(i..j, "");
            return;
        }
    }
    *text = lines.join("\n");
}

/// One plugin entry: `{ plugin = "…", key = value, … }`.
fn plugin_entry() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "host",
            "exec",
            "prometheus",
            "http_json",
            "osv",
            "internal",
            "stdout",
            "file",
            "http",
            "mqtt",
            "postgres",
            "server",
            "filter",
            "relabel",
            "scale",
            "aggregate",
            "passthru",
            "rate",
            "nope",
        ]),
        proptest::collection::vec((prop::sample::select(KEYS), toml_value()), 0..3),
    )
        .prop_map(|(plugin, kv)| {
            let mut parts = vec![format!("plugin = \"{plugin}\"")];
            parts.extend(kv.into_iter().map(|(k, v)| format!("{k} = {v}")));
            format!("{{ {} }}", parts.join(", "))
        })
}

/// A `collect` / `process` / `publish` list.
fn plugin_list() -> impl Strategy<Value = String> {
    proptest::collection::vec(plugin_entry(), 0..3).prop_map(|e| format!("[{}]", e.join(", ")))
}

/// One `[[task]]` with random keys.
fn task() -> impl Strategy<Value = String> {
    (
        proptest::option::of("[a-z]{1,6}"),
        proptest::option::of(toml_value()),
        proptest::option::of(plugin_list()),
        proptest::option::of(plugin_list()),
        proptest::option::of(plugin_list()),
        proptest::collection::vec((prop::sample::select(KEYS), toml_value()), 0..3),
    )
        .prop_map(|(name, schedule, collect, process, publish, extra)| {
            let mut t = String::from("[[task]]\n");
            if let Some(n) = name {
                t.push_str(&format!("name = \"{n}\"\n"));
            }
            if let Some(s) = schedule {
                t.push_str(&format!("schedule = {s}\n"));
            }
            for (k, v) in [
                ("collect", collect),
                ("process", process),
                ("publish", publish),
            ] {
                if let Some(v) = v {
                    t.push_str(&format!("{k} = {v}\n"));
                }
            }
            for (k, v) in extra {
                t.push_str(&format!("{k} = {v}\n"));
            }
            t
        })
}

/// The `key = value` lines of a generated `[agent]` table.
type AgentKeys = Vec<(&'static str, String)>;

/// A task file from the format's parts: `[agent]` and tasks.
fn generated_file() -> impl Strategy<Value = String> {
    (
        proptest::option::of(proptest::collection::vec(
            (prop::sample::select(KEYS), toml_value()),
            0..3,
        )),
        proptest::collection::vec(task(), 0..4),
    )
        .prop_map(|(agent, tasks): (Option<AgentKeys>, Vec<String>)| {
            let mut f = String::new();
            if let Some(kv) = agent {
                f.push_str("[agent]\n");
                for (k, v) in kv {
                    f.push_str(&format!("{k} = {v}\n"));
                }
            }
            for t in tasks {
                f.push_str(&t);
            }
            f
        })
}

proptest! {
    /// Any text at all.
    #[test]
    fn prop_any_text_loads_or_errors_with_file_and_line(text in any::<String>()) {
        check(&text)?;
    }

    /// The project's own task files, each first loaded as written, then with random edits.
    #[test]
    fn prop_edited_example_files_error_with_file_and_line(
        seed in prop::sample::select(SEEDS),
        edits in proptest::collection::vec(edit(), 1..5),
    ) {
        let mut text = seed.to_string();
        for e in &edits {
            apply(&mut text, e);
        }
        check(&text)?;
    }

    /// Task files built from the format's own keys and plugin names, with values of every
    /// type: deep into plugin building and schedule checks.
    #[test]
    fn prop_generated_task_files_error_with_file_and_line(text in generated_file()) {
        check(&text)?;
    }
}

/// The unedited seeds load or fail with located errors too (the AWS sample fails here: the
/// pipeline's tests build without the AWS collector, and that error must name its line).
#[test]
fn seed_files_error_with_file_and_line() {
    for seed in SEEDS {
        check(seed).unwrap_or_else(|e| panic!("{e}"));
    }
}
