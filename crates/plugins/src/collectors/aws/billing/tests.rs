//! Billed costs: against moto (GetCostAndUsage with injected answers) and a local stand-in
//! speaking awsJson1_1 for GetCostAndUsageWithResources, which moto does not serve.

use super::*;
use crate::collectors::aws::testing::{moto, sdk};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use skymeter_model::CostSource;
use std::sync::{Arc, Mutex};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn cost(
    day: &str,
    service: &str,
    account: &str,
    resource: Option<&str>,
    billed: f64,
    effective: f64,
) -> Cost {
    let start = d(day);
    Cost {
        billed_cost: billed,
        effective_cost: effective,
        list_cost: None,
        billing_currency: "USD".into(),
        charge_period_start: start.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        charge_period_end: (start + Days::new(1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc(),
        charge_category: charge_category(service),
        provider_name: "Amazon Web Services".into(),
        service_name: service.into(),
        service_category: service_category(service).map(str::to_string),
        sub_account_id: Some(account.into()),
        region_id: None,
        resource_id: resource.map(str::to_string),
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
    }
}

/// One group of a Cost Explorer answer.
fn group(keys: [&str; 2], billed: &str, effective: &str) -> Value {
    json!({
        "Keys": keys,
        "Metrics": {
            "UnblendedCost": {"Amount": billed, "Unit": "USD"},
            "AmortizedCost": {"Amount": effective, "Unit": "USD"},
        }
    })
}

fn day_result(day: &str, groups: Vec<Value>) -> Value {
    let next = d(day) + Days::new(1);
    json!({
        "TimePeriod": {"Start": day, "End": next.to_string()},
        "Total": {},
        "Groups": groups,
        "Estimated": true,
    })
}

// ---------------------------------------------------------------- pure parts

#[test]
fn billed_days_are_the_last_whole_days_up_to_and_including_today() {
    let now: DateTime<Utc> = "2026-11-20T17:45:00Z".parse().unwrap();
    assert_eq!(billed_days(now, 3), (d("2026-11-18"), d("2026-11-21")));
    assert_eq!(billed_days(now, 1), (d("2026-11-20"), d("2026-11-21")));
    assert_eq!(billed_days(now, 0), (d("2026-11-20"), d("2026-11-21")));
    let midnight: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    assert_eq!(billed_days(midnight, 2), (d("2026-02-28"), d("2026-03-02")));
}

#[test]
fn resource_costs_cover_only_the_last_14_days() {
    let today = d("2026-11-20");
    let q = |start: &str, end: &str| BilledQuery {
        start: d(start),
        end: d(end),
        resource_costs: true,
    };
    assert_eq!(
        resource_range(&q("2026-11-01", "2026-11-21"), today),
        Some((d("2026-11-07"), d("2026-11-21")))
    );
    assert_eq!(
        resource_range(&q("2026-11-18", "2026-11-21"), today),
        Some((d("2026-11-18"), d("2026-11-21")))
    );
    assert_eq!(resource_range(&q("2026-10-01", "2026-11-07"), today), None);
}

#[test]
fn categories_come_from_the_service_name() {
    assert_eq!(
        service_category("Amazon Elastic Compute Cloud - Compute"),
        Some("Compute")
    );
    assert_eq!(
        service_category("Amazon Simple Storage Service"),
        Some("Storage")
    );
    assert_eq!(
        service_category("Amazon Relational Database Service"),
        Some("Databases")
    );
    assert_eq!(service_category("Amazon CloudFront"), Some("Networking"));
    assert_eq!(service_category("Tax"), None);
    assert_eq!(service_category("Some New Service"), None);
    assert_eq!(charge_category("Tax"), ChargeCategory::Tax);
    assert_eq!(charge_category("Refund"), ChargeCategory::Credit);
    assert_eq!(charge_category("AWS Lambda"), ChargeCategory::Usage);
}

// ---------------------------------------------------------------- moto

#[tokio::test]
async fn every_page_of_get_cost_and_usage_becomes_focus_lines() {
    let Some(m) = moto("every_page_of_get_cost_and_usage_becomes_focus_lines") else {
        return;
    };
    let ec2 = EC2_COMPUTE;
    // moto answers each new request body with the next queued result: the first request,
    // then the one carrying the first page's NextPageToken.
    let mut first = json!({
        "ResultsByTime": [
            day_result("2026-11-01", vec![
                group([ec2, "111111111111"], "12.3456789012", "10.5"),
                group(["Tax", "111111111111"], "1.20", "1.20"),
            ]),
            day_result("2026-11-02", vec![
                group([ec2, "111111111111"], "13", "11"),
            ]),
        ],
        "DimensionValueAttributes": [],
        "NextPageToken": "page-2",
    });
    first["GroupDefinitions"] = json!([
        {"Type": "DIMENSION", "Key": "SERVICE"},
        {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}
    ]);
    let second = json!({
        "ResultsByTime": [
            day_result("2026-11-02", vec![
                group(["Amazon Simple Storage Service", "222222222222"], "0", "0"),
                group(["Some New Service", "222222222222"], "0.0000001", "0.0000001"),
            ]),
        ],
        "DimensionValueAttributes": [],
    });
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/ce/cost-and-usage-results",
            m.url
        ))
        .json(&json!({"results": [first, second]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let calls = ApiCalls::default();
    let q = BilledQuery {
        start: d("2026-11-01"),
        end: d("2026-11-03"),
        resource_costs: false,
    };
    let (costs, errors) = billed_costs(&sdk(&m.url).await, &q, &calls).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        costs,
        [
            cost("2026-11-01", ec2, "111111111111", None, 12.3456789012, 10.5),
            cost("2026-11-01", "Tax", "111111111111", None, 1.2, 1.2),
            cost("2026-11-02", ec2, "111111111111", None, 13.0, 11.0),
            cost(
                "2026-11-02",
                "Amazon Simple Storage Service",
                "222222222222",
                None,
                0.0,
                0.0
            ),
            cost(
                "2026-11-02",
                "Some New Service",
                "222222222222",
                None,
                0.0000001,
                0.0000001
            ),
        ]
    );
    assert_eq!(costs[1].charge_category, ChargeCategory::Tax);
    assert_eq!(costs[0].service_category.as_deref(), Some("Compute"));
    assert_eq!(costs[4].service_category, None);
    assert_eq!(calls.get("ce:GetCostAndUsage"), 2);
    assert_eq!(calls.get("ce:GetCostAndUsageWithResources"), 0);
}

// ---------------------------------------------------------------- stand-in

type Answer = Box<dyn Fn(&str, &Value) -> (StatusCode, Value) + Send + Sync>;

/// A local stand-in for the Cost Explorer endpoint: records every request (the operation
/// from `X-Amz-Target`, the JSON body) and answers with `answer(operation, body)`.
#[derive(Clone)]
struct StandIn {
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    answer: Arc<Answer>,
}

async fn stand_in_handler(State(s): State<StandIn>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let op = target
        .strip_prefix("AWSInsightsIndexService.")
        .unwrap_or(target)
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = (s.answer)(&op, &body);
    s.requests.lock().unwrap().push((op, body));
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        answer.to_string(),
    )
        .into_response()
}

async fn stand_in(
    answer: impl Fn(&str, &Value) -> (StatusCode, Value) + Send + Sync + 'static,
) -> (String, StandIn) {
    let s = StandIn {
        requests: Arc::default(),
        answer: Arc::new(Box::new(answer)),
    };
    let app = Router::new()
        .route("/", post(stand_in_handler))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, s)
}

