//! `vaxarc normalise --field KIND`: values on stdin, one per line; results on stdout.

use super::{refuse, Context};
use crate::cli::NormaliseArgs;
use crate::exit_codes::ExitCode;
use crate::normalise::{self, Kind, Tables};

/// `vaxarc normalise`.
pub fn run(args: NormaliseArgs, _ctx: &Context) -> anyhow::Result<ExitCode> {
    let kind: Kind = args.field.parse().map_err(|_| {
        refuse(
            format!("unknown field kind `{}`", args.field),
            format!(
                "use one of: {}",
                Kind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    normalise::normalise_lines(
        kind,
        stdin.lock(),
        std::io::BufWriter::new(stdout.lock()),
        Tables::embedded(),
    )?;
    Ok(ExitCode::Success)
}
