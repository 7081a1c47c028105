//! The window marks: the end of the last completed window of each collector of a task, kept
//! in the agent's data dir so that a restart knows which windows it missed.
//!
//! One file per task, `<data_dir>/windows/<task>.jsonl`, one JSON line per collector:
//! `{"collector":"aws","start":"…","end":"…"}`. A line per collector (not one JSON
//! document) so that a damaged line costs that collector's mark only: the others are still
//! read. Every save writes a temporary file, syncs it, renames it over the old one and syncs
//! the directory, so a `kill -9` or a power cut leaves either the old or the new file.
//!
//! A window counts as completed once its run has finished and its batch was handed to the
//! publishers; a failure inside it is reported in that batch's `errors`, not retried.
//!
//! [`plan`] turns the marks into what a start has to do: the past windows to collect first
//! (collectors that read history, up to their `catch_up`), and the gaps that cannot be
//! filled (collectors that read only the present, or time beyond `catch_up`).

use crate::schedule::Schedule;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use skymeter_model::Window;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// At most this many catch-up runs per start. A longer gap (a 1 s schedule down for a day)
/// is filled with windows of several periods each, still aligned to the schedule's
/// boundaries, so a restart does not spend hours replaying tiny windows.
pub const MAX_CATCH_UP_RUNS: usize = 1000;

/// One line of a marks file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkLine {
    collector: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// The marks of one task: in memory, and in a file when the task has a data dir.
#[derive(Debug, Default)]
pub struct WindowMarks {
    file: Option<PathBuf>,
    marks: BTreeMap<String, Window>,
}

impl WindowMarks {
    /// Marks kept in memory only (`run --once`, tests).
    pub fn in_memory() -> WindowMarks {
        WindowMarks::default()
    }

    /// The file of `task`'s marks under `data_dir`.
    pub fn file_of(data_dir: &Path, task: &str) -> PathBuf {
        data_dir
            .join("windows")
            .join(format!("{}.jsonl", file_safe(task)))
    }

    /// Opens the marks of `task` under `data_dir`. Never fails: a missing file is a first
    /// start; a file that cannot be read, or lines that do not parse, are returned as
    /// problems (each naming file and line and what was done) and the rest is used. A
    /// damaged file is kept beside the new one as `<name>.corrupt-<unix time>` so nothing in
    /// it is lost to a later look.
    pub fn open(data_dir: &Path, task: &str) -> (WindowMarks, Vec<String>) {
        let file = WindowMarks::file_of(data_dir, task);
        let mut marks = WindowMarks {
            file: Some(file.clone()),
            marks: BTreeMap::new(),
        };
        let mut problems = Vec::new();
        let text = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (marks, problems),
            Err(e) => {
                problems.push(format!(
                    "{}: cannot read the window marks ({e}); starting without them, so windows \
                     missed before this start are not filled. Check the data dir's permissions",
                    file.display()
                ));
                return (marks, problems);
            }
        };
        let text = String::from_utf8_lossy(&text);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<MarkLine>(line) {
                Ok(m) if m.end >= m.start => {
                    let w = Window {
                        start: m.start,
                        end: m.end,
                    };
                    // Two lines for one collector (an edit by hand): the later end wins.
                    let slot = marks.marks.entry(m.collector).or_insert(w);
                    if w.end > slot.end {
                        *slot = w;
                    }
                }
                Ok(m) => problems.push(format!(
                    "{}:{}: the window mark of `{}` ends ({}) before it starts ({}); the line is \
                     ignored and that collector starts afresh",
                    file.display(),
                    i + 1,
                    m.collector,
                    m.end,
                    m.start
                )),
                Err(e) => problems.push(format!(
                    "{}:{}: not a window mark ({e}); the line is ignored and its collector \
                     starts afresh (the other lines are used)",
                    file.display(),
                    i + 1
                )),
            }
        }
        if !problems.is_empty() {
            let aside = file.with_extension(format!("jsonl.corrupt-{}", Utc::now().timestamp()));
            match std::fs::rename(&file, &aside) {
                Ok(()) => problems.push(format!(
                    "the damaged file was kept as {} for inspection; a fresh one replaces it",
                    aside.display()
                )),
                Err(e) => problems.push(format!(
                    "could not move the damaged file aside to {} ({e}); it will be overwritten",
                    aside.display()
                )),
            }
        }
        (marks, problems)
    }

    /// The last completed window of `collector`.
    pub fn get(&self, collector: &str) -> Option<Window> {
        self.marks.get(collector).copied()
    }

    /// Records that `collectors` completed `window` (each its own window), and saves.
    pub fn record<'a>(
        &mut self,
        done: impl IntoIterator<Item = (&'a str, Window)>,
    ) -> std::io::Result<()> {
        let mut changed = false;
        for (collector, w) in done {
            let slot = self.marks.entry(collector.to_string()).or_insert(w);
            // Never move a mark backwards (a window re-run after the clock went back).
            if w.end >= slot.end {
                *slot = w;
            }
            changed = true;
        }
        if changed {
            self.save()
        } else {
            Ok(())
        }
    }

    /// Writes the marks atomically: temp file, fsync, rename, fsync of the directory.
    fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let dir = file.parent().expect("a marks file has a directory");
        std::fs::create_dir_all(dir)?;
        let mut text = String::new();
        for (collector, w) in &self.marks {
            let line = MarkLine {
                collector: collector.clone(),
                start: w.start,
                end: w.end,
            };
            text.push_str(&serde_json::to_string(&line).expect("a mark serializes"));
            text.push('\n');
        }
        let tmp = file.with_extension("jsonl.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, file)?;
        // The rename itself is durable only once the directory is synced.
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

/// A task name as a file name: ASCII letters, digits, `-` and `_` kept, every other byte as
/// `%XX`, so that two task names never share a file.
fn file_safe(task: &str) -> String {
    let mut out = String::new();
    for b in task.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What one collector brings to [`plan`].
#[derive(Debug, Clone)]
pub struct CollectorState<'a> {
    pub name: &'a str,
    pub plugin: &'a str,
    pub reads_history: bool,
    pub catch_up: Duration,
    pub mark: Option<Window>,
}

/// A stretch of time a collector has no data for and will not get.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// Index of the collector in the task.
    pub collector: usize,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Why, for the batch's `errors`.
    pub message: String,
}

