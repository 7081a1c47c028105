use super::*;
use schemars::JsonSchema;
use skymeter_plugin_api::{
    async_trait, CollectRequest, CollectorFactory, MetricInfo, Output, PluginDescription,
    PluginError, PublisherFactory,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DummyConfig {
    #[serde(default)]
    count: u32,
    url: Option<String>,
}

struct Dummy;

#[async_trait]
impl Collector for Dummy {
    async fn collect(&mut self, _: &CollectRequest, _: &mut Output) -> Result<(), PluginError> {
        Ok(())
    }
}

#[async_trait]
impl Publisher for Dummy {
    async fn publish(&mut self, _: &skymeter_model::Batch) -> Result<(), PluginError> {
        Ok(())
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_collector(CollectorFactory {
        description: PluginDescription {
            name: "dummy",
            kind: PluginKind::Collector,
            summary: "test",
            config_schema: PluginDescription::schema_of::<DummyConfig>,
            metrics: Vec::<MetricInfo>::new,
        },
        build: |raw, _| {
            let c: DummyConfig = raw.decode()?;
            if c.url.as_deref() == Some("bad") {
                return Err(raw.error("url", "not a URL; write http://host:port/path"));
            }
            Ok(Box::new(Dummy))
        },
    });
    r.add_publisher(PublisherFactory {
        description: PluginDescription {
            name: "sink",
            kind: PluginKind::Publisher,
            summary: "test",
            config_schema: PluginDescription::schema_of::<DummyConfig>,
            metrics: Vec::<MetricInfo>::new,
        },
        build: |raw, _| {
            let _: DummyConfig = raw.decode()?;
            Ok(Box::new(Dummy))
        },
    });
    r
}

fn load(text: &str) -> Result<LoadedConfig, Vec<ConfigError>> {
    let env = |k: &str| (k == "SET_VAR").then(|| "7".to_string());
    load_str(Source::new("t.toml", text), &registry(), &env, false)
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

const GOOD: &str = r#"
[agent]
id = "agent-1"

[[task]]
name = "t"
schedule = { every = "10s" }
collect = [{ plugin = "dummy", count = 3 }, { plugin = "dummy", name = "second" }]
publish = [{ plugin = "sink" }]
"#;

#[test]
fn a_good_file_builds_every_entry() {
    let cfg = load(GOOD).unwrap();
    assert_eq!(cfg.agent.agent_id(), "agent-1");
    let t = &cfg.tasks[0];
    assert_eq!(t.collectors.len(), 2);
    assert_eq!(
        t.collectors[0].timeout,
        Duration::from_secs(10),
        "defaults to the period"
    );
    assert_eq!(t.collectors[1].name, "second");
    assert!(matches!(t.schedule, Schedule::Every(d) if d == Duration::from_secs(10)));
}

#[test]
fn misspelled_task_key_names_key_and_line() {
    let text = GOOD.replace("schedule = {", "schedul = {");
    let errs = errors(&text);
    assert!(
        errs[0].starts_with("t.toml:7:1: unknown field `schedul`"),
        "{errs:?}"
    );
}

#[test]
fn misspelled_plugin_key_names_key_and_line() {
    let text = GOOD.replace("count = 3", "cuont = 3");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("t.toml:8:"), "{errs:?}");
    assert!(errs[0].contains("unknown field `cuont`"), "{errs:?}");
}

#[test]
fn wrong_type_unknown_plugin_bad_duration_unset_variable_are_all_reported() {
    let text = r#"
[[task]]
name = "t"
schedule = { every = "10 lightyears" }
collect = [{ plugin = "dummy", count = "three" }, { plugin = "nope" }]
publish = [{ plugin = "sink", url = "${UNSET_THING}" }]
"#;
    let errs = errors(text);
    let all = errs.join("\n");
    assert!(
        all.contains("t.toml:6:") && all.contains("`UNSET_THING` is not set"),
        "{all}"
    );
    // The unset variable stops the file before decoding; fix it and the rest shows.
    let errs = errors(&text.replace("${UNSET_THING}", "${SET_VAR}"));
    let all = errs.join("\n");
    assert!(
        all.contains("t.toml:4:") && all.contains("bad duration `10 lightyears`"),
        "{all}"
    );
    let errs = errors(
        &text
            .replace("${UNSET_THING}", "${SET_VAR}")
            .replace("10 lightyears", "10s"),
    );
    let all = errs.join("\n");
    assert!(
        all.contains("t.toml:5:") && all.contains("key `count`"),
        "{all}"
    );
    assert!(
        all.contains("unknown collector plugin `nope`; available: dummy"),
        "{all}"
    );
}

#[test]
fn plugin_checks_after_decoding_are_located() {
    let errs = errors(&GOOD.replace("count = 3", "url = \"bad\""));
    assert!(
        errs[0].starts_with("t.toml:8:") && errs[0].contains("key `url`: not a URL"),
        "{errs:?}"
    );
}

#[test]
fn schedules_need_exactly_one_kind_and_valid_cron() {
    let errs = errors(&GOOD.replace(
        "{ every = \"10s\" }",
        "{ every = \"10s\", cron = \"* * * * * *\" }",
    ));
    assert!(errs[0].contains("exactly one of"), "{errs:?}");
    let errs = errors(&GOOD.replace("{ every = \"10s\" }", "{ cron = \"every tuesday\" }"));
    assert!(errs[0].contains("bad cron expression"), "{errs:?}");
    let cfg = load(&GOOD.replace(
        "{ every = \"10s\" }",
        "{ cron = \"0 */5 * * * *\", start = 2026-01-01T00:00:00Z }",
    ))
    .unwrap();
    assert!(matches!(cfg.tasks[0].schedule, Schedule::Cron { .. }));
    assert_eq!(
        cfg.tasks[0].start.unwrap().to_rfc3339(),
        "2026-01-01T00:00:00+00:00"
    );
}

#[test]
fn missing_lists_and_unknown_top_level_keys_are_reported() {
    let errs = errors("[[task]]\nname = \"t\"\nschedule = { every = \"1s\" }\n\n[output]\nx = 1\n");
    let all = errs.join("\n");
    assert!(
        all.contains("t.toml:5:2: unknown top-level key `output`"),
        "{all}"
    );
    assert!(all.contains("has no `collect` list"), "{all}");
    assert!(all.contains("has no `publish` list"), "{all}");
    let errs = errors("x = \n");
    assert!(errs[0].starts_with("t.toml:1:"), "{errs:?}");
}

#[test]
fn set_arguments_become_typed_values() {
    let src = one_shot_source(&[
        "count=3".into(),
        "url=http://127.0.0.1:9/x".into(),
        "resource.id=web 1".into(),
        "list=[\"a\",\"b\"]".into(),
    ])
    .unwrap();
    let v: toml::Table = toml::from_str(&src.text).unwrap();
    assert_eq!(v["count"].as_integer(), Some(3));
    assert_eq!(v["url"].as_str(), Some("http://127.0.0.1:9/x"));
    assert_eq!(v["resource"]["id"].as_str(), Some("web 1"));
    assert_eq!(v["list"].as_array().unwrap().len(), 2);
    assert!(one_shot_source(&["novalue".into()]).is_err());
}

#[test]
fn the_agent_id_is_created_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentSettings {
        id: None,
        data_dir: Some(dir.path().join("data")),
    };
    assert_eq!(
        agent.agent_id(),
        hostname(),
        "nothing written yet: the host name stands in"
    );
    assert!(!dir.path().join("data").exists());
    let first = agent.ensure_agent_id().unwrap();
    assert!(
        first.starts_with(&format!("{}-", hostname())) && first.len() == hostname().len() + 9,
        "{first}"
    );
    assert_eq!(
        agent.ensure_agent_id().unwrap(),
        first,
        "kept across restarts"
    );
    assert_eq!(agent.agent_id(), first);
    let configured = AgentSettings {
        id: Some("web-01".into()),
        ..agent
    };
    assert_eq!(configured.ensure_agent_id().unwrap(), "web-01");
}

#[test]
fn plugins_are_built_knowing_their_task_and_its_interval() {
    let mut r = registry();
    r.add_publisher(PublisherFactory {
        description: PluginDescription {
            name: "tell",
            kind: PluginKind::Publisher,
            summary: "test",
            config_schema: PluginDescription::schema_of::<DummyConfig>,
            metrics: Vec::<MetricInfo>::new,
        },
        // Reports what it was given as a config error, the one way out of a build.
        build: |raw, ctx| Err(raw.error("count", format!("{} {:?}", ctx.task, ctx.interval))),
    });
    let text = GOOD.replace(r#"{ plugin = "sink" }"#, r#"{ plugin = "tell" }"#)
        + "\n[[task]]\nname = \"c\"\nschedule = { cron = \"0 */5 * * * *\" }\ncollect = [{ plugin = \"dummy\" }]\npublish = [{ plugin = \"tell\" }]\n";
    let errs = load_str(Source::new("t.toml", text), &r, &|_| None, false)
        .err()
        .unwrap();
    let msgs: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs, ["t Some(10s)", "c Some(300s)"]);
}
