//! Codecs and helpers that several plugins share.
