//! Quality of a reconciliation against the synthetic generator's ground truth.
//!
//! This is the only part of `reconcile` that reads files: `truth/persons.csv` and
//! `truth/rows.csv` under the truth directory (CSV with a header; columns are found by
//! name, extra columns are ignored). A record is identified in the truth by
//! `(source_file_id, source_line, dose)`, where `dose` is the record's dose number for
//! VRS-export rows (one wide row holds several doses) and empty for ledger rows.
//!
//! * link precision = correct links / links made
//! * link recall    = correct links / records whose true person is in the registry
//! * merge precision = merged pairs both marked `merged` in the truth with the same
//!   `dose_key` / merged pairs made
//! * merge recall   = correct merged pairs / true merged pairs (a truth dose_key with
//!   k `merged` rows in the outcome counts k − 1 pairs)
//!
//! Rows absorbed by a merge are scored too: they carry the link of their survivor.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use super::merge::VRS_KIND;
use super::{Fields, Outcome};
use crate::schema::Schema;

/// Quality figures of one run. Counts only; no personal data.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Quality {
    /// Input rows scored (output records plus absorbed rows) found in the truth.
    pub records_scored: u64,
    /// Output records or absorbed rows the truth does not know.
    pub unknown_rows: u64,
    /// Links made (records with a registry atena).
    pub linked: u64,
    /// Links made to the true registry person.
    pub correct_links: u64,
    /// Records whose true person is in the registry.
    pub true_links: u64,
    /// correct_links / linked (1 when nothing was linked).
    pub link_precision: f64,
    /// correct_links / true_links (1 when there is nothing to link).
    pub link_recall: f64,
    /// Records sent to review.
    pub review: u64,
    /// Review records whose true person is in the registry.
    pub review_true_person: u64,
    /// Merged pairs made (survivor, absorbed row).
    pub merged_pairs: u64,
    /// Merged pairs the truth agrees with.
    pub correct_merges: u64,
    /// Merged pairs in the truth (among rows present in the outcome).
    pub true_merge_pairs: u64,
    /// correct_merges / merged_pairs (1 when nothing was merged).
    pub merge_precision: f64,
    /// correct_merges / true_merge_pairs (1 when nothing should be merged).
    pub merge_recall: f64,
}

impl Quality {
    /// A plain-text table for the terminal.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.3} %", x * 100.0);
        let rows: Vec<(&str, String)> = vec![
            ("records scored", self.records_scored.to_string()),
            ("unknown rows", self.unknown_rows.to_string()),
            ("links made", self.linked.to_string()),
            ("correct links", self.correct_links.to_string()),
            ("true links", self.true_links.to_string()),
            ("link precision", pct(self.link_precision)),
            ("link recall", pct(self.link_recall)),
            ("review", self.review.to_string()),
            (
                "review, person in registry",
                self.review_true_person.to_string(),
            ),
            ("merged pairs", self.merged_pairs.to_string()),
            ("correct merges", self.correct_merges.to_string()),
            ("true merge pairs", self.true_merge_pairs.to_string()),
            ("merge precision", pct(self.merge_precision)),
            ("merge recall", pct(self.merge_recall)),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            let _ = writeln!(s, "{k:<width$}  {v:>12}");
        }
        s
    }
}

type RowId = (String, String, String);

struct TruthRow {
    person_id: String,
    dose_key: String,
    merge: String,
}

struct TruthPerson {
    in_registry: bool,
    atena: String,
}

fn read_csv(path: &Path) -> anyhow::Result<(HashMap<String, usize>, Vec<csv::StringRecord>)> {
    let file = fs_err::File::open(path)?;
    let mut reader = csv::Reader::from_reader(file);
    let header: HashMap<String, usize> = reader
        .headers()
        .with_context(|| format!("reading the header of `{}`", path.display()))?
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim_start_matches('\u{feff}').to_string(), i))
        .collect();
    let mut rows = Vec::new();
    for (n, row) in reader.records().enumerate() {
        rows.push(row.with_context(|| format!("`{}`: record {}", path.display(), n + 1))?);
    }
    Ok((header, rows))
}

