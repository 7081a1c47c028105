use super::*;
use std::time::Duration;

fn manager(dir: &std::path::Path) -> (Arc<TaskManager>, watch::Sender<bool>) {
    let (tx, rx) = watch::channel(false);
    let agent = AgentSettings {
        id: Some("test-agent".into()),
        data_dir: Some(dir.to_path_buf()),
    };
    let m = TaskManager::new(
        agent,
        "test-agent".into(),
        Arc::new(skymeter_plugins::builtin()),
        rx,
    );
    (m, tx)
}

fn host_task(name: &str, out: &std::path::Path) -> String {
    format!(
        r#"[[task]]
name = "{name}"
schedule = {{ every = "200ms" }}
metrics = ["memory.*"]
collect = [{{ plugin = "host" }}]
publish = [{{ plugin = "file", path = "{}" }}]
"#,
        out.display()
    )
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn create_watch_stop_restore_start_remove() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let (m, _tx) = manager(dir.path());
    let created = m.create(&host_task("mem", &out), None, true).unwrap();
    assert_eq!(created.len(), 1);
    let id = created[0].id.clone();
    assert_eq!(created[0].state, TaskState::Running);
    assert_eq!(created[0].format, SourceFormat::Toml);
    assert_eq!(created[0].schedule, "every 200ms");

    // watch sees the points of the next run, then its outcome.
    let (_, mut rx) = m.watch("mem").unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    match &*first {
        WatchEvent::Collected { task, points, .. } => {
            assert_eq!(task, "mem");
            assert!(points
                .iter()
                .any(|p| p.metric == "memory.total" && p.value > 0.0));
        }
        other => panic!("{other:?}"),
    }
    let second = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(&*second, WatchEvent::Finished { run, .. } if run.points > 0));

    // A second task of the same name is refused.
    let dup = m.create(&host_task("mem", &out), None, true).unwrap_err();
    assert!(matches!(dup, ManagerError::Conflict(_)), "{dup}");

    let stopped = m.stop(&id).await.unwrap();
    assert_eq!(stopped.state, TaskState::Stopped);
    assert!(stopped.runs >= 1);
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        lines,
        "nothing published after stop"
    );

    // A new agent on the same data dir: the task is back, stopped as it was left.
    drop(m);
    let (m2, _tx2) = manager(dir.path());
    assert!(m2.restore().is_empty());
    let listed = m2.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].state, TaskState::Stopped);
    let started = m2.start(&id).unwrap();
    assert_eq!(started.state, TaskState::Running);
    wait_for("a run after start", || m2.get(&id).unwrap().runs >= 1).await;

    let removed = m2.remove("mem").await.unwrap();
    assert_eq!(removed.id, id);
    assert!(m2.list().is_empty());
    assert!(!dir.path().join("tasks").join(format!("{id}.json")).exists());
    assert!(matches!(m2.get(&id), Err(ManagerError::NotFound(_))));
}

#[tokio::test]
async fn a_running_task_comes_back_running_and_count_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let (m, tx) = manager(dir.path());
    let manifest = format!(
        r#"{{"version": 1, "name": "counted",
  "schedule": {{"type": "simple", "interval": "200ms", "count": 2}},
  "workflow": {{"collect": {{"metrics": {{"/skymeter/host/memory/total": {{}}}},
    "publish": [{{"plugin_name": "file", "config": {{"file": "{}"}}}}]}}}}}}"#,
        out.display()
    );
    let created = m.create(&manifest, None, true).unwrap();
    assert_eq!(created[0].format, SourceFormat::Manifest);
    assert_eq!(created[0].name, "counted");
    wait_for("count reached", || {
        m.get("counted").unwrap().state == TaskState::Ended
    })
    .await;
    assert_eq!(m.get("counted").unwrap().runs, 2);

    // An agent shutdown leaves a running task saved as running.
    let running = m
        .create(&host_task("keeps-running", &out), None, true)
        .unwrap();
    tx.send(true).unwrap();
    m.join_all().await;
    drop(m);
    let (m2, _tx2) = manager(dir.path());
    m2.restore();
    assert_eq!(m2.get(&running[0].id).unwrap().state, TaskState::Running);
    assert_eq!(m2.get("counted").unwrap().state, TaskState::Ended);
    wait_for("runs after restore", || {
        m2.get("keeps-running").unwrap().runs >= 1
    })
    .await;
}

#[tokio::test]
async fn failing_runs_disable_a_task_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _tx) = manager(dir.path());
    let text = r#"[[task]]
name = "broken"
schedule = { every = "100ms" }
max_failures = 2
collect = [{ plugin = "http_json", url = "http://127.0.0.1:1/none", metrics = [{ name = "x.y", pointer = "/v" }] }]
publish = [{ plugin = "stdout" }]
"#;
    let created = m.create(text, Some(SourceFormat::Toml), false);
    let created = match created {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(created[0].state, TaskState::Stopped);
    m.start("broken").unwrap();
    wait_for("disabled", || {
        m.get("broken").unwrap().state == TaskState::Disabled
    })
    .await;
    assert_eq!(m.get("broken").unwrap().failed_runs, 2);
    assert!(matches!(m.start("broken"), Err(ManagerError::Conflict(_))));
    assert_eq!(m.enable("broken").unwrap().state, TaskState::Stopped);
    assert!(matches!(m.enable("broken"), Err(ManagerError::Conflict(_))));
}

#[tokio::test]
async fn bad_task_text_is_refused_with_every_mistake_located() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _tx) = manager(dir.path());
    let err = m
        .create(
            "[agent]\nid = \"x\"\n[[task]]\nname = \"t\"\nschedule = { every = \"1s\" }\ncollect = [{ plugin = \"nope\" }]\npublish = [{ plugin = \"stdout\" }]\n",
            None,
            true,
        )
        .unwrap_err();
    let ManagerError::Invalid(errs) = err else {
        panic!("{err}")
    };
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].message.contains("cannot have an `[agent]` table"));
    assert_eq!(errs[1].line, Some(6));
    assert!(m.list().is_empty());
    assert!(!dir.path().join("tasks").exists());
}
