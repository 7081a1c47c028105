//! [`Delivery`]: a publisher's buffer, opened at the first `publish` or `flush`; [`Buffer`]:
//! the open buffer with its sender task.

use super::config::{BufferSettings, WhenFull};
use super::deliver::Deliver;
use super::queue::{has_batches, Queue};
use super::sender::supervise;
use skymeter_plugin_api::PluginError;
use std::sync::Arc;

/// A publisher's delivery: settings and the [`Deliver`] until the first `publish` or
/// `flush` opens the buffer. Building it (`skymeter validate`) touches neither the disk nor
/// the network.
pub struct Delivery<D: Deliver> {
    settings: Arc<BufferSettings>,
    deliver: Arc<D>,
    open: Option<Arc<Buffer>>,
}

impl<D: Deliver> Delivery<D> {
    pub fn new(settings: BufferSettings, deliver: Arc<D>) -> Self {
        Delivery {
            settings: Arc::new(settings),
            deliver,
            open: None,
        }
    }

    /// The buffer, opened (and its sender started) on the first call.
    pub async fn open(&mut self) -> Result<&Arc<Buffer>, PluginError> {
        if self.open.is_none() {
            let buffer = Buffer::open(self.settings.clone(), self.deliver.clone()).await?;
            self.open = Some(buffer);
        }
        Ok(self.open.as_ref().expect("just set"))
    }

    /// Whether `flush` has anything to do: the buffer is open, or batches from a previous
    /// run wait on disk.
    pub fn has_work(&self) -> bool {
        self.open.is_some() || has_batches(&self.settings.dir)
    }

    /// Writes one batch's body to the buffer (see [`Buffer::push`]).
    pub async fn publish(&mut self, batch_id: &str, body: Vec<u8>) -> Result<(), PluginError> {
        self.open().await?.push(batch_id, body).await
    }

    /// Delivers what is buffered, for at most the settings' `flush_wait` (see
    /// [`Buffer::flush`]); with nothing published and nothing left from before, does nothing.
    pub async fn flush(&mut self) -> Result<(), PluginError> {
        if self.has_work() {
            self.open().await?.flush().await;
        }
        Ok(())
    }
}

/// The open buffer: its queue, its sender task and the directory's lock. Dropping it stops
/// the sender; what was not delivered stays on disk for the next start.
pub struct Buffer {
    settings: Arc<BufferSettings>,
    queue: Arc<Queue>,
    sender: tokio::task::JoinHandle<()>,
    /// Held, not read: the buffer directory's lock, released with the buffer.
    _lock: std::fs::File,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

impl Buffer {
    async fn open<D: Deliver>(
        settings: Arc<BufferSettings>,
        deliver: Arc<D>,
    ) -> Result<Arc<Buffer>, PluginError> {
        let (queue, lock) = Queue::open(settings.dir.clone(), settings.terms).await?;
        let waiting = queue.len();
        if waiting > 0 {
            tracing::info!(
                target: "skymeter::delivery",
                task = %settings.task,
                "{waiting} batch(es) left from a previous run in {} are sent first",
                settings.dir.display()
            );
        }
        let sender = tokio::spawn(supervise(
            queue.clone(),
            deliver,
            settings.retry,
            settings.task.clone(),
            settings.terms,
        ));
        Ok(Arc::new(Buffer {
            settings,
            queue,
            sender,
            _lock: lock,
        }))
    }

    /// Batches waiting to be delivered.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Batches deleted by `when_full = "drop_oldest"` since the buffer was opened.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// Writes one batch's body durably (see the queue) and returns; the sender delivers it.
    /// When the buffer is full, waits for room or drops the oldest batches, as `when_full`
    /// says.
    pub async fn push(&self, batch_id: &str, body: Vec<u8>) -> Result<(), PluginError> {
        let s = &self.settings;
        let size = body.len() as u64;
        match s.when_full {
            WhenFull::Block => {
                if !self.queue.fits(size, s.max_size) {
                    tracing::warn!(
                        target: "skymeter::delivery",
                        task = %s.task,
                        "buffer {} is full ({} batch(es), {} of {} bytes); waiting for {} to take some before accepting more (when_full = \"block\")",
                        s.dir.display(), self.queue.len(), self.queue.bytes(), s.max_size, s.terms.receiver
                    );
                    self.queue.wait_for_room(size, s.max_size).await;
                }
            }
            WhenFull::DropOldest => {
                let dropped = self.queue.drop_oldest(size, s.max_size).await;
                if dropped > 0 {
                    tracing::warn!(
                        target: "skymeter::delivery",
                        task = %s.task,
                        "buffer {} is full: dropped the {dropped} oldest undelivered batch(es) ({} dropped since start); {} is not keeping up or unreachable",
                        s.dir.display(), self.queue.dropped(), s.terms.receiver
                    );
                }
            }
        }
        self.queue.push(batch_id, body).await
    }

    /// Asks the sender for a try now and waits until the buffer is empty, for at most
    /// `flush_wait`; what is left stays on disk, sent first at the next start.
    pub async fn flush(&self) {
        let s = &self.settings;
        self.queue.kick.notify_one();
        let left = self
            .queue
            .wait_until_empty(tokio::time::Instant::now() + s.flush_wait)
            .await;
        if left > 0 {
            tracing::warn!(
                target: "skymeter::delivery",
                task = %s.task,
                "{left} undelivered batch(es) stay in {} and are sent when the agent starts again",
                s.dir.display()
            );
        }
    }
}
