use super::*;
use crate::frame::{DataFrame, DataPoint};
use chrono::TimeZone;

fn parse(text: &str) -> Result<RatingRules, RulesFileError> {
    parse_rules(Source::new("rating.toml", text), Path::new("."))
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const VOLUMES: &str = r#"
[[service]]
metric = "volume.size"
unit = "GiB"
factor = "1/1073741824"
groupby = ["id", "project_id"]
metadata = ["volume_type"]

[[hashmap.group]]
name = "volume_thresholds"

[[hashmap.service]]
name = "volume.size"
mapping = [{ type = "flat", cost = "0.001", group = "volume_thresholds" }]
threshold = [
  { level = 50, type = "rate", cost = "0.98", group = "volume_thresholds" },
  { level = 50, type = "rate", cost = 0.97, group = "volume_thresholds", scope = "2d5b39657dc542d4b2a14b685335304e" },
  { level = "200", type = "rate", cost = "0.95", group = "volume_thresholds" },
]

[[hashmap.service.field]]
name = "volume_type"
mapping = [{ value = "ssd", type = "flat", cost = "0.002", group = "ssd" }]

[[hashmap.group]]
name = "ssd"
"#;

#[test]
fn the_documented_example_from_a_file() {
    let rules = parse(VOLUMES).unwrap();
    assert_eq!(rules.services.len(), 1);
    assert_eq!(rules.services[0].rated_name(), "volume.size");
    assert_eq!(
        rules.services[0].convert(Decimal::from(1u64 << 31)),
        Decimal::from(2)
    );
    assert_eq!(rules.hashmap.mappings.len(), 2);
    assert_eq!(rules.hashmap.thresholds.len(), 3);
    assert_eq!(rules.run_order(), ["hashmap"]);
    let begin = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut frame = DataFrame::new(begin, begin + chrono::Duration::hours(1));
    frame.add_point("volume.size", DataPoint::new("GiB", Decimal::from(80)));
    frame.add_point(
        "volume.size",
        DataPoint::new("GiB", Decimal::from(10)).with_metadata("volume_type", "ssd"),
    );
    let rated = rules
        .rate(frame, Some("2d5b39657dc542d4b2a14b685335304e"))
        .unwrap();
    let prices: Vec<String> = rated.usage["volume.size"]
        .iter()
        .map(|p| p.rating.price.normalize().to_string())
        .collect();
    // 80 GiB at 0.001 less 3 %; 10 GiB at 0.001 plus the ssd group's 0.002.
    assert_eq!(prices, ["0.0776", "0.03"]);
}

#[test]
fn syntax_and_type_mistakes_name_the_line() {
    let errs = errors("[[hashmap.service]]\nname = \"x\"\nmapping = [{ type = \"flat\", cost = \"1\", colour = \"red\" }]\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("rating.toml:3"), "{errs:?}");
    assert!(errs[0].contains("colour"), "{errs:?}");
    let errs = errors("[[service]\n");
    assert!(errs[0].starts_with("rating.toml:1"), "{errs:?}");
}

#[test]
fn rule_mistakes_are_all_reported_with_their_lines() {
    let errs = errors(
        r#"
[[hashmap.service]]
name = "instance"
mapping = [
  { type = "flat", cost = "abc" },
  { type = "percent", cost = "1" },
  { type = "flat", cost = "1", group = "nope" },
  { type = "flat", cost = "1", value = "x" },
]

[[hashmap.service]]
name = "instance"

[modules.pyscripts]
enabled = true
"#,
    );
    let joined = errs.join("\n");
    assert_eq!(errs.len(), 6, "{joined}");
    assert!(
        joined.contains("rating.toml:5") && joined.contains("`abc` is not a number"),
        "{joined}"
    );
    assert!(
        joined.contains("rating.toml:6") && joined.contains("type `percent`"),
        "{joined}"
    );
    assert!(
        joined.contains("rating.toml:7") && joined.contains("no group `nope`"),
        "{joined}"
    );
    assert!(
        joined.contains("rating.toml:8") && joined.contains("no value"),
        "{joined}"
    );
    assert!(
        joined.contains("rating.toml:11") && joined.contains("already exists"),
        "{joined}"
    );
    assert!(
        joined.contains("no rating module `pyscripts`; there are: hashmap, script"),
        "{joined}"
    );
}

#[test]
fn scripts_from_files_or_inline_turn_the_module_on() {
    let dir = std::env::temp_dir().join(format!("skymeter-rating-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gpu.rhai"), "let x = 1;").unwrap();
    let text = "[[script]]\nname = \"gpu\"\nfile = \"gpu.rhai\"\n\n[[script]]\nname = \"inline\"\nsource = \"let y = 2;\"\n\n[modules.hashmap]\npriority = 5\n";
    let rules = parse_rules(Source::new("rating.toml", text), &dir).unwrap();
    assert_eq!(rules.scripts.len(), 2);
    assert_eq!(rules.run_order(), ["hashmap", "script"]);
    let text = "[[script]]\nname = \"bad\"\nsource = \"let = ;\"\n\n[[script]]\nname = \"missing\"\nfile = \"nope.rhai\"\n";
    let errs: Vec<String> = parse_rules(Source::new("rating.toml", text), &dir)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        errs[0].contains("rating.toml:1") && errs[0].contains("script `bad`, line 1"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("rating.toml:5") && errs[1].contains("nope.rhai"),
        "{errs:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn services_need_distinct_rated_names_and_a_map_for_map() {
    let errs = errors(
        "[[service]]\nmetric = \"cpu\"\nunit = \"instance\"\nalt_name = \"instance\"\n\n[[service]]\nmetric = \"instance\"\nunit = \"instance\"\nmutate = \"MAP\"\n",
    );
    let joined = errs.join("\n");
    assert!(
        joined.contains("mutate = \"MAP\" needs a mutate_map"),
        "{joined}"
    );
    assert!(
        joined.contains("a second service rated as `instance`"),
        "{joined}"
    );
}
