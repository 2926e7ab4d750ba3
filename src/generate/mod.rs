//! Synthetic source generator (see issue 2 and docs/generator.md).
//!
//! A deterministic, pure core ([`people`] makes a person and their doses from
//! (seed, person index); [`rows`] renders them into dirty source rows plus ground truth)
//! and a thin writer ([`generate`]) that runs the core over chunks of people in parallel
//! and concatenates the chunks in index order, so the output is byte-identical whatever
//! the rayon thread count.

mod codes;
mod config;
mod dates;
mod names;
mod people;
mod rows;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde::Serialize;

pub use config::{Config, Dirt};
pub use dates::{kojin_valid, municipality_valid};

use rows::{ChunkOut, Counters, FileSpec, KIND_NAMES, N_FILES};

/// One written source file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileSummary {
    /// Source id in pipeline.toml ("registry", "vrs-persons", "vrs-ledger-export", "ledger-<CODE>").
    pub id: String,
    /// Path relative to the output directory.
    pub path: String,
    /// Layout id (schemas/sources/<layout>.toml).
    pub layout: String,
    /// Data records (CSV records after the header).
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// "cp932", "utf-8" or "utf-8-bom".
    pub encoding: String,
    /// CRLF line endings.
    pub crlf: bool,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub files: Vec<FileSummary>,
    pub people: usize,
    /// Truth lines with outcome `record` (expected canonical dose records before merging).
    pub records: usize,
}

/// People per parallel work unit (fixed: the output must not depend on thread count).
const CHUNK: usize = 2048;
/// Chunks generated in memory before they are written.
const BATCH: usize = 16;

/// Running state of the sequential writer.
struct WriteStats {
    /// Next physical line per file (header is line 1).
    next_line: [u64; N_FILES],
    rows_per_file: [u64; N_FILES],
    dose_base: u64,
    ctr: Counters,
    outcomes: Vec<BTreeMap<&'static str, u64>>,
    reasons: Vec<BTreeMap<&'static str, u64>>,
    records: usize,
}

type Out = std::io::BufWriter<fs_err::File>;

impl WriteStats {
    fn new() -> Self {
        WriteStats {
            next_line: [2u64; N_FILES],
            rows_per_file: [0u64; N_FILES],
            dose_base: 0,
            ctr: Counters::default(),
            outcomes: vec![BTreeMap::new(); N_FILES],
            reasons: vec![BTreeMap::new(); N_FILES],
            records: 0,
        }
    }

    /// Append a chunk's bytes and truth, offsetting line numbers and dose keys.
    fn write_chunk(
        &mut self,
        specs: &[FileSpec],
        ch: &ChunkOut,
        writers: &mut [Out],
        truth_rows: &mut Out,
        truth_persons: &mut Out,
    ) -> anyhow::Result<()> {
        use std::fmt::Write as _;
        for (f, buf) in ch.files.iter().enumerate() {
            writers[f].write_all(&buf.bytes)?;
        }
        truth_persons.write_all(ch.persons.as_bytes())?;
        let mut line = String::with_capacity(1 << 16);
        for t in &ch.truth {
            let f = t.file as usize;
            write!(line, "{},{},", specs[f].id, self.next_line[f] + t.rel_line)?;
            if t.dose != 0 {
                write!(line, "{}", t.dose)?;
            }
            write!(line, ",P{:07},{},{},", t.person + 1, t.outcome, t.reason)?;
            if let Some(k) = t.dose_local {
                write!(line, "D{:08}", self.dose_base + k + 1)?;
            }
            writeln!(line, ",{},{}", t.merge, t.values)?;
            if line.len() > 60_000 {
                truth_rows.write_all(line.as_bytes())?;
                line.clear();
            }
            *self.outcomes[f].entry(t.outcome).or_default() += 1;
            if !t.reason.is_empty() {
                *self.reasons[f].entry(t.reason).or_default() += 1;
            }
            if t.outcome == "record" {
                self.records += 1;
            }
        }
        truth_rows.write_all(line.as_bytes())?;
        for f in 0..N_FILES {
            self.next_line[f] += ch.files[f].lines;
            self.rows_per_file[f] += ch.files[f].rows;
        }
        self.dose_base += ch.doses;
        self.ctr.merge(&ch.ctr);
        Ok(())
    }
}

/// Generate one chunk (pure).
fn chunk(config: &Config, specs: &[FileSpec], mix: &people::SeedMix, c: usize) -> ChunkOut {
    let mut out = ChunkOut::new();
    let lo = c * CHUNK;
    let hi = ((c + 1) * CHUNK).min(config.people);
    for idx in lo..hi {
        let p = people::person(config, mix, idx as u64);
        rows::person_rows(config, specs, &p, &mut out);
    }
    out
}

