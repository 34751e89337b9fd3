//! Compressed inputs: whole-file gzip and zstd, and the zstd frames of the Collector's legacy
//! length-framed stream. Recognised by their magic bytes, never by the file name.
//!
//! Everything one input decompresses to counts against one budget (`Budget`), checked as the
//! bytes come out of the decoder, so a decompression bomb (a few kilobytes that expand to
//! terabytes) is stopped at the limit with an error instead of exhausting memory.

use std::io::Read;

use ruzstd::decoding::StreamingDecoder;

pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a user raises the limit; named in the error that stops a bomb.
pub(crate) const LIMIT_HINT: &str = "raise the limit with --max-decompressed (e.g. --max-decompressed 8GiB) or the environment variable ABORTAUDIT_MAX_DECOMPRESSED";

/// The decompressed bytes one input may still produce.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Budget { limit, used: 0 }
    }

    fn exceeded(&self, what: &str, compressed_offset: usize) -> String {
        format!(
            "{what} decompresses to more than the limit of {} (stopped at compressed byte offset {compressed_offset}); this looks like a decompression bomb. If the input is genuine, {LIMIT_HINT}",
            human_size(self.limit)
        )
    }
}

/// What a compressed stream decoded to.
#[derive(Debug, Default)]
pub(crate) struct Decompressed {
    pub data: Vec<u8>,
    /// The stream was corrupt or cut short after `data` was decoded: what went wrong, and where.
    pub corrupt: Option<String>,
}

/// Why decompression produced nothing usable.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Over the budget: the whole input is refused.
    TooLarge(String),
    /// Not a valid stream at all (nothing decoded): what went wrong, and where.
    Corrupt(String),
}

impl Failure {
    pub(crate) fn message(self) -> String {
        match self {
            Failure::TooLarge(m) | Failure::Corrupt(m) => m,
        }
    }
}

enum ReadError {
    TooLarge,
    Io(std::io::Error),
}

/// Appends what `reader` yields to `out`, failing once the budget is spent.
fn read_bounded(
    reader: &mut dyn Read,
    out: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<(), ReadError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        let used = budget.used.saturating_add(n as u64);
        if used > budget.limit {
            return Err(ReadError::TooLarge);
        }
        budget.used = used;
        out.extend_from_slice(&buf[..n]);
    }
}

/// Decompresses a gzip file (one member or several concatenated, as `cat a.gz b.gz` makes).
pub(crate) fn gunzip(bytes: &[u8], budget: &mut Budget) -> Result<Decompressed, Failure> {
    let mut decoder = flate2::bufread::MultiGzDecoder::new(bytes);
    let mut out = Decompressed::default();
    match read_bounded(&mut decoder, &mut out.data, budget) {
        Ok(()) => Ok(out),
        Err(ReadError::TooLarge) => {
            let offset = bytes.len() - decoder.get_ref().len();
            Err(Failure::TooLarge(budget.exceeded("the gzip data", offset)))
        }
        Err(ReadError::Io(e)) => {
            let offset = bytes.len() - decoder.get_ref().len();
            let why = format!(
                "the gzip data is corrupt or cut short near compressed byte offset {offset}, after {} decompressed bytes: {e}",
                out.data.len()
            );
            if out.data.is_empty() {
                Err(Failure::Corrupt(format!(
                    "{why}; expected a gzip-compressed trace export"
                )))
            } else {
                out.corrupt = Some(why);
                Ok(out)
            }
        }
    }
}

