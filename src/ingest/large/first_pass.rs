//! The first pass over a large input: every line read in blocks, on all threads, with each
//! span located and surveyed rather than built.

use std::path::Path;
use std::sync::Arc;

use super::super::Parsed;
use super::super::otlp_json::{self, IndexFilter, SurveyRules};
use super::reader::{Blocks, Encoding, Ended, Opened, line_blocks};

/// The first pass: every line of the input read with spans located and surveyed into `out`,
/// on all threads, in `blocks`.
/// `Ok`: how the input ended (a compressed one early, corrupt or cut short, after what was
/// read; where a zstd file's frames are).
pub(super) fn index_file(
    path: &Path,
    encoding: Encoding,
    input: &Arc<str>,
    survey: &Arc<SurveyRules>,
    out: &mut Parsed,
    progress: &indicatif::ProgressBar,
    blocks: Blocks,
) -> Result<Ended, String> {
    let mut reader = Opened::open(path, encoding)?;
    let advance = reader.progress();
    let mut first_line = 1u64;
    line_blocks(&mut reader, blocks, |block, offset| {
        let index = IndexFilter {
            survey: Arc::clone(survey),
            block_address: block.as_ptr() as usize,
            block_offset: offset,
        };
        let mut part = Parsed::default();
        // Traces are noted by conversation when the caller asked for it.
        part.survey.traces = out.survey.traces.as_ref().map(|_| Default::default());
        otlp_json::index_block(input, block, first_line, &index, &mut part);
        advance(progress, block.len());
        // Every line of the block was read, the last of them being line `part.lines`.
        first_line = part.lines + 1;
        let lines = part.lines;
        out.append(part);
        out.lines = out.lines.max(lines);
        Ok(true)
    })?;
    Ok(reader.ended())
}
