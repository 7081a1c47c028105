//! CloudWatch `GetMetricData` in the AWS Query protocol (`Version=2010-08-01`) that
//! aws-sdk-cloudwatch 1.99 speaks: a form body of `MetricDataQueries.member.N.…` pairs in,
//! `GetMetricDataResponse/GetMetricDataResult/MetricDataResults/member` out. Values come from
//! [`fleet::datapoint`]; more than 500 queries is CloudWatch's `ValidationError`.

use crate::fleet;
use crate::wire::{escape, query_error, request_id, Form, Reply};
use chrono::DateTime;
use std::fmt::Write;

const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// The API maximum of queries in one call.
pub const MAX_QUERIES: usize = 500;

/// CloudWatch's default (and maximum) `MaxDatapoints` of one call.
pub const MAX_DATAPOINTS: usize = 100_800;

/// What one call asked for, for the stand-in's counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Work {
    pub queries: usize,
    pub datapoints: usize,
}

/// One `MetricDataQueries.member.N`, borrowed from the form.
#[derive(Debug, Default)]
struct Query<'f> {
    id: Option<&'f str>,
    label: Option<&'f str>,
    expression: Option<&'f str>,
    namespace: Option<&'f str>,
    metric_name: Option<&'f str>,
    /// `Dimensions.member.K.Name` / `.Value` by K.
    dimensions: Vec<(Option<&'f str>, Option<&'f str>)>,
    period: Option<&'f str>,
    stat: Option<&'f str>,
    return_data: Option<&'f str>,
}

impl<'f> Query<'f> {
    fn set(&mut self, field: &str, value: &'f str) {
        match field {
            "Id" => self.id = Some(value),
            "Label" => self.label = Some(value),
            "Expression" => self.expression = Some(value),
            "ReturnData" => self.return_data = Some(value),
            "MetricStat.Period" | "Period" => self.period = Some(value),
            "MetricStat.Stat" => self.stat = Some(value),
            "MetricStat.Metric.Namespace" => self.namespace = Some(value),
            "MetricStat.Metric.MetricName" => self.metric_name = Some(value),
            f => {
                let Some(rest) = f.strip_prefix("MetricStat.Metric.Dimensions.member.") else {
                    return;
                };
                let Some((k, part)) = rest.split_once('.') else {
                    return;
                };
                let Some(k) = k.parse::<usize>().ok().filter(|k| (1..=30).contains(k)) else {
                    return;
                };
                if self.dimensions.len() < k {
                    self.dimensions.resize(k, (None, None));
                }
                match part {
                    "Name" => self.dimensions[k - 1].0 = Some(value),
                    "Value" => self.dimensions[k - 1].1 = Some(value),
                    _ => {}
                }
            }
        }
    }

    fn dimension(&self, name: &str) -> Option<&'f str> {
        self.dimensions
            .iter()
            .find(|(n, _)| *n == Some(name))
            .and_then(|(_, v)| *v)
    }
}

pub struct CloudWatch {
    pub instances: u64,
}

impl CloudWatch {
    pub fn handle(&self, action: &str, form: &Form<'_>) -> (Reply, Work) {
        match action {
            "GetMetricData" => self.get_metric_data(form),
            a => (
                query_error(
                    400,
                    XMLNS,
                    "InvalidAction",
                    &format!("The action {a} is not valid for this web service."),
                ),
                Work::default(),
            ),
        }
    }

