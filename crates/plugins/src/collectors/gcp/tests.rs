//! Tests of the gcp collector against local servers.
