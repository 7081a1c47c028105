//! The pipeline: task files (loading, `${…}` references, validation that names file, line
//! and key), schedules with aligned collection windows, and the runner that drives each
//! task's collect → process → publish with timeouts, error capture and graceful shutdown.

pub mod clock;
pub mod config;
pub mod outcome;
pub mod runner;
pub mod schedule;
pub mod windows;

pub use config::{
    load_file, load_manifest_str, load_source, load_str, one_shot_source, AgentSettings, Branch,
    LoadedConfig, Task,
};
pub mod manager;
pub use runner::{
    run_task, run_task_once, RunObserver, RunSummary, Runner, TaskEnd, TaskRunResult,
};
pub use schedule::Schedule;
