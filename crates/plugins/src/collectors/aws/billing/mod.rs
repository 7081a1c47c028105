//! `billed` costs: what AWS charged, read from Cost Explorer, as FOCUS cost lines.
//!
//! `GetCostAndUsage` gives one line per (day, service, linked account) with `UnblendedCost`
//! (what the bill says: BilledCost) and `AmortizedCost` (upfront and reservation fees spread
//! over the days they cover: EffectiveCost). With `resource_costs`,
//! `GetCostAndUsageWithResources` breaks EC2 compute down per resource for the days within
//! its 14-day limit; the EC2 compute line of those days then keeps only what no resource
//! accounts for, so that the lines of a day still add up to the bill exactly once.
//!
//! Cost Explorer revises today's and the last days' figures several times a day, so the
//! same days are read again on every run: the store keys cost lines and replaces a line it
//! already has (see crates/store). Lines of zero cost are kept for that reason: a figure
//! revised to zero must replace the earlier one.

use super::calls::ApiCalls;
use super::errors::api_error;
use aws_config::{Region, SdkConfig};
use aws_sdk_costexplorer::error::ProvideErrorMetadata;
use aws_sdk_costexplorer::types::{
    DateInterval, Dimension, DimensionValues, Expression, Granularity, GroupDefinition,
    GroupDefinitionType, ResultByTime,
};
use chrono::{DateTime, Days, NaiveDate, Utc};
use skymeter_model::{ChargeCategory, Cost};
use skymeter_plugin_api::{ErrorKind, PluginError};
use std::collections::HashMap;
use std::future::Future;

#[cfg(test)]
mod tests;

/// FOCUS ProviderName of every line.
pub const PROVIDER_NAME: &str = skymeter_model::provider::AWS.focus_name;
/// The Cost Explorer SERVICE value of EC2 instances: the only service
/// `GetCostAndUsageWithResources` accepts in its filter.
pub const EC2_COMPUTE: &str = "Amazon Elastic Compute Cloud - Compute";
/// Days (today included) `GetCostAndUsageWithResources` covers: its start may be at most 14
/// days ago.
pub const RESOURCE_DAYS: u64 = 14;
/// Metric read as BilledCost.
const BILLED_METRIC: &str = "UnblendedCost";
/// Metric read as EffectiveCost.
const EFFECTIVE_METRIC: &str = "AmortizedCost";
/// Pages of one query before skymeter stops and reports it (a guard against a token that
/// never ends; a day of a large organisation is a few pages).
const MAX_PAGES: usize = 1000;

/// What to read: the days `[start, end)` at daily granularity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledQuery {
    /// First day read (inclusive), UTC.
    pub start: NaiveDate,
    /// Day after the last one read (exclusive), UTC.
    pub end: NaiveDate,
    /// Also read EC2 compute costs per resource (`GetCostAndUsageWithResources`) for the
    /// part of `[start, end)` within the last 14 days.
    pub resource_costs: bool,
}

/// The last `days` whole UTC days up to and including today (`days` 0 counts as 1): today
/// and the recent days are the ones Cost Explorer still revises, so every run reads them
/// again.
pub fn billed_days(now: DateTime<Utc>, days: u32) -> (NaiveDate, NaiveDate) {
    let end = now.date_naive() + Days::new(1);
    (end - Days::new(u64::from(days.max(1))), end)
}

/// Reads `q` from Cost Explorer: every page of `GetCostAndUsage` (and, with
/// `resource_costs`, of `GetCostAndUsageWithResources`). Returns the lines read and what
/// failed; a failure keeps the lines read before it.
pub async fn billed_costs(
    sdk: &SdkConfig,
    q: &BilledQuery,
    calls: &ApiCalls,
) -> (Vec<Cost>, Vec<PluginError>) {
    billed_costs_on(sdk, q, calls, Utc::now().date_naive()).await
}

