//! PostgreSQL connection strings as libpq reads them, TLS included, for every PostgreSQL
//! client of skymeter (the scale-out metadata store, the `postgres` publisher).
//!
//! `tokio-postgres` parses connection strings itself but knows only `sslmode=disable|prefer|
//! require` and refuses libpq's certificate options. Users copy URLs from their cloud
//! console or from `psql`, so [`PgTarget::parse`] accepts what libpq accepts for TLS and
//! hands `tokio-postgres` the rest:
//!
//! | `sslmode` | TLS | certificate check |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it | as `require` |
//! | `require` | always | none, unless `sslrootcert` is given: then as `verify-ca` (libpq does the same) |
//! | `verify-ca` | always | the chain up to `sslrootcert` |
//! | `verify-full` | always | the chain, and the host name (or IP) in the certificate |
//!
//! `sslrootcert` is a PEM file of trusted roots, or `system` for the operating system's
//! roots; without it `verify-ca`/`verify-full` use `~/.postgresql/root.crt` like libpq, and
//! fail with a clear message when it is missing. `sslcert` + `sslkey` (PEM) present a
//! client certificate. Both URL (`postgres://…?sslmode=verify-full&sslrootcert=/ca.pem`)
//! and key/value (`host=db sslmode=require`) forms work.
//!
//! Hand-written because no crate maps libpq's TLS options onto rustls: the TLS itself is
//! `tokio-postgres-rustls` on rustls with the ring provider.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres::config::SslMode;

pub use tokio_postgres_rustls::MakeRustlsConnect;

/// What is wrong with a connection string; never shows the password.
#[derive(Debug, thiserror::Error)]
pub enum PgUrlError {
    #[error("not a PostgreSQL connection string ({0}); write e.g. postgres://USER:PASSWORD@HOST:5432/DATABASE?sslmode=require")]
    Syntax(String),
    #[error("sslmode={0} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("sslmode={mode} checks the server's certificate but no root certificate was given: set sslrootcert=<PEM file> (or sslrootcert=system for the system's roots), or put the CA in {}", .default.display())]
    NoRootCert { mode: String, default: PathBuf },
    #[error("{option}={}: {why}", .path.display())]
    File {
        option: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("sslcert and sslkey go together: give both or neither")]
    HalfClientCert,
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertCheck {
    /// Encryption only: any certificate (libpq's `require` without a root certificate).
    None,
    /// The chain up to a trusted root, any name.
    Chain,
    /// The chain and the name.
    Full,
}

/// A parsed connection string: what `tokio-postgres` (or the sync `postgres` crate,
/// through `postgres::Config::from`) connects with.
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    /// What is checked of the server's certificate when TLS is used.
    pub check: CertCheck,
    /// `postgres://user@host:port/db`, never the password: for messages and logs.
    pub shown: String,
}

/// The TLS options taken out of a connection string before `tokio-postgres` sees it.
#[derive(Debug, Default)]
struct TlsOptions {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

impl TlsOptions {
    /// Takes `key` if it is one of ours.
    fn take(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            _ => return false,
        };
        *slot = Some(value.to_string());
        true
    }
}

impl PgTarget {
    /// Parses `url` (URL or key/value form) with its TLS options.
    pub fn parse(url: &str) -> Result<PgTarget, PgUrlError> {
        let (rest, opts) = split_tls_options(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| PgUrlError::Syntax(e.to_string()))?;
        let mode = opts.sslmode.as_deref().unwrap_or("prefer");
        let (ssl_mode, check) = match (mode, opts.sslrootcert.is_some()) {
            ("disable", _) => (SslMode::Disable, CertCheck::None),
            ("allow" | "prefer", false) => (SslMode::Prefer, CertCheck::None),
            ("allow" | "prefer", true) => (SslMode::Prefer, CertCheck::Chain),
            ("require", false) => (SslMode::Require, CertCheck::None),
            ("require", true) => (SslMode::Require, CertCheck::Chain),
            ("verify-ca", _) => (SslMode::Require, CertCheck::Chain),
            ("verify-full", _) => (SslMode::Require, CertCheck::Full),
            (other, _) => return Err(PgUrlError::SslMode(other.to_string())),
        };
        config.ssl_mode(ssl_mode);
        let roots = match check {
            CertCheck::None => None,
            CertCheck::Chain | CertCheck::Full => {
                Some(root_store(mode, opts.sslrootcert.as_deref())?)
            }
        };
        let client = client_identity(opts.sslcert.as_deref(), opts.sslkey.as_deref())?;
        let tls = tls_config(check, roots, client)?;
        let shown = shown(&config);
        Ok(PgTarget {
            config,
            tls: MakeRustlsConnect::new(tls),
            check,
            shown,
        })
    }
}

