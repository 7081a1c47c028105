//! Discovery: every page of every list, for the services asked. Each function returns the
//! resources of one account and region (S3: of one account, every region), or the error of
//! the call that failed, naming the IAM action to grant.

use super::calls::ApiCalls;
use super::errors::api_error;
use crate::cloud::Attrs;
use aws_config::SdkConfig;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use skymeter_model::{Labels, Resource};
use skymeter_plugin_api::PluginError;
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::Semaphore;

/// Where a discovery runs: one account and region, with the SDK config for them.
pub struct Scope<'a> {
    pub account: &'a str,
    pub region: &'a str,
    /// Region already set to `region`.
    pub sdk: &'a SdkConfig,
    pub calls: &'a ApiCalls,
    /// Only resources with all these tags.
    pub tags: &'a BTreeMap<String, String>,
    /// Bounds the per-resource Describe calls (EKS, Lambda and S3 tags) in flight.
    pub limit: &'a Semaphore,
    pub now: DateTime<Utc>,
}

impl Scope<'_> {
    fn resource(
        &self,
        kind: &str,
        native_type: &str,
        id: String,
        tags: Labels,
        attributes: Attrs,
    ) -> Resource {
        Resource {
            provider: "aws".into(),
            account: self.account.to_string(),
            region: self.region.to_string(),
            kind: kind.into(),
            native_type: native_type.into(),
            name: tags.get("Name").cloned().unwrap_or_else(|| id.clone()),
            id,
            tags,
            attributes: attributes.0,
            observed_at: self.now,
        }
    }

    fn wanted(&self, tags: &Labels) -> bool {
        self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

fn rfc3339(secs: i64) -> Option<String> {
    Utc.timestamp_opt(secs, 0).single().map(|d| d.to_rfc3339())
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Labels {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn ec2_filters(scope: &Scope<'_>) -> Option<Vec<aws_sdk_ec2::types::Filter>> {
    let f: Vec<_> = scope
        .tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{k}"))
                .values(v)
                .build()
        })
        .collect();
    (!f.is_empty()).then_some(f)
}

/// EC2 instances (DescribeInstances, every page), with the vCPUs and memory of their types
/// filled in by [`instance_types`].
pub async fn ec2_instances(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_ec2::Client::new(scope.sdk);
    let mut pages = client
        .describe_instances()
        .set_filters(ec2_filters(scope))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        scope.calls.count("ec2:DescribeInstances");
        let page = page.map_err(|e| {
            api_error(
                "DescribeInstances",
                "ec2:DescribeInstances",
                scope.region,
                &e,
            )
        })?;
        for r in page.reservations() {
            for i in r.instances() {
                let Some(id) = i.instance_id() else { continue };
                let attrs = Attrs::default()
                    .s("instance_type", i.instance_type().map(|t| t.as_str()))
                    .s(
                        "state",
                        i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                    )
                    .s(
                        "availability_zone",
                        i.placement().and_then(|p| p.availability_zone()),
                    )
                    .s(
                        "tenancy",
                        Some(
                            i.placement()
                                .and_then(|p| p.tenancy())
                                .map_or("default", |t| t.as_str()),
                        ),
                    )
                    .s(
                        "lifecycle",
                        Some(i.instance_lifecycle().map_or("on-demand", |l| l.as_str())),
                    )
                    .s(
                        "platform",
                        Some(i.platform_details().unwrap_or("Linux/UNIX")),
                    )
                    .s(
                        "launch_time",
                        i.launch_time().and_then(|t| rfc3339(t.secs())),
                    )
                    .s("private_ip", i.private_ip_address())
                    .s("public_ip", i.public_ip_address());
                let mut res = scope.resource(
                    "compute.instance",
                    "AWS::EC2::Instance",
                    id.to_string(),
                    ec2_tags(i.tags()),
                    attrs,
                );
                if res.account.is_empty() {
                    res.account = r.owner_id().unwrap_or_default().to_string();
                }
                out.push(res);
            }
        }
    }
    Ok(out)
}

