//! Codecs and helpers that several plugins share.

#[cfg(test)]
pub(crate) mod testing;
