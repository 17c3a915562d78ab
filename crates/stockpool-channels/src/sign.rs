//! HMAC-SHA256, the signature every channel we take webhooks from uses.
//!
//! The generic webhook signs hex digests; Shopify and WooCommerce sign base64 ones of the
//! same MAC. Signing and verifying live here once, so that verification is constant time
//! everywhere (hmac's `verify_slice`, which compares with `subtle`): a comparison that
//! stops at the first differing byte would let a caller find a valid signature byte by
//! byte from response times.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag in bytes.
pub(crate) const TAG_BYTES: usize = 32;

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts a key of any length (long keys are hashed first), so this never fails.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac
}

/// The HMAC-SHA256 tag of `body` under `secret`.
pub(crate) fn hmac_sha256(secret: &[u8], body: &[u8]) -> [u8; TAG_BYTES] {
    mac(secret, body).finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `body` under `secret`, compared in constant time.
pub(crate) fn verify_hmac_sha256(secret: &[u8], body: &[u8], tag: &[u8]) -> bool {
    mac(secret, body).verify_slice(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe".
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify_hmac_sha256(b"Jefe", b"what do ya want for nothing?", &tag));
        assert!(!verify_hmac_sha256(b"jefe", b"what do ya want for nothing?", &tag));
        assert!(!verify_hmac_sha256(b"Jefe", b"what do ya want for nothing?", &tag[..31]));
    }
}
