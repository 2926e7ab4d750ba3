//! `vaxarc rekey`: rotate custodian (and vault) keys — the thin shell around
//! [`crate::archive::rekey`]. Data objects are not touched.

use super::{print_json, refuse, Context};
use crate::archive::rekey::{self, NewRecipients};
use crate::archive::store::Store;
use crate::archive::verify;
use crate::cli::RekeyArgs;
use crate::exit_codes::ExitCode;
use crate::schema::Schema;

/// `vaxarc rekey`.
pub fn run(args: RekeyArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let Some(op) = &args.operator {
        super::not_blank("--operator", op)?;
    }
    let identities = crate::keys::load_identities(&args.identity, ctx.allow_insecure_identity)?;
    let base = std::path::Path::new(".");
    let custodians = crate::keys::load_recipients("--custodian", &args.custodian, base)?;
    let distinct: std::collections::BTreeSet<String> =
        custodians.to_strings().into_iter().collect();
    if distinct.len() < 2 {
        return Err(refuse(
            format!("--custodian names {} distinct recipient(s); an archive needs at least two custodians", distinct.len()),
            "pass --custodian for each of the two (or more) custodians; see docs/runbooks.md (rotating custodian keys)",
        ));
    }
    let vault = if args.vault_recipient.is_empty() {
        None
    } else {
        Some(crate::keys::load_recipients(
            "--vault-recipient",
            &args.vault_recipient,
            base,
        )?)
    };
    let (signing, signing_public) =
        crate::keys::load_signing_key(&args.signing_key, ctx.allow_insecure_identity)?;
    let store = Store::open(&args.archive)?;
    let now = super::now_rfc3339();
    let operator = args
        .operator
        .clone()
        .or_else(|| {
            std::env::var("VAXARC_OPERATOR")
                .ok()
                .filter(|o| !super::blank(o))
        })
        .unwrap_or_else(|| "-".into());
    let bar = ctx.printer.spinner("rekey");
    let outcome = rekey::rekey(
        &store,
        &identities,
        &NewRecipients { custodians, vault },
        &rekey::Rotation {
            signing: &signing,
            signing_public: &signing_public,
            now: &now,
            operator: &operator,
        },
        &|_| {},
    )?;
    bar.finish_and_clear();
    // Audit: a committed rotation was logged under the lock (`rekey::log_staged`); a run
    // that changed nothing is logged here (a failure is reported, not a failed rekey).
    let logged = if !outcome.unchanged {
        Ok(())
    } else {
        crate::archive::read_manifest(&store)
            .map_err(|e| crate::audit::AuditError::Malformed {
                path: crate::archive::manifest::MANIFEST.into(),
                message: e.to_string(),
            })
            .and_then(|(m, _)| {
                crate::audit::append(
                    &store,
                    None,
                    crate::audit::Event {
                        archive_id: m.archive_id.clone(),
                        generation: outcome.generation,
                        time: now.clone(),
                        operator: operator.clone(),
                        purpose: "key rotation".into(),
                        command: "rekey".into(),
                        result_count: 0,
                        outcome: "unchanged".into(),
                        ..Default::default()
                    },
                )?;
                crate::audit::checkpoint(&store, &m.archive_id, Some(&signing)).map(drop)
            })
    };
    if let Err(e) = logged {
        ctx.printer.note(&format!(
            "warning: the rekey is committed but its audit entry could not be written: {e}"
        ));
    }
    let check = verify::verify(&store, Schema::embedded(), None, &[])?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            outcome: &'a rekey::Outcome,
            verified: bool,
        }
        print_json(&Out {
            outcome: &outcome,
            verified: check.ok(),
        })?;
    } else if outcome.unchanged {
        println!(
            "archive {} already has these recipients: nothing changed (generation {})",
            args.archive, outcome.generation
        );
    } else {
        println!(
            "archive {} rekeyed: generation {} -> {}, {} custodian keys and {} vault keys re-wrapped, {} old wrapped keys deleted, Merkle root {}",
            args.archive, outcome.previous_generation, outcome.generation, outcome.keys_rewrapped, outcome.vault_keys_rewrapped, outcome.old_keys_deleted, outcome.merkle_root
        );
        println!("next: check with the NEW custodian identity: vaxarc verify --archive {} --identity <new custodian key>", args.archive);
    }
    Ok(if check.ok() {
        ExitCode::Success
    } else {
        ExitCode::CheckFailed
    })
}
