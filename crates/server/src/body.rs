//! Request bodies: read with a size cap, decompress (`gzip`, `zstd`) with a second cap so a
//! zip bomb stops at the limit, and parse JSON so that every mistake names its place: a
//! syntax error its line and column, a shape error its field path (`points[17].ts`).
//!
//! Parsing is on the ingest hot path, so the common case is one `serde_json::from_slice`
//! over the decompressed bytes; the slower path-tracking parse runs only to explain an
//! error.

use crate::error::ApiErr;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use skymeter_model::FieldError;
use std::io::Read;

/// The `Content-Encoding` of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    pub fn from_headers(headers: &HeaderMap) -> Result<Encoding, ApiErr> {
        let Some(v) = headers.get(header::CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        Encoding::from_name(v.to_str().unwrap_or(""))
    }

    /// The encoding a `Content-Encoding` value names (an HTTP header's, or a NATS
    /// message's).
    pub fn from_name(v: &str) -> Result<Encoding, ApiErr> {
        let v = v.trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "zstd" => Ok(Encoding::Zstd),
            _ => Err(ApiErr::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "Content-Encoding `{v}` is not supported; send the body as gzip, zstd or \
                     identity (one encoding, not a list)"
                ),
            )),
        }
    }
}

/// Size caps of a request body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// After decompression (and as received, for an uncompressed body).
    pub max_bytes: usize,
    /// As received, for a compressed body.
    pub max_compressed_bytes: usize,
}

/// Requires a JSON content type (`application/json` or `…+json`, with any parameters) on
/// every JSON body, so that a web page cannot post into a server it can reach: a cross-origin
/// page may send forms and `text/plain` (or no type) without asking, but a JSON type needs a
/// CORS preflight, which the server answers only for `cors_origins`.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiErr> {
    let unsupported = |message: String| {
        ApiErr::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    };
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported(
            "the request has no Content-Type; send JSON with `Content-Type: application/json` \
             (curl: -H 'Content-Type: application/json')"
                .into(),
        ));
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/json" || (essence.ends_with("+json") && essence.contains('/')) {
        return Ok(());
    }
    Err(unsupported(format!(
        "Content-Type `{essence}` is not accepted; send JSON with `Content-Type: application/json`"
    )))
}

/// Reads the raw body as received, at most the cap for its encoding.
pub async fn read_raw(
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
    limits: Limits,
) -> Result<Bytes, ApiErr> {
    let cap = match encoding {
        Encoding::Identity => limits.max_bytes,
        Encoding::Gzip | Encoding::Zstd => limits.max_compressed_bytes,
    };
    let what = match encoding {
        Encoding::Identity => "request body",
        Encoding::Gzip | Encoding::Zstd => "compressed request body",
    };
    let too_large = || {
        ApiErr::too_large(format!(
            "the {what} is larger than the server's limit of {cap} bytes; send smaller batches"
        ))
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > cap as u64 {
            return Err(too_large());
        }
    }
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("reading the request body failed: {e}"),
        )),
    }
}

/// Decompresses `raw`, stopping with `413 too_large` as soon as the output passes the cap.
/// Identity bodies are returned as they are (no copy).
pub fn decode(raw: Bytes, encoding: Encoding, max_bytes: usize) -> Result<Bytes, ApiErr> {
    fn read_capped(mut r: impl Read, hint: usize, max: usize, name: &str) -> Result<Bytes, ApiErr> {
        let mut out = Vec::with_capacity(hint.min(max));
        let n = (&mut r)
            .take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| ApiErr::bad_request(format!("the body is not valid {name}: {e}")))?;
        if n > max {
            return Err(ApiErr::too_large(format!(
                "the request body decompresses to more than the server's limit of {max} bytes; \
                 send smaller batches"
            )));
        }
        Ok(Bytes::from(out))
    }
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => read_capped(
            flate2::read::MultiGzDecoder::new(&raw[..]),
            raw.len().saturating_mul(6),
            max_bytes,
            "gzip",
        ),
        Encoding::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(&raw[..])
                .map_err(|e| ApiErr::bad_request(format!("the body is not valid zstd: {e}")))?;
            read_capped(dec, raw.len().saturating_mul(6), max_bytes, "zstd")
        }
    }
}

