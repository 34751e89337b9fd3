//! The decompress-only floor of the benchmark's compressed rows (`bench/run.sh`): decompress a
//! gzip or zstd file (by its magic bytes) with the decoders `abortaudit` reads them with, and
//! throw the output away. `gzip -dc` and `zstd -dc` are the tools' floors; this one is the floor
//! of the inflate `abortaudit` chose (flate2 on zlib-rs, libzstd through the `zstd` crate), read
//! as its two passes read: through a 256 KiB buffer, into 16 MiB blocks.
//!
//! ```sh
//! cargo run --release --example inflate_only -- /tmp/bench.jsonl.gz
//! ```
//!
//! Prints the number of decompressed bytes.

use std::fs::File;
use std::io::{BufReader, Read};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .context("usage: inflate_only FILE.gz|FILE.zst")?;
    let mut file = File::open(&path).with_context(|| format!("{}", path.to_string_lossy()))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)?;
    std::io::Seek::rewind(&mut file)?;
    let reader = BufReader::with_capacity(256 << 10, file);
    let mut decoder: Box<dyn Read> = if magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] || magic[1..] == [0x2a, 0x4d, 0x18] {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        bail!("not gzip or zstd data");
    };
    let mut block = vec![0u8; 16 << 20];
    let mut total = 0u64;
    loop {
        let n = decoder.read(&mut block)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    println!("{total} bytes");
    Ok(())
}
