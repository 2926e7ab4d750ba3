//! `vaxarc keygen`.

use super::{now_rfc3339, print_json, Context};
use crate::cli::KeygenArgs;
use crate::exit_codes::ExitCode;

/// `vaxarc keygen`: the recipient (public) is printed; secrets only go to 0600 files.
pub fn run(args: KeygenArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let g = crate::keys::keygen(
        &args.output,
        args.signing_key.as_deref(),
        args.label.as_deref(),
        &now_rfc3339(),
        args.force,
    )?;
    if args.json {
        print_json(&g)?;
    } else {
        println!("{}", g.recipient);
        // Notes on stderr, silenced by `--quiet` like every other command's.
        ctx.printer.note(&format!(
            "identity written to `{}` (mode 0600); recipient to `{}`",
            g.identity.display(),
            g.recipient_file.display()
        ));
        if let (Some(sk), Some(pk)) = (&g.signing_key, &g.signing_public_key_file) {
            ctx.printer.note(&format!(
                "minisign secret key written to `{}` (mode 0600); public key to `{}`",
                sk.display(),
                pk.display()
            ));
        }
    }
    Ok(ExitCode::Success)
}