    fn get_metric_data(&self, form: &Form<'_>) -> (Reply, Work) {
        let invalid = |code: &str, msg: &str| (query_error(400, XMLNS, code, msg), Work::default());
        let mut queries: Vec<Query<'_>> = Vec::new();
        for (k, v) in &form.pairs {
            let Some(rest) = k.strip_prefix("MetricDataQueries.member.") else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else {
                return invalid("ValidationError", &format!("Malformed parameter {k}."));
            };
            if n == 0 || n > 10 * MAX_QUERIES {
                return invalid(
                    "ValidationError",
                    &format!("The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."),
                );
            }
            if queries.len() < n {
                queries.resize_with(n, Query::default);
            }
            queries[n - 1].set(field, v.as_ref());
        }
        if queries.is_empty() {
            return invalid(
                "MissingParameter",
                "The parameter MetricDataQueries is required.",
            );
        }
        if queries.len() > MAX_QUERIES {
            return invalid(
                "ValidationError",
                &format!("The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."),
            );
        }
        let time = |name: &str| -> Result<i64, String> {
            let v = form
                .get(name)
                .ok_or_else(|| format!("The parameter {name} is required."))?;
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp())
                .map_err(|_| {
                    format!(
                        "Invalid value {v:?} for parameter {name}: expected an ISO 8601 timestamp."
                    )
                })
        };
        let (start, end) = match (time("StartTime"), time("EndTime")) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(m), _) | (_, Err(m)) => return invalid("MissingParameter", &m),
        };
        if start >= end {
            return invalid(
                "ValidationError",
                "The parameter StartTime must be less than the parameter EndTime.",
            );
        }
        let ascending = form.get("ScanBy") == Some("TimestampAscending");
        let max_datapoints = match form.get("MaxDatapoints").map(str::parse::<usize>) {
            None => MAX_DATAPOINTS,
            Some(Ok(m)) if m > 0 => m.min(MAX_DATAPOINTS),
            Some(_) => {
                return invalid(
                    "ValidationError",
                    "MaxDatapoints must be a positive integer.",
                )
            }
        };

        let mut seen_ids: Vec<&str> = Vec::with_capacity(queries.len());
        let mut returned = 0usize;
        for (n, q) in queries.iter().enumerate() {
            let Some(id) = q.id else {
                return invalid(
                    "ValidationError",
                    &format!(
                        "The parameter MetricDataQueries.member.{}.Id is required.",
                        n + 1
                    ),
                );
            };
            if !valid_id(id) {
                return invalid(
                    "ValidationError",
                    &format!("Invalid id {id:?}: ids must start with a lowercase letter and contain only letters, numbers and underscores."),
                );
            }
            seen_ids.push(id);
            if q.expression.is_some() {
                return invalid(
                    "ValidationError",
                    "This stand-in does not evaluate metric math Expressions; use MetricStat queries.",
                );
            }
            if q.metric_name.is_none() || q.namespace.is_none() || q.stat.is_none() {
                return invalid(
                    "ValidationError",
                    &format!("MetricDataQueries.member.{} needs MetricStat.Metric.Namespace, MetricStat.Metric.MetricName and MetricStat.Stat.", n + 1),
                );
            }
            match q.period.map(str::parse::<i64>) {
                Some(Ok(p)) if p > 0 && (p % 60 == 0 || matches!(p, 1 | 5 | 10 | 30)) => {}
                _ => {
                    return invalid(
                        "ValidationError",
                        &format!("MetricDataQueries.member.{}.MetricStat.Period must be 1, 5, 10, 30 or a multiple of 60.", n + 1),
                    )
                }
            }
            if q.return_data != Some("false") {
                returned += 1;
            }
        }
        seen_ids.sort_unstable();
        if seen_ids.windows(2).any(|w| w[0] == w[1]) {
            return invalid(
                "ValidationError",
                "The values for parameter id in MetricDataQueries are not unique.",
            );
        }

        // Timestamps of each period length asked for, formatted once: the start of every
        // period in [start, end), aligned to the period, newest first unless ScanBy says.
        let mut periods: Vec<(i64, Vec<i64>, String)> = Vec::new();
        let mut datapoints = 0usize;
        for q in queries.iter().filter(|q| q.return_data != Some("false")) {
            let p: i64 = q.period.and_then(|p| p.parse().ok()).unwrap_or(60);
            if !periods.iter().any(|(x, _, _)| *x == p) {
                let first = start.div_euclid(p) * p + if start.rem_euclid(p) == 0 { 0 } else { p };
                let mut stamps: Vec<i64> = (0..)
                    .map(|k| first + k * p)
                    .take_while(|t| *t < end)
                    .collect();
                if !ascending {
                    stamps.reverse();
                }
                let mut xml = String::with_capacity(stamps.len() * 40 + 24);
                xml.push_str("<Timestamps>");
                for t in &stamps {
                    let s = DateTime::from_timestamp(*t, 0).unwrap_or_default();
                    let _ = write!(xml, "<member>{}</member>", s.format("%Y-%m-%dT%H:%M:%SZ"));
                }
                xml.push_str("</Timestamps>");
                periods.push((p, stamps, xml));
            }
            if self.series(q).is_some() {
                let (_, stamps, _) = periods
                    .iter()
                    .find(|(x, _, _)| *x == p)
                    .expect("just added");
                datapoints += stamps.len();
            }
        }
        if datapoints > max_datapoints {
            return invalid(
                "ValidationError",
                &format!("This stand-in does not paginate: the call asks for {datapoints} datapoints, more than MaxDatapoints ({max_datapoints})."),
            );
        }

        let mut body = String::with_capacity(returned * 320 + datapoints * 60 + 512);
        let _ = write!(
            body,
            "<GetMetricDataResponse xmlns=\"{XMLNS}\"><GetMetricDataResult><MetricDataResults>"
        );
        for q in queries.iter().filter(|q| q.return_data != Some("false")) {
            let p: i64 = q.period.and_then(|p| p.parse().ok()).unwrap_or(60);
            let (_, stamps, stamps_xml) = periods
                .iter()
                .find(|(x, _, _)| *x == p)
                .expect("computed above");
            body.push_str("<member>");
            match self.series(q) {
                Some(number) => {
                    body.push_str(stamps_xml);
                    body.push_str("<Values>");
                    let (metric, stat) = (
                        q.metric_name.unwrap_or_default(),
                        q.stat.unwrap_or_default(),
                    );
                    for t in stamps {
                        let _ = write!(
                            body,
                            "<member>{}</member>",
                            fleet::datapoint(number, metric, stat, *t)
                        );
                    }
                    body.push_str("</Values>");
                }
                None => body.push_str("<Timestamps/><Values/>"),
            }
            let _ = write!(
                body,
                "<StatusCode>Complete</StatusCode><Label>{}</Label><Id>{}</Id></member>",
                escape(q.label.or(q.metric_name).unwrap_or_default()),
                escape(q.id.unwrap_or_default()),
            );
        }
        let _ = write!(
            body,
            "</MetricDataResults><Messages/></GetMetricDataResult><ResponseMetadata><RequestId>{}</RequestId>\
             </ResponseMetadata></GetMetricDataResponse>",
            request_id()
        );
        (
            Reply::xml(body),
            Work {
                queries: queries.len(),
                datapoints,
            },
        )
    }

    /// The fleet's instance number a query reads, when it reads an `AWS/EC2` metric of an
    /// instance that exists (other series have no data, as in CloudWatch).
    fn series(&self, q: &Query<'_>) -> Option<u64> {
        if q.namespace != Some("AWS/EC2") {
            return None;
        }
        fleet::instance_number(q.dimension("InstanceId")?)
            .filter(|n| (1..=self.instances).contains(n))
    }
}

