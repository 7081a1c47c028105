//! The simulated account: N EC2 instances derived from their number, the instance types they
//! use, and the CloudWatch value of any (instance, metric, statistic, timestamp).

/// The account every resource belongs to.
pub const ACCOUNT: &str = "123456789012";

/// An instance type the fleet uses: name, vCPUs, cores, threads per core, memory, CPU
/// architecture.
#[derive(Debug, Clone, Copy)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    pub cores: u32,
    pub threads_per_core: u32,
    pub memory_mib: u64,
    pub arch: &'static str,
}

const fn itype(
    name: &'static str,
    vcpus: u32,
    threads_per_core: u32,
    memory_mib: u64,
    arch: &'static str,
) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        cores: vcpus / threads_per_core,
        threads_per_core,
        memory_mib,
        arch,
    }
}

/// Instance n gets `INSTANCE_TYPES[n % len]`. Figures as AWS lists them (x86 types have two
/// threads per core, Graviton one).
pub const INSTANCE_TYPES: [InstanceType; 7] = [
    itype("t3.micro", 2, 2, 1024, "x86_64"),
    itype("t3.large", 2, 2, 8192, "x86_64"),
    itype("m5.large", 2, 2, 8192, "x86_64"),
    itype("m5.xlarge", 4, 2, 16384, "x86_64"),
    itype("c5.2xlarge", 8, 2, 16384, "x86_64"),
    itype("r5.large", 2, 2, 16384, "x86_64"),
    itype("m6g.large", 2, 1, 8192, "arm64"),
];

pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// `env` tag values, instance n gets `ENVS[n % 3]`.
pub const ENVS: [&str; 3] = ["prod", "staging", "dev"];

/// One instance of the fleet (numbers start at 1).
#[derive(Debug, Clone)]
pub struct Instance {
    pub number: u64,
    pub id: String,
    pub itype: &'static InstanceType,
    pub availability_zone: String,
    pub name: String,
    pub env: &'static str,
    pub private_ip: String,
    /// Every other instance has a public address.
    pub public_ip: Option<String>,
    /// RFC 3339 with milliseconds, as EC2 writes it.
    pub launch_time: String,
}

/// `i-` and 16 hex digits: instance 1 is `i-0000000000000001`.
pub fn instance_id(n: u64) -> String {
    format!("i-{n:016x}")
}

/// The number of an id of the fleet's shape, whether or not the fleet has it.
pub fn instance_number(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("i-")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub fn instance(n: u64, region: &str) -> Instance {
    let zone = ["a", "b", "c"][(n % 3) as usize];
    Instance {
        number: n,
        id: instance_id(n),
        itype: &INSTANCE_TYPES[(n % INSTANCE_TYPES.len() as u64) as usize],
        availability_zone: format!("{region}{zone}"),
        name: format!("bench-{n:05}"),
        env: ENVS[(n % 3) as usize],
        private_ip: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        public_ip: n
            .is_multiple_of(2)
            .then(|| format!("54.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)),
        // 2025-01-01T00:00:00Z plus n minutes.
        launch_time: chrono::DateTime::from_timestamp(1_735_689_600 + 60 * n as i64, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string(),
    }
}

/// The code of a CloudWatch `AWS/EC2` metric in [`datapoint`]: its place in this list plus
/// one; any other metric name is 99.
pub const METRIC_CODES: [&str; 13] = [
    "CPUUtilization",
    "NetworkIn",
    "NetworkOut",
    "NetworkPacketsIn",
    "NetworkPacketsOut",
    "DiskReadOps",
    "DiskWriteOps",
    "DiskReadBytes",
    "DiskWriteBytes",
    "EBSReadOps",
    "EBSWriteOps",
    "EBSReadBytes",
    "EBSWriteBytes",
];

/// The code of a CloudWatch statistic in [`datapoint`]; any other (extended statistics such
/// as `p99`) is 9.
pub fn stat_code(stat: &str) -> u64 {
    match stat {
        "Average" => 1,
        "Maximum" => 2,
        "Minimum" => 3,
        "Sum" => 4,
        "SampleCount" => 5,
        "p95" => 6,
        _ => 9,
    }
}

pub fn metric_code(metric: &str) -> u64 {
    METRIC_CODES
        .iter()
        .position(|m| *m == metric)
        .map_or(99, |p| p as u64 + 1)
}

/// The value CloudWatch answers for instance `number`'s `metric` / `stat` in the period
/// starting at `ts` (epoch seconds):
/// `number × 1000 + metric code × 10 + stat code + (ts / 60 mod 4) / 4`.
/// Each (instance, metric, stat) has its own integer part, so a value that lands on the
/// wrong series is caught, and quarters are exact in binary and in decimal.
pub fn datapoint(number: u64, metric: &str, stat: &str, ts: i64) -> f64 {
    let whole = number * 1000 + metric_code(metric) * 10 + stat_code(stat);
    whole as f64 + (ts / 60).rem_euclid(4) as f64 / 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_aws_shaped() {
        assert_eq!(instance_id(1), "i-0000000000000001");
        assert_eq!(instance_id(10_000), "i-0000000000002710");
        assert_eq!(instance_number("i-0000000000002710"), Some(10_000));
        assert_eq!(instance_number("i-2710"), None);
        assert_eq!(instance_number("vol-0000000000000001"), None);
    }

    #[test]
    fn instance_attributes_follow_the_number() {
        let i = instance(3, "us-east-1");
        assert_eq!(i.itype.name, "m5.xlarge");
        assert_eq!(i.itype.cores, 2);
        assert_eq!(i.availability_zone, "us-east-1a");
        assert_eq!(i.env, "prod");
        assert_eq!(i.name, "bench-00003");
        assert_eq!(i.private_ip, "10.0.0.3");
        assert_eq!(i.public_ip, None);
        assert_eq!(i.launch_time, "2025-01-01T00:03:00.000Z");
        assert_eq!(
            instance(260, "us-east-1").public_ip.as_deref(),
            Some("54.0.1.4")
        );
        assert_eq!(instance(6, "us-east-1").itype.threads_per_core, 1);
    }

    #[test]
    fn datapoints_are_distinct_per_series_and_exact() {
        // 2026-01-01T00:05:00Z: minute 29_453_765, mod 4 = 1.
        let ts = 1_767_225_900;
        assert_eq!(datapoint(1, "CPUUtilization", "Average", ts), 1011.25);
        assert_eq!(datapoint(1, "CPUUtilization", "Maximum", ts), 1012.25);
        assert_eq!(datapoint(2, "NetworkIn", "Sum", ts), 2024.25);
        assert_eq!(
            datapoint(10_000, "EBSWriteBytes", "Average", ts + 60),
            10_000_131.5
        );
        assert_eq!(datapoint(3, "Custom", "p99", ts), 3999.25);
    }
}
