//! Reconciliation over a real embedded store: a month of billed and estimated lines where
//! one service of one account has a gap that an unpriced and a mispriced resource explain,
//! beside groups that match, or differ under the thresholds, and the days the bill has
//! not reached yet.

use super::super::{compute, FindingsConfig, Prices, Totals};
use super::*;
use chrono::{Duration, TimeZone};
use skymeter_model::{Batch, ChargeCategory, Cost, CostSource, Resource};
use skymeter_store::{EmbeddedOptions, EmbeddedStore};

const A: &str = "111111111111";
const B: &str = "222222222222";
const EC2: &str = "Amazon Elastic Compute Cloud";

/// The moment computed as of: the window is November (30 whole days).
fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, n).unwrap()
}

fn line(
    source: CostSource,
    account: &str,
    service: &str,
    resource: &str,
    d: NaiveDate,
    amount: f64,
) -> Cost {
    crate::test_costs::usd_line(d, account, service, resource, source, amount)
}

struct Month {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
}

/// November, billed on the 1st to the 27th (the bill lags three days), estimated every day:
///
/// - account A, EC2: `i-match` billed 2.40 a day and estimated 2.40; `i-mispriced` billed
///   3.00 and estimated 2.50; `i-unpriced` (in the inventory) billed 1.00, never
///   estimated; a 9.99 tax line on the 5th. Gap 1.50 a day.
/// - account A, S3: `bucket` billed and estimated 0.70 a day (no gap).
/// - account A, Lambda: billed 0.03, estimated 0.01 a day: 0.54 in all, 67 % (under 1 USD).
/// - account B, EC2: `i-b` billed 10.00, estimated 9.80 a day: 5.40 in all, 2 % of the bill.
/// - account A, Support: billed only (nothing estimates it).
fn month() -> Month {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap();
    let mut b = Batch::new("agent", "aws", at() - Duration::hours(1));
    for id in ["i-match", "i-mispriced", "i-unpriced"] {
        b.resources.push(Resource {
            provider: "aws".into(),
            account: A.into(),
            region: "us-east-1".into(),
            kind: "compute.instance".into(),
            native_type: String::new(),
            id: id.into(),
            name: format!("{id}-name"),
            tags: Default::default(),
            attributes: Default::default(),
            observed_at: at() - Duration::hours(1),
        });
    }
    use CostSource::{Billed, Estimated};
    for n in 1..=30 {
        let d = day(n);
        let mut est = |acct: &str, svc: &str, res: &str, v: f64| {
            b.costs.push(line(Estimated, acct, svc, res, d, v))
        };
        est(A, EC2, "i-match", 2.40);
        est(A, EC2, "i-mispriced", 2.50);
        est(A, "Amazon Simple Storage Service", "bucket", 0.70);
        est(A, "AWS Lambda", "fn", 0.01);
        est(B, EC2, "i-b", 9.80);
        if n > 27 {
            continue;
        }
        let mut bill = |acct: &str, svc: &str, res: &str, v: f64| {
            b.costs.push(line(Billed, acct, svc, res, d, v))
        };
        bill(A, EC2, "i-match", 2.40);
        bill(A, EC2, "i-mispriced", 3.00);
        bill(A, EC2, "i-unpriced", 1.00);
        bill(A, "Amazon Simple Storage Service", "bucket", 0.70);
        bill(A, "AWS Lambda", "fn", 0.03);
        bill(B, EC2, "i-b", 10.00);
        bill(A, "AWS Support (Business)", "", 3.33);
    }
    let mut tax = line(Billed, A, EC2, "", day(5), 9.99);
    tax.charge_category = ChargeCategory::Tax;
    b.costs.push(tax);
    store.ingest(&b).unwrap();
    Month { _dir: dir, store }
}

fn reconciliations(m: &Month, cfg: &FindingsConfig) -> Vec<Finding> {
    compute(&m.store, &Prices::new(), cfg, at())
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == FindingKind::Reconciliation)
        .collect()
}

