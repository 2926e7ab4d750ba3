//! `vaxarc catalogue`: read each archive's signed manifest (no key needed), list the
//! archives, and check them against an earlier catalogue (docs/scaling.md).

use super::{print_json, refuse, Context};
use crate::archive::manifest::{self, Manifest};
use crate::archive::store::Store;
use crate::archive::{self, verify};
use crate::catalogue::{self, Catalogue, Entry, Problem};
use crate::cli::CatalogueArgs;
use crate::exit_codes::ExitCode;

/// Read and check one archive's manifest: its signature with the key it records.
fn read(location: &str) -> Result<(Store, Manifest, String), String> {
    let store = Store::open(location).map_err(|e| e.to_string())?;
    let (m, bytes) = archive::read_manifest(&store).map_err(|e| e.to_string())?;
    let sig = store
        .get(manifest::SIGNATURE)
        .map_err(|e| format!("cannot read {}: {e}", manifest::SIGNATURE))?;
    let public = minisign::PublicKey::from_base64(m.signing_public_key.trim())
        .map_err(|e| format!("the manifest's signing key is not a minisign key: {e}"))?;
    manifest::verify_signature(&public, &bytes, &String::from_utf8_lossy(&sig))
        .map_err(|e| format!("the manifest's signature does not verify: {e}"))?;
    let id = verify::key_id_of(&m);
    Ok((store, m, id))
}

/// The Merkle root an archive's `history/` records for `generation`, when its manifest
/// there is signed by the archive's current key.
fn history_root(store: &Store, current: &Manifest, generation: u64) -> Option<String> {
    let text = store
        .get(&archive::history_path(generation, manifest::MANIFEST))
        .ok()?;
    let sig = store
        .get(&archive::history_path(generation, manifest::SIGNATURE))
        .ok()?;
    let public = minisign::PublicKey::from_base64(current.signing_public_key.trim()).ok()?;
    manifest::verify_signature(&public, &text, &String::from_utf8_lossy(&sig)).ok()?;
    let m: Manifest = serde_json::from_slice(&text).ok()?;
    (m.archive_id == current.archive_id && m.generation == generation).then_some(m.merkle_root)
}

/// `vaxarc catalogue`.
pub fn run(args: CatalogueArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let previous: Option<Catalogue> = match &args.previous {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                refuse(
                    format!("cannot read catalogue `{}`: {e}", p.display()),
                    "pass a file written by `vaxarc catalogue --out`",
                )
            })?;
            let c: Catalogue = serde_json::from_str(&text).map_err(|e| {
                refuse(
                    format!(
                        "catalogue `{}` line {} column {}: {e}",
                        p.display(),
                        e.line(),
                        e.column()
                    ),
                    "pass a file written by `vaxarc catalogue --out`",
                )
            })?;
            if c.format != catalogue::FORMAT {
                return Err(refuse(
                    format!("`{}` is not a {} file", p.display(), catalogue::FORMAT),
                    "pass a file written by `vaxarc catalogue --out`",
                ));
            }
            Some(c)
        }
        None => None,
    };
    let spinner = ctx.printer.spinner("catalogue");
    let mut entries: Vec<Entry> = Vec::new();
    let mut opened: Vec<(String, Store, Manifest)> = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    for location in &args.archives {
        match read(location) {
            Ok((store, m, id)) => {
                entries.push(catalogue::entry(location, &m, &id));
                opened.push((location.clone(), store, m));
            }
            Err(problem) => problems.push(Problem {
                location: location.clone(),
                problem,
            }),
        }
    }
    spinner.finish_and_clear();
    let current = catalogue::catalogue(entries);
    problems.extend(catalogue::check(&current));
    if let Some(prev) = &previous {
        let by_location: std::collections::BTreeMap<&str, &(String, Store, Manifest)> =
            opened.iter().map(|o| (o.0.as_str(), o)).collect();
        let hist = |e: &Entry, generation: u64| {
            by_location
                .get(e.location.as_str())
                .and_then(|(_, store, m)| history_root(store, m, generation))
        };
        problems.extend(catalogue::compare(prev, &current, &hist));
    }
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&current)? + "\n";
        std::fs::write(out, text).map_err(|e| {
            refuse(
                format!("cannot write `{}`: {e}", out.display()),
                "choose a writable path for --out",
            )
        })?;
    }
    let ok = problems.is_empty();
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            ok: bool,
            format: &'a str,
            archives: &'a [Entry],
            problems: &'a [Problem],
        }
        print_json(&Out {
            ok,
            format: catalogue::FORMAT,
            archives: &current.archives,
            problems: &problems,
        })?;
    } else {
        println!("municipality  generation  records  archive id                        Merkle root       location");
        for e in &current.archives {
            println!(
                "{:<13} {:>10} {:>8}  {:<32}  {:.16}  {}",
                e.municipality_code,
                e.generation,
                e.records,
                e.archive_id,
                e.merkle_root,
                e.location
            );
        }
        for p in &problems {
            println!("PROBLEM `{}`: {}", p.location, p.problem);
        }
        if ok {
            println!(
                "{} archives catalogued; no problems",
                current.archives.len()
            );
        }
    }
    Ok(if ok {
        ExitCode::Success
    } else {
        ExitCode::CheckFailed
    })
}
