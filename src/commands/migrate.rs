//! `vaxarc migrate`: ingest → normalise → reconcile → write a new encrypted archive.

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use super::{now_rfc3339, print_json, refuse, Context};
use crate::archive::{self, store::Store, WriteKeys};
use crate::cli::MigrateArgs;
use crate::exit_codes::ExitCode;
use crate::ingest::{self, FileAccounting};
use crate::layout::SourceKind;
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
    /// What the operator should look at although the migration succeeded (no values:
    /// source ids and line numbers), e.g. a stray quote that joined many lines into one
    /// quarantined row.
    pub warnings: Vec<String>,
}

/// A warning for each row a stray quote made of several lines ([`ingest::reason::UNBALANCED_QUOTE`]):
/// the rows it swallowed are in the quarantine list, not lost, but are archived only once
/// the source is fixed and migrated again.
fn quote_warnings(quarantine: &[ingest::QuarantineEntry]) -> Vec<String> {
    quarantine
        .iter()
        .filter(|q| q.reason == ingest::reason::UNBALANCED_QUOTE)
        .map(|q| {
            format!(
                "source `{}` line {}: a quoted field opened there runs over {} lines (a stray or unclosed quote); those lines were quarantined as one row (`unbalanced_quote`): fix the quote in the source and migrate again to archive them",
                q.file_id,
                q.line,
                ingest::lines_spanned(q)
            )
        })
        .collect()
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
    let pipeline = Pipeline::load(pipeline_path, schema)?;
    // Every key is loaded before any work starts: a missing key is a refusal, not a
    // half-done run.
    let named = |key: &str| {
        format!(
            "archive.{key} in pipeline {}{}",
            pipeline_path.display(),
            pipeline.location_of("archive", key)
        )
    };
    let custodians = crate::keys::load_recipients(
        &named("custodians"),
        &pipeline.file.archive.custodians,
        &pipeline.base,
    )?;
    let distinct: std::collections::BTreeSet<String> =
        custodians.to_strings().into_iter().collect();
    if distinct.len() < 2 {
        return Err(refuse(
            format!(
                "pipeline `{}`: `archive.custodians` names {} distinct recipient(s); an archive needs at least two custodians, so that losing one identity loses nothing",
                pipeline_path.display(),
                distinct.len()
            ),
            "make a second custodian key with `vaxarc keygen` and list both in archive.custodians (docs/runbooks.md, key ceremony)",
        ));
    }
    let vault = crate::keys::load_recipients(
        &named("vault"),
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
    for (n, s) in pipeline.sources.iter().enumerate() {
        if !s.path.is_file() {
            return Err(refuse(
                format!(
                    "pipeline `{}`{}: source `{}`: file `{}` does not exist or is not a file",
                    pipeline_path.display(),
                    crate::pipeline::source_location(&pipeline.text, n, "path"),
                    s.id,
                    s.path.display()
                ),
                "fix the `path` of that [[source]] in the pipeline (paths are relative to the pipeline file)",
            ));
        }
    }
    let store = Store::create(location)?;
    // Held until the run ends (committed or not): a second migrate into the same new
    // folder at the same time is refused instead of overwriting this one's objects.
    let _lock = crate::purge::rewrite::acquire_migrate_lock(&store, &super::now_rfc3339())?;
    let removed = archive::prepare_new(&store)?;
    if removed > 0 {
        ctx.printer.note(&format!(
            "removed {removed} objects left by an interrupted earlier run (never committed)"
        ));
    }

    let keys = WriteKeys {
        custodians,
        vault,
        signing,
        signing_public,
    };
    let streamed = stream(&pipeline, &store, &keys, rules, ctx)?;
    let Streamed {
        manifest,
        accounting,
        stats,
        quarantine_by_reason,
        warnings,
        records: n_records,
        timings,
    } = streamed;
    // Audit: one entry for the migration, and the first signed checkpoint. The manifest
    // is committed already; a failure here is reported, not a failed migration.
    let logged = crate::audit::append(
        &store,
        None,
        crate::audit::Event {
            archive_id: manifest.archive_id.clone(),
            generation: manifest.generation,
            time: now_rfc3339(),
            operator: std::env::var("VAXARC_OPERATOR")
                .ok()
                .filter(|o| !super::blank(o))
                .unwrap_or_else(|| "migrate".into()),
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
            "warning: the archive is committed but its audit entry could not be written: {e}; the next command that logs (verify, lookup, purge, erase) writes it, with outcome `recovered`"
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
        balanced: true,
        warnings,
    })
}

/// What [`stream`] wrote and counted.
struct Streamed {
    manifest: archive::manifest::Manifest,
    accounting: Vec<FileAccounting>,
    stats: reconcile::Stats,
    quarantine_by_reason: std::collections::BTreeMap<String, u64>,
    warnings: Vec<String>,
    records: u64,
    timings: std::collections::BTreeMap<String, f64>,
}

/// One unit of the write pass read back, settled ([`reconcile::settle`]) and counted.
struct Settled {
    records: Vec<crate::record::Record>,
    merged_rows: u64,
    stats: reconcile::Stats,
    /// Records per source file id.
    per_file: std::collections::HashMap<String, u64>,
    /// Time it took (it overlaps the previous unit's writing).
    seconds: f64,
}

/// Spill buckets when the pipeline names no bucket count: every default count
/// ([`archive::default_buckets`], a power of two) divides it or is a multiple of it, so
/// each archive bucket is a set of spill buckets (or each spill bucket a set of archive
/// buckets) and a person's records are never split.
const SPILL_BUCKETS: u16 = 64;

/// Ingest → reconcile → write with the records out of memory between the passes:
///
/// 1. the registry and the VRS person list are read a chunk of rows at a time; the
///    linker keeps what linking needs of each chunk (match keys, join sides, the few
///    fields a link copies) and the chunk is dropped;
/// 2. the dose sources are read in parallel, and every [`LINK_BATCH`] records are linked
///    ([`reconcile::Linker`]: enrich, link, apply) and sent, encrypted, to the spill
///    bucket of their person ([`crate::spill`]);
/// 3. one unit of archive buckets at a time: its records are read back, settled (merges,
///    [`reconcile::settle`]) and written ([`archive::Writer::add`]) — the next unit is
///    read back and settled while this one is written;
/// 4. the index, lists and manifest are written and committed.
///
/// The archive's plaintext is the one [`reconcile::reconcile`] and [`archive::write_new`]
/// give over all records at once (tested).
fn stream(
    pipeline: &Pipeline,
    store: &Store,
    keys: &WriteKeys,
    rules: &Rules,
    ctx: &Context,
) -> anyhow::Result<Streamed> {
    let schema = Schema::embedded();
    let tables = Tables::embedded();
    let mut timings = std::collections::BTreeMap::new();
    let total = ingest::total_bytes(&pipeline.sources);
    let bar = ctx.printer.bar("ingest", total, true);
    let seen = std::sync::atomic::AtomicU64::new(0);
    let last: std::sync::Mutex<std::collections::HashMap<std::thread::ThreadId, u64>> =
        Default::default();
    let on_bytes = |pos: u64| {
        // Positions are per file, from the thread reading it (`0` when it starts one):
        // advance by the difference from that thread's last position.
        let mut map = last.lock().unwrap_or_else(|p| p.into_inner());
        let prev = map.entry(std::thread::current().id()).or_insert(0);
        let delta = pos.saturating_sub(*prev);
        *prev = pos;
        bar.set_position(seen.fetch_add(delta, std::sync::atomic::Ordering::Relaxed) + delta);
    };
    let started = std::time::Instant::now();
    // The keyed-hash secret comes from the source bytes, hashed beside step 1 (reading them
    // is I/O when they are not cached): known before any record is routed, so each record
    // goes to its person bucket as soon as it is linked.
    let sources = pipeline.sources.clone();
    let hashing = std::thread::spawn(move || ingest::source_blake3(&sources));
    // 1. Person rows: the registry, then the VRS person list, each dropped once the linker
    // holds what it needs of it (never both lists' full rows at once).
    let of_kind = |kind: SourceKind| -> Vec<_> {
        pipeline
            .sources
            .iter()
            .filter(|s| s.layout.kind == kind)
            .cloned()
            .collect()
    };
    let dose_sources: Vec<_> = pipeline
        .sources
        .iter()
        .filter(|s| s.layout.kind.produces_records())
        .cloned()
        .collect();
    // Rows arrive a chunk at a time, one file after another in pipeline order (the rows'
    // order is the registry's row order, on which linking's ties depend); each chunk is
    // taken by its builder and dropped, so a list's full rows never sit in memory together.
    let mut person_quarantine = Vec::new();
    let mut person_accounting = Vec::new();
    let mut read_persons = |kind: SourceKind, take: &(dyn Fn(Vec<_>) + Sync)| {
        for source in of_kind(kind) {
            let ingest::Ingested {
                quarantine,
                accounting,
                ..
            } = ingest::ingest_into(
                std::slice::from_ref(&source),
                schema,
                tables,
                &on_bytes,
                take,
            )?;
            person_quarantine.extend(quarantine);
            person_accounting.extend(accounting);
        }
        Ok::<_, ingest::IngestError>(())
    };
    let (status_idx, birth_idx) = (schema.idx("registry_status"), schema.idx("birth_date"));
    let registry = std::sync::Mutex::new((
        reconcile::RegistryBuilder::new(schema),
        // Residents by birth date, for the report's 未接種者数 (aggregates only).
        std::collections::BTreeMap::<i32, u64>::new(),
    ));
    read_persons(SourceKind::Registry, &|rows| {
        let mut guard = registry.lock().unwrap_or_else(|p| p.into_inner());
        let (builder, births) = &mut *guard;
        builder.add(&rows);
        for r in &rows {
            if let (Some("resident"), Some(b)) =
                (r.at(status_idx).as_str(), r.at(birth_idx).as_date())
            {
                *births.entry(b).or_default() += 1;
            }
        }
        drop(guard);
        rows.into_par_iter().for_each(drop);
    })?;
    let (registry, births) = registry.into_inner().unwrap_or_else(|p| p.into_inner());
    let prepared = registry.finish(rules);
    let persons = std::sync::Mutex::new(reconcile::PersonListBuilder::new(schema));
    read_persons(SourceKind::VrsPersons, &|rows| {
        persons.lock().unwrap_or_else(|p| p.into_inner()).add(&rows);
        rows.into_par_iter().for_each(drop);
    })?;
    let persons = persons.into_inner().unwrap_or_else(|p| p.into_inner());
    let linker = reconcile::Linker::with_person_list(prepared, persons, rules);

    let index_secret = archive::derive_index_secret(
        &pipeline.text,
        &hashing.join().expect("source hashing panicked")?,
    );

    // 2. Dose records: linked a batch at a time and spilled by person bucket.
    let explicit = pipeline.file.archive.buckets.map(|b| b.max(1));
    let spill = crate::spill::Spill::new(None, usize::from(explicit.unwrap_or(SPILL_BUCKETS)))?;
    if spill.stale_removed() > 0 {
        let n = spill.stale_removed();
        ctx.printer.note(&format!(
            "removed {n} temporary spill {} left by killed runs (ciphertext only)",
            if n == 1 { "folder" } else { "folders" }
        ));
    }
    let pending: std::sync::Mutex<Vec<crate::record::Record>> = Default::default();
    let linked: std::sync::Mutex<(reconcile::Stats, Vec<reconcile::ReviewItem>)> =
        Default::default();
    // The person hash of each record awaiting review (the review list carries it).
    let review_persons: std::sync::Mutex<std::collections::HashMap<String, String>> =
        Default::default();
    let failed: std::sync::Mutex<Option<crate::spill::SpillError>> = Default::default();
    // One batch links at a time: linking is parallel inside (rayon), so a second batch
    // linking beside it gained no time and held its joins' memory too (≈ 80 MiB at 5M).
    // The other file threads wait with their batch (the sink runs on the plain file
    // threads, never on a rayon worker, so a waiting thread cannot starve the pool).
    let one_at_a_time = std::sync::Mutex::new(());
    let link_and_spill = |mut batch: Vec<crate::record::Record>| {
        let _turn = one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        if failed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return;
        }
        let out = linker.link(&mut batch);
        let in_review: std::collections::HashSet<&str> =
            out.review.iter().map(|r| r.record_id.as_str()).collect();
        let n = spill.buckets() as u32;
        let rid = schema.idx("record_id");
        let hashes: Vec<blake3::Hash> = batch
            .par_iter()
            .map(|r| archive::person_hash(schema, r, &index_secret))
            .collect();
        if !in_review.is_empty() {
            let mut persons = review_persons.lock().unwrap_or_else(|p| p.into_inner());
            for (r, h) in batch.iter().zip(&hashes) {
                if let Some(id) = r.at(rid).as_str().filter(|id| in_review.contains(id)) {
                    persons.insert(id.to_string(), h.to_hex().to_string());
                }
            }
        }
        drop(in_review);
        {
            let mut l = linked.lock().unwrap_or_else(|p| p.into_inner());
            l.0.records_in += batch.len() as u64;
            l.0.add(&out.stats);
            l.1.extend(out.review);
        }
        let routes: Vec<u32> = hashes
            .iter()
            .map(|h| archive::hash_prefix(h.as_bytes()) % n)
            .collect();
        let mut by_bucket: Vec<Vec<&crate::record::Record>> = vec![Vec::new(); n as usize];
        for (r, b) in batch.iter().zip(routes) {
            by_bucket[b as usize].push(r);
        }
        let pushed = by_bucket
            .into_par_iter()
            .enumerate()
            .try_for_each(|(b, rows)| spill.push(b, rows));
        if let Err(e) = pushed {
            failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
        // Many small frees, over the pool.
        batch.into_par_iter().for_each(drop);
    };
    let sink = |records: Vec<crate::record::Record>| {
        let batch = {
            let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
            p.extend(records);
            if p.len() < LINK_BATCH {
                return;
            }
            std::mem::take(&mut *p)
        };
        link_and_spill(batch);
    };
    let doses = ingest::ingest_into(&dose_sources, schema, tables, &on_bytes, &sink)?;
    link_and_spill(std::mem::take(
        &mut *pending.lock().unwrap_or_else(|p| p.into_inner()),
    ));
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.into());
    }
    let (mut stats, mut review) = linked.into_inner().unwrap_or_else(|p| p.into_inner());
    bar.finish_and_clear();
    let records_in = stats.records_in;
    let buckets = explicit.unwrap_or_else(|| archive::default_buckets(records_in));
    let spinner = ctx.printer.spinner("write");
    let on_object = |_| spinner.tick();
    let mut writer = archive::Writer::new(store, schema, keys, index_secret, buckets, &on_object);
    writer.spill_index(None)?;
    // What the registry and the person list hold of the persons linked records reached
    // goes into the index beside the records' own identifiers (docs/lookup.md).
    linker.linked_persons(|persons| writer.add_persons(persons))?;
    // The linker (the registry's match keys and join sides: half a GB per million
    // residents) is the first pass's largest part; its memory goes back to the OS so the
    // second pass does not map more on top (docs/performance.md, "Person lists a chunk at
    // a time").
    crate::allocator::release_after(|| drop(linker));
    let spilled = spill.finish()?;
    timings.insert("ingest".to_string(), started.elapsed().as_secs_f64());

    // Accounting and quarantine in pipeline order.
    let mut per_source: std::collections::HashMap<String, FileAccounting> = person_accounting
        .into_iter()
        .chain(doses.accounting)
        .map(|a| (a.file_id.clone(), a))
        .collect();
    let mut accounting: Vec<FileAccounting> = pipeline
        .sources
        .iter()
        .filter_map(|s| per_source.remove(&s.id))
        .collect();
    let order: std::collections::HashMap<&str, usize> = pipeline
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut quarantine = person_quarantine;
    quarantine.extend(doses.quarantine);
    // Stable: row order within a source.
    quarantine.sort_by_key(|q| order.get(q.file_id.as_str()).copied().unwrap_or(usize::MAX));
    if let Some(refusal) = unusable_source(&pipeline.sources, &accounting, &quarantine) {
        return Err(refusal);
    }

    // 3. One archive bucket at a time: settle (merge) and write.
    let units: Vec<Vec<usize>> = if explicit.is_some() {
        (0..usize::from(buckets)).map(|b| vec![b]).collect()
    } else if buckets <= SPILL_BUCKETS {
        (0..usize::from(buckets))
            .map(|b| {
                (b..usize::from(SPILL_BUCKETS))
                    .step_by(usize::from(buckets))
                    .collect()
            })
            .collect()
    } else {
        (0..usize::from(SPILL_BUCKETS)).map(|s| vec![s]).collect()
    };
    let file_idx = schema.idx("source_file_id");
    let mut archived: std::collections::HashMap<String, u64> = Default::default();
    // A unit's records read back, settled and counted (pure but for the spill read).
    let prepare = |unit: &Vec<usize>| -> anyhow::Result<Settled> {
        let started = std::time::Instant::now();
        // The unit's spill buckets are read back in parallel (decrypting and unpacking a
        // bucket is serial work: ≈ 8 % of this pass when the buckets were read one by one),
        // then joined in bucket order.
        let parts = unit
            .par_iter()
            .map(|&s| spilled.take(s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut records = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        for part in parts {
            records.extend(part);
        }
        let (records, merged_rows) = reconcile::settle(schema, records);
        let stats = reconcile::Stats::count(schema, &records);
        let per_file = records
            .par_iter()
            .fold(std::collections::HashMap::<&str, u64>::new, |mut m, r| {
                if let Some(f) = r.at(file_idx).as_str() {
                    *m.entry(f).or_default() += 1;
                }
                m
            })
            .reduce(Default::default, |mut a, b| {
                for (f, n) in b {
                    *a.entry(f).or_default() += n;
                }
                a
            })
            .into_iter()
            .map(|(f, n)| (f.to_string(), n))
            .collect();
        Ok(Settled {
            records,
            merged_rows,
            stats,
            per_file,
            seconds: started.elapsed().as_secs_f64(),
        })
    };
    // Units in a pipeline of two: the next unit is read back and settled while this one's
    // partitions are sealed and stored (rayon's pool takes work from both). One at a
    // time, the pool sat half idle through every unit's serial steps (≈ 18 % of this pass
    // at 5M rows); the cost is one more unit's records in memory.
    let (mut settle_time, mut write_time) = (0.0, 0.0);
    let mut next = units.first().map(prepare);
    for k in 0..units.len() {
        let Some(settled) = next.take() else { break };
        let settled = settled?;
        stats.merged_rows += settled.merged_rows;
        stats.add(&settled.stats);
        for (f, n) in settled.per_file {
            *archived.entry(f).or_default() += n;
        }
        settle_time += settled.seconds;
        let (added, prepared) = rayon::join(
            || {
                let started = std::time::Instant::now();
                writer
                    .add(settled.records)
                    .map(|()| started.elapsed().as_secs_f64())
            },
            || units.get(k + 1).map(prepare),
        );
        write_time += added?;
        next = prepared;
    }
    drop(spilled);
    timings.insert("reconcile".to_string(), settle_time);

    // Post-reconciliation accounting.
    for a in &mut accounting {
        if a.records > 0 {
            a.records_archived = archived.get(a.file_id.as_str()).copied().unwrap_or(0);
            a.records_merged = a.records - a.records_archived;
        }
    }
    if !accounting.iter().all(FileAccounting::balanced) {
        return Err(refuse(
            "internal accounting does not balance (rows in ≠ archived + merged + quarantined); nothing was committed",
            "this is a bug: report it with the `--json` accounting of a synthetic run",
        ));
    }
    let warnings = quote_warnings(&quarantine);
    let mut quarantine_by_reason = std::collections::BTreeMap::new();
    for q in &quarantine {
        *quarantine_by_reason.entry(q.reason.clone()).or_insert(0u64) += 1;
    }
    reconcile::sort_review(&mut review);
    stats.review = review.len() as u64;
    let review_persons = review_persons
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let review: Vec<archive::ReviewRow> = review
        .iter()
        .flat_map(|r| {
            let person_hash = review_persons
                .get(&r.record_id)
                .cloned()
                .unwrap_or_default();
            r.candidates.iter().map(move |(a, s)| archive::ReviewRow {
                record_id: r.record_id.clone(),
                candidate_atena_number: a.clone(),
                score: *s,
                person_hash: person_hash.clone(),
            })
        })
        .collect();
    let records = stats.records_out;
    let started = std::time::Instant::now();
    let manifest = writer.finish(archive::Rest {
        quarantine,
        review,
        accounting: accounting.clone(),
        reconciliation: serde_json::to_value(&stats)?,
        pipeline_toml: pipeline.text.clone(),
        municipality_code: pipeline.file.municipality_code.clone(),
        created: now_rfc3339(),
        resident_births: births.into_iter().collect(),
    })?;
    write_time += started.elapsed().as_secs_f64();
    spinner.finish_and_clear();
    timings.insert("write".to_string(), write_time);
    Ok(Streamed {
        manifest,
        accounting,
        stats,
        quarantine_by_reason,
        warnings,
        records,
        timings,
    })
}

/// Dose records linked together while streaming: bounds the records, join frames and links
/// in memory (one batch links at a time, one more waits), while every batch's joins probe
/// the whole registry side (smaller batches cost time: at 1M rows 65,536 took ≈ 2 s more
/// than 262,144 and saved ≈ 200 MB).
const LINK_BATCH: usize = 1 << 17;

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
    for w in &s.warnings {
        out.push_str(&format!("\nwarning: {w}\n"));
    }
    out
}

