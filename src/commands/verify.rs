//! `vaxarc verify`.

use super::{print_json, Context};
use crate::archive::store::Store;
use crate::archive::verify;
use crate::cli::VerifyArgs;
use crate::exit_codes::ExitCode;
use crate::schema::Schema;

/// `vaxarc verify`.
pub fn run(args: VerifyArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let identities = crate::keys::load_identities(&args.identity, ctx.allow_insecure_identity)?;
    let pinned = args
        .pubkey
        .as_deref()
        .map(crate::keys::load_public_key)
        .transpose()?;
    let store = Store::open(&args.archive)?;
    let spinner = ctx.printer.spinner(if identities.is_empty() {
        "verify"
    } else {
        "decrypt+verify"
    });
    let report = verify::verify(&store, Schema::embedded(), pinned.as_ref(), &identities);
    spinner.finish_and_clear();
    let report = report?;
    log_verify(&store, &args, &report, &identities, ctx);
    if !identities.is_empty()
        && report.partitions_decrypted == 0
        && report
            .problems
            .iter()
            .any(|p| p.problem.contains("with the given identities"))
    {
        ctx.printer.note(
            "note: none of the given identities opens this archive's partition keys; pass a custodian's identity (and a vault holder's for the vault objects)",
        );
    }
    if !report.ok()
        && report
            .problems
            .iter()
            .all(|p| p.problem == "not listed in the manifest")
    {
        ctx.printer.note(
            "note: every problem is an object the manifest does not list, as an interrupted migrate, purge, erase or rekey leaves them: rerun that command (its recovery removes them); see docs/runbooks.md before deleting anything",
        );
    }
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            ok: bool,
            #[serde(flatten)]
            report: &'a verify::Report,
        }
        print_json(&Out {
            ok: report.ok(),
            report: &report,
        })?;
    } else {
        print!("{}", render(&report, &args.archive));
    }
    Ok(if report.ok() {
        ExitCode::Success
    } else {
        ExitCode::CheckFailed
    })
}

/// Text rendering.
pub fn render(r: &verify::Report, location: &str) -> String {
    let mut out = String::new();
    if r.ok() {
        out.push_str(&format!(
            "archive {location} verifies: generation {}, {} objects, Merkle root {}, signed by key {}\n",
            r.generation, r.objects_checked, r.merkle_root, r.signing_key_id
        ));
        if r.partitions_decrypted > 0 {
            out.push_str(&format!(
                "decrypted {} partitions ({} records) and {} vault objects: row counts, schema and plaintext hashes agree\n",
                r.partitions_decrypted, r.records_checked, r.vault_decrypted
            ));
        }
    } else {
        out.push_str(&format!(
            "archive {location} does NOT verify: {}\n",
            crate::commands::problems(r.problems.len())
        ));
        for p in &r.problems {
            out.push_str(&format!("  `{}`: {}\n", p.path, p.problem));
        }
    }
    if r.uncertified {
        out.push_str(&format!(
            "note: generation {} was committed by a purge or erase that was killed before its certificate; run `vaxarc purge` or `vaxarc erase` again: its recovery writes that certificate\n",
            r.generation
        ));
    }
    out
}

/// Append the verify entry to the audit log and write a checkpoint. Best effort: a
/// read-only or broken archive still gets its report (a note says the entry is missing).
fn log_verify(
    store: &Store,
    args: &VerifyArgs,
    report: &verify::Report,
    identities: &[age::x25519::Identity],
    ctx: &Context,
) {
    let Ok((manifest, _)) = crate::archive::read_manifest(store) else {
        return;
    };
    let signer = match args
        .signing_key
        .as_deref()
        .map(|p| super::purge::archive_signing_key(p, &manifest, ctx))
        .transpose()
    {
        Ok(s) => s.map(|k| k.0),
        Err(e) => {
            ctx.printer
                .note(&format!("warning: audit checkpoint not signed: {e}"));
            None
        }
    };
    let _ = identities;
    let event = crate::audit::Event {
        archive_id: manifest.archive_id.clone(),
        generation: manifest.generation,
        time: super::now_rfc3339(),
        operator: args.operator.clone(),
        purpose: args.purpose.clone(),
        command: if args.identity.is_empty() {
            "verify".into()
        } else {
            "verify-deep".into()
        },
        result_count: report.problems.len() as u64,
        outcome: if report.ok() {
            "ok".into()
        } else {
            "problems".into()
        },
        ..Default::default()
    };
    let r = crate::audit::append(store, None, event)
        .and_then(|_| crate::audit::checkpoint(store, &manifest.archive_id, signer.as_ref()));
    if let Err(e) = r {
        ctx.printer.note(&format!(
            "warning: verify could not be logged in the audit log: {e}"
        ));
    }
}
