//! Tests of the price table, the estimator, and the Price List fetch against a local stand-in
//! of the Price List Query API (moto has none).

use super::*;
use crate::collectors::aws::calls::ApiCalls;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use skymeter_model::{CostSource, Labels, Point, Resource, ResourceRef, Stat, Unit};
use skymeter_plugin_api::ErrorKind;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {{
        let (a, b): (f64, f64) = ($a, $b);
        assert!(close(a, b), "{a} != {b}");
    }};
}

// ---------------------------------------------------------------------------------------
// The shipped table, files, lookup order
// ---------------------------------------------------------------------------------------

#[test]
fn shipped_table_is_valid_and_covers_us_east_1() {
    let t = PriceTable::shipped();
    t.validate().unwrap();
    assert_eq!(t.currency, "USD");
    assert_eq!(t.date, "2026-07-20");
    assert!(t.source.contains("karpenter-provider-aws"), "{}", t.source);
    let use1 = &t.regions["us-east-1"];
    assert_eq!(use1.ec2.len(), 1367);
    for family in [
        "t2", "t3", "t3a", "t4g", "m5", "m6i", "m6g", "m7i", "m7g", "c5", "c6i", "c6g", "c7g",
        "r5", "r6i", "r6g",
    ] {
        // Burstable families stop at 2xlarge.
        let sizes: &[&str] = if family.starts_with('t') {
            &["micro", "small", "medium", "large", "xlarge", "2xlarge"]
        } else {
            &["large", "xlarge", "2xlarge", "4xlarge"]
        };
        for size in sizes {
            let ty = format!("{family}.{size}");
            assert!(
                use1.ec2.get(&ty).and_then(|m| m.get("Linux")).is_some(),
                "{ty} Linux missing"
            );
        }
    }
    // Spot checks against the source (Price List API extract of 2026-01-19).
    assert_eq!(use1.ec2["m5.large"]["Linux"], 0.096);
    assert_eq!(use1.ec2["t3.micro"]["Linux"], 0.0104);
    assert_eq!(use1.ec2["c7g.large"]["Linux"], 0.0725);
    assert_eq!(use1.ec2["r6i.4xlarge"]["Linux"], 1.008);
    assert_eq!(use1.eks.cluster_hour, Some(0.10));
    assert_eq!(use1.s3.standard_gb_month, Some(0.023));
    // The waste kinds' prices (see the table's `source`).
    assert_eq!(use1.ebs.snapshot_gb_month, Some(0.05));
    assert_eq!(use1.ebs.snapshot_archive_gb_month, Some(0.0125));
    assert_eq!(use1.vpc.nat_gateway_hour, Some(0.045));
    assert_eq!(use1.vpc.nat_gateway_gb, Some(0.045));
    assert_eq!(use1.elb.alb_hour, Some(0.0225));
    assert_eq!(use1.elb.nlb_lcu_hour, Some(0.006));
    // Every commercial region has the public IPv4 price (one price everywhere); none of
    // GovCloud or China.
    assert_eq!(t.regions.len(), 30);
    for (region, p) in &t.regions {
        assert_eq!(p.vpc.public_ipv4_hour, Some(0.005), "{region}");
        assert!(!region.starts_with("us-gov-") && !region.starts_with("cn-"));
    }
    // Every priced type but 22 older ones has its vCPUs and memory.
    assert_eq!(t.ec2_specs.len(), 1345);
    assert_eq!(
        t.ec2_specs["m5.2xlarge"],
        InstanceSpec {
            vcpus: 8,
            memory_mib: 32768
        }
    );
    assert!(t.ec2_specs.keys().all(|ty| use1.ec2.contains_key(ty)));
    let apn1 = &t.regions["ap-northeast-1"];
    assert_eq!(apn1.ebs.throughput_mibps_month["gp3"], 0.048);
    assert_eq!(apn1.ebs.iops_month["io2"].len(), 3);
    // The file is written as `to_json` writes tables.
    assert_eq!(serde_json::from_str::<PriceTable>(&t.to_json()).unwrap(), t);
}

#[test]
fn platform_details_map_to_price_list_operating_systems() {
    assert_eq!(operating_system("Linux/UNIX"), Some("Linux"));
    assert_eq!(operating_system("Windows"), Some("Windows"));
    assert_eq!(operating_system("Red Hat Enterprise Linux"), Some("RHEL"));
    assert_eq!(operating_system("SUSE Linux"), Some("SUSE"));
    assert_eq!(operating_system("Ubuntu Pro"), Some("Ubuntu Pro"));
    assert_eq!(
        operating_system("Red Hat Enterprise Linux with HA"),
        Some("Red Hat Enterprise Linux with HA")
    );
    assert_eq!(operating_system("Windows with SQL Server Standard"), None);
    assert_eq!(operating_system("Windows BYOL"), None);
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn from_file_names_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = PriceTable::from_file(&missing).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("cannot read the AWS price table"), "{e}");
    assert!(e.message.contains("nope.json"), "{e}");

    let bad = write(
        dir.path(),
        "bad.json",
        "{\"date\": \"2026-01-01\",\n \"currency\": ",
    );
    let e = PriceTable::from_file(&bad).unwrap_err();
    assert!(e.message.contains("bad.json is not a price table"), "{e}");
    assert!(e.message.contains("line 2"), "{e}");
    assert!(e.message.contains("skymeter prices aws update"), "{e}");

    let unknown = write(
        dir.path(),
        "unknown.json",
        r#"{"date":"2026-01-01","currency":"USD","source":"x","regions":{"us-east-1":{"ec3":{}}}}"#,
    );
    let e = PriceTable::from_file(&unknown).unwrap_err();
    assert!(e.message.contains("unknown field `ec3`"), "{e}");

    let date = write(
        dir.path(),
        "date.json",
        r#"{"date":"19 Jan 2026","currency":"USD","source":"x","regions":{}}"#,
    );
    let e = PriceTable::from_file(&date).unwrap_err();
    assert!(e.message.contains("date.json is wrong"), "{e}");
    assert!(
        e.message
            .contains("`date` is \"19 Jan 2026\", not YYYY-MM-DD"),
        "{e}"
    );

    let eur = write(
        dir.path(),
        "eur.json",
        r#"{"date":"2026-01-19","currency":"EUR","source":"x","regions":{}}"#,
    );
    let e = PriceTable::from_file(&eur).unwrap_err();
    assert!(e.message.contains("`currency` is \"EUR\""), "{e}");

    let negative = write(
        dir.path(),
        "neg.json",
        r#"{"date":"2026-01-19","currency":"USD","source":"x","regions":{"us-east-1":{"ec2":{"m5.large":{"Linux":-1}}}}}"#,
    );
    let e = PriceTable::from_file(&negative).unwrap_err();
    assert!(
        e.message
            .contains("`regions.us-east-1.ec2.m5.large.Linux` is -1"),
        "{e}"
    );

    let tiers = write(
        dir.path(),
        "tiers.json",
        r#"{"date":"2026-01-19","currency":"USD","source":"x","regions":{"r":{"ebs":{"iops_month":{"io2":[{"from":0,"usd":1},{"from":0,"usd":2}]}}}}}"#,
    );
    let e = PriceTable::from_file(&tiers).unwrap_err();
    assert!(
        e.message
            .contains("`regions.r.ebs.iops_month.io2[1].from` is not above"),
        "{e}"
    );
    assert_eq!(e.context["file"], tiers.display().to_string());

    let nat = write(
        dir.path(),
        "nat.json",
        r#"{"date":"2026-01-19","currency":"USD","source":"x","regions":{"r":{"vpc":{"nat_gateway_gb":-0.1}}}}"#,
    );
    let e = PriceTable::from_file(&nat).unwrap_err();
    assert!(
        e.message.contains("`regions.r.vpc.nat_gateway_gb` is -0.1"),
        "{e}"
    );
    let elb = write(
        dir.path(),
        "elb.json",
        r#"{"date":"2026-01-19","currency":"USD","source":"x","regions":{"r":{"elb":{"glb_hour":0.01}}}}"#,
    );
    let e = PriceTable::from_file(&elb).unwrap_err();
    assert!(e.message.contains("unknown field `glb_hour`"), "{e}");
    let spec = write(
        dir.path(),
        "spec.json",
        r#"{"date":"2026-01-19","currency":"USD","source":"x","ec2_specs":{"m5.large":{"vcpus":0,"memory_mib":8192}}}"#,
    );
    let e = PriceTable::from_file(&spec).unwrap_err();
    assert!(
        e.message.contains("`ec2_specs.m5.large` has 0 vCPUs"),
        "{e}"
    );
}

