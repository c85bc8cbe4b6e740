//! Verification of Meta's `X-Hub-Signature-256` header: HMAC-SHA256 of the raw POST body under
//! the app secret. Only [`verify`] can produce a [`VerifiedBody`], so code that takes one can
//! only ever see bytes that passed the check.

use std::fmt;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 output size, in bytes.
const DIGEST: usize = 32;
const PREFIX: &[u8] = b"sha256=";

/// The app secrets a signature may be made with: more than one while a secret is rotated.
///
/// Each secret is kept as a keyed HMAC state, so a request does not re-derive the key pads.
/// `Debug` prints only how many secrets there are; there is deliberately no `Display`.
#[derive(Clone)]
pub struct AppSecrets {
    keyed: Vec<HmacSha256>,
}

/// Why a list of app secrets was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppSecretsError {
    #[error("no app secret given")]
    Empty,
    /// Carries the position only: the value must not reach a log.
    #[error("app secret #{position} is blank")]
    Blank { position: usize },
}

impl AppSecrets {
    /// Surrounding whitespace is trimmed: Meta's secrets are 32 hex characters, and a trailing
    /// newline from a file or an environment variable would otherwise make every request fail.
    pub fn new(secrets: Vec<String>) -> Result<Self, AppSecretsError> {
        if secrets.is_empty() {
            return Err(AppSecretsError::Empty);
        }
        let mut keyed = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            let secret = secret.trim();
            if secret.is_empty() {
                return Err(AppSecretsError::Blank {
                    position: index + 1,
                });
            }
            keyed.push(keyed_mac(secret.as_bytes()));
        }
        Ok(Self { keyed })
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.keyed.len()
    }

    /// Always false: construction refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty()
    }
}

impl TryFrom<Vec<String>> for AppSecrets {
    type Error = AppSecretsError;

    fn try_from(secrets: Vec<String>) -> Result<Self, Self::Error> {
        Self::new(secrets)
    }
}

impl fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSecrets")
            .field("count", &self.keyed.len())
            .finish()
    }
}

/// A request body whose signature matched one of the app secrets. The field is private and
/// there is no other constructor than [`verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedBody(Bytes);

impl VerifiedBody {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for VerifiedBody {
    // Bodies carry customers' messages: a stray `{:?}` must not put them in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedBody")
            .field("len", &self.0.len())
            .finish()
    }
}

/// Why a signature was refused. Messages are safe to log: they never contain a secret, the
/// expected digest or the received one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Hub-Signature-256 header missing")]
    Missing,
    #[error("X-Hub-Signature-256 header malformed: {0}")]
    Malformed(Malformed),
    #[error("X-Hub-Signature-256 does not match the body under any app secret")]
    Mismatch,
}

impl SignatureError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

/// What is wrong with a malformed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("no sha256= prefix")]
    Prefix,
    #[error("digest is not hexadecimal")]
    Hex,
    #[error("digest is not 64 hex digits")]
    Length,
}

/// Checks `header` (the raw `X-Hub-Signature-256` value, `sha256=<hex>`, either hex case)
/// against HMAC-SHA256 of the exact `body` bytes under each secret, in constant time.
pub fn verify(
    secrets: &AppSecrets,
    header: Option<&[u8]>,
    body: Bytes,
) -> Result<VerifiedBody, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = parse_header(header).map_err(SignatureError::Malformed)?;
    for keyed in &secrets.keyed {
        let mut mac = keyed.clone();
        mac.update(&body);
        if mac.verify_slice(&expected).is_ok() {
            return Ok(VerifiedBody(body));
        }
    }
    Err(SignatureError::Mismatch)
}

/// The header value Meta would send for `body` signed with `secret`: `sha256=<lowercase hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = keyed_mac(secret);
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(PREFIX.len() + 2 * DIGEST);
    out.push_str("sha256=");
    out.push_str(&hex::encode(digest));
    out
}

