pub mod proto {
    tonic::include_proto!("spaceone.api.inventory.plugin");
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("collector_descriptor");
}
