//! `vaxarc migrate`: ingest → normalise → reconcile → write a new encrypted archive.

use std::path::Path;

use serde::Serialize;

use super::{now_rfc3339, print_json, refuse, Context};
use crate::archive::{self, store::Store, NewArchive, WriteKeys};
use crate::cli::MigrateArgs;
use crate::exit_codes::ExitCode;
use crate::ingest::{self, FileAccounting};
use crate::normalise::Tables;
use crate::pipeline::Pipeline;
use crate::reconcile::{self, Rules};
use crate::schema::Schema;

/// What a migration did (no personal data).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Archive location.
    pub archive: String,
    /// Archive id.
    pub archive_id: String,
    /// Merkle root of the committed manifest.
    pub merkle_root: String,
    /// Per-source accounting.
    pub accounting: Vec<FileAccounting>,
    /// Reconciliation statistics.
    pub reconciliation: reconcile::Stats,
    /// Quarantined rows by reason.
    pub quarantine_by_reason: std::collections::BTreeMap<String, u64>,
    /// Partitions written.
    pub partitions: u64,
    /// Records archived.
    pub records: u64,
    /// Objects left by an interrupted earlier run and removed first.
    pub removed_stale_objects: u64,
    /// Wall-clock seconds per stage (ingest, reconcile, write).
    pub timings: std::collections::BTreeMap<String, f64>,
    /// Every accounting identity holds.
    pub balanced: bool,
}

/// `vaxarc migrate`.
pub fn run(args: MigrateArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let summary = migrate(
        &args.pipeline,
        &args.archive,
        args.signing_key.as_deref(),
        ctx,
    )?;
    if args.json {
        print_json(&summary)?;
    } else {
        print!("{}", render(&summary));
    }
    Ok(ExitCode::Success)
}

