//! Link options of the `skymeter` binary (the library and the tests are not affected).
//!
//! The host agent should stay small in memory (issue 13: ≤ 10 MB peak RSS with every cloud
//! built in). Its memory is mostly the executable's own pages, and the kernel maps those
//! 64–128 KiB at a time around each page touched, so what counts is how many such windows
//! the agent's code is spread over. Two link options shrink that:
//!
//! - `--symbol-ordering-file agent.order`: the functions a running agent executes (listed
//!   by `bench/agent_order.sh` from a callgrind run) are placed together at the start of
//!   `.text`, so that they fill a few windows instead of touching hundreds across 30 MB.
//!   Names missing from this build are skipped: a stale list costs memory, never
//!   correctness.
//! - `-no-pie`: a position-dependent executable needs no relocation at start-up, so its
//!   2 MB relocation table is never read and its 1.3 MB of relocated pointers
//!   (`.data.rel.ro`) stay clean file pages that are read only where used. The price is
//!   that the executable's own image is not randomized (its libraries, heap and stacks
//!   still are), as for Go programs built by default: a fair trade in a memory-safe
//!   program whose job is to sit on every host.
//!
//! Both need rust-lld, the default linker of x86_64-unknown-linux-gnu since Rust 1.90; with
//! another target, an older toolchain or a linker chosen in RUSTFLAGS they are left out
//! (as they are when SKYMETER_PLAIN_LINK is set).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=agent.order");
    println!("cargo:rerun-if-env-changed=SKYMETER_PLAIN_LINK");
    if std::env::var_os("SKYMETER_PLAIN_LINK").is_some() || !default_lld() {
        return;
    }
    // Linked from a copy in OUT_DIR, not from the source tree: cargo reuses this script's
    // output for a checkout at another path sharing the target dir (CI clones), and a path
    // into a clone that was since removed would fail the link.
    let source =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("agent.order");
    let order = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("agent.order");
    std::fs::copy(&source, &order).expect("crates/cli/agent.order is readable");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    println!("cargo:rustc-link-arg-bins=-no-pie");
}

/// Whether the binary is linked by the toolchain's own lld: x86_64 Linux GNU, Rust ≥ 1.90,
/// no linker chosen in the flags.
fn default_lld() -> bool {
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker")
        || flags.contains("fuse-ld")
        || std::env::var_os("RUSTC_LINKER").is_some()
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (…)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