/// What a task does at start before its live schedule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartPlan {
    /// Past windows to collect first, oldest first, each with the indices of the
    /// collectors that fill it.
    pub catch_up: Vec<(Window, Vec<usize>)>,
    /// Gaps that are not filled, one per collector at most.
    pub gaps: Vec<Gap>,
}

/// Plans a start at `live_start`, the start of the first live window. A collector whose
/// mark ends before it missed `[mark.end, live_start)`: a collector that reads history
/// fills the part within its `catch_up` with windows along the schedule; the rest (all of
/// it for the others, or with `catch_up = 0`) is a [`Gap`].
pub fn plan(
    schedule: &Schedule,
    live_start: DateTime<Utc>,
    collectors: &[CollectorState<'_>],
) -> StartPlan {
    let mut plan = StartPlan::default();
    let mut windows: BTreeMap<(DateTime<Utc>, DateTime<Utc>), Vec<usize>> = BTreeMap::new();
    for (i, c) in collectors.iter().enumerate() {
        let Some(mark) = c.mark else { continue };
        let missed_from = mark.end;
        if missed_from >= live_start {
            continue;
        }
        let span = fmt_span(missed_from, live_start);
        if !c.reads_history {
            plan.gaps.push(Gap {
                collector: i,
                from: missed_from,
                to: live_start,
                message: format!(
                    "no data for {span}: the agent was not running, and the `{}` collector reads \
                     only the present, so this gap cannot be filled",
                    c.plugin
                ),
            });
            continue;
        }
        if c.catch_up.is_zero() {
            plan.gaps.push(Gap {
                collector: i,
                from: missed_from,
                to: live_start,
                message: format!(
                    "no data for {span}: the agent was not running and catch-up is off \
                     (`catch_up = \"0s\"`); set `catch_up` (e.g. \"24h\") to fill such gaps"
                ),
            });
            continue;
        }
        let limit = chrono::Duration::from_std(c.catch_up).unwrap_or(chrono::TimeDelta::MAX);
        let earliest = live_start
            .checked_sub_signed(limit)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let from = if missed_from >= earliest {
            missed_from
        } else {
            // The first schedule boundary at or after `earliest`.
            let b = schedule.boundary_at_or_before(earliest);
            let from = if b < earliest {
                schedule.next_after(earliest)
            } else {
                b
            };
            let from = from.min(live_start);
            plan.gaps.push(Gap {
                collector: i,
                from: missed_from,
                to: from,
                message: format!(
                    "no data for {}: the agent was not running for longer than `catch_up` ({}); \
                     the last {} before this start are filled. Raise `catch_up` on the task or \
                     the collect entry to fill more",
                    fmt_span(missed_from, from),
                    humantime::format_duration(c.catch_up),
                    humantime::format_duration(c.catch_up),
                ),
            });
            from
        };
        for w in windows_between(schedule, from, live_start) {
            windows.entry((w.start, w.end)).or_default().push(i);
        }
    }
    plan.catch_up = windows
        .into_iter()
        .map(|((start, end), who)| (Window { start, end }, who))
        .collect();
    plan
}

/// The schedule's windows covering `[from, to)`, oldest first: each ends at the next
/// boundary (the first may be shorter when `from` is not a boundary). When there would be
/// more than [`MAX_CATCH_UP_RUNS`], consecutive windows are joined so that there are not.
pub fn windows_between(schedule: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Window> {
    let mut ends = Vec::new();
    let mut t = from;
    while t < to {
        let next = schedule.next_after(t).min(to);
        if next <= t {
            break;
        }
        ends.push(next);
        t = next;
        if ends.len() > 100 * MAX_CATCH_UP_RUNS {
            // A cron that fires every second over a long gap: stop enumerating and take the
            // rest as one window.
            ends.push(to);
            break;
        }
    }
    let per = ends.len().div_ceil(MAX_CATCH_UP_RUNS).max(1);
    let mut out = Vec::new();
    let mut start = from;
    for chunk in ends.chunks(per) {
        let end = *chunk.last().expect("chunks are not empty");
        out.push(Window { start, end });
        start = end;
    }
    out
}

fn fmt_span(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    format!("[{}, {})", f(from), f(to))
}

#[cfg(test)]
mod tests;
