//! EC2 Query API (`Version=2016-11-15`): DescribeInstances, DescribeInstanceTypes,
//! DescribeRegions, DescribeVolumes, and an empty answer for every other `Describe*`.
//! Element names are those aws-sdk-ec2's deserializers read (`reservationSet/item`,
//! `instancesSet/item`, `tagSet/item`, `nextToken`, …).

use crate::fleet::{self, Instance, ACCOUNT, INSTANCE_TYPES};
use crate::wire::{ec2_error, escape, request_id, Form, Reply};
use std::fmt::Write;

const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// DescribeInstances answers at most this many instances per page, MaxResults or not.
pub const INSTANCES_PER_PAGE: usize = 1000;

/// The account's regions for DescribeRegions (the stand-in's own region is always one).
const REGIONS: [&str; 8] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
];

pub struct Ec2 {
    pub instances: u64,
    pub region: String,
}

impl Ec2 {
    /// Answers one EC2 action; the API name for the call counts is `ec2:ACTION`.
    pub fn handle(&self, action: &str, form: &Form<'_>) -> Reply {
        match action {
            "DescribeInstances" => self.describe_instances(form),
            "DescribeInstanceTypes" => describe_instance_types(form),
            "DescribeRegions" => self.describe_regions(form),
            "DescribeVolumes" => Reply::xml(format!(
                "<DescribeVolumesResponse xmlns=\"{XMLNS}\"><requestId>{}</requestId>\
                 <volumeSet/></DescribeVolumesResponse>",
                request_id()
            )),
            a if a.starts_with("Describe") => Reply::xml(format!(
                "<{a}Response xmlns=\"{XMLNS}\"><requestId>{}</requestId></{a}Response>",
                request_id()
            )),
            a => ec2_error(
                "InvalidAction",
                &format!("The action {a} is not valid for this web service."),
            ),
        }
    }

    fn describe_instances(&self, form: &Form<'_>) -> Reply {
        let page_size = match form.get("MaxResults") {
            None => INSTANCES_PER_PAGE,
            Some(m) => match m.parse::<usize>() {
                Ok(n) if (5..=1000).contains(&n) => n,
                _ => {
                    return ec2_error(
                        "InvalidParameterValue",
                        &format!("Value ( {m} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."),
                    )
                }
            },
        };
        let skip = match form.get("NextToken") {
            None | Some("") => 0,
            Some(t) => match t
                .strip_prefix("standin-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => n,
                None => {
                    return ec2_error(
                        "InvalidParameterValue",
                        &format!("The parameter NextToken is invalid: {t}"),
                    )
                }
            },
        };
        let filters = form.filters();
        for (name, _) in &filters {
            if !(name.starts_with("tag:")
                || matches!(
                    name.as_str(),
                    "tag-key"
                        | "instance-state-name"
                        | "instance-type"
                        | "availability-zone"
                        | "instance-id"
                ))
            {
                return ec2_error(
                    "InvalidParameterValue",
                    &format!("The filter '{name}' is invalid"),
                );
            }
        }
        let ids = form.list("InstanceId");
        for id in &ids {
            if !fleet::instance_number(id).is_some_and(|n| (1..=self.instances).contains(&n)) {
                return ec2_error(
                    "InvalidInstanceID.NotFound",
                    &format!("The instance ID '{id}' does not exist"),
                );
            }
        }

        let mut body = String::with_capacity(page_size.min(self.instances as usize) * 2200 + 512);
        let _ = write!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"{XMLNS}\">\
             <requestId>{}</requestId><reservationSet>",
            request_id()
        );
        let mut matched = 0usize;
        let mut written = 0usize;
        let mut more = false;
        for n in 1..=self.instances {
            let i = fleet::instance(n, &self.region);
            if !ids.is_empty() && !ids.contains(&i.id.as_str()) {
                continue;
            }
            if !filters
                .iter()
                .all(|(name, values)| matches_filter(&i, name, values))
            {
                continue;
            }
            matched += 1;
            if matched <= skip {
                continue;
            }
            if written == page_size {
                more = true;
                break;
            }
            write_reservation(&mut body, &i);
            written += 1;
        }
        body.push_str("</reservationSet>");
        if more {
            let _ = write!(body, "<nextToken>standin-{}</nextToken>", skip + written);
        }
        body.push_str("</DescribeInstancesResponse>");
        Reply::xml(body)
    }

    fn describe_regions(&self, form: &Form<'_>) -> Reply {
        let wanted = form.list("RegionName");
        let mut regions: Vec<&str> = vec![self.region.as_str()];
        regions.extend(REGIONS.iter().copied().filter(|r| *r != self.region));
        let mut body = format!(
            "<DescribeRegionsResponse xmlns=\"{XMLNS}\"><requestId>{}</requestId><regionInfo>",
            request_id()
        );
        for r in regions {
            if !wanted.is_empty() && !wanted.contains(&r) {
                continue;
            }
            let _ = write!(
                body,
                "<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint>\
                 <optInStatus>opt-in-not-required</optInStatus></item>"
            );
        }
        body.push_str("</regionInfo></DescribeRegionsResponse>");
        Reply::xml(body)
    }
}

