//! Counters about skymeter's own work, per task and plugin: runs, records, errors, time.
//! The runner writes them; the `internal` collector and the run summary read them.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Totals since the process started for one (task, plugin).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub runs: u64,
    pub resources: u64,
    pub points: u64,
    pub costs: u64,
    pub errors: u64,
    pub duration_total_s: f64,
    pub duration_last_s: f64,
}

/// The process-wide table of counters.
#[derive(Debug, Default)]
pub struct SelfStats {
    table: Mutex<BTreeMap<(String, String), Counters>>,
}

impl SelfStats {
    /// The process-wide instance.
    pub fn global() -> &'static SelfStats {
        static GLOBAL: OnceLock<SelfStats> = OnceLock::new();
        GLOBAL.get_or_init(SelfStats::default)
    }

    /// Updates the counters of (`task`, `plugin`).
    pub fn record(&self, task: &str, plugin: &str, f: impl FnOnce(&mut Counters)) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        f(t.entry((task.to_string(), plugin.to_string())).or_default());
    }

    /// A copy of every row, ordered by task then plugin.
    pub fn snapshot(&self) -> Vec<((String, String), Counters)> {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}