#[test]
fn load_prefers_the_explicit_file_then_the_data_dir_then_the_shipped_table() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        PriceTable::load(None, dir.path()).unwrap(),
        PriceTable::shipped()
    );
    let mut fetched = small_table();
    fetched.date = "2026-11-01".into();
    std::fs::create_dir_all(dir.path().join("prices")).unwrap();
    std::fs::write(default_path(dir.path()), fetched.to_json()).unwrap();
    assert_eq!(
        PriceTable::load(None, dir.path()).unwrap().date,
        "2026-11-01"
    );
    let mut explicit = small_table();
    explicit.date = "2026-11-02".into();
    let p = write(dir.path(), "mine.json", &explicit.to_json());
    assert_eq!(
        PriceTable::load(Some(&p), dir.path()).unwrap().date,
        "2026-11-02"
    );
    // An explicit file that is not there is an error, not a silent fallback.
    assert!(PriceTable::load(Some(&dir.path().join("gone.json")), dir.path()).is_err());
}

// ---------------------------------------------------------------------------------------
// The estimator
// ---------------------------------------------------------------------------------------

fn small_table() -> PriceTable {
    serde_json::from_value(json!({
        "date": "2026-11-01",
        "currency": "USD",
        "source": "test",
        "regions": {
            "us-east-1": {
                "ec2": {"m5.large": {"Linux": 0.096, "Windows": 0.188}},
                "ebs": {
                    "storage_gb_month": {"gp3": 0.08, "io2": 0.125, "st1": 0.045},
                    "iops_month": {
                        "gp3": [{"from": 0, "usd": 0.005}],
                        "io2": [{"from": 0, "usd": 0.065}, {"from": 32000, "usd": 0.0455}, {"from": 64000, "usd": 0.03185}]
                    },
                    "throughput_mibps_month": {"gp3": 0.04}
                },
                "rds": {
                    "instance_hour": {"db.m5.large": {"postgres": {"single_az": 0.178, "multi_az": 0.356}}},
                    "storage_gb_month": {"gp2": {"single_az": 0.115, "multi_az": 0.23}}
                },
                "lambda": {
                    "gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
                    "request": {"x86_64": 0.0000002, "arm64": 0.0000002}
                },
                "s3": {"standard_gb_month": 0.023},
                "eks": {"cluster_hour": 0.10}
            }
        }
    }))
    .unwrap()
}

/// `small_table` with the waste kinds' prices in us-east-1 (eu-west-1 has EC2 only).
fn waste_table() -> PriceTable {
    let mut t = small_table();
    let use1 = t.regions.get_mut("us-east-1").unwrap();
    use1.ebs.snapshot_gb_month = Some(0.05);
    use1.ebs.snapshot_archive_gb_month = Some(0.0125);
    use1.vpc = VpcPrices {
        public_ipv4_hour: Some(0.005),
        nat_gateway_hour: Some(0.045),
        nat_gateway_gb: Some(0.045),
    };
    use1.elb = ElbPrices {
        alb_hour: Some(0.0225),
        alb_lcu_hour: Some(0.008),
        nlb_hour: Some(0.0225),
        nlb_lcu_hour: Some(0.006),
    };
    t.regions
        .insert("eu-west-1".into(), RegionPrices::default());
    t
}

fn run_waste(resources: &[Resource], points: &[Point]) -> Estimate {
    estimate(&waste_table(), t(0, 0), t(10, 0), resources, points)
}

#[test]
fn snapshots_by_size_and_tier() {
    let std = resource(
        "storage.snapshot",
        "AWS::EC2::Snapshot",
        "snap-1",
        json!({"size_gib": 100, "storage_tier": "standard"}),
    );
    let arch = resource(
        "storage.snapshot",
        "AWS::EC2::Snapshot",
        "snap-2",
        json!({"size_gib": 100, "storage_tier": "archive"}),
    );
    let e = run_waste(&[std, arch], &[]);
    assert!(e.missing.is_empty(), "{:?}", e.missing);
    let months = 10.0 / 730.0;
    let l = lines(&e, "snap-1");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "us-east-1/ebs/snapshot/standard");
    assert_close!(l[0].1, 100.0 * months * 0.05);
    assert_close!(l[0].2, 100.0 * months);
    assert_eq!(l[0].3, "GB-Mo");
    let l = lines(&e, "snap-2");
    assert_eq!(l[0].0, "us-east-1/ebs/snapshot/archive");
    assert_close!(l[0].1, 100.0 * months * 0.0125);
    let c = e
        .costs
        .iter()
        .find(|c| c.resource_id.as_deref() == Some("snap-1"))
        .unwrap();
    assert_eq!(c.service_name, "Amazon Elastic Compute Cloud");
    assert_eq!(c.service_category.as_deref(), Some("Storage"));
    assert_eq!(c.resource_type.as_deref(), Some("AWS::EC2::Snapshot"));
}

#[test]
fn every_elastic_ip_is_charged_by_the_hour() {
    let idle = resource(
        "network.public_ip",
        "AWS::EC2::EIP",
        "eipalloc-1",
        json!({"associated": false}),
    );
    let used = resource(
        "network.public_ip",
        "AWS::EC2::EIP",
        "eipalloc-2",
        json!({"associated": true, "attached_to": "i-1"}),
    );
    let e = run_waste(&[idle, used], &[]);
    for id in ["eipalloc-1", "eipalloc-2"] {
        let l = lines(&e, id);
        assert_eq!(l.len(), 1, "{id}");
        assert_eq!(l[0].0, "us-east-1/vpc/public_ipv4");
        assert_close!(l[0].1, 10.0 * 0.005);
        assert_eq!((l[0].2, l[0].3.as_str()), (10.0, "Hrs"));
    }
    let c = &e.costs[0];
    assert_eq!(c.service_name, "Amazon Virtual Private Cloud");
    assert_eq!(c.service_category.as_deref(), Some("Networking"));
}

#[test]
fn nat_gateways_hours_and_processed_bytes() {
    let nat = resource(
        "network.nat_gateway",
        "AWS::EC2::NatGateway",
        "nat-1",
        json!({"state": "available"}),
    );
    let gone = resource(
        "network.nat_gateway",
        "AWS::EC2::NatGateway",
        "nat-2",
        json!({"state": "deleted"}),
    );
    let gib = (1u64 << 30) as f64;
    let points = vec![
        point(
            &nat,
            "network.sent_bytes",
            Stat::Sum,
            t(1, 0),
            3.0 * gib,
            Labels::new(),
        ),
        point(
            &nat,
            "network.received_bytes",
            Stat::Sum,
            t(2, 0),
            gib,
            Labels::new(),
        ),
        // Outside the window, or not a sum: not counted.
        point(
            &nat,
            "network.sent_bytes",
            Stat::Sum,
            t(11, 0),
            50.0 * gib,
            Labels::new(),
        ),
        point(
            &nat,
            "network.sent_bytes",
            Stat::Max,
            t(1, 0),
            50.0 * gib,
            Labels::new(),
        ),
    ];
    let e = run_waste(&[nat.clone(), gone], &points);
    assert!(e.missing.is_empty(), "{:?}", e.missing);
    let l = lines(&e, "nat-1");
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0].0, "us-east-1/vpc/nat_gateway");
    assert_close!(l[0].1, 10.0 * 0.045);
    assert_eq!(l[1].0, "us-east-1/vpc/nat_gateway/data");
    assert_close!(l[1].2, 4.0);
    assert_close!(l[1].1, 4.0 * 0.045);
    assert_eq!(l[1].3, "GB");
    assert!(lines(&e, "nat-2").is_empty());
    // Without traffic points: hours only.
    let e = run_waste(&[nat], &[]);
    assert_eq!(lines(&e, "nat-1").len(), 1);
}

#[test]
fn load_balancers_by_type_when_active() {
    let lb = |id: &str, ty: &str, state: &str| {
        resource(
            "network.load_balancer",
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            id,
            json!({"lb_type": ty, "state": state}),
        )
    };
    let e = run_waste(
        &[
            lb("alb", "application", "active"),
            lb("nlb", "network", "active_impaired"),
            lb("gwlb", "gateway", "active"),
            lb("new", "application", "provisioning"),
        ],
        &[],
    );
    assert!(e.missing.is_empty(), "{:?}", e.missing);
    let l = lines(&e, "alb");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "us-east-1/elb/alb");
    assert_close!(l[0].1, 10.0 * 0.0225);
    assert_eq!(lines(&e, "nlb")[0].0, "us-east-1/elb/nlb");
    assert!(lines(&e, "gwlb").is_empty());
    assert!(lines(&e, "new").is_empty());
    assert_eq!(e.costs[0].service_name, "Elastic Load Balancing");
}

