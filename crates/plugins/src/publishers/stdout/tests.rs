use super::*;
use crate::common::testing::{batch, config_err, labels_of, point, sample_entries, ts, with_raw};
use skymeter_model::{ChargeCategory, CollectError, Cost, CostSource, Resource, Stat, Unit};
use skymeter_plugin_api::BuildContext;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

fn full_batch() -> Batch {
    let mut p = point(
        "cpu.utilization",
        12.5,
        "2026-11-22T10:00:00Z",
        &[("cpu", "0"), ("mode", "user")],
    );
    p.stat = Stat::Avg;
    p.period_s = 10;
    let mut b = batch(vec![
        p,
        point("mem.used", 1073741824.0, "2026-11-22T10:00:00Z", &[]),
    ]);
    b.points[1].unit = Unit::Bytes;
    b.resources = vec![Resource {
        provider: "host".into(),
        account: "acct".into(),
        region: "eu-west-1".into(),
        kind: "host".into(),
        native_type: String::new(),
        id: "h1".into(),
        name: "web-1".into(),
        tags: labels_of(&[("env", "prod")]),
        attributes: Default::default(),
        observed_at: ts("2026-11-22T10:00:00Z"),
    }];
    b.costs = vec![Cost {
        billed_cost: 1.25,
        effective_cost: 0.0042,
        list_cost: None,
        billing_currency: "USD".into(),
        charge_period_start: ts("2026-11-21T00:00:00Z"),
        charge_period_end: ts("2026-11-22T00:00:00Z"),
        charge_category: ChargeCategory::Usage,
        provider_name: "Amazon Web Services".into(),
        service_name: "Amazon EC2".into(),
        service_category: None,
        sub_account_id: Some("123456789012".into()),
        region_id: None,
        resource_id: Some("i-0abc".into()),
        resource_type: None,
        sku_id: None,
        pricing_quantity: None,
        pricing_unit: None,
        consumed_quantity: None,
        consumed_unit: None,
        tags: Default::default(),
        x_source: CostSource::Billed,
        x_price_date: None,
        ..Default::default()
    }];
    b.errors = vec![CollectError {
        plugin: "aws".into(),
        message: "AccessDenied on ce:GetCostAndUsage; grant it".into(),
        context: labels_of(&[("account", "123456789012"), ("api", "ce")]),
        at: ts("2026-11-22T10:00:01Z"),
    }];
    b
}

#[test]
fn json_is_one_record_per_line_in_batch_order() {
    let text = render(&full_batch(), Format::Json);
    let expected = [
        r#"{"type":"resource","provider":"host","account":"acct","region":"eu-west-1","kind":"host","native_type":"","id":"h1","name":"web-1","tags":{"env":"prod"},"observed_at":"2026-11-22T10:00:00Z"}"#,
        r#"{"type":"point","metric":"cpu.utilization","unit":"percent","stat":"avg","period_s":10,"ts":"2026-11-22T10:00:00Z","value":12.5,"resource":{"provider":"host","account":"acct","region":"eu-west-1","id":"h1"},"labels":{"cpu":"0","mode":"user"}}"#,
        r#"{"type":"point","metric":"mem.used","unit":"bytes","stat":"last","period_s":0,"ts":"2026-11-22T10:00:00Z","value":1073741824.0,"resource":{"provider":"host","account":"acct","region":"eu-west-1","id":"h1"}}"#,
        r#"{"type":"cost","BilledCost":1.25,"EffectiveCost":0.0042,"BillingCurrency":"USD","ChargePeriodStart":"2026-11-21T00:00:00Z","ChargePeriodEnd":"2026-11-22T00:00:00Z","ChargeCategory":"Usage","ProviderName":"Amazon Web Services","ServiceName":"Amazon EC2","SubAccountId":"123456789012","ResourceId":"i-0abc","x_source":"billed"}"#,
        r#"{"type":"error","plugin":"aws","message":"AccessDenied on ce:GetCostAndUsage; grant it","context":{"account":"123456789012","api":"ce"},"at":"2026-11-22T10:00:01Z"}"#,
    ];
    assert_eq!(text, expected.map(|l| format!("{l}\n")).concat());
    // And it is exactly serde_json::to_string of each RecordRef.
    let b = full_batch();
    let by_serde: String = b
        .records()
        .map(|r| serde_json::to_string(&r).unwrap() + "\n")
        .collect();
    assert_eq!(text, by_serde);
    assert_eq!(render(&batch(vec![]), Format::Json), "");
}

