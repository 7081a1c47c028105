//! Spend, budgets and anomalies read from a real embedded store.

use crate::anomaly::{AnomalyConfig, AnomalyKind, Direction};
use crate::budget::{BudgetConfig, BudgetScope, ThresholdBasis};
use crate::notify::{Event, SentLog};
use crate::spend;
use crate::test_costs::usd_line as line;
use crate::watch::*;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use skymeter_model::{prom, Batch, Cost, CostSource, Labels};
use skymeter_store::{EmbeddedOptions, EmbeddedStore, Store};
use std::sync::Arc;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

struct Db {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
}

fn store_with(costs: Vec<Cost>) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap();
    for chunk in costs.chunks(5000) {
        let mut b = Batch::new("test", "costs", Utc::now());
        b.costs = chunk.to_vec();
        store.ingest(&b).unwrap();
    }
    Db {
        _dir: dir,
        store: Arc::new(store),
    }
}

#[test]
fn one_source_counts_per_account_and_day() {
    let (a, b) = ("111111111111", "222222222222");
    let ec2 = "Amazon Elastic Compute Cloud";
    let mut eur = line(day(2026, 12, 1), a, ec2, "i-1", CostSource::Billed, 99.0);
    eur.billing_currency = "EUR".into();
    let db = store_with(vec![
        // Dec 1: the bill has account a's day: billed counts, the estimate does not.
        line(day(2026, 12, 1), a, ec2, "i-1", CostSource::Billed, 10.0),
        line(day(2026, 12, 1), a, ec2, "i-1", CostSource::Estimated, 9.0),
        line(day(2026, 12, 1), a, ec2, "i-1", CostSource::Rated, 50.0),
        // Dec 2: no bill yet: the estimate counts, the rating does not.
        line(day(2026, 12, 2), a, ec2, "i-1", CostSource::Estimated, 8.0),
        line(day(2026, 12, 2), a, ec2, "i-1", CostSource::Rated, 50.0),
        // Account b only rated.
        line(day(2026, 12, 2), b, ec2, "i-2", CostSource::Rated, 5.0),
        eur,
    ]);
    let spend = spend::daily(
        &*db.store,
        day(2026, 12, 1),
        day(2026, 12, 2),
        &["account".to_string()],
    )
    .unwrap();
    let of = |acct: &str| spend.series(&Labels::from([("account".to_string(), acct.to_string())]));
    assert_eq!(
        of(a),
        vec![(day(2026, 12, 1), 10.0), (day(2026, 12, 2), 8.0)]
    );
    assert_eq!(of(b), vec![(day(2026, 12, 2), 5.0)]);
    assert_eq!(spend.other_currency_lines, 1);
    let err = spend::daily(
        &*db.store,
        day(2026, 12, 1),
        day(2026, 12, 2),
        &["sku".into()],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot group spend by `sku`"),
        "{err}"
    );
}

fn budget(name: &str, amount: f64, scope: BudgetScope) -> BudgetConfig {
    let mut b: BudgetConfig =
        toml::from_str(&format!("name = {name:?}\namount = {amount}")).unwrap();
    b.scope = scope;
    b
}

