//! What the server's tests take from the testkit: the in-memory store, the server running
//! over it on 127.0.0.1:0, and the record builders.

#![allow(unused_imports)]

pub use skymeter_testkit::memstore::MemStore;
pub use skymeter_testkit::records::{batch, host, point, t};
pub use skymeter_testkit::server::TestServer;