#[test]
fn one_gap_explained_by_an_unpriced_and_a_mispriced_resource() {
    let m = month();
    let found = reconciliations(&m, &FindingsConfig::default());
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(
        f.id,
        "reconciliation/aws/111111111111/Amazon Elastic Compute Cloud"
    );
    assert_eq!(
        f.group,
        Some(SpendGroup {
            provider: "aws".into(),
            account: A.into(),
            service: EC2.into(),
            currency: "USD".into(),
        })
    );
    // 27 days × (6.40 billed − 4.90 estimated); the tax line and the three days the bill
    // has not reached are not in it.
    let facts = &f.evidence.facts;
    assert_eq!(facts["billed"], 172.8);
    assert_eq!(facts["estimated"], 132.3);
    assert_eq!(facts["gap"], 40.5);
    assert_eq!(facts["gap_percent"], 23.4);
    assert_eq!(facts["days_compared"], 27);
    assert_eq!(
        facts["days_estimated_only"],
        serde_json::json!(["2026-11-28", "2026-11-29", "2026-11-30"])
    );
    assert_eq!(f.evidence.days.len(), 27);
    assert_eq!(f.evidence.days[0].day, day(1));
    assert_eq!(f.evidence.days[26].day, day(27));
    assert!(
        f.evidence
            .days
            .iter()
            .all(|d| (d.billed, d.estimated, d.gap) == (6.4, 4.9, 1.5)),
        "{:?}",
        f.evidence.days
    );
    // The mean daily |gap| (1.50) × 30.42.
    assert_eq!(f.monthly_usd, Some(45.63));
    assert_eq!(
        f.evidence.start,
        Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
    );
    assert_eq!(f.evidence.end, Some(at()));
    assert!(
        f.reason.contains(
            "billed 172.80 vs estimated 132.30 USD over 27 day(s): the estimate is 40.50 USD under"
        ),
        "{}",
        f.reason
    );
    assert!(f
        .notes
        .iter()
        .any(|n| n.contains("3 day(s) with estimated lines only")));

    // (resource, billed, estimated, delta, cause, inventory key)
    type Row<'a> = (&'a str, f64, f64, f64, GapCause, Option<&'a str>);
    let drivers: Vec<Row> = f
        .drivers
        .iter()
        .map(|d| {
            (
                d.resource.as_str(),
                d.billed,
                d.estimated,
                d.delta,
                d.cause,
                d.key.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        drivers,
        vec![
            (
                "i-unpriced",
                27.0,
                0.0,
                27.0,
                GapCause::NotEstimated,
                Some("aws/111111111111/us-east-1/i-unpriced")
            ),
            (
                "i-mispriced",
                81.0,
                67.5,
                13.5,
                GapCause::PricedDifferently,
                Some("aws/111111111111/us-east-1/i-mispriced")
            ),
        ]
    );
    assert!(
        f.drivers[0].why.contains("price is missing"),
        "{}",
        f.drivers[0].why
    );
    assert_eq!(f.drivers[0].name.as_deref(), Some("i-unpriced-name"));

    // Not a saving: in its kind's total only.
    let totals = Totals::of(&found);
    assert_eq!(totals.monthly_usd, 0.0);
    assert_eq!(totals.by_kind["reconciliation"].monthly_usd, 45.63);
    assert_eq!(totals.by_kind["reconciliation"].count, 1);
}

#[test]
fn thresholds_gate_the_groups_and_a_matching_pair_is_never_reported() {
    let m = month();
    let mut cfg = FindingsConfig::default();
    cfg.reconciliation.min_gap_usd = 0.0;
    cfg.reconciliation.min_gap_percent = 0.0;
    cfg.reconciliation.top_resources = 1;
    let found = reconciliations(&m, &cfg);
    let got: Vec<(&str, &str, f64, Option<f64>, usize)> = found
        .iter()
        .map(|f| {
            let g = f.group.as_ref().unwrap();
            (
                g.account.as_str(),
                g.service.as_str(),
                f.evidence.facts["gap"].as_f64().unwrap(),
                f.monthly_usd,
                f.drivers.len(),
            )
        })
        .collect();
    // S3 matches to the cent and Support is never estimated: neither is reported.
    assert_eq!(
        got,
        vec![
            // 1.50 × 30.42
            (A, EC2, 40.5, Some(45.63), 1),
            // 0.20 × 30.42
            (B, EC2, 5.4, Some(6.08), 1),
            // 0.02 × 30.42
            (A, "AWS Lambda", 0.54, Some(0.61), 1),
        ],
        "{found:#?}"
    );
    assert_eq!(found[0].drivers[0].resource, "i-unpriced");
    let lambda = &found[2].drivers[0];
    assert_eq!(
        (lambda.cause, lambda.key.as_deref()),
        (GapCause::PricedDifferently, None)
    );
}

#[test]
fn days_with_estimated_lines_only_are_not_compared() {
    let m = month();
    // As of the 2nd of December the window starts on the 2nd of November: the 1st drops
    // out and the three estimated-only days stay out: 26 days, 39.00.
    let later = at() + Duration::days(1);
    let found: Vec<Finding> = compute(&m.store, &Prices::new(), &FindingsConfig::default(), later)
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == FindingKind::Reconciliation)
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence.facts["days_compared"], 26);
    assert_eq!(found[0].evidence.facts["gap"], 39.0);
    assert_eq!(found[0].evidence.days[0].day, day(2));

    // A month with estimated lines only (the bill not read at all) compares nothing.
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap();
    let mut b = Batch::new("agent", "aws", at());
    for n in 1..=30 {
        b.costs
            .push(line(CostSource::Estimated, A, EC2, "i-x", day(n), 5.0));
    }
    store.ingest(&b).unwrap();
    let found = compute(&store, &Prices::new(), &FindingsConfig::default(), at()).unwrap();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn other_kinds_keep_their_json_and_config_mistakes_name_the_field() {
    let m = month();
    let r = m
        .store
        .resource("aws/111111111111/us-east-1/i-match")
        .unwrap()
        .unwrap();
    let json = serde_json::to_value(Finding::about(FindingKind::Idle, &r)).unwrap();
    for absent in ["group", "drivers"] {
        assert!(json.get(absent).is_none(), "{json}");
    }
    assert!(json["evidence"].get("days").is_none(), "{json}");

    let mut cfg = FindingsConfig::default();
    cfg.reconciliation.min_gap_percent = -1.0;
    assert!(cfg
        .validate()
        .unwrap_err()
        .contains("findings.reconciliation.min_gap_percent"));
    cfg.reconciliation.min_gap_percent = 5.0;
    cfg.reconciliation.days = 0;
    assert!(cfg
        .validate()
        .unwrap_err()
        .contains("findings.reconciliation.days"));
    let parsed: FindingsConfig = toml::from_str("[reconciliation]\ndays = 7\n").unwrap();
    assert_eq!(parsed.reconciliation.days, 7);
    assert_eq!(parsed.reconciliation.min_gap_usd, 1.0);
    let bad: Result<FindingsConfig, _> = toml::from_str("[reconciliation]\nmin_gap = 3\n");
    assert!(bad.unwrap_err().to_string().contains("min_gap"));
}