#[test]
fn waste_prices_missing_in_a_region_are_reported_once_each() {
    let mut r = resource(
        "network.public_ip",
        "AWS::EC2::EIP",
        "eipalloc-1",
        json!({}),
    );
    r.region = "eu-west-1".into();
    let mut r2 = r.clone();
    r2.id = "eipalloc-2".into();
    let mut s = resource(
        "storage.snapshot",
        "AWS::EC2::Snapshot",
        "snap-1",
        json!({"size_gib": 8}),
    );
    s.region = "eu-west-1".into();
    let e = run_waste(&[r, r2, s], &[]);
    assert!(e.costs.is_empty());
    let keys: Vec<&str> = e
        .missing
        .iter()
        .map(|m| m.context["price"].as_str())
        .collect();
    assert_eq!(keys, ["ebs/snapshot/standard", "vpc/public_ipv4"]);
    assert!(e.missing[1]
        .message
        .contains("no public IPv4 address price per hour in eu-west-1"));
}

#[test]
fn monthly_usd_prices_a_resource_for_730_hours_whatever_its_state() {
    let table = waste_table();
    let m = |r: &Resource| monthly_usd(&table, r);
    // A stopped instance is priced as if it ran; Windows at its own price.
    let i = instance(
        "i-1",
        json!({"instance_type": "m5.large", "state": "stopped", "platform": "Windows"}),
    );
    assert_close!(m(&i).unwrap(), 0.188 * 730.0);
    let spot = instance(
        "i-2",
        json!({"instance_type": "m5.large", "state": "running", "lifecycle": "spot"}),
    );
    assert_eq!(m(&spot), None);
    let unknown = instance(
        "i-3",
        json!({"instance_type": "m9.large", "state": "running"}),
    );
    assert_eq!(m(&unknown), None);
    // gp3: size, IOPS above 3,000 and MiB/s above 125.
    let v = resource(
        "storage.volume",
        "AWS::EC2::Volume",
        "vol-1",
        json!({"volume_type": "gp3", "size_gib": 100, "iops": 4000, "throughput_mibps": 225, "state": "available"}),
    );
    assert_close!(m(&v).unwrap(), 100.0 * 0.08 + 1000.0 * 0.005 + 100.0 * 0.04);
    let s = resource(
        "storage.snapshot",
        "AWS::EC2::Snapshot",
        "snap-1",
        json!({"size_gib": 100}),
    );
    assert_close!(m(&s).unwrap(), 5.0);
    let ip = resource(
        "network.public_ip",
        "AWS::EC2::EIP",
        "eipalloc-1",
        json!({}),
    );
    assert_close!(m(&ip).unwrap(), 3.65);
    let nat = resource(
        "network.nat_gateway",
        "AWS::EC2::NatGateway",
        "nat-1",
        json!({"state": "pending"}),
    );
    assert_close!(m(&nat).unwrap(), 0.045 * 730.0);
    let lb = resource(
        "network.load_balancer",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "arn:lb",
        json!({"lb_type": "network", "state": "provisioning"}),
    );
    assert_close!(m(&lb).unwrap(), 0.0225 * 730.0);
    // A database: instance hours and storage.
    let db = resource(
        "database.instance",
        "AWS::RDS::DBInstance",
        "orders",
        json!({"instance_class": "db.m5.large", "engine": "postgres", "multi_az": true, "status": "stopped", "storage_type": "gp2", "allocated_storage_gib": 100}),
    );
    assert_close!(m(&db).unwrap(), 0.356 * 730.0 + 100.0 * 0.23);
    // Another kind, or a price missing: none.
    let f = resource("function", "AWS::Lambda::Function", "f", json!({}));
    assert_eq!(m(&f), None);
    let mut far = ip.clone();
    far.region = "eu-west-1".into();
    assert_eq!(m(&far), None);
}

#[test]
fn size_options_are_the_family_in_the_region_cheapest_first() {
    let mut table = small_table();
    let use1 = table.regions.get_mut("us-east-1").unwrap();
    for (ty, usd) in [
        ("m5.xlarge", 0.192),
        ("m5.2xlarge", 0.384),
        ("m5a.large", 0.086),
    ] {
        use1.ec2
            .insert(ty.into(), [("Linux".to_string(), usd)].into());
    }
    for (ty, vcpus, mib) in [
        ("m5.large", 2, 8192),
        ("m5.xlarge", 4, 16384),
        ("m5a.large", 2, 8192),
    ] {
        table.ec2_specs.insert(
            ty.into(),
            InstanceSpec {
                vcpus,
                memory_mib: mib,
            },
        );
    }
    let i = instance(
        "i-1",
        json!({"instance_type": "m5.2xlarge", "state": "running", "platform": "Linux/UNIX"}),
    );
    let got = size_options(&table, &i);
    // m5.2xlarge has no spec, m5a is another family.
    let names: Vec<&str> = got.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["m5.large", "m5.xlarge"]);
    assert_close!(got[0].monthly_usd, 0.096 * 730.0);
    assert_eq!((got[1].vcpus, got[1].memory_mib), (4.0, 16384.0));
    // Windows: only the types with a Windows price.
    let w = instance(
        "i-2",
        json!({"instance_type": "m5.2xlarge", "platform": "Windows"}),
    );
    let got = size_options(&table, &w);
    assert_eq!(got.len(), 1);
    assert_close!(got[0].monthly_usd, 0.188 * 730.0);
    // A platform the table does not price, another region, another kind: none.
    let sql = instance(
        "i-3",
        json!({"instance_type": "m5.2xlarge", "platform": "Windows with SQL Server Standard"}),
    );
    assert!(size_options(&table, &sql).is_empty());
    let mut far = i.clone();
    far.region = "eu-west-1".into();
    assert!(size_options(&table, &far).is_empty());
}

#[test]
fn the_shipped_table_sizes_an_m5_2xlarge_down_through_the_trait() {
    use skymeter_plugin_api::prices::PriceTable as _;
    let table = PriceTable::shipped();
    let i = instance(
        "i-1",
        json!({"instance_type": "m5.2xlarge", "state": "running", "platform": "Linux/UNIX"}),
    );
    let options = table.size_options(&i);
    let large = options
        .iter()
        .find(|o| o.name == "m5.large")
        .expect("m5.large among the options");
    assert_close!(large.monthly_usd, 70.08);
    assert_eq!((large.vcpus, large.memory_mib), (2.0, 8192.0));
    assert!(options.iter().all(|o| o.name.starts_with("m5.")));
    assert!(options
        .windows(2)
        .all(|w| w[0].monthly_usd <= w[1].monthly_usd));
    assert_close!(table.monthly_usd(&i).unwrap(), 0.384 * 730.0);
}

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, h, m, 0).unwrap()
}

const START: (u32, u32) = (0, 0);
const END: (u32, u32) = (10, 0);

fn resource(kind: &str, native: &str, id: &str, attrs: Value) -> Resource {
    Resource {
        provider: "aws".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        kind: kind.into(),
        native_type: native.into(),
        id: id.into(),
        name: String::new(),
        tags: [("team".to_string(), "core".to_string())].into(),
        attributes: serde_json::from_value(attrs).unwrap(),
        observed_at: t(10, 0),
    }
}

fn instance(id: &str, attrs: Value) -> Resource {
    resource("compute.instance", "AWS::EC2::Instance", id, attrs)
}

fn point(
    r: &Resource,
    metric: &str,
    stat: Stat,
    ts: DateTime<Utc>,
    value: f64,
    labels: Labels,
) -> Point {
    Point {
        metric: metric.into(),
        unit: Unit::Count,
        stat,
        period_s: 300,
        ts,
        value,
        resource: ResourceRef {
            provider: r.provider.clone().into(),
            account: r.account.clone().into(),
            region: r.region.clone().into(),
            id: r.id.clone().into(),
        }
        .into(),
        labels: labels.into(),
    }
}

fn run(resources: &[Resource], points: &[Point]) -> Estimate {
    estimate(
        &small_table(),
        t(START.0, START.1),
        t(END.0, END.1),
        resources,
        points,
    )
}

/// (SkuId, BilledCost, PricingQuantity, PricingUnit) of every line of `id`.
fn lines(e: &Estimate, id: &str) -> Vec<(String, f64, f64, String)> {
    e.costs
        .iter()
        .filter(|c| c.resource_id.as_deref() == Some(id))
        .map(|c| {
            (
                c.sku_id.clone().unwrap(),
                c.billed_cost,
                c.pricing_quantity.unwrap(),
                c.pricing_unit.clone().unwrap(),
            )
        })
        .collect()
}

