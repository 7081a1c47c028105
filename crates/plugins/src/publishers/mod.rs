//! Publishers: destinations for batches.

pub mod file;
pub mod http;
pub mod mqtt;
pub mod nats;
pub mod otlp;
pub mod postgres;
pub mod remote_write;
pub mod server;
pub mod stdout;
