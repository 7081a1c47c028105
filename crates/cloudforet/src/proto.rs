//! The generated messages and server of `spaceone.api.inventory.plugin` (build.rs), and
//! the encoded descriptors for gRPC reflection.

#![allow(
    non_camel_case_types,
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub
)]

tonic::include_proto!("spaceone.api.inventory.plugin");

/// The encoded descriptors of the protocol, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("collector_descriptor");
