//! `vaxarc purge`: retention purge with a signed erasure certificate (docs/purge.md).

use std::path::Path;

use super::{now_rfc3339, print_json, refuse, Context};
use crate::archive::crypto::Recipients;
use crate::archive::manifest::Manifest;
use crate::archive::store::Store;
use crate::archive::{self, WriteKeys};
use crate::cli::PurgeArgs;
use crate::exit_codes::ExitCode;
use crate::purge::certificate::Person;
use crate::purge::run::{self, Outcome, PurgeRequest, RunKeys, Signer};
use crate::purge::{self, inputs, Rules};
use crate::schema::Schema;

/// The minisign secret key at `path` (and its public key line), refused unless it is the
/// key whose public key the archive's manifest names (`signing_public_key`): a checkpoint
/// or manifest signed by another key fails `audit verify` and `verify` from then on.
pub fn archive_signing_key(
    path: &Path,
    m: &Manifest,
    ctx: &Context,
) -> anyhow::Result<(minisign::SecretKey, String)> {
    let (signing, signing_public) =
        crate::keys::load_signing_key(path, ctx.allow_insecure_identity)?;
    if signing_public.trim() != m.signing_public_key.trim() {
        return Err(refuse(
            format!("signing key `{}` is not the key that signs this archive's manifest", path.display()),
            "pass the archive's signing key (its public key is `signing_public_key` in MANIFEST.json)",
        ));
    }
    Ok((signing, signing_public))
}

/// Writer keys for a new generation: recipients from the manifest, the signing key
/// from a file, refused unless it is the key the manifest names.
pub fn write_keys(
    m: &Manifest,
    signing_key: Option<&Path>,
    ctx: &Context,
) -> anyhow::Result<WriteKeys> {
    let Some(path) = signing_key else {
        return Err(refuse(
            "no signing key: purge and erase sign a new manifest and a certificate",
            "pass --signing-key with the archive's minisign secret key (the one migrate used)",
        ));
    };
    let (signing, signing_public) = archive_signing_key(path, m, ctx)?;
    Ok(WriteKeys {
        custodians: Recipients::parse("manifest custodians", &m.custodians)?,
        vault: Recipients::parse("manifest vault_recipients", &m.vault_recipients)?,
        signing,
        signing_public,
    })
}

/// Performer details from a small TOML file (name, title, organisation, location, phone).
pub fn performer(path: Option<&Path>, operator: &str) -> anyhow::Result<Person> {
    let mut p = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                refuse(
                    format!("cannot read performer file `{}`: {e}", path.display()),
                    "give a TOML file with name, title, organisation, location, phone",
                )
            })?;
            toml::from_str::<Person>(&text).map_err(|e| {
                refuse(
                    format!("performer file `{}`: {}", path.display(), e.message()),
                    "keys: name, title, organisation, location, phone",
                )
            })?
        }
        None => Person::default(),
    };
    if p.name.is_none() {
        p.name = Some(operator.to_string());
    }
    Ok(p)
}

