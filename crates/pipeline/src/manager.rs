//! Tasks of a running agent that can be created, started, stopped, enabled and removed
//! while it runs (the agent API, `skymeter task …`; snap's task lifecycle).
//!
//! Each task is kept as its source text (TOML or a snap manifest) and built afresh on every
//! start, so a stopped task holds no plugin, connection or buffer. Tasks created at run time
//! are saved under `<data_dir>/tasks/<id>.json` (text, name, wanted state) and come back at
//! the next start in the state they were left in; tasks of the agent's config file come
//! from the file and are not saved.
//!
//! States: `running`; `stopped` (asked, or created with `start = false`); `disabled` (its
//! `max_failures` runs in a row failed; `enable` makes it `stopped` again); `ended` (its
//! `count` or schedule `stop` was reached); `failed` (it could not be built, e.g. a
//! `${VAR}` missing at restart; the reason is in `last_error`).

use crate::config::{load_manifest_str, load_source, snap, AgentSettings, Task};
use crate::runner::{run_task, RunObserver, TaskEnd, TaskRunResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use skymeter_model::Batch;
use skymeter_plugin_api::config::Source;
use skymeter_plugin_api::{ConfigError, Registry};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// What a task is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Toml,
    /// A snap task manifest, JSON or YAML.
    Manifest,
}

/// Where a task came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The agent's config file (not saved; the file is its record).
    File,
    /// Created through the agent API (saved in the data dir).
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    Stopped,
    Disabled,
    Ended,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Stopped => "stopped",
            TaskState::Disabled => "disabled",
            TaskState::Ended => "ended",
            TaskState::Failed => "failed",
        }
    }
}

/// The last run of a task, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastRun {
    pub finished: DateTime<Utc>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub resources: usize,
    pub points: usize,
    pub costs: usize,
    pub errors: usize,
    pub failed_collectors: usize,
    pub failed_publishers: usize,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInfo {
    pub id: String,
    pub name: String,
    pub state: TaskState,
    pub origin: Origin,
    pub format: SourceFormat,
    pub created: DateTime<Utc>,
    /// `every 10s`, `cron 0 */5 * * * *`.
    pub schedule: String,
    pub collect: Vec<String>,
    pub process: Vec<String>,
    pub publish: Vec<String>,
    pub runs: u64,
    pub failed_runs: u64,
    pub last_run: Option<LastRun>,
    pub last_error: Option<String>,
}

/// What `watch` streams: each run's collected points, then its outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    Collected {
        task: String,
        points: Vec<WatchPoint>,
        /// Points left out of this event (more than [`WATCH_POINTS_MAX`]).
        omitted: usize,
    },
    Finished {
        task: String,
        run: LastRun,
    },
    /// The task left `running` (stopped, disabled, ended or removed).
    State {
        task: String,
        state: TaskState,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchPoint {
    pub metric: String,
    pub value: f64,
    pub ts: DateTime<Utc>,
    pub resource: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Bound of the points one watch event carries, so that a watcher of a big task does not
/// copy whole batches.
pub const WATCH_POINTS_MAX: usize = 10_000;

/// The saved form of an API-created task.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    id: String,
    name: String,
    format: SourceFormat,
    text: String,
    /// The state it was left in (running, stopped, disabled or ended).
    state: TaskState,
    created: DateTime<Utc>,
}

/// Why a lifecycle call was refused.
#[derive(Debug)]
pub enum ManagerError {
    NotFound(String),
    /// The request does not fit the task's state or origin (HTTP 409).
    Conflict(String),
    /// The task text is wrong (HTTP 400), every mistake located.
    Invalid(Vec<ConfigError>),
    /// Saving to the data dir failed (HTTP 500).
    Io(String),
}

impl std::fmt::Display for ManagerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagerError::NotFound(s) | ManagerError::Conflict(s) | ManagerError::Io(s) => {
                f.write_str(s)
            }
            ManagerError::Invalid(errs) => {
                let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                f.write_str(&list.join("\n"))
            }
        }
    }
}

