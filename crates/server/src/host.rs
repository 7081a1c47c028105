//! Host names as clients write them in URLs and `Host` headers: `name`, `name:port`,
//! `10.0.0.5`, `[fd00::5]:8080`. The configuration checks `allowed_hosts` with them and the
//! browser guard (`guard.rs`) matches requests against them.

/// One `allowed_hosts` entry: a host (lowercase; IPv6 without brackets) and maybe a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `name`, `name:port`, `10.0.0.5`, `[fd00::5]:8080`; None when it is not one.
    pub fn parse(text: &str) -> Option<HostPattern> {
        let (host, port) = split_authority(text.trim())?;
        Some(HostPattern { host, port })
    }

    /// Whether a request's host and port (as [`split_authority`] gives them) match.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// Splits `host[:port]` (a `Host` header value) into the lowercase host (IPv6 without
/// brackets) and the port. None unless the host is a DNS name, an IPv4 address or a
/// bracketed IPv6 address, and the port (when given) a number: strict, because `http`'s
/// `Authority` also takes `user@` parts and ignores a port that is not a number.
pub fn split_authority(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (v6.to_ascii_lowercase(), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !name_ok {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_parse_names_addresses_and_ports_only() {
        assert_eq!(
            HostPattern::parse("Grafana.Example.com:3000"),
            Some(HostPattern {
                host: "grafana.example.com".into(),
                port: Some(3000)
            })
        );
        assert!(HostPattern::parse("[fd00::5]").is_some());
        for bad in ["", "https://x.example", "x.example/path", "a@b", "x:port"] {
            assert_eq!(HostPattern::parse(bad), None, "{bad}");
        }
    }
}