fn column(header: &HashMap<String, usize>, name: &str, path: &Path) -> anyhow::Result<usize> {
    match header.get(name) {
        Some(i) => Ok(*i),
        None => bail!("`{}` has no column `{name}`", path.display()),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Score an outcome against the truth in `truth_dir` (`persons.csv`, `rows.csv`).
pub fn score(outcome: &Outcome, schema: &Schema, truth_dir: &Path) -> anyhow::Result<Quality> {
    let f = Fields::new(schema);

    let path = truth_dir.join("persons.csv");
    let (h, rows) = read_csv(&path)?;
    let (pid, inreg, atena) = (
        column(&h, "person_id", &path)?,
        column(&h, "in_registry", &path)?,
        column(&h, "atena_number", &path)?,
    );
    let persons: HashMap<String, TruthPerson> = rows
        .iter()
        .map(|r| {
            let get = |i: usize| r.get(i).unwrap_or("").to_string();
            let in_registry = matches!(
                get(inreg).to_ascii_lowercase().as_str(),
                "true" | "1" | "yes"
            );
            (
                get(pid),
                TruthPerson {
                    in_registry,
                    atena: get(atena),
                },
            )
        })
        .collect();

    let path = truth_dir.join("rows.csv");
    let (h, rows) = read_csv(&path)?;
    let cols = [
        "file_id",
        "line",
        "dose",
        "person_id",
        "outcome",
        "dose_key",
        "merge",
    ]
    .iter()
    .map(|c| column(&h, c, &path))
    .collect::<anyhow::Result<Vec<usize>>>()?;
    let mut truth: HashMap<RowId, TruthRow> = HashMap::new();
    for r in &rows {
        let get = |k: usize| r.get(cols[k]).unwrap_or("").to_string();
        if get(4) != "record" {
            continue;
        }
        truth.insert(
            (get(0), get(1), get(2)),
            TruthRow {
                person_id: get(3),
                dose_key: get(5),
                merge: get(6),
            },
        );
    }

    // Every scored row: its id, the registry atena it was linked to, whether it is in review.
    let mut scored: Vec<(RowId, Option<String>, bool)> = Vec::new();
    let mut pairs: Vec<(RowId, RowId)> = Vec::new();
    for r in &outcome.records {
        let text = |i: usize| r.at(i).as_str().unwrap_or("").to_string();
        let line = r
            .at(f.source_line)
            .as_int()
            .map_or(String::new(), |l| l.to_string());
        let dose = if r.at(f.source_kind).as_str() == Some(VRS_KIND) {
            r.at(f.dose_number)
                .as_int()
                .map_or(String::new(), |d| d.to_string())
        } else {
            String::new()
        };
        let id: RowId = (text(f.source_file_id), line, dose.clone());
        let link = r.at(f.registry_atena_number).as_str().map(str::to_string);
        let review = r.at(f.match_method).as_str() == Some("review");
        if let Some(prov) = r.at(f.merged_provenance).as_str() {
            for p in prov.split(';') {
                let mut parts = p.rsplitn(3, ':');
                let (_hash, line, file) = (parts.next(), parts.next(), parts.next());
                let (Some(line), Some(file)) = (line, file) else {
                    continue;
                };
                // Absorbed rows are ledger rows (empty dose); fall back to the survivor's.
                let mut absorbed: RowId = (file.to_string(), line.to_string(), String::new());
                if !truth.contains_key(&absorbed) {
                    absorbed.2 = dose.clone();
                }
                scored.push((absorbed.clone(), link.clone(), false));
                pairs.push((id.clone(), absorbed));
            }
        }
        scored.push((id, link, review));
    }

    let mut q = Quality::default();
    let mut merged_by_key: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, link, review) in &scored {
        let Some(t) = truth.get(id) else {
            q.unknown_rows += 1;
            continue;
        };
        q.records_scored += 1;
        let person = persons.get(&t.person_id);
        let true_atena = person.filter(|p| p.in_registry).map(|p| p.atena.as_str());
        if true_atena.is_some() {
            q.true_links += 1;
        }
        if let Some(l) = link {
            q.linked += 1;
            if true_atena == Some(l.as_str()) {
                q.correct_links += 1;
            }
        }
        if *review {
            q.review += 1;
            if true_atena.is_some() {
                q.review_true_person += 1;
            }
        }
        if t.merge == "merged" && !t.dose_key.is_empty() {
            *merged_by_key.entry(t.dose_key.as_str()).or_default() += 1;
        }
    }
    q.true_merge_pairs = merged_by_key.values().map(|n| n.saturating_sub(1)).sum();
    q.merged_pairs = pairs.len() as u64;
    for (a, b) in &pairs {
        if let (Some(x), Some(y)) = (truth.get(a), truth.get(b)) {
            if x.merge == "merged"
                && y.merge == "merged"
                && !x.dose_key.is_empty()
                && x.dose_key == y.dose_key
            {
                q.correct_merges += 1;
            }
        }
    }
    q.link_precision = ratio(q.correct_links, q.linked);
    q.link_recall = ratio(q.correct_links, q.true_links);
    q.merge_precision = ratio(q.correct_merges, q.merged_pairs);
    q.merge_recall = ratio(q.correct_merges, q.true_merge_pairs);
    Ok(q)
}