/// Sets `vcpus` and `memory_mib` of `instances` from DescribeInstanceTypes, asked once for
/// the distinct types (up to 100 per call, the API's limit).
pub async fn instance_types(
    scope: &Scope<'_>,
    instances: &mut [Resource],
) -> Result<(), PluginError> {
    let types: BTreeSet<String> = instances
        .iter()
        .filter_map(|r| {
            r.attributes
                .get("instance_type")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    if types.is_empty() {
        return Ok(());
    }
    let client = aws_sdk_ec2::Client::new(scope.sdk);
    let mut sizes: BTreeMap<String, (Option<i32>, Option<i64>)> = BTreeMap::new();
    let types: Vec<String> = types.into_iter().collect();
    for chunk in types.chunks(100) {
        let mut pages = client
            .describe_instance_types()
            .set_instance_types(Some(
                chunk
                    .iter()
                    .map(|t| aws_sdk_ec2::types::InstanceType::from(t.as_str()))
                    .collect(),
            ))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            scope.calls.count("ec2:DescribeInstanceTypes");
            let page = page.map_err(|e| {
                api_error(
                    "DescribeInstanceTypes",
                    "ec2:DescribeInstanceTypes",
                    scope.region,
                    &e,
                )
            })?;
            for t in page.instance_types() {
                let Some(name) = t.instance_type() else {
                    continue;
                };
                sizes.insert(
                    name.as_str().to_string(),
                    (
                        t.v_cpu_info().and_then(|v| v.default_v_cpus()),
                        t.memory_info().and_then(|m| m.size_in_mib()),
                    ),
                );
            }
        }
    }
    for r in instances {
        let Some((vcpus, mib)) = r
            .attributes
            .get("instance_type")
            .and_then(Value::as_str)
            .and_then(|t| sizes.get(t))
        else {
            continue;
        };
        if let Some(v) = vcpus {
            r.attributes.insert("vcpus".into(), Value::from(*v));
        }
        if let Some(m) = mib {
            r.attributes.insert("memory_mib".into(), Value::from(*m));
        }
    }
    Ok(())
}

/// EBS volumes (DescribeVolumes, every page), attached or not.
pub async fn ebs_volumes(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_ec2::Client::new(scope.sdk);
    let mut pages = client
        .describe_volumes()
        .set_filters(ec2_filters(scope))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        scope.calls.count("ec2:DescribeVolumes");
        let page = page
            .map_err(|e| api_error("DescribeVolumes", "ec2:DescribeVolumes", scope.region, &e))?;
        for v in page.volumes() {
            let Some(id) = v.volume_id() else { continue };
            let attrs = Attrs::default()
                .s("volume_type", v.volume_type().map(|t| t.as_str()))
                .n("size_gib", v.size())
                .n("iops", v.iops())
                .n("throughput_mibps", v.throughput())
                .s("state", v.state().map(|s| s.as_str()))
                .s(
                    "attached_to",
                    v.attachments().iter().find_map(|a| a.instance_id()),
                )
                .s("availability_zone", v.availability_zone())
                .b("encrypted", v.encrypted());
            out.push(scope.resource(
                "storage.volume",
                "AWS::EC2::Volume",
                id.to_string(),
                ec2_tags(v.tags()),
                attrs,
            ));
        }
    }
    Ok(out)
}

/// RDS DB instances (DescribeDBInstances, every page). Tags come with the answer and are
/// filtered here.
pub async fn rds_instances(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_rds::Client::new(scope.sdk);
    let mut pages = client.describe_db_instances().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        scope.calls.count("rds:DescribeDBInstances");
        let page = page.map_err(|e| {
            api_error(
                "DescribeDBInstances",
                "rds:DescribeDBInstances",
                scope.region,
                &e,
            )
        })?;
        for d in page.db_instances() {
            let Some(id) = d.db_instance_identifier() else {
                continue;
            };
            let tags: Labels = d
                .tag_list()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect();
            if !scope.wanted(&tags) {
                continue;
            }
            let attrs = Attrs::default()
                .s("instance_class", d.db_instance_class())
                .s("engine", d.engine())
                .s("engine_version", d.engine_version())
                .s("status", d.db_instance_status())
                .b("multi_az", d.multi_az())
                .n("allocated_storage_gib", d.allocated_storage())
                .s("storage_type", d.storage_type())
                .s("availability_zone", d.availability_zone())
                .s("arn", d.db_instance_arn());
            out.push(scope.resource(
                "database.instance",
                "AWS::RDS::DBInstance",
                id.to_string(),
                tags,
                attrs,
            ));
        }
    }
    Ok(out)
}

