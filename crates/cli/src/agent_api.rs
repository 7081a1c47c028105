//! The agent API of `skymeter run --api ADDR`: tasks created, listed, started, stopped,
//! enabled, removed and watched while the agent runs (what snap's `snapteld` REST API gave
//! `snaptel`), plus the plugins and metrics this agent has.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/health` | no token |
//! | GET | `/api/v1/tasks` | every task |
//! | POST | `/api/v1/tasks?start=true&format=toml\|manifest` | body: TOML or a snap manifest (JSON/YAML); 201 with the tasks made |
//! | GET | `/api/v1/tasks/{id}` | one task (id or name) |
//! | PUT | `/api/v1/tasks/{id}/start` `…/stop` `…/enable` | lifecycle |
//! | DELETE | `/api/v1/tasks/{id}` | stop and forget |
//! | GET | `/api/v1/tasks/{id}/watch` | server-sent events: `collected` (points), `finished`, `state` |
//! | GET | `/api/v1/plugins`, `/api/v1/metrics` | what this agent can run |
//!
//! Every route but `/health` wants `Authorization: Bearer <token>`; the token is the
//! content of the API token file (created at first start, mode 0600), compared by SHA-256
//! in constant time. `--api-no-auth` turns that off, on a loopback address only. Errors are
//! `{"error": {"message", "errors"?: [{file, line, key, message}]}}`, as the server's.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use skymeter_pipeline::manager::{ManagerError, SourceFormat, TaskManager, WatchEvent};
use skymeter_plugin_api::{PluginKind, Registry};
use skymeter_store::tokens;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// The largest task text the API takes.
const MAX_TASK_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct Api {
    manager: Arc<TaskManager>,
    registry: Arc<Registry>,
    /// SHA-256 of the token; `None` without auth.
    token_hash: Option<[u8; 32]>,
    shutdown: watch::Receiver<bool>,
}

/// Reads the API token from `file`, creating it with a fresh token (mode 0600) when it does
/// not exist. Returns the token.
pub fn ensure_token_file(file: &FsPath) -> Result<String, String> {
    match std::fs::read_to_string(file) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {
            return Err(format!(
                "{} is empty; delete it to get a new token, or write one in it",
                file.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    }
    let (_, token) = tokens::generate();
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(file)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| {
        format!(
            "cannot create the agent API token file {}: {e}; give --api-token-file a writable place",
            file.display()
        )
    })?;
    Ok(token)
}

/// The default token file of an agent whose data dir is `data_dir`.
pub fn default_token_file(data_dir: &FsPath) -> PathBuf {
    data_dir.join("agent-api-token")
}

/// Serves the agent API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    manager: Arc<TaskManager>,
    registry: Arc<Registry>,
    token: Option<String>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let api = Api {
        manager,
        registry,
        token_hash: token.as_deref().map(tokens::hash),
        shutdown: shutdown.clone(),
    };
    let authed = Router::new()
        .route("/api/v1/tasks", get(list_tasks).post(create_task))
        .route("/api/v1/tasks/{id}", get(get_task).delete(remove_task))
        .route("/api/v1/tasks/{id}/start", put(start_task).post(start_task))
        .route("/api/v1/tasks/{id}/stop", put(stop_task).post(stop_task))
        .route(
            "/api/v1/tasks/{id}/enable",
            put(enable_task).post(enable_task),
        )
        .route("/api/v1/tasks/{id}/watch", get(watch_task))
        .route("/api/v1/plugins", get(list_plugins))
        .route("/api/v1/metrics", get(list_metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            require_token,
        ));
    let app = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(authed)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route; the agent API is under /api/v1/tasks, /api/v1/plugins, /api/v1/metrics".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_TASK_BYTES))
        .with_state(api);
    let mut stop = shutdown;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

fn manager_error(e: ManagerError) -> Response {
    match e {
        ManagerError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        ManagerError::Conflict(m) => error(StatusCode::CONFLICT, m),
        ManagerError::Io(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        ManagerError::Invalid(errs) => {
            let list: Vec<_> = errs
                .iter()
                .map(
                    |e| json!({"file": e.file, "line": e.line, "key": e.key, "message": e.message}),
                )
                .collect();
            let message = errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": message, "errors": list}})),
            )
                .into_response()
        }
    }
}

async fn require_token(
    State(api): State<Api>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(want) = &api.token_hash {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| tokens::hash(t.trim()));
        match given {
            Some(h) if tokens::ct_eq(&h, want) => {}
            Some(_) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "the token is not this agent's; it is in the agent's API token file (--api-token-file)".into(),
                )
            }
            None => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "this agent API wants `Authorization: Bearer <token>`; the token is in the agent's API token file".into(),
                )
            }
        }
    }
    next.run(req).await
}

