//! The purge's outside facts: death dates from the newest resident-registry extract
//! (the registry source layout, read by [`crate::ingest`]) and provision dates from the
//! national vaccination database submissions file.
//!
//! Submissions file (CSV, UTF-8, header row; documented in `docs/purge.md`):
//!
//! ```text
//! record_id,atena_number,atena_hash,provided_date
//! 0123456789abcdef0123456789abcdef,,,2026-07-01      one record
//! ,25479007,,2026-07-01                               every record of a person (宛名番号)
//! ,,<64 hex: index key_hash of kind atena>,2026-07-01 every record of a person (keyed hash)
//! ```
//! Exactly one of the key columns is filled per row. When several rows name the same
//! record, the latest date wins (the record is kept longer).

use std::collections::BTreeMap;
use std::path::Path;

use crate::pipeline::Source;
use crate::schema::Schema;

/// A problem with an input file: file, line, what — never a value.
#[derive(Debug, thiserror::Error)]
#[error("`{file}`{}: {message}", if *line == 0 { String::new() } else { format!(" line {line}") })]
pub struct InputError {
    /// File.
    pub file: String,
    /// 1-based line (0: the whole file).
    pub line: u64,
    /// What.
    pub message: String,
}

/// Death dates by registry 宛名番号 (canonical, as in `registry_atena_number`).
#[derive(Clone, Debug, Default)]
pub struct Deaths {
    /// 宛名番号 → Some(death date) when the extract says deceased, None when alive.
    pub by_atena: BTreeMap<String, Option<i32>>,
    /// Rows of the extract that were quarantined (unreadable).
    pub rows_quarantined: u64,
}

/// Read a registry extract (the `registry` layout) for death dates.
pub fn read_registry(path: &Path, schema: &Schema) -> Result<Deaths, anyhow::Error> {
    let layout = crate::layout::Layout::builtin("registry", schema)?;
    let source = Source {
        id: "registry-update".into(),
        path: path.to_path_buf(),
        layout,
    };
    let tables = crate::normalise::Tables::embedded();
    let (rows, quarantine, _) = crate::ingest::read_file(&source, schema, tables, &|_| {})?;
    let (atena, status, date) = (
        schema.idx("atena_number"),
        schema.idx("registry_status"),
        schema.idx("registry_status_date"),
    );
    let mut out = Deaths {
        rows_quarantined: quarantine.iter().filter(|q| q.dose.is_none()).count() as u64,
        ..Deaths::default()
    };
    for r in rows {
        let Some(a) = r.at(atena).as_str().filter(|s| !s.is_empty()) else {
            continue;
        };
        let death = if r.at(status).as_str() == Some("deceased") {
            r.at(date).as_date()
        } else {
            None
        };
        out.by_atena.insert(a.to_string(), death);
    }
    Ok(out)
}

/// Provision dates.
#[derive(Clone, Debug, Default)]
pub struct Submissions {
    /// record id → date.
    pub by_record: BTreeMap<String, i32>,
    /// canonical 宛名番号 → date.
    pub by_atena: BTreeMap<String, i32>,
    /// atena key hash → date.
    pub by_atena_hash: BTreeMap<String, i32>,
}

impl Submissions {
    /// Whether any key needs the record's keyed 宛名番号 hashes.
    pub fn needs_hashes(&self) -> bool {
        !self.by_atena_hash.is_empty()
    }

    /// The provision date of a record (latest of the matching rows).
    pub fn date_of(
        &self,
        record_id: &str,
        atenas: &[&str],
        atena_hashes: &[String],
    ) -> Option<i32> {
        let mut best = self.by_record.get(record_id).copied();
        let mut take = |d: Option<&i32>| {
            if let Some(&d) = d {
                best = Some(best.map_or(d, |b: i32| b.max(d)));
            }
        };
        for a in atenas {
            take(self.by_atena.get(*a));
        }
        for h in atena_hashes {
            take(self.by_atena_hash.get(h));
        }
        best
    }
}

/// Canonical 宛名番号 (as the `atena` normaliser writes it: digits without leading zeros).
pub fn canonical_atena(raw: &str) -> String {
    let s = raw.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let t = s.trim_start_matches('0');
        if t.is_empty() {
            "0".into()
        } else {
            t.to_string()
        }
    } else {
        s.to_ascii_uppercase()
    }
}