fn matches_filter(i: &Instance, name: &str, values: &[String]) -> bool {
    let any = |v: &str| values.iter().any(|w| w == v);
    match name {
        "instance-state-name" => any("running"),
        "instance-type" => any(i.itype.name),
        "availability-zone" => any(&i.availability_zone),
        "instance-id" => any(&i.id),
        "tag-key" => any("Name") || any("env"),
        "tag:Name" => any(&i.name),
        "tag:env" => any(i.env),
        // A tag the fleet's instances do not have.
        _ => false,
    }
}

/// One reservation holding one instance, with the fields a real answer carries (block
/// device, security group, CPU options) so the client parses a realistic amount of XML.
fn write_reservation(out: &mut String, i: &Instance) {
    let n = i.number;
    let t = i.itype;
    let _ = write!(
        out,
        "<item><reservationId>r-{n:016x}</reservationId><ownerId>{ACCOUNT}</ownerId><groupSet/>\
         <instancesSet><item><instanceId>{id}</instanceId><imageId>ami-0abcdef1234567890</imageId>\
         <instanceState><code>16</code><name>running</name></instanceState>\
         <privateDnsName>ip-{dash}.ec2.internal</privateDnsName><dnsName/><reason/>\
         <keyName>bench</keyName><amiLaunchIndex>0</amiLaunchIndex><productCodes/>\
         <instanceType>{ty}</instanceType><launchTime>{launch}</launchTime>\
         <placement><availabilityZone>{az}</availabilityZone><groupName/><tenancy>default</tenancy></placement>\
         <monitoring><state>disabled</state></monitoring><subnetId>subnet-0123456789abcdef0</subnetId>\
         <vpcId>vpc-0123456789abcdef0</vpcId><privateIpAddress>{ip}</privateIpAddress>",
        id = i.id,
        dash = i.private_ip.replace('.', "-"),
        ty = t.name,
        launch = i.launch_time,
        az = i.availability_zone,
        ip = i.private_ip,
    );
    if let Some(p) = &i.public_ip {
        let _ = write!(out, "<ipAddress>{p}</ipAddress>");
    }
    let _ = write!(
        out,
        "<sourceDestCheck>true</sourceDestCheck><groupSet><item><groupId>sg-0123456789abcdef0</groupId>\
         <groupName>default</groupName></item></groupSet><architecture>{arch}</architecture>\
         <rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>\
         <blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><volumeId>vol-{n:017x}</volumeId>\
         <status>attached</status><attachTime>{launch}</attachTime><deleteOnTermination>true</deleteOnTermination>\
         </ebs></item></blockDeviceMapping><virtualizationType>hvm</virtualizationType><clientToken/>\
         <tagSet><item><key>Name</key><value>{name}</value></item><item><key>env</key><value>{env}</value></item></tagSet>\
         <hypervisor>xen</hypervisor><ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>\
         <cpuOptions><coreCount>{cores}</coreCount><threadsPerCore>{threads}</threadsPerCore></cpuOptions>\
         <platformDetails>Linux/UNIX</platformDetails><usageOperation>RunInstances</usageOperation>\
         <usageOperationUpdateTime>{launch}</usageOperationUpdateTime></item></instancesSet></item>",
        arch = t.arch,
        launch = i.launch_time,
        name = escape(&i.name),
        env = escape(i.env),
        cores = t.cores,
        threads = t.threads_per_core,
    );
}

