//! `skymeter run`: the agent. Its tasks come from a task file (TOML or a snap manifest);
//! with `--api`, also from its API while it runs (`skymeter task …`, [`crate::agent_api`]).

use crate::agent_api;
use crate::cli::RunArgs;
use crate::output::{report_config_errors, shutdown_signal, FAILURE, USAGE};
use skymeter_pipeline::config::snap;
use skymeter_pipeline::manager::{SourceFormat, TaskManager};
use skymeter_pipeline::{load_file, AgentSettings, Runner};
use skymeter_plugin_api::Registry;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

pub async fn run(args: RunArgs, registry: &std::sync::Arc<Registry>) -> ExitCode {
    if let Some(addr) = args.api {
        return run_with_api(args, addr, registry).await;
    }
    let Some(config) = args.config.as_ref() else {
        eprintln!("error: give a task file with -c, or --api to create tasks at run time");
        return ExitCode::from(USAGE);
    };
    let mut cfg = match load_file(config, registry, true) {
        Ok(c) => c,
        Err(errs) => return report_config_errors(&errs),
    };
    if let Err(code) = keep_tasks(&mut cfg, &args.tasks, config) {
        return code;
    }
    let runner = Runner {
        agent_id: cfg.agent_id,
        tasks: cfg.tasks,
    };
    let summary = if args.once {
        runner.run_once().await
    } else {
        let (tx, rx) = watch::channel(false);
        stop_on_signal(tx);
        tracing::info!(agent = %runner.agent_id, tasks = runner.tasks.len(), "skymeter agent started");
        runner.run(rx).await
    };
    let runs = summary.runs.len();
    let points: usize = summary.runs.iter().map(|r| r.points).sum();
    let errors: usize = summary.runs.iter().map(|r| r.collect_errors).sum();
    tracing::info!(runs, points, errors, "stopped");
    // A long-running agent that shut down cleanly succeeded, whatever failed along the way
    // (that is in its logs and batches); `--once` answers for its single run.
    if args.once && summary.has_failures() {
        ExitCode::from(FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--task NAME…`: keeps only those tasks; a name the file does not have is a usage error.
pub(crate) fn keep_tasks(
    cfg: &mut skymeter_pipeline::LoadedConfig,
    names: &[String],
    file: &std::path::Path,
) -> Result<(), ExitCode> {
    if names.is_empty() {
        return Ok(());
    }
    let known: Vec<String> = cfg.tasks.iter().map(|t| t.name.clone()).collect();
    if let Some(missing) = names.iter().find(|n| !known.contains(n)) {
        eprintln!(
            "error: no task named `{missing}` in {}; it has: {}",
            file.display(),
            known.join(", ")
        );
        return Err(ExitCode::from(USAGE));
    }
    cfg.tasks.retain(|t| names.contains(&t.name));
    Ok(())
}

/// An agent's signals: the first asks its tasks to finish their runs and flush (`tx`), a
/// second exits at once.
pub(crate) fn stop_on_signal(tx: watch::Sender<bool>) {
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing the runs in flight and flushing publishers (signal again to exit at once)");
        let _ = tx.send(true);
        shutdown_signal().await;
        eprintln!("second signal: exiting without flushing");
        std::process::exit(130);
    });
}

/// `skymeter run --api ADDR [-c FILE]`: the config file's tasks, the tasks saved by earlier
/// runs, and the agent API, until SIGINT/SIGTERM.
pub async fn run_with_api(
    args: RunArgs,
    addr: std::net::SocketAddr,
    registry: &Arc<Registry>,
) -> ExitCode {
    let (agent, agent_id, file_tasks) = match &args.config {
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", path.display());
                    return ExitCode::from(USAGE);
                }
            };
            let mut cfg = match load_file(path, registry, true) {
                Ok(c) => c,
                Err(errs) => return report_config_errors(&errs),
            };
            if let Err(code) = keep_tasks(&mut cfg, &args.tasks, path) {
                return code;
            }
            let format = if snap::is_manifest(&path.display().to_string(), &text) {
                SourceFormat::Manifest
            } else {
                SourceFormat::Toml
            };
            (cfg.agent, cfg.agent_id, Some((format, text, cfg.tasks)))
        }
        None => {
            let agent = AgentSettings {
                id: None,
                data_dir: args.data_dir.clone(),
            };
            match agent.ensure_agent_id() {
                Ok(id) => (agent, id, None),
                Err(e) => return report_config_errors(&[e]),
            }
        }
    };
    let (token, token_file) = if args.api_no_auth {
        if !addr.ip().is_loopback() {
            eprintln!("error: --api-no-auth is refused on {addr}: anyone who reaches it could run commands through the exec collector. Use a loopback address, or leave auth on");
            return ExitCode::from(USAGE);
        }
        (None, None)
    } else {
        let file = args
            .api_token_file
            .clone()
            .unwrap_or_else(|| agent_api::default_token_file(&agent.data_dir()));
        match agent_api::ensure_token_file(&file) {
            Ok(t) => (Some(t), Some(file)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(USAGE);
            }
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr} for the agent API: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let (tx, rx) = watch::channel(false);
    let manager = TaskManager::new(agent, agent_id.clone(), registry.clone(), rx.clone());
    if let Some((format, text, tasks)) = file_tasks {
        manager.add_file_tasks(format, &text, tasks);
    }
    for problem in manager.restore() {
        tracing::warn!("{problem}");
    }
    stop_on_signal(tx);
    let server = tokio::spawn(agent_api::serve(
        listener,
        manager.clone(),
        registry.clone(),
        token,
        rx.clone(),
    ));
    tracing::info!(
        agent = %agent_id,
        api = %format!("http://{bound}"),
        token_file = %token_file.as_ref().map_or("none (--api-no-auth)".to_string(), |f| f.display().to_string()),
        tasks = manager.list().len(),
        "skymeter agent started with its API"
    );
    let mut stop = rx;
    let _ = stop.wait_for(|v| *v).await;
    manager.join_all().await;
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("agent API: {e}"),
        Err(e) => tracing::error!("agent API task: {e}"),
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
