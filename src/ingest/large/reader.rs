//! Reading a large input a block of whole lines at a time, plain or decompressed as it is read,
//! with the next block read on another thread while this one is parsed.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::super::Compression;
use super::super::compress::{FrameTable, StreamDecoder, read_up_to};

/// How much of the file the first pass reads at a time (it reads the next block while the
/// threads parse this one, so two are in memory), at most: see `block_bytes`.
pub(super) const BLOCK_BYTES: u64 = 16 << 20;

/// The block of a compressed file (see `block_bytes`).
const COMPRESSED_BLOCK_BYTES: u64 = 8 << 20;

/// The block size for a plain file of `len` bytes: a 32nd of it, between 4 and 16 MiB. The
/// two blocks are most of the memory a scan of a smaller export takes (small blocks are as
/// fast there), while on a large one each block costs some time to set up and wait out
/// (4 MiB blocks are a quarter slower at 1 GB). A compressed file's decompressed size is not
/// known: 8 MiB, as fast there (decompressing is the slower side) and beside the decoder's
/// own buffers. Either way no more than the file can hold (a compressed one 8 times its
/// size, about what JSON compresses to, as `plan` counts it), so that a small file surveyed
/// (`ABORTAUDIT_SURVEY_ABOVE`) does not fill two large blocks with zeros first.
pub(super) fn block_bytes(encoding: Encoding, len: u64) -> u64 {
    const AT_LEAST: u64 = 64 << 10;
    match encoding {
        Encoding::Plain => (len / 32)
            .clamp(4 << 20, BLOCK_BYTES)
            .min(len.max(AT_LEAST)),
        Encoding::Compressed { .. } => {
            COMPRESSED_BLOCK_BYTES.min(len.saturating_mul(8).max(AT_LEAST))
        }
    }
}

/// How an input the two passes read is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    /// A plain file: the second pass reads the kept spans where they are.
    Plain,
    /// A gzip or zstd file (`compression`), decompressed as it is read (under the bomb guard:
    /// at most `limit` bytes when a fixed limit is set), twice: the second pass decompresses
    /// it again (where the first noted frames or places, only where the kept spans are) and
    /// picks the kept spans out on the way.
    Compressed {
        limit: Option<u64>,
        compression: Compression,
    },
}

/// An input opened for one pass.
pub(super) enum Opened {
    Plain(File),
    Compressed(Box<StreamDecoder>),
}

impl Opened {
    pub(super) fn open(path: &Path, encoding: Encoding) -> Result<Opened, String> {
        let io = |e: std::io::Error| format!("cannot read: {e}");
        Ok(match encoding {
            Encoding::Plain => Opened::Plain(File::open(path).map_err(io)?),
            Encoding::Compressed { limit, .. } => {
                match StreamDecoder::open(path, limit).map_err(io)? {
                    Some(decoder) => Opened::Compressed(Box::new(decoder)),
                    None => return Err("cannot read: it is no longer gzip or zstd data".to_owned()),
                }
            }
        })
    }

    /// Counts a block gone through on the progress bar: its bytes for a plain file, whose size
    /// the bar's total holds; for a compressed one, the compressed bytes read so far.
    pub(super) fn progress(&self) -> impl Fn(&indicatif::ProgressBar, usize) + Send + Sync + use<> {
        let compressed = match self {
            Opened::Plain(_) => None,
            Opened::Compressed(decoder) => Some(decoder.compressed_read()),
        };
        let done = std::sync::atomic::AtomicU64::new(0);
        move |bar: &indicatif::ProgressBar, block: usize| match &compressed {
            None => bar.inc(block as u64),
            Some(read) => {
                let now = read.load(std::sync::atomic::Ordering::Relaxed);
                let before = done.swap(now, std::sync::atomic::Ordering::Relaxed);
                bar.inc(now.saturating_sub(before));
            }
        }
    }

    /// How the input ended, once it has been read to its end.
    pub(super) fn ended(&self) -> Ended {
        match self {
            Opened::Plain(_) => Ended::default(),
            Opened::Compressed(decoder) => Ended {
                corrupt: decoder.corrupt().map(str::to_owned),
                frames: decoder.frame_table(),
            },
        }
    }
}

/// How an input read to its end ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Ended {
    /// Why a compressed input ended early, corrupt or cut short, after what was read.
    pub(super) corrupt: Option<String>,
    /// Where each frame of a zstd file of frames decoded on their own is, or each stretch of a
    /// gzip file between the places noted in it: the second pass decodes again only those
    /// that hold kept spans.
    pub(super) frames: Option<FrameTable>,
}

impl Read for Opened {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Opened::Plain(file) => file.read(buf),
            Opened::Compressed(decoder) => decoder.read(buf),
        }
    }
}

