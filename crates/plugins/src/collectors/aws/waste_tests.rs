//! The kinds that carry avoidable spend (snapshots, Elastic IPs, NAT gateways, load
//! balancers), their metrics and their estimated cost, against moto.

use super::testing::{moto, sdk};
use super::*;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use skymeter_model::Window;
use skymeter_plugin_api::config::Source as TomlSource;
use skymeter_plugin_api::{CollectRequest, Collector, MetricSelection, Output};

fn collector(text: &str) -> Aws {
    let src = TomlSource::new("aws.toml", text);
    let v = src.parse().expect("test TOML parses");
    let raw = RawConfig::new(src.clone(), v, Arc::new(Vec::new()));
    Aws::from_raw(&raw).expect("builds")
}

fn tags(resource: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let mut t = TagSpecification::builder().resource_type(resource);
    for (k, v) in pairs {
        t = t.tags(Tag::builder().key(*k).value(*v).build());
    }
    t.build()
}

async fn put(sdk: &SdkConfig, namespace: &str, metric: &str, dim: (&str, &str), at: i64, v: f64) {
    aws_sdk_cloudwatch::Client::new(sdk)
        .put_metric_data()
        .namespace(namespace)
        .metric_data(
            MetricDatum::builder()
                .metric_name(metric)
                .dimensions(Dimension::builder().name(dim.0).value(dim.1).build())
                .timestamp(AwsDateTime::from_secs(at))
                .value(v)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn api_calls(out: &Output, api: &str) -> f64 {
    out.points
        .iter()
        .find(|p| {
            p.metric == "aws.api_calls" && p.labels.get("api").map(String::as_str) == Some(api)
        })
        .map_or(0.0, |p| p.value)
}

/// A snapshot, two Elastic IPs (one on an instance), a NAT gateway, an application and a
/// network load balancer: each with its kind, attributes and tags; their CloudWatch metrics
/// with exact values; the calls per API; the tag filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_snapshots_eips_nat_and_load_balancers() {
    let Some(m) = moto("moto_snapshots_eips_nat_and_load_balancers") else {
        return;
    };
    let sdk = sdk(&m.url).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);

    let vol = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(50)
        .send()
        .await
        .unwrap();
    let snap = ec2
        .create_snapshot()
        .volume_id(vol.volume_id().unwrap())
        .description("nightly")
        .tag_specifications(tags(
            ResourceType::Snapshot,
            &[("Name", "db-nightly"), ("env", "prod")],
        ))
        .send()
        .await
        .unwrap();
    let snap_id = snap.snapshot_id().unwrap().to_string();

    let image = ec2
        .describe_images()
        .send()
        .await
        .unwrap()
        .images()
        .first()
        .and_then(|i| i.image_id())
        .unwrap()
        .to_string();
    let run = ec2
        .run_instances()
        .image_id(&image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_string();
    let idle = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .tag_specifications(tags(ResourceType::ElasticIp, &[("env", "prod")]))
        .send()
        .await
        .unwrap();
    let used = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap();
    ec2.associate_address()
        .allocation_id(used.allocation_id().unwrap())
        .instance_id(&instance)
        .send()
        .await
        .unwrap();

    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let mut subnets = Vec::new();
    for (cidr, az) in [("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b")] {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .unwrap();
        subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    let nat_ip = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap();
    let nat = ec2
        .create_nat_gateway()
        .subnet_id(&subnets[0])
        .allocation_id(nat_ip.allocation_id().unwrap())
        .tag_specifications(tags(
            ResourceType::Natgateway,
            &[("Name", "egress"), ("env", "prod")],
        ))
        .send()
        .await
        .unwrap();
    let nat_id = nat
        .nat_gateway()
        .unwrap()
        .nat_gateway_id()
        .unwrap()
        .to_string();
    // A second one, of another environment: out of the tag filter below (moto ignores `tag:`
    // filters of DescribeNatGateways; the collector checks the tags of the answer again).
    let dev_ip = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap();
    ec2.create_nat_gateway()
        .subnet_id(&subnets[1])
        .allocation_id(dev_ip.allocation_id().unwrap())
        .tag_specifications(tags(ResourceType::Natgateway, &[("env", "dev")]))
        .send()
        .await
        .unwrap();

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let mut arns = Vec::new();
    for (name, ty) in [
        (
            "web",
            aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Application,
        ),
        (
            "tcp",
            aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Network,
        ),
    ] {
        let lb = elb
            .create_load_balancer()
            .name(name)
            .r#type(ty)
            .scheme(aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::Internal)
            .set_subnets(Some(subnets.clone()))
            .tags(
                aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                    .key("env")
                    .value(if name == "web" { "prod" } else { "dev" })
                    .build(),
            )
            .send()
            .await
            .unwrap();
        arns.push(
            lb.load_balancers()[0]
                .load_balancer_arn()
                .unwrap()
                .to_string(),
        );
    }
    let suffix = |arn: &str| arn.split_once(":loadbalancer/").unwrap().1.to_string();
    let (alb, nlb) = (suffix(&arns[0]), suffix(&arns[1]));
    // Real AWS names a network load balancer `net/tcp/…`; moto 5.2.5 writes `app/` in every
    // ELBv2 ARN. The collector takes whatever follows `loadbalancer/`.
    assert!(
        alb.starts_with("app/web/") && nlb.contains("/tcp/"),
        "{alb} {nlb}"
    );

    let period = 300;
    let end = Utc::now().timestamp().div_euclid(period) * period;
    let bucket = end - period;
    for (at, out_b, in_b, conns) in [(0, 1000.0, 200.0, 7.0), (60, 3000.0, 400.0, 11.0)] {
        let d = ("NatGatewayId", nat_id.as_str());
        put(
            &sdk,
            "AWS/NATGateway",
            "BytesOutToDestination",
            d,
            bucket + at,
            out_b,
        )
        .await;
        put(
            &sdk,
            "AWS/NATGateway",
            "BytesInFromSource",
            d,
            bucket + at,
            in_b,
        )
        .await;
        put(
            &sdk,
            "AWS/NATGateway",
            "ActiveConnectionCount",
            d,
            bucket + at,
            conns,
        )
        .await;
        let a = ("LoadBalancer", alb.as_str());
        put(
            &sdk,
            "AWS/ApplicationELB",
            "RequestCount",
            a,
            bucket + at,
            5.0,
        )
        .await;
        put(
            &sdk,
            "AWS/ApplicationELB",
            "ProcessedBytes",
            a,
            bucket + at,
            1e6,
        )
        .await;
        let n = ("LoadBalancer", nlb.as_str());
        put(&sdk, "AWS/NetworkELB", "NewFlowCount", n, bucket + at, 2.0).await;
        put(
            &sdk,
            "AWS/NetworkELB",
            "ProcessedBytes",
            n,
            bucket + at,
            5e5,
        )
        .await;
    }

    let mut c = collector(
        r#"services = ["snapshots", "eips", "nat", "elb"]
delay = "0s"
cost = []"#,
    );
    c.provider_mut().set_sdk(sdk.clone());
    let req = CollectRequest {
        window: Window {
            start: chrono::TimeZone::timestamp_opt(&Utc, bucket, 0).unwrap(),
            end: chrono::TimeZone::timestamp_opt(&Utc, end, 0).unwrap(),
        },
        metrics: MetricSelection::new::<&str>(&[]).unwrap(),
        task: "t".into(),
    };
    let mut out = Output::default();
    c.collect(&req, &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let by_id = |id: &str| {
        out.resources
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no resource {id}: {:?}", out.resources))
    };

    // Only the account's own snapshot: moto's AMI snapshots belong to other owners.
    let snaps: Vec<_> = out
        .resources
        .iter()
        .filter(|r| r.kind == "storage.snapshot")
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let s = by_id(&snap_id);
    assert_eq!(s.native_type, "AWS::EC2::Snapshot");
    assert_eq!(s.name, "db-nightly");
    assert_eq!(s.attributes["size_gib"], 50);
    assert_eq!(s.attributes["volume_id"], vol.volume_id().unwrap());
    assert_eq!(s.attributes["storage_tier"], "standard");
    assert_eq!(s.attributes["description"], "nightly");
    assert_eq!(s.attributes["encrypted"], false);
    assert!(s.attributes["created"]
        .as_str()
        .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok()));

    let ip = by_id(idle.allocation_id().unwrap());
    assert_eq!(
        (ip.kind.as_str(), ip.native_type.as_str()),
        ("network.public_ip", "AWS::EC2::EIP")
    );
    assert_eq!(ip.attributes["public_ip"], idle.public_ip().unwrap());
    assert_eq!(ip.attributes["associated"], false);
    assert!(!ip.attributes.contains_key("attached_to"));
    assert_eq!(ip.attributes["domain"], "vpc");
    let ip = by_id(used.allocation_id().unwrap());
    assert_eq!(ip.attributes["associated"], true);
    assert_eq!(ip.attributes["attached_to"], instance.as_str());

    assert_eq!(
        out.resources
            .iter()
            .filter(|r| r.kind == "network.nat_gateway")
            .count(),
        2
    );
    let n = by_id(&nat_id);
    assert_eq!(
        (n.kind.as_str(), n.native_type.as_str(), n.name.as_str()),
        ("network.nat_gateway", "AWS::EC2::NatGateway", "egress")
    );
    assert_eq!(n.attributes["vpc_id"], vpc_id.as_str());
    assert_eq!(n.attributes["subnet_id"], subnets[0].as_str());
    assert_eq!(n.attributes["state"], "available");

    let web = by_id(&arns[0]);
    assert_eq!(
        (
            web.kind.as_str(),
            web.native_type.as_str(),
            web.name.as_str()
        ),
        (
            "network.load_balancer",
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "web"
        )
    );
    assert_eq!(web.attributes["lb_type"], "application");
    assert_eq!(web.attributes["arn"], arns[0].as_str());
    assert_eq!(web.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(web.attributes["scheme"], "internal");
    assert_eq!(web.attributes["state"], "active");
    for k in ["dns_name", "created"] {
        assert!(web.attributes.contains_key(k), "{k}: {web:?}");
    }
    assert_eq!(by_id(&arns[1]).attributes["lb_type"], "network");

    let point = |metric: &str, id: &str, stat: Stat| {
        let p: Vec<&Point> = out
            .points
            .iter()
            .filter(|p| p.metric == metric && p.resource.id == id && p.stat == stat)
            .collect();
        assert_eq!(p.len(), 1, "{metric} {id} {stat:?}: {p:?}");
        (p[0].value, p[0].unit, p[0].ts.timestamp())
    };
    assert_eq!(
        point("network.sent_bytes", &nat_id, Stat::Sum),
        (4000.0, Unit::Bytes, end)
    );
    assert_eq!(
        point("network.received_bytes", &nat_id, Stat::Sum),
        (600.0, Unit::Bytes, end)
    );
    assert_eq!(
        point("network.connections", &nat_id, Stat::Max),
        (11.0, Unit::Count, end)
    );
    assert_eq!(
        point("lb.requests", &arns[0], Stat::Sum),
        (10.0, Unit::Count, end)
    );
    assert_eq!(
        point("network.processed_bytes", &arns[0], Stat::Sum),
        (2e6, Unit::Bytes, end)
    );
    assert_eq!(
        point("lb.new_connections", &arns[1], Stat::Sum),
        (4.0, Unit::Count, end)
    );
    assert_eq!(
        point("network.processed_bytes", &arns[1], Stat::Sum),
        (1e6, Unit::Bytes, end)
    );
    // Only the stats these metrics have, whatever `stats` says.
    assert!(!out
        .points
        .iter()
        .any(|p| p.resource.id == nat_id.as_str() && p.stat == Stat::Avg));

    for (api, n) in [
        ("ec2:DescribeSnapshots", 1.0),
        ("ec2:DescribeAddresses", 1.0),
        ("ec2:DescribeNatGateways", 1.0),
        ("elasticloadbalancing:DescribeLoadBalancers", 1.0),
        ("elasticloadbalancing:DescribeTags", 1.0),
        // 2 × 3 NAT + 2 ALB + 2 NLB queries: one call.
        ("cloudwatch:GetMetricData", 1.0),
    ] {
        assert_eq!(api_calls(&out, api), n, "{api}");
    }

    // Estimated cost through the collector, at the shipped table's us-east-1 prices: every
    // Elastic IP by the hour, NAT gateways by the hour plus the GB the same collection read,
    // load balancers by the hour, the snapshot by its size.
    let mut c = collector(
        r#"services = ["snapshots", "eips", "nat", "elb"]
delay = "0s"
cost = ["estimated"]"#,
    );
    c.provider_mut().set_sdk(sdk.clone());
    let mut out = Output::default();
    c.collect(&req, &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let table = prices::PriceTable::shipped();
    let use1 = &table.regions["us-east-1"];
    let hours = period as f64 / 3600.0;
    let lines = |id: &str| {
        let mut l: Vec<(String, f64)> = out
            .costs
            .iter()
            .filter(|c| c.resource_id.as_deref() == Some(id))
            .map(|c| (c.sku_id.clone().unwrap_or_default(), c.billed_cost))
            .collect();
        l.sort_by(|a, b| a.0.cmp(&b.0));
        l
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    for id in [idle.allocation_id().unwrap(), used.allocation_id().unwrap()] {
        let l = lines(id);
        assert_eq!(l.len(), 1, "{id}: {l:?}");
        assert_eq!(l[0].0, "us-east-1/vpc/public_ipv4");
        assert!(
            close(l[0].1, use1.vpc.public_ipv4_hour.unwrap() * hours),
            "{l:?}"
        );
    }
    let l = lines(&nat_id);
    assert_eq!(
        l.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        [
            "us-east-1/vpc/nat_gateway",
            "us-east-1/vpc/nat_gateway/data"
        ]
    );
    assert!(
        close(l[0].1, use1.vpc.nat_gateway_hour.unwrap() * hours),
        "{l:?}"
    );
    let gb = 4600.0 / (1u64 << 30) as f64;
    assert!(
        close(l[1].1, use1.vpc.nat_gateway_gb.unwrap() * gb),
        "{l:?}"
    );
    let l = lines(&arns[0]);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "us-east-1/elb/alb");
    assert!(close(l[0].1, use1.elb.alb_hour.unwrap() * hours), "{l:?}");
    assert_eq!(lines(&arns[1])[0].0, "us-east-1/elb/nlb");
    let l = lines(&snap_id);
    assert_eq!(l[0].0, "us-east-1/ebs/snapshot/standard");
    assert!(
        close(
            l[0].1,
            50.0 * hours / 730.0 * use1.ebs.snapshot_gb_month.unwrap()
        ),
        "{l:?}"
    );

    // The tag filter: EC2 kinds by `tag:` filters, load balancers by their DescribeTags.
    let mut c = collector(
        r#"services = ["snapshots", "eips", "nat", "elb"]
tags = { env = "prod" }
delay = "0s"
cost = []"#,
    );
    c.provider_mut().set_sdk(sdk);
    let mut out = Output::default();
    c.collect(&req, &mut out).await.unwrap();
    let mut ids: Vec<&str> = out.resources.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let mut want = vec![
        snap_id.as_str(),
        idle.allocation_id().unwrap(),
        nat_id.as_str(),
        arns[0].as_str(),
    ];
    want.sort();
    assert_eq!(ids, want);
}

/// A stand-in of the ELBv2 Query API: DescribeLoadBalancers answers one application load
/// balancer; DescribeTags answers AccessDenied when `deny_tags`, and every call does when
/// `deny_all`.
async fn elb_stand_in(deny_all: bool, deny_tags: bool) -> String {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| async move {
        let body = String::from_utf8_lossy(&body).to_string();
        let denied = (
            StatusCode::FORBIDDEN,
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>stand-in says no</Message></Error><RequestId>r1</RequestId></ErrorResponse>",
        )
            .into_response();
        if deny_all || (deny_tags && body.contains("Action=DescribeTags")) {
            return denied;
        }
        if body.contains("Action=DescribeLoadBalancers") {
            return (
                StatusCode::OK,
                "<DescribeLoadBalancersResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeLoadBalancersResult><LoadBalancers><member><LoadBalancerArn>arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188</LoadBalancerArn><LoadBalancerName>web</LoadBalancerName><Type>application</Type><Scheme>internet-facing</Scheme><State><Code>active</Code></State><DNSName>web-1.us-east-1.elb.amazonaws.com</DNSName></member></LoadBalancers></DescribeLoadBalancersResult><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></DescribeLoadBalancersResponse>",
            )
                .into_response();
        }
        if body.contains("Action=DescribeTags") {
            return (
                StatusCode::OK,
                "<DescribeTagsResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeTagsResult><TagDescriptions><member><ResourceArn>arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188</ResourceArn><Tags><member><Key>env</Key><Value>prod</Value></member></Tags></member></TagDescriptions></DescribeTagsResult><ResponseMetadata><RequestId>r3</RequestId></ResponseMetadata></DescribeTagsResponse>",
            )
                .into_response();
        }
        (StatusCode::BAD_REQUEST, "unexpected").into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A denied DescribeLoadBalancers or DescribeTags names the call and the IAM action to
/// grant; the load balancer is not reported without the tags it may be filtered by.
#[tokio::test]
async fn denied_load_balancer_calls_name_the_iam_action() {
    for (deny_all, api) in [(true, "DescribeLoadBalancers"), (false, "DescribeTags")] {
        let url = elb_stand_in(deny_all, true).await;
        let mut c = collector(
            r#"regions = ["us-east-1"]
accounts = [{ id = "111122223333" }]
services = ["elb"]
cost = []"#,
        );
        c.provider_mut().set_sdk(sdk(&url).await);
        let req = CollectRequest {
            window: Window {
                start: chrono::TimeZone::timestamp_opt(&Utc, 0, 0).unwrap(),
                end: chrono::TimeZone::timestamp_opt(&Utc, 300, 0).unwrap(),
            },
            metrics: MetricSelection::new::<&str>(&[]).unwrap(),
            task: "t".into(),
        };
        let mut out = Output::default();
        let e = c.collect(&req, &mut out).await.unwrap_err();
        assert_eq!(e.kind, skymeter_plugin_api::ErrorKind::Permission, "{e:?}");
        assert!(
            e.message.starts_with(&format!(
                "{api} was denied: grant the IAM action elasticloadbalancing:{api}"
            )),
            "{}",
            e.message
        );
        assert_eq!(e.context.get("api").map(String::as_str), Some(api));
        assert!(out.resources.is_empty(), "{:?}", out.resources);
    }
    // Allowed: the answer's load balancer, named by its name, with its ARN as id.
    let url = elb_stand_in(false, false).await;
    let mut c = collector(
        r#"regions = ["us-east-1"]
accounts = [{ id = "111122223333" }]
services = ["elb"]
cost = []"#,
    );
    c.provider_mut().set_sdk(sdk(&url).await);
    let req = CollectRequest {
        window: Window {
            start: chrono::TimeZone::timestamp_opt(&Utc, 0, 0).unwrap(),
            end: chrono::TimeZone::timestamp_opt(&Utc, 300, 0).unwrap(),
        },
        metrics: MetricSelection::new::<&str>(&["aws.*"]).unwrap(),
        task: "t".into(),
    };
    let mut out = Output::default();
    c.collect(&req, &mut out).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.resources.len(), 1);
    let lb = &out.resources[0];
    assert_eq!(
        lb.id,
        "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188"
    );
    assert_eq!(lb.name, "web");
    assert_eq!(lb.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(lb.attributes["scheme"], "internet-facing");
    assert_eq!(lb.attributes["lb_type"], "application");
    assert_eq!(
        api_calls(&out, "elasticloadbalancing:DescribeLoadBalancers"),
        1.0
    );
    assert_eq!(api_calls(&out, "elasticloadbalancing:DescribeTags"), 1.0);
}