fn error(code: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"__type": code, "message": message}),
    )
}

/// Totals per service: EC2 compute on 2026-11-06 (before the resource window) and
/// 2026-11-07 (inside it), S3 on 2026-11-07.
fn totals() -> Value {
    json!({
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}
        ],
        "ResultsByTime": [
            day_result("2026-11-06", vec![group([EC2_COMPUTE, "111111111111"], "8", "7")]),
            day_result("2026-11-07", vec![
                group([EC2_COMPUTE, "111111111111"], "10.0", "9.0"),
                group(["Amazon Simple Storage Service", "111111111111"], "2.5", "2.5"),
            ]),
        ],
        "DimensionValueAttributes": []
    })
}

/// EC2 compute per resource on 2026-11-07, in two pages (the shape of the API reference's
/// GetCostAndUsageWithResources response).
fn per_resource(token: Option<&str>) -> Value {
    let groups = match token {
        None => vec![
            group(["i-0aaa", "111111111111"], "6.0", "5.0"),
            group(["i-0bbb", "111111111111"], "3.2", "2.9"),
        ],
        Some(_) => vec![
            group(["i-0ccc", "111111111111"], "0.3", "0.1"),
            group(["NoResourceId", "111111111111"], "0.2", "0.2"),
        ],
    };
    let mut page = json!({
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "RESOURCE_ID"},
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}
        ],
        "ResultsByTime": [day_result("2026-11-07", groups)],
        "DimensionValueAttributes": []
    });
    if token.is_none() {
        page["NextPageToken"] = json!("resources-2");
    }
    page
}

