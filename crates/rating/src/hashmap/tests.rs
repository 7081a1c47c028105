//! CloudKitty's documented hashmap examples (doc/source/user/rating/hashmap.rst), and the
//! corners of its `HashMap.process` the documentation leaves out.

use super::*;
use crate::frame::{DataFrame, DataPoint};
use crate::rules::RatingRules;
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    crate::decimal::parse_decimal(s).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap()
}

/// The price `rules` put on one point of `service` for `scope`.
fn price(rules: &HashMapRules, service: &str, point: DataPoint, scope: Option<&str>) -> Decimal {
    // The hashmap module is on by default.
    let all = RatingRules {
        hashmap: rules.clone(),
        ..RatingRules::default()
    };
    let mut frame = DataFrame::new(t0(), t0() + chrono::Duration::hours(1));
    frame.add_point(service, point);
    all.rate(frame, scope).unwrap().total()
}

fn volume(gib: &str) -> DataPoint {
    DataPoint::new("GiB", d(gib))
}

fn service_mapping(
    rules: &mut HashMapRules,
    service: Uuid,
    t: MapType,
    cost: &str,
    group: Option<Uuid>,
) -> Mapping {
    let mut m = Mapping::new(t, d(cost));
    m.service_id = Some(service);
    m.group_id = group;
    rules.add_mapping(m).unwrap()
}

fn field_mapping(
    rules: &mut HashMapRules,
    field: Uuid,
    value: &str,
    t: MapType,
    cost: &str,
    group: Option<Uuid>,
) -> Mapping {
    let mut m = Mapping::new(t, d(cost));
    m.field_id = Some(field);
    m.value = Some(value.into());
    m.group_id = group;
    rules.add_mapping(m).unwrap()
}

fn threshold(
    rules: &mut HashMapRules,
    parent: (Option<Uuid>, Option<Uuid>),
    level: &str,
    t: MapType,
    cost: &str,
    group: Option<Uuid>,
    tenant: Option<&str>,
) {
    let mut th = Threshold::new(d(level), t, d(cost));
    th.service_id = parent.0;
    th.field_id = parent.1;
    th.group_id = group;
    th.tenant_id = tenant.map(str::to_string);
    rules.add_threshold(th).unwrap();
}

#[test]
fn field_mappings_price_per_volume_type() {
    // "A 10GiB SSD_gold volume will be rated 0.3 per collect period, a 1GiB HDD_bronze
    // volume will be rated 0.01, a 0.5GiB SSD_silver will be 0.01."
    let mut rules = HashMapRules::default();
    let svc = rules.add_service("volume.size").unwrap().service_id;
    let field = rules.add_field(svc, "volume_type").unwrap().field_id;
    field_mapping(&mut rules, field, "SSD_gold", MapType::Flat, "0.03", None);
    field_mapping(&mut rules, field, "SSD_silver", MapType::Flat, "0.02", None);
    field_mapping(&mut rules, field, "HDD_bronze", MapType::Flat, "0.01", None);
    let p = |gib: &str, t: &str| {
        price(
            &rules,
            "volume.size",
            volume(gib).with_metadata("volume_type", t),
            None,
        )
    };
    assert_eq!(p("10", "SSD_gold"), d("0.3"));
    assert_eq!(p("1", "HDD_bronze"), d("0.01"));
    assert_eq!(p("0.5", "SSD_silver"), d("0.01"));
    // No mapping for the value: not rated.
    assert_eq!(p("10", "NVMe"), d("0"));
}

