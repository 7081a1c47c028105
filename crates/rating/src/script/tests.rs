use super::*;
use crate::error::RateError;
use crate::frame::{DataFrame, DataPoint};
use chrono::{TimeZone, Utc};

fn d(s: &str) -> Decimal {
    crate::decimal::parse_decimal(s).unwrap()
}

fn frame() -> DataFrame {
    let begin = Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap();
    let mut f = DataFrame::new(begin, begin + chrono::Duration::hours(1));
    f.add_point(
        "instance",
        DataPoint::new("instance", d("1")).with_metadata("flavor_name", "m1.micro"),
    );
    f.add_point(
        "instance",
        DataPoint::new("instance", d("2")).with_metadata("flavor_name", "m1.large"),
    );
    f.add_point(
        "instance",
        DataPoint::new("instance", d("1")).with_metadata("flavor_name", "custom"),
    );
    f.add_point(
        "volume",
        DataPoint::new("GiB", d("10")).with_groupby("project_id", "p1"),
    );
    f.add_point("image", DataPoint::new("MiB", d("0")));
    f
}

/// CloudKitty's pyscripts documentation example, in Rhai.
const CLOUDKITTY_EXAMPLE: &str = r#"
// Price for each flavor: the equivalent of hashmap field mappings.
let flavors = #{ "m1.micro": 0.65, "m1.nano": 0.35, "m1.large": 2.67 };
// Price per MB / GB for images and volumes: hashmap service mappings.
const IMAGE_MB_PRICE = 0.002;
const VOLUME_GB_PRICE = 0.35;

fn price_of(service, item, flavors) {
    switch service {
        "instance" => item.vol.qty * (flavors[item.metadata.flavor_name] ?? 0),
        "volume" => item.vol.qty * global::VOLUME_GB_PRICE,
        "image" => item.vol.qty * global::IMAGE_MB_PRICE,
        _ => ()
    }
}

for service in data.usage.keys() {
    for i in 0..data.usage[service].len() {
        let p = price_of(service, data.usage[service][i], flavors);
        if p != () {
            data.usage[service][i].rating = #{ price: p };
        }
    }
}
"#;

#[test]
fn cloudkitty_pyscript_example_rates_exactly() {
    let script = Script::compile("flavors", CLOUDKITTY_EXAMPLE).unwrap();
    let out = script.run(&frame(), &ScriptLimits::default()).unwrap();
    let prices: Vec<String> = out.usage["instance"]
        .iter()
        .map(|p| p.rating.price.to_string())
        .collect();
    assert_eq!(prices, ["0.65", "5.34", "0"]);
    assert_eq!(out.usage["volume"][0].rating.price, d("3.5"));
    assert_eq!(out.usage["image"][0].rating.price, d("0"));
    // Everything else is as it came in.
    assert_eq!(out.usage["volume"][0].groupby["project_id"], "p1");
    assert_eq!(out.period, frame().period);
    assert_eq!(out.total(), d("9.49"));
}

#[test]
fn numbers_in_scripts_are_decimals() {
    let script = Script::compile(
        "exact",
        r#"data.usage.volume[0].rating.price = 0.1 + 0.2 + data.usage.volume[0].vol.qty * 0.0000000000000000000000001;"#,
    )
    .unwrap();
    let out = script.run(&frame(), &ScriptLimits::default()).unwrap();
    assert_eq!(
        out.usage["volume"][0].rating.price,
        d("0.300000000000000000000001")
    );
}

#[test]
fn a_runaway_script_is_stopped_by_its_operation_bound() {
    let script = Script::compile("loop", "loop { }").unwrap();
    let err = script.run(&frame(), &ScriptLimits::default()).unwrap_err();
    let RateError::Script { script, message } = err else {
        panic!("{err:?}")
    };
    assert_eq!(script, "loop");
    assert!(message.contains("operations"), "{message}");
}

#[test]
fn a_slow_script_is_stopped_by_the_wall_time_bound() {
    let limits = ScriptLimits {
        operations_base: u64::MAX / 2,
        wall_time: std::time::Duration::from_millis(50),
        ..ScriptLimits::default()
    };
    let script = Script::compile("slow", "let x = 0; loop { x += 1; }").unwrap();
    let started = std::time::Instant::now();
    let err = script.run(&frame(), &limits).unwrap_err();
    assert!(err.to_string().contains("wall-time"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn memory_is_bounded() {
    let script = Script::compile("grow", r#"let s = "x"; loop { s += s; }"#).unwrap();
    let err = script.run(&frame(), &ScriptLimits::default()).unwrap_err();
    assert!(err.to_string().contains("grew past its bound"), "{err}");
    let script = Script::compile("deep", "fn f(n) { f(n + 1) } f(0);").unwrap();
    let err = script.run(&frame(), &ScriptLimits::default()).unwrap_err();
    assert!(err.to_string().contains("nested deeper"), "{err}");
}

#[test]
fn there_is_no_way_out_of_the_sandbox() {
    // A real script file next to us: Rhai's default resolver would import it, ours must not.
    let dir = std::env::temp_dir().join(format!("skymeter-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("prices.rhai");
    std::fs::write(&module, "export const PRICE = 1;").unwrap();
    let import = format!(
        "import \"{}\" as p; data.usage.volume[0].rating.price = p::PRICE;",
        module.display()
    );
    let eval = r#"data.usage.volume[0].rating.price = eval("1 + 1");"#;
    for (name, src) in [("import", import.as_str()), ("eval", eval)] {
        let result = Script::compile(name, src).and_then(|s| {
            s.run(&frame(), &ScriptLimits::default())
                .map_err(|e| e.to_string())
        });
        assert!(result.is_err(), "{name} ran: {result:?}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn mistakes_name_the_script_and_the_place() {
    let err = Script::compile("broken", "let x = ;\n").unwrap_err();
    assert!(err.starts_with("script `broken`, line 1"), "{err}");
    let s = Script::compile("runtime", "let a = 1;\nlet b = a.nope();\n").unwrap();
    let err = s
        .run(&frame(), &ScriptLimits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("script `runtime`") && err.contains("line 2"),
        "{err}"
    );
    let s = Script::compile("shape", r#"data.usage.volume[0].vol.qty = "ten";"#).unwrap();
    let err = s
        .run(&frame(), &ScriptLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(r#"data.usage["volume"][0].vol.qty"#), "{err}");
    let s = Script::compile("gone", "data = 1;").unwrap();
    let err = s
        .run(&frame(), &ScriptLimits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no longer a map"), "{err}");
}
