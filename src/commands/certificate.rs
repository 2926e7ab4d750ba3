//! `vaxarc certificate verify`.

use super::{print_json, Context};
use crate::archive::store::Store;
use crate::cli::{CertificateAction, CertificateArgs};
use crate::exit_codes::ExitCode;
use crate::purge::certificate;

/// `vaxarc certificate ...`.
pub fn run(args: CertificateArgs, _ctx: &Context) -> anyhow::Result<ExitCode> {
    match args.action {
        CertificateAction::Verify(a) => {
            let public = crate::keys::load_public_key(&a.pubkey)?;
            let store = Store::open(&a.archive)?;
            let problems = certificate::verify(&a.cert, &store, &public);
            if a.json {
                print_json(
                    &serde_json::json!({ "ok": problems.is_empty(), "certificate": a.cert, "problems": problems }),
                )?;
            } else if problems.is_empty() {
                println!("certificate {} verifies: signature good, every destroyed object is gone, roots agree with the archive's history", a.cert.display());
            } else {
                println!(
                    "certificate {} does NOT verify: {}",
                    a.cert.display(),
                    crate::commands::problems(problems.len())
                );
                for p in &problems {
                    println!("  `{}`: {}", p.path, p.problem);
                }
            }
            Ok(if problems.is_empty() {
                ExitCode::Success
            } else {
                ExitCode::CheckFailed
            })
        }
    }
}