fn window_query() -> BilledQuery {
    BilledQuery {
        start: d("2026-11-06"),
        end: d("2026-11-08"),
        resource_costs: true,
    }
}

/// 14 days up to 2026-11-20 start on 2026-11-07.
const TODAY: &str = "2026-11-20";

#[tokio::test]
async fn ec2_compute_is_split_by_resource_within_the_14_day_window() {
    let (url, s) = stand_in(|op, body| match op {
        "GetCostAndUsage" => (StatusCode::OK, totals()),
        "GetCostAndUsageWithResources" => (
            StatusCode::OK,
            per_resource(body.get("NextPageToken").and_then(Value::as_str)),
        ),
        other => error("UnknownOperationException", other),
    })
    .await;
    let calls = ApiCalls::default();
    let (costs, errors) =
        billed_costs_on(&sdk(&url).await, &window_query(), &calls, d(TODAY)).await;
    assert!(errors.is_empty(), "{errors:?}");
    let acct = "111111111111";
    assert_eq!(
        costs,
        [
            // Before the resource window: the total as read.
            cost("2026-11-06", EC2_COMPUTE, acct, None, 8.0, 7.0),
            // Inside it: what no named resource accounts for (10 − 6 − 3.2 − 0.3, and
            // 9 − 5 − 2.9 − 0.1), the NoResourceId group included.
            cost("2026-11-07", EC2_COMPUTE, acct, None, 0.5, 1.0),
            cost(
                "2026-11-07",
                "Amazon Simple Storage Service",
                acct,
                None,
                2.5,
                2.5
            ),
            cost("2026-11-07", EC2_COMPUTE, acct, Some("i-0aaa"), 6.0, 5.0),
            cost("2026-11-07", EC2_COMPUTE, acct, Some("i-0bbb"), 3.2, 2.9),
            cost("2026-11-07", EC2_COMPUTE, acct, Some("i-0ccc"), 0.3, 0.1),
        ]
    );
    let day7: f64 = costs
        .iter()
        .filter(|c| c.charge_period_start.date_naive() == d("2026-11-07"))
        .map(|c| c.billed_cost)
        .sum();
    assert!((day7 - 12.5).abs() < 1e-9, "the day still adds up: {day7}");
    assert_eq!(calls.get("ce:GetCostAndUsage"), 1);
    assert_eq!(calls.get("ce:GetCostAndUsageWithResources"), 2);

    let requests = s.requests.lock().unwrap().clone();
    let ops: Vec<&str> = requests.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(
        ops,
        [
            "GetCostAndUsage",
            "GetCostAndUsageWithResources",
            "GetCostAndUsageWithResources"
        ]
    );
    let totals_req = &requests[0].1;
    assert_eq!(
        totals_req["TimePeriod"],
        json!({"Start": "2026-11-06", "End": "2026-11-08"})
    );
    assert_eq!(totals_req["Granularity"], "DAILY");
    assert_eq!(
        totals_req["Metrics"],
        json!(["UnblendedCost", "AmortizedCost"])
    );
    assert_eq!(
        totals_req["GroupBy"],
        json!([{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}])
    );
    let res_req = &requests[1].1;
    assert_eq!(
        res_req["TimePeriod"],
        json!({"Start": "2026-11-07", "End": "2026-11-08"}),
        "only the days within the last 14"
    );
    assert_eq!(
        res_req["Filter"],
        json!({"Dimensions": {"Key": "SERVICE", "Values": [EC2_COMPUTE]}})
    );
    assert_eq!(
        res_req["GroupBy"],
        json!([{"Type": "DIMENSION", "Key": "RESOURCE_ID"}, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}])
    );
    assert_eq!(res_req["Granularity"], "DAILY");
    assert!(res_req.get("NextPageToken").is_none());
    assert_eq!(requests[2].1["NextPageToken"], "resources-2");
}

#[tokio::test]
async fn a_denied_resource_call_names_the_iam_action_and_keeps_the_totals() {
    let (url, _) = stand_in(|op, _| match op {
        "GetCostAndUsage" => (StatusCode::OK, totals()),
        _ => error(
            "AccessDeniedException",
            "User: arn:aws:iam::111111111111:user/meter is not authorized to perform: ce:GetCostAndUsageWithResources",
        ),
    })
    .await;
    let calls = ApiCalls::default();
    let (costs, errors) =
        billed_costs_on(&sdk(&url).await, &window_query(), &calls, d(TODAY)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind, ErrorKind::Permission);
    assert!(
        errors[0]
            .message
            .contains("grant the IAM action ce:GetCostAndUsageWithResources"),
        "{}",
        errors[0].message
    );
    assert_eq!(errors[0].context["api"], "GetCostAndUsageWithResources");
    // No split without the per-resource answer: EC2 compute keeps its full total.
    let ec2: Vec<(f64, Option<&str>)> = costs
        .iter()
        .filter(|c| c.service_name == EC2_COMPUTE)
        .map(|c| (c.billed_cost, c.resource_id.as_deref()))
        .collect();
    assert_eq!(ec2, [(8.0, None), (10.0, None)]);
    assert_eq!(calls.get("ce:GetCostAndUsageWithResources"), 0);
}

