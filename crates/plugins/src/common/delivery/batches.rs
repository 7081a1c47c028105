//! For publishers that buffer whole batches and whose receiver takes the records, not the
//! bytes (`mqtt`, `postgres`): the publisher that writes each batch to the buffer as gzip
//! JSON, and the way back from the buffered bytes to the batch.

use super::buffer::Delivery;
use super::config::{task_buffers, BufferConfig, Terms};
use super::deliver::{Deliver, Outcome};
use crate::common::http_post::gzip_json;
use skymeter_model::Batch;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, PluginError, Publisher, RawConfig,
};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// A publisher whose every batch goes to its buffer (as gzip JSON); `skip` leaves out the
/// batches that have nothing for the receiver.
pub struct BufferedPublisher<D: Deliver> {
    delivery: Delivery<D>,
    skip: fn(&Batch) -> bool,
}

impl<D: Deliver> BufferedPublisher<D> {
    /// The publisher of a plugin's `buffer = { … }` (checked; default directory
    /// `<data_dir>/buffer/<task>/<plugin>`) and `retry`, whose `flush` at shutdown keeps
    /// delivering for three `timeout`s. Touches neither the disk nor the network.
    pub fn configured(
        raw: &RawConfig<'_>,
        ctx: &BuildContext,
        terms: Terms,
        buffer: BufferConfig,
        retry: RetryPolicy,
        timeout: Duration,
        deliver: Arc<D>,
    ) -> Result<Self, ConfigError> {
        let settings = buffer.settings(
            raw,
            terms,
            task_buffers(ctx).join(terms.plugin),
            retry,
            timeout * 3,
            &ctx.task,
        )?;
        Ok(BufferedPublisher::new(Delivery::new(settings, deliver)))
    }

    pub fn new(delivery: Delivery<D>) -> Self {
        BufferedPublisher {
            delivery,
            skip: |_| false,
        }
    }

    /// Batches for which `skip` is true are not buffered.
    pub fn skipping(mut self, skip: fn(&Batch) -> bool) -> Self {
        self.skip = skip;
        self
    }
}

#[async_trait]
impl<D: Deliver> Publisher for BufferedPublisher<D> {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        if (self.skip)(batch) {
            return Ok(());
        }
        let body = gzip_json(batch)?;
        self.delivery
            .publish(&batch.batch_id.to_string(), body)
            .await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        self.delivery.flush().await
    }
}

/// The batch a [`BufferedPublisher`] buffered, read back; a file that cannot be read is
/// refused for good (it moves to `rejected/`, and the queue goes on).
pub fn read_batch(body: &[u8], batch_id: &str) -> Result<Batch, Outcome> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut json)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&json).map_err(|e| e.to_string()))
        .map_err(|e| Outcome::Rejected {
            answer: "unreadable batch".into(),
            reason: format!("the buffered batch cannot be read back ({e})"),
            report: serde_json::json!({"batch_id": batch_id, "error": e}),
        })
}
