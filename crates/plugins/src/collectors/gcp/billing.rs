//! Billed cost from the Cloud Billing export to BigQuery: one `jobs.query` (standard SQL,
//! named parameters) and every page of `jobs.getQueryResults`, daily sums of `cost` and of
//! the credits grouped by service, project, region and currency (and by resource with the
//! detailed export), as FOCUS cost lines with `x_source = "billed"`.

use super::client::{Api, Call};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use skymeter_model::{ChargeCategory, Cost};
use skymeter_plugin_api::{ErrorKind, PluginError};

pub const QUERY: Call = Call {
    api: "bigquery.jobs.query",
    permission: "bigquery.jobs.create (on the billing project) and bigquery.tables.getData (on the export dataset)",
    role: "roles/bigquery.jobUser on the project plus roles/bigquery.dataViewer on the dataset",
};
pub const RESULTS: Call = Call {
    api: "bigquery.jobs.getQueryResults",
    permission: "bigquery.jobs.get (on the billing project)",
    role: "roles/bigquery.jobUser",
};

pub const PROVIDER_NAME: &str = skymeter_model::provider::GCP.focus_name;

/// How many times an unfinished query is polled before giving up.
const MAX_POLLS: usize = 30;

/// `project.dataset.table` of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

impl TableName {
    pub fn parse(s: &str) -> Option<TableName> {
        let s = s.trim_matches('`');
        let mut it = s.splitn(3, '.');
        let (p, d, t) = (it.next()?, it.next()?, it.next()?);
        let ok = |x: &str, extra: &[char]| {
            !x.is_empty()
                && x.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
        };
        (ok(p, &['-', ':', '.']) && ok(d, &[]) && ok(t, &[])).then(|| TableName {
            project: p.into(),
            dataset: d.into(),
            table: t.into(),
        })
    }

    /// The detailed (resource-level) export: `gcp_billing_export_resource_v1_…`.
    pub fn detailed(&self) -> bool {
        self.table.starts_with("gcp_billing_export_resource_v1_")
    }
}

