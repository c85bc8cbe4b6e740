//! `windowkeeper::ingest::signature::verify` on arbitrary header and body bytes.
//!
//! Input layout: byte 0 chooses the case, byte 1 is the header length (capped by the input),
//! then the header bytes, then the body. Checked besides "no panic":
//! - an arbitrary header is accepted only if it is the signature of the body under one of
//!   the secrets (up to surrounding whitespace and hex case, as documented);
//! - the right signature (lower- or upper-case hex) is always accepted and the verified body
//!   is the body, byte for byte;
//! - a right signature with one hex digit changed, or with a byte removed, is refused;
//! - a missing header is refused.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use windowkeeper::ingest::signature::{sign, verify, AppSecrets};

const OLD: &str = "fuzz-old-app-secret";
const NEW: &str = "fuzz-new-app-secret";

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mode = data[0];
    let header_len = (data[1] as usize).min(data.len() - 2);
    let header = &data[2..2 + header_len];
    let body = Bytes::copy_from_slice(&data[2 + header_len..]);
    let secrets = AppSecrets::new(vec![OLD.to_owned(), NEW.to_owned()]).expect("secrets");

    // Arbitrary header.
    let right_old = sign(OLD.as_bytes(), &body);
    let right_new = sign(NEW.as_bytes(), &body);
    let arbitrary = verify(&secrets, Some(header), body.clone());
    let is_right = |h: &[u8]| {
        // Documented leniency: surrounding ASCII whitespace, and hex digits of either case.
        // The prefix must still be exactly `sha256=`.
        let h = h.trim_ascii();
        let lower = h.to_ascii_lowercase();
        let lower_right =
            |r: &str| h.len() == r.len() && h.starts_with(b"sha256=") && lower == r.as_bytes();
        lower_right(&right_old) || lower_right(&right_new)
    };
    if arbitrary.is_ok() {
        assert!(
            is_right(header),
            "accepted a header that is not the body's signature: {:?}",
            String::from_utf8_lossy(header)
        );
    }

    // Missing header.
    assert!(verify(&secrets, None, body.clone()).is_err());

    // The right signature, under either secret.
    let right = if mode & 1 == 0 {
        &right_old
    } else {
        &right_new
    };
    let header_right: Vec<u8> = if mode & 2 == 0 {
        right.as_bytes().to_vec()
    } else {
        let (prefix, hex) = right.split_at(7);
        format!("{prefix}{}", hex.to_ascii_uppercase()).into_bytes()
    };
    match verify(&secrets, Some(&header_right), body.clone()) {
        Ok(verified) => assert_eq!(verified.as_bytes(), &body[..]),
        Err(error) => panic!("right signature refused: {error}"),
    }

    // One hex digit changed.
    let mut tampered = right.as_bytes().to_vec();
    let at = 7 + (mode as usize >> 2) % 64;
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    assert!(verify(&secrets, Some(&tampered), body.clone()).is_err());

    // Truncated.
    let truncated = &right.as_bytes()[..right.len() - 1];
    assert!(verify(&secrets, Some(truncated), body.clone()).is_err());
});