/// Lambda functions (ListFunctions, every page). ListFunctions carries no tags, so with a
/// tag filter each function's tags are read with ListTags (bounded by `scope.limit`).
pub async fn lambda_functions(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_lambda::Client::new(scope.sdk);
    let mut pages = client.list_functions().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        scope.calls.count("lambda:ListFunctions");
        let page =
            page.map_err(|e| api_error("ListFunctions", "lambda:ListFunctions", scope.region, &e))?;
        for f in page.functions() {
            let Some(name) = f.function_name() else {
                continue;
            };
            let arch = f
                .architectures()
                .first()
                .map_or("x86_64", |a| a.as_str())
                .to_string();
            let attrs = Attrs::default()
                .s("runtime", f.runtime().map(|r| r.as_str()))
                .n("memory_mb", f.memory_size())
                .s("architecture", Some(arch))
                .n("timeout_s", f.timeout())
                .n("code_size_bytes", Some(f.code_size() as f64))
                .s("arn", f.function_arn())
                .s("last_modified", f.last_modified());
            out.push(scope.resource(
                "function",
                "AWS::Lambda::Function",
                name.to_string(),
                Labels::new(),
                attrs,
            ));
        }
    }
    if !scope.tags.is_empty() {
        let mut kept = Vec::with_capacity(out.len());
        for mut r in out {
            let Some(arn) = r.attributes.get("arn").and_then(Value::as_str) else {
                continue;
            };
            let _permit = scope.limit.acquire().await;
            scope.calls.count("lambda:ListTags");
            let tags = client
                .list_tags()
                .resource(arn)
                .send()
                .await
                .map_err(|e| api_error("ListTags", "lambda:ListTags", scope.region, &e))?;
            r.tags = tags
                .tags()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            if scope.wanted(&r.tags) {
                kept.push(r);
            }
        }
        out = kept;
    }
    Ok(out)
}

/// EKS clusters (ListClusters, DescribeCluster) and their managed node groups
/// (ListNodegroups, DescribeNodegroup), every page.
pub async fn eks_clusters(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_eks::Client::new(scope.sdk);
    let mut names = Vec::new();
    let mut pages = client.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        scope.calls.count("eks:ListClusters");
        let page =
            page.map_err(|e| api_error("ListClusters", "eks:ListClusters", scope.region, &e))?;
        names.extend(page.clusters().iter().cloned());
    }
    let mut out = Vec::new();
    for name in names {
        let cluster = {
            let _permit = scope.limit.acquire().await;
            scope.calls.count("eks:DescribeCluster");
            client
                .describe_cluster()
                .name(&name)
                .send()
                .await
                .map_err(|e| {
                    api_error("DescribeCluster", "eks:DescribeCluster", scope.region, &e)
                })?
        };
        let Some(c) = cluster.cluster() else { continue };
        let tags: Labels = c
            .tags()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        if !scope.wanted(&tags) {
            continue;
        }
        let attrs = Attrs::default()
            .s("version", c.version())
            .s("status", c.status().map(|s| s.as_str()))
            .s("platform_version", c.platform_version())
            .s("arn", c.arn())
            .s("created", c.created_at().and_then(|t| rfc3339(t.secs())));
        let mut res = scope.resource(
            "k8s.cluster",
            "AWS::EKS::Cluster",
            name.clone(),
            tags,
            attrs,
        );
        res.name = name.clone();
        out.push(res);

        let mut groups = Vec::new();
        let mut pages = client
            .list_nodegroups()
            .cluster_name(&name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            scope.calls.count("eks:ListNodegroups");
            let page = page
                .map_err(|e| api_error("ListNodegroups", "eks:ListNodegroups", scope.region, &e))?;
            groups.extend(page.nodegroups().iter().cloned());
        }
        for g in groups {
            let _permit = scope.limit.acquire().await;
            scope.calls.count("eks:DescribeNodegroup");
            let answer = client
                .describe_nodegroup()
                .cluster_name(&name)
                .nodegroup_name(&g)
                .send()
                .await
                .map_err(|e| {
                    api_error(
                        "DescribeNodegroup",
                        "eks:DescribeNodegroup",
                        scope.region,
                        &e,
                    )
                })?;
            let Some(n) = answer.nodegroup() else {
                continue;
            };
            let tags: Labels = n
                .tags()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let scaling = n.scaling_config();
            let attrs = Attrs::default()
                .s("cluster", Some(name.clone()))
                .v("instance_types", Value::from(n.instance_types().to_vec()))
                .n("desired_size", scaling.and_then(|s| s.desired_size()))
                .n("min_size", scaling.and_then(|s| s.min_size()))
                .n("max_size", scaling.and_then(|s| s.max_size()))
                .s("capacity_type", n.capacity_type().map(|c| c.as_str()))
                .s("status", n.status().map(|s| s.as_str()))
                .s("arn", n.nodegroup_arn());
            let mut res = scope.resource(
                "k8s.node_group",
                "AWS::EKS::Nodegroup",
                format!("{name}/{g}"),
                tags,
                attrs,
            );
            res.name = g.clone();
            out.push(res);
        }
    }
    Ok(out)
}