/// [`billed_costs`] as if today were `today` (the 14-day limit of resource data counts from
/// it).
pub(crate) async fn billed_costs_on(
    sdk: &SdkConfig,
    q: &BilledQuery,
    calls: &ApiCalls,
    today: NaiveDate,
) -> (Vec<Cost>, Vec<PluginError>) {
    if q.start >= q.end {
        return (
            Vec::new(),
            vec![PluginError::new(
                ErrorKind::Config,
                format!(
                    "billed costs: the range {}..{} is empty; the start must be before the (exclusive) end",
                    q.start, q.end
                ),
            )],
        );
    }
    let client = client(sdk);
    let mut errors = Vec::new();
    let (results, failed) = all_pages("GetCostAndUsage", calls, |token| {
        client
            .get_cost_and_usage()
            .time_period(interval(q.start, q.end))
            .granularity(Granularity::Daily)
            .metrics(BILLED_METRIC)
            .metrics(EFFECTIVE_METRIC)
            .group_by(dimension_group(Dimension::Service))
            .group_by(dimension_group(Dimension::LinkedAccount))
            .set_next_page_token(token)
            .send()
    })
    .await;
    errors.extend(failed);
    let (mut lines, unreadable) = read_lines(&results, Keys::ServiceAccount);
    errors.extend(unreadable.into_error("GetCostAndUsage"));

    let resource_range = resource_range(q, today);
    if let Some((start, end)) = resource_range.filter(|_| q.resource_costs) {
        let (results, failed) = all_pages("GetCostAndUsageWithResources", calls, |token| {
            client
                .get_cost_and_usage_with_resources()
                .time_period(interval(start, end))
                .granularity(Granularity::Daily)
                .metrics(BILLED_METRIC)
                .metrics(EFFECTIVE_METRIC)
                // The API requires this filter (it serves EC2 compute only) and a group or
                // filter by resource; the filter fixes the service, so the second group is
                // the linked account, which the per-account remainder needs.
                .filter(
                    Expression::builder()
                        .dimensions(
                            DimensionValues::builder()
                                .key(Dimension::Service)
                                .values(EC2_COMPUTE)
                                .build(),
                        )
                        .build(),
                )
                .group_by(dimension_group(Dimension::ResourceId))
                .group_by(dimension_group(Dimension::LinkedAccount))
                .set_next_page_token(token)
                .send()
        })
        .await;
        match failed {
            // Without every page, the per-resource split would be partial: keep the EC2
            // totals as they are (a later run that succeeds replaces them).
            Some(e) => errors.push(e),
            None => {
                let (resources, unreadable) = read_lines(&results, Keys::ResourceAccount);
                errors.extend(unreadable.into_error("GetCostAndUsageWithResources"));
                split_ec2_by_resource(&mut lines, resources, start, end);
            }
        }
    }
    (lines.into_iter().map(Line::into_cost).collect(), errors)
}

/// The part of `q` within the last [`RESOURCE_DAYS`] days up to `today`, if any.
fn resource_range(q: &BilledQuery, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let earliest = today - Days::new(RESOURCE_DAYS - 1);
    let start = q.start.max(earliest);
    (start < q.end).then_some((start, q.end))
}

/// A Cost Explorer client. Cost Explorer has one endpoint, in us-east-1 (cn-northwest-1 for
/// the China partition), whatever region the rest of the collector uses; an endpoint
/// override (an emulator) is kept with the SDK config's region.
fn client(sdk: &SdkConfig) -> aws_sdk_costexplorer::Client {
    let mut conf = aws_sdk_costexplorer::config::Builder::from(sdk);
    let china = sdk.region().is_some_and(|r| r.as_ref().starts_with("cn-"));
    if sdk.endpoint_url().is_none() || sdk.region().is_none() {
        conf = conf.region(Region::new(if china {
            "cn-northwest-1"
        } else {
            "us-east-1"
        }));
    }
    aws_sdk_costexplorer::Client::from_conf(conf.build())
}

