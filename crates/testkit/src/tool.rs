//! What a test does when an outside tool it needs (moto, Prometheus, promtool, Chromium,
//! node-exporter, VictoriaMetrics, schemathesis…) is missing.
//!
//! On a developer's machine the test says so and passes: it writes
//! `SKIPPED: <test>: <reason>` straight to stderr (past libtest's capture of `eprintln!`, so
//! the line shows in every run) and `scripts/test` counts those lines as skipped tests.
//! Under CI (`CI=true`, as GitHub Actions, GitLab and most CI systems set it) the same test
//! fails with that reason instead: CI is green only when every reference test really ran.
//!
//! Plain `std`: this module needs none of the testkit's features, so a crate whose tests only
//! need it (promql, store) depends on `skymeter-testkit` with no features and compiles
//! nothing of skymeter.

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

/// [`program`], or `/usr/sbin/<name>` (where Debian puts daemons such as `mosquitto` and
/// `nats-server`, often not on a user's PATH).
pub fn daemon(name: &str, debian_package: &str) -> Result<PathBuf, String> {
    program(name, debian_package).or_else(|why| {
        let sbin = PathBuf::from("/usr/sbin").join(name);
        if sbin.is_file() {
            Ok(sbin)
        } else {
            Err(why)
        }
    })
}

/// Where scripts/test installs tools: `$SKYMETER_CACHE`, else `~/.cache/skymeter`.
pub fn cache() -> PathBuf {
    std::env::var_os("SKYMETER_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/skymeter"))
        })
        .unwrap_or_else(|| PathBuf::from("/nonexistent"))
}

/// A program scripts/test installs in a venv of its own: `$variable`, else
/// `<cache>/<venv>/bin/<name>`, else `name` on PATH.
pub fn venv_program(variable: &str, venv: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| Some(cache().join(venv).join("bin").join(name)).filter(|p| p.is_file()))
        .or_else(|| find_program(name))
}

/// What the browser tests of the web UI need: node, a Chromium, and the directory whose
/// `node_modules` holds playwright-core.
pub struct Browser {
    pub node: PathBuf,
    pub chromium: PathBuf,
    pub playwright_dir: PathBuf,
}

/// Finds [`Browser`]'s programs: each from its variable (`SKYMETER_NODE`,
/// `SKYMETER_CHROMIUM`, `SKYMETER_UI_TEST_DIR`), else from PATH (`node`; `chromium` or
/// `chromium-browser`) and the cache where scripts/test installs playwright-core
/// (`$SKYMETER_CACHE`, else `~/.cache/skymeter`, then `ui-test`). `Err` says what is
/// missing and how to get it.
pub fn browser() -> Result<Browser, String> {
    let from_env = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let node = from_env("SKYMETER_NODE")
        .or_else(|| find_program("node"))
        .ok_or("node is not installed (apt-get install nodejs, or set SKYMETER_NODE)")?;
    let chromium = from_env("SKYMETER_CHROMIUM")
        .or_else(|| find_program("chromium"))
        .or_else(|| find_program("chromium-browser"))
        .ok_or("chromium is not installed (apt-get install chromium, or set SKYMETER_CHROMIUM)")?;
    let playwright_dir =
        from_env("SKYMETER_UI_TEST_DIR").unwrap_or_else(|| cache().join("ui-test"));
    if !playwright_dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Err(format!(
            "playwright-core is not installed in {} (scripts/test installs it: npm install \
             --prefix {0} playwright-core@1; or set SKYMETER_UI_TEST_DIR)",
            playwright_dir.display()
        ));
    }
    Ok(Browser {
        node,
        chromium,
        playwright_dir,
    })
}
