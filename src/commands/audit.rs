//! `vaxarc audit verify`.

use super::{print_json, Context};
use crate::archive::{self, store::Store};
use crate::cli::{AuditAction, AuditArgs};
use crate::exit_codes::ExitCode;

/// `vaxarc audit …`.
pub fn run(args: AuditArgs, _ctx: &Context) -> anyhow::Result<ExitCode> {
    match args.action {
        AuditAction::Verify(a) => {
            let store = Store::open(&a.archive)?;
            let (manifest, _) = archive::read_manifest(&store)?;
            let key = match &a.pubkey {
                Some(p) => crate::keys::load_public_key(p)?,
                None => {
                    minisign::PublicKey::from_base64(&manifest.signing_public_key).map_err(|e| {
                        super::refuse(
                            format!("`MANIFEST.json`: signing_public_key unusable ({e})"),
                            "pass the signing public key with --pubkey",
                        )
                    })?
                }
            };
            let report = crate::audit::verify(&store, &manifest, Some(&key))?;
            if a.json {
                #[derive(serde::Serialize)]
                struct Out<'a> {
                    ok: bool,
                    #[serde(flatten)]
                    report: &'a crate::audit::Report,
                }
                print_json(&Out {
                    ok: report.ok(),
                    report: &report,
                })?;
            } else {
                print!("{}", render(&report, &a.archive));
            }
            Ok(if report.ok() {
                ExitCode::Success
            } else {
                ExitCode::CheckFailed
            })
        }
    }
}

/// Text rendering.
pub fn render(r: &crate::audit::Report, location: &str) -> String {
    let mut out = String::new();
    if r.ok() {
        out.push_str(&format!(
            "audit log of {location} verifies: {} entries, root {}, {} checkpoints ({} signed, {} unsigned) and {} certificate receipts consistent with it\n",
            r.entries,
            r.root,
            r.checkpoints,
            r.signed_checkpoints,
            r.unsigned_checkpoints.len(),
            r.receipts
        ));
    } else {
        out.push_str(&format!(
            "audit log of {location} does NOT verify: {}\n",
            crate::commands::problems(r.problems.len())
        ));
        for p in &r.problems {
            out.push_str(&format!("  `{}`: {}\n", p.path, p.problem));
        }
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
