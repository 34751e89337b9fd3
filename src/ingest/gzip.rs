//! gzip read through zlib's own stream interface (zlib-rs's, `libz-rs-sys`) rather than
//! flate2's, which hides what lets a file be inflated again from the middle: where deflate
//! blocks end (`Z_BLOCK` and `data_type`), the text before such a place that later data refers
//! back into (`inflateGetDictionary`), and how to start there (`inflatePrime`,
//! `inflateSetDictionary`). The first pass of a large export notes such places every few MiB
//! of text, as zlib's `zran` example does, so that the second inflates the stretches holding
//! the kept spans on several threads at once rather than the whole file again on one.
//!
//! Members, headers and trailers are read as flate2's `MultiGzDecoder` reads them, with its
//! messages and at the same offsets, so that what a damaged file yields and what is said of it
//! stay as they were; the tests hold the two readers to each other.

use std::io::{self, BufRead, Read};

use libz_rs_sys as zlib;

/// How much text apart the places noted are, at least: 500 a GB, each a few KiB (its window,
/// compressed), and a stretch to inflate again short enough that one holding a kept span
/// costs little more than the span (at 1 MiB, windows would take 40 MiB at 10 GB). The unit
/// tests note one every 4 KiB, so that their small files have many.
const POINT_SPACING: u64 = if cfg!(test) { 4 << 10 } else { 2 << 20 };

/// The most text a deflate stream refers back into.
const WINDOW: usize = 32 << 10;

/// A place in a gzip file at which inflating can start again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Point {
    /// Where it is in the file, in bits from its start: deflate blocks end anywhere in a byte.
    pub(crate) bit: u64,
    /// How much of the file's text comes before it.
    pub(crate) out: u64,
    /// The text before it that what follows may refer back into (up to 32 KiB, the member's
    /// text so far), zstd-compressed; empty at the start of a member.
    pub(crate) window: Vec<u8>,
}

/// A raw deflate inflater (no zlib or gzip wrapper), ended when dropped.
struct Inflater {
    /// Boxed: zlib's state points back at its stream, which must not move.
    stream: Box<zlib::z_stream>,
}

// SAFETY: the stream and the state it points to belong to this value alone, and are used only
// through `&mut self`; nothing in them is tied to a thread.
unsafe impl Send for Inflater {}

/// What one call of `inflate` did.
struct Step {
    consumed: usize,
    produced: usize,
    code: i32,
    data_type: i32,
}

impl Inflater {
    fn raw() -> Inflater {
        let mut stream = Box::new(zlib::z_stream::default());
        let size = i32::try_from(size_of::<zlib::z_stream>()).expect("a small struct");
        // SAFETY: a default stream holds the allocator zlib-rs expects and no buffers yet; the
        // version string and size are the library's own.
        let code = unsafe { zlib::inflateInit2_(&mut *stream, -15, zlib::zlibVersion(), size) };
        // It fails only for arguments other than these, or out of memory.
        assert_eq!(code, zlib::Z_OK, "zlib's inflateInit2 failed");
        Inflater { stream }
    }

    /// Ready for another member's deflate data.
    fn reset(&mut self) {
        // SAFETY: the stream was initialised by `raw`.
        unsafe { zlib::inflateReset(&mut *self.stream) };
    }

    /// Inflates what it can of `input` into `output`.
    fn run(&mut self, input: &[u8], output: &mut [u8], flush: i32) -> Step {
        let stream = &mut *self.stream;
        let avail_in = u32::try_from(input.len()).unwrap_or(u32::MAX);
        let avail_out = u32::try_from(output.len()).unwrap_or(u32::MAX);
        stream.next_in = input.as_ptr();
        stream.avail_in = avail_in;
        stream.next_out = output.as_mut_ptr();
        stream.avail_out = avail_out;
        // SAFETY: the stream was initialised by `raw`; its buffers are the two slices, of the
        // lengths given, borrowed for this call, and not used after it (the pointers are
        // cleared below).
        let code = unsafe { zlib::inflate(stream, flush) };
        let step = Step {
            consumed: (avail_in - stream.avail_in) as usize,
            produced: (avail_out - stream.avail_out) as usize,
            code,
            data_type: stream.data_type,
        };
        stream.next_in = std::ptr::null();
        stream.avail_in = 0;
        stream.next_out = std::ptr::null_mut();
        stream.avail_out = 0;
        step
    }

