//! What a test does when an outside tool it needs (moto, Prometheus, promtool, Chromium,
//! node-exporter, VictoriaMetrics, schemathesis…) is missing.
//!
//! On a developer's machine the test says so and passes: it writes
//! `SKIPPED: <test>: <reason>` straight to stderr (past libtest's capture of `eprintln!`, so
//! the line shows in every run) and `scripts/test` counts those lines as skipped tests.
//! Under CI (`CI=true`, as GitHub Actions, GitLab and most CI systems set it) the same test
//! fails with that reason instead: CI is green only when every reference test really ran.
//!
//! Plain `std` and no crate of its own, so that every crate's tests include this one file
//! (`#[path = ".../test-support/tool.rs"] mod tool;`) whatever they depend on.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Whether this run is CI: `CI` is `true` (or `1`), in any case.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

/// Called when `test` cannot find its tool: panics under CI, otherwise reports the skip
/// (the caller then returns). `why` names the tool and how to get it.
#[track_caller]
pub fn missing_tool(test: &str, why: &str) {
    if in_ci() {
        panic!(
            "{test}: {why}. CI=true, so a missing tool fails the test instead of skipping it \
             (scripts/test installs every tool the tests need)"
        );
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// `Some(value)` when the tool was found, otherwise [`missing_tool`] and `None`: write
/// `let Some(x) = require_tool(test, found) else { return };`.
#[track_caller]
pub fn require_tool<T>(test: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(t) => Some(t),
        Err(why) => {
            missing_tool(test, &why);
            None
        }
    }
}

/// The first `name` on `PATH` that is a file.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `find_program(name)`, with a reason naming the Debian package when it is missing.
pub fn program(name: &str, debian_package: &str) -> Result<PathBuf, String> {
    find_program(name).ok_or_else(|| {
        format!(
            "`{name}` is not on PATH (Debian package `{debian_package}`; scripts/test installs it)"
        )
    })
}
