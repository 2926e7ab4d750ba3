//! The `vaxarc` binary: parse arguments, run one command, print errors with a hint.

use clap::Parser;

use vaxarc::cli::Cli;
use vaxarc::commands;
use vaxarc::exit_codes::ExitCode;

// mimalloc instead of glibc malloc: allocation was about a quarter of a migrate's CPU time
// (docs/decisions.md, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vaxarc::allocator::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return vaxarc::cli::usage_error(e).into(),
    };
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::Success.into();
                }
            }
            // One line: the cause chain, then the operator's next step.
            let message = commands::message_of(&err);
            eprintln!("error: {message}");
            eprintln!("hint: {}", commands::hint_for(&err));
            ExitCode::Error.into()
        }
    }
}