#[test]
fn running_instance_is_hours_times_the_hourly_price_with_every_column() {
    let r = instance(
        "i-1",
        json!({"instance_type": "m5.large", "state": "running", "platform": "Windows", "tenancy": "default", "lifecycle": "on-demand"}),
    );
    let e = run(&[r], &[]);
    assert!(e.missing.is_empty(), "{:?}", e.missing);
    assert_eq!(e.costs.len(), 1);
    let c = &e.costs[0];
    assert_close!(c.billed_cost, 1.88);
    assert_eq!(c.effective_cost, c.billed_cost);
    assert_eq!(c.list_cost, Some(c.billed_cost));
    assert_eq!(c.billing_currency, "USD");
    assert_eq!(c.charge_period_start, t(0, 0));
    assert_eq!(c.charge_period_end, t(10, 0));
    assert_eq!(c.charge_category, skymeter_model::ChargeCategory::Usage);
    assert_eq!(c.provider_name, "Amazon Web Services");
    assert_eq!(c.service_name, "Amazon Elastic Compute Cloud");
    assert_eq!(c.service_category.as_deref(), Some("Compute"));
    assert_eq!(c.sub_account_id.as_deref(), Some("123456789012"));
    assert_eq!(c.region_id.as_deref(), Some("us-east-1"));
    assert_eq!(c.resource_id.as_deref(), Some("i-1"));
    assert_eq!(c.resource_type.as_deref(), Some("AWS::EC2::Instance"));
    assert_eq!(c.sku_id.as_deref(), Some("us-east-1/ec2/m5.large/Windows"));
    assert_eq!(c.pricing_quantity, Some(10.0));
    assert_eq!(c.pricing_unit.as_deref(), Some("Hrs"));
    assert_eq!(c.consumed_quantity, Some(10.0));
    assert_eq!(c.consumed_unit.as_deref(), Some("Hrs"));
    assert_eq!(c.tags["team"], "core");
    assert_eq!(c.x_source, CostSource::Estimated);
    assert_eq!(c.x_price_date.as_deref(), Some("2026-11-01"));
}

#[test]
fn stopped_spot_and_unsupported_instances() {
    let stopped = instance(
        "i-stopped",
        json!({"instance_type": "m5.large", "state": "stopped"}),
    );
    let spot = instance(
        "i-spot",
        json!({"instance_type": "m5.large", "state": "running", "lifecycle": "spot"}),
    );
    let sql = instance(
        "i-sql",
        json!({"instance_type": "m5.large", "state": "running", "platform": "Windows with SQL Server Standard"}),
    );
    let dedicated = instance(
        "i-ded",
        json!({"instance_type": "m5.large", "state": "running", "tenancy": "dedicated"}),
    );
    let linux = instance(
        "i-linux",
        json!({"instance_type": "m5.large", "state": "running"}),
    );
    let e = run(&[stopped, spot, sql, dedicated, linux], &[]);
    assert_eq!(e.costs.len(), 1);
    assert_eq!(
        lines(&e, "i-linux"),
        vec![(
            "us-east-1/ec2/m5.large/Linux".into(),
            0.96,
            10.0,
            "Hrs".into()
        )]
    );
    assert_eq!(e.missing.len(), 2, "{:?}", e.missing);
    let msgs: Vec<&str> = e.missing.iter().map(|m| m.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("platform \"Windows with SQL Server Standard\" are not estimated")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("tenancy `dedicated` are not estimated")),
        "{msgs:?}"
    );
}

#[test]
fn a_missing_price_is_reported_once_per_region_and_key() {
    let a = instance(
        "i-a",
        json!({"instance_type": "m7i.large", "state": "running"}),
    );
    let b = instance(
        "i-b",
        json!({"instance_type": "m7i.large", "state": "running"}),
    );
    let mut far = instance(
        "i-far",
        json!({"instance_type": "m5.large", "state": "running"}),
    );
    far.region = "eu-west-9".into();
    let mut far2 = far.clone();
    far2.id = "i-far2".into();
    let e = run(&[a, b, far, far2], &[]);
    assert!(e.costs.is_empty());
    assert_eq!(e.missing.len(), 2, "{:?}", e.missing);
    let m = e
        .missing
        .iter()
        .find(|m| m.context["price"] == "ec2/m7i.large/Linux")
        .unwrap();
    assert_eq!(m.kind, ErrorKind::Config);
    assert_eq!(m.context["region"], "us-east-1");
    assert_eq!(
        m.message,
        "the AWS price table of 2026-11-01 has no EC2 on-demand price for m7i.large (Linux) in us-east-1: costs that need it are not estimated; run `skymeter prices aws update --regions us-east-1`"
    );
    let r = e
        .missing
        .iter()
        .find(|m| m.context["region"] == "eu-west-9")
        .unwrap();
    assert!(
        r.message
            .contains("has no prices for region eu-west-9 at all"),
        "{}",
        r.message
    );
    assert!(r.message.contains("--regions eu-west-9"), "{}", r.message);
}

#[test]
fn volumes_are_priced_in_any_state_with_iops_and_throughput_above_the_baseline() {
    let months = 10.0 / 730.0;
    let gp3 = resource(
        "storage.volume",
        "AWS::EC2::Volume",
        "vol-gp3",
        json!({"volume_type": "gp3", "size_gib": 100, "iops": 6000, "throughput_mibps": 250, "state": "available"}),
    );
    let baseline = resource(
        "storage.volume",
        "AWS::EC2::Volume",
        "vol-base",
        json!({"volume_type": "gp3", "size_gib": 8, "iops": 3000, "throughput_mibps": 125, "state": "in-use"}),
    );
    let io2 = resource(
        "storage.volume",
        "AWS::EC2::Volume",
        "vol-io2",
        json!({"volume_type": "io2", "size_gib": 50, "iops": 40000, "state": "in-use"}),
    );
    let sc1 = resource(
        "storage.volume",
        "AWS::EC2::Volume",
        "vol-sc1",
        json!({"volume_type": "sc1", "size_gib": 500, "state": "in-use"}),
    );
    let e = run(&[gp3, baseline, io2, sc1], &[]);
    let g = lines(&e, "vol-gp3");
    assert_eq!(g.len(), 3);
    assert_eq!(g[0].0, "us-east-1/ebs/gp3/storage");
    assert_close!(g[0].1, 0.08 * 100.0 * months);
    assert_close!(g[0].2, 100.0 * months);
    assert_eq!(g[0].3, "GB-Mo");
    assert_eq!(g[1].0, "us-east-1/ebs/gp3/iops");
    assert_close!(g[1].1, 0.005 * 3000.0 * months);
    assert_eq!(g[1].3, "IOPS-Mo");
    assert_eq!(g[2].0, "us-east-1/ebs/gp3/throughput");
    assert_close!(g[2].1, 0.04 * 125.0 * months);
    assert_eq!(g[2].3, "MiBps-Mo");
    assert_eq!(lines(&e, "vol-base").len(), 1);
    let i = lines(&e, "vol-io2");
    assert_eq!(i.len(), 3);
    assert_close!(i[0].1, 0.125 * 50.0 * months);
    assert_eq!(i[1].0, "us-east-1/ebs/io2/iops");
    assert_close!(i[1].1, 0.065 * 32000.0 * months);
    assert_eq!(i[2].0, "us-east-1/ebs/io2/iops/tier2");
    assert_close!(i[2].1, 0.0455 * 8000.0 * months);
    assert!(lines(&e, "vol-sc1").is_empty());
    assert_eq!(e.missing.len(), 1);
    assert_eq!(e.missing[0].context["price"], "ebs/sc1/storage");
    assert_eq!(e.costs[0].service_category.as_deref(), Some("Storage"));
}

