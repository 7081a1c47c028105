//! `mqtt`: publishes each batch to an MQTT broker, one message per resource on a topic of
//! its own (`<topic_prefix>/<provider>/<account>/<region>/<resource id>`), QoS 1, for edge
//! nodes and the systems that already read a broker.
//!
//! Delivery always goes through the publishers' shared on-disk buffer
//! ([`crate::common::delivery`]): `publish` writes the batch to disk and returns; the
//! buffer's sender connects (a persistent session, `clean_session = false`, under a fixed
//! client id), publishes every message of the oldest batch with QoS 1 and counts it
//! delivered once the broker has acknowledged (PUBACK) each of them, then disconnects. A
//! broker that is down, refuses the connection or drops it mid-batch leaves the batch on
//! disk for the next try: nothing is lost, and a batch may arrive twice (subscribers dedupe
//! on `batch_id`, which every message carries).
//!
//! One connection per batch rather than one kept open: agents publish a batch every few
//! seconds at most, and a connection made for each batch has no state to go stale across a
//! broker restart; the MQTT client (rumqttc) still does the protocol.

use crate::common::delivery::{
    read_batch, BufferConfig, BufferedPublisher, Deliver, Failure, Outcome, Terms,
};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Incoming, MqttOptions, Outgoing, QoS};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Batch, ResourceRef};
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ExposeSecret, PluginDescription, PluginKind, Publisher,
    PublisherFactory, RawConfig, SecretString,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// `mqtt` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker: `mqtt://HOST:PORT` (port 1883 when left out). TLS (`mqtts://`) is not
    /// supported yet.
    pub url: String,
    /// The first levels of every topic.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// The MQTT client id, which keys the broker's session; default
    /// `skymeter-<agent id>-<task>`. Two publishers must not share one.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// A secret: write `"${MQTT_PASSWORD}"` rather than the password itself.
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// Time allowed for one delivery: connecting, publishing a batch's messages and their
    /// acknowledgements.
    #[serde(default = "thirty_seconds")]
    pub timeout: DurationStr,
    /// The waits between tries (`attempts` does not apply: a batch is never given up on).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The on-disk buffer (always on): `{ dir, max_size = "1GB", when_full = "block" }`;
    /// default directory `<data_dir>/buffer/<task>/mqtt`.
    #[serde(default)]
    pub buffer: BufferConfig,
}

fn default_prefix() -> String {
    "skymeter".into()
}

fn thirty_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(30))
}

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "mqtt",
            kind: PluginKind::Publisher,
            summary: "Publishes each batch to an MQTT broker, a message per resource (QoS 1, persistent session), through a durable on-disk buffer",
            config_schema: PluginDescription::schema_of::<MqttConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: MqttConfig = raw.decode()?;
    let (host, port) = parse_broker(&cfg.url).map_err(|m| raw.error("url", m))?;
    if cfg.timeout.0.is_zero() {
        return Err(raw.error("timeout", "must be more than 0"));
    }
    if cfg.topic_prefix.is_empty()
        || cfg.topic_prefix.contains(['+', '#', '\0'])
        || cfg.topic_prefix.starts_with('/')
        || cfg.topic_prefix.ends_with('/')
    {
        return Err(raw.error(
            "topic_prefix",
            "must be topic levels without `+`, `#` or a leading or trailing `/`, e.g. \"skymeter/site-1\"",
        ));
    }
    if cfg.password.is_some() && cfg.username.is_none() {
        return Err(raw.error("password", "a password needs a `username`"));
    }
    let client_id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("skymeter-{}-{}", ctx.agent_id, ctx.task));
    let broker = Arc::new(Broker {
        host: host.clone(),
        port,
        shown: format!("mqtt://{host}:{port}"),
        client_id,
        username: cfg.username.clone(),
        password: cfg.password.clone(),
        prefix: cfg.topic_prefix.clone(),
        timeout: cfg.timeout.0,
    });
    Ok(Box::new(BufferedPublisher::configured(
        raw,
        ctx,
        Terms::of_buffer_table("mqtt", "the broker"),
        cfg.buffer,
        cfg.retry,
        cfg.timeout.0,
        broker,
    )?))
}

/// `mqtt://host[:port]` → (host, port).
fn parse_broker(url: &str) -> Result<(String, u16), String> {
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some(("mqtts" | "ssl", _)) => {
            return Err("TLS brokers (`mqtts://`) are not supported yet; use `mqtt://`".into())
        }
        _ => {
            return Err(format!(
                "`{url}` is not a broker URL; write e.g. \"mqtt://127.0.0.1:1883\""
            ))
        }
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("`{p}` in `{url}` is not a port"))?,
        ),
        _ => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "`{url}` has no host; write e.g. \"mqtt://127.0.0.1:1883\""
        ));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Where messages go and how to connect.
struct Broker {
    host: String,
    port: u16,
    /// `mqtt://host:port`, for messages.
    shown: String,
    client_id: String,
    username: Option<String>,
    password: Option<SecretString>,
    prefix: String,
    timeout: Duration,
}