fn file_hash(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        refuse(
            format!("cannot read `{}`: {e}", path.display()),
            "check the path",
        )
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// `vaxarc purge`.
pub fn run(args: PurgeArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    super::not_blank("--operator", &args.operator)?;
    let schema = Schema::embedded();
    let as_of = purge::parse_date(&args.as_of).ok_or_else(|| {
        refuse(
            format!("--as-of `{}` is not a YYYY-MM-DD date", args.as_of),
            "write the day as e.g. 2026-04-01",
        )
    })?;
    let (rules, holds) = match &args.rules {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                refuse(
                    format!("cannot read rules `{}`: {e}", p.display()),
                    "check --rules",
                )
            })?;
            Rules::from_toml(&p.display().to_string(), &text)
                .map_err(|e| refuse(e.to_string(), "see docs/purge.md for the rules format"))?
        }
        None => Rules::embedded(),
    };
    let identities = crate::keys::load_identities(&args.identity, ctx.allow_insecure_identity)?;
    let deaths = args
        .registry_update
        .as_deref()
        .map(|p| inputs::read_registry(p, schema))
        .transpose()?;
    let submissions = args
        .national_db_submissions
        .as_deref()
        .map(|p| {
            inputs::read_submissions(p).map_err(|e| {
                refuse(
                    e.to_string(),
                    "see docs/purge.md (national database submissions file)",
                )
            })
        })
        .transpose()?;
    let mut request = std::collections::BTreeMap::new();
    request.insert("as_of".to_string(), args.as_of.clone());
    request.insert("rules".to_string(), rules.name.clone());
    request.insert("rules_blake3".to_string(), rules.text_blake3.clone());
    request.insert(
        "first_day_counts".to_string(),
        rules.first_day_counts.to_string(),
    );
    request.insert(
        "legal_holds".to_string(),
        (holds.records.len() + holds.persons.len()).to_string(),
    );
    if let Some(p) = &args.registry_update {
        request.insert("registry_update_blake3".to_string(), file_hash(p)?);
    }
    if let Some(d) = &deaths {
        // Rows the extract's layout could not read: their death dates are unknown to this
        // purge (their persons' records are kept, as if alive). Said in the certificate.
        request.insert(
            "registry_update_rows_unreadable".to_string(),
            d.rows_quarantined.to_string(),
        );
        if d.rows_quarantined > 0 {
            ctx.printer.note(&format!(
                "warning: {} rows of the registry update could not be read (quarantined by its layout); their death dates are not used, so their records are kept as if alive",
                d.rows_quarantined
            ));
        }
    }
    if let Some(p) = &args.national_db_submissions {
        request.insert("national_db_submissions_blake3".to_string(), file_hash(p)?);
    }
    let store = Store::open(&args.archive)?;
    let (m, _) = archive::read_manifest(&store)?;
    let write = if args.dry_run {
        None
    } else {
        Some(write_keys(&m, args.signing_key.as_deref(), ctx)?)
    };
    let person = performer(args.performer.as_deref(), &args.operator)?;
    let now = now_rfc3339();
    let req = PurgeRequest {
        as_of,
        rules: &rules,
        holds: &holds,
        deaths: deaths.as_ref(),
        submissions: submissions.as_ref(),
        request,
    };
    let keys = RunKeys {
        identities: &identities,
        write: write.as_ref(),
    };
    let signer = Signer {
        operator: &args.operator,
        performer: person,
        now: &now,
    };
    let spinner = ctx
        .printer
        .spinner(if args.dry_run { "evaluate" } else { "purge" });
    let out = run::purge(&store, schema, &req, &keys, &signer, args.dry_run);
    spinner.finish_and_clear();
    let out = out.map_err(hinted)?;
    if args.json {
        print_json(&out)?;
    } else {
        print!("{}", render(&out, &args.archive));
    }
    Ok(exit_of(&out))
}

/// Attach the operator's next step to the purge's and erase's refusals.
pub fn hinted(e: archive::ArchiveError) -> anyhow::Error {
    match e {
        archive::ArchiveError::State(m) if m.contains("is locked") => refuse(
            m,
            "wait for the other run to finish; if none is running (it was killed), delete the LOCK object and run again: the next run recovers (docs/purge.md, stale lock)",
        ),
        archive::ArchiveError::State(m) if m.contains("vault identity") => refuse(m, "repeat --identity with a vault identity (nothing was changed)"),
        archive::ArchiveError::State(m) if m.contains("no person") => refuse(m, "check the identifier; a person already erased or purged is not found"),
        archive::ArchiveError::State(m) if m.contains("reaches the records of") => refuse(m, "`vaxarc lookup --format json` by the same identifier lists the person keys (`candidates[].person_hash`, or `persons`): erase the one meant with --person HASH (a registry resident also with --atena)"),
        other => other.into(),
    }
}