/// Generate the synthetic sources, pipeline.toml and ground truth under `out`.
/// Refuses to write into an existing non-empty directory.
pub fn generate(config: &Config, out: &Path) -> anyhow::Result<Summary> {
    config.validate().map_err(|e| anyhow::anyhow!(e))?;
    if out.exists() {
        if !out.is_dir() {
            bail!("{} exists and is not a directory", out.display());
        }
        if fs_err::read_dir(out)?.next().is_some() {
            bail!("{} exists and is not empty", out.display());
        }
    }
    for sub in ["sources/registry", "sources/vrs", "sources/ledger", "truth"] {
        fs_err::create_dir_all(out.join(sub))?;
    }
    let specs = rows::file_specs(config);
    let mix = people::SeedMix::new(config.seed);

    let open = |rel: &str| -> anyhow::Result<std::io::BufWriter<fs_err::File>> {
        Ok(std::io::BufWriter::with_capacity(
            1 << 20,
            fs_err::File::create(out.join(rel))?,
        ))
    };
    let mut writers = Vec::new();
    for s in &specs {
        let mut w = open(&s.path)?;
        w.write_all(&rows::header_bytes(s))?;
        writers.push(w);
    }
    let mut truth_rows = open("truth/rows.csv")?;
    writeln!(truth_rows, "{}", rows::TRUTH_ROWS_HEADER)?;
    let mut truth_persons = open("truth/persons.csv")?;
    writeln!(truth_persons, "{}", rows::TRUTH_PERSONS_HEADER)?;

    // The writer runs on its own thread while the next batch is generated in parallel.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<ChunkOut>>(1);
    let specs_ref = &specs;
    let stats = std::thread::scope(|s| -> anyhow::Result<WriteStats> {
        let writer = s.spawn(move || -> anyhow::Result<WriteStats> {
            let mut st = WriteStats::new();
            for batch in rx {
                for ch in batch {
                    st.write_chunk(
                        specs_ref,
                        &ch,
                        &mut writers,
                        &mut truth_rows,
                        &mut truth_persons,
                    )?;
                }
            }
            for mut w in writers {
                w.flush()?;
            }
            truth_rows.flush()?;
            truth_persons.flush()?;
            Ok(st)
        });
        let n_chunks = config.people.div_ceil(CHUNK);
        let mut c0 = 0;
        while c0 < n_chunks {
            let c1 = (c0 + BATCH).min(n_chunks);
            let batch: Vec<ChunkOut> = (c0..c1)
                .into_par_iter()
                .map(|c| chunk(config, specs_ref, &mix, c))
                .collect();
            if tx.send(batch).is_err() {
                break; // the writer failed; its error is returned below
            }
            c0 = c1;
        }
        drop(tx);
        writer.join().expect("writer thread panicked")
    })?;
    let WriteStats {
        rows_per_file,
        dose_base,
        mut ctr,
        outcomes,
        reasons,
        records,
        ..
    } = stats;

    // file-level dirt counters
    for (f, s) in specs.iter().enumerate() {
        use rows::{Enc, K};
        match f {
            rows::F_REGISTRY => ctr.add(K::registry_cp932, s.enc == Enc::Cp932),
            rows::F_VRS_PERSONS | rows::F_VRS_EXPORT => ctr.add(K::vrs_bom, s.enc == Enc::Utf8Bom),
            _ => {
                ctr.add(K::ledger_cp932, s.enc == Enc::Cp932);
                ctr.add(K::ledger_zero_pad_atena, s.zero_pad);
                ctr.add(K::ledger_hiragana_kana, s.hiragana);
            }
        }
        let vrs = f == rows::F_VRS_PERSONS || f == rows::F_VRS_EXPORT;
        if s.enc != Enc::Cp932 {
            if !vrs {
                ctr.add(K::utf8_bom, s.enc == Enc::Utf8Bom);
            }
            ctr.add(K::utf8_crlf, s.crlf);
        }
    }

    let mut files = Vec::new();
    for (f, s) in specs.iter().enumerate() {
        let bytes = fs_err::metadata(out.join(&s.path))?.len();
        files.push(FileSummary {
            id: s.id.clone(),
            path: s.path.clone(),
            layout: s.layout.to_string(),
            rows: rows_per_file[f],
            bytes,
            encoding: s.enc.name().to_string(),
            crlf: s.crlf,
        });
    }
    let summary = Summary {
        files,
        people: config.people,
        records,
    };

    // pipeline.toml
    let mut p = String::new();
    p.push_str("name = \"synthetic\"\n");
    p.push_str("synthetic = true                  # made by vaxarc testdata: no real person\n");
    p.push_str(&format!(
        "municipality_code = \"{}\"\n",
        config.municipality_code
    ));
    for s in &specs {
        p.push_str(&format!(
            "\n[[source]]\nid = \"{}\"\nlayout = \"{}\"\npath = \"{}\"\n",
            s.id, s.layout, s.path
        ));
    }
    p.push_str(
        "\n[archive]\ncustodians = [\"keys/custodian-1.pub\", \"keys/custodian-2.pub\"]\nvault = [\"keys/vault.pub\"]\nsigning_key = \"keys/signing.key\"\n",
    );
    fs_err::write(out.join("pipeline.toml"), p)?;

    // summary.json
    let mut dirt = serde_json::Map::new();
    for (k, name) in KIND_NAMES.iter().enumerate() {
        let (count, eligible) = ctr.0[k];
        dirt.insert(
            name.to_string(),
            serde_json::json!({
                "count": count,
                "eligible": eligible,
                "realised": if eligible > 0 { count as f64 / eligible as f64 } else { 0.0 },
                "configured": config.dirt.get(name),
            }),
        );
    }
    let files_json: Vec<_> = summary
        .files
        .iter()
        .enumerate()
        .map(|(f, s)| {
            serde_json::json!({
                "id": s.id, "path": s.path, "layout": s.layout, "rows": s.rows, "bytes": s.bytes,
                "encoding": s.encoding, "crlf": s.crlf, "outcomes": outcomes[f], "reasons": reasons[f],
            })
        })
        .collect();
    let json = serde_json::json!({
        "seed": config.seed,
        "people": config.people,
        "municipality_code": config.municipality_code,
        "records": records,
        "doses": dose_base,
        "files": files_json,
        "dirt": dirt,
    });
    fs_err::write(
        out.join("truth/summary.json"),
        serde_json::to_string_pretty(&json).context("summary.json")?,
    )?;
    Ok(summary)
}
