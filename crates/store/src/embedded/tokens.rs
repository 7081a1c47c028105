//! API tokens: `sky_<id>_<secret>`, where `id` is 5 random bytes in hex (public: listed,
//! used to revoke, and to find the row) and `secret` is 32 random bytes from the OS, base64url.
//!
//! Only SHA-256 of the whole token is stored. A fast hash is the right tool here, unlike
//! for passwords: slow, salted KDFs (argon2, bcrypt) exist to make guessing low-entropy
//! human passwords expensive, but a token carries 256 bits from the OS's CSPRNG, so no
//! amount of hashing speed makes guessing it feasible, while a slow KDF would add
//! tens of milliseconds to every authenticated request. The stored hash is compared in
//! constant time.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "sky_";

/// A fresh (public id, token).
pub fn generate() -> (String, String) {
    let mut id = [0u8; 5];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let token = format!("{PREFIX}{id}_{secret}");
    (id, token)
}

/// The public id of a well-formed token.
pub fn public_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 10 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some(id)
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality whose time does not depend on where the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_a_public_id_and_256_bit_secret() {
        let (id, token) = generate();
        assert_eq!(public_id(&token), Some(id.as_str()));
        let secret = token.rsplit_once('_').map(|(_, s)| s).unwrap_or_default();
        // The secret may itself contain `_`; the id never does.
        let secret_full = &token[PREFIX.len() + id.len() + 1..];
        assert!(secret_full.ends_with(secret));
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(secret_full)
                .unwrap()
                .len(),
            32
        );
        assert_eq!(public_id("sky_zz_abc"), None);
        assert_eq!(public_id("bearer"), None);
        assert!(ct_eq(&hash(&token), &hash(&token)));
        assert!(!ct_eq(&hash(&token), &hash("sky_0000000000_x")));
    }
}