#[test]
fn databases_hours_when_available_and_storage_always() {
    let months = 10.0 / 730.0;
    let up = resource(
        "database.instance",
        "AWS::RDS::DBInstance",
        "db-up",
        json!({"instance_class": "db.m5.large", "engine": "postgres", "status": "available", "multi_az": true, "allocated_storage_gib": 100, "storage_type": "gp2"}),
    );
    let stopped = resource(
        "database.instance",
        "AWS::RDS::DBInstance",
        "db-stopped",
        json!({"instance_class": "db.m5.large", "engine": "postgres", "status": "stopped", "multi_az": false, "allocated_storage_gib": 20, "storage_type": "gp2"}),
    );
    let aurora = resource(
        "database.instance",
        "AWS::RDS::DBInstance",
        "db-aurora",
        json!({"instance_class": "db.r6g.large", "engine": "aurora-postgresql", "status": "available", "multi_az": false, "allocated_storage_gib": 1, "storage_type": "aurora"}),
    );
    let e = run(&[up, stopped, aurora], &[]);
    let u = lines(&e, "db-up");
    assert_eq!(
        u[0],
        (
            "us-east-1/rds/db.m5.large/postgres/multi_az".into(),
            0.356 * 10.0,
            10.0,
            "Hrs".into()
        )
    );
    assert_eq!(u[1].0, "us-east-1/rds/storage/gp2/multi_az");
    assert_close!(u[1].1, 0.23 * 100.0 * months);
    let s = lines(&e, "db-stopped");
    assert_eq!(s.len(), 1);
    assert_close!(s[0].1, 0.115 * 20.0 * months);
    assert!(lines(&e, "db-aurora").is_empty());
    assert_eq!(e.missing.len(), 1);
    assert_eq!(
        e.missing[0].context["price"],
        "rds/db.r6g.large/aurora-postgresql/single_az"
    );
    let c = e
        .costs
        .iter()
        .find(|c| c.resource_id.as_deref() == Some("db-up"))
        .unwrap();
    assert_eq!(c.service_name, "Amazon Relational Database Service");
    assert_eq!(c.service_category.as_deref(), Some("Databases"));
}

#[test]
fn eks_clusters_when_active() {
    let active = resource(
        "k8s.cluster",
        "AWS::EKS::Cluster",
        "prod",
        json!({"status": "ACTIVE"}),
    );
    let creating = resource(
        "k8s.cluster",
        "AWS::EKS::Cluster",
        "new",
        json!({"status": "CREATING"}),
    );
    let e = run(&[active, creating], &[]);
    assert_eq!(e.costs.len(), 1);
    assert_eq!(
        lines(&e, "prod"),
        vec![("us-east-1/eks/cluster".into(), 1.0, 10.0, "Hrs".into())]
    );
    assert_eq!(e.costs[0].service_name, "Amazon Elastic Kubernetes Service");
}

#[test]
fn buckets_take_the_latest_standard_storage_size_prorated() {
    let b = resource("storage.bucket", "AWS::S3::Bucket", "logs", json!({}));
    let std = |v: f64, ts| {
        point(
            &b,
            "storage.size",
            Stat::Avg,
            ts,
            v,
            [("storage_type".to_string(), "StandardStorage".to_string())].into(),
        )
    };
    let gib = (1u64 << 30) as f64;
    let points = vec![
        std(4.0 * gib, t(0, 0) - chrono::Duration::days(2)),
        std(10.0 * gib, t(0, 0) - chrono::Duration::days(1)),
        point(
            &b,
            "storage.size",
            Stat::Avg,
            t(0, 0),
            999.0 * gib,
            [("storage_type".to_string(), "StandardIAStorage".to_string())].into(),
        ),
    ];
    let e = run(&[b], &points);
    let l = lines(&e, "logs");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "us-east-1/s3/standard");
    assert_close!(l[0].2, 10.0 * 10.0 / 730.0);
    assert_close!(l[0].1, 0.023 * 10.0 * 10.0 / 730.0);
    assert_eq!(e.costs[0].service_name, "Amazon Simple Storage Service");
}

#[test]
fn functions_sum_invocations_times_duration_times_memory() {
    let f = resource(
        "function",
        "AWS::Lambda::Function",
        "resize",
        json!({"memory_mb": 512, "architecture": "arm64", "runtime": "python3.12"}),
    );
    let idle = resource(
        "function",
        "AWS::Lambda::Function",
        "idle",
        json!({"memory_mb": 128}),
    );
    let inv = |ts, v| point(&f, "function.invocations", Stat::Sum, ts, v, Labels::new());
    let dur = |ts, v| point(&f, "function.duration", Stat::Avg, ts, v, Labels::new());
    let points = vec![
        inv(t(1, 0), 1000.0),
        dur(t(1, 0), 200.0),
        inv(t(2, 0), 500.0),
        dur(t(2, 0), 100.0),
        // The period ending at the window's start belongs to the previous window.
        inv(t(0, 0), 7777.0),
        dur(t(0, 0), 5000.0),
        // A max is not an average.
        point(
            &f,
            "function.duration",
            Stat::Max,
            t(1, 0),
            9000.0,
            Labels::new(),
        ),
    ];
    let e = run(&[f, idle], &points);
    let l = lines(&e, "resize");
    assert_eq!(l.len(), 2);
    // 1000 × 0.2 s × 0.5 GB + 500 × 0.1 s × 0.5 GB = 125 GB-s.
    assert_eq!(l[0].0, "us-east-1/lambda/arm64/gb_second");
    assert_close!(l[0].2, 125.0);
    assert_eq!(l[0].3, "GB-Seconds");
    assert_close!(l[0].1, 125.0 * 0.0000133334);
    assert_eq!(l[1].0, "us-east-1/lambda/arm64/request");
    assert_close!(l[1].2, 1500.0);
    assert_eq!(l[1].3, "Requests");
    assert_close!(l[1].1, 1500.0 * 0.0000002);
    assert!(lines(&e, "idle").is_empty());
    assert!(e.missing.is_empty());
    assert_eq!(e.costs[0].service_name, "AWS Lambda");
}

#[test]
fn an_empty_window_costs_nothing() {
    let r = instance(
        "i-1",
        json!({"instance_type": "m5.large", "state": "running"}),
    );
    let e = estimate(&small_table(), t(1, 0), t(1, 0), &[r], &[]);
    assert!(e.costs.is_empty() && e.missing.is_empty());
}

// ---------------------------------------------------------------------------------------
// A local stand-in of the Price List Query API
// ---------------------------------------------------------------------------------------

/// One GetProducts request as the stand-in received it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    body: Value,
}

struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Clone)]
struct StandInState {
    /// (service code, PriceList document)
    products: Arc<Vec<(String, Value)>>,
    page_size: usize,
    deny: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn get_products(
    axum::extract::State(s): axum::extract::State<StandInState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.seen.lock().unwrap().push(Seen {
        target: target.clone(),
        body: body.clone(),
    });
    let reply = |status: u16, v: Value| {
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/x-amz-json-1.1")],
            v.to_string(),
        )
            .into_response()
    };
    if target != "AWSPriceListService.GetProducts" {
        return reply(400, json!({"__type": "UnknownOperationException"}));
    }
    if s.deny {
        return reply(
            400,
            json!({"__type": "AccessDeniedException", "Message": "User: arn:aws:iam::123456789012:user/x is not authorized to perform: pricing:GetProducts"}),
        );
    }
    let service = body["ServiceCode"].as_str().unwrap_or("");
    let filters = body["Filters"].as_array().cloned().unwrap_or_default();
    let matching: Vec<&Value> = s
        .products
        .iter()
        .filter(|(svc, doc)| {
            svc == service
                && filters.iter().all(|f| {
                    let field = f["Field"].as_str().unwrap_or("");
                    let value = f["Value"].as_str().unwrap_or("");
                    f["Type"] == "TERM_MATCH"
                        && (if field == "productFamily" {
                            doc["product"]["productFamily"] == value
                        } else {
                            doc["product"]["attributes"][field] == value
                        })
                })
        })
        .map(|(_, d)| d)
        .collect();
    let from: usize = body["NextToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let to = (from + s.page_size).min(matching.len());
    let mut answer = json!({
        "FormatVersion": "aws_v1",
        "PriceList": matching[from..to].iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    });
    if to < matching.len() {
        answer["NextToken"] = json!(to.to_string());
    }
    reply(200, answer)
}

async fn stand_in(products: Vec<(String, Value)>, page_size: usize, deny: bool) -> StandIn {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = StandInState {
        products: Arc::new(products),
        page_size,
        deny,
        seen: seen.clone(),
    };
    let app = axum::Router::new()
        .route("/", axum::routing::post(get_products))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    StandIn { url, seen }
}

async fn sdk(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .load()
        .await
}

/// A PriceList document shaped as GetProducts returns it (FormatVersion aws_v1): product
/// with attributes, OnDemand terms with tiered price dimensions, and Reserved terms the
/// parser must ignore.
fn product(
    service: &str,
    family: &str,
    attrs: Value,
    unit: &str,
    tiers: &[(&str, &str)],
) -> (String, Value) {
    let mut attributes = attrs;
    attributes["servicecode"] = json!(service);
    let sku = format!(
        "SKU{:012}",
        attributes.to_string().len() * 7919 + tiers.len()
    );
    let mut dims = serde_json::Map::new();
    for (i, (begin, usd)) in tiers.iter().enumerate() {
        let end = tiers
            .get(i + 1)
            .map_or("Inf".to_string(), |n| n.0.to_string());
        dims.insert(
            format!("{sku}.JRTCKXETXF.6YS6EN2CT{i}"),
            json!({
                "unit": unit,
                "endRange": end,
                "description": format!("${usd} per {unit}"),
                "appliesTo": [],
                "rateCode": format!("{sku}.JRTCKXETXF.6YS6EN2CT{i}"),
                "beginRange": begin,
                "pricePerUnit": {"USD": usd}
            }),
        );
    }
    let doc = json!({
        "product": {"productFamily": family, "attributes": attributes, "sku": sku},
        "serviceCode": service,
        "terms": {
            "OnDemand": {
                format!("{sku}.JRTCKXETXF"): {
                    "priceDimensions": dims,
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {}
                }
            },
            "Reserved": {
                format!("{sku}.4NA7Y494T4"): {
                    "priceDimensions": {
                        format!("{sku}.4NA7Y494T4.6YS6EN2CT7"): {
                            "unit": unit, "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                            "description": "Upfront Fee", "rateCode": "x", "pricePerUnit": {"USD": "0.0010000000"}
                        }
                    },
                    "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "4NA7Y494T4",
                    "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard", "PurchaseOption": "No Upfront"}
                }
            }
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z"
    });
    (service.to_string(), doc)
}

fn ec2(region: &str, ty: &str, os: &str, op: &str, usd: &str, extra: Value) -> (String, Value) {
    let mut a = json!({
        "regionCode": region, "location": "US East (N. Virginia)", "locationType": "AWS Region",
        "instanceType": ty, "operatingSystem": os, "operation": op, "tenancy": "Shared",
        "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
        "usagetype": format!("BoxUsage:{ty}"), "marketoption": "OnDemand", "vcpu": "2", "memory": "8 GiB"
    });
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    product("AmazonEC2", "Compute Instance", a, "Hrs", &[("0", usd)])
}

fn with(region: &str, attrs: Value) -> Value {
    let mut a = attrs;
    a["regionCode"] = json!(region);
    a["locationType"] = json!("AWS Region");
    a
}

/// The products of one region the stand-in serves: what the table keeps, plus products the
/// filters or the parser must leave out.
fn price_list(region: &str) -> Vec<(String, Value)> {
    let r = region;
    vec![
        ec2(
            r,
            "m5.large",
            "Linux",
            "RunInstances",
            "0.0960000000",
            json!({}),
        ),
        ec2(
            r,
            "m5.large",
            "Windows",
            "RunInstances:0002",
            "0.1880000000",
            json!({}),
        ),
        ec2(
            r,
            "m5.large",
            "RHEL",
            "RunInstances:0010",
            "0.1248000000",
            json!({}),
        ),
        ec2(
            r,
            "t3.micro",
            "Linux",
            "RunInstances",
            "0.0104000000",
            json!({}),
        ),
        ec2(
            r,
            "c7g.large",
            "Linux",
            "RunInstances",
            "0.0725000000",
            json!({}),
        ),
        // Left out by the filters: SQL Server, dedicated tenancy, BYOL, unused reservations.
        ec2(
            r,
            "m5.large",
            "Windows",
            "RunInstances:0006",
            "0.4800000000",
            json!({"preInstalledSw": "SQL Std"}),
        ),
        ec2(
            r,
            "m5.large",
            "Linux",
            "RunInstances",
            "0.1010000000",
            json!({"tenancy": "Dedicated"}),
        ),
        ec2(
            r,
            "m5.large",
            "Windows",
            "RunInstances:0800",
            "0.0960000000",
            json!({"licenseModel": "Bring your own license"}),
        ),
        ec2(
            r,
            "m5.large",
            "Linux",
            "RunInstances",
            "0.0960000000",
            json!({"capacitystatus": "UnusedCapacityReservation"}),
        ),
        // Left out by the parser: another operation under "Linux", a Capacity Block.
        ec2(
            r,
            "m5.large",
            "Linux",
            "RunInstances:00g0",
            "0.0000000000",
            json!({}),
        ),
        ec2(
            r,
            "p5.48xlarge",
            "Linux",
            "RunInstances",
            "31.4640000000",
            json!({"marketoption": "CapacityBlock"}),
        ),
        // EBS snapshots, NAT gateways, public IPv4, ALB/NLB.
        product(
            "AmazonEC2",
            "Storage Snapshot",
            with(r, json!({"usagetype": "EBS:SnapshotUsage"})),
            "GB-Mo",
            &[("0", "0.0500000000")],
        ),
        product(
            "AmazonEC2",
            "Storage Snapshot",
            with(r, json!({"usagetype": "EBS:SnapshotArchiveStorage"})),
            "GB-Mo",
            &[("0", "0.0125000000")],
        ),
        // Left out: a retrieval fee is per GB, not per GB-month.
        product(
            "AmazonEC2",
            "Storage Snapshot",
            with(r, json!({"usagetype": "EBS:SnapshotArchiveRetrieval"})),
            "GB",
            &[("0", "0.0300000000")],
        ),
        product(
            "AmazonEC2",
            "NAT Gateway",
            with(r, json!({"usagetype": "NatGateway-Hours"})),
            "Hrs",
            &[("0", "0.0450000000")],
        ),
        product(
            "AmazonEC2",
            "NAT Gateway",
            with(r, json!({"usagetype": "NatGateway-Bytes"})),
            "GB",
            &[("0", "0.0450000000")],
        ),
        product(
            "AmazonVPC",
            "VPC Public IPv4 Address",
            with(r, json!({"usagetype": "PublicIPv4:InUseAddress"})),
            "Hrs",
            &[("0", "0.0050000000")],
        ),
        // Left out: not a public IPv4 charge.
        product(
            "AmazonVPC",
            "VpcEndpoint",
            with(r, json!({"usagetype": "VpcEndpoint-Hours"})),
            "Hrs",
            &[("0", "0.0100000000")],
        ),
        product(
            "AWSELB",
            "Load Balancer-Application",
            with(
                r,
                json!({"usagetype": "LoadBalancerUsage", "operation": "LoadBalancing:Application"}),
            ),
            "Hrs",
            &[("0", "0.0225000000")],
        ),
        product(
            "AWSELB",
            "Load Balancer-Application",
            with(
                r,
                json!({"usagetype": "LCUUsage", "operation": "LoadBalancing:Application"}),
            ),
            "LCU-Hrs",
            &[("0", "0.0080000000")],
        ),
        product(
            "AWSELB",
            "Load Balancer-Network",
            with(
                r,
                json!({"usagetype": "LoadBalancerUsage", "operation": "LoadBalancing:Network"}),
            ),
            "Hrs",
            &[("0", "0.0225000000")],
        ),
        product(
            "AWSELB",
            "Load Balancer-Network",
            with(
                r,
                json!({"usagetype": "LCUUsage", "operation": "LoadBalancing:Network"}),
            ),
            "LCU-Hrs",
            &[("0", "0.0060000000")],
        ),
        // Left out: a classic load balancer.
        product(
            "AWSELB",
            "Load Balancer",
            with(
                r,
                json!({"usagetype": "LoadBalancerUsage", "operation": "LoadBalancing"}),
            ),
            "Hrs",
            &[("0", "0.0250000000")],
        ),
        // EBS.
        product(
            "AmazonEC2",
            "Storage",
            with(
                r,
                json!({"volumeApiName": "gp3", "usagetype": "EBS:VolumeUsage.gp3"}),
            ),
            "GB-Mo",
            &[("0", "0.0800000000")],
        ),
        product(
            "AmazonEC2",
            "Storage",
            with(
                r,
                json!({"volumeApiName": "gp2", "usagetype": "EBS:VolumeUsage.gp2"}),
            ),
            "GB-Mo",
            &[("0", "0.1000000000")],
        ),
        product(
            "AmazonEC2",
            "Storage",
            with(
                r,
                json!({"volumeApiName": "io2", "usagetype": "EBS:VolumeUsage.io2"}),
            ),
            "GB-Mo",
            &[("0", "0.1250000000")],
        ),
        product(
            "AmazonEC2",
            "System Operation",
            with(
                r,
                json!({"usagetype": "EBS:VolumeP-IOPS.gp3", "group": "EBS IOPS"}),
            ),
            "IOPS-Mo",
            &[("0", "0.0050000000")],
        ),
        product(
            "AmazonEC2",
            "System Operation",
            with(
                r,
                json!({"usagetype": "EBS:VolumeP-IOPS.piops", "group": "EBS IOPS"}),
            ),
            "IOPS-Mo",
            &[("0", "0.0650000000")],
        ),
        product(
            "AmazonEC2",
            "System Operation",
            with(
                r,
                json!({"usagetype": "EBS:VolumeP-IOPS.io2.tier3", "group": "EBS IOPS Tier 3"}),
            ),
            "IOPS-Mo",
            &[("0", "0.0318500000")],
        ),
        product(
            "AmazonEC2",
            "System Operation",
            with(
                r,
                json!({"usagetype": "EBS:VolumeP-IOPS.io2", "group": "EBS IOPS"}),
            ),
            "IOPS-Mo",
            &[("0", "0.0650000000")],
        ),
        product(
            "AmazonEC2",
            "System Operation",
            with(
                r,
                json!({"usagetype": "EBS:VolumeP-IOPS.io2.tier2", "group": "EBS IOPS Tier 2"}),
            ),
            "IOPS-Mo",
            &[("0", "0.0455000000")],
        ),
        product(
            "AmazonEC2",
            "System Operation",
            with(
                r,
                json!({"usagetype": "EBS:directAPI.snapshot.Put", "group": "EBS direct API Requests"}),
            ),
            "Requests",
            &[("0", "0.0000060000")],
        ),
        product(
            "AmazonEC2",
            "Provisioned Throughput",
            with(
                r,
                json!({"usagetype": "EBS:VolumeP-Throughput.gp3", "volumeApiName": "gp3"}),
            ),
            "GiBps-mo",
            &[("0", "40.9600000000")],
        ),
        // RDS.
        product(
            "AmazonRDS",
            "Database Instance",
            with(
                r,
                json!({"instanceType": "db.m5.large", "databaseEngine": "PostgreSQL", "deploymentOption": "Single-AZ", "licenseModel": "No license required", "usagetype": "InstanceUsage:db.m5.large"}),
            ),
            "Hrs",
            &[("0", "0.1780000000")],
        ),
        product(
            "AmazonRDS",
            "Database Instance",
            with(
                r,
                json!({"instanceType": "db.m5.large", "databaseEngine": "PostgreSQL", "deploymentOption": "Multi-AZ", "licenseModel": "No license required", "usagetype": "Multi-AZUsage:db.m5.large"}),
            ),
            "Hrs",
            &[("0", "0.3560000000")],
        ),
        product(
            "AmazonRDS",
            "Database Instance",
            with(
                r,
                json!({"instanceType": "db.m5.large", "databaseEngine": "MySQL", "deploymentOption": "Single-AZ", "licenseModel": "No license required", "usagetype": "InstanceUsage:db.m5.large"}),
            ),
            "Hrs",
            &[("0", "0.1710000000")],
        ),
        product(
            "AmazonRDS",
            "Database Instance",
            with(
                r,
                json!({"instanceType": "db.m5.large", "databaseEngine": "SQL Server", "databaseEdition": "Standard", "deploymentOption": "Single-AZ", "licenseModel": "License included", "usagetype": "InstanceUsage:db.m5.large"}),
            ),
            "Hrs",
            &[("0", "0.9770000000")],
        ),
        product(
            "AmazonRDS",
            "Database Instance",
            with(
                r,
                json!({"instanceType": "db.m5.large", "databaseEngine": "Oracle", "databaseEdition": "Standard Two", "deploymentOption": "Single-AZ", "licenseModel": "Bring your own license", "usagetype": "InstanceUsage:db.m5.large"}),
            ),
            "Hrs",
            &[("0", "0.1710000000")],
        ),
        product(
            "AmazonRDS",
            "Database Instance",
            with(
                r,
                json!({"instanceType": "db.m5.large", "databaseEngine": "PostgreSQL", "deploymentOption": "Multi-AZ (readable standbys)", "licenseModel": "No license required", "usagetype": "Multi-AZClusterUsage:db.m5.large"}),
            ),
            "Hrs",
            &[("0", "0.5340000000")],
        ),
        product(
            "AmazonRDS",
            "Database Instance",
            with(
                r,
                json!({"instanceType": "db.r6g.large", "databaseEngine": "Aurora PostgreSQL", "deploymentOption": "Single-AZ", "licenseModel": "No license required", "usagetype": "InstanceUsageIOOptimized:db.r6g.large"}),
            ),
            "Hrs",
            &[("0", "0.3380000000")],
        ),
        product(
            "AmazonRDS",
            "Database Storage",
            with(
                r,
                json!({"volumeType": "General Purpose", "databaseEngine": "SQL Server", "deploymentOption": "Single-AZ", "usagetype": "RDS:GP2-Storage"}),
            ),
            "GB-Mo",
            &[("0", "0.1330000000")],
        ),
        product(
            "AmazonRDS",
            "Database Storage",
            with(
                r,
                json!({"volumeType": "General Purpose", "databaseEngine": "Any", "deploymentOption": "Single-AZ", "usagetype": "RDS:GP2-Storage"}),
            ),
            "GB-Mo",
            &[("0", "0.1150000000")],
        ),
        product(
            "AmazonRDS",
            "Database Storage",
            with(
                r,
                json!({"volumeType": "General Purpose", "databaseEngine": "PostgreSQL", "deploymentOption": "Multi-AZ", "usagetype": "RDS:Multi-AZ-GP2-Storage"}),
            ),
            "GB-Mo",
            &[("0", "0.2300000000")],
        ),
        product(
            "AmazonRDS",
            "Database Storage",
            with(
                r,
                json!({"volumeType": "General Purpose-GP3", "databaseEngine": "Any", "deploymentOption": "Single-AZ", "usagetype": "RDS:GP3-Storage"}),
            ),
            "GB-Mo",
            &[("0", "0.1150000000")],
        ),
        // Lambda: tiered duration, requests, and a provisioned-concurrency price to ignore.
        product(
            "AWSLambda",
            "Serverless",
            with(
                r,
                json!({"group": "AWS-Lambda-Duration", "usagetype": "USE1-Lambda-GB-Second"}),
            ),
            "Lambda-GB-Second",
            &[
                ("0", "0.0000166667"),
                ("6000000000", "0.0000150000"),
                ("15000000000", "0.0000133334"),
            ],
        ),
        product(
            "AWSLambda",
            "Serverless",
            with(
                r,
                json!({"group": "AWS-Lambda-Duration-ARM", "usagetype": "USE1-Lambda-GB-Second-ARM"}),
            ),
            "Lambda-GB-Second",
            &[
                ("0", "0.0000133334"),
                ("7500000000", "0.0000120001"),
                ("18750000000", "0.0000106667"),
            ],
        ),
        product(
            "AWSLambda",
            "Serverless",
            with(
                r,
                json!({"group": "AWS-Lambda-Requests", "usagetype": "USE1-Request"}),
            ),
            "Requests",
            &[("0", "0.0000002000")],
        ),
        product(
            "AWSLambda",
            "Serverless",
            with(
                r,
                json!({"group": "AWS-Lambda-Requests-ARM", "usagetype": "USE1-Request-ARM"}),
            ),
            "Requests",
            &[("0", "0.0000002000")],
        ),
        product(
            "AWSLambda",
            "Serverless",
            with(
                r,
                json!({"group": "AWS-Lambda-Provisioned-Concurrency", "usagetype": "USE1-Lambda-Provisioned-GB-Second"}),
            ),
            "Lambda-GB-Second",
            &[("0", "0.0000041667")],
        ),
        // S3: Standard's first tier; another storage class the filters leave out.
        product(
            "AmazonS3",
            "Storage",
            with(
                r,
                json!({"volumeType": "Standard", "storageClass": "General Purpose", "usagetype": "TimedStorage-ByteHrs"}),
            ),
            "GB-Mo",
            &[
                ("0", "0.0230000000"),
                ("51200", "0.0220000000"),
                ("512000", "0.0210000000"),
            ],
        ),
        product(
            "AmazonS3",
            "Storage",
            with(
                r,
                json!({"volumeType": "Glacier Deep Archive", "storageClass": "Archive", "usagetype": "TimedStorage-GDA-ByteHrs"}),
            ),
            "GB-Mo",
            &[("0", "0.0009900000")],
        ),
        // EKS: standard and extended support.
        product(
            "AmazonEKS",
            "Compute",
            with(
                r,
                json!({"usagetype": "USE1-AmazonEKS-Hours:perCluster", "operation": "CreateOperation"}),
            ),
            "Hours",
            &[("0", "0.1000000000")],
        ),
        product(
            "AmazonEKS",
            "Compute",
            with(
                r,
                json!({"usagetype": "USE1-AmazonEKS-Hours:extendedSupport", "operation": "CreateOperation"}),
            ),
            "Hours",
            &[("0", "0.6000000000")],
        ),
    ]
}

fn expected_region() -> RegionPrices {
    serde_json::from_value(json!({
        "ec2": {
            "c7g.large": {"Linux": 0.0725},
            "m5.large": {"Linux": 0.096, "RHEL": 0.1248, "Windows": 0.188},
            "t3.micro": {"Linux": 0.0104}
        },
        "ebs": {
            "storage_gb_month": {"gp2": 0.1, "gp3": 0.08, "io2": 0.125},
            "iops_month": {
                "gp3": [{"from": 0, "usd": 0.005}],
                "io1": [{"from": 0, "usd": 0.065}],
                "io2": [{"from": 0, "usd": 0.065}, {"from": 32000, "usd": 0.0455}, {"from": 64000, "usd": 0.03185}]
            },
            "throughput_mibps_month": {"gp3": 0.04},
            "snapshot_gb_month": 0.05,
            "snapshot_archive_gb_month": 0.0125
        },
        "vpc": {"public_ipv4_hour": 0.005, "nat_gateway_hour": 0.045, "nat_gateway_gb": 0.045},
        "elb": {"alb_hour": 0.0225, "alb_lcu_hour": 0.008, "nlb_hour": 0.0225, "nlb_lcu_hour": 0.006},
        "rds": {
            "instance_hour": {"db.m5.large": {
                "mysql": {"single_az": 0.171},
                "postgres": {"single_az": 0.178, "multi_az": 0.356},
                "sqlserver-se": {"single_az": 0.977}
            }},
            "storage_gb_month": {
                "gp2": {"single_az": 0.115, "multi_az": 0.23},
                "gp3": {"single_az": 0.115}
            }
        },
        "lambda": {
            "gb_second": {"arm64": 0.0000133334, "x86_64": 0.0000166667},
            "request": {"arm64": 0.0000002, "x86_64": 0.0000002}
        },
        "s3": {"standard_gb_month": 0.023},
        "eks": {"cluster_hour": 0.1}
    }))
    .unwrap()
}

#[tokio::test]
async fn fetch_reads_every_page_of_every_service_into_the_table() {
    let mut products = price_list("us-east-1");
    products.extend(price_list("eu-west-1"));
    let api = stand_in(products, 2, false).await;
    let calls = ApiCalls::default();
    let progressed = Mutex::new(Vec::<(String, u64)>::new());
    let progress = |what: &str, n: u64| progressed.lock().unwrap().push((what.to_string(), n));
    let table = fetch_price_list(
        &sdk(&api.url).await,
        &["us-east-1".to_string(), "eu-west-1".to_string()],
        &calls,
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(table.currency, "USD");
    assert_eq!(table.date, Utc::now().format("%Y-%m-%d").to_string());
    assert!(
        table.source.contains("Price List Query API"),
        "{}",
        table.source
    );
    assert!(table.source.contains(&api.url), "{}", table.source);
    table.validate().unwrap();
    let expected: BTreeMap<String, RegionPrices> = [
        ("eu-west-1".to_string(), expected_region()),
        ("us-east-1".to_string(), expected_region()),
    ]
    .into();
    assert_eq!(table.regions, expected);
    // Every priced instance type's vCPUs and memory, from the same products.
    let spec = InstanceSpec {
        vcpus: 2,
        memory_mib: 8192,
    };
    assert_eq!(
        table.ec2_specs,
        [
            ("c7g.large".to_string(), spec),
            ("m5.large".to_string(), spec),
            ("t3.micro".to_string(), spec)
        ]
        .into()
    );

    // Pages of 2 per query, per region: EC2 instances 7 products pass the filters → 4 calls,
    // EBS storage 3 → 2, system operation 6 → 3, throughput 1 → 1, snapshots 3 → 2, RDS
    // instances 7 → 4, storage 4 → 2, Lambda 5 → 3, S3 Standard 1 → 1, NAT gateway 2 → 1,
    // VPC 2 → 1, ELB 5 → 3, EKS 2 → 1: 28 calls per region.
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(calls.get("pricing:GetProducts"), 56);
    assert_eq!(seen.len(), 56);
    for s in &seen {
        assert_eq!(s.target, "AWSPriceListService.GetProducts");
        assert_eq!(s.body["FormatVersion"], "aws_v1");
        assert_eq!(s.body["MaxResults"], 100);
        let filters = s.body["Filters"].as_array().unwrap();
        assert!(
            filters.iter().all(|f| f["Type"] == "TERM_MATCH"),
            "{filters:?}"
        );
        assert!(
            filters.iter().any(|f| f["Field"] == "regionCode"),
            "{filters:?}"
        );
    }
    let ec2_query = seen
        .iter()
        .find(|s| s.body["ServiceCode"] == "AmazonEC2")
        .unwrap();
    let fields: BTreeMap<String, String> = ec2_query.body["Filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["Field"].as_str().unwrap().to_string(),
                f["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(fields["tenancy"], "Shared");
    assert_eq!(fields["preInstalledSw"], "NA");
    assert_eq!(fields["capacitystatus"], "Used");
    assert_eq!(fields["productFamily"], "Compute Instance");
    assert_eq!(fields["regionCode"], "us-east-1");
    let progressed = progressed.lock().unwrap();
    assert_eq!(progressed[0], ("us-east-1 AmazonEC2".to_string(), 2));
    assert_eq!(progressed[3], ("us-east-1 AmazonEC2".to_string(), 7));
    assert_eq!(progressed[4], ("us-east-1 AmazonEC2".to_string(), 2));
}

#[tokio::test]
async fn a_region_without_ec2_prices_is_a_clear_error() {
    let api = stand_in(price_list("us-east-1"), 100, false).await;
    let calls = ApiCalls::default();
    let e = fetch_price_list(
        &sdk(&api.url).await,
        &["us-esat-1".to_string()],
        &calls,
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(
        e.message
            .contains("no EC2 on-demand prices for region \"us-esat-1\""),
        "{e}"
    );
    assert!(e.message.contains("check the region code"), "{e}");
    assert_eq!(calls.get("pricing:GetProducts"), 1);
}

#[tokio::test]
async fn a_denied_call_names_the_iam_action() {
    let api = stand_in(price_list("us-east-1"), 100, true).await;
    let calls = ApiCalls::default();
    let e = fetch_price_list(
        &sdk(&api.url).await,
        &["us-east-1".to_string()],
        &calls,
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permission);
    assert!(
        e.message
            .contains("grant the IAM action pricing:GetProducts"),
        "{e}"
    );
    assert_eq!(e.context["api"], "GetProducts");
    assert_eq!(calls.get("pricing:GetProducts"), 1);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let port = skymeter_testkit::net::free_port();
    let calls = ApiCalls::default();
    let e = fetch_price_list(
        &sdk(&format!("http://127.0.0.1:{port}")).await,
        &["us-east-1".to_string()],
        &calls,
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.starts_with("GetProducts failed"), "{e}");
}

#[test]
fn show_rows_and_counts_include_the_waste_prices() {
    use skymeter_plugin_api::prices::PriceTable as _;
    let table = waste_table();
    let rows: Vec<(String, f64, String)> = table
        .rows("us-east-1")
        .into_iter()
        .map(|r| (r.key, r.usd, r.per))
        .filter(|(k, _, _)| {
            k.starts_with("ebs/snapshot") || k.starts_with("vpc/") || k.starts_with("elb/")
        })
        .collect();
    let want: Vec<(String, f64, String)> = [
        ("ebs/snapshot/standard", 0.05, "GB-month"),
        ("ebs/snapshot/archive", 0.0125, "GB-month"),
        ("vpc/public_ipv4", 0.005, "hour"),
        ("vpc/nat_gateway", 0.045, "hour"),
        ("vpc/nat_gateway/data", 0.045, "GB"),
        ("elb/alb", 0.0225, "hour"),
        ("elb/alb/lcu", 0.008, "LCU-hour"),
        ("elb/nlb", 0.0225, "hour"),
        ("elb/nlb/lcu", 0.006, "NLCU-hour"),
    ]
    .into_iter()
    .map(|(k, v, p)| (k.to_string(), v, p.to_string()))
    .collect();
    assert_eq!(rows, want);
    let counts = skymeter_plugin_api::prices::PriceTable::counts(&table);
    let use1 = &counts["us-east-1"];
    assert_eq!(use1["vpc"], 3);
    assert_eq!(use1["elb"], 4);
    // 3 storage, 4 IOPS tiers, 1 throughput, 2 snapshot prices.
    assert_eq!(use1["ebs"], 10);
    assert_eq!(counts["eu-west-1"]["vpc"], 0);
    // The file form keeps every new field.
    let back: PriceTable = serde_json::from_str(&PriceTable::to_json(&table)).unwrap();
    assert_eq!(back, table);
}
