//! Delivery shared by publishers: a durable on-disk buffer and the sender that drains it.
//!
//! A publisher with a buffer (`server` always; `http` with `buffer = { … }`) does not send
//! in `publish`: it writes the batch's body to the buffer and returns, and a background
//! sender hands the buffered batches to the publisher's [`Deliver`] one at a time, oldest
//! first, until each is delivered or refused. Nothing is lost while the receiver is down,
//! slow or restarting; order is kept; delivery is at-least-once (a batch whose answer was
//! lost is sent again), so receivers dedupe on `batch_id`.
//!
//! # Config
//!
//! `buffer = { dir = "/var/lib/skymeter/buffer/host/http", max_size = "1GB", when_full =
//! "block" }` ([`BufferConfig`]):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `dir` | `<data_dir>/buffer/<task>/<publisher>` (`server`: `<data_dir>/buffer/<task>`) | where undelivered batches wait |
//! | `max_size` | `"1GB"` | bound of the batch files: `"1GB"` (10^9), `"500MiB"` (2^20) or bytes |
//! | `when_full` | `"block"` | `block`: `publish` waits for room; `drop_oldest`: the oldest batches are deleted, counted, logged |
//!
//! The publisher's `retry = { initial, max }` sets the waits between tries (doubling, with
//! jitter; a longer `Retry-After` is waited, up to 10 minutes); `retry.attempts` is refused:
//! a batch is never given up on.
//!
//! # Guarantees
//!
//! - `publish` returns once the batch is on disk: written to `<seq>-<batch_id>.json.gz.tmp`,
//!   fsynced, renamed, the directory fsynced. A crash or a power cut loses nothing
//!   published; a torn `.tmp` is deleted when the buffer is opened.
//! - `seq` is a zero-padded sequence number that goes on across restarts: file name order
//!   is send order, and batches left by a previous run are sent first.
//! - The directory is locked (`flock` on `.lock`, Linux) while a publisher uses it: a
//!   second one gets a clear error instead of sending the same batches.
//! - A batch leaves the buffer when the receiver has it ([`Outcome::Delivered`]), when it
//!   will never take it ([`Outcome::Rejected`]: the file moves to `rejected/` with the answer
//!   beside it as `<file>.error.json`; the queue never blocks on a bad batch), or when
//!   `when_full = "drop_oldest"` makes room (counted: [`Buffer::dropped`]). The batch being
//!   sent is never dropped. [`Outcome::Failed`] keeps it and waits before the next try.
//! - The buffer is full when the new batch would take it past `max_size`; an empty buffer
//!   takes any batch, so one batch larger than the bound does not wait forever.
//! - `flush` (at shutdown) asks for a try now and waits until the buffer is empty, for at
//!   most the publisher's flush wait; the rest stays on disk for the next start.
//! - Nothing is opened before the first `publish` or `flush` ([`Delivery`]); a `flush` with
//!   nothing published and nothing left on disk creates nothing.
//! - Failures that repeat are logged once at their level (an error when a person must act,
//!   else a warning), again when the message changes and every 5 minutes, at debug level in
//!   between; a recovery is logged at info level. Log target: `skymeter::delivery`.
//!
//! # Files
//!
//! `config.rs` (`buffer = {…}`, checks, default directory), `deliver.rs` (the trait a
//! publisher implements and what each answer means), `queue.rs` (the on-disk buffer),
//! `sender.rs` (the drain loop, its backoff and failure log), `buffer.rs` (the buffer as a
//! publisher holds it: `publish`, `when_full`, `flush`).

mod batches;
mod buffer;
mod config;
mod deliver;
mod queue;
mod sender;

pub use batches::{read_batch, BufferedPublisher};
pub use buffer::{Buffer, Delivery};
pub use config::{task_buffers, BufferConfig, BufferSettings, Terms, WhenFull};
pub use deliver::{Deliver, Failure, Outcome};
pub use sender::{show, Backoff, FailureLog};
