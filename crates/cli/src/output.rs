//! What every command's output shares: exit codes, tables, the progress line, atomic
//! writes, config-error reports and the shutdown signal.

use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use skymeter_plugin_api::ConfigError;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--format` of the commands that print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Exit status of a usage or config error.
pub const USAGE: u8 = 2;
/// Exit status of a runtime failure.
pub const FAILURE: u8 = 1;

/// Prints every config error and how many there were; exit status 2.
pub fn report_config_errors(errors: &[ConfigError]) -> ExitCode {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!("{} error(s); nothing was run", errors.len());
    ExitCode::from(USAGE)
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A table in the style every command prints.
pub fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

/// One line on stderr rewritten in place while pages arrive, only when stderr is a terminal:
/// logs and pipes get the summary alone.
pub struct Progress {
    on: bool,
    noun: &'static str,
}

impl Progress {
    /// `noun` names what is counted (`products`, `SKUs`, `prices`).
    pub fn new(noun: &'static str) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            noun,
        }
    }

    pub fn update(&self, what: &str, n: u64) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2Kreading prices: {what}: {n} {}", self.noun);
            let _ = err.flush();
        }
    }

    pub fn finish(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`, so that a
/// reader never sees half a table.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prices.json".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// A price as written in the table, without float noise or trailing zeros: 0.0000166667,
/// 0.096, 19.71.
pub fn format_usd(v: f64) -> String {
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}

pub fn align_numbers(t: &mut Table, columns: std::ops::Range<usize>) {
    for i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}
