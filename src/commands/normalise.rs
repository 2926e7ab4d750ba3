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
    if args.json {
        // One JSON object: every input line's result, in order.
        use std::io::BufRead;
        #[derive(serde::Serialize)]
        struct Item {
            value: Option<String>,
            flag: Option<&'static str>,
            reject: Option<&'static str>,
        }
        let mut results = Vec::new();
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let line = line.strip_suffix('\r').unwrap_or(&line);
            results.push(match normalise::normalise(kind, line, Tables::embedded()) {
                Ok(n) => Item {
                    value: (!n.value.is_null()).then(|| normalise::render(&n.value)),
                    flag: n.flag.map(|f| f.as_str()),
                    reject: None,
                },
                Err(r) => Item {
                    value: None,
                    flag: None,
                    reject: Some(r.as_str()),
                },
            });
        }
        super::print_json(&serde_json::json!({ "field": kind.as_str(), "results": results }))?;
        return Ok(ExitCode::Success);
    }
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
