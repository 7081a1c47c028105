//! The `postgres` publisher through the binary, to the PostgreSQL these machines run
//! (127.0.0.1:5432, trust auth, database `test`), read back with `psql`.

mod common;
use common::*;
use std::process::Command;

fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-tAc",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn run_once_writes_the_inventory_to_postgresql() {
    let test = "run_once_writes_the_inventory_to_postgresql";
    if std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        skip(
            test,
            "no PostgreSQL on 127.0.0.1:5432 (these machines run one)",
        );
        return;
    }
    if skymeter_testkit::tool::require_tool(
        test,
        skymeter_testkit::tool::program("psql", "postgresql-client"),
    )
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
    let task = dir.path().join("task.toml");
    std::fs::write(
        &task,
        format!(
            "[agent]\nid = \"db-agent\"\ndata_dir = {:?}\n\n[[task]]\nname = \"inventory\"\n\
             schedule = {{ every = \"1m\" }}\nmetrics = [\"memory.total\"]\ncollect = [{{ plugin = \"host\" }}]\n\
             publish = [{{ plugin = \"postgres\", url = \"${{PG_URL}}\", schema = \"{schema}\" }}]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", "--once", "-c", task.to_str().unwrap()])
        .env("PG_URL", "postgres://postgres@127.0.0.1:5432/test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let row = psql(&format!(
        "SELECT provider, kind, agent_id FROM {schema}.skymeter_resources"
    ));
    assert_eq!(row, "host|host|db-agent");
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}