/// How a shape error (wrong type, missing or unknown field) is reported: `invalid_batch`
/// for batches, `bad_request` for other bodies.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], shape_code: &str) -> Result<T, ApiErr> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        Err(e) => Err(explain::<T>(bytes, e, shape_code)),
    }
}

fn explain<T: DeserializeOwned>(bytes: &[u8], e: serde_json::Error, shape_code: &str) -> ApiErr {
    if e.is_syntax() || e.is_eof() || e.is_io() {
        let msg = strip_position(&e.to_string());
        return ApiErr::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "malformed JSON at line {}, column {}: {msg}",
                e.line(),
                e.column()
            ),
        );
    }
    // A shape error: parse again, tracking the path, to name the field.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let (path, inner) = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => (String::new(), e),
        Err(pe) => (pe.path().to_string(), pe.into_inner()),
    };
    let msg = strip_position(&inner.to_string());
    let path = field_path(&path, &msg);
    let at = format!("line {}, column {}", inner.line(), inner.column());
    ApiErr::new(
        StatusCode::BAD_REQUEST,
        shape_code,
        if path.is_empty() {
            format!("{msg} (at {at})")
        } else {
            format!("{path}: {msg} (at {at})")
        },
    )
    .with_fields(vec![FieldError::new(path, msg)])
}

/// serde_path_to_error names the object for a missing field (`points[3]`) and `.` for the
/// root: point at the field itself (`points[3].ts`).
fn field_path(path: &str, msg: &str) -> String {
    let path = if path == "." { "" } else { path };
    if let Some(rest) = msg.strip_prefix("missing field `") {
        if let Some(field) = rest.split('`').next() {
            return if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
        }
    }
    path.to_string()
}

/// serde_json appends " at line L column C"; the position is reported separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn json_bodies_need_a_json_content_type() {
        let with = |ct: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            }
            check_content_type(&h)
        };
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.skymeter.batch+json",
        ] {
            assert!(with(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("+json"),
            Some(""),
        ] {
            let err = with(bad).unwrap_err();
            assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad:?}");
            assert!(err.body.message.contains("application/json"), "{bad:?}");
        }
    }

    #[test]
    fn gzip_bombs_stop_at_the_cap() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 10 << 20]).unwrap();
        let bomb = Bytes::from(enc.finish().unwrap());
        assert!(bomb.len() < 64 << 10);
        let err = decode(bomb.clone(), Encoding::Gzip, 1 << 20).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            decode(bomb, Encoding::Gzip, 10 << 20).unwrap().len(),
            10 << 20
        );
    }

    #[test]
    fn zstd_round_trips_and_stops_at_the_cap() {
        let data = vec![b'x'; 1 << 20];
        let z = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        assert_eq!(
            decode(z.clone(), Encoding::Zstd, 1 << 20).unwrap().len(),
            1 << 20
        );
        let err = decode(z, Encoding::Zstd, (1 << 20) - 1).unwrap_err();
        assert_eq!(err.body.code, "too_large");
        let err = decode(Bytes::from_static(b"nope"), Encoding::Zstd, 100).unwrap_err();
        assert!(err.body.message.contains("zstd"), "{:?}", err.body);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
        b: String,
    }

    #[test]
    fn shape_errors_name_the_field_path() {
        let cases = [
            (
                r#"{"items":[{"a":1,"b":"x"},{"a":"no","b":"y"}]}"#,
                "items[1].a",
            ),
            (r#"{"items":[{"a":1}]}"#, "items[0].b"),
            (r#"{"items":[{"a":1,"b":"x","c":2}]}"#, "items[0].c"),
            (r#"{}"#, "items"),
        ];
        for (json, want) in cases {
            let err = parse_json::<Outer>(json.as_bytes(), "invalid_batch").unwrap_err();
            assert_eq!(err.body.code, "invalid_batch");
            assert_eq!(err.body.fields[0].path, want, "{json}: {:?}", err.body);
            assert!(err.body.message.starts_with(want), "{:?}", err.body);
        }
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let err = parse_json::<Outer>(b"{\n  \"items\": [,]\n}", "invalid_batch").unwrap_err();
        assert_eq!(err.body.code, "invalid_json");
        assert!(
            err.body.message.contains("line 2, column 13"),
            "{}",
            err.body.message
        );
        let err = parse_json::<Outer>(b"{\"items\": [", "x").unwrap_err();
        assert_eq!(err.body.code, "invalid_json");
    }
}
