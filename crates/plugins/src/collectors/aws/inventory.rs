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
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// EBS snapshots the account owns (DescribeSnapshots with `OwnerIds = ["self"]`, every
/// page). Snapshots of other owners that an answer still carries (public or shared ones, when
/// an emulator ignores `OwnerIds`) are left out by their `OwnerId` when the account is known.
pub async fn ebs_snapshots(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_ec2::Client::new(scope.sdk);
    let mut pages = client
        .describe_snapshots()
        .owner_ids("self")
        // Bounded pages (the API's maximum); without it one answer holds every snapshot.
        .max_results(1000)
        .set_filters(ec2_filters(scope))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        scope.calls.count("ec2:DescribeSnapshots");
        let page = page.map_err(|e| {
            api_error(
                "DescribeSnapshots",
                "ec2:DescribeSnapshots",
                scope.region,
                &e,
            )
        })?;
        for s in page.snapshots() {
            let Some(id) = s.snapshot_id() else { continue };
            if !scope.account.is_empty() && s.owner_id().is_some_and(|o| o != scope.account) {
                continue;
            }
            let tags = ec2_tags(s.tags());
            if !scope.wanted(&tags) {
                continue;
            }
            let attrs = Attrs::default()
                .n("size_gib", s.volume_size())
                .s("created", s.start_time().and_then(|t| rfc3339(t.secs())))
                .s("volume_id", s.volume_id())
                .s("state", s.state().map(|v| v.as_str()))
                .s(
                    "storage_tier",
                    Some(s.storage_tier().map_or("standard", |t| t.as_str())),
                )
                .b("encrypted", s.encrypted())
                .s("description", s.description());
            out.push(scope.resource(
                "storage.snapshot",
                "AWS::EC2::Snapshot",
                id.to_string(),
                tags,
                attrs,
            ));
        }
    }
    Ok(out)
}

/// Elastic IP addresses (DescribeAddresses: one answer, no pages), associated or not.
pub async fn elastic_ips(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_ec2::Client::new(scope.sdk);
    scope.calls.count("ec2:DescribeAddresses");
    let answer = client
        .describe_addresses()
        .set_filters(ec2_filters(scope))
        .send()
        .await
        .map_err(|e| {
            api_error(
                "DescribeAddresses",
                "ec2:DescribeAddresses",
                scope.region,
                &e,
            )
        })?;
    let mut out = Vec::new();
    for a in answer.addresses() {
        let Some(id) = a.allocation_id().or(a.public_ip()) else {
            continue;
        };
        let tags = ec2_tags(a.tags());
        if !scope.wanted(&tags) {
            continue;
        }
        let attrs = Attrs::default()
            .s("public_ip", a.public_ip())
            .b(
                "associated",
                Some(a.association_id().is_some_and(|i| !i.is_empty())),
            )
            .s(
                "attached_to",
                // An emulator may answer empty strings for what is not there.
                a.instance_id()
                    .or(a.network_interface_id())
                    .filter(|i| !i.is_empty())
                    .or(a.network_interface_id().filter(|i| !i.is_empty())),
            )
            .s("domain", a.domain().map(|d| d.as_str()));
        out.push(scope.resource(
            "network.public_ip",
            "AWS::EC2::EIP",
            id.to_string(),
            tags,
            attrs,
        ));
    }
    Ok(out)
}

/// NAT gateways (DescribeNatGateways, every page), in any state (a deleted one stays
/// listed for about an hour).
pub async fn nat_gateways(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_ec2::Client::new(scope.sdk);
    let mut pages = client
        .describe_nat_gateways()
        .set_filter(ec2_filters(scope))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        scope.calls.count("ec2:DescribeNatGateways");
        let page = page.map_err(|e| {
            api_error(
                "DescribeNatGateways",
                "ec2:DescribeNatGateways",
                scope.region,
                &e,
            )
        })?;
        for n in page.nat_gateways() {
            let Some(id) = n.nat_gateway_id() else {
                continue;
            };
            let tags = ec2_tags(n.tags());
            if !scope.wanted(&tags) {
                continue;
            }
            let attrs = Attrs::default()
                .s("state", n.state().map(|s| s.as_str()))
                .s("vpc_id", n.vpc_id())
                .s("subnet_id", n.subnet_id())
                .s(
                    "connectivity_type",
                    n.connectivity_type().map(|c| c.as_str()),
                )
                .s("created", n.create_time().and_then(|t| rfc3339(t.secs())));
            out.push(scope.resource(
                "network.nat_gateway",
                "AWS::EC2::NatGateway",
                id.to_string(),
                tags,
                attrs,
            ));
        }
    }
    Ok(out)
}

/// The most resource ARNs one ELBv2 DescribeTags call takes.
pub const ELB_TAGS_PER_CALL: usize = 20;

/// ELBv2 load balancers (DescribeLoadBalancers, every page) with their tags (DescribeTags,
/// 20 ARNs per call, the API's limit). The id is the ARN; `name` is the `Name` tag, else the
/// load balancer's name.
pub async fn load_balancers(scope: &Scope<'_>) -> Result<Vec<Resource>, PluginError> {
    let client = aws_sdk_elasticloadbalancingv2::Client::new(scope.sdk);
    let mut pages = client.describe_load_balancers().into_paginator().send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        scope
            .calls
            .count("elasticloadbalancing:DescribeLoadBalancers");
        let page = page.map_err(|e| {
            api_error(
                "DescribeLoadBalancers",
                "elasticloadbalancing:DescribeLoadBalancers",
                scope.region,
                &e,
            )
        })?;
        for lb in page.load_balancers() {
            let Some(arn) = lb.load_balancer_arn() else {
                continue;
            };
            let attrs = Attrs::default()
                .s("lb_type", lb.r#type().map(|t| t.as_str()))
                .s("scheme", lb.scheme().map(|s| s.as_str()))
                .s(
                    "state",
                    lb.state().and_then(|s| s.code()).map(|c| c.as_str()),
                )
                .s("dns_name", lb.dns_name())
                .s("arn", Some(arn))
                .s("vpc_id", lb.vpc_id())
                .s("created", lb.created_time().and_then(|t| rfc3339(t.secs())));
            found.push((
                arn.to_string(),
                lb.load_balancer_name().unwrap_or(arn).to_string(),
                attrs,
            ));
        }
    }
    let mut tags: HashMap<String, Labels> = HashMap::new();
    for chunk in found.chunks(ELB_TAGS_PER_CALL) {
        let _permit = scope.limit.acquire().await;
        scope.calls.count("elasticloadbalancing:DescribeTags");
        let answer = client
            .describe_tags()
            .set_resource_arns(Some(chunk.iter().map(|(arn, _, _)| arn.clone()).collect()))
            .send()
            .await
            .map_err(|e| {
                api_error(
                    "DescribeTags",
                    "elasticloadbalancing:DescribeTags",
                    scope.region,
                    &e,
                )
            })?;
        for d in answer.tag_descriptions() {
            let Some(arn) = d.resource_arn() else {
                continue;
            };
            tags.insert(
                arn.to_string(),
                d.tags()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.key()?.to_string(),
                            t.value().unwrap_or_default().to_string(),
                        ))
                    })
                    .collect(),
            );
        }
    }
    let mut out = Vec::new();
    for (arn, name, attrs) in found {
        let t = tags.remove(&arn).unwrap_or_default();
        if !scope.wanted(&t) {
            continue;
        }
        let mut res = scope.resource(
            "network.load_balancer",
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            arn,
            t,
            attrs,
        );
        if !res.tags.contains_key("Name") {
            res.name = name;
        }
        out.push(res);
    }
    Ok(out)
}