fn parse_header(header: &[u8]) -> Result<[u8; DIGEST], Malformed> {
    let header = header.trim_ascii();
    let hex_digits = header.strip_prefix(PREFIX).ok_or(Malformed::Prefix)?;
    if hex_digits.len() != 2 * DIGEST {
        return Err(Malformed::Length);
    }
    let mut digest = [0u8; DIGEST];
    // `hex` accepts both cases.
    hex::decode_to_slice(hex_digits, &mut digest).map_err(|_| Malformed::Hex)?;
    Ok(digest)
}

/// HMAC keyed with `secret`. HMAC takes keys of any length (RFC 2104 pads or hashes them), so
/// `new_from_slice` cannot fail here whatever the secret.
fn keyed_mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of every length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secrets(list: &[&str]) -> AppSecrets {
        AppSecrets::new(list.iter().map(|s| s.to_string()).collect()).expect("valid secrets")
    }

    #[test]
    fn rfc4231_vectors() {
        // Test case 2: short key.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block, hashed first.
        assert_eq!(
            sign(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn verifies_own_signature() {
        let s = secrets(&["s3cret"]);
        let body = Bytes::from_static(br#"{"object":"whatsapp_business_account"}"#);
        let header = sign(b"s3cret", &body);
        let verified = verify(&s, Some(header.as_bytes()), body.clone()).expect("verifies");
        assert_eq!(verified.as_bytes(), &body[..]);
        assert_eq!(verified.into_bytes(), body);
    }

    #[test]
    fn uppercase_hex_and_surrounding_whitespace_accepted() {
        let s = secrets(&["s3cret"]);
        let body = Bytes::from_static(b"{}");
        let header = sign(b"s3cret", &body);
        let upper = format!("sha256={}", header["sha256=".len()..].to_ascii_uppercase());
        assert!(verify(&s, Some(upper.as_bytes()), body.clone()).is_ok());
        let padded = format!(" {header}\t");
        assert!(verify(&s, Some(padded.as_bytes()), body).is_ok());
    }

    #[test]
    fn rotation_accepts_any_listed_secret() {
        let s = secrets(&["old", "new"]);
        let body = Bytes::from_static(b"{\"a\":1}");
        for secret in ["old", "new"] {
            let header = sign(secret.as_bytes(), &body);
            assert!(verify(&s, Some(header.as_bytes()), body.clone()).is_ok());
        }
        let other = sign(b"neither", &body);
        assert_eq!(
            verify(&s, Some(other.as_bytes()), body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let s = secrets(&["k"]);
        let body = Bytes::from_static(b"{}");
        assert_eq!(verify(&s, None, body.clone()), Err(SignatureError::Missing));
        let good = sign(b"k", &body);
        let hex_part = &good["sha256=".len()..];
        let cases: Vec<(String, Malformed)> = vec![
            (String::new(), Malformed::Prefix),
            (hex_part.to_string(), Malformed::Prefix),
            (format!("sha1={hex_part}"), Malformed::Prefix),
            (format!("SHA256={hex_part}"), Malformed::Prefix),
            ("sha256=".to_string(), Malformed::Length),
            (format!("sha256={}", &hex_part[..62]), Malformed::Length),
            (format!("sha256={hex_part}00"), Malformed::Length),
            (format!("sha256=zz{}", &hex_part[2..]), Malformed::Hex),
            (format!("sha256={},", &hex_part[..63]), Malformed::Hex),
        ];
        for (header, want) in cases {
            assert_eq!(
                verify(&s, Some(header.as_bytes()), body.clone()),
                Err(SignatureError::Malformed(want)),
                "header {header:?}"
            );
        }
        assert_eq!(SignatureError::Missing.reason(), "missing");
        assert_eq!(
            SignatureError::Malformed(Malformed::Hex).reason(),
            "malformed"
        );
        assert_eq!(SignatureError::Mismatch.reason(), "mismatch");
    }

    #[test]
    fn hashes_the_exact_bytes_meta_sent() {
        // Meta escapes non-ASCII and may escape '/': re-serializing would change the bytes.
        let raw = br#"{"text":{"body":"caf\u00e9 https:\/\/example.com"}}"#;
        let body = Bytes::from_static(raw);
        let header = sign(b"k", raw);
        let s = secrets(&["k"]);
        assert!(verify(&s, Some(header.as_bytes()), body).is_ok());
        let reserialized =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(raw).expect("json"))
                .expect("serializes");
        assert_ne!(&reserialized[..], &raw[..]);
        assert_eq!(
            verify(&s, Some(header.as_bytes()), Bytes::from(reserialized)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn secrets_are_validated_and_never_printed() {
        assert_eq!(AppSecrets::new(vec![]).err(), Some(AppSecretsError::Empty));
        assert_eq!(
            AppSecrets::new(vec!["ok".into(), "  ".into()]).err(),
            Some(AppSecretsError::Blank { position: 2 })
        );
        let s = AppSecrets::try_from(vec!["topsecretvalue".into(), "other".into()])
            .expect("valid secrets");
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty());
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("topsecretvalue"));
        assert!(shown.contains('2'));
    }

    #[test]
    fn trimmed_secret_matches_untrimmed_signature() {
        let s = secrets(&["abc\n"]);
        let body = Bytes::from_static(b"x");
        let header = sign(b"abc", &body);
        assert!(verify(&s, Some(header.as_bytes()), body).is_ok());
    }

    #[test]
    fn error_messages_carry_no_digest() {
        let s = secrets(&["k"]);
        let body = Bytes::from_static(b"{}");
        let wrong = sign(b"other", &body);
        let expected = sign(b"k", &body);
        let err = verify(&s, Some(wrong.as_bytes()), body).expect_err("mismatch");
        let message = err.to_string();
        assert!(!message.contains(&wrong["sha256=".len()..]));
        assert!(!message.contains(&expected["sha256=".len()..]));
    }

    proptest! {
        // No failure files: the shrunk case is printed, and the checkout stays clean.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_body_any_secret_round_trips(
            secret in "[ -~]{1,80}".prop_filter("not blank", |s| !s.trim().is_empty()),
            body in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let trimmed = secret.trim();
            let s = secrets(&[trimmed]);
            let header = sign(trimmed.as_bytes(), &body);
            prop_assert!(verify(&s, Some(header.as_bytes()), Bytes::from(body)).is_ok());
        }

        #[test]
        fn any_single_bit_flip_in_body_fails(
            body in proptest::collection::vec(any::<u8>(), 1..1024),
            bit in any::<prop::sample::Index>(),
        ) {
            let s = secrets(&["flip"]);
            let header = sign(b"flip", &body);
            let mut flipped = body;
            let at = bit.index(flipped.len() * 8);
            flipped[at / 8] ^= 1 << (at % 8);
            prop_assert_eq!(
                verify(&s, Some(header.as_bytes()), Bytes::from(flipped)),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn any_single_bit_flip_in_digest_fails(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            bit in 0usize..(DIGEST * 8),
        ) {
            let s = secrets(&["flip"]);
            let header = sign(b"flip", &body);
            let mut digest = [0u8; DIGEST];
            hex::decode_to_slice(&header["sha256=".len()..], &mut digest).expect("hex");
            digest[bit / 8] ^= 1 << (bit % 8);
            let forged = format!("sha256={}", hex::encode(digest));
            prop_assert_eq!(
                verify(&s, Some(forged.as_bytes()), Bytes::from(body)),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn arbitrary_headers_never_panic(
            header in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let s = secrets(&["k"]);
            let result = verify(&s, Some(&header), Bytes::from_static(b"{}"));
            prop_assert!(result.is_err());
        }
    }
}