struct Entry {
    info: TaskInfo,
    text: String,
    stats: Arc<Observer>,
    running: Option<Running>,
    /// Bumped on every start, so that a loop that ends late does not overwrite a newer state.
    generation: u64,
}

struct Running {
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

/// Keeps a task's run statistics and feeds its watchers.
struct Observer {
    name: String,
    events: broadcast::Sender<Arc<WatchEvent>>,
    stats: Mutex<(u64, u64, Option<LastRun>)>,
}

impl RunObserver for Observer {
    fn collected(&self, batch: &Batch) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let points = batch
            .points
            .iter()
            .take(WATCH_POINTS_MAX)
            .map(|p| WatchPoint {
                metric: p.metric.to_string(),
                value: p.value,
                ts: p.ts,
                resource: p.resource.id.to_string(),
                labels: p
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .collect();
        let _ = self.events.send(Arc::new(WatchEvent::Collected {
            task: self.name.clone(),
            points,
            omitted: batch.points.len().saturating_sub(WATCH_POINTS_MAX),
        }));
    }

    fn finished(&self, r: &TaskRunResult) {
        let run = LastRun {
            finished: Utc::now(),
            window_start: r.window.map(|w| w.start),
            window_end: r.window.map(|w| w.end),
            resources: r.resources,
            points: r.points,
            costs: r.costs,
            errors: r.collect_errors,
            failed_collectors: r.failed_collectors,
            failed_publishers: r.failed_publishers,
        };
        {
            let mut s = self.stats.lock().expect("stats lock");
            s.0 += 1;
            if r.failed_collectors > 0 || r.failed_publishers > 0 {
                s.1 += 1;
            }
            s.2 = Some(run.clone());
        }
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(Arc::new(WatchEvent::Finished {
                task: self.name.clone(),
                run,
            }));
        }
    }
}

/// Resolves `${VAR}` references of task texts.
type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The tasks of one running agent.
pub struct TaskManager {
    agent: AgentSettings,
    agent_id: String,
    registry: Arc<Registry>,
    env: Env,
    tasks: Mutex<BTreeMap<String, Entry>>,
    /// Held through a whole `create`, so that two creates of one name cannot both pass the
    /// uniqueness check.
    creating: Mutex<()>,
    /// Turns true at agent shutdown: every loop finishes its run and flushes.
    shutdown: watch::Receiver<bool>,
    me: std::sync::Weak<TaskManager>,
}

impl TaskManager {
    pub fn new(
        agent: AgentSettings,
        agent_id: String,
        registry: Arc<Registry>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| TaskManager {
            agent,
            agent_id,
            registry,
            env: Arc::new(|k| std::env::var(k).ok()),
            tasks: Mutex::new(BTreeMap::new()),
            creating: Mutex::new(()),
            shutdown,
            me: me.clone(),
        })
    }

    fn tasks_dir(&self) -> PathBuf {
        self.agent.data_dir().join("tasks")
    }