async fn list_tasks(State(api): State<Api>) -> Response {
    Json(json!({"tasks": api.manager.list()})).into_response()
}

#[derive(Deserialize)]
struct CreateParams {
    #[serde(default = "yes")]
    start: bool,
    format: Option<String>,
}

fn yes() -> bool {
    true
}

async fn create_task(
    State(api): State<Api>,
    Query(params): Query<CreateParams>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match params.format.as_deref() {
        Some("toml") => Some(SourceFormat::Toml),
        Some("manifest" | "json" | "yaml") => Some(SourceFormat::Manifest),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown format `{other}`; use toml or manifest (a snap task manifest, JSON or YAML)"),
            )
        }
        None if content_type.contains("json") || content_type.contains("yaml") => {
            Some(SourceFormat::Manifest)
        }
        None if content_type.contains("toml") => Some(SourceFormat::Toml),
        None => None,
    };
    let manager = api.manager.clone();
    // Building plugins may do blocking I/O (files, the data dir).
    match tokio::task::spawn_blocking(move || manager.create(&body, format, params.start)).await {
        Ok(Ok(tasks)) => (StatusCode::CREATED, Json(json!({"tasks": tasks}))).into_response(),
        Ok(Err(e)) => manager_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task creation failed: {e}"),
        ),
    }
}

async fn get_task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.manager.get(&id) {
        Ok(t) => Json(t).into_response(),
        Err(e) => manager_error(e),
    }
}

async fn start_task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let manager = api.manager.clone();
    match tokio::task::spawn_blocking(move || manager.start(&id)).await {
        Ok(Ok(t)) => Json(t).into_response(),
        Ok(Err(e)) => manager_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("start failed: {e}"),
        ),
    }
}

async fn stop_task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.manager.stop(&id).await {
        Ok(t) => Json(t).into_response(),
        Err(e) => manager_error(e),
    }
}

async fn enable_task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.manager.enable(&id) {
        Ok(t) => Json(t).into_response(),
        Err(e) => manager_error(e),
    }
}

async fn remove_task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.manager.remove(&id).await {
        Ok(t) => Json(json!({"removed": t})).into_response(),
        Err(e) => manager_error(e),
    }
}

/// Server-sent events, one per [`WatchEvent`], until the task leaves `running` for good
/// (removed), the watcher goes, or the agent shuts down. A watcher too slow for the task
/// gets a `lagged` event saying how many events it missed.
async fn watch_task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let (info, rx) = match api.manager.watch(&id) {
        Ok(x) => x,
        Err(e) => return manager_error(e),
    };
    let hello = Event::default()
        .event("task")
        .json_data(&info)
        .expect("task info serializes");
    let shutdown = api.shutdown.clone();
    let events = futures::stream::unfold(
        (rx, shutdown, Some(hello)),
        |(mut rx, mut shutdown, hello)| async move {
            if let Some(h) = hello {
                return Some((Ok::<_, std::convert::Infallible>(h), (rx, shutdown, None)));
            }
            let next = tokio::select! {
                r = rx.recv() => r,
                _ = shutdown.wait_for(|v| *v) => return None,
            };
            let event = match next {
                Ok(ev) => {
                    let name = match &*ev {
                        WatchEvent::Collected { .. } => "collected",
                        WatchEvent::Finished { .. } => "finished",
                        WatchEvent::State { .. } => "state",
                    };
                    Event::default()
                        .event(name)
                        .json_data(&*ev)
                        .expect("events serialize")
                }
                Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(event), (rx, shutdown, None)))
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn list_plugins(State(api): State<Api>) -> Response {
    let plugins: Vec<_> = api
        .registry
        .descriptions()
        .into_iter()
        .map(|d| json!({"name": d.name, "kind": d.kind.as_str(), "summary": d.summary}))
        .collect();
    Json(json!({"plugins": plugins})).into_response()
}

async fn list_metrics(State(api): State<Api>) -> Response {
    let mut metrics = Vec::new();
    for d in api.registry.descriptions() {
        if d.kind != PluginKind::Collector {
            continue;
        }
        for m in (d.metrics)() {
            metrics.push(json!({
                "plugin": d.name,
                "metric": m.name,
                "unit": m.unit.as_str(),
                "stats": m.stats.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "labels": m.labels,
                "description": m.description,
            }));
        }
    }
    Json(json!({"metrics": metrics})).into_response()
}