/// Read a submissions file.
pub fn read_submissions(path: &Path) -> Result<Submissions, InputError> {
    let file = path.display().to_string();
    let err = |line: u64, message: String| InputError {
        file: file.clone(),
        line,
        message,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| err(0, e.to_string()))?;
    let headers = rdr.headers().map_err(|e| err(1, e.to_string()))?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
    };
    let date_col =
        col("provided_date").ok_or_else(|| err(1, "header `provided_date` is missing".into()))?;
    let (rc, ac, hc) = (col("record_id"), col("atena_number"), col("atena_hash"));
    if rc.is_none() && ac.is_none() && hc.is_none() {
        return Err(err(
            1,
            "needs a `record_id`, `atena_number` or `atena_hash` column".into(),
        ));
    }
    let mut out = Submissions::default();
    // Physical lines (blank lines and quoted line breaks counted), from the reader.
    let mut last_line = 1;
    for row in rdr.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(last_line + 1, |p| p.line());
            err(line, format!("malformed CSV ({})", e.kind_name()))
        })?;
        let line = row.position().map_or(last_line + 1, |p| p.line());
        last_line = line;
        let column = |c: usize| c + 1;
        let get = |c: Option<usize>| {
            c.and_then(|c| row.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let date = get(Some(date_col))
            .and_then(super::parse_date)
            .ok_or_else(|| {
                err(
                    line,
                    format!(
                        "column {} (`provided_date`) is not a YYYY-MM-DD date",
                        column(date_col)
                    ),
                )
            })?;
        let keys = [get(rc), get(ac), get(hc)];
        if keys.iter().filter(|k| k.is_some()).count() != 1 {
            return Err(err(
                line,
                "fill exactly one of `record_id`, `atena_number`, `atena_hash`".into(),
            ));
        }
        let (map, key) = match keys {
            [Some(r), _, _] => (&mut out.by_record, r.to_string()),
            [_, Some(a), _] => (&mut out.by_atena, canonical_atena(a)),
            [_, _, Some(h)] => {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(
                        line,
                        format!(
                            "column {} (`atena_hash`) is not 64 hex digits (an index key_hash of kind atena)",
                            column(hc.unwrap_or_default())
                        ),
                    ));
                }
                (&mut out.by_atena_hash, h.to_ascii_lowercase())
            }
            _ => unreachable!("one key is present"),
        };
        let e = map.entry(key).or_insert(date);
        *e = (*e).max(date);
    }
    Ok(out)
}

trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for csv::Error {
    fn kind_name(&self) -> &'static str {
        match self.kind() {
            csv::ErrorKind::Io(_) => "I/O error",
            csv::ErrorKind::Utf8 { .. } => "not UTF-8",
            csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields",
            _ => "syntax error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_parse_and_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "record_id,atena_number,atena_hash,provided_date\nr1,,,2026-07-01\nr1,,,2026-08-01\n,00123,,2026-06-01\n").unwrap();
        let s = read_submissions(&p).unwrap();
        assert_eq!(
            s.date_of("r1", &[], &[]),
            super::super::parse_date("2026-08-01")
        );
        assert_eq!(
            s.date_of("r2", &["123"], &[]),
            super::super::parse_date("2026-06-01")
        );
        std::fs::write(&p, "record_id,provided_date\nr1,2026-13-01\n").unwrap();
        let e = read_submissions(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("column 2") && !e.contains("r1"),
            "{e}"
        );
        // Physical lines: blank lines and a quoted line break before the bad row count.
        std::fs::write(
            &p,
            "record_id,atena_number,atena_hash,provided_date\n\n\nr1,,,2026-07-01\n\"r\n2\",,,2026-07-01\n,123,,2026-13-01\n",
        )
        .unwrap();
        let e = read_submissions(&p).unwrap_err().to_string();
        assert!(e.contains("line 7") && e.contains("column 4"), "{e}");
        std::fs::write(&p, "atena_hash,provided_date\nzz-not-hex,2026-07-01\n").unwrap();
        let e = read_submissions(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("column 1") && !e.contains("zz"),
            "{e}"
        );
        let e = read_submissions(&dir.path().join("missing.csv"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("line 0") && e.contains("missing.csv"), "{e}");
    }
}