#[test]
fn volume_per_gib_with_threshold_discounts() {
    // The "Volume per GiB with discount" example, every figure of it.
    let mut rules = HashMapRules::default();
    let group = rules.add_group("volume_thresholds").unwrap().group_id;
    let svc = rules.add_service("volume.size").unwrap().service_id;
    service_mapping(&mut rules, svc, MapType::Flat, "0.001", Some(group));
    let project = "2d5b39657dc542d4b2a14b685335304e";
    threshold(
        &mut rules,
        (Some(svc), None),
        "50",
        MapType::Rate,
        "0.98",
        Some(group),
        None,
    );
    threshold(
        &mut rules,
        (Some(svc), None),
        "50",
        MapType::Rate,
        "0.97",
        Some(group),
        Some(project),
    );
    threshold(
        &mut rules,
        (Some(svc), None),
        "200",
        MapType::Rate,
        "0.95",
        Some(group),
        None,
    );
    let p = |gib: &str, scope: Option<&str>| price(&rules, "volume.size", volume(gib), scope);
    assert_eq!(p("20", None), d("0.02"));
    assert_eq!(p("50", None), d("0.049"));
    assert_eq!(p("50", Some(project)), d("0.0485"));
    assert_eq!(p("80", None), d("0.0784"));
    assert_eq!(p("80", Some(project)), d("0.0776"));
    assert_eq!(p("250", None), d("0.2375"));
    // The project's 3 % replaces the 2 % only at 50; at 250 everyone gets 5 %.
    assert_eq!(p("250", Some(project)), d("0.2375"));
    // Another project gets the unscoped rules.
    assert_eq!(p("50", Some("other")), d("0.049"));
}

#[test]
fn instance_flavor_mapping_in_a_group() {
    // The "Instance uptime" example: m1.tiny instances rated 0.01 per period.
    let mut rules = HashMapRules::default();
    let group = rules
        .add_group("instance_uptime_flavor_id")
        .unwrap()
        .group_id;
    let svc = rules.add_service("instance").unwrap().service_id;
    let field = rules.add_field(svc, "flavor_id").unwrap().field_id;
    let tiny = "93195dd4-bbf3-4b13-929d-8293ae72e056";
    field_mapping(&mut rules, field, tiny, MapType::Flat, "0.01", Some(group));
    let inst = |flavor: &str| DataPoint::new("instance", d("1")).with_metadata("flavor_id", flavor);
    assert_eq!(price(&rules, "instance", inst(tiny), None), d("0.01"));
    assert_eq!(price(&rules, "instance", inst("other"), None), d("0"));
    // Another service is not touched by the instance rules.
    assert_eq!(price(&rules, "image.size", inst(tiny), None), d("0"));
}

#[test]
fn within_a_group_only_the_most_expensive_flat_applies_and_rates_multiply() {
    let mut rules = HashMapRules::default();
    let g = rules.add_group("instance").unwrap().group_id;
    let svc = rules.add_service("instance").unwrap().service_id;
    let flavor = rules.add_field(svc, "flavor").unwrap().field_id;
    let image = rules.add_field(svc, "image").unwrap().field_id;
    let region = rules.add_field(svc, "region").unwrap().field_id;
    field_mapping(
        &mut rules,
        flavor,
        "m1.large",
        MapType::Flat,
        "2.5",
        Some(g),
    );
    field_mapping(&mut rules, image, "windows", MapType::Flat, "4", Some(g));
    field_mapping(&mut rules, region, "eu", MapType::Rate, "1.1", Some(g));
    service_mapping(&mut rules, svc, MapType::Rate, "0.5", Some(g));
    let point = DataPoint::new("instance", d("2"))
        .with_metadata("flavor", "m1.large")
        .with_metadata("image", "windows")
        .with_groupby("region", "eu");
    // max(2.5, 4) = 4, × 1.1 × 0.5, × 2 instances.
    assert_eq!(price(&rules, "instance", point.clone(), None), d("4.4"));
    // A rate with no flat in its group prices nothing.
    let lone = DataPoint::new("instance", d("2")).with_groupby("region", "eu");
    assert_eq!(price(&rules, "instance", lone, None), d("0"));
}