    /// Starts with `bits` bits of `value` before the input (a byte's last bits).
    fn prime(&mut self, bits: u8, value: u8) -> bool {
        // SAFETY: the stream was initialised by `raw`.
        let code =
            unsafe { zlib::inflatePrime(&mut *self.stream, i32::from(bits), i32::from(value)) };
        code == zlib::Z_OK
    }

    /// The text what follows may refer back into.
    fn set_window(&mut self, window: &[u8]) -> bool {
        let Ok(len) = u32::try_from(window.len()) else {
            return false;
        };
        // SAFETY: the stream was initialised by `raw`; zlib copies `len` bytes of `window`.
        unsafe { zlib::inflateSetDictionary(&mut *self.stream, window.as_ptr(), len) == zlib::Z_OK }
    }

    /// The text before where inflating got to, up to 32 KiB, into `into`: how long it is.
    fn window(&self, into: &mut [u8; WINDOW]) -> usize {
        let mut len = 0u32;
        // SAFETY: the stream was initialised by `raw`, with a 32 KiB window (15 bits), which
        // is at most what zlib copies into `into`.
        unsafe { zlib::inflateGetDictionary(&*self.stream, into.as_mut_ptr(), &mut len) };
        (len as usize).min(WINDOW)
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by `raw` and is not used after this.
        unsafe { zlib::inflateEnd(&mut *self.stream) };
    }
}

// The header flags (RFC 1952).
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0xe0;

/// flate2's limit on a header's name or comment.
const MAX_HEADER_FIELD: usize = 65535;

fn bad_header() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "invalid gzip header")
}

fn checksum_mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "corrupt gzip stream does not have a matching checksum",
    )
}

/// Fills `buf` from `r`, counting what it took into `taken`.
fn read_exactly(r: &mut impl BufRead, buf: &mut [u8], taken: &mut u64) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = available.len().min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&available[..n]);
        r.consume(n);
        filled += n;
        *taken += n as u64;
    }
    Ok(())
}

/// Reads a header's name or comment, to its nul.
fn read_field(
    r: &mut impl BufRead,
    crc: &mut Option<crc32fast::Hasher>,
    taken: &mut u64,
) -> io::Result<()> {
    let mut len = 0;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let (n, ended) = match memchr::memchr(0, available) {
            Some(nul) => (nul + 1, true),
            None => (available.len(), false),
        };
        if len + n - usize::from(ended) > MAX_HEADER_FIELD {
            // flate2 stops at the first byte past the limit, having taken those before it.
            let before = MAX_HEADER_FIELD - len;
            r.consume(before + 1);
            *taken += before as u64 + 1;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "gzip header field too long",
            ));
        }
        if let Some(crc) = crc {
            crc.update(&available[..n]);
        }
        r.consume(n);
        *taken += n as u64;
        len += n;
        if ended {
            return Ok(());
        }
    }
}