/// CloudWatch's rule for query ids: a lowercase letter, then letters, digits, underscores.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(queries: usize, first_instance: u64) -> String {
        let mut s = String::from(
            "Action=GetMetricData&Version=2010-08-01&StartTime=2026-01-01T00%3A00%3A00Z&EndTime=2026-01-01T00%3A10%3A00Z",
        );
        for k in 0..queries {
            let n = k + 1;
            let _ = write!(
                s,
                "&MetricDataQueries.member.{n}.Id=q{k}\
                 &MetricDataQueries.member.{n}.MetricStat.Metric.Namespace=AWS%2FEC2\
                 &MetricDataQueries.member.{n}.MetricStat.Metric.MetricName=CPUUtilization\
                 &MetricDataQueries.member.{n}.MetricStat.Metric.Dimensions.member.1.Name=InstanceId\
                 &MetricDataQueries.member.{n}.MetricStat.Metric.Dimensions.member.1.Value={}\
                 &MetricDataQueries.member.{n}.MetricStat.Period=300\
                 &MetricDataQueries.member.{n}.MetricStat.Stat={}\
                 &MetricDataQueries.member.{n}.ReturnData=true",
                fleet::instance_id(first_instance + k as u64),
                if k % 2 == 0 { "Average" } else { "Maximum" },
            );
        }
        s
    }

    fn call(cw: &CloudWatch, body: &str) -> (Reply, Work) {
        let form = Form::parse(body.as_bytes());
        cw.handle("GetMetricData", &form)
    }

    #[test]
    fn answers_every_query_with_newest_first_values_of_its_series() {
        let (r, work) = call(&CloudWatch { instances: 10 }, &body(2, 1));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(work.queries, 2);
        assert_eq!(work.datapoints, 4);
        // 00:05 is minute 29_453_765 (mod 4 = 1), 00:00 is minute …760 (mod 4 = 0).
        assert!(r.body.contains(
            "<member><Timestamps><member>2026-01-01T00:05:00Z</member><member>2026-01-01T00:00:00Z</member>\
             </Timestamps><Values><member>1011.25</member><member>1011</member></Values>\
             <StatusCode>Complete</StatusCode><Label>CPUUtilization</Label><Id>q0</Id></member>"
        ), "{}", r.body);
        assert!(r
            .body
            .contains("<Values><member>2012.25</member><member>2012</member></Values>"));
        assert!(r.body.starts_with("<GetMetricDataResponse xmlns="));
    }

    #[test]
    fn unknown_instances_have_no_datapoints() {
        let (r, work) = call(&CloudWatch { instances: 1 }, &body(2, 1));
        assert_eq!(work.datapoints, 2);
        assert!(r.body.contains("<Timestamps/><Values/><StatusCode>Complete</StatusCode><Label>CPUUtilization</Label><Id>q1</Id>"));
    }

    #[test]
    fn more_than_500_queries_is_a_validation_error() {
        let cw = CloudWatch { instances: 1000 };
        assert_eq!(call(&cw, &body(500, 1)).0.status, 200);
        let (r, work) = call(&cw, &body(501, 1));
        assert_eq!(r.status, 400);
        assert_eq!(work.queries, 0);
        assert!(
            r.body.contains("<Code>ValidationError</Code>"),
            "{}",
            r.body
        );
        assert!(r.body.contains("must not have a size greater than 500"));
    }

    #[test]
    fn bad_ids_and_duplicates_are_rejected() {
        let cw = CloudWatch { instances: 10 };
        let dup = body(2, 1).replace(".2.Id=q1", ".2.Id=q0");
        assert!(call(&cw, &dup).0.body.contains("are not unique"));
        let upper = body(1, 1).replace(".1.Id=q0", ".1.Id=Q0");
        assert!(call(&cw, &upper)
            .0
            .body
            .contains("must start with a lowercase letter"));
        let no_start = body(1, 1).replace("StartTime=", "X=");
        assert!(call(&cw, &no_start)
            .0
            .body
            .contains("<Code>MissingParameter</Code>"));
    }
}
