//! Repair of lone UTF-16 surrogate escapes, which JSON allows and strict parsers refuse.

/// Rewrites every `\uXXXX` escape of an unpaired UTF-16 surrogate as `\ufffd`, in place (the
/// same six bytes long). Items are copied byte for byte, and JSON's grammar lets a lone
/// surrogate through, but strict parsers (serde_json among them, so the tracker too) refuse
/// it: an event carrying one could not be read downstream. Everything else stays Meta's bytes.
pub(super) fn repair_lone_surrogates(json: &mut [u8]) {
    const REPLACEMENT: &[u8; 6] = br"\ufffd";
    let unit_at = |json: &[u8], at: usize| -> Option<u16> {
        let hex = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        // Outside `\uXXXX`, an escape is the backslash and one character (`\\` included).
        let Some(unit) = (json.get(i + 1) == Some(&b'u'))
            .then(|| unit_at(json, i + 2))
            .flatten()
        else {
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => {
                let low = (json.get(i + 6) == Some(&b'\\') && json.get(i + 7) == Some(&b'u'))
                    .then(|| unit_at(json, i + 8))
                    .flatten();
                if matches!(low, Some(0xDC00..=0xDFFF)) {
                    i += 12;
                } else {
                    json[i..i + 6].copy_from_slice(REPLACEMENT);
                    i += 6;
                }
            }
            0xDC00..=0xDFFF => {
                json[i..i + 6].copy_from_slice(REPLACEMENT);
                i += 6;
            }
            _ => i += 6,
        }
    }
}