fn interval(start: NaiveDate, end: NaiveDate) -> DateInterval {
    DateInterval::builder()
        .start(start.format("%Y-%m-%d").to_string())
        .end(end.format("%Y-%m-%d").to_string())
        .build()
        .expect("start and end are set")
}

fn dimension_group(d: Dimension) -> GroupDefinition {
    GroupDefinition::builder()
        .r#type(GroupDefinitionType::Dimension)
        .key(d.as_str())
        .build()
}

/// Every page of one query: `call(token)` sends one request. Stops at the first failure,
/// keeping the pages before it. Each answered request is counted as `ce:<api>`.
async fn all_pages<F, Fut, O, E>(
    api: &'static str,
    calls: &ApiCalls,
    mut call: F,
) -> (Vec<ResultByTime>, Option<PluginError>)
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<O, E>>,
    O: Page,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let counted = counted_name(api);
    let mut results = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        match call(token.clone()).await {
            Err(e) => return (results, Some(ce_error(api, &e))),
            Ok(page) => {
                calls.count(counted);
                let (page_results, next) = page.into_parts();
                results.extend(page_results);
                match next.filter(|t| !t.is_empty()) {
                    None => return (results, None),
                    Some(t) if token.as_ref() == Some(&t) => {
                        let e = PluginError::new(
                            ErrorKind::BadResponse,
                            format!("{api} answered the same NextPageToken twice; stopped paging to avoid a loop (the lines read so far are kept)"),
                        )
                        .with("api", api);
                        return (results, Some(e));
                    }
                    Some(t) => token = Some(t),
                }
            }
        }
    }
    let e = PluginError::new(
        ErrorKind::BadResponse,
        format!("{api} was still paging after {MAX_PAGES} pages; stopped (the lines read so far are kept): read fewer days at a time"),
    )
    .with("api", api);
    (results, Some(e))
}