/// A buffer the input is read into, a block at a time. Its bytes stay initialised from one
/// block to the next: `Read::read_to_end` would zero a block's worth of spare capacity before
/// each read, a memset of the whole input over a pass.
struct BlockBuf {
    bytes: Vec<u8>,
    filled: usize,
}

impl BlockBuf {
    fn new() -> BlockBuf {
        BlockBuf {
            bytes: Vec::new(),
            filled: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }

    /// Empties the buffer but for `start`.
    fn restart_with(&mut self, start: &[u8]) {
        if self.bytes.len() < start.len() {
            self.bytes.resize(start.len(), 0);
        }
        self.bytes[..start.len()].copy_from_slice(start);
        self.filled = start.len();
    }

    /// Appends up to `block` bytes of `reader`; 0 at its end.
    fn read_block(&mut self, reader: &mut Opened, block: u64) -> std::io::Result<usize> {
        let end = self.filled + usize::try_from(block).unwrap_or(usize::MAX);
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        let read = read_up_to(reader, &mut self.bytes[self.filled..end])?;
        self.filled += read;
        Ok(read)
    }
}

/// How a pass reads: `bytes` at a time (`block_bytes`), and a line of at most `max_line` bytes
/// (the memory budget).
#[derive(Clone, Copy, Debug)]
pub(super) struct Blocks {
    pub(super) bytes: u64,
    pub(super) max_line: u64,
}

/// Reads `reader` in blocks of whole lines (a line longer than a block is read on to its end,
/// up to `max_line` bytes), handing each to `each` with the offset of its
/// first byte in the input, while the next block is read on another thread; until the end, or
/// until `each` says to stop. Errors say what went wrong in full: `cannot read: …`, or why
/// the input is refused.
pub(super) fn line_blocks(
    reader: &mut Opened,
    Blocks {
        bytes: block_bytes,
        max_line,
    }: Blocks,
    mut each: impl FnMut(&[u8], u64) -> Result<bool, String> + Send,
) -> Result<(), String> {
    let io = |e: std::io::Error| match e.kind() {
        // Over the decompression budget: the message says it all.
        std::io::ErrorKind::FileTooLarge => e.to_string(),
        _ => format!("cannot read: {e}"),
    };
    let mut current = BlockBuf::new();
    let mut next = BlockBuf::new();
    let mut eof = current.read_block(reader, block_bytes).map_err(io)? == 0;
    // The offset of `current[0]`, always the start of a line.
    let mut offset = 0u64;
    // How much of `current` is known to hold no newline (a line being read on).
    let mut searched = 0;
    loop {
        let cut = if eof {
            current.filled
        } else {
            match memchr::memrchr(b'\n', &current.data()[searched..]) {
                Some(last) => searched + last + 1,
                None => {
                    // A line longer than a block: read on, within the memory budget (a line
                    // of a compressed input may be a bomb's, which must not be held).
                    if current.filled as u64 > max_line {
                        return Err(format!(
                            "the line at byte offset {offset} is longer than the memory budget of {} and cannot be held to be read; raise it with --memory-budget or the environment variable ABORTAUDIT_MEMORY_BUDGET",
                            crate::util::units::human_size(max_line)
                        ));
                    }
                    searched = current.filled;
                    eof = current.read_block(reader, block_bytes).map_err(io)? == 0;
                    continue;
                }
            }
        };
        // The rest of a line, after the last newline.
        next.restart_with(&current.data()[cut..]);
        searched = next.filled;
        let block = &current.data()[..cut];
        let (go_on, read) = rayon::join(
            || each(block, offset),
            || {
                if eof {
                    Ok(0)
                } else {
                    next.read_block(reader, block_bytes)
                }
            },
        );
        offset += cut as u64;
        if !go_on? || eof {
            return Ok(());
        }
        eof = read.map_err(io)? == 0;
        std::mem::swap(&mut current, &mut next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_file_size_between_4_and_16_mib_and_8_mib_compressed() {
        const MIB: u64 = 1 << 20;
        let plain = |len| block_bytes(Encoding::Plain, len);
        assert_eq!(plain(70 * MIB), 4 * MIB);
        assert_eq!(plain(256 * MIB), 8 * MIB);
        assert_eq!(plain(1000 * MIB), 16 * MIB);
        assert_eq!(plain(u64::MAX), 16 * MIB);
        assert_eq!(plain(MIB), MIB);
        assert_eq!(plain(100), 64 << 10);
        let compressed = Encoding::Compressed {
            limit: None,
            compression: Compression::Zstd,
        };
        assert_eq!(block_bytes(compressed, 70 * MIB), 8 * MIB);
        assert_eq!(block_bytes(compressed, 512 << 10), 4 * MIB);
    }
}
