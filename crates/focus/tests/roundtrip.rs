//! Every kind of cost line, exported to CSV and to Parquet, passes the FOCUS 1.2 checker,
//! and the Parquet file reads back row for row.

use skymeter_focus::check::{check_csv, check_parquet};
use skymeter_focus::{map, Format, PARQUET_ROW_GROUP};
use skymeter_model::{ChargeCategory, ChargeClass, ChargeFrequency, Cost, CostSource};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lines of every source and category, with and without the optional columns.
fn lines(n: usize) -> Vec<Cost> {
    let categories = [
        ChargeCategory::Usage,
        ChargeCategory::Purchase,
        ChargeCategory::Tax,
        ChargeCategory::Credit,
        ChargeCategory::Adjustment,
    ];
    let start: chrono::DateTime<chrono::Utc> = "2026-11-30T00:00:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            let cat = categories[i % categories.len()];
            let s = start + chrono::Duration::hours(i as i64 % 48);
            let mut c = Cost::billed(
                ["Amazon Web Services", "Google Cloud", "skymeter"][i % 3],
                cat,
                if cat == ChargeCategory::Credit {
                    -0.5
                } else {
                    1.25 + i as f64
                },
                if cat == ChargeCategory::Credit {
                    -0.5
                } else {
                    1.0 + i as f64
                },
                "USD".into(),
                s,
                s + chrono::Duration::hours(1),
                [
                    "Amazon Elastic Compute Cloud - Compute",
                    "Compute Engine",
                    "host",
                ][i % 3]
                    .into(),
            );
            c.x_source = CostSource::ALL[i % 3];
            if i % 2 == 0 {
                c.sub_account_id = Some(format!("{}", 100000000000u64 + i as u64));
                c.region_id = Some("us-east-1".into());
                c.resource_id = Some(format!("i-{i:08x}"));
                c.sku_id = Some("t3.micro".into());
                c.pricing_quantity = Some((1 + i % 4) as f64);
                c.pricing_unit = Some("Hours".into());
                c.service_category = Some(["Compute", "database", "GPU"][i % 3].into());
                c.tags.insert("team".into(), format!("t{}", i % 7));
                c.charge_frequency = Some(ChargeFrequency::UsageBased);
            }
            if i % 4 == 0 {
                // A list and a negotiated price above what was billed.
                c.list_cost = Some(c.billed_cost * 1.2);
                c.contracted_cost = Some(c.billed_cost * 1.1);
            }
            if i % 11 == 0 {
                c.charge_class = Some(ChargeClass::Correction);
            }
            if c.x_source == CostSource::Estimated {
                c.x_price_date = Some("2026-11-01".into());
            }
            c
        })
        .collect()
}

fn export(format: Format, costs: &[Cost]) -> Vec<u8> {
    let out = Shared::default();
    let mut w = format.writer(out.clone()).unwrap();
    for c in costs {
        w.write_row(&map(c)).unwrap();
    }
    w.finish().unwrap();
    let bytes = out.0.lock().unwrap().clone();
    bytes
}

#[test]
fn csv_export_passes_the_focus_1_2_checker() {
    let costs = lines(500);
    let csv = export(Format::Csv, &costs);
    let report = check_csv(&csv[..]).unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.rows, 500);
    let text = String::from_utf8(csv).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("BilledCost,BillingAccountId,"),
        "{header}"
    );
    assert!(
        header.ends_with(",x_source,x_price_date,x_focus_version"),
        "{header}"
    );
    for pair in [
        ",ContractedCost,ContractedUnitPrice,",
        ",ListCost,ListUnitPrice,PricingQuantity,",
    ] {
        assert!(header.contains(pair), "{header}");
    }
}

#[test]
fn unit_prices_are_exported_where_focus_wants_them() {
    let costs = lines(60);
    let csv = export(Format::Csv, &costs);
    let mut r = csv::Reader::from_reader(&csv[..]);
    let h = r.headers().unwrap().clone();
    let at = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (cat, class, q, lc, lp, cc, cp) = (
        at("ChargeCategory"),
        at("ChargeClass"),
        at("PricingQuantity"),
        at("ListCost"),
        at("ListUnitPrice"),
        at("ContractedCost"),
        at("ContractedUnitPrice"),
    );
    let num = |s: &str| s.parse::<f64>().unwrap();
    let mut priced = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let usage_or_purchase = matches!(&rec[cat], "Usage" | "Purchase");
        if usage_or_purchase && rec[class].is_empty() {
            priced += 1;
            for (price, cost) in [(lp, lc), (cp, cc)] {
                let (p, q, c) = (num(&rec[price]), num(&rec[q]), num(&rec[cost]));
                assert!(p >= 0.0 && (p * q - c).abs() < 1e-9, "{rec:?}");
            }
        } else {
            assert!(rec[lp].is_empty() && rec[cp].is_empty(), "{rec:?}");
        }
    }
    assert!(priced > 0);
}

#[test]
fn parquet_export_passes_the_checker_and_reads_back() {
    // More than one row group.
    let n = PARQUET_ROW_GROUP + 1000;
    let costs = lines(n);
    let bytes = bytes::Bytes::from(export(Format::Parquet, &costs));
    let report = check_parquet(bytes.clone()).unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.rows, n);
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap(),
    )
    .clone();
    assert_eq!(meta.num_row_groups(), 2);
    assert_eq!(meta.file_metadata().num_rows() as usize, n);
}

#[test]
fn the_checker_sees_a_broken_export() {
    let costs = lines(5);
    let csv = String::from_utf8(export(Format::Csv, &costs)).unwrap();
    let broken = csv.replacen("Usage-Based", "Sometimes", 1);
    let report = check_csv(broken.as_bytes()).unwrap();
    assert!(!report.ok());
    assert!(
        report
            .to_string()
            .contains("ChargeFrequency: `Sometimes` is not an allowed value"),
        "{report}"
    );
}
