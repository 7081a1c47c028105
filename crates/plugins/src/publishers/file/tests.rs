use super::*;
use crate::common::testing::{batch, config_err, labels_of, point, sample_entries, ts, with_raw};
use skymeter_model::{CollectError, Resource, Stat, Unit};
use skymeter_plugin_api::BuildContext;

fn build_from(text: &str) -> Result<Box<dyn Publisher>, ConfigError> {
    with_raw(text, |raw| build(raw, &BuildContext::one_shot("test")))
}

fn toml_path(p: &Path) -> String {
    format!("'{}'", p.display())
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn cost() -> Cost {
    Cost {
        billed_cost: 1.25,
        effective_cost: 1.0,
        list_cost: Some(1.5),
        billing_currency: "USD".into(),
        charge_period_start: ts("2026-11-21T00:00:00Z"),
        charge_period_end: ts("2026-11-22T00:00:00Z"),
        charge_category: ChargeCategory::Usage,
        provider_name: "Amazon Web Services".into(),
        service_name: "Amazon EC2".into(),
        service_category: Some("Compute".into()),
        sub_account_id: Some("123456789012".into()),
        region_id: Some("eu-west-1".into()),
        resource_id: Some("i-0abc".into()),
        resource_type: None,
        sku_id: None,
        pricing_quantity: Some(24.0),
        pricing_unit: Some("Hrs".into()),
        consumed_quantity: None,
        consumed_unit: None,
        tags: labels_of(&[("team", "web")]),
        x_source: skymeter_model::CostSource::Billed,
        x_price_date: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn json_lines_holds_every_record_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/out.jsonl");
    let mut publisher = build_from(&format!("path = {}", toml_path(&path))).unwrap();
    let mut b = batch(vec![point(
        "cpu.utilization",
        1.5,
        "2026-11-22T10:00:00Z",
        &[("cpu", "0")],
    )]);
    b.resources = vec![Resource {
        provider: "host".into(),
        account: "acct".into(),
        region: "eu-west-1".into(),
        kind: "host".into(),
        native_type: String::new(),
        id: "h1".into(),
        name: "h1".into(),
        tags: Default::default(),
        attributes: Default::default(),
        observed_at: ts("2026-11-22T10:00:00Z"),
    }];
    b.costs = vec![cost()];
    b.errors = vec![CollectError {
        plugin: "aws".into(),
        message: "m".into(),
        context: Default::default(),
        at: ts("2026-11-22T10:00:00Z"),
    }];
    publisher.publish(&b).await.unwrap();
    publisher.publish(&b).await.unwrap();
    publisher.flush().await.unwrap();
    let one: String = b
        .records()
        .map(|r| serde_json::to_string(&r).unwrap() + "\n")
        .collect();
    assert_eq!(read(&path), format!("{one}{one}"));
    assert_eq!(one.lines().count(), 4);
}

#[tokio::test]
async fn rotation_keeps_max_files_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let line = |v: u32| {
        let p = point("m", f64::from(v), "2026-11-22T10:00:00Z", &[]);
        serde_json::to_string(&RecordRef::Point(&p)).unwrap() + "\n"
    };
    let len = line(1).len();
    assert_eq!(len, line(7).len());
    // Room for two records, not three.
    let mut publisher = build_from(&format!(
        "path = {}\nmax_size = {}\nmax_files = 2",
        toml_path(&path),
        2 * len + 1
    ))
    .unwrap();
    for v in 1..=7 {
        publisher
            .publish(&batch(vec![point(
                "m",
                f64::from(v),
                "2026-11-22T10:00:00Z",
                &[],
            )]))
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    assert_eq!(
        names_in(dir.path()),
        ["out.jsonl", "out.jsonl.1", "out.jsonl.2"]
    );
    assert_eq!(read(&path), line(7));
    assert_eq!(
        read(&dir.path().join("out.jsonl.1")),
        line(5) + line(6).as_str()
    );
    assert_eq!(
        read(&dir.path().join("out.jsonl.2")),
        line(3) + line(4).as_str()
    );
}

#[tokio::test]
async fn a_record_larger_than_max_size_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut publisher = build_from(&format!(
        "path = {}\nmax_size = \"10B\"\nmax_files = 0",
        toml_path(&path)
    ))
    .unwrap();
    let b = batch(vec![
        point("a", 1.0, "2026-11-22T10:00:00Z", &[]),
        point("b", 2.0, "2026-11-22T10:00:00Z", &[]),
    ]);
    publisher.publish(&b).await.unwrap();
    // max_files = 0: rotation deletes; only the last record is left.
    assert_eq!(names_in(dir.path()), ["out.jsonl"]);
    assert_eq!(
        read(&path),
        serde_json::to_string(&RecordRef::Point(&b.points[1])).unwrap() + "\n"
    );
}

#[tokio::test]
async fn csv_points_and_focus_costs_with_a_header_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.csv");
    let costs_path = dir.path().join("costs.csv");
    let mut publisher = build_from(&format!(
        "path = {}\nformat = \"csv\"\ncosts_path = {}",
        toml_path(&path),
        toml_path(&costs_path)
    ))
    .unwrap();
    let mut p = point(
        "disk.used",
        0.1,
        "2026-11-22T10:00:00.250Z",
        &[("device", "sda"), ("path", "a;b=c,d")],
    );
    p.stat = Stat::Avg;
    p.period_s = 60;
    p.unit = Unit::Bytes;
    let mut b = batch(vec![
        p,
        point("cpu.utilization", 12.0, "2026-11-22T10:00:00Z", &[]),
    ]);
    b.costs = vec![cost()];
    publisher.publish(&b).await.unwrap();
    publisher.flush().await.unwrap();
    assert_eq!(
        read(&path),
        "ts,provider,account,region,resource_id,metric,stat,unit,value,period_s,labels\n\
         2026-11-22T10:00:00.250Z,host,acct,eu-west-1,h1,disk.used,avg,bytes,0.1,60,\"device=sda;path=a\\;b\\=c,d\"\n\
         2026-11-22T10:00:00Z,host,acct,eu-west-1,h1,cpu.utilization,last,percent,12,0,\n"
    );
    assert_eq!(
        read(&costs_path),
        "BilledCost,EffectiveCost,ListCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,\
         ChargeCategory,ProviderName,ServiceName,ServiceCategory,SubAccountId,RegionId,ResourceId,\
         ResourceType,SkuId,PricingQuantity,PricingUnit,ConsumedQuantity,ConsumedUnit,Tags,x_source\n\
         1.25,1,1.5,USD,2026-11-21T00:00:00Z,2026-11-22T00:00:00Z,Usage,Amazon Web Services,\
         Amazon EC2,Compute,123456789012,eu-west-1,i-0abc,,,24,Hrs,,,\"{\"\"team\"\":\"\"web\"\"}\",billed\n"
    );

    // A new publisher on the same files appends, without a second header.
    drop(publisher);
    let mut again = build_from(&format!("path = {}\nformat = \"csv\"", toml_path(&path))).unwrap();
    again
        .publish(&batch(vec![point("x", 1.0, "2026-11-22T10:00:10Z", &[])]))
        .await
        .unwrap();
    let text = read(&path);
    assert_eq!(text.matches("ts,provider").count(), 1);
    assert!(text.ends_with("\n2026-11-22T10:00:10Z,host,acct,eu-west-1,h1,x,last,percent,1,0,\n"));
}

