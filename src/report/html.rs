//! A self-contained HTML report (written in the next step).

use std::io::Write;

use super::ScanView;

pub fn scan(view: &ScanView<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    super::markdown::scan(view, out)
}