/// S3 buckets of the account (ListBuckets, every page), each with its region: from
/// ListBuckets' `BucketRegion` where the answer has it, else GetBucketLocation. With a tag
/// filter, each bucket's tags are read with GetBucketTagging. `scope.region` is the region
/// the calls go to; the buckets carry their own.
pub async fn s3_buckets(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    // With an endpoint override (an emulator, an S3-compatible store) buckets go in the path:
    // virtual-host names such as `bucket.127.0.0.1` do not resolve.
    let conf = aws_sdk_s3::config::Builder::from(scope.sdk)
        .force_path_style(scope.sdk.endpoint_url().is_some())
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    let mut pages = client.list_buckets().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        scope.calls.count("s3:ListBuckets");
        let page =
            page.map_err(|e| api_error("ListBuckets", "s3:ListAllMyBuckets", scope.region, &e))?;
        for b in page.buckets() {
            let Some(name) = b.name() else { continue };
            let region = match b.bucket_region() {
                Some(r) if !r.is_empty() => r.to_string(),
                _ => {
                    let _permit = scope.limit.acquire().await;
                    scope.calls.count("s3:GetBucketLocation");
                    let loc = client
                        .get_bucket_location()
                        .bucket(name)
                        .send()
                        .await
                        .map_err(|e| {
                            api_error(
                                "GetBucketLocation",
                                "s3:GetBucketLocation",
                                scope.region,
                                &e,
                            )
                        })?;
                    // An empty constraint is us-east-1; "EU" is the old name of eu-west-1.
                    match loc.location_constraint().map(|c| c.as_str()) {
                        None | Some("") => "us-east-1".to_string(),
                        Some("EU") => "eu-west-1".to_string(),
                        Some(r) => r.to_string(),
                    }
                }
            };
            let mut tags = Labels::new();
            if !scope.tags.is_empty() {
                let _permit = scope.limit.acquire().await;
                scope.calls.count("s3:GetBucketTagging");
                match client.get_bucket_tagging().bucket(name).send().await {
                    Ok(t) => {
                        tags = t
                            .tag_set()
                            .iter()
                            .map(|t| (t.key().to_string(), t.value().to_string()))
                            .collect()
                    }
                    // A bucket without tags answers NoSuchTagSet.
                    Err(e)
                        if aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                            == Some("NoSuchTagSet") => {}
                    Err(e) => {
                        return Err(api_error(
                            "GetBucketTagging",
                            "s3:GetBucketTagging",
                            scope.region,
                            &e,
                        ))
                    }
                }
                if !scope.wanted(&tags) {
                    continue;
                }
            }
            let attrs =
                Attrs::default().s("created", b.creation_date().and_then(|t| rfc3339(t.secs())));
            let mut res = scope.resource(
                "storage.bucket",
                "AWS::S3::Bucket",
                name.to_string(),
                tags,
                attrs,
            );
            res.region = region;
            res.name = name.to_string();
            out.push(res);
        }
    }
    Ok(out)
}