/// One level of a topic: `/`, `+`, `#` (and `%`, to stay reversible) percent-encoded, an
/// empty value `_`.
fn level(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '/' => out.push_str("%2F"),
            '+' => out.push_str("%2B"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out
}

/// A batch as messages: per resource (its record if the batch has it, and its points) on
/// its own topic, the batch's cost lines on `<prefix>/_costs/<agent id>` and its errors on
/// `<prefix>/_errors/<agent id>`. Each message carries the batch's header (`batch_id`,
/// `agent_id`, `task`, `collected_at`), so a subscriber can dedupe a batch sent twice.
pub fn messages(prefix: &str, batch: &Batch) -> Vec<(String, Vec<u8>)> {
    #[derive(Default)]
    struct Group<'a> {
        resource: Option<&'a skymeter_model::Resource>,
        points: Vec<&'a skymeter_model::Point>,
    }
    let mut groups: BTreeMap<[String; 4], Group<'_>> = BTreeMap::new();
    let key = |r: &ResourceRef| {
        [
            r.provider.to_string(),
            r.account.to_string(),
            r.region.to_string(),
            r.id.to_string(),
        ]
    };
    for r in &batch.resources {
        groups.entry(key(&r.reference())).or_default().resource = Some(r);
    }
    for p in &batch.points {
        groups.entry(key(&p.resource)).or_default().points.push(p);
    }
    let with_header = |mut v: serde_json::Value| {
        v["schema"] = batch.schema.into();
        v["batch_id"] = batch.batch_id.to_string().into();
        v["agent_id"] = batch.agent_id.to_string().into();
        v["task"] = batch.task.to_string().into();
        v["collected_at"] = batch.collected_at.to_rfc3339().into();
        serde_json::to_vec(&v).expect("records serialize")
    };
    let mut out = Vec::new();
    for (parts, g) in groups {
        let levels: Vec<String> = parts.iter().map(|p| level(p)).collect();
        out.push((
            format!("{prefix}/{}", levels.join("/")),
            with_header(serde_json::json!({ "resource": g.resource, "points": g.points })),
        ));
    }
    let agent = level(&batch.agent_id);
    if !batch.costs.is_empty() {
        out.push((
            format!("{prefix}/_costs/{agent}"),
            with_header(serde_json::json!({ "costs": batch.costs })),
        ));
    }
    if !batch.errors.is_empty() {
        out.push((
            format!("{prefix}/_errors/{agent}"),
            with_header(serde_json::json!({ "errors": batch.errors })),
        ));
    }
    out
}

impl Broker {
    /// Connects, publishes every message with QoS 1, and waits for each PUBACK.
    async fn send(&self, messages: Vec<(String, Vec<u8>)>) -> Result<(), Failure> {
        let fail = |message: String, needs_action: bool| Failure {
            message,
            retry_after: None,
            needs_action,
        };
        let mut options = MqttOptions::new(&self.client_id, &self.host, self.port);
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(64 << 20, 64 << 20);
        if let Some(user) = &self.username {
            let password = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string())
                .unwrap_or_default();
            options.set_credentials(user.clone(), password);
        }
        let total = messages.len();
        let (client, mut events) = AsyncClient::new(options, total.max(1) + 8);
        let publisher = client.clone();
        tokio::spawn(async move {
            for (topic, payload) in messages {
                if publisher
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let work = async {
            let mut acked = 0usize;
            while acked < total {
                match events.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(ack)))
                        if ack.code != ConnectReturnCode::Success =>
                    {
                        let auth = matches!(
                            ack.code,
                            ConnectReturnCode::BadUserNamePassword
                                | ConnectReturnCode::NotAuthorized
                        );
                        return Err(fail(
                            format!(
                                "the broker {} refused the connection ({:?}){}",
                                self.shown,
                                ack.code,
                                if auth {
                                    "; check `username` and `password`"
                                } else {
                                    ""
                                }
                            ),
                            auth,
                        ));
                    }
                    Ok(Event::Incoming(Incoming::PubAck(_))) => acked += 1,
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        return Err(fail(
                            format!(
                                "MQTT to {}: {e}; {acked} of {total} messages acknowledged, the batch stays in the buffer",
                                self.shown
                            ),
                            false,
                        ))
                    }
                }
            }
            Ok(())
        };
        let result = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(fail(
                format!(
                    "the broker {} did not acknowledge the batch within {}; raise `timeout` or check the broker",
                    self.shown,
                    humantime::format_duration(self.timeout)
                ),
                false,
            )),
        };
        if result.is_ok() {
            // A clean goodbye: the broker keeps the session, and nothing is left in flight.
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Ok(ev) = events.poll().await {
                    if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                        break;
                    }
                }
            })
            .await;
        }
        result
    }
}

#[async_trait]
impl Deliver for Broker {
    fn destination(&self) -> &str {
        &self.shown
    }

    async fn deliver(&self, body: Vec<u8>, batch_id: &str) -> Outcome {
        let batch = match read_batch(&body, batch_id) {
            Ok(b) => b,
            Err(outcome) => return outcome,
        };
        match self.send(messages(&self.prefix, &batch)).await {
            Ok(()) => Outcome::Delivered,
            Err(f) => Outcome::Failed(f),
        }
    }
}

#[cfg(test)]
mod tests;