    /// Builds a task from its text: the one named `name` in it. The config file's text
    /// carries its own `[agent]`; an API-made task gets the agent's.
    fn build(
        &self,
        origin: &Origin,
        format: SourceFormat,
        text: &str,
        name: &str,
    ) -> Result<Task, Vec<ConfigError>> {
        let agent = (*origin == Origin::Api).then_some(&self.agent);
        let cfg = match format {
            SourceFormat::Manifest => load_manifest_str(
                "task manifest",
                text,
                name,
                agent,
                &self.registry,
                &*self.env,
                true,
            )?,
            SourceFormat::Toml => load_source(
                Source::new("task", text.to_string()),
                &self.registry,
                &*self.env,
                true,
                agent,
            )?,
        };
        cfg.tasks
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                vec![ConfigError {
                    file: "task".into(),
                    line: None,
                    column: None,
                    key: None,
                    message: format!("the task text no longer has a task named `{name}`"),
                    snippet: None,
                }]
            })
    }

    /// Adds the tasks of the agent's config file (already validated), and starts them.
    pub fn add_file_tasks(&self, format: SourceFormat, text: &str, tasks: Vec<Task>) {
        for task in tasks {
            let id = uuid::Uuid::now_v7().to_string();
            let info = describe(&id, &task, Origin::File, format, Utc::now());
            self.insert(info, text.to_string(), Some(task));
        }
    }

    /// Creates tasks from a TOML text (each `[[task]]` becomes one) or a snap manifest
    /// (one task, named by its `name` or `Task-<id>` as snap does); starts them unless
    /// `start` is false; saves them. Returns what was created.
    pub fn create(
        &self,
        text: &str,
        format: Option<SourceFormat>,
        start: bool,
    ) -> Result<Vec<TaskInfo>, ManagerError> {
        let format = format.unwrap_or(if snap::is_manifest("", text) {
            SourceFormat::Manifest
        } else {
            SourceFormat::Toml
        });
        let _one_at_a_time = self.creating.lock().expect("create lock");
        // Validate without writing, to learn the names.
        let id = uuid::Uuid::now_v7().to_string();
        let default_name = format!("Task-{id}");
        let names: Vec<String> = match format {
            SourceFormat::Manifest => load_manifest_str(
                "task manifest",
                text,
                &default_name,
                Some(&self.agent),
                &self.registry,
                &*self.env,
                false,
            ),
            SourceFormat::Toml => load_source(
                Source::new("task", text.to_string()),
                &self.registry,
                &*self.env,
                false,
                Some(&self.agent),
            ),
        }
        .map_err(ManagerError::Invalid)?
        .tasks
        .into_iter()
        .map(|t| t.name)
        .collect();
        {
            let tasks = self.tasks.lock().expect("tasks lock");
            if let Some(dup) = names
                .iter()
                .find(|n| tasks.values().any(|e| &e.info.name == *n))
            {
                return Err(ManagerError::Conflict(format!(
                    "a task named `{dup}` exists already; task names are unique (they key the task's window marks). Rename it or remove the other"
                )));
            }
        }
        let mut created = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let id = if i == 0 {
                id.clone()
            } else {
                uuid::Uuid::now_v7().to_string()
            };
            let task = self
                .build(&Origin::Api, format, text, name)
                .map_err(ManagerError::Invalid)?;
            let mut info = describe(&id, &task, Origin::Api, format, Utc::now());
            if !start {
                info.state = TaskState::Stopped;
            }
            self.save(&Saved {
                id: id.clone(),
                name: name.clone(),
                format,
                text: text.to_string(),
                state: info.state,
                created: info.created,
            })?;
            self.insert(info, text.to_string(), start.then_some(task));
            created.push(self.get(&id)?);
        }
        Ok(created)
    }

    /// Brings back the tasks saved by earlier runs, each in the state it was left in.
    pub fn restore(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let dir = self.tasks_dir();
        let Ok(read) = std::fs::read_dir(&dir) else {
            return problems;
        };
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let saved: Saved = match std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!(
                        "{}: not a saved task ({e}); left as it is",
                        file.display()
                    ));
                    continue;
                }
            };
            let taken = {
                let tasks = self.tasks.lock().expect("tasks lock");
                tasks.values().any(|e| e.info.name == saved.name)
            };
            let built = if taken {
                Err(vec![ConfigError {
                    file: file.display().to_string(),
                    line: None,
                    column: None,
                    key: None,
                    message: format!(
                        "a task of the config file is named `{}` too; names are unique. Remove one of them",
                        saved.name
                    ),
                    snippet: None,
                }])
            } else {
                self.build(&Origin::Api, saved.format, &saved.text, &saved.name)
            };
            match built {
                Ok(task) => {
                    let mut info =
                        describe(&saved.id, &task, Origin::Api, saved.format, saved.created);
                    info.state = saved.state;
                    let run = saved.state == TaskState::Running;
                    self.insert(info, saved.text, run.then_some(task));
                }
                Err(errs) => {
                    let msg = errs
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    problems.push(format!(
                        "saved task `{}` ({}) cannot be built: {msg}",
                        saved.name, saved.id
                    ));
                    let info = TaskInfo {
                        id: saved.id.clone(),
                        name: saved.name.clone(),
                        state: TaskState::Failed,
                        origin: Origin::Api,
                        format: saved.format,
                        created: saved.created,
                        schedule: String::new(),
                        collect: vec![],
                        process: vec![],
                        publish: vec![],
                        runs: 0,
                        failed_runs: 0,
                        last_run: None,
                        last_error: Some(msg),
                    };
                    self.insert(info, saved.text, None);
                }
            }
        }
        problems
    }

    fn insert(&self, info: TaskInfo, text: String, start_with: Option<Task>) {
        let (events, _) = broadcast::channel(64);
        let stats = Arc::new(Observer {
            name: info.name.clone(),
            events,
            stats: Mutex::new((0, 0, None)),
        });
        let id = info.id.clone();
        self.tasks.lock().expect("tasks lock").insert(
            id.clone(),
            Entry {
                info,
                text,
                stats,
                running: None,
                generation: 0,
            },
        );
        if let Some(task) = start_with {
            self.spawn(&id, task);
        }
    }

    /// Starts the loop of a built task and marks it running.
    fn spawn(&self, id: &str, mut task: Task) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        let Some(entry) = tasks.get_mut(id) else {
            return;
        };
        entry.generation += 1;
        let generation = entry.generation;
        task.observer = Some(entry.stats.clone() as Arc<dyn RunObserver>);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        // The loop stops on its own stop or on the agent's shutdown.
        let mut agent_shutdown = self.shutdown.clone();
        let (either_tx, either_rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = stop_rx.wait_for(|v| *v) => {}
                _ = agent_shutdown.wait_for(|v| *v) => {}
            }
            let _ = either_tx.send(true);
        });
        let agent_id = self.agent_id.clone();
        let me = self.me.clone();
        let id_owned = id.to_string();
        let join = tokio::spawn(async move {
            let (_, end) = run_task(agent_id, task, either_rx).await;
            if let Some(m) = me.upgrade() {
                m.loop_ended(&id_owned, generation, end);
            }
        });
        entry.running = Some(Running {
            stop: stop_tx,
            join,
        });
        entry.info.state = TaskState::Running;
        entry.info.last_error = None;
    }

    fn loop_ended(&self, id: &str, generation: u64, end: TaskEnd) {
        let saved = {
            let mut tasks = self.tasks.lock().expect("tasks lock");
            let Some(entry) = tasks.get_mut(id) else {
                return;
            };
            if entry.generation != generation {
                return;
            }
            let state = match end {
                TaskEnd::Stopped => TaskState::Stopped,
                TaskEnd::Disabled => TaskState::Disabled,
                TaskEnd::CountReached | TaskEnd::ScheduleEnded => TaskState::Ended,
            };
            // At agent shutdown the task stays `running` in its saved form, to come back.
            if *self.shutdown.borrow() {
                return;
            }
            entry.info.state = state;
            entry.running = None;
            let _ = entry.stats.events.send(Arc::new(WatchEvent::State {
                task: entry.info.name.clone(),
                state,
            }));
            (entry.info.origin == Origin::Api).then(|| (entry.info.clone(), entry.text.clone()))
        };
        if let Some((info, text)) = saved {
            if let Err(e) = self.save_info(&info, text) {
                tracing::error!(task = %info.name, "{e}");
            }
        }
    }

    /// Every task, in creation order.
    pub fn list(&self) -> Vec<TaskInfo> {
        let tasks = self.tasks.lock().expect("tasks lock");
        let mut out: Vec<TaskInfo> = tasks.values().map(with_stats).collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        out
    }

    /// A task by id, or by name when no id matches.
    pub fn get(&self, id_or_name: &str) -> Result<TaskInfo, ManagerError> {
        let tasks = self.tasks.lock().expect("tasks lock");
        find(&tasks, id_or_name).map(|id| with_stats(&tasks[&id]))
    }

    pub fn start(&self, id_or_name: &str) -> Result<TaskInfo, ManagerError> {
        let (id, origin, format, text, name) = {
            let tasks = self.tasks.lock().expect("tasks lock");
            let id = find(&tasks, id_or_name)?;
            let e = &tasks[&id];
            match e.info.state {
                TaskState::Running => return Ok(with_stats(e)),
                TaskState::Disabled => {
                    return Err(ManagerError::Conflict(format!(
                        "task `{}` is disabled after {} failed runs in a row; `enable` it first",
                        e.info.name, e.info.failed_runs
                    )))
                }
                _ => {}
            }
            (
                id,
                e.info.origin.clone(),
                e.info.format,
                e.text.clone(),
                e.info.name.clone(),
            )
        };
        let task = self
            .build(&origin, format, &text, &name)
            .map_err(ManagerError::Invalid)?;
        self.spawn(&id, task);
        self.persist(&id)?;
        self.get(&id)
    }

    /// Stops a task: the run in flight finishes and the task is flushed first.
    pub async fn stop(&self, id_or_name: &str) -> Result<TaskInfo, ManagerError> {
        let (id, running) = {
            let mut tasks = self.tasks.lock().expect("tasks lock");
            let id = find(&tasks, id_or_name)?;
            let e = tasks.get_mut(&id).expect("found");
            if e.info.state == TaskState::Running {
                e.info.state = TaskState::Stopped;
            }
            e.generation += 1;
            (id, e.running.take())
        };
        if let Some(r) = running {
            let _ = r.stop.send(true);
            let _ = r.join.await;
            let tasks = self.tasks.lock().expect("tasks lock");
            if let Some(e) = tasks.get(&id) {
                let _ = e.stats.events.send(Arc::new(WatchEvent::State {
                    task: e.info.name.clone(),
                    state: TaskState::Stopped,
                }));
            }
        }
        self.persist(&id)?;
        self.get(&id)
    }

    /// A disabled task becomes stopped (snap's `enable`); `start` runs it again.
    pub fn enable(&self, id_or_name: &str) -> Result<TaskInfo, ManagerError> {
        let id = {
            let mut tasks = self.tasks.lock().expect("tasks lock");
            let id = find(&tasks, id_or_name)?;
            let e = tasks.get_mut(&id).expect("found");
            if e.info.state != TaskState::Disabled {
                return Err(ManagerError::Conflict(format!(
                    "task `{}` is {}, not disabled; only a disabled task can be enabled",
                    e.info.name,
                    e.info.state.as_str()
                )));
            }
            e.info.state = TaskState::Stopped;
            id
        };
        self.persist(&id)?;
        self.get(&id)
    }

    /// Stops (if running) and forgets a task created through the API.
    pub async fn remove(&self, id_or_name: &str) -> Result<TaskInfo, ManagerError> {
        {
            let tasks = self.tasks.lock().expect("tasks lock");
            let id = find(&tasks, id_or_name)?;
            if tasks[&id].info.origin == Origin::File {
                return Err(ManagerError::Conflict(format!(
                    "task `{}` comes from the agent's config file; remove it there (it can be stopped here)",
                    tasks[&id].info.name
                )));
            }
        }
        let info = self.stop(id_or_name).await?;
        let file = self.tasks_dir().join(format!("{}.json", info.id));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ManagerError::Io(format!(
                    "cannot delete {}: {e}",
                    file.display()
                )))
            }
        }
        self.tasks.lock().expect("tasks lock").remove(&info.id);
        Ok(info)
    }

    /// The events of a task's runs from now on.
    pub fn watch(
        &self,
        id_or_name: &str,
    ) -> Result<(TaskInfo, broadcast::Receiver<Arc<WatchEvent>>), ManagerError> {
        let tasks = self.tasks.lock().expect("tasks lock");
        let id = find(&tasks, id_or_name)?;
        let e = &tasks[&id];
        Ok((with_stats(e), e.stats.events.subscribe()))
    }

    /// Waits for every task loop to end (after the agent's shutdown was asked).
    pub async fn join_all(&self) {
        let joins: Vec<_> = {
            let mut tasks = self.tasks.lock().expect("tasks lock");
            tasks
                .values_mut()
                .filter_map(|e| e.running.take().map(|r| r.join))
                .collect()
        };
        for j in joins {
            let _ = j.await;
        }
    }

    fn persist(&self, id: &str) -> Result<(), ManagerError> {
        let saved = {
            let tasks = self.tasks.lock().expect("tasks lock");
            tasks
                .get(id)
                .filter(|e| e.info.origin == Origin::Api)
                .map(|e| (e.info.clone(), e.text.clone()))
        };
        match saved {
            Some((info, text)) => self.save_info(&info, text),
            None => Ok(()),
        }
    }

    fn save_info(&self, info: &TaskInfo, text: String) -> Result<(), ManagerError> {
        self.save(&Saved {
            id: info.id.clone(),
            name: info.name.clone(),
            format: info.format,
            text,
            state: info.state,
            created: info.created,
        })
    }

    /// Writes a task's file atomically (temp file, fsync, rename).
    fn save(&self, saved: &Saved) -> Result<(), ManagerError> {
        let dir = self.tasks_dir();
        let file = dir.join(format!("{}.json", saved.id));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let tmp = file.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(saved).expect("serializes"))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &file)
        };
        write().map_err(|e| {
            ManagerError::Io(format!(
                "cannot save task `{}` to {}: {e}; make the agent's data dir writable",
                saved.name,
                file.display()
            ))
        })
    }
}