/// Exit code of an outcome: a failed post-erasure verification is a check failure.
pub fn exit_of(out: &Outcome) -> ExitCode {
    match &out.verification {
        Some(v) if !v.passed => ExitCode::CheckFailed,
        _ => ExitCode::Success,
    }
}

/// Text rendering (no personal data).
pub fn render(o: &Outcome, location: &str) -> String {
    let mut s = String::new();
    if o.dry_run {
        s.push_str(&format!("dry run on {location}: nothing was changed\n"));
    }
    if o.recovered_objects > 0 || o.rolled_forward {
        s.push_str(&format!(
            "recovered an interrupted run: {} unlisted objects removed{}\n",
            o.recovered_objects,
            if o.rolled_forward {
                ", commit completed"
            } else {
                ""
            }
        ));
    }
    if let Some(c) = &o.recovered_certificate {
        s.push_str(&format!(
            "certified the earlier run that was killed after its commit: {c}\n"
        ));
    }
    s.push_str(&format!(
        "evaluated {} records in {} partitions; {} held; {} {}\n",
        o.records_evaluated,
        o.partitions_evaluated,
        o.records_held,
        o.erased.records,
        if o.dry_run {
            "would be erased"
        } else {
            "erased"
        }
    ));
    for (label, map) in [
        ("rule (規則)", &o.erased.by_rule),
        ("vaccine (ワクチン)", &o.erased.by_vaccine),
        ("year (接種年)", &o.erased.by_year),
    ] {
        if map.is_empty() {
            continue;
        }
        s.push_str(&format!("by {label}\n"));
        for (k, n) in map {
            s.push_str(&format!("  {k:<24} {n:>8}\n"));
        }
    }
    let removed = if o.dry_run {
        "that would be removed"
    } else {
        "removed"
    };
    let (dropped, rewritten) = if o.dry_run {
        ("that would be dropped", "that would be rewritten")
    } else {
        ("dropped", "rewritten")
    };
    s.push_str(&format!(
        "partitions {dropped}: {}\n",
        o.partitions_dropped.len()
    ));
    for p in &o.partitions_dropped {
        s.push_str(&format!("  {p}\n"));
    }
    s.push_str(&format!(
        "partitions {rewritten}: {}\n",
        o.partitions_rewritten.len()
    ));
    for p in &o.partitions_rewritten {
        s.push_str(&format!("  {p}\n"));
    }
    s.push_str(&format!(
        "persons {removed} from the index: {}\nreview rows {removed}: {}\nquarantined rows {removed} (their retention ran out, or they named what was erased): {}\n",
        o.persons_removed_from_index, o.review_rows_removed, o.quarantine_rows_removed
    ));
    if !o.persons_left.is_empty() {
        s.push_str(&format!(
            "warning: {} other person key(s) share a 宛名番号, 個人番号 or ticket with the erased records, or await review naming the erased person, and were not erased (not shown to be the same person): look each up with `vaxarc lookup --person HASH`, and erase it with `--person HASH` if it is\n",
            o.persons_left.len()
        ));
        for p in &o.persons_left {
            s.push_str(&format!("  {p}\n"));
        }
    }
    if let Some(c) = &o.certificate {
        s.push_str(&format!(
            "generation {} committed, Merkle root {}\ncertificate: {c}\n",
            o.generation, o.merkle_root
        ));
    } else if !o.dry_run {
        s.push_str("nothing expired: the archive is unchanged\n");
    }
    if let Some(v) = &o.verification {
        s.push_str(&format!(
            "post-erasure verification {}: {} records rescanned, {} should-be-gone remaining, {} list rows remaining, {} of {} lookups found, {} destroyed objects present\n",
            if v.passed { "passed" } else { "FAILED" },
            v.records_scanned,
            v.expired_records_remaining,
            v.list_rows_remaining,
            v.lookups_found,
            v.lookups_attempted,
            v.destroyed_objects_present
        ));
    }
    s
}
