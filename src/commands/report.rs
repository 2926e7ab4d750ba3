//! `vaxarc report`: the thin shell around [`crate::report`]. Checks the archive
//! (signature, hashes, Merkle root), decrypts every partition and the quarantine object
//! in memory with a custodian identity, keeps only the report's columns, and prints the
//! aggregates (tables, or one JSON object) and optionally writes the HTML file.

use std::io::Write;

use arrow::array::{Array, StringArray};

use super::{print_json, refuse, Context};
use crate::archive::store::Store;
use crate::archive::{self, verify};
use crate::cli::ReportArgs;
use crate::exit_codes::ExitCode;
use crate::report::{self, render, Fact, QuarantineFact};
use crate::schema::Schema;

/// `vaxarc report`.
pub fn run(args: ReportArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let identities = crate::keys::load_identities(&args.identity, ctx.allow_insecure_identity)?;
    if let Some(path) = &args.html {
        if path.exists() && !args.force {
            return Err(refuse(
                format!(
                    "`{}` exists; the report does not overwrite files",
                    path.display()
                ),
                "choose another --html path, or pass --force to replace it",
            ));
        }
    }
    let as_of_arg = match &args.as_of {
        Some(text) => Some(
            report::parse_date(text)
                .filter(|_| text.len() == 10)
                .ok_or_else(|| {
                    refuse(
                        format!("--as-of `{text}` is not a date"),
                        "write the date as YYYY-MM-DD, e.g. 2025-04-01",
                    )
                })?,
        ),
        None => None,
    };
    let store = Store::open(&args.archive)?;
    let schema = Schema::embedded();

    let spinner = ctx.printer.spinner("verify");
    let check = verify::verify(&store, schema, None, &[])?;
    spinner.finish_and_clear();
    if !check.ok() {
        return Err(refuse(
            format!("archive `{}` does not verify ({}); no report is made from it", args.archive, crate::commands::problems(check.problems.len())),
            "run `vaxarc verify --archive DIR` to see the problems; see docs/runbooks.md (failed verify)",
        ));
    }
    let (manifest, _) = archive::read_manifest(&store)?;

    let bar = ctx
        .printer
        .bar("decrypt", manifest.partitions.len() as u64, false);
    let mut facts: Vec<Fact> = Vec::new();
    for p in &manifest.partitions {
        let records = archive::read_partition(&store, schema, p, &identities)?;
        facts.extend(report::facts_of(schema, &records));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let quarantine = read_quarantine(&store, &manifest, &identities)?;

    let as_of = as_of_arg
        .or_else(|| report::parse_date(&manifest.created))
        .ok_or_else(|| {
            refuse(
                "the manifest's `created` time is not a date; cannot choose the reference date",
                "pass --as-of YYYY-MM-DD",
            )
        })?;
    let spinner = ctx.printer.spinner("aggregate");
    let births = read_registry_summary(&store, &manifest, &identities)?;
    let r = report::build(&report::Input {
        resident_births: births.as_deref(),
        manifest: &manifest,
        facts: &facts,
        quarantine: &quarantine,
        as_of,
        suppress_below: args.suppress_below,
    })?;
    drop(facts);
    spinner.finish_and_clear();

    if let Some(path) = &args.html {
        write_html(path, &render::html(&r), args.force)?;
        ctx.printer.note(&format!("wrote `{}`", path.display()));
    }
    if args.json {
        print_json(&r)?;
    } else {
        print!("{}", render::text(&r));
    }
    Ok(ExitCode::Success)
}

/// Residents by birth date from the archive's registry summary, if it has one.
fn read_registry_summary(
    store: &Store,
    m: &archive::manifest::Manifest,
    identities: &[age::x25519::Identity],
) -> anyhow::Result<Option<Vec<(i32, u64)>>> {
    let object = m.files.iter().find(|f| f.role == "registry-summary");
    let key = m.files.iter().find(|f| f.role == "registry-key");
    let (Some(object), Some(key)) = (object, key) else {
        return Ok(None);
    };
    let batches = archive::open_parquet(
        &object.path,
        &store.get(&object.path)?,
        &store.get(&key.path)?,
        identities,
    )?;
    let mut out = Vec::new();
    for b in &batches {
        let bad = || {
            anyhow::anyhow!(
                "registry summary `{}` does not have the expected columns",
                object.path
            )
        };
        let days = b
            .column_by_name("birth_date")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow::array::Date32Array>()
                    .cloned()
            })
            .ok_or_else(bad)?;
        let counts = b
            .column_by_name("residents")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .cloned()
            })
            .ok_or_else(bad)?;
        out.extend((0..b.num_rows()).map(|i| (days.value(i), counts.value(i))));
    }
    Ok(Some(out))
}

/// The quarantine rows' source file and reason (the raw bytes are never kept).
fn read_quarantine(
    store: &Store,
    m: &archive::manifest::Manifest,
    identities: &[age::x25519::Identity],
) -> anyhow::Result<Vec<QuarantineFact>> {
    use crate::purge::lists::{self, List};
    let Some((object, _)) = lists::entries(m, List::Quarantine) else {
        return Ok(Vec::new());
    };
    let batches = lists::read(store, m, List::Quarantine, identities)?.unwrap_or_default();
    let mut out = Vec::new();
    for b in &batches {
        let column = |name: &str| -> anyhow::Result<StringArray> {
            let c = b.column_by_name(name).ok_or_else(|| {
                anyhow::anyhow!("quarantine object `{}` has no `{name}` column", object.path)
            })?;
            c.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "quarantine object `{}`: column `{name}` is not text",
                        object.path
                    )
                })
        };
        let (files, reasons) = (column("source_file_id")?, column("reason")?);
        for i in 0..b.num_rows() {
            out.push(QuarantineFact {
                file_id: if files.is_null(i) {
                    String::new()
                } else {
                    files.value(i).to_string()
                },
                reason: if reasons.is_null(i) {
                    String::new()
                } else {
                    reasons.value(i).to_string()
                },
            });
        }
    }
    Ok(out)
}

fn write_html(path: &std::path::Path, html: &str, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(path).map_err(|e| {
        refuse(
            format!("cannot write `{}`: {e}", path.display()),
            "check that the folder exists and is writable",
        )
    })?;
    f.write_all(html.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
