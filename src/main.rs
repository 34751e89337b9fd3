use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use abortaudit::app::{self, ExitStatus};
use abortaudit::{cli::Cli, config, report::sanitize::sanitize_lines};

fn main() -> ExitCode {
    app::give_large_blocks_back();
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut err = io::stderr();
    app::start_thread_pool(&mut err);
    let result = config::resolve(cli).and_then(|task| {
        let status = app::run(task, &mut out, &mut err)?;
        match out.flush() {
            // The status is decided (a gate's verdict); a reader that left early does not
            // change it.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(status),
            flushed => flushed.map(|()| status).map_err(Into::into),
        }
    });
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            // A closed pipe (`abortaudit inspect … | head`) before any verdict is the reader's
            // choice, not a failure.
            if error
                .chain()
                .filter_map(|e| e.downcast_ref::<io::Error>())
                .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::from(ExitStatus::Success.code());
            }
            let chain: Vec<String> = error
                .chain()
                .map(|e| sanitize_lines(&e.to_string()))
                .collect();
            let _ = writeln!(err, "error: {}", chain.join(": "));
            ExitCode::from(ExitStatus::Error.code())
        }
    }
}