/// Reads a member's header, as flate2's `GzHeaderParser` does: how many bytes it took.
fn read_header(r: &mut impl BufRead) -> io::Result<u64> {
    let mut taken = 0;
    let mut head = [0u8; 10];
    read_exactly(r, &mut head, &mut taken)?;
    if head[..3] != [0x1f, 0x8b, 8] {
        return Err(bad_header());
    }
    let flags = head[3];
    if flags & FRESERVED != 0 {
        return Err(bad_header());
    }
    let mut crc = (flags & FHCRC != 0).then(|| {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc
    });
    if flags & FEXTRA != 0 {
        let mut xlen = [0u8; 2];
        read_exactly(r, &mut xlen, &mut taken)?;
        let mut extra = vec![0u8; usize::from(u16::from_le_bytes(xlen))];
        read_exactly(r, &mut extra, &mut taken)?;
        if let Some(crc) = &mut crc {
            crc.update(&xlen);
            crc.update(&extra);
        }
    }
    if flags & FNAME != 0 {
        read_field(r, &mut crc, &mut taken)?;
    }
    if flags & FCOMMENT != 0 {
        read_field(r, &mut crc, &mut taken)?;
    }
    if let Some(crc) = crc {
        let mut stored = [0u8; 2];
        read_exactly(r, &mut stored, &mut taken)?;
        if u16::from_le_bytes(stored) != crc.finalize() as u16 {
            return Err(checksum_mismatch());
        }
    }
    Ok(taken)
}

/// What a gzip file is being read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Body,
    Trailer,
    End,
}

/// The places noted so far, and what noting them takes.
struct Points {
    noted: Vec<Point>,
    window: Box<[u8; WINDOW]>,
    packed: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    /// A window could not be kept: no places are given.
    failed: bool,
}

impl Points {
    /// How much more text there is to go until the next place is due.
    fn room(&self, out: u64) -> u64 {
        self.noted
            .last()
            .map_or(0, |last| (last.out + POINT_SPACING).saturating_sub(out))
            .max(1)
    }

    /// Notes where inflating got to (`consumed` bytes of the file taken, `produced` of text
    /// given), if the place is due and inflating stopped at the end of a deflate block that is
    /// not the member's last.
    fn note(&mut self, inflater: &Inflater, consumed: u64, produced: u64, data_type: i32) {
        let at_block_end = data_type & 128 != 0 && data_type & 64 == 0;
        if !at_block_end || !self.due(produced) {
            return;
        }
        // The bits of the bytes taken that are not yet used (fewer than 8: zlib gives back
        // whole bytes).
        let unused = (data_type & 63) as u64;
        let len = inflater.window(&mut self.window);
        // Into a buffer of the size zstd may need, then copied out at its length: a window
        // compressed into a `Vec` of its own would hold that size, 32 KiB, each.
        match self
            .compressor
            .compress_to_buffer(&self.window[..len], &mut self.packed)
        {
            Ok(packed) => self.noted.push(Point {
                bit: consumed * 8 - unused,
                out: produced,
                window: self.packed[..packed].to_vec(),
            }),
            // Never seen (the buffer is as large as zstd may need): the file is then read
            // again whole, as one without places.
            Err(_) => self.failed = true,
        }
    }

    /// Whether the next place to be found should be noted.
    fn due(&self, out: u64) -> bool {
        self.noted
            .last()
            .is_none_or(|last| out - last.out >= POINT_SPACING)
    }
}

/// A gzip file (members one after another, as `cat a.gz b.gz` makes) decompressed as it is
/// read, as flate2's `MultiGzDecoder` reads it, noting places to inflate again from when asked.
pub(crate) struct GzipReader<R> {
    source: R,
    inflater: Inflater,
    state: State,
    crc: crc32fast::Hasher,
    /// The member's text so far, modulo 2^32 (what its trailer holds).
    amount: u32,
    /// The file's bytes gone through, and the text given out, since the start.
    consumed: u64,
    produced: u64,
    points: Option<Points>,
}