fn find(tasks: &BTreeMap<String, Entry>, id_or_name: &str) -> Result<String, ManagerError> {
    if tasks.contains_key(id_or_name) {
        return Ok(id_or_name.to_string());
    }
    tasks
        .values()
        .find(|e| e.info.name == id_or_name)
        .map(|e| e.info.id.clone())
        .ok_or_else(|| {
            ManagerError::NotFound(format!(
                "no task with id or name `{id_or_name}`; `skymeter task list` shows them"
            ))
        })
}

fn with_stats(e: &Entry) -> TaskInfo {
    let mut info = e.info.clone();
    let s = e.stats.stats.lock().expect("stats lock");
    info.runs = s.0;
    info.failed_runs = s.1;
    info.last_run = s.2.clone();
    info
}

fn describe(
    id: &str,
    task: &Task,
    origin: Origin,
    format: SourceFormat,
    created: DateTime<Utc>,
) -> TaskInfo {
    let mut process: Vec<String> = task.processors.iter().map(|p| p.name.clone()).collect();
    let mut publish: Vec<String> = task.publishers.iter().map(|p| p.name.clone()).collect();
    for b in &task.branches {
        process.extend(b.processors.iter().map(|p| p.name.clone()));
        publish.extend(b.publishers.iter().map(|p| p.name.clone()));
    }
    TaskInfo {
        id: id.to_string(),
        name: task.name.clone(),
        state: TaskState::Running,
        origin,
        format,
        created,
        schedule: crate::schedule::describe(&task.schedule),
        collect: task.collectors.iter().map(|c| c.name.clone()).collect(),
        process,
        publish,
        runs: 0,
        failed_runs: 0,
        last_run: None,
        last_error: None,
    }
}

#[cfg(test)]
mod tests;
