//! A catalogue of archives (docs/scaling.md): one entry per archive — id, municipality,
//! location, generation, Merkle root — read from each signed `MANIFEST.json` without any
//! key, and the checks of a new catalogue against an earlier one: an archive that went
//! missing, was replaced by another, rolled back to an earlier generation, or whose
//! history does not lead back to the catalogued root.
//!
//! Pure core: [`entry`] and [`compare`]; the shell (`vaxarc catalogue`) reads manifests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::archive::manifest::Manifest;

/// Format identifier of a catalogue file.
pub const FORMAT: &str = "vaxarc-catalogue/1";

/// One archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Random id fixed at creation.
    pub archive_id: String,
    /// 自治体コード from the pipeline.
    pub municipality_code: String,
    /// Where the archive is (folder or `s3://bucket/prefix`).
    pub location: String,
    /// Generation (1 after migrate, +1 per purge or erase).
    pub generation: u64,
    /// Merkle root of the file list of that generation.
    pub merkle_root: String,
    /// Root of the previous generation, if any.
    pub previous_root: Option<String>,
    /// When the generation was written (RFC 3339 UTC).
    pub created: String,
    /// minisign key id of the signing key.
    pub signing_key_id: String,
    /// Records in the archive.
    pub records: u64,
    /// Record partitions.
    pub partitions: u64,
}

/// A catalogue file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    /// Always [`FORMAT`].
    pub format: String,
    /// Archives, sorted by (municipality, location).
    pub archives: Vec<Entry>,
}

/// A finding of [`compare`] or of reading an archive: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Archive location.
    pub location: String,
    /// What is wrong (no personal data: manifests hold none).
    pub problem: String,
}

/// The entry of a manifest read at `location` (signature already checked).
pub fn entry(location: &str, m: &Manifest, signing_key_id: &str) -> Entry {
    Entry {
        archive_id: m.archive_id.clone(),
        municipality_code: m.municipality_code.clone(),
        location: location.to_string(),
        generation: m.generation,
        merkle_root: m.merkle_root.clone(),
        previous_root: m.previous_root.clone(),
        created: m.created.clone(),
        signing_key_id: signing_key_id.to_string(),
        records: m.totals.records,
        partitions: m.partitions.len() as u64,
    }
}

/// A catalogue of entries, sorted.
pub fn catalogue(mut archives: Vec<Entry>) -> Catalogue {
    archives.sort_by(|a, b| {
        (&a.municipality_code, &a.location).cmp(&(&b.municipality_code, &b.location))
    });
    Catalogue {
        format: FORMAT.to_string(),
        archives,
    }
}

/// Problems within one catalogue: one archive id at two locations (a copy or a
/// restored backup served as a second archive).
pub fn check(c: &Catalogue) -> Vec<Problem> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for e in &c.archives {
        if let Some(first) = seen.insert(&e.archive_id, &e.location) {
            out.push(Problem {
                location: e.location.clone(),
                problem: format!("archive id {} is also at `{first}`", e.archive_id),
            });
        }
    }
    out
}

/// Compare the current entries with an earlier catalogue, location by location.
/// `history_root(entry, generation)` gives the Merkle root recorded in the current
/// archive's `history/` for an earlier generation (None when absent). Locations that are
/// new since the earlier catalogue are fine.
pub fn compare(
    previous: &Catalogue,
    current: &Catalogue,
    history_root: &dyn Fn(&Entry, u64) -> Option<String>,
) -> Vec<Problem> {
    let now: BTreeMap<&str, &Entry> = current
        .archives
        .iter()
        .map(|e| (e.location.as_str(), e))
        .collect();
    let mut out = Vec::new();
    for was in &previous.archives {
        let problem = |problem: String| Problem {
            location: was.location.clone(),
            problem,
        };
        let Some(is) = now.get(was.location.as_str()) else {
            out.push(problem(format!(
                "catalogued archive {} (generation {}) is missing",
                was.archive_id, was.generation
            )));
            continue;
        };
        if is.archive_id != was.archive_id {
            out.push(problem(format!(
                "archive {} was replaced by another archive ({})",
                was.archive_id, is.archive_id
            )));
        } else if is.municipality_code != was.municipality_code {
            out.push(problem(format!(
                "municipality changed from {} to {}",
                was.municipality_code, is.municipality_code
            )));
        } else if is.generation < was.generation {
            out.push(problem(format!(
                "rolled back from generation {} to {}",
                was.generation, is.generation
            )));
        } else if is.generation == was.generation {
            if is.merkle_root != was.merkle_root {
                out.push(problem(format!(
                    "generation {} has Merkle root {} but {} was catalogued",
                    is.generation, is.merkle_root, was.merkle_root
                )));
            }
        } else {
            match history_root(is, was.generation) {
                Some(root) if root == was.merkle_root => {}
                Some(root) => out.push(problem(format!(
                    "history of generation {} has Merkle root {root} but {} was catalogued",
                    was.generation, was.merkle_root
                ))),
                None => out.push(problem(format!(
                    "generation {} is not in the archive's history (history/{:06}/MANIFEST.json)",
                    was.generation, was.generation
                ))),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(loc: &str, id: &str, generation: u64, root: &str) -> Entry {
        Entry {
            archive_id: id.into(),
            municipality_code: "131091".into(),
            location: loc.into(),
            generation,
            merkle_root: root.into(),
            previous_root: None,
            created: "2026-01-01T00:00:00Z".into(),
            signing_key_id: "K".into(),
            records: 1,
            partitions: 1,
        }
    }

    #[test]
    fn unchanged_and_extended_archives_pass() {
        let was = catalogue(vec![e("a", "A", 1, "r1"), e("b", "B", 1, "s1")]);
        let now = catalogue(vec![
            e("a", "A", 1, "r1"),
            e("b", "B", 3, "s3"),
            e("c", "C", 1, "t1"),
        ]);
        let hist = |x: &Entry, g: u64| (x.archive_id == "B" && g == 1).then(|| "s1".to_string());
        assert!(compare(&was, &now, &hist).is_empty());
        assert!(check(&now).is_empty());
    }

    #[test]
    fn every_kind_of_change_is_found_and_named() {
        let was = catalogue(vec![
            e("gone", "G", 1, "g"),
            e("swap", "S", 1, "s"),
            e("back", "R", 2, "r2"),
            e("alt", "T", 1, "t"),
            e("hist", "H", 1, "h1"),
        ]);
        let now = catalogue(vec![
            e("swap", "X", 1, "x"),
            e("back", "R", 1, "r1"),
            e("alt", "T", 1, "t-other"),
            e("hist", "H", 2, "h2"),
        ]);
        let hist = |_: &Entry, _: u64| Some("not-h1".to_string());
        let p = compare(&was, &now, &hist);
        let text: Vec<String> = p
            .iter()
            .map(|p| format!("{}: {}", p.location, p.problem))
            .collect();
        assert_eq!(p.len(), 5, "{text:?}");
        assert!(text
            .iter()
            .any(|t| t.starts_with("gone:") && t.contains("missing")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("swap:") && t.contains("replaced")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("back:") && t.contains("rolled back")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("alt:") && t.contains("Merkle root")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("hist:") && t.contains("history")));
        let dup = catalogue(vec![e("a", "A", 1, "r"), e("b", "A", 1, "r")]);
        assert_eq!(check(&dup).len(), 1);
    }
}
