//! The APIs the collector calls when their services are enabled, answered with the account's
//! identity or empty lists: STS GetCallerIdentity and RDS DescribeDBInstances (Query, XML),
//! Lambda ListFunctions and EKS ListClusters (REST JSON), S3 ListBuckets (REST XML), Cost
//! Explorer GetCostAndUsage and Pricing GetProducts (JSON 1.1).

use crate::fleet::ACCOUNT;
use crate::wire::{json_error, query_error, request_id, Reply};

const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const RDS_XMLNS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
pub const JSON_11: &str = "application/x-amz-json-1.1";

pub fn sts(action: &str) -> Reply {
    match action {
        "GetCallerIdentity" => Reply::xml(format!(
            "<GetCallerIdentityResponse xmlns=\"{STS_XMLNS}\"><GetCallerIdentityResult>\
             <Arn>arn:aws:iam::{ACCOUNT}:user/skymeter-bench</Arn><UserId>AIDASKYMETERBENCH0001</UserId>\
             <Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId>\
             </ResponseMetadata></GetCallerIdentityResponse>",
            request_id()
        )),
        a => query_error(
            400,
            STS_XMLNS,
            "InvalidAction",
            &format!("Could not find operation {a} for version 2011-06-15"),
        ),
    }
}

pub fn rds(action: &str) -> Reply {
    match action {
        "DescribeDBInstances" => Reply::xml(format!(
            "<DescribeDBInstancesResponse xmlns=\"{RDS_XMLNS}\"><DescribeDBInstancesResult><DBInstances/>\
             </DescribeDBInstancesResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>\
             </DescribeDBInstancesResponse>",
            request_id()
        )),
        a => query_error(
            400,
            RDS_XMLNS,
            "InvalidAction",
            &format!("The action {a} is not valid for this web service."),
        ),
    }
}

/// `GET /2015-03-31/functions` (the SDK writes no trailing slash; older clients do).
pub fn lambda_list_functions() -> Reply {
    Reply::json("application/json", r#"{"Functions":[]}"#.to_string())
}

/// `GET /clusters`.
pub fn eks_list_clusters() -> Reply {
    Reply::json("application/json", r#"{"clusters":[]}"#.to_string())
}

/// `GET /` (path style, no bucket).
pub fn s3_list_buckets() -> Reply {
    Reply {
        status: 200,
        content_type: "application/xml",
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult \
             xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>{}</ID></Owner><Buckets></Buckets>\
             </ListAllMyBucketsResult>",
            "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
        ),
        error_type: None,
    }
}

/// A JSON 1.1 call by its `X-Amz-Target`; the API name for the call counts and the answer.
pub fn json_target(target: &str) -> (String, Reply) {
    match target {
        "AWSInsightsIndexService.GetCostAndUsage" => (
            "ce:GetCostAndUsage".into(),
            Reply::json(
                JSON_11,
                r#"{"GroupDefinitions":[],"ResultsByTime":[],"DimensionValueAttributes":[]}"#
                    .into(),
            ),
        ),
        "AWSPriceListService.GetProducts" => (
            "pricing:GetProducts".into(),
            Reply::json(
                JSON_11,
                r#"{"FormatVersion":"aws_v1","PriceList":[]}"#.into(),
            ),
        ),
        t => (
            format!("unknown:{t}"),
            json_error(
                400,
                JSON_11,
                "UnknownOperationException",
                &format!("The stand-in does not serve {t}"),
            ),
        ),
    }
}
