//! Trace and span ids, and the stable hashes the tool derives from text.

use std::fmt;

use base64::Engine as _;

/// A 16-byte W3C trace id. Jaeger's 8-byte ids are left-padded with zeros so they join with OTLP.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// The value of each hex digit; 0x10 for every other byte.
const HEX: [u8; 256] = {
    let mut table = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decodes an OTLP id: hex in either case (the OTLP/JSON spec), or base64 in the standard or
/// URL-safe alphabet, padded or not (proto3-JSON writers such as Tempo). The length tells them
/// apart: 16 bytes are 32 hex digits or 22-24 base64 characters.
#[inline]
pub fn decode_id<const N: usize>(raw: &str) -> Result<[u8; N], String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    let out = match decode_hex_digits::<N>(raw.as_bytes()) {
        Some(out) => out,
        None => decode_base64_id::<N>(raw)?,
    };
    if out.iter().all(|b| *b == 0) {
        return Err("is all zeros, which OTLP defines as invalid".into());
    }
    Ok(out)
}

/// The `N` bytes of base64 text in the standard or URL-safe alphabet, padded or not.
fn decode_base64_id<const N: usize>(raw: &str) -> Result<[u8; N], String> {
    let trimmed = raw.trim_end_matches('=');
    let engine = if trimmed.contains(['-', '_']) {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine
        .decode(trimmed)
        .ok()
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| {
            format!(
                "is not a {N}-byte id: expected {} hex digits or {} base64 characters",
                2 * N,
                N.div_ceil(3) * 4
            )
        })
}

/// The `N` bytes that exactly `2 * N` hex digits (either case) spell, which is how
/// `decode_id` reads them; `None` for anything else, bytes that are not UTF-8 included. Every
/// span has two or three ids, so this is on the hot path of every read: a table lookup, and
/// one check of all the digits at the end.
#[inline]
pub fn decode_hex_digits<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    if raw.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut invalid = 0u8;
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        invalid |= (high | low) & 0x10;
        out[i] = (high << 4) | (low & 0x0f);
    }
    (invalid == 0).then_some(out)
}

/// Decodes a Jaeger or Zipkin id: hex, up to `2 * N` digits, left-padded with zeros to `N`
/// bytes, so a 64-bit trace id (16 hex digits) becomes the 128-bit id OTLP writes for the same
/// trace and the two join. Ids that are not hex are tried as base64 (Jaeger's protobuf JSON).
pub fn padded_id<const N: usize>(raw: &str) -> Result<[u8; N], String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        if raw.len() > 2 * N {
            return Err(format!(
                "has {} hex digits; expected at most {}",
                raw.len(),
                2 * N
            ));
        }
        let padded = format!("{raw:0>width$}", width = 2 * N);
        return decode_id::<N>(&padded);
    }
    decode_id::<N>(raw).map_err(|_| format!("is not an id: expected up to {} hex digits", 2 * N))
}

/// A stable 64-bit hash of a text (FNV-1a), for counting distinct values without keeping them.
#[inline]
pub fn hash_text(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// FNV-1a 64 over the parts, with a separator: stable across runs, platforms and versions,
/// which a `std` hasher does not promise.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0x1f)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The signature of a finding: what a person would call the same problem (the tool, the
/// service and operation written or the vendor event type, the category), with no id or time
/// in it, so that it survives from one run to the next.
pub fn signature(tool: &str, service: &str, operation: &str, category: &str) -> String {
    fingerprint(&[tool, service, operation, category])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_decode_as_decode_id_reads_them_and_nothing_else() {
        for hex in [
            "5b8efff798038103d269b633813fc60c",
            "5B8EFFF798038103D269B633813FC60C",
            "00000000000000000000000000000001",
        ] {
            assert_eq!(
                decode_hex_digits::<16>(hex.as_bytes()),
                decode_id::<16>(hex).ok()
            );
        }
        for not_hex in [
            &b"5b8efff798038103d269b633813fc60"[..],
            b"5b8efff798038103d269b633813fc60cc",
            b"5b8efff798038103d269b633813fc60g",
            b"5b8efff798038103d269b633813fc6\xc3\xa9",
            b"5b8efff798038103d269b633813fc6\xff\xfe",
            b"W47/95gDgQPSabYzgT/GDA==========",
        ] {
            assert_eq!(decode_hex_digits::<16>(not_hex), None, "{not_hex:?}");
        }
    }

    #[test]
    fn ids_decode_from_hex_in_either_case_and_base64() {
        let hex = "5B8EFFF798038103D269B633813FC60C";
        let id = decode_id::<16>(hex).unwrap();
        assert_eq!(decode_id::<16>(&hex.to_lowercase()).unwrap(), id);
        let b64 = base64::engine::general_purpose::STANDARD.encode(id);
        assert_eq!(decode_id::<16>(&b64).unwrap(), id);
        assert_eq!(decode_id::<16>(b64.trim_end_matches('=')).unwrap(), id);
        let url = base64::engine::general_purpose::URL_SAFE.encode([0xfb; 8]);
        assert_eq!(decode_id::<8>(&url).unwrap(), [0xfb; 8]);
    }

    #[test]
    fn bad_ids_say_why() {
        assert_eq!(decode_id::<16>("").unwrap_err(), "is empty");
        assert!(decode_id::<8>("xyz").unwrap_err().contains("16 hex digits"));
        assert!(
            decode_id::<8>("0000000000000000")
                .unwrap_err()
                .contains("all zeros")
        );
        assert!(decode_id::<8>("eee19b7ec3c1b17").is_err(), "15 hex digits");
    }

    #[test]
    fn ids_are_left_padded_hex() {
        let id = padded_id::<16>("2be38093ead7a083").unwrap();
        assert_eq!(&id[..8], &[0; 8]);
        assert_eq!(id[8], 0x2b);
        assert_eq!(padded_id::<8>("ff").unwrap(), [0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(
            padded_id::<16>("4d1e00c0db9010db86154a4ba6e91385").unwrap()[0],
            0x4d
        );
        assert!(padded_id::<8>("0000000000000000").is_err());
        assert!(padded_id::<8>("123456789012345678").is_err());
        assert!(padded_id::<8>("xyz").is_err());
        assert!(padded_id::<8>("").is_err());
    }
}
