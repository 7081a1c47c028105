//! Rating throughput: usage points rated per second on one core.
//!
//! - hashmap: 100 mappings and 10 thresholds over one service (flavor flats, region
//!   rates, image flats in a second group, a service flat, quantity and vcpus thresholds,
//!   a scope of its own), on frames of 200,000 points with mixed attributes;
//! - script: the CloudKitty pyscripts example in Rhai on frames of 50,000 points.
//!
//! Frames are built before the clock starts; the figure is `rate()` alone, whole frames,
//! single-threaded (the server rates scopes in parallel, one per core).
//!
//!   cargo bench -p skymeter-rating --bench throughput

use chrono::{TimeZone, Utc};
use skymeter_rating::hashmap::{MapType, Mapping, Threshold};
use skymeter_rating::{DataFrame, DataPoint, Decimal, RatingRules, Script};
use std::time::Instant;

fn d(s: &str) -> Decimal {
    skymeter_rating::decimal::parse_decimal(s).unwrap()
}

/// A small deterministic generator (xorshift), so every run rates the same frames.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn rules_with_100_mappings() -> RatingRules {
    let mut r = RatingRules::default();
    let hm = &mut r.hashmap;
    let compute = hm.add_group("compute").unwrap().group_id;
    let license = hm.add_group("license").unwrap().group_id;
    let svc = hm.add_service("instance").unwrap().service_id;
    let flavor = hm.add_field(svc, "flavor").unwrap().field_id;
    let region = hm.add_field(svc, "region").unwrap().field_id;
    let image = hm.add_field(svc, "image").unwrap().field_id;
    let vcpus = hm.add_field(svc, "vcpus").unwrap().field_id;
    let mut add = |field, value: String, t, cost: String, group| {
        let mut m = Mapping::new(t, d(&cost));
        m.field_id = Some(field);
        m.value = Some(value);
        m.group_id = group;
        hm.add_mapping(m).unwrap();
    };
    for i in 0..50 {
        add(
            flavor,
            format!("flavor-{i}"),
            MapType::Flat,
            format!("0.0{}", 10 + i),
            Some(compute),
        );
    }
    for i in 0..20 {
        add(
            region,
            format!("region-{i}"),
            MapType::Rate,
            format!("1.0{i}"),
            Some(compute),
        );
    }
    for i in 0..27 {
        add(
            image,
            format!("image-{i}"),
            MapType::Flat,
            format!("0.00{}", 1 + i),
            Some(license),
        );
    }
    // Two scoped mappings replace unscoped ones for team-a.
    for (i, cost) in [(0, "0.005"), (1, "0.006")] {
        let mut m = Mapping::new(MapType::Flat, d(cost));
        m.field_id = Some(flavor);
        m.value = Some(format!("flavor-{i}"));
        m.group_id = Some(compute);
        m.tenant_id = Some("team-a".into());
        hm.add_mapping(m).unwrap();
    }
    let mut m = Mapping::new(MapType::Flat, d("0.001"));
    m.service_id = Some(svc);
    hm.add_mapping(m).unwrap();
    assert_eq!(hm.mappings.len(), 100);
    for i in 0..5 {
        let mut t = Threshold::new(
            Decimal::from(10 * (i + 1)),
            MapType::Rate,
            d(&format!("0.9{i}")),
        );
        t.service_id = Some(svc);
        t.group_id = Some(compute);
        hm.add_threshold(t).unwrap();
        let mut t = Threshold::new(
            Decimal::from(4 * (i + 1)),
            MapType::Flat,
            d(&format!("0.00{}", i + 1)),
        );
        t.field_id = Some(vcpus);
        t.group_id = Some(license);
        hm.add_threshold(t).unwrap();
    }
    r
}

fn frame(points: usize, rng: &mut Rng) -> DataFrame {
    let begin = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut f = DataFrame::new(begin, begin + chrono::Duration::hours(1));
    for i in 0..points {
        let p = DataPoint::new("instance", Decimal::from(1 + rng.next(60)))
            .with_groupby("id", &format!("i-{i:08}"))
            .with_groupby("project_id", "team-a")
            .with_metadata("flavor", &format!("flavor-{}", rng.next(60)))
            .with_metadata("region", &format!("region-{}", rng.next(24)))
            .with_metadata("image", &format!("image-{}", rng.next(30)))
            .with_metadata("vcpus", &(1 << rng.next(6)).to_string());
        f.add_point("instance", p);
    }
    f
}

fn measure(label: &str, rules: &RatingRules, frames: Vec<DataFrame>, scope: Option<&str>) {
    let points: usize = frames.iter().map(DataFrame::len).sum();
    let started = Instant::now();
    let rated: Vec<DataFrame> = frames
        .into_iter()
        .map(|f| rules.rate(f, scope).unwrap())
        .collect();
    let secs = started.elapsed().as_secs_f64();
    // Summed and freed after the clock stops: neither is rating.
    let total: Decimal = rated.iter().map(DataFrame::total).sum();
    println!(
        "{label}: {points} points in {secs:.3} s = {:.0} points/s on one core (total rated {})",
        points as f64 / secs,
        total.round_dp(4)
    );
}

fn main() {
    // `-- hashmap` or `-- script` runs one of the two (cargo passes `--bench` too).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |what: &str| only.is_empty() || only.iter().any(|o| o == what);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    if wants("hashmap") {
        let rules = rules_with_100_mappings();
        // Warm-up, then the measured runs.
        measure(
            "hashmap warm-up",
            &rules,
            vec![frame(50_000, &mut rng)],
            Some("team-a"),
        );
        for _ in 0..3 {
            let frames: Vec<DataFrame> = (0..5).map(|_| frame(200_000, &mut rng)).collect();
            measure(
                "hashmap, 100 mappings + 10 thresholds",
                &rules,
                frames,
                Some("team-a"),
            );
        }
    }
    if !wants("script") {
        return;
    }
    let mut scripted = RatingRules::default();
    scripted.modules.get_mut("hashmap").unwrap().enabled = false;
    scripted.modules.get_mut("script").unwrap().enabled = true;
    scripted.scripts.push(
        Script::compile(
            "flavors",
            r#"
let flavors = #{};
for i in 0..60 { flavors["flavor-" + i] = 0.01 * i; }
let items = data.usage.instance;
for i in 0..items.len() {
    items[i].rating.price = items[i].vol.qty * (flavors[items[i].metadata.flavor] ?? 0);
}
data.usage.instance = items;
"#,
        )
        .unwrap(),
    );
    for _ in 0..3 {
        let frames: Vec<DataFrame> = (0..2).map(|_| frame(50_000, &mut rng)).collect();
        measure("script (Rhai), per-flavor price", &scripted, frames, None);
    }
}