#[test]
fn budgets_count_their_scope_with_tags_from_the_lines() {
    let acct = "111111111111";
    let mut costs = Vec::new();
    // Nov 24 to Dec 15: EC2 10 a day (half of it tagged team=eng), S3 2 a day, and the
    // estimate beside the bill on every day (it must not count twice).
    for d in day(2026, 11, 24).iter_days().take(22) {
        let mut tagged = line(
            d,
            acct,
            "Amazon Elastic Compute Cloud",
            "i-eng",
            CostSource::Billed,
            5.0,
        );
        tagged.tags = Labels::from([("team".to_string(), "eng".to_string())]);
        costs.push(tagged);
        costs.push(line(
            d,
            acct,
            "Amazon Elastic Compute Cloud",
            "i-ops",
            CostSource::Billed,
            5.0,
        ));
        costs.push(line(
            d,
            acct,
            "Amazon Simple Storage Service",
            "bucket",
            CostSource::Billed,
            2.0,
        ));
        costs.push(line(
            d,
            acct,
            "Amazon Elastic Compute Cloud",
            "i-ops",
            CostSource::Estimated,
            7.0,
        ));
    }
    let db = store_with(costs);
    let budgets = vec![
        budget(
            "ec2",
            300.0,
            BudgetScope {
                provider: Some("aws".into()),
                service: Some("amazon elastic compute cloud".into()),
                ..Default::default()
            },
        ),
        budget(
            "eng",
            100.0,
            BudgetScope {
                tags: Labels::from([("team".to_string(), "eng".to_string())]),
                ..Default::default()
            },
        ),
        budget(
            "other-account",
            10.0,
            BudgetScope {
                account: Some("999".into()),
                ..Default::default()
            },
        ),
    ];
    let today = day(2026, 12, 15);
    let reports = budget_reports(&*db.store, &budgets, today).unwrap();
    let ec2 = &reports[0].status;
    assert_eq!(ec2.actual, 150.0); // 15 days × 10 (today counts as far as known)
    assert_eq!(ec2.daily_rate, Some(10.0));
    assert_eq!(ec2.forecast, Some(310.0)); // 150 + 10 × 16 days left
    let crossed: Vec<(f64, ThresholdBasis)> = ec2.crossed().map(|t| (t.percent, t.on)).collect();
    assert_eq!(crossed, vec![(100.0, ThresholdBasis::Forecast)]);
    let eng = &reports[1].status;
    assert_eq!(eng.actual, 75.0);
    assert_eq!(eng.forecast, Some(155.0));
    assert_eq!(reports[2].status.actual, 0.0);
    assert_eq!(reports[2].status.crossed().count(), 0);
    assert_eq!(reports[1].scope, budgets[1].scope);

    // The events: one per crossed threshold, ids stable across evaluations.
    let config = AnomalyConfig::default();
    let events = events(&budgets, &reports, &[], &config, today);
    let ids: Vec<String> = events.iter().map(Event::id).collect();
    // ec2: forecast 100 %; eng: actual 75 % (not 80), forecast 155 % → 1; other: none.
    assert_eq!(ids.len(), 2, "{events:?}");
    let again = budget_reports(&*db.store, &budgets, today).unwrap();
    let ids_again: Vec<String> = super::watch::events(&budgets, &again, &[], &config, today)
        .iter()
        .map(Event::id)
        .collect();
    assert_eq!(ids, ids_again);
}

/// 70 days of an account's EC2 and S3 cost with a weekly pattern, EC2 spiking on one day
/// through one instance.
fn seasonal_fleet(spike_day: NaiveDate, last: NaiveDate) -> Vec<Cost> {
    let acct = "111111111111";
    let mut costs = Vec::new();
    let first = last - Days::new(69);
    for d in first.iter_days().take(70) {
        let weekend = d.weekday().number_from_monday() >= 6;
        let base = if weekend { 40.0 } else { 100.0 };
        // Ten instances sharing the day's EC2 cost, a little noise per day.
        let noise = 1.0 + ((d.ordinal() * 7919) % 11) as f64 / 200.0;
        for i in 0..10 {
            costs.push(line(
                d,
                acct,
                "Amazon Elastic Compute Cloud",
                &format!("i-{i}"),
                CostSource::Estimated,
                base * noise / 10.0,
            ));
        }
        if d == spike_day {
            costs.push(line(
                d,
                acct,
                "Amazon Elastic Compute Cloud",
                "i-runaway",
                CostSource::Estimated,
                400.0,
            ));
        }
        costs.push(line(
            d,
            acct,
            "Amazon Simple Storage Service",
            "bucket",
            CostSource::Estimated,
            3.0 * noise,
        ));
    }
    costs
}