impl<R: BufRead> GzipReader<R> {
    /// A reader of `source`; with `points`, it notes places to inflate again from
    /// (`points`).
    pub(crate) fn new(source: R, points: bool) -> GzipReader<R> {
        let points = points.then(|| Points {
            noted: Vec::new(),
            window: Box::new([0; WINDOW]),
            packed: Vec::with_capacity(zstd::zstd_safe::compress_bound(WINDOW)),
            // It fails only for a level out of range, or out of memory.
            compressor: zstd::bulk::Compressor::new(1).expect("a zstd compressor"),
            failed: false,
        });
        GzipReader {
            source,
            inflater: Inflater::raw(),
            state: State::Header,
            crc: crc32fast::Hasher::new(),
            amount: 0,
            consumed: 0,
            produced: 0,
            points,
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.source
    }

    /// The places noted (in file order), the text read and the file's bytes gone through
    /// (its end, once read to its end).
    pub(crate) fn points(&self) -> Option<(&[Point], u64, u64)> {
        let points = self.points.as_ref().filter(|points| !points.failed)?;
        Some((&points.noted, self.produced, self.consumed))
    }

    /// The next text of the member's deflate data, as flate2's `zio::read` gives it: 0 at
    /// its end.
    fn inflate(&mut self, into: &mut [u8]) -> io::Result<usize> {
        loop {
            let input = self.source.fill_buf()?;
            let eof = input.is_empty();
            // What flate2 does in one call of `inflate`, in steps that stop where a place is
            // due (at the next block's end): the same text, the same error at the same place,
            // and, as there, none of the call's text given when it ends in an error.
            let (mut used, mut read) = (0, 0);
            let code = loop {
                let produced = self.produced + read as u64;
                let (flush, room) = match (&self.points, eof) {
                    (_, true) => (zlib::Z_FINISH, into.len() - read),
                    (Some(points), false) if points.due(produced) => {
                        (zlib::Z_BLOCK, into.len() - read)
                    }
                    // Not past where the next place is due, so that it is found there.
                    (Some(points), false) => {
                        let room = points.room(produced).min((into.len() - read) as u64);
                        (zlib::Z_NO_FLUSH, room as usize)
                    }
                    (None, false) => (zlib::Z_NO_FLUSH, into.len() - read),
                };
                let step = self
                    .inflater
                    .run(&input[used..], &mut into[read..read + room], flush);
                used += step.consumed;
                read += step.produced;
                if flush == zlib::Z_BLOCK
                    && step.code == zlib::Z_OK
                    && let Some(points) = &mut self.points
                {
                    let consumed = self.consumed + used as u64;
                    let produced = self.produced + read as u64;
                    points.note(&self.inflater, consumed, produced, step.data_type);
                }
                // On where one call would have gone on.
                if step.code != zlib::Z_OK || read == into.len() || used == input.len() {
                    break step.code;
                }
            };
            self.source.consume(used);
            self.consumed += used as u64;
            match code {
                zlib::Z_OK | zlib::Z_BUF_ERROR if read == 0 && !eof => {}
                zlib::Z_OK | zlib::Z_BUF_ERROR if read == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "incomplete deflate stream",
                    ));
                }
                zlib::Z_OK | zlib::Z_BUF_ERROR | zlib::Z_STREAM_END => {
                    self.crc.update(&into[..read]);
                    self.amount = self.amount.wrapping_add(read as u32);
                    self.produced += read as u64;
                    return Ok(read);
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "corrupt deflate stream",
                    ));
                }
            }
        }
    }

    fn read_member(&mut self, into: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                State::Header => {
                    self.consumed += read_header(&mut self.source)?;
                    self.inflater.reset();
                    self.crc = crc32fast::Hasher::new();
                    self.amount = 0;
                    let (bit, out) = (self.consumed * 8, self.produced);
                    if let Some(points) = &mut self.points
                        && points.due(out)
                    {
                        points.noted.push(Point {
                            bit,
                            out,
                            window: Vec::new(),
                        });
                    }
                    self.state = State::Body;
                }
                State::Body => {
                    if into.is_empty() {
                        return Ok(0);
                    }
                    match self.inflate(into)? {
                        0 => self.state = State::Trailer,
                        n => return Ok(n),
                    }
                }
                State::Trailer => {
                    let mut trailer = [0u8; 8];
                    read_exactly(&mut self.source, &mut trailer, &mut self.consumed)?;
                    let crc = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
                    let amount = u32::from_le_bytes(trailer[4..].try_into().expect("4 bytes"));
                    if crc != self.crc.clone().finalize() || amount != self.amount {
                        return Err(checksum_mismatch());
                    }
                    self.state = match self.source.fill_buf()?.is_empty() {
                        true => State::End,
                        false => State::Header,
                    };
                }
                State::End => return Ok(0),
            }
        }
    }
}