#[tokio::test]
async fn every_rotated_csv_file_starts_with_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.csv");
    let mut publisher = build_from(&format!(
        "path = {}\nformat = \"csv\"\nmax_size = 150",
        toml_path(&path)
    ))
    .unwrap();
    for v in 1..=3 {
        publisher
            .publish(&batch(vec![point(
                "m",
                f64::from(v),
                "2026-11-22T10:00:00Z",
                &[],
            )]))
            .await
            .unwrap();
    }
    let header = POINT_COLUMNS.join(",") + "\n";
    let row =
        |v: u32| format!("2026-11-22T10:00:00Z,host,acct,eu-west-1,h1,m,last,percent,{v},0,\n");
    assert!(header.len() + row(1).len() <= 150 && header.len() + 2 * row(1).len() > 150);
    assert_eq!(names_in(dir.path()), ["p.csv", "p.csv.1", "p.csv.2"]);
    assert_eq!(read(&path), header.clone() + row(3).as_str());
    assert_eq!(
        read(&dir.path().join("p.csv.1")),
        header.clone() + row(2).as_str()
    );
    assert_eq!(read(&dir.path().join("p.csv.2")), header + row(1).as_str());
}

#[tokio::test]
async fn a_directory_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, "x").unwrap();
    let path = blocker.join("out.jsonl");
    let mut publisher = build_from(&format!("path = {}", toml_path(&path))).unwrap();
    let err = publisher
        .publish(&batch(vec![point("m", 1.0, "2026-11-22T10:00:00Z", &[])]))
        .await
        .unwrap_err();
    assert!(
        err.message.starts_with(&format!(
            "cannot create directory {} for {}: ",
            blocker.display(),
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.message
            .ends_with("create it, or set `path` to a writable place"),
        "{err}"
    );
    assert_eq!(err.context["path"], path.display().to_string());
}

#[test]
fn config_errors() {
    for (text, want) in [
        (
            "path = 'a.csv'\ncosts_path = 'c.csv'",
            "`costs_path` is for format = \"csv\"",
        ),
        (
            "path = 'a.csv'\nformat = 'csv'\ncosts_path = 'a.csv'",
            "must differ from `path`",
        ),
        (
            "path = 'a'\nmax_size = '10 parsecs'",
            "bad size `10 parsecs`",
        ),
        ("path = 'a'\nmax_size = 0", "must be more than 0"),
        ("path = ''", "`path` is empty"),
        ("format = 'csv'", "missing field `path`"),
        ("path = 'a'\nformat = 'xml'", "unknown variant `xml`"),
    ] {
        let e = config_err(build_from(text));
        assert!(e.message.contains(want), "{text}: {e}");
    }
    for (text, want) in [("100MB", 100_000_000), ("1GiB", 1 << 30), ("512", 512)] {
        let cfg: FileConfig = with_raw(&format!("path = 'a'\nmax_size = '{text}'"), |raw| {
            raw.decode()
        })
        .unwrap();
        assert_eq!(cfg.max_size, Some(ByteSize(want)), "{text}");
    }
    for entry in sample_entries(include_str!("sample.toml"), "publish", "file") {
        build_from(&entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}

#[tokio::test]
async fn snaps_file_key_names_the_path_and_not_together_with_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap.jsonl");
    let mut p = build_from(&format!("file = {}", toml_path(&out))).unwrap();
    p.publish(&batch(vec![point(
        "memory.available",
        5.0,
        "2026-11-22T10:00:00Z",
        &[],
    )]))
    .await
    .unwrap();
    p.flush().await.unwrap();
    assert!(read(&out).contains("\"memory.available\""));

    let e = config_err(build_from("file = 'a'\npath = 'b'")).to_string();
    assert!(e.contains("duplicate field `path`"), "{e}");
}