#[test]
fn table_shows_every_record_type() {
    let text = render(&full_batch(), Format::Table);
    let expected = "\
task t at 2026-11-22T10:00:00Z: 1 resources, 2 points, 1 costs, 1 errors

points
provider  account  region     resource  metric           labels           stat       value  unit     ts
---------------------------------------------------------------------------------------------------------------------------
host      acct     eu-west-1  h1        cpu.utilization  cpu=0,mode=user  avg         12.5  percent  2026-11-22T10:00:00Z
host      acct     eu-west-1  h1        mem.used                          last  1073741824  bytes    2026-11-22T10:00:00Z

resources
provider  account  region     kind  id  name
-----------------------------------------------
host      acct     eu-west-1  host  h1  web-1

costs
ProviderName         ServiceName  SubAccountId  ResourceId  BilledCost  EffectiveCost  BillingCurrency  ChargePeriodStart
------------------------------------------------------------------------------------------------------------------------------
Amazon Web Services  Amazon EC2   123456789012  i-0abc            1.25         0.0042  USD              2026-11-21T00:00:00Z

!! ERRORS: 1 collection problem(s), the data above may be incomplete
plugin  message                                       context
-----------------------------------------------------------------------------------
aws     AccessDenied on ce:GetCostAndUsage; grant it  account=123456789012,api=ce
";
    assert_eq!(text, expected, "\n{text}");
    let mut empty = batch(vec![]);
    empty.collected_at = ts("2026-11-22T10:00:00.987654Z");
    assert_eq!(
        render(&empty, Format::Table),
        "task t at 2026-11-22T10:00:00Z: 0 resources, 0 points, 0 costs, 0 errors\n(no records)\n"
    );
}

#[test]
fn numbers_for_people() {
    let cases = [
        (0.0, "0"),
        (-0.0, "0"),
        (42.0, "42"),
        (-3.0, "-3"),
        (1234.5678, "1234.568"),
        (2.5, "2.5"),
        (0.5, "0.5"),
        (0.0123456789, "0.0123457"),
        (-0.000042, "-0.000042"),
        (1e-9, "1.000e-9"),
        (2.5e17, "2.500e17"),
        (1e14, "100000000000000"),
    ];
    for (v, want) in cases {
        assert_eq!(number(v), want, "{v}");
    }
}

/// A writer whose reader has gone after `accept` bytes.
struct ClosedAfter {
    accept: usize,
    written: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl AsyncWrite for ClosedAfter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let done = self.written.load(Ordering::SeqCst);
        if done >= self.accept {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(self.accept - done);
        self.written.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_closed_pipe_ends_output_without_error() {
    let written = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut out = Stdout::new(
        Format::Json,
        ClosedAfter {
            accept: 100,
            written: written.clone(),
            calls: calls.clone(),
        },
    );
    let b = full_batch();
    out.publish(&b).await.unwrap();
    let calls_after_close = calls.load(Ordering::SeqCst);
    out.publish(&b).await.unwrap();
    out.flush().await.unwrap();
    assert_eq!(written.load(Ordering::SeqCst), 100);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        calls_after_close,
        "nothing written once closed"
    );
}

#[test]
fn config() {
    let ctx = BuildContext::one_shot("test");
    with_raw("format = \"json\"", |raw| build(raw, &ctx)).unwrap();
    let e = config_err(with_raw("format = \"yaml\"", |raw| build(raw, &ctx)));
    assert!(e.message.contains("unknown variant `yaml`"), "{e}");
    for entry in sample_entries(include_str!("sample.toml"), "publish", "stdout") {
        with_raw(&entry, |raw| build(raw, &ctx)).unwrap_or_else(|e| panic!("{entry}: {e}"));
    }
}
