//! Enrolment secrets are kept only as salted PBKDF2-HMAC-SHA256 hashes.

use std::num::NonZeroU32;

use aws_lc_rs::pbkdf2;

const ITERATIONS: u32 = 20_000;
const SCHEME: &str = "pbkdf2-sha256";

/// `pbkdf2-sha256$<iterations>$<salt>$<hash>`, base64.
pub fn hash(secret: &str) -> String {
    let salt = weft_crypto::random_bytes::<16>();
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        secret.as_bytes(),
        &mut out,
    );
    format!(
        "{SCHEME}${ITERATIONS}${}${}",
        weft_crypto::pem::base64(&salt),
        weft_crypto::pem::base64(&out)
    )
}

/// Whether `secret` is the one `encoded` was made from (constant time).
pub fn verify(secret: &str, encoded: &str) -> bool {
    let mut parts = encoded.split('$');
    let (Some(SCHEME), Some(iterations), Some(salt), Some(expected), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iterations), Ok(salt), Ok(expected)) = (
        iterations.parse::<u32>().ok().and_then(NonZeroU32::new),
        weft_crypto::pem::unbase64(salt),
        weft_crypto::pem::unbase64(expected),
    ) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        secret.as_bytes(),
        &expected,
    )
    .is_ok()
}

/// A random secret for a registration that names none (12 characters, as Fabric CA).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    weft_crypto::random_bytes::<12>()
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_against_their_hash() {
        let encoded = hash("adminpw");
        assert!(!encoded.contains("adminpw"));
        assert!(verify("adminpw", &encoded));
        assert!(!verify("adminpx", &encoded));
        assert!(!verify("adminpw", "plain"));
        assert_ne!(hash("adminpw"), encoded, "salted");
        assert_eq!(generate().len(), 12);
    }
}