fn counted_name(api: &'static str) -> &'static str {
    match api {
        "GetCostAndUsageWithResources" => "ce:GetCostAndUsageWithResources",
        _ => "ce:GetCostAndUsage",
    }
}

/// The two answers' common part.
trait Page {
    fn into_parts(self) -> (Vec<ResultByTime>, Option<String>);
}

impl Page for aws_sdk_costexplorer::operation::get_cost_and_usage::GetCostAndUsageOutput {
    fn into_parts(self) -> (Vec<ResultByTime>, Option<String>) {
        (
            self.results_by_time.unwrap_or_default(),
            self.next_page_token,
        )
    }
}

impl Page
    for aws_sdk_costexplorer::operation::get_cost_and_usage_with_resources::GetCostAndUsageWithResourcesOutput
{
    fn into_parts(self) -> (Vec<ResultByTime>, Option<String>) {
        (self.results_by_time.unwrap_or_default(), self.next_page_token)
    }
}

/// A Cost Explorer error as a `PluginError` that says what to do.
fn ce_error<E>(api: &'static str, e: &E) -> PluginError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let action = counted_name(api);
    let resources = api == "GetCostAndUsageWithResources";
    let enable_resources = "enable resource-level data in the Cost Explorer settings (Billing and Cost Management console → Cost Management preferences → \"Resource-level data at daily granularity\", for Amazon Elastic Compute Cloud - Compute; it applies within 48 hours), or set resource_costs = false";
    let special = match e.code() {
        Some("DataUnavailableException") => Some((
            ErrorKind::Unavailable,
            if resources {
                format!("{api}: Cost Explorer has no resource-level data for this account (DataUnavailableException): {enable_resources}")
            } else {
                format!("{api}: Cost Explorer has no data for this account yet (DataUnavailableException): enable Cost Explorer in the Billing and Cost Management console (its first data appears within about 24 hours); for a member account of an organization, the management account may also have to allow member accounts to use it")
            },
        )),
        // An account that never turned Cost Explorer on answers AccessDeniedException "User
        // not enabled for cost explorer access" (seen in public reports of this error):
        // no IAM grant fixes that, so it must not read as a missing permission.
        Some("AccessDeniedException")
            if e
                .message()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("not enabled for cost explorer") =>
        {
            Some((
                ErrorKind::Other,
                format!("{api}: Cost Explorer is not enabled for this account (\"User not enabled for cost explorer access\"): enable it in the Billing and Cost Management console (Cost Explorer → Launch Cost Explorer; data appears within about 24 hours); for a member account, the organization's management account must enable it"),
            ))
        }
        Some("BillExpirationException") => Some((
            ErrorKind::Other,
            format!("{api}: the period asked for is older than the billing history Cost Explorer keeps (BillExpirationException; 13 months by default): read fewer days"),
        )),
        Some("RequestChangedException") => Some((
            ErrorKind::Unavailable,
            format!("{api}: the data changed while skymeter was paging through it (RequestChangedException): the next run reads it again"),
        )),
        _ => None,
    };
    let mut err = match special {
        Some((kind, message)) => PluginError::new(kind, message).with("api", api),
        None => api_error(api, action, "", e),
    };
    if resources && err.kind != ErrorKind::Permission && mentions_opt_in(e.message()) {
        if !err
            .message
            .contains("resource-level data in the Cost Explorer settings")
        {
            err.message = format!("{}: {enable_resources}", err.message);
        }
    } else if resources && err.kind == ErrorKind::Permission {
        err.message = format!(
            "{} (resource-level data must also be enabled in the Cost Explorer settings)",
            err.message
        );
    }
    err
}

/// Whether an error message says that resource-level data is not turned on (AWS answers
/// with a validation or access error whose wording mentions opting in or enabling).
fn mentions_opt_in(message: Option<&str>) -> bool {
    let m = message.unwrap_or_default().to_ascii_lowercase();
    [
        "opt-in",
        "opt in",
        "opted",
        "not enabled",
        "enable resource",
        "resource-level",
        "resource level",
    ]
    .iter()
    .any(|w| m.contains(w))
}

// ---------------------------------------------------------------- answers → lines

/// One group of one day, before it becomes a `Cost`.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    start: NaiveDate,
    end: NaiveDate,
    service: String,
    account: Option<String>,
    resource: Option<String>,
    billed: f64,
    effective: f64,
    currency: String,
}

/// What a group's keys are, in the order of the request's GroupBy.
#[derive(Clone, Copy)]
enum Keys {
    ServiceAccount,
    ResourceAccount,
}

/// Groups that could not be read, by what was wrong.
#[derive(Default)]
struct Unreadable {
    periods: usize,
    groups: usize,
    example: Option<String>,
}

impl Unreadable {
    fn into_error(self, api: &'static str) -> Option<PluginError> {
        if self.periods == 0 && self.groups == 0 {
            return None;
        }
        Some(
            PluginError::new(
                ErrorKind::BadResponse,
                format!(
                    "{api}: skipped {} group(s) and {} period(s) that could not be read ({}); the other lines are kept",
                    self.groups,
                    self.periods,
                    self.example.unwrap_or_default()
                ),
            )
            .with("api", api),
        )
    }
}