/// Run a migration (shared with `demo`).
pub fn migrate(
    pipeline_path: &Path,
    location: &str,
    signing_override: Option<&Path>,
    ctx: &Context,
) -> anyhow::Result<Summary> {
    let schema = Schema::embedded();
    let tables = Tables::embedded();
    let pipeline = Pipeline::load(pipeline_path, schema)?;
    // Every key is loaded before any work starts: a missing key is a refusal, not a
    // half-done run.
    let custodians = crate::keys::load_recipients(
        "archive.custodians",
        &pipeline.file.archive.custodians,
        &pipeline.base,
    )?;
    let vault = crate::keys::load_recipients(
        "archive.vault",
        &pipeline.file.archive.vault,
        &pipeline.base,
    )?;
    let signing_path = match (signing_override, &pipeline.file.archive.signing_key) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => pipeline.resolve(p),
        (None, None) => {
            return Err(refuse(
                "no signing key: the pipeline has no `archive.signing_key` and --signing-key was not given",
                "make one with `vaxarc keygen --output KEY --signing-key signing.key` and name it in the pipeline",
            ))
        }
    };
    let (signing, signing_public) =
        crate::keys::load_signing_key(&signing_path, ctx.allow_insecure_identity)?;
    let rules_owned;
    let rules = match &pipeline.file.reconcile.rules {
        Some(p) => {
            let path = pipeline.resolve(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                refuse(
                    format!("cannot read match rules `{}`: {e}", path.display()),
                    "fix `reconcile.rules` in the pipeline",
                )
            })?;
            rules_owned = Rules::from_toml(&text).map_err(|e| {
                refuse(
                    format!("match rules `{}`: {e}", path.display()),
                    "see docs/reconcile.md for the rules format",
                )
            })?;
            &rules_owned
        }
        None => Rules::embedded(),
    };
    for s in &pipeline.sources {
        if !s.path.is_file() {
            return Err(refuse(
                format!("source `{}`: file `{}` does not exist or is not a file", s.id, s.path.display()),
                "fix the `path` of that [[source]] in the pipeline (paths are relative to the pipeline file)",
            ));
        }
    }
    let store = Store::open(location)?;
    let removed = archive::prepare_new(&store)?;
    if removed > 0 {
        ctx.printer.note(&format!(
            "removed {removed} objects left by an interrupted earlier run (never committed)"
        ));
    }

    let total = ingest::total_bytes(&pipeline.sources);
    let bar = ctx.printer.bar("ingest", total, true);
    let seen = std::sync::atomic::AtomicU64::new(0);
    let last: std::sync::Mutex<std::collections::HashMap<std::thread::ThreadId, u64>> =
        Default::default();
    let on_bytes = |pos: u64| {
        // Positions are per file; advance by the difference per thread's current file.
        let mut map = last.lock().unwrap_or_else(|p| p.into_inner());
        let prev = map.entry(std::thread::current().id()).or_insert(0);
        let delta = pos.saturating_sub(*prev);
        *prev = pos;
        bar.set_position(seen.fetch_add(delta, std::sync::atomic::Ordering::Relaxed) + delta);
    };
    let mut timings = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    // The keyed-hash secret comes from the source bytes: known before any record is read.
    let index_secret =
        archive::derive_index_secret(&pipeline.text, &ingest::source_blake3(&pipeline.sources)?);
    let ingested = ingest::ingest(&pipeline.sources, schema, tables, &on_bytes)?;
    timings.insert("ingest".to_string(), started.elapsed().as_secs_f64());
    bar.finish_and_clear();

    let spinner = ctx.printer.spinner("reconcile");
    let started = std::time::Instant::now();
    let outcome = reconcile::reconcile(
        schema,
        ingested.records,
        &ingested.registry,
        &ingested.vrs_persons,
        rules,
    );
    timings.insert("reconcile".to_string(), started.elapsed().as_secs_f64());
    spinner.finish_and_clear();

    // Fill the post-reconciliation accounting.
    let mut accounting = ingested.accounting;
    let file_idx = schema.idx("source_file_id");
    let mut archived: std::collections::HashMap<&str, u64> = Default::default();
    for r in &outcome.records {
        if let Some(f) = r.at(file_idx).as_str() {
            *archived.entry(f).or_default() += 1;
        }
    }
    for a in &mut accounting {
        if a.records > 0 {
            a.records_archived = archived.get(a.file_id.as_str()).copied().unwrap_or(0);
            a.records_merged = a.records - a.records_archived;
        }
    }
    let balanced = accounting.iter().all(FileAccounting::balanced);
    if !balanced {
        return Err(refuse(
            "internal accounting does not balance (rows in ≠ archived + merged + quarantined); nothing was written",
            "this is a bug: report it with the `--json` accounting of a synthetic run",
        ));
    }
    let mut quarantine_by_reason = std::collections::BTreeMap::new();
    for q in &ingested.quarantine {
        *quarantine_by_reason.entry(q.reason.clone()).or_insert(0u64) += 1;
    }
    let review: Vec<(String, String, f64)> = outcome
        .review
        .iter()
        .flat_map(|r| {
            r.candidates
                .iter()
                .map(move |(a, s)| (r.record_id.clone(), a.clone(), *s))
        })
        .collect();
    // Residents by birth date, for the report's 未接種者数 (aggregates only).
    let (status_idx, birth_idx) = (schema.idx("registry_status"), schema.idx("birth_date"));
    let mut births: std::collections::BTreeMap<i32, u64> = Default::default();
    for r in &ingested.registry {
        if let (Some("resident"), Some(b)) = (r.at(status_idx).as_str(), r.at(birth_idx).as_date())
        {
            *births.entry(b).or_default() += 1;
        }
    }
    let resident_births: Vec<(i32, u64)> = births.into_iter().collect();
    let stats = outcome.stats;
    let records = outcome.records;
    let n_records = records.len() as u64;
    let keys = WriteKeys {
        custodians,
        vault,
        signing,
        signing_public,
    };
    let bar = ctx.printer.spinner("write");
    let started = std::time::Instant::now();
    let manifest = archive::write_new(
        &store,
        NewArchive {
            schema,
            records,
            quarantine: ingested.quarantine,
            review,
            accounting: accounting.clone(),
            reconciliation: serde_json::to_value(&stats)?,
            pipeline_toml: pipeline.text.clone(),
            municipality_code: pipeline.file.municipality_code.clone(),
            buckets: pipeline
                .file
                .archive
                .buckets
                .unwrap_or_else(|| archive::default_buckets(n_records)),
            created: now_rfc3339(),
            index_secret,
            resident_births,
        },
        &keys,
        &|_| bar.tick(),
    )?;
    bar.finish_and_clear();
    timings.insert("write".to_string(), started.elapsed().as_secs_f64());
    // Audit: one entry for the migration, and the first signed checkpoint. The manifest
    // is committed already; a failure here is reported, not a failed migration.
    let logged = crate::audit::append(
        &store,
        None,
        crate::audit::Event {
            archive_id: manifest.archive_id.clone(),
            generation: manifest.generation,
            time: now_rfc3339(),
            operator: std::env::var("VAXARC_OPERATOR").unwrap_or_else(|_| "migrate".into()),
            purpose: "migration".into(),
            command: "migrate".into(),
            result_count: n_records,
            outcome: "committed".into(),
            ..Default::default()
        },
    )
    .and_then(|_| crate::audit::checkpoint(&store, &manifest.archive_id, Some(&keys.signing)));
    if let Err(e) = logged {
        ctx.printer.note(&format!(
            "warning: the archive is committed but its audit entry could not be written: {e}"
        ));
    }
    Ok(Summary {
        archive: location.to_string(),
        archive_id: manifest.archive_id,
        merkle_root: manifest.merkle_root,
        accounting,
        reconciliation: stats,
        quarantine_by_reason,
        partitions: manifest.partitions.len() as u64,
        records: n_records,
        removed_stale_objects: removed,
        timings,
        balanced,
    })
}

