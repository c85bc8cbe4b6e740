//! Deterministic ids: hashes of canonical JSON, and instants read from Meta's fields.

use super::*;

/// `<field>:<32 hex>` (or `<part>:` when there is no field): the first 128 bits of SHA-256 over
/// the WABA id, the phone number id, the part (or, for an item lacking its own id, its kind)
/// and the canonical JSON of `item`, separated by NULs. The number id and part keep equal JSON
/// from different numbers or levels apart. Canonical = parsed, object keys sorted, serde_json's
/// compact form, so it is the same for a retry however Meta spelled the bytes.
pub(super) fn hashed_id(
    scope: &Scope<'_>,
    part: Option<Part>,
    item_key: &'static str,
    item: &RawValue,
) -> String {
    let mut hasher = HashWriter(Sha256::new());
    hasher.0.update(scope.waba_id.as_bytes());
    hasher.0.update([0]);
    hasher
        .0
        .update(scope.phone_number_id.unwrap_or("").as_bytes());
    hasher.0.update([0]);
    hasher
        .0
        .update(part.map_or(item_key, Part::as_str).as_bytes());
    hasher.0.update([0]);
    let canonical = serde_json::from_str::<Value>(item.get())
        .ok()
        .and_then(|v| serde_json::to_writer(&mut hasher, &Canonical(&v)).ok());
    if canonical.is_none() {
        // Text serde_json reads raw but will not decode (a lone surrogate escape): the exact
        // bytes are still deterministic for a retry.
        hasher.0.update(item.get().as_bytes());
    }
    let digest = hasher.0.finalize();
    let prefix = scope
        .field
        .unwrap_or_else(|| part.map_or(item_key, Part::as_str));
    format!("{prefix}:{}", hex::encode(&digest[..16]))
}

pub(super) struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serializes a `Value` with object keys sorted whatever map type serde_json was built with.
pub(super) struct Canonical<'v>(pub(super) &'v Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut members: Vec<_> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut m = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    m.serialize_entry(k, &Canonical(v))?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Canonical(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// An RFC 3339 `time` exists only for years 0000..=9999.
pub(super) fn rfc3339_instant(stamp: &str) -> Option<UnixSeconds> {
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    stamp
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| (MIN..=MAX).contains(s))
        .map(UnixSeconds)
}