fn read_lines(results: &[ResultByTime], keys: Keys) -> (Vec<Line>, Unreadable) {
    let mut out = Vec::new();
    let mut bad = Unreadable::default();
    for r in results {
        let period = r
            .time_period()
            .and_then(|p| Some((day(p.start())?, day(p.end())?)));
        let Some((start, end)) = period else {
            bad.periods += 1;
            bad.example
                .get_or_insert_with(|| format!("a TimePeriod of {:?}", r.time_period()));
            continue;
        };
        for g in r.groups() {
            let read = (|| {
                let (service, resource, account) = match (keys, g.keys()) {
                    (Keys::ServiceAccount, [service, account]) => {
                        (service.clone(), None, account.clone())
                    }
                    (Keys::ResourceAccount, [resource, account]) => (
                        EC2_COMPUTE.to_string(),
                        Some(resource.clone()),
                        account.clone(),
                    ),
                    (_, other) => return Err(format!("group keys {other:?}, expected two")),
                };
                let metrics = g.metrics().ok_or("a group without metrics")?;
                let amount = |name: &str| -> Result<(f64, Option<&str>), String> {
                    let m = metrics
                        .get(name)
                        .ok_or_else(|| format!("a group without {name}"))?;
                    let a = m.amount().unwrap_or_default();
                    let v: f64 = a
                        .parse()
                        .ok()
                        .filter(|v: &f64| v.is_finite())
                        .ok_or_else(|| format!("{name} amount {a:?}"))?;
                    Ok((v, m.unit().filter(|u| !u.is_empty())))
                };
                let (billed, billed_unit) = amount(BILLED_METRIC)?;
                let (effective, effective_unit) = amount(EFFECTIVE_METRIC)?;
                let currency = billed_unit
                    .or(effective_unit)
                    .ok_or_else(|| format!("no Unit on {BILLED_METRIC} or {EFFECTIVE_METRIC}"))?
                    .to_string();
                Ok(Line {
                    start,
                    end,
                    service,
                    account: Some(account).filter(|a| !a.is_empty()),
                    resource,
                    billed,
                    effective,
                    currency,
                })
            })();
            match read {
                Ok(line) => out.push(line),
                Err(why) => {
                    bad.groups += 1;
                    bad.example.get_or_insert(why);
                }
            }
        }
    }
    (out, bad)
}

/// A TimePeriod bound: `2026-11-01` (DAILY), or a timestamp whose date is taken.
fn day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| s.parse::<DateTime<Utc>>().ok().map(|t| t.date_naive()))
}

/// Whether a RESOURCE_ID group holds usage that no resource is named for (it stays in the
/// EC2 compute remainder).
fn is_no_resource(id: &str) -> bool {
    id.is_empty() || id.eq_ignore_ascii_case("NoResourceId")
}

/// Adds the per-resource EC2 compute lines of `[start, end)` and lowers each day's and
/// account's EC2 compute line by what they account for, so that every cost is in exactly
/// one line. The remainder (usage without a resource id, rounding) is rounded to Cost
/// Explorer's 10 decimals, so that a day fully accounted for leaves exactly 0.
fn split_ec2_by_resource(
    lines: &mut Vec<Line>,
    resources: Vec<Line>,
    start: NaiveDate,
    end: NaiveDate,
) {
    let mut attributed: HashMap<(NaiveDate, Option<String>, String), (f64, f64)> = HashMap::new();
    let resources: Vec<Line> = resources
        .into_iter()
        .filter(|l| !l.resource.as_deref().is_some_and(is_no_resource))
        .collect();
    for r in &resources {
        let e = attributed
            .entry((r.start, r.account.clone(), r.currency.clone()))
            .or_default();
        e.0 += r.billed;
        e.1 += r.effective;
    }
    for l in lines.iter_mut() {
        if l.service != EC2_COMPUTE || l.resource.is_some() || l.start < start || l.start >= end {
            continue;
        }
        if let Some((billed, effective)) =
            attributed.get(&(l.start, l.account.clone(), l.currency.clone()))
        {
            l.billed = round10(l.billed - billed);
            l.effective = round10(l.effective - effective);
        }
    }
    lines.extend(resources);
}

fn round10(v: f64) -> f64 {
    let r = (v * 1e10).round() / 1e10;
    if r == 0.0 {
        0.0 // not -0.0
    } else {
        r
    }
}

impl Line {
    fn into_cost(self) -> Cost {
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        Cost {
            service_category: service_category(&self.service).map(str::to_string),
            sub_account_id: self.account,
            resource_id: self.resource,
            ..Cost::billed(
                PROVIDER_NAME,
                charge_category(&self.service),
                self.billed,
                self.effective,
                self.currency,
                midnight(self.start),
                midnight(self.end),
                self.service,
            )
        }
    }
}