/// DescribeInstanceTypes: the fleet's types, or those named by `InstanceType.N` (an unknown
/// name is EC2's `InvalidInstanceType`), in pages of MaxResults (5–100, default 100).
fn describe_instance_types(form: &Form<'_>) -> Reply {
    let mut names: Vec<String> = form
        .list("InstanceType")
        .into_iter()
        .map(String::from)
        .collect();
    for (name, values) in form.filters() {
        if name == "instance-type" {
            names.extend(values);
        }
    }
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| fleet::instance_type(n).is_none())
        .collect();
    if !unknown.is_empty() {
        return ec2_error(
            "InvalidInstanceType",
            &format!(
                "The following supplied instance types do not exist: [{}]",
                unknown.join(", ")
            ),
        );
    }
    let page_size = match form.get("MaxResults") {
        None => 100,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (5..=100).contains(&n) => n,
            _ => {
                return ec2_error(
                    "InvalidParameterValue",
                    &format!("Value ( {m} ) for parameter maxResults is invalid. Expecting a value between 5 and 100."),
                )
            }
        },
    };
    let skip = form
        .get("NextToken")
        .and_then(|t| t.strip_prefix("standin-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let selected: Vec<_> = INSTANCE_TYPES
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
        .collect();
    let mut body = format!(
        "<DescribeInstanceTypesResponse xmlns=\"{XMLNS}\"><requestId>{}</requestId><instanceTypeSet>",
        request_id()
    );
    for t in selected.iter().skip(skip).take(page_size) {
        let _ = write!(
            body,
            "<item><instanceType>{name}</instanceType><currentGeneration>true</currentGeneration>\
             <hypervisor>nitro</hypervisor><processorInfo><supportedArchitectures><item>{arch}</item>\
             </supportedArchitectures><sustainedClockSpeedInGhz>3.1</sustainedClockSpeedInGhz></processorInfo>\
             <vCpuInfo><defaultVCpus>{vcpus}</defaultVCpus><defaultCores>{cores}</defaultCores>\
             <defaultThreadsPerCore>{threads}</defaultThreadsPerCore></vCpuInfo>\
             <memoryInfo><sizeInMiB>{mem}</sizeInMiB></memoryInfo></item>",
            name = t.name,
            arch = t.arch,
            vcpus = t.vcpus,
            cores = t.cores,
            threads = t.threads_per_core,
            mem = t.memory_mib,
        );
    }
    body.push_str("</instanceTypeSet>");
    if skip + page_size < selected.len() {
        let _ = write!(body, "<nextToken>standin-{}</nextToken>", skip + page_size);
    }
    body.push_str("</DescribeInstanceTypesResponse>");
    Reply::xml(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec2(n: u64) -> Ec2 {
        Ec2 {
            instances: n,
            region: "us-east-1".into(),
        }
    }

    fn call(e: &Ec2, body: &str) -> Reply {
        let form = Form::parse(body.as_bytes());
        e.handle(form.get("Action").unwrap_or_default(), &form)
    }

    #[test]
    fn describe_instances_pages_by_1000_with_a_next_token() {
        let e = ec2(2500);
        let first = call(&e, "Action=DescribeInstances&Version=2016-11-15");
        assert_eq!(first.body.matches("<instanceId>").count(), 1000);
        assert!(first
            .body
            .contains("<instanceId>i-0000000000000001</instanceId>"));
        assert!(first.body.contains("<nextToken>standin-1000</nextToken>"));
        let last = call(
            &e,
            "Action=DescribeInstances&Version=2016-11-15&NextToken=standin-2000",
        );
        assert_eq!(last.body.matches("<instanceId>").count(), 500);
        assert!(last
            .body
            .contains("<instanceId>i-00000000000009c4</instanceId>"));
        assert!(!last.body.contains("<nextToken>"));
    }

    #[test]
    fn describe_instances_filters_by_tag_and_checks_max_results() {
        let e = ec2(9);
        let r = call(
            &e,
            "Action=DescribeInstances&MaxResults=5&Filter.1.Name=tag%3Aenv&Filter.1.Value.1=prod",
        );
        // Instances 3, 6, 9 have env=prod.
        assert_eq!(r.body.matches("<instanceId>").count(), 3);
        assert!(r.body.contains("<value>bench-00006</value>"));
        let bad = call(&e, "Action=DescribeInstances&MaxResults=2");
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("<Code>InvalidParameterValue</Code>"));
        let filter = call(&e, "Action=DescribeInstances&Filter.1.Name=nope");
        assert!(filter.body.contains("The filter 'nope' is invalid"));
    }

    #[test]
    fn describe_instance_types_selects_and_rejects_unknown_types() {
        let r = call(
            &ec2(1),
            "Action=DescribeInstanceTypes&InstanceType.1=m5.xlarge&InstanceType.2=m6g.large",
        );
        assert_eq!(r.body.matches("<instanceType>").count(), 2);
        assert!(r
            .body
            .contains("<defaultVCpus>4</defaultVCpus><defaultCores>2</defaultCores>"));
        assert!(r.body.contains("<sizeInMiB>16384</sizeInMiB>"));
        let paged = call(&ec2(1), "Action=DescribeInstanceTypes&MaxResults=5");
        assert_eq!(paged.body.matches("<instanceType>").count(), 5);
        assert!(paged.body.contains("<nextToken>standin-5</nextToken>"));
        let bad = call(
            &ec2(1),
            "Action=DescribeInstanceTypes&InstanceType.1=x9.huge",
        );
        assert!(bad.body.contains("<Code>InvalidInstanceType</Code>"));
    }

    #[test]
    fn other_describes_are_empty_and_other_actions_invalid() {
        let r = call(&ec2(1), "Action=DescribeSnapshots");
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with("<DescribeSnapshotsResponse "));
        let v = call(&ec2(1), "Action=DescribeVolumes");
        assert!(v.body.contains("<volumeSet/>"));
        let bad = call(&ec2(1), "Action=RunInstances");
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("<Code>InvalidAction</Code>"));
    }
}