/// Splits libpq's TLS options off `url`, giving back the string `tokio-postgres` parses.
fn split_tls_options(url: &str) -> Result<(String, TlsOptions), PgUrlError> {
    let mut opts = TlsOptions::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The `url` crate re-encodes what it keeps exactly as given, so user names and
        // passwords with escapes survive the round trip.
        let mut parsed = url::Url::parse(url).map_err(|e| PgUrlError::Syntax(e.to_string()))?;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, v)| !opts.take(k, v))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        return Ok((parsed.to_string(), opts));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(PgUrlError::Syntax(format!(
            "the scheme `{}` is not postgres:// or postgresql://",
            scheme.chars().take(20).collect::<String>()
        )));
    }
    // key=value form: values may be single-quoted with backslash escapes.
    let mut kept = Vec::new();
    for (key, raw, value) in key_values(url)? {
        if !opts.take(&key, &value) {
            kept.push(format!("{key}={raw}"));
        }
    }
    Ok((kept.join(" "), opts))
}

/// The `key=value` pairs of a key/value connection string: (key, the value as written,
/// the value unquoted).
fn key_values(s: &str) -> Result<Vec<(String, String, String)>, PgUrlError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // Never echo the text: it may be a password written without its key.
            let named =
                key.len() <= 40 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return Err(PgUrlError::Syntax(if named {
                format!("`{key}` has no `=value`")
            } else {
                "neither a postgres:// URL nor key=value pairs".to_string()
            }));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let (mut raw, mut value) = (String::new(), String::new());
        if chars.next_if_eq(&'\'').is_some() {
            raw.push('\'');
            loop {
                match chars.next() {
                    None => {
                        return Err(PgUrlError::Syntax(format!(
                            "the value of `{key}` has no closing quote"
                        )))
                    }
                    Some('\'') => {
                        raw.push('\'');
                        break;
                    }
                    Some('\\') => {
                        raw.push('\\');
                        if let Some(c) = chars.next() {
                            raw.push(c);
                            value.push(c);
                        }
                    }
                    Some(c) => {
                        raw.push(c);
                        value.push(c);
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                raw.push(c);
                value.push(c);
            }
        }
        out.push((key, raw, value));
    }
}

fn read_file(option: &'static str, path: &Path) -> Result<Vec<u8>, PgUrlError> {
    std::fs::read(path).map_err(|e| PgUrlError::File {
        option,
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// The trusted roots: `sslrootcert`'s PEM file, `system`, or libpq's default file.
fn root_store(mode: &str, sslrootcert: Option<&str>) -> Result<RootCertStore, PgUrlError> {
    let mut store = RootCertStore::empty();
    if sslrootcert == Some("system") {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            return Err(PgUrlError::File {
                option: "sslrootcert",
                path: PathBuf::from("system"),
                why: "the system has no root certificates (install ca-certificates)".into(),
            });
        }
        store.add_parsable_certificates(found.certs);
        return Ok(store);
    }
    let path = match sslrootcert {
        Some(p) => PathBuf::from(p),
        None => {
            let default = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".postgresql/root.crt");
            if !default.is_file() {
                return Err(PgUrlError::NoRootCert {
                    mode: mode.to_string(),
                    default,
                });
            }
            default
        }
    };
    let pem = read_file("sslrootcert", &path)?;
    let file_error = |why: String| PgUrlError::File {
        option: "sslrootcert",
        path: path.clone(),
        why,
    };
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| file_error(format!("not a PEM certificate file ({e})")))?;
        store
            .add(cert)
            .map_err(|e| file_error(format!("a certificate cannot be a root ({e})")))?;
    }
    if store.is_empty() {
        return Err(file_error("holds no PEM certificate".into()));
    }
    Ok(store)
}

type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_identity(
    cert: Option<&str>,
    key: Option<&str>,
) -> Result<Option<ClientIdentity>, PgUrlError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (Path::new(c), Path::new(k)),
        _ => return Err(PgUrlError::HalfClientCert),
    };
    let pem = read_file("sslcert", cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PgUrlError::File {
            option: "sslcert",
            path: cert.to_path_buf(),
            why: format!("not a PEM certificate file ({e})"),
        })?;
    if chain.is_empty() {
        return Err(PgUrlError::File {
            option: "sslcert",
            path: cert.to_path_buf(),
            why: "holds no PEM certificate".into(),
        });
    }
    let key_pem = read_file("sslkey", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| PgUrlError::File {
        option: "sslkey",
        path: key.to_path_buf(),
        why: format!("not a PEM private key ({e})"),
    })?;
    Ok(Some((chain, private)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(
    check: CertCheck,
    roots: Option<RootCertStore>,
    client: Option<ClientIdentity>,
) -> Result<rustls::ClientConfig, PgUrlError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgUrlError::Tls(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (check, roots) {
        (CertCheck::None, _) | (_, None) => Arc::new(AnyCertificate(provider)),
        (check, Some(roots)) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| PgUrlError::Tls(e.to_string()))?;
            if check == CertCheck::Full {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| PgUrlError::Tls(format!("sslcert/sslkey: {e}"))),
    }
}

/// libpq's `require`: the session is encrypted, the certificate is not checked (the
/// handshake's signatures still are).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// libpq's `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `postgres://user@host:port/db`: the connection without its password.
pub fn shown(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// A message for a connection or query error: `tokio-postgres`'s `Display` of a server
/// error is only "db error" and of a TLS failure only "error performing TLS handshake", so
/// the source chain is walked for the reason.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests;