#[test]
fn anomalies_name_the_day_the_group_and_the_driver() {
    let today = day(2026, 12, 7);
    let spike = day(2026, 12, 1);
    // Cost data through yesterday; today's partial cost is not judged.
    let mut costs = seasonal_fleet(spike, today - Days::new(1));
    costs.push(line(
        today,
        "111111111111",
        "Amazon Elastic Compute Cloud",
        "i-0",
        CostSource::Estimated,
        0.5,
    ));
    let db = store_with(costs);
    let config = AnomalyConfig::default();
    let found = anomalies(&*db.store, &config, today).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let a = &found[0];
    assert_eq!(a.anomaly.day, spike);
    assert_eq!(a.anomaly.kind, AnomalyKind::Spike);
    assert!(!a.anomaly.provisional);
    assert_eq!(a.anomaly.direction, Direction::Up);
    assert_eq!(
        a.group,
        Labels::from([
            ("account".to_string(), "111111111111".to_string()),
            ("provider".to_string(), "aws".to_string()),
            (
                "service".to_string(),
                "Amazon Elastic Compute Cloud".to_string()
            ),
        ])
    );
    assert!((a.anomaly.size - 400.0).abs() < 20.0, "{}", a.anomaly.size);
    assert_eq!(a.drivers[0].resource, "i-runaway");
    assert_eq!(a.drivers[0].delta, 400.0);
    assert!(is_recent(a, &config, today));

    // Older than recent_days: listed, not current.
    let quiet = AnomalyConfig {
        recent_days: 3,
        ..AnomalyConfig::default()
    };
    assert!(!is_recent(a, &quiet, today));
    assert!(events(&[], &[], &found, &quiet, today).is_empty());
    assert_eq!(events(&[], &[], &found, &config, today).len(), 1);
}

#[test]
fn billing_lag_is_not_a_drop() {
    // Billed data through three days ago only: nothing is judged past it.
    let today = day(2026, 12, 7);
    let costs: Vec<Cost> = seasonal_fleet(day(2026, 1, 1), today - Days::new(3))
        .into_iter()
        .map(|mut c| {
            c.x_source = CostSource::Billed;
            c
        })
        .collect();
    let db = store_with(costs);
    let found = anomalies(&*db.store, &AnomalyConfig::default(), today).unwrap();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_series_batch_is_valid_and_named_for_prometheus() {
    let today = day(2026, 12, 7);
    let db = store_with(seasonal_fleet(day(2026, 12, 1), today - Days::new(1)));
    let config = AnomalyConfig::default();
    let found = anomalies(&*db.store, &config, today).unwrap();
    let budgets = vec![budget("all", 1000.0, BudgetScope::default())];
    let reports = budget_reports(&*db.store, &budgets, today).unwrap();
    let now: DateTime<Utc> = spend::start_of(today) + chrono::Duration::hours(9);
    let kinds = vec![KindTotal {
        kind: "idle".into(),
        count: 2,
        monthly_usd: 560.64,
    }];
    let batch = series_batch(now, &reports, &found, &config, Some(&kinds));
    batch.validate().unwrap();
    let names: std::collections::BTreeSet<String> = batch
        .points
        .iter()
        .map(|p| prom::metric_name(&p.metric, p.unit))
        .collect();
    let want = [
        "budget_amount_usd",
        "budget_actual_usd",
        "budget_forecast_usd",
        "budget_crossed",
        "cost_anomaly_usd",
        "cost_anomaly_score",
        "findings_monthly_usd",
        "findings_count",
    ];
    assert_eq!(names, want.iter().map(|s| s.to_string()).collect());
    let crossed: Vec<(String, f64)> = batch
        .points
        .iter()
        .filter(|p| p.metric == "budget.crossed")
        .map(|p| (format!("{:?}", p.labels), p.value))
        .collect();
    assert_eq!(crossed.len(), 3, "{crossed:?}");
    let anomaly = batch
        .points
        .iter()
        .find(|p| p.metric == "cost.anomaly")
        .unwrap();
    assert_eq!(anomaly.resource.provider.as_str(), "aws");
    assert_eq!(anomaly.resource.account.as_str(), "111111111111");
    assert_eq!(
        anomaly.resource.id.as_str(),
        "aws/111111111111/Amazon Elastic Compute Cloud"
    );
    assert_eq!(anomaly.value, found[0].anomaly.size);
    db.store.ingest(&batch).unwrap();
}

#[test]
fn sent_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap());
        let log = StoreSentLog(store.clone());
        assert!(!log.seen("budget-1"));
        log.mark("budget-1");
        assert!(log.seen("budget-1"));
        store.flush().unwrap();
    }
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(EmbeddedOptions::new(dir.path())).unwrap());
    let log = StoreSentLog(store);
    assert!(log.seen("budget-1"));
    assert!(!log.seen("budget-2"));
}