impl<R: BufRead> Read for GzipReader<R> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        let read = self.read_member(into);
        if read.is_err() {
            // As flate2's reader, nothing more after an error.
            self.state = State::End;
        }
        read
    }
}

/// Inflates `text.len()` bytes of a gzip file's text from a place noted in it (`Point`):
/// `packed` are the file's bytes from the one holding its first bit, of which `skip_bits`
/// low bits come before it, on to (at least) the end of that text; `window` is the point's.
/// A member that ends before the text does is followed into the next, as the first pass read
/// them (its trailer was checked there). `false`: the bytes do not inflate to that much text
/// (the file changed since).
pub(crate) fn inflate_at(packed: &[u8], skip_bits: u8, window: &[u8], text: &mut [u8]) -> bool {
    let mut inflater = Inflater::raw();
    let mut input = packed;
    if skip_bits > 0 {
        let Some((&first, rest)) = input.split_first() else {
            return false;
        };
        if !inflater.prime(8 - skip_bits, first >> skip_bits) {
            return false;
        }
        input = rest;
    }
    if !window.is_empty() {
        let Ok(window) = zstd::bulk::decompress(window, WINDOW) else {
            return false;
        };
        if !inflater.set_window(&window) {
            return false;
        }
    }
    let mut filled = 0;
    while filled < text.len() {
        let step = inflater.run(input, &mut text[filled..], zlib::Z_NO_FLUSH);
        input = &input[step.consumed..];
        filled += step.produced;
        match step.code {
            zlib::Z_OK | zlib::Z_BUF_ERROR if step.consumed > 0 || step.produced > 0 => {}
            zlib::Z_STREAM_END if filled < text.len() => {
                // The member's trailer, and the next one's header.
                let Some(rest) = input.get(8..) else {
                    return false;
                };
                input = rest;
                if read_header(&mut input).is_err() {
                    return false;
                }
                inflater.reset();
            }
            zlib::Z_STREAM_END => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Text like an export's: lines of JSON, varied enough that deflate makes many blocks.
    fn text(len: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 200);
        let mut state = seed | 1;
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            writeln!(
                out,
                r#"{{"traceId":"{state:032x}","name":"tool.call {}","attributes":[{{"key":"n","value":{{"intValue":"{}"}}}}]}}"#,
                state % 97,
                state % 100_003
            )
            .unwrap();
        }
        out.truncate(len);
        out
    }

    fn gzip(text: &[u8], level: u32) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        enc.write_all(text).unwrap();
        enc.finish().unwrap()
    }

    /// What a reader gives, read in pieces of `piece` bytes: its text, and the error that
    /// ended it.
    fn drain(reader: &mut dyn Read, piece: usize) -> (Vec<u8>, Option<String>) {
        let (mut out, mut buf) = (Vec::new(), vec![0u8; piece]);
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(format!("{:?}: {e}", e.kind()))),
            }
        }
    }

    /// Both readers on `bytes`, ours noting places and not: the text, the error and how far
    /// into the bytes it was met, one against the other.
    fn same_as_flate2(bytes: &[u8], piece: usize) {
        let buffered = || std::io::BufReader::with_capacity(4096, bytes);
        let taken = |reader: &std::io::BufReader<&[u8]>| {
            bytes.len() - reader.buffer().len() - reader.get_ref().len()
        };
        let mut theirs = flate2::bufread::MultiGzDecoder::new(buffered());
        let (text, end) = drain(&mut theirs, piece);
        let at = taken(theirs.get_ref());
        for points in [false, true] {
            let mut ours = GzipReader::new(buffered(), points);
            let (our_text, our_end) = drain(&mut ours, piece);
            let what = format!("{piece}-byte reads, places {points}");
            assert_eq!(our_text.len(), text.len(), "text read ({what})");
            assert!(our_text == text, "text read ({what})");
            assert_eq!(our_end, end, "how it ended ({what})");
            if end.is_some() {
                assert_eq!(
                    taken(ours.get_ref()),
                    at,
                    "where it ended: {end:?} ({what})"
                );
            }
        }
    }

    #[test]
    fn reads_what_flate2_reads_of_whole_damaged_and_cut_files() {
        let one = text(300_000, 7);
        let two = text(50_000, 8);
        let mut members = gzip(&one, 1);
        members.extend(gzip(&two, 6));
        members.extend(gzip(b"", 6));
        // A header with every field: extra, name, comment, header CRC.
        let mut fancy = flate2::GzBuilder::new()
            .extra(vec![1, 2, 3])
            .filename("spans.json")
            .comment("made by a test")
            .write(Vec::new(), flate2::Compression::fast());
        fancy.write_all(&two).unwrap();
        let mut fancy = fancy.finish().unwrap();
        let head_len = {
            let mut rest = &fancy[..];
            read_header(&mut rest).unwrap();
            fancy.len() - rest.len()
        };
        // The header's CRC, which flate2 does not write, goes after it.
        fancy[3] |= FHCRC;
        let crc = crc32fast::hash(&fancy[..head_len]) as u16;
        fancy.splice(head_len..head_len, crc.to_le_bytes());
        members.extend(&fancy);
        for piece in [1 << 20, 4093, 17] {
            same_as_flate2(&members, piece);
        }
        // Cut anywhere, and damaged anywhere (a byte flipped; sampled to keep it quick).
        let step = (members.len() / 150).max(1);
        for at in (0..members.len()).step_by(step).chain([1, 2, 9, 10, 11]) {
            same_as_flate2(&members[..at], 65536);
            let mut damaged = members.clone();
            damaged[at] ^= 0x5a;
            same_as_flate2(&damaged, 65536);
        }
        // Garbage after the last member, a bad flag, a wrong trailer, a long name.
        let mut garbage = gzip(&two, 1);
        garbage.extend(b"\0\0\0\0");
        same_as_flate2(&garbage, 65536);
        let mut reserved = gzip(&two, 1);
        reserved[3] = 0x80;
        same_as_flate2(&reserved, 65536);
        let mut trailer = gzip(&two, 1);
        let end = trailer.len();
        trailer[end - 1] ^= 1;
        same_as_flate2(&trailer, 65536);
        let long = flate2::GzBuilder::new()
            .filename(vec![b'a'; 70_000])
            .write(Vec::new(), flate2::Compression::fast())
            .finish()
            .unwrap();
        same_as_flate2(&long, 65536);
    }

    #[test]
    fn every_stretch_between_the_places_noted_inflates_again_alone() {
        let first = text(9 << 20, 1);
        let second = text(6 << 20, 2);
        // zlib-rs's level 1 writes blocks of many MiB; GNU gzip's of tens of KiB at any level.
        let mut bytes = gzip(&first, 6);
        // A second member, with a name, so that a stretch runs across a member's end.
        let mut named = flate2::GzBuilder::new()
            .filename("b.json")
            .write(Vec::new(), flate2::Compression::new(6));
        named.write_all(&second).unwrap();
        bytes.extend(named.finish().unwrap());
        let whole = [first, second].concat();
        let mut reader = GzipReader::new(&bytes[..], true);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert!(out == whole);
        let (points, produced, consumed) = reader.points().unwrap();
        assert_eq!(
            (produced, consumed),
            (whole.len() as u64, bytes.len() as u64)
        );
        assert!(points.len() >= 3, "{} points", points.len());
        assert_eq!((points[0].bit, points[0].out), (80, 0));
        // Some places are inside a byte, some windows full.
        assert!(points.iter().any(|p| p.bit % 8 != 0));
        assert!(points.iter().any(|p| p.window.len() > 1000));
        for (i, point) in points.iter().enumerate() {
            let end = points.get(i + 1).map_or(produced, |next| next.out);
            let mut text = vec![0u8; (end - point.out) as usize];
            let from = (point.bit / 8) as usize;
            let skip = (point.bit % 8) as u8;
            assert!(inflate_at(&bytes[from..], skip, &point.window, &mut text));
            assert!(
                text[..] == whole[point.out as usize..end as usize],
                "the stretch from point {i}"
            );
        }
        // A stretch that runs across the end of the first member.
        let last_of_first = points.iter().rfind(|p| p.out < 9 << 20).unwrap();
        let mut text = vec![0u8; (10 << 20) - last_of_first.out as usize];
        let from = (last_of_first.bit / 8) as usize;
        let skip = (last_of_first.bit % 8) as u8;
        assert!(inflate_at(
            &bytes[from..],
            skip,
            &last_of_first.window,
            &mut text
        ));
        assert!(text[..] == whole[last_of_first.out as usize..10 << 20]);
        // Bytes that do not inflate to the text: the file changed.
        let point = &points[1];
        let mut changed = bytes.clone();
        for byte in &mut changed[(point.bit / 8) as usize + 10..][..64] {
            *byte = 0xff;
        }
        let mut text = vec![0u8; 1 << 20];
        let from = (point.bit / 8) as usize;
        let inflated = inflate_at(
            &changed[from..],
            (point.bit % 8) as u8,
            &point.window,
            &mut text,
        );
        assert!(!inflated || text[..] != whole[point.out as usize..][..1 << 20]);
        assert!(!inflate_at(
            &bytes[from..from + 100],
            (point.bit % 8) as u8,
            &point.window,
            &mut text
        ));
    }

    #[test]
    fn stretches_run_from_place_to_place_and_none_is_too_long_to_hold() {
        use crate::ingest::compress::Resume;
        let point = |bit: u64, out: u64, window: &[u8]| Point {
            bit,
            out,
            window: window.to_vec(),
        };
        // A member's start (no window), a place inside a byte, one on a byte's edge, and a
        // second member's start with no text before the end.
        let points = [
            point(80, 0, b""),
            point(8003, 5000, b"w1"),
            point(16_000, 9000, b"w2"),
            point(20_000, 12_000, b""),
        ];
        let table = crate::ingest::compress::gzip_table(&points, 12_000, 2600).unwrap();
        let stretches: Vec<_> = table
            .frames
            .iter()
            .map(|f| (f.packed, f.packed_len, f.start, f.len, f.resume))
            .collect();
        let deflate = |skip_bits, window| Resume::Deflate { skip_bits, window };
        assert_eq!(
            stretches,
            [
                // From byte 10 to the byte holding bit 8003, and 16 bytes on.
                (10, 1001 + 16 - 10, 0, 5000, deflate(0, None)),
                (1000, 2000 + 16 - 1000, 5000, 4000, deflate(3, Some(0))),
                // Up to the empty member's place, which makes no stretch of its own.
                (2000, 2500 + 16 - 2000, 9000, 3000, deflate(0, Some(1))),
            ]
        );
        assert_eq!(table.windows, [b"w1".to_vec(), b"w2".to_vec()]);
        assert!(table.inflated());
        // The last stretch runs to the end of the file, and no further.
        let table = crate::ingest::compress::gzip_table(&points[..3], 12_000, 2600).unwrap();
        let last = table.frames.last().unwrap();
        assert_eq!((last.packed, last.packed_len, last.len), (2000, 600, 3000));
        // A stretch longer than a frame decoded alone may be: no places at all.
        let long = [point(80, 0, b""), point(9000, 17 << 20, b"w")];
        assert!(crate::ingest::compress::gzip_table(&long, 18 << 20, 3000).is_none());
    }

    #[test]
    fn no_places_are_noted_unless_asked() {
        let bytes = gzip(&text(5 << 20, 3), 1);
        let mut reader = GzipReader::new(&bytes[..], false);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        assert!(reader.points().is_none());
    }
}