/// A refusal when some source had rows and every one of them was quarantined whole for
/// its shape — the wrong number of fields or bytes that do not decode: the file does not
/// fit its layout (a header with a column too many, another delimiter or encoding), and
/// archiving the rest without it would look like success. Rows quarantined for their
/// values (dates, numbers) are dirty data, kept in the quarantine list as ever, even when
/// every row of a small file has them; a source with no rows at all (header only) is
/// accepted: an export can be empty.
fn unusable_source(
    sources: &[crate::pipeline::Source],
    accounting: &[FileAccounting],
    quarantine: &[ingest::QuarantineEntry],
) -> Option<anyhow::Error> {
    const SHAPE: [&str; 3] = [
        ingest::reason::WRONG_COLUMN_COUNT,
        ingest::reason::UNBALANCED_QUOTE,
        ingest::reason::UNDECODABLE_BYTES,
    ];
    let a = accounting.iter().find(|a| {
        a.rows_read > 0
            && a.rows_quarantined == a.rows_read
            && quarantine
                .iter()
                .filter(|q| q.file_id == a.file_id)
                .all(|q| SHAPE.contains(&q.reason.as_str()))
    })?;
    let path = sources
        .iter()
        .find(|s| s.id == a.file_id)
        .map_or_else(String::new, |s| s.path.display().to_string());
    let mut reasons: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut first_line = None;
    for q in quarantine.iter().filter(|q| q.file_id == a.file_id) {
        *reasons.entry(q.reason.as_str()).or_default() += 1;
        first_line = first_line.or(Some(q.line));
    }
    let (reason, _) = reasons
        .iter()
        .max_by_key(|(r, n)| (**n, std::cmp::Reverse(**r)))?;
    Some(refuse(
        format!(
            "source `{}` (`{path}`): all {} rows were quarantined, from line {} on (mostly `{reason}`): the file does not fit its layout; nothing was committed",
            a.file_id,
            a.rows_read,
            first_line.unwrap_or(2),
        ),
        "check the file's header line against its layout (schemas/sources/), and the layout's delimiter and encoding; to migrate without this file, remove it from the pipeline",
    ))
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