/// Aligned text tables of a summary.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "archive {} committed: {} records in {} partitions, Merkle root {}\n\n",
        s.archive, s.records, s.partitions, s.merkle_root
    ));
    out.push_str(&render_accounting(&s.accounting));
    out.push('\n');
    out.push_str("reconciliation (照合結果)\n");
    for (k, v) in &s.reconciliation.by_method {
        out.push_str(&format!("  method {k:<18} {v:>10}\n"));
    }
    for (k, v) in &s.reconciliation.by_status {
        out.push_str(&format!("  status {k:<18} {v:>10}\n"));
    }
    out.push_str(&format!(
        "  {:<25} {:>10}\n",
        "merged rows", s.reconciliation.merged_rows
    ));
    out.push_str(&format!(
        "  {:<25} {:>10}\n",
        "conflicts", s.reconciliation.conflicts
    ));
    out.push_str(&format!(
        "  {:<25} {:>10}\n",
        "awaiting review", s.reconciliation.review
    ));
    if !s.quarantine_by_reason.is_empty() {
        out.push_str("\nquarantine by reason (隔離理由)\n");
        for (k, v) in &s.quarantine_by_reason {
            out.push_str(&format!("  {k:<25} {v:>10}\n"));
        }
    }
    out
}

/// The accounting table: rows in = archived + merged + quarantined, per file.
pub fn render_accounting(accounting: &[FileAccounting]) -> String {
    let mut out = format!(
        "{:<22} {:<18} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
        "source (入力)",
        "kind",
        "rows",
        "records",
        "archived",
        "merged",
        "quarant.",
        "persons",
        "balanced"
    );
    for a in accounting {
        out.push_str(&format!(
            "{:<22} {:<18} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
            a.file_id,
            a.kind,
            a.rows_read,
            a.records,
            a.records_archived,
            a.records_merged,
            a.rows_quarantined + a.dose_groups_quarantined,
            a.persons,
            if a.balanced() { "yes" } else { "NO" }
        ));
    }
    out
}