#[tokio::test]
async fn resource_data_not_enabled_says_where_to_enable_it() {
    let (url, _) = stand_in(|op, _| match op {
        "GetCostAndUsage" => (StatusCode::OK, totals()),
        _ => error(
            "DataUnavailableException",
            "Resource level data is not enabled for this account",
        ),
    })
    .await;
    let (_, errors) = billed_costs_on(
        &sdk(&url).await,
        &window_query(),
        &ApiCalls::default(),
        d(TODAY),
    )
    .await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let m = &errors[0].message;
    assert!(
        m.contains("enable resource-level data in the Cost Explorer settings")
            && m.contains("resource_costs = false"),
        "{m}"
    );

    let (url, _) = stand_in(|op, _| match op {
        "GetCostAndUsage" => (StatusCode::OK, totals()),
        _ => error(
            "ValidationException",
            "Customer has not opted in to resource level data",
        ),
    })
    .await;
    let (_, errors) = billed_costs_on(
        &sdk(&url).await,
        &window_query(),
        &ApiCalls::default(),
        d(TODAY),
    )
    .await;
    let m = &errors[0].message;
    assert!(
        m.contains("ValidationException") && m.contains("Cost Explorer settings"),
        "{m}"
    );
}

#[tokio::test]
async fn unavailable_and_expired_data_say_what_to_do() {
    for (code, message, says) in [
        ("DataUnavailableException", "no", "enable Cost Explorer"),
        ("BillExpirationException", "no", "read fewer days"),
        ("RequestChangedException", "no", "next run reads it again"),
        (
            "AccessDeniedException",
            "User not enabled for cost explorer access",
            "Cost Explorer is not enabled for this account",
        ),
    ] {
        let (url, _) = stand_in(move |_, _| error(code, message)).await;
        let q = BilledQuery {
            resource_costs: false,
            ..window_query()
        };
        let calls = ApiCalls::default();
        let (costs, errors) = billed_costs_on(&sdk(&url).await, &q, &calls, d(TODAY)).await;
        assert!(costs.is_empty());
        assert_eq!(errors.len(), 1, "{code}: {errors:?}");
        let m = &errors[0].message;
        assert!(m.contains(says), "{code}: {m}");
        assert!(!m.contains("grant the IAM action"), "{code}: {m}");
        assert_eq!(errors[0].context["api"], "GetCostAndUsage");
    }
}

#[tokio::test]
async fn unreadable_groups_are_reported_and_the_rest_kept() {
    let (url, _) = stand_in(|_, _| {
        let mut page = totals();
        page["ResultsByTime"][1]["Groups"][1]["Metrics"]["UnblendedCost"]["Amount"] = json!("lots");
        (StatusCode::OK, page)
    })
    .await;
    let q = BilledQuery {
        resource_costs: false,
        ..window_query()
    };
    let (costs, errors) =
        billed_costs_on(&sdk(&url).await, &q, &ApiCalls::default(), d(TODAY)).await;
    assert_eq!(costs.len(), 2);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::BadResponse);
    assert!(
        errors[0].message.contains("skipped 1 group(s)")
            && errors[0].message.contains("UnblendedCost amount \"lots\""),
        "{}",
        errors[0].message
    );
}

#[tokio::test]
async fn a_page_token_that_repeats_stops_paging() {
    let (url, s) = stand_in(|_, _| {
        let mut page = totals();
        page["NextPageToken"] = json!("again");
        (StatusCode::OK, page)
    })
    .await;
    let q = BilledQuery {
        resource_costs: false,
        ..window_query()
    };
    let calls = ApiCalls::default();
    let (costs, errors) = billed_costs_on(&sdk(&url).await, &q, &calls, d(TODAY)).await;
    assert_eq!(s.requests.lock().unwrap().len(), 2);
    assert_eq!(calls.get("ce:GetCostAndUsage"), 2);
    assert_eq!(costs.len(), 6, "both pages' lines kept");
    assert!(
        errors[0].message.contains("same NextPageToken"),
        "{errors:?}"
    );
}
