//! The skymeter server: HTTP API over a [`skymeter_store::Store`]. (In progress.)