#[test]
fn groups_are_independent_and_add_up() {
    let mut rules = HashMapRules::default();
    let compute = rules.add_group("compute").unwrap().group_id;
    let license = rules.add_group("license").unwrap().group_id;
    let svc = rules.add_service("instance").unwrap().service_id;
    let image = rules.add_field(svc, "image").unwrap().field_id;
    let commitment = rules.add_field(svc, "commitment").unwrap().field_id;
    service_mapping(&mut rules, svc, MapType::Flat, "0.10", Some(compute));
    field_mapping(
        &mut rules,
        image,
        "windows",
        MapType::Flat,
        "0.04",
        Some(license),
    );
    // A discount in the compute group does not touch the license.
    field_mapping(
        &mut rules,
        commitment,
        "reserved",
        MapType::Rate,
        "0.5",
        Some(compute),
    );
    let win = DataPoint::new("instance", d("10"))
        .with_metadata("image", "windows")
        .with_metadata("commitment", "reserved");
    // compute: 0.10 × 0.5 × 10 = 0.5; license: 0.04 × 10 = 0.4.
    assert_eq!(price(&rules, "instance", win, None), d("0.9"));
    // One service mapping per group and scope: a second one is refused.
    let mut second = Mapping::new(MapType::Rate, d("0.5"));
    second.service_id = Some(svc);
    second.group_id = Some(compute);
    assert!(matches!(
        rules.add_mapping(second),
        Err(RuleError::Conflict(_))
    ));
    // The default group is a group like the others.
    let other = rules.add_service("ip").unwrap().service_id;
    service_mapping(&mut rules, other, MapType::Flat, "0.005", None);
    assert_eq!(
        price(&rules, "ip", DataPoint::new("ip", d("3")), None),
        d("0.015")
    );
}

#[test]
fn field_thresholds_read_the_attribute_as_a_number() {
    // A field threshold compares the attribute (vcpus), not the quantity; a flat one adds
    // to the group's flat before the quantity multiplies it.
    let mut rules = HashMapRules::default();
    let svc = rules.add_service("instance").unwrap().service_id;
    let vcpus = rules.add_field(svc, "vcpus").unwrap().field_id;
    service_mapping(&mut rules, svc, MapType::Flat, "0.02", None);
    threshold(
        &mut rules,
        (None, Some(vcpus)),
        "4",
        MapType::Flat,
        "0.03",
        None,
        None,
    );
    threshold(
        &mut rules,
        (None, Some(vcpus)),
        "16",
        MapType::Flat,
        "0.10",
        None,
        None,
    );
    let inst = |v: &str| DataPoint::new("instance", d("2")).with_metadata("vcpus", v);
    assert_eq!(price(&rules, "instance", inst("2"), None), d("0.04"));
    assert_eq!(price(&rules, "instance", inst("8"), None), d("0.10"));
    assert_eq!(price(&rules, "instance", inst("32"), None), d("0.24"));
    // Not a number: no level is reached (CloudKitty would fail the period).
    assert_eq!(price(&rules, "instance", inst("many"), None), d("0.04"));
}

#[test]
fn a_service_flat_threshold_adds_once_not_per_unit() {
    let mut rules = HashMapRules::default();
    let svc = rules.add_service("egress").unwrap().service_id;
    service_mapping(&mut rules, svc, MapType::Flat, "0.09", None);
    threshold(
        &mut rules,
        (Some(svc), None),
        "100",
        MapType::Flat,
        "5",
        None,
        None,
    );
    let gb = |q: &str| DataPoint::new("GB", d(q));
    assert_eq!(price(&rules, "egress", gb("10"), None), d("0.9"));
    assert_eq!(price(&rules, "egress", gb("200"), None), d("23"));
    // Level 0 is reached by any quantity (CloudKitty starts the best level at -1).
    threshold(
        &mut rules,
        (Some(svc), None),
        "0",
        MapType::Flat,
        "1",
        None,
        None,
    );
    assert_eq!(price(&rules, "egress", gb("10"), None), d("1.9"));
}

#[test]
fn scoped_mappings_replace_the_unscoped_one_for_their_scope() {
    let mut rules = HashMapRules::default();
    let svc = rules.add_service("instance").unwrap().service_id;
    service_mapping(&mut rules, svc, MapType::Flat, "1", None);
    let mut m = Mapping::new(MapType::Flat, d("0.5"));
    m.service_id = Some(svc);
    m.tenant_id = Some("team-a".into());
    rules.add_mapping(m).unwrap();
    let one = || DataPoint::new("instance", d("1"));
    assert_eq!(price(&rules, "instance", one(), None), d("1"));
    // Not the most expensive of the two: the scope's own replaces the other.
    assert_eq!(price(&rules, "instance", one(), Some("team-a")), d("0.5"));
    assert_eq!(price(&rules, "instance", one(), Some("team-b")), d("1"));
}