/// FOCUS ChargeCategory from Cost Explorer's SERVICE value: `Tax` is tax; a refund or credit
/// shown as a service of its own is a credit; everything else usage.
pub fn charge_category(service: &str) -> ChargeCategory {
    let s = service.to_ascii_lowercase();
    if s == "tax" {
        ChargeCategory::Tax
    } else if s.contains("refund") || s.contains("credit") {
        ChargeCategory::Credit
    } else {
        ChargeCategory::Usage
    }
}

/// FOCUS ServiceCategory of common Cost Explorer SERVICE values; None for the others.
pub fn service_category(service: &str) -> Option<&'static str> {
    Some(match service {
        "Amazon Elastic Compute Cloud - Compute"
        | "EC2 - Other"
        | "AWS Lambda"
        | "Amazon Elastic Container Service"
        | "Amazon Elastic Container Service for Kubernetes"
        | "Amazon Elastic Kubernetes Service"
        | "Amazon Lightsail"
        | "AWS Batch"
        | "Amazon EC2 Container Registry (ECR)"
        | "AWS App Runner"
        | "AWS Elastic Beanstalk" => "Compute",
        "Amazon Simple Storage Service"
        | "Amazon Elastic File System"
        | "Amazon Elastic Block Store"
        | "Amazon S3 Glacier"
        | "Amazon Glacier"
        | "Amazon FSx"
        | "AWS Backup"
        | "AWS Storage Gateway" => "Storage",
        "Amazon Relational Database Service"
        | "Amazon DynamoDB"
        | "Amazon ElastiCache"
        | "Amazon DocumentDB (with MongoDB compatibility)"
        | "Amazon Neptune"
        | "Amazon MemoryDB"
        | "Amazon Keyspaces (for Apache Cassandra)"
        | "Amazon Timestream" => "Databases",
        "Amazon Virtual Private Cloud"
        | "Amazon CloudFront"
        | "Amazon Route 53"
        | "Elastic Load Balancing"
        | "AWS Direct Connect"
        | "AWS Global Accelerator"
        | "AWS Data Transfer"
        | "Amazon API Gateway"
        | "AWS Transit Gateway" => "Networking",
        "Amazon Redshift"
        | "Amazon Athena"
        | "Amazon Kinesis"
        | "Amazon Kinesis Firehose"
        | "AWS Glue"
        | "Amazon OpenSearch Service"
        | "Amazon Elastic MapReduce"
        | "Amazon QuickSight"
        | "Amazon Managed Streaming for Apache Kafka" => "Analytics",
        "AmazonCloudWatch"
        | "Amazon CloudWatch"
        | "AWS CloudTrail"
        | "AWS Config"
        | "AWS Systems Manager"
        | "AWS Cost Explorer"
        | "AWS CloudFormation" => "Management and Governance",
        "AWS Key Management Service"
        | "AWS Secrets Manager"
        | "Amazon GuardDuty"
        | "AWS WAF"
        | "AWS Security Hub"
        | "Amazon Inspector"
        | "AWS Shield"
        | "AWS Certificate Manager" => "Security",
        "Amazon Simple Queue Service"
        | "Amazon Simple Notification Service"
        | "AWS Step Functions"
        | "Amazon EventBridge"
        | "CloudWatch Events"
        | "Amazon Simple Email Service" => "Integration",
        "Amazon SageMaker" | "Amazon Bedrock" | "Amazon Rekognition" | "Amazon Textract"
        | "Amazon Comprehend" | "Amazon Transcribe" | "Amazon Polly" => "AI and Machine Learning",
        "Amazon Cognito" | "AWS Directory Service" | "AWS IAM Identity Center" => "Identity",
        _ => return None,
    })
}