/// What to read: the table, the project running the job, and the days `[start, end)`.
#[derive(Debug, Clone)]
pub struct BilledQuery {
    pub table: TableName,
    pub job_project: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl BilledQuery {
    /// The last `days` days up to today included (UTC).
    pub fn new(
        table: TableName,
        job_project: Option<String>,
        now: DateTime<Utc>,
        days: u32,
    ) -> Self {
        let end = now.date_naive() + Days::new(1);
        BilledQuery {
            job_project: job_project.unwrap_or_else(|| table.project.clone()),
            start: end - Days::new(u64::from(days.max(1))),
            end,
            table,
        }
    }

    /// The standard SQL of the query. The table name is checked by [`TableName::parse`]
    /// (letters, digits, `_`, `-`), so quoting it in backticks is safe; dates are parameters.
    pub fn sql(&self) -> String {
        let t = &self.table;
        let (res_sel, res_group) = if t.detailed() {
            (", resource.global_name AS resource", ", resource")
        } else {
            ("", "")
        };
        format!(
            "SELECT FORMAT_DATE('%Y-%m-%d', DATE(usage_start_time)) AS day, service.description AS service, \
             project.id AS project, location.region AS region, currency{res_sel}, SUM(cost) AS cost, \
             SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS credits \
             FROM `{}.{}.{}` \
             WHERE usage_start_time >= TIMESTAMP(@start_day) AND usage_start_time < TIMESTAMP(@end_day) \
             GROUP BY day, service, project, region, currency{res_group} \
             ORDER BY day, service, project, region{res_group}",
            t.project, t.dataset, t.table
        )
    }

    /// The `jobs.query` request body (QueryRequest).
    pub fn body(&self) -> Value {
        let date = |name: &str, d: NaiveDate| {
            json!({
                "name": name,
                "parameterType": { "type": "DATE" },
                "parameterValue": { "value": d.format("%Y-%m-%d").to_string() }
            })
        };
        json!({
            "query": self.sql(),
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": [date("start_day", self.start), date("end_day", self.end)],
            "maxResults": 10000,
            "timeoutMs": 60000
        })
    }
}

/// QueryResponse / GetQueryResultsResponse: the parts read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    schema: Option<Schema>,
    #[serde(default)]
    job_reference: Option<JobReference>,
    #[serde(default)]
    rows: Vec<Row>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    job_complete: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Schema {
    #[serde(default)]
    fields: Vec<Field>,
}

#[derive(Debug, Deserialize)]
struct Field {
    name: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct JobReference {
    job_id: String,
    #[serde(default)]
    location: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Row {
    f: Vec<Cell>,
}

#[derive(Debug, Deserialize)]
struct Cell {
    v: Value,
}

/// Runs the query and reads every page. Returns every cost line, or the error of the call
/// that failed (a partial result would under-report a day).
pub async fn billed_costs(api: &Api, q: &BilledQuery) -> Result<Vec<Cost>, PluginError> {
    let ctx = |e: PluginError| {
        e.with(
            "billing_export_table",
            format!("{}.{}.{}", q.table.project, q.table.dataset, q.table.table),
        )
    };
    let base = api.url(
        "bigquery.googleapis.com",
        &format!("/bigquery/v2/projects/{}/queries", q.job_project),
    );
    let mut answer: Answer = api.post(&QUERY, &base, &q.body()).await.map_err(ctx)?;
    let job = answer.job_reference.clone().ok_or_else(|| {
        ctx(PluginError::new(
            ErrorKind::BadResponse,
            "bigquery.jobs.query answered without a jobReference",
        ))
    })?;
    let url = format!("{base}/{}", job.job_id);
    let mut params: Vec<(&str, String)> = vec![
        ("maxResults", "10000".into()),
        ("timeoutMs", "60000".into()),
    ];
    if let Some(l) = &job.location {
        params.push(("location", l.clone()));
    }
    let mut polls = 0;
    while answer.job_complete == Some(false) {
        polls += 1;
        if polls > MAX_POLLS {
            return Err(ctx(PluginError::new(
                ErrorKind::Timeout,
                format!("the billing query (job {}) did not finish after {MAX_POLLS} polls of bigquery.jobs.getQueryResults", job.job_id),
            )));
        }
        answer = api.get(&RESULTS, &url, &params).await.map_err(ctx)?;
    }
    let mut columns: Vec<String> = answer
        .schema
        .as_ref()
        .map(|s| s.fields.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    loop {
        if columns.is_empty() {
            if let Some(s) = &answer.schema {
                columns = s.fields.iter().map(|f| f.name.clone()).collect();
            }
        }
        for row in &answer.rows {
            if let Some(c) = to_cost(&columns, row) {
                out.push(c);
            }
        }
        match answer.page_token.take() {
            Some(t) if !t.is_empty() => {
                let mut p = params.clone();
                p.push(("pageToken", t));
                answer = api.get(&RESULTS, &url, &p).await.map_err(ctx)?;
            }
            _ => return Ok(out),
        }
    }
}

fn to_cost(columns: &[String], row: &Row) -> Option<Cost> {
    let get = |name: &str| -> Option<&Value> {
        let i = columns.iter().position(|c| c == name)?;
        row.f.get(i).map(|c| &c.v).filter(|v| !v.is_null())
    };
    let text = |name: &str| get(name).and_then(Value::as_str).map(str::to_string);
    let num = |name: &str| {
        get(name).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let day = NaiveDate::parse_from_str(&text("day")?, "%Y-%m-%d").ok()?;
    let cost = num("cost").unwrap_or(0.0);
    let credits = num("credits").unwrap_or(0.0);
    let service = text("service").unwrap_or_default();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let category = if service.eq_ignore_ascii_case("Tax") {
        ChargeCategory::Tax
    } else {
        ChargeCategory::Usage
    };
    Some(Cost {
        service_category: service_category(&service).map(str::to_string),
        sub_account_id: text("project"),
        region_id: text("region"),
        resource_id: text("resource"),
        ..Cost::billed(
            PROVIDER_NAME,
            category,
            cost,
            cost + credits,
            text("currency").unwrap_or_else(|| "USD".into()),
            midnight(day),
            midnight(day + Days::new(1)),
            service,
        )
    })
}

/// FOCUS ServiceCategory of the export's `service.description`, for the common services.
fn service_category(service: &str) -> Option<&'static str> {
    Some(match service {
        "Compute Engine" | "Kubernetes Engine" | "Cloud Functions" | "Cloud Run" | "App Engine" => {
            "Compute"
        }
        "Cloud Storage" | "Filestore" => "Storage",
        "Cloud SQL" | "Cloud Spanner" | "Cloud Bigtable" | "Firestore" | "AlloyDB" => "Databases",
        "Networking" | "Cloud CDN" | "Cloud DNS" | "Cloud Load Balancing" => "Networking",
        "BigQuery" | "Dataflow" | "Dataproc" | "Pub/Sub" => "Analytics",
        "Cloud Monitoring" | "Cloud Logging" => "Management and Governance",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        let t =
            TableName::parse("my-billing.billing.gcp_billing_export_v1_01AB_02CD_03EF").unwrap();
        assert_eq!(t.project, "my-billing");
        assert!(!t.detailed());
        assert!(TableName::parse("p.d.gcp_billing_export_resource_v1_X")
            .unwrap()
            .detailed());
        assert!(TableName::parse("p.d").is_none());
        assert!(TableName::parse("p.d.t`; DROP").is_none());
    }

    #[test]
    fn query_days_and_sql() {
        let now = DateTime::parse_from_rfc3339("2024-03-10T12:00:00Z")
            .unwrap()
            .to_utc();
        let q = BilledQuery::new(
            TableName::parse("p.d.gcp_billing_export_resource_v1_X").unwrap(),
            None,
            now,
            3,
        );
        assert_eq!(q.start.to_string(), "2024-03-08");
        assert_eq!(q.end.to_string(), "2024-03-11");
        assert_eq!(q.job_project, "p");
        let sql = q.sql();
        assert!(
            sql.contains("FROM `p.d.gcp_billing_export_resource_v1_X`"),
            "{sql}"
        );
        assert!(sql.contains("resource.global_name AS resource"), "{sql}");
        let b = q.body();
        assert_eq!(
            b["queryParameters"][0]["parameterValue"]["value"],
            "2024-03-08"
        );
        assert_eq!(b["useLegacySql"], false);
    }
}
