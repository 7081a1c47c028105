//! Credentials through the official `azure_identity` crate: client secret (config or
//! `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`), workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE`), managed identity, Azure CLI.
//!
//! azure_identity 1.0 has no `DefaultAzureCredential`; [`Chain`] is the same order (the
//! first source that gives a token is kept). Its HTTP goes through [`Transport`]: the
//! collector's own reqwest 0.12 client, so `ca_file` applies to the token endpoint too and
//! azure_core does not pull in a second HTTP stack (its own client is reqwest 0.13).
//! azure_identity refuses an `http://` authority host (`authority host doesn't use HTTPS
//! scheme`): tests serve the token endpoint over TLS with a throwaway CA given as `ca_file`.

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{
    headers::{HeaderName, HeaderValue, Headers},
    AsyncRawResponse, Body, ClientOptions, HttpClient, Request, Transport,
};
use azure_identity::{
    AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// azure_core's `HttpClient` over reqwest 0.12 (hand-written: azure_core only implements it
/// for reqwest 0.13). Bodies are bytes: the credentials send small forms.
#[derive(Debug)]
pub struct Transport012(pub reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Transport012 {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::{Error, ErrorKind};
        let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
            .map_err(|e| Error::with_error(ErrorKind::Other, e, "HTTP method"))?;
        let mut req = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        match request.body() {
            Body::Bytes(b) => req = req.body(b.to_vec()),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    "streamed request bodies are not supported",
                ))
            }
        }
        let rsp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            Error::with_error(kind, e, "the token request failed")
        })?;
        let status = rsp.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = rsp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_str().ok()?.to_owned()),
                ))
            })
            .collect();
        let bytes = rsp
            .bytes()
            .await
            .map_err(|e| Error::with_error(ErrorKind::Io, e, "reading the token answer"))?;
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(headers),
            bytes,
        ))
    }
}

/// Which credential the config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Auto,
    ClientSecret,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

impl Kind {
    pub const NAMES: [&'static str; 5] = [
        "auto",
        "client_secret",
        "workload_identity",
        "managed_identity",
        "azure_cli",
    ];
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "auto" => Kind::Auto,
            "client_secret" => Kind::ClientSecret,
            "workload_identity" => Kind::WorkloadIdentity,
            "managed_identity" => Kind::ManagedIdentity,
            "azure_cli" => Kind::AzureCli,
            _ => return None,
        })
    }
}

/// What the credential is built from: config values (after `${ENV}` interpolation) or
/// the `AZURE_*` environment variables.
pub struct Settings<'a> {
    pub kind: Kind,
    pub tenant_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub authority_host: Option<&'a str>,
    pub http: reqwest::Client,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn client_options(s: &Settings<'_>) -> ClientOptions {
    let mut o = ClientOptions {
        transport: Some(Transport::new(Arc::new(Transport012(s.http.clone())))),
        ..Default::default()
    };
    if let Some(host) = s.authority_host {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = host.trim_end_matches('/').to_string();
        o.cloud = Some(Arc::new(custom.into()));
    }
    o
}

/// Builds the credential and says which one it is (for messages, never a secret).
pub fn credential(s: &Settings<'_>) -> Result<(Arc<dyn TokenCredential>, String), String> {
    let tenant = s
        .tenant_id
        .map(str::to_string)
        .or_else(|| env("AZURE_TENANT_ID"));
    let client = s
        .client_id
        .map(str::to_string)
        .or_else(|| env("AZURE_CLIENT_ID"));
    let secret = s
        .client_secret
        .map(str::to_string)
        .or_else(|| env("AZURE_CLIENT_SECRET"));
    let fail = |what: &str, e: azure_core::Error| format!("{what}: {e}");
    let client_secret = |tenant: String, client: String, secret: String| {
        ClientSecretCredential::new(
            &tenant,
            client,
            Secret::new(secret),
            Some(ClientSecretCredentialOptions {
                client_options: client_options(s),
            }),
        )
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| fail("client secret credential", e))
    };
    let workload = || {
        WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: client_options(s),
            },
            client_id: s.client_id.map(str::to_string),
            tenant_id: s.tenant_id.map(str::to_string),
            ..Default::default()
        }))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| fail("workload identity credential", e))
    };
    let managed = || {
        ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: s
                .client_id
                .map(|c| azure_identity::UserAssignedId::ClientId(c.to_string())),
            client_options: client_options(s),
        }))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| fail("managed identity credential", e))
    };
    let cli = || {
        AzureCliCredential::new(Some(azure_identity::AzureCliCredentialOptions {
            tenant_id: s.tenant_id.map(str::to_string),
            ..Default::default()
        }))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| fail("Azure CLI credential", e))
    };
    let need = |v: Option<String>, key: &str, var: &str| {
        v.ok_or_else(|| format!("credential = \"client_secret\" needs `{key}` or {var}"))
    };
    Ok(match s.kind {
        Kind::ClientSecret => (
            client_secret(
                need(tenant, "tenant_id", "AZURE_TENANT_ID")?,
                need(client, "client_id", "AZURE_CLIENT_ID")?,
                need(secret, "client_secret", "AZURE_CLIENT_SECRET")?,
            )?,
            "client secret".into(),
        ),
        Kind::WorkloadIdentity => (workload()?, "workload identity".into()),
        Kind::ManagedIdentity => (managed()?, "managed identity".into()),
        Kind::AzureCli => (cli()?, "Azure CLI".into()),
        Kind::Auto => match (tenant, client, secret) {
            (Some(t), Some(c), Some(sec)) => (client_secret(t, c, sec)?, "client secret".into()),
            _ if env("AZURE_FEDERATED_TOKEN_FILE").is_some() => {
                (workload()?, "workload identity".into())
            }
            _ => {
                // A source that cannot even be built here is skipped, not fatal.
                let mut sources = Vec::new();
                let mut failures = Vec::new();
                for (name, built) in [("managed identity", managed()), ("Azure CLI", cli())] {
                    match built {
                        Ok(c) => sources.push((name, c)),
                        Err(e) => failures.push(e),
                    }
                }
                if sources.is_empty() {
                    return Err(failures.join("; "));
                }
                (
                    Arc::new(Chain {
                        sources,
                        chosen: AtomicUsize::new(usize::MAX),
                    }) as Arc<dyn TokenCredential>,
                    "managed identity, then Azure CLI".into(),
                )
            }
        },
    })
}

/// Tries its sources in order; the first that gives a token is used from then on.
#[derive(Debug)]
struct Chain {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    chosen: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = self.chosen.load(Ordering::Relaxed);
        if let Some((_, c)) = self.sources.get(chosen) {
            return c.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (i, (name, c)) in self.sources.iter().enumerate() {
            match c.get_token(scopes, options.clone()).await {
                Ok(t) => {
                    self.chosen.store(i, Ordering::Relaxed);
                    return Ok(t);
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "no Azure credential found ({}); set AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, `tenant_id`/`client_id`/`client_secret`, run `az login`, or run where a managed identity is available",
                failures.join("; ")
            ),
        ))
    }
}