/// Decompresses zstd data: one or more frames (skippable frames are skipped). `what` names the
/// data in messages ("the zstd data", "frame 3"); `base` is its offset in the input.
pub(crate) fn unzstd(
    bytes: &[u8],
    budget: &mut Budget,
    what: &str,
    base: usize,
) -> Result<Decompressed, Failure> {
    let mut out = Decompressed::default();
    let mut src: &[u8] = bytes;
    let mut frames = 0usize;
    while !src.is_empty() {
        let offset = base + bytes.len() - src.len();
        let magic = src
            .get(..4)
            .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        if let Some(0x184D_2A50..=0x184D_2A5F) = magic {
            // A skippable frame: 4-byte magic, 4-byte little-endian length, that many bytes.
            let len = src
                .get(4..8)
                .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize);
            match len.and_then(|l| src.get(8 + l..)) {
                Some(rest) => {
                    src = rest;
                    continue;
                }
                None => {
                    out.corrupt = Some(format!(
                        "{what}: the skippable zstd frame at byte offset {offset} is cut short"
                    ));
                    break;
                }
            }
        }
        if !src.starts_with(&ZSTD_MAGIC) {
            let why = format!(
                "{what}: expected a zstd frame at byte offset {offset}, found bytes {}",
                hex_prefix(src)
            );
            out.corrupt = Some(why);
            break;
        }
        let decoded_before = out.data.len();
        let mut decoder = match StreamingDecoder::new(&mut src) {
            Ok(d) => d,
            Err(e) => {
                out.corrupt = Some(format!(
                    "{what}: the zstd frame at byte offset {offset} has a bad header: {e}"
                ));
                break;
            }
        };
        let result = read_bounded(&mut decoder, &mut out.data, budget);
        let checksum = (
            decoder.decoder.get_checksum_from_data(),
            decoder.decoder.get_calculated_checksum(),
        );
        drop(decoder);
        let reached = base + bytes.len() - src.len();
        match result {
            Ok(()) => {
                if let (Some(stored), Some(computed)) = checksum
                    && stored != computed
                {
                    out.corrupt = Some(format!(
                        "{what}: the zstd frame at byte offset {offset} fails its checksum (content corrupt)"
                    ));
                    break;
                }
            }
            Err(ReadError::TooLarge) => {
                return Err(Failure::TooLarge(budget.exceeded(what, reached)));
            }
            Err(ReadError::Io(e)) => {
                out.corrupt = Some(format!(
                    "{what}: the zstd frame at byte offset {offset} is corrupt or cut short near byte offset {reached}, after {} decompressed bytes: {e}",
                    out.data.len() - decoded_before
                ));
                break;
            }
        }
        frames += 1;
    }
    if out.data.is_empty()
        && let Some(why) = out.corrupt.take()
    {
        return Err(Failure::Corrupt(why));
    }
    if frames == 0 && out.data.is_empty() && out.corrupt.is_none() {
        return Err(Failure::Corrupt(format!(
            "{what}: holds no zstd frame at byte offset {base}"
        )));
    }
    Ok(out)
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 8 { "…" } else { "" };
    format!("{}{more}", shown.join(" "))
}

/// A byte count as people write it: `1 GiB`, `64 KiB`, `1500 bytes`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    if bytes == u64::MAX {
        return "unlimited".to_owned();
    }
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// Reads a size as users write it: `1073741824`, `512MiB`, `4G` (binary), `2GB` (decimal),
/// `unlimited`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
        return Ok(u64::MAX);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(size_error(text)),
    };
    let n: u64 = digits.parse().map_err(|_| size_error(text))?;
    n.checked_mul(multiplier).ok_or_else(|| size_error(text))
}

fn size_error(text: &str) -> String {
    format!(
        "{text:?} is not a size: expected a number of bytes, optionally with a unit (KiB, MiB, GiB, TiB, or KB, MB, GB, TB), or `unlimited`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("4 g"), Ok(4 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("unlimited"), Ok(u64::MAX));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(1500), "1500 bytes");
    }

    #[test]
    fn gzip_round_trips_and_stops_at_the_budget() {
        use std::io::Write;
        let data = vec![b'x'; 100_000];
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        let out = gunzip(&gz, &mut Budget::new(1 << 20)).unwrap();
        assert_eq!(out.data, data);
        assert!(out.corrupt.is_none());
        match gunzip(&gz, &mut Budget::new(1000)) {
            Err(Failure::TooLarge(m)) => assert!(m.contains("1000 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        let cut = gunzip(&gz[..gz.len() / 2], &mut Budget::new(1 << 20)).unwrap();
        assert!(cut.corrupt.is_some());
        assert!(matches!(
            gunzip(&[0x1f, 0x8b, 0, 0], &mut Budget::new(1 << 20)),
            Err(Failure::Corrupt(_))
        ));
    }

    #[test]
    fn zstd_reads_several_frames_and_skips_skippable_ones() {
        let a = ruzstd::encoding::compress_to_vec(
            &b"hello "[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let b = ruzstd::encoding::compress_to_vec(
            &b"world"[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let mut both = a.clone();
        both.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        both.extend_from_slice(&b);
        let out = unzstd(&both, &mut Budget::new(1 << 20), "the zstd data", 0).unwrap();
        assert_eq!(out.data, b"hello world");
        assert!(out.corrupt.is_none(), "{:?}", out.corrupt);
        let mut trailing = a.clone();
        trailing.extend_from_slice(b"junk");
        let out = unzstd(&trailing, &mut Budget::new(1 << 20), "the zstd data", 0).unwrap();
        assert_eq!(out.data, b"hello ");
        assert!(out.corrupt.unwrap().contains("byte offset"));
    }
}