#[test]
fn mappings_are_in_force_between_start_and_end() {
    let mut rules = HashMapRules::default();
    let svc = rules.add_service("instance").unwrap().service_id;
    let mut old = Mapping::new(MapType::Flat, d("1"));
    old.service_id = Some(svc);
    old.end = Some(t0());
    rules.add_mapping(old).unwrap();
    let mut new = Mapping::new(MapType::Flat, d("2"));
    new.service_id = Some(svc);
    new.start = Some(t0());
    rules.add_mapping(new.clone()).unwrap();
    // The period starting at t0 is rated with the new price.
    assert_eq!(
        price(&rules, "instance", DataPoint::new("instance", d("1")), None),
        d("2")
    );
    // Overlapping periods for the same key are refused.
    let mut clash = new;
    clash.mapping_id = Uuid::new_v4();
    assert!(matches!(
        rules.add_mapping(clash),
        Err(RuleError::Conflict(_))
    ));
}

#[test]
fn constraints_cloudkitty_enforces() {
    let mut rules = HashMapRules::default();
    let svc = rules.add_service("instance").unwrap().service_id;
    let field = rules.add_field(svc, "flavor").unwrap().field_id;
    assert!(matches!(
        rules.add_service("instance"),
        Err(RuleError::Conflict(_))
    ));
    assert!(matches!(
        rules.add_field(svc, "flavor"),
        Err(RuleError::Conflict(_))
    ));
    assert!(matches!(
        rules.add_field(Uuid::new_v4(), "x"),
        Err(RuleError::NotFound {
            kind: "service",
            ..
        })
    ));
    let mut both = Mapping::new(MapType::Flat, d("1"));
    both.service_id = Some(svc);
    both.field_id = Some(field);
    assert!(rules
        .add_mapping(both)
        .unwrap_err()
        .to_string()
        .contains("one parent"));
    let mut valued = Mapping::new(MapType::Flat, d("1"));
    valued.service_id = Some(svc);
    valued.value = Some("x".into());
    assert!(rules
        .add_mapping(valued)
        .unwrap_err()
        .to_string()
        .contains("no value"));
    let mut bare = Mapping::new(MapType::Flat, d("1"));
    bare.field_id = Some(field);
    assert!(rules
        .add_mapping(bare)
        .unwrap_err()
        .to_string()
        .contains("needs the value"));
    let mut huge = Mapping::new(MapType::Flat, d("1000000000000"));
    huge.service_id = Some(svc);
    assert!(rules
        .add_mapping(huge)
        .unwrap_err()
        .to_string()
        .contains("too large"));
    let mut th = Threshold::new(d("10"), MapType::Rate, d("0.9"));
    th.field_id = Some(field);
    rules.add_threshold(th.clone()).unwrap();
    th.threshold_id = Uuid::new_v4();
    assert!(matches!(
        rules.add_threshold(th),
        Err(RuleError::Conflict(_))
    ));
}

#[test]
fn deleting_cascades_like_cloudkitty() {
    let mut rules = HashMapRules::default();
    let g = rules.add_group("g").unwrap().group_id;
    let svc = rules.add_service("instance").unwrap().service_id;
    let field = rules.add_field(svc, "flavor").unwrap().field_id;
    field_mapping(&mut rules, field, "a", MapType::Flat, "1", Some(g));
    service_mapping(&mut rules, svc, MapType::Flat, "2", Some(g));
    // A group deleted without `recursive` leaves its rules in the default group.
    rules.delete_group(g, false).unwrap();
    assert_eq!(rules.mappings.len(), 2);
    assert!(rules.mappings.iter().all(|m| m.group_id.is_none()));
    rules.delete_field(field).unwrap();
    assert_eq!(rules.mappings.len(), 1);
    rules.delete_service(svc).unwrap();
    assert!(rules.mappings.is_empty() && rules.fields.is_empty() && rules.services.is_empty());
    assert!(matches!(
        rules.delete_service(svc),
        Err(RuleError::NotFound { .. })
    ));
}

#[test]
fn precision_is_decimal_not_float() {
    // 0.1 + 0.2 style sums stay exact, and 28 significant digits survive.
    let mut rules = HashMapRules::default();
    let svc = rules.add_service("s").unwrap().service_id;
    service_mapping(
        &mut rules,
        svc,
        MapType::Flat,
        "0.1000000000000000000000000001",
        None,
    );
    assert_eq!(
        price(&rules, "s", DataPoint::new("u", d("3")), None),
        d("0.3000000000000000000000000003")
    );
}
