//! What every protocol shares: the parsed form body of a Query-protocol call, the answer
//! handed back to the HTTP layer, XML escaping and request ids.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// An answer: status, content type, body and the AWS error type header when it is an error
/// of a JSON protocol.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub error_type: Option<String>,
}

impl Reply {
    pub fn xml(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "text/xml",
            body,
            error_type: None,
        }
    }

    pub fn json(content_type: &'static str, body: String) -> Reply {
        Reply {
            status: 200,
            content_type,
            body,
            error_type: None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// The `key=value` pairs of a form-encoded Query call, decoded once and borrowed from the
/// body where no escape had to be undone.
pub struct Form<'a> {
    pub pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Form<'a> {
    pub fn parse(body: &'a [u8]) -> Form<'a> {
        Form {
            pairs: form_urlencoded::parse(body).collect(),
        }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The values of a flattened Query list `PREFIX.1`, `PREFIX.2`, … (EC2's encoding of
    /// lists), in index order.
    pub fn list(&self, prefix: &str) -> Vec<&str> {
        let mut found: Vec<(u32, &str)> = self
            .pairs
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(prefix)?.strip_prefix('.')?.parse().ok()?;
                Some((n, v.as_ref()))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        found.into_iter().map(|(_, v)| v).collect()
    }

    /// EC2 `Filter.N.Name` / `Filter.N.Value.M` pairs as (name, values).
    pub fn filters(&self) -> Vec<(String, Vec<String>)> {
        // Filter number → (name, value number → value); BTreeMaps give index order.
        let mut by_index: BTreeMap<u32, (String, BTreeMap<u32, String>)> = BTreeMap::new();
        for (k, v) in &self.pairs {
            let Some((n, field)) = k.strip_prefix("Filter.").and_then(|r| r.split_once('.')) else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            let filter = by_index.entry(n).or_default();
            if field == "Name" {
                filter.0 = v.to_string();
            } else if let Some(m) = field.strip_prefix("Value.").and_then(|m| m.parse().ok()) {
                filter.1.insert(m, v.to_string());
            }
        }
        by_index
            .into_values()
            .map(|(name, values)| (name, values.into_values().collect()))
            .collect()
    }
}

/// Escapes text for an XML element's content (quotes need no escape there).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['<', '>', '&']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

static REQUEST_NO: AtomicU64 = AtomicU64::new(1);

/// A request id shaped like AWS's (a UUID), unique within the process.
pub fn request_id() -> String {
    let n = REQUEST_NO.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// An error of the AWS Query protocol (CloudWatch, STS, RDS): `ErrorResponse/Error`.
pub fn query_error(status: u16, xmlns: &str, code: &str, message: &str) -> Reply {
    Reply {
        status,
        content_type: "text/xml",
        body: format!(
            "<ErrorResponse xmlns=\"{xmlns}\"><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            escape(message),
            request_id()
        ),
        error_type: None,
    }
}

/// An error of the EC2 Query protocol: `Response/Errors/Error`.
pub fn ec2_error(code: &str, message: &str) -> Reply {
    Reply {
        status: 400,
        content_type: "text/xml",
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            escape(message),
            request_id()
        ),
        error_type: None,
    }
}

/// An error of the JSON protocols (awsJson1.1, REST JSON).
pub fn json_error(status: u16, content_type: &'static str, code: &str, message: &str) -> Reply {
    Reply {
        status,
        content_type,
        body: serde_json::json!({ "__type": code, "message": message }).to_string(),
        error_type: Some(code.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_lists_and_filters_come_back_in_index_order() {
        let body = b"Action=DescribeInstances&Version=2016-11-15&Filter.2.Name=tag%3Aenv\
            &Filter.2.Value.2=dev&Filter.2.Value.1=prod&Filter.1.Name=instance-state-name\
            &Filter.1.Value.1=running&InstanceType.2=m5.large&InstanceType.1=t3.micro";
        let form = Form::parse(body);
        assert_eq!(form.get("Action"), Some("DescribeInstances"));
        assert_eq!(form.list("InstanceType"), vec!["t3.micro", "m5.large"]);
        assert_eq!(
            form.filters(),
            vec![
                (
                    "instance-state-name".to_string(),
                    vec!["running".to_string()]
                ),
                (
                    "tag:env".to_string(),
                    vec!["prod".to_string(), "dev".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn escape_leaves_plain_text_borrowed() {
        assert!(matches!(escape("bench-00001"), Cow::Borrowed(_)));
        assert_eq!(escape("a<b & 'c'"), "a&lt;b &amp; 'c'");
    }
}
