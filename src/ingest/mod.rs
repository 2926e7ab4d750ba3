//! Ingest: read every source file of a pipeline, decode, split, map columns through the
//! layout, normalise, and account for every row.
//!
//! The pure core ([`Plan::row`]) turns one row's raw fields into canonical records or a
//! quarantine entry; the shell ([`read_file`]) streams a file in chunks of
//! [`CHUNK_ROWS`] byte records, normalising each chunk in parallel (rayon) while the next
//! one is read, keeping the output order of the file, so memory per file is two chunks
//! plus the output.
//!
//! Invariant (checked by [`FileAccounting::balanced`]): for every file, rows read =
//! rows that produced records + rows with no dose + rows quarantined, and for the VRS
//! export, dose groups found = records + groups quarantined.

#[cfg(test)]
mod agreement;
pub mod decode;

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::layout::{default_on_reject, Column, Layout, OnReject, SourceKind};
use crate::normalise::{self, Kind, Tables};
use crate::pipeline::Source;
use crate::record::{Record, Value};
use crate::schema::{FieldType, Schema};
use decode::Encoding;

/// Longest field accepted (bytes); a longer one quarantines its row. No real export has
/// a 1 MiB name or remark; a hostile file must not make vaxarc carry one into the archive.
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// Byte records normalised together; bounds memory per file.
pub const CHUNK_ROWS: usize = 8192;
/// Chunks smaller than this are normalised on the reading thread, without rayon.
const PARALLEL_MIN_ROWS: usize = 256;

/// Quarantine reason codes (documented in `docs/quarantine.md`).
pub mod reason {
    /// The row has a different number of fields than the header.
    pub const WRONG_COLUMN_COUNT: &str = "wrong_column_count";
    /// A field holds bytes invalid in the file's encoding.
    pub const UNDECODABLE_BYTES: &str = "undecodable_bytes";
    /// The row yields no 接種日.
    pub const MISSING_VACCINATION_DATE: &str = "missing_vaccination_date";
    /// The row yields no vaccine code.
    pub const MISSING_VACCINE: &str = "missing_vaccine_code";
    /// The row yields none of the layout's person-key groups.
    pub const NO_PERSON_KEY: &str = "no_person_key";
    /// A field is longer than [`super::MAX_FIELD_BYTES`].
    pub const FIELD_TOO_LONG: &str = "field_too_long";
    /// The row has a different number of fields than the header and a field runs over a
    /// line break: a quote opened and not closed where it should be (a stray `"`) joined
    /// the lines after it into this row. [`lines_spanned`] says how many.
    pub const UNBALANCED_QUOTE: &str = "unbalanced_quote";
}

/// Physical lines a quarantined row's raw bytes span (1 for a row on one line).
pub fn lines_spanned(q: &QuarantineEntry) -> u64 {
    // A quote left open to the end of the file takes the last line break too.
    let end = q
        .raw
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |i| i + 1);
    1 + q.raw[..end].iter().filter(|&&b| b == b'\n').count() as u64
}

/// A row (or one dose group of a VRS row) that could not become a record.
///
/// Holds the raw row: personal data. It is only ever written encrypted.
#[derive(Clone)]
pub struct QuarantineEntry {
    /// Source file id.
    pub file_id: String,
    /// 1-based physical line where the row starts.
    pub line: u64,
    /// Dose group for a VRS export group, `None` for the whole row.
    pub dose: Option<u16>,
    /// Reason code.
    pub reason: String,
    /// Field at fault, when there is one.
    pub field: Option<String>,
    /// 1-based column at fault, when there is one.
    pub column: Option<u32>,
    /// The raw fields, joined with the delimiter (not decoded).
    pub raw: Vec<u8>,
    /// 接種日 (days since 1970-01-01) as the record's would have been read, when the row's
    /// fields line up with the header and that field normalises: what a purge decides a
    /// quarantined row's retention from ([`Plan::retention_facts`]).
    pub vaccination_date: Option<i32>,
    /// Vaccine code, read the same way.
    pub vaccine_code: Option<String>,
}

impl std::fmt::Debug for QuarantineEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuarantineEntry")
            .field("file_id", &self.file_id)
            .field("line", &self.line)
            .field("dose", &self.dose)
            .field("reason", &self.reason)
            .field("field", &self.field)
            .field("column", &self.column)
            .field("raw", &format_args!("<{} bytes>", self.raw.len()))
            .field("vaccination_date", &self.vaccination_date.map(|_| "<date>"))
            .field("vaccine_code", &self.vaccine_code)
            .finish()
    }
}

/// Row counts of one source file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileAccounting {
    /// Source file id.
    pub file_id: String,
    /// Layout kind.
    pub kind: String,
    /// Encoding used.
    pub encoding: String,
    /// Bytes read.
    pub bytes: u64,
    /// Data rows read (header excluded).
    pub rows_read: u64,
    /// Rows that produced at least one record or person.
    pub rows_loaded: u64,
    /// VRS export rows with no dose group filled.
    pub rows_without_doses: u64,
    /// Rows quarantined as a whole.
    pub rows_quarantined: u64,
    /// Dose records produced (record-producing kinds).
    pub records: u64,
    /// Person rows loaded (registry, VRS persons).
    pub persons: u64,
    /// VRS export dose groups found (non-empty).
    pub dose_groups: u64,
    /// VRS export dose groups quarantined alone.
    pub dose_groups_quarantined: u64,
    /// Records absorbed into another by the merge (filled after reconciliation).
    pub records_merged: u64,
    /// Records written to the archive (filled after reconciliation).
    pub records_archived: u64,
    /// Layout headers not present in the file (their fields stay empty).
    pub missing_headers: Vec<String>,
    /// Headers present in the file that the layout does not use.
    pub unused_headers: u64,
}

impl FileAccounting {
    /// The accounting identities hold.
    pub fn balanced(&self) -> bool {
        let rows =
            self.rows_read == self.rows_loaded + self.rows_without_doses + self.rows_quarantined;
        let groups = self.kind != SourceKind::VrsLedgerExport.as_str()
            || self.dose_groups == self.records + self.dose_groups_quarantined;
        let merged = self.records_archived == 0 && self.records_merged == 0
            || self.records == self.records_archived + self.records_merged;
        rows && groups && merged
    }
}

/// Everything ingest produced.
#[derive(Default)]
pub struct Ingested {
    /// Dose records, in pipeline source order then row order.
    pub records: Vec<Record>,
    /// Registry person rows.
    pub registry: Vec<Record>,
    /// VRS person rows.
    pub vrs_persons: Vec<Record>,
    /// Quarantined rows.
    pub quarantine: Vec<QuarantineEntry>,
    /// Per-file accounting, in pipeline order.
    pub accounting: Vec<FileAccounting>,
}

/// A file that cannot be read at all: what and where, never a value.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// I/O failure.
    #[error("cannot read source `{id}` (`{path}`): {source}")]
    Io {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file has no header row.
    #[error("source `{id}` (`{path}`) is empty: no header row")]
    Empty { id: String, path: PathBuf },
    /// A header needed by the layout is absent.
    // Header, id and layout texts are escaped: a quoted header (or a layout's) may hold a
    // line break, and an error is one line.
    #[error("source `{}` (`{path}`) line 1: header `{}` required by layout `{}` is missing", id.escape_debug(), header.escape_debug(), layout.escape_debug())]
    MissingHeader {
        id: String,
        path: PathBuf,
        header: String,
        layout: String,
    },
    /// Two columns share a header the layout uses.
    #[error("source `{}` (`{path}`) line 1, column {column}: header `{}` appears twice", id.escape_debug(), header.escape_debug())]
    DuplicateHeader {
        id: String,
        path: PathBuf,
        header: String,
        column: usize,
    },
    /// The header row cannot be decoded.
    #[error("source `{id}` (`{path}`) line 1, column {column}: header holds bytes invalid in {encoding}")]
    HeaderEncoding {
        id: String,
        path: PathBuf,
        column: usize,
        encoding: &'static str,
    },
    /// CSV-level failure (e.g. I/O in the middle).
    #[error("source `{id}` (`{path}`) line {line}: {message}")]
    Csv {
        id: String,
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// One compiled column mapping.
#[derive(Clone, Debug)]
struct Mapping {
    column: usize,
    field: usize,
    field_name: String,
    kind: Kind,
    on_reject: OnReject,
    /// The field's values repeat (one of [`INTERNED_FIELDS`]): its normalised values are
    /// remembered whatever its kind.
    repeats: bool,
}

/// A layout compiled against one file's header.
#[derive(Clone, Debug)]
pub struct Plan {
    file_id: String,
    kind: SourceKind,
    encoding: Encoding,
    width: usize,
    delimiter: u8,
    row: Vec<Mapping>,
    /// Pivot dose groups found in the header: (dose number, mappings). Empty for a
    /// layout without a pivot; never empty for one with (see [`Plan::new`]).
    groups: Vec<(u16, Vec<Mapping>)>,
    constants: Vec<(usize, Value)>,
    require: Vec<usize>,
    require_any: Vec<Vec<usize>>,
    schema_len: usize,
    /// Fields whose text is interned when a record is packed ([`INTERNED_FIELDS`]).
    intern: crate::record::Fields,
    idx: Indices,
}

/// Fields whose values repeat across many records (codes, vaccine and institution
/// names, lot numbers, file ids): packed records hold an id into
/// [`crate::record::intern`] instead of the text (docs/performance.md, "Packed records"),
/// and ingest remembers their normalised values across a chunk's rows
/// ([`normalise::Memo::normalise_repeating`]). Never a field that identifies a record or a
/// person (tested).
const INTERNED_FIELDS: &[&str] = &[
    "vaccine_name",
    "vaccine_code",
    "stage",
    "vaccination_class",
    "vaccination_type",
    "lot_number",
    "medical_institution",
    "doctor_name",
    "copay_class",
    "municipality_code",
    "vaccination_municipality_code",
    "vaccination_status",
    "manufacturer_raw",
    "manufacturer_code",
    "vaccine_type",
    "product_name",
    "nationality",
    "source_file_id",
    "normalisation_flags",
];

#[derive(Clone, Debug)]
struct Indices {
    record_id: usize,
    source_kind: usize,
    source_file_id: usize,
    source_line: usize,
    raw_row_blake3: usize,
    dose_number: usize,
    vaccination_date: usize,
    vaccine_code: usize,
    birth_date: usize,
    age: usize,
    flags: usize,
    match_method: usize,
    registry_status: usize,
    merge_status: usize,
    retention_class: usize,
}

/// Result of one row.
pub struct RowResult {
    /// Records (one for a ledger row, one per dose group for VRS, one person row).
    pub records: Vec<Record>,
    /// Quarantine entries (whole row, or VRS dose groups).
    pub quarantine: Vec<QuarantineEntry>,
    /// Non-empty dose groups found (VRS).
    pub groups: u64,
}

impl Plan {
    /// Compile a layout against a decoded header row.
    pub fn new(
        source: &Source,
        schema: &Schema,
        encoding: Encoding,
        header: &[String],
    ) -> Result<(Plan, Vec<String>, u64), IngestError> {
        let layout: &Layout = &source.layout;
        let mut position = std::collections::HashMap::new();
        let used: std::collections::HashSet<String> = layout
            .column
            .iter()
            .map(|c| c.header.clone())
            .chain(layout.pivot.iter().flat_map(|p| {
                (1..=p.groups).flat_map(move |n| {
                    p.column
                        .iter()
                        .map(move |c| c.header.replace("{n}", &n.to_string()))
                })
            }))
            .collect();
        for (i, h) in header.iter().enumerate() {
            if position.insert(h.clone(), i).is_some() && used.contains(h) {
                return Err(IngestError::DuplicateHeader {
                    id: source.id.clone(),
                    path: source.path.clone(),
                    header: h.clone(),
                    column: i + 1,
                });
            }
        }
        let unused = header.iter().filter(|h| !used.contains(*h)).count() as u64;
        let mut missing = Vec::new();
        let required: Vec<&str> = layout.require.iter().map(String::as_str).collect();
        let mut compile =
            |c: &Column, header_text: String| -> Result<Option<Mapping>, IngestError> {
                match position.get(&header_text) {
                    Some(&column) => Ok(Some(Mapping {
                        column,
                        field: schema.idx(&c.field),
                        field_name: c.field.clone(),
                        kind: c.normaliser.parse().unwrap_or(Kind::Text),
                        on_reject: c
                            .on_reject
                            .unwrap_or_else(|| default_on_reject(&c.normaliser)),
                        repeats: INTERNED_FIELDS.contains(&c.field.as_str()),
                    })),
                    None if required.contains(&c.field.as_str())
                        && !layout.constants.contains_key(&c.field) =>
                    {
                        Err(IngestError::MissingHeader {
                            id: source.id.clone(),
                            path: source.path.clone(),
                            header: header_text,
                            layout: layout.id.clone(),
                        })
                    }
                    None => {
                        if !missing.contains(&header_text) {
                            missing.push(header_text);
                        }
                        Ok(None)
                    }
                }
            };
        let mut row = Vec::new();
        for c in &layout.column {
            if let Some(m) = compile(c, c.header.clone())? {
                row.push(m);
            }
        }
        let mut groups = Vec::new();
        if let Some(pivot) = &layout.pivot {
            for n in 1..=pivot.groups {
                // A later dose group with none of its headers is simply not in this export
                // (older VRS exports stop at dose 2 or 3): skip it, required fields and all.
                // The first group, or a group with some of its headers, must be complete.
                let absent = pivot
                    .column
                    .iter()
                    .all(|c| !position.contains_key(&c.header.replace("{n}", &n.to_string())));
                if n > 1 && absent {
                    continue;
                }
                let mut group = Vec::new();
                for c in &pivot.column {
                    if let Some(m) = compile(c, c.header.replace("{n}", &n.to_string()))? {
                        group.push(m);
                    }
                }
                if !group.is_empty() {
                    groups.push((n, group));
                }
            }
            // A pivot layout whose dose groups are all absent is not this export: every
            // row would yield no record. Refuse the file rather than load nothing.
            if groups.is_empty() {
                return Err(IngestError::MissingHeader {
                    id: source.id.clone(),
                    path: source.path.clone(),
                    header: pivot
                        .column
                        .first()
                        .map(|c| c.header.replace("{n}", "1"))
                        .unwrap_or_default(),
                    layout: layout.id.clone(),
                });
            }
        }
        let constants = layout
            .constants
            .iter()
            .map(|(k, v)| {
                let i = schema.idx(k);
                let value = match schema.fields[i].field_type {
                    FieldType::Int16 | FieldType::Int32 | FieldType::Int64 => {
                        v.parse().map(Value::Int).unwrap_or(Value::Null)
                    }
                    _ => Value::Str(v.clone().into()),
                };
                (i, value)
            })
            .collect();
        let idx = Indices {
            record_id: schema.idx("record_id"),
            source_kind: schema.idx("source_kind"),
            source_file_id: schema.idx("source_file_id"),
            source_line: schema.idx("source_line"),
            raw_row_blake3: schema.idx("raw_row_blake3"),
            dose_number: schema.idx("dose_number"),
            vaccination_date: schema.idx("vaccination_date"),
            vaccine_code: schema.idx("vaccine_code"),
            birth_date: schema.idx("birth_date"),
            age: schema.idx("age_at_vaccination"),
            flags: schema.idx("normalisation_flags"),
            match_method: schema.idx("match_method"),
            registry_status: schema.idx("registry_status"),
            merge_status: schema.idx("merge_status"),
            retention_class: schema.idx("retention_class"),
        };
        let plan = Plan {
            file_id: source.id.clone(),
            kind: layout.kind,
            encoding,
            width: header.len(),
            delimiter: layout.delimiter as u8,
            row,
            groups,
            constants,
            require: layout.require.iter().map(|f| schema.idx(f)).collect(),
            require_any: layout
                .require_any
                .iter()
                .map(|g| g.iter().map(|f| schema.idx(f)).collect())
                .collect(),
            schema_len: schema.len(),
            intern: crate::record::Fields::of(
                INTERNED_FIELDS.iter().filter_map(|n| schema.index(n)),
            ),
            idx,
        };
        Ok((plan, missing, unused))
    }

    /// The pure core: one row's raw fields → records or quarantine.
    pub fn row(&self, fields: &[&[u8]], line: u64, tables: &Tables) -> RowResult {
        self.row_with(fields, line, tables, &mut normalise::Memo::default())
    }

    /// [`Plan::row`] with a memo of the repeating kinds' results, kept across the rows of a
    /// chunk (one memo per `tables`).
    pub fn row_with(
        &self,
        fields: &[&[u8]],
        line: u64,
        tables: &Tables,
        memo: &mut normalise::Memo,
    ) -> RowResult {
        let raw_hash = row_hash(fields);
        let quarantine =
            |dose: Option<u16>, reason: &str, mapping: Option<&Mapping>, column: Option<usize>| {
                let group = dose.and_then(|d| {
                    self.groups
                        .iter()
                        .find(|(n, _)| *n == d)
                        .map(|(_, g)| g.as_slice())
                });
                let (vaccination_date, vaccine_code) = self.retention_facts(fields, group, tables);
                QuarantineEntry {
                    file_id: self.file_id.clone(),
                    line,
                    dose,
                    reason: reason.to_string(),
                    field: mapping.map(|m| m.field_name.clone()),
                    column: column.or(mapping.map(|m| m.column)).map(|c| c as u32 + 1),
                    raw: fields.join(&[self.delimiter][..]),
                    vaccination_date,
                    vaccine_code,
                }
            };
        let whole = |q: QuarantineEntry| RowResult {
            records: Vec::new(),
            quarantine: vec![q],
            groups: 0,
        };
        if fields.len() != self.width {
            let shape = if fields.iter().any(|f| f.contains(&b'\n')) {
                reason::UNBALANCED_QUOTE
            } else {
                reason::WRONG_COLUMN_COUNT
            };
            return whole(quarantine(None, shape, None, None));
        }
        if let Some(i) = fields.iter().position(|f| f.len() > MAX_FIELD_BYTES) {
            return whole(quarantine(None, reason::FIELD_TOO_LONG, None, Some(i)));
        }
        let mut decoded: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            match decode::decode_field(self.encoding, f) {
                Some(text) => decoded.push(text),
                None => return whole(quarantine(None, reason::UNDECODABLE_BYTES, None, Some(i))),
            }
        }
        // Built as one value per field, packed once each record is finished.
        let mut base = vec![Value::Null; self.schema_len];
        let mut flags = String::new();
        for (i, v) in &self.constants {
            base[*i] = v.clone();
        }
        if let Err((m, r)) = apply(&self.row, &decoded, &mut base, &mut flags, tables, memo) {
            return whole(quarantine(None, r, Some(m), None));
        }
        if self.groups.is_empty() {
            let mut record = base;
            let flags_here = flags;
            return match self.finish(&mut record, flags_here, line, None, &raw_hash, tables) {
                Ok(()) => RowResult {
                    records: vec![Record::pack(&record, self.intern)],
                    quarantine: Vec::new(),
                    groups: 0,
                },
                Err((r, field)) => whole(quarantine(None, r, self.mapping_of(field, None), None)),
            };
        }
        let mut result = RowResult {
            records: Vec::new(),
            quarantine: Vec::new(),
            groups: 0,
        };
        for (dose, group) in &self.groups {
            let dose = *dose;
            if group.iter().all(|m| decoded[m.column].trim().is_empty()) {
                continue;
            }
            result.groups += 1;
            let mut record = base.clone();
            let mut group_flags = flags.clone();
            record[self.idx.dose_number] = Value::Int(dose as i64);
            if let Err((m, r)) = apply(group, &decoded, &mut record, &mut group_flags, tables, memo)
            {
                result
                    .quarantine
                    .push(quarantine(Some(dose), r, Some(m), None));
                continue;
            }
            match self.finish(
                &mut record,
                group_flags,
                line,
                Some(dose),
                &raw_hash,
                tables,
            ) {
                Ok(()) => result.records.push(Record::pack(&record, self.intern)),
                Err((r, field)) => result.quarantine.push(quarantine(
                    Some(dose),
                    r,
                    self.mapping_of(field, Some(group)),
                    None,
                )),
            }
        }
        result
    }

    /// The 接種日 and vaccine code of a quarantined row (or dose group), read as its
    /// record's would have been: the layout's constants, then the row's mappings, then the
    /// dose group's, each field decoded and normalised alone, a later non-null value
    /// winning. A field that does not decode or normalise gives nothing; a row whose
    /// fields do not line up with the header gives nothing at all (its columns cannot be
    /// trusted). A whole VRS row has no 接種日 (dates live in its dose groups).
    fn retention_facts(
        &self,
        fields: &[&[u8]],
        group: Option<&[Mapping]>,
        tables: &Tables,
    ) -> (Option<i32>, Option<String>) {
        let (vd, vc) = (self.idx.vaccination_date, self.idx.vaccine_code);
        let (mut date, mut code) = (None, None);
        if fields.len() != self.width {
            return (date, code);
        }
        for (i, v) in &self.constants {
            if *i == vd {
                date = v.as_date().or(date);
            } else if *i == vc {
                code = v.as_str().map(str::to_string).or(code);
            }
        }
        for m in self.row.iter().chain(group.unwrap_or_default()) {
            if m.field != vd && m.field != vc {
                continue;
            }
            let Some(text) = fields
                .get(m.column)
                .filter(|f| f.len() <= MAX_FIELD_BYTES)
                .and_then(|f| decode::decode_field(self.encoding, f))
            else {
                continue;
            };
            let Ok(n) = normalise::normalise(m.kind, &text, tables) else {
                continue;
            };
            if m.field == vd {
                date = n.value.as_date().or(date);
            } else {
                code = n.value.as_str().map(str::to_string).or(code);
            }
        }
        (date, code)
    }

    /// The column mapped to schema field `field` (a dose group's first, then the row's),
    /// for a quarantine entry to name.
    fn mapping_of<'a>(
        &'a self,
        field: Option<usize>,
        group: Option<&'a [Mapping]>,
    ) -> Option<&'a Mapping> {
        let field = field?;
        group
            .into_iter()
            .flatten()
            .chain(&self.row)
            .find(|m| m.field == field)
    }

    /// Checks and computed fields common to every produced record. A refusal gives its
    /// reason and, for a missing required field, the field.
    fn finish(
        &self,
        record: &mut [Value],
        flags: String,
        line: u64,
        dose: Option<u16>,
        raw_hash: &str,
        tables: &Tables,
    ) -> Result<(), (&'static str, Option<usize>)> {
        for &i in &self.require {
            if record[i].is_null() {
                let reason = if i == self.idx.vaccination_date {
                    reason::MISSING_VACCINATION_DATE
                } else if i == self.idx.vaccine_code {
                    reason::MISSING_VACCINE
                } else {
                    "missing_required_field"
                };
                return Err((reason, Some(i)));
            }
        }
        if !self.require_any.is_empty()
            && !self
                .require_any
                .iter()
                .any(|group| group.iter().all(|&i| !record[i].is_null()))
        {
            return Err((reason::NO_PERSON_KEY, None));
        }
        let idx = &self.idx;
        record[idx.record_id] = Value::Str(record_id(&self.file_id, line, dose).into());
        record[idx.source_kind] = Value::Str(self.kind.as_str().into());
        record[idx.source_file_id] = Value::Str(self.file_id.as_str().into());
        record[idx.source_line] = Value::Int(line as i64);
        record[idx.raw_row_blake3] = Value::Str(raw_hash.into());
        if !flags.is_empty() {
            record[idx.flags] = Value::Str(flags.into());
        }
        if self.kind.produces_records() {
            if record[idx.age].is_null() {
                if let (Some(b), Some(v)) = (
                    record[idx.birth_date].as_date(),
                    record[idx.vaccination_date].as_date(),
                ) {
                    record[idx.age] = Value::Int(age_on(b, v) as i64);
                }
            }
            record[idx.match_method] = Value::Str("none".into());
            record[idx.registry_status] = Value::Str("unlinked".into());
            record[idx.merge_status] = Value::Str("single".into());
            let category = record[idx.vaccine_code]
                .as_str()
                .and_then(|c| tables.vaccine(c))
                .map(|v| v.category.as_str());
            let class = if category == Some("covid_special") {
                "covid_special"
            } else {
                "routine_5y"
            };
            record[idx.retention_class] = Value::Str(class.into());
        }
        Ok(())
    }
}

/// Apply mappings to a record; on a quarantining reject, the mapping and reason.
fn apply<'m>(
    mappings: &'m [Mapping],
    decoded: &[std::borrow::Cow<'_, str>],
    record: &mut [Value],
    flags: &mut String,
    tables: &Tables,
    memo: &mut normalise::Memo,
) -> Result<(), (&'m Mapping, &'static str)> {
    for m in mappings {
        let n = if m.repeats {
            memo.normalise_repeating(m.kind, &decoded[m.column], tables)
        } else {
            memo.normalise(m.kind, &decoded[m.column], tables)
        };
        match n {
            Ok(n) => {
                if let Some(flag) = n.flag {
                    if !flags.is_empty() {
                        flags.push(';');
                    }
                    flags.push_str(flag.as_str());
                    flags.push(':');
                    flags.push_str(&m.field_name);
                }
                // A later mapping never overwrites a value with Null (the same field may
                // be fed from two headers, e.g. a row column and a constant).
                if !n.value.is_null() || record[m.field].is_null() {
                    record[m.field] = n.value;
                }
            }
            Err(r) => match m.on_reject {
                OnReject::Quarantine => return Err((m, r.as_str())),
                OnReject::Null => {
                    if !flags.is_empty() {
                        flags.push(';');
                    }
                    flags.push_str(r.as_str());
                    flags.push(':');
                    flags.push_str(&m.field_name);
                }
            },
        }
    }
    Ok(())
}

/// Whole years of age on a date.
pub fn age_on(birth: i32, on: i32) -> i32 {
    let (by, bm, bd) = crate::record::civil_from_days(birth);
    let (y, m, d) = crate::record::civil_from_days(on);
    let mut age = y - by;
    if (m, d) < (bm, bd) {
        age -= 1;
    }
    age
}

/// blake3 over the row's raw fields, each prefixed by its length as u64 LE: the same
/// bytes always give the same hash, and field boundaries cannot be confused.
pub fn row_hash(fields: &[&[u8]]) -> String {
    // One `update` of the whole input: blake3 pays a fixed cost per `update` call, which
    // two calls per field made larger than the hashing itself (callgrind).
    const TAG: &[u8] = b"vaxarc-row-v1\0";
    let len = TAG.len() + fields.iter().map(|f| 8 + f.len()).sum::<usize>();
    let mut input = Vec::with_capacity(len);
    input.extend_from_slice(TAG);
    for f in fields {
        input.extend_from_slice(&(f.len() as u64).to_le_bytes());
        input.extend_from_slice(f);
    }
    blake3::hash(&input).to_hex().to_string()
}

/// Deterministic record id: 32 hex digits of blake3(file id, line, dose).
pub fn record_id(file_id: &str, line: u64, dose: Option<u16>) -> String {
    // One `update` of the whole input, as for the row hash.
    const TAG: &[u8] = b"vaxarc-record-v1\0";
    let mut input = Vec::with_capacity(TAG.len() + file_id.len() + 11);
    input.extend_from_slice(TAG);
    input.extend_from_slice(file_id.as_bytes());
    input.push(0);
    input.extend_from_slice(&line.to_le_bytes());
    input.extend_from_slice(&dose.unwrap_or(0).to_le_bytes());
    blake3::hash(&input).to_hex()[..32].to_string()
}

/// Physical line numbers for CSV records.
///
/// The csv crate's record positions are unreliable for CRLF files and blank lines (they
/// point into the terminator run before a record), so this reader notes, as bytes pass
/// through it, where every line that starts with content begins; a record's line is
/// the first such line at or after the position csv reports. Memory is bounded by the
/// csv reader's read-ahead.
///
/// Lines end where csv ends records: at LF, CRLF, or a CR alone. Counting only LF made
/// every record after a lone CR (old Mac exports, a stray CR in a hand-edited file)
/// take the line number of the next line, and the last one line 0 (found by fuzzing).
struct LineTracker<R> {
    inner: R,
    offset: u64,
    line: u64,
    at_line_start: bool,
    /// The previous byte was a CR: the line ended there unless an LF follows.
    after_cr: bool,
    starts: LineStarts,
}

/// Where lines start, shared by the [`LineTracker`] inside the CSV reader and the code
/// that asks for each record's line (a `Mutex`: the next chunk is read on another thread
/// while this one is normalised).
type LineStarts = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(u64, u64)>>>;

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        for (i, &b) in buf[..n].iter().enumerate() {
            if self.after_cr && b != b'\n' {
                self.line += 1;
                self.at_line_start = true;
            }
            self.after_cr = b == b'\r';
            if self.at_line_start && b != b'\r' && b != b'\n' {
                starts.push_back((self.offset + i as u64, self.line));
            }
            self.at_line_start = false;
            if b == b'\n' {
                self.line += 1;
                self.at_line_start = true;
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The physical line of a record that csv reports at byte `reported`.
fn line_of(starts: &LineStarts, reported: u64) -> u64 {
    let mut starts = starts.lock().unwrap_or_else(|p| p.into_inner());
    while let Some(&(offset, line)) = starts.front() {
        if offset >= reported {
            starts.pop_front();
            return line;
        }
        starts.pop_front();
    }
    0
}

/// Progress callback: bytes read so far in one file, called from the thread reading it:
/// `0` when the file starts, then rising positions up to its end (a caller summing over
/// files keeps one last position per thread, reset by the `0`).
pub type OnBytes<'a> = &'a (dyn Fn(u64) + Sync);

/// What [`read_file`] and [`read_bytes`] return: records (or person rows), quarantined
/// rows and the file's accounting.
pub type FileResult = (Vec<Record>, Vec<QuarantineEntry>, FileAccounting);

/// Where [`ingest_into`] sends records and person rows: one call per chunk of rows read,
/// from several threads at once (one per file). A file's chunks come in file order, one
/// after another; chunks of different files interleave.
pub type RecordSink<'a> = &'a (dyn Fn(Vec<Record>) + Sync);

/// The I/O shell: read one source file completely.
pub fn read_file(
    source: &Source,
    schema: &Schema,
    tables: &Tables,
    on_bytes: OnBytes<'_>,
) -> Result<FileResult, IngestError> {
    read_file_to(source, schema, tables, on_bytes, None)
}

/// [`read_file`], sending records or person rows to `sink` (if any) a chunk at a time, in
/// file order, instead of returning them.
fn read_file_to(
    source: &Source,
    schema: &Schema,
    tables: &Tables,
    on_bytes: OnBytes<'_>,
    sink: Option<RecordSink<'_>>,
) -> Result<FileResult, IngestError> {
    let io = |source_err: std::io::Error| IngestError::Io {
        id: source.id.clone(),
        path: source.path.clone(),
        source: source_err,
    };
    let mut file = std::fs::File::open(&source.path).map_err(io)?;
    let mut sample = Vec::with_capacity(64 * 1024);
    (&mut file)
        .take(decode::DETECT_SAMPLE_BYTES as u64)
        .read_to_end(&mut sample)
        .map_err(io)?;
    let bytes_total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let input = Opened {
        sample,
        rest: file,
        bytes_total,
    };
    read_stream(source, schema, tables, input, on_bytes, sink)
}

/// [`read_file`] over bytes already in memory (`source.path` is only used in
/// messages): the same decoding, splitting, line numbers, quarantine and accounting.
/// The fuzz targets (`vaxarc::fuzz`) go through here.
pub fn read_bytes(
    source: &Source,
    schema: &Schema,
    tables: &Tables,
    bytes: &[u8],
    on_bytes: OnBytes<'_>,
) -> Result<FileResult, IngestError> {
    let split = bytes.len().min(decode::DETECT_SAMPLE_BYTES);
    let (sample, rest) = bytes.split_at(split);
    let input = Opened {
        sample: sample.to_vec(),
        rest,
        bytes_total: bytes.len() as u64,
    };
    read_stream(source, schema, tables, input, on_bytes, None)
}

/// The shared body of [`read_file`] and [`read_bytes`]: `sample` is the first
/// [`decode::DETECT_SAMPLE_BYTES`] of the file (or all of it), `rest` what follows.
/// A source's bytes: the sample read for encoding detection, the rest, and the size.
struct Opened<R> {
    sample: Vec<u8>,
    rest: R,
    bytes_total: u64,
}

fn read_stream(
    source: &Source,
    schema: &Schema,
    tables: &Tables,
    input: Opened<impl Read + Send>,
    on_bytes: OnBytes<'_>,
    sink: Option<RecordSink<'_>>,
) -> Result<FileResult, IngestError> {
    let Opened {
        sample,
        rest,
        bytes_total,
    } = input;
    // A new file on this thread: its positions start again.
    on_bytes(0);
    let io = |source_err: std::io::Error| IngestError::Io {
        id: source.id.clone(),
        path: source.path.clone(),
        source: source_err,
    };
    let encoding = decode::detect(source.layout.encoding, &sample);
    let starts: LineStarts = Default::default();
    let rest = LineTracker {
        inner: std::io::Cursor::new(sample).chain(rest),
        offset: 0,
        line: 1,
        at_line_start: true,
        after_cr: false,
        starts: starts.clone(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(source.layout.delimiter as u8)
        .quote(source.layout.quote as u8)
        .buffer_capacity(1 << 16)
        .from_reader(std::io::BufReader::with_capacity(1 << 16, rest));
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        match e.into_kind() {
            csv::ErrorKind::Io(err) => io(err),
            // With byte records and flexible rows only I/O can fail; keep a clear
            // message for anything else without echoing data.
            _ => IngestError::Csv {
                id: source.id.clone(),
                path: source.path.clone(),
                line,
                message: "malformed CSV".to_string(),
            },
        }
    };
    let mut header_record = csv::ByteRecord::new();
    if !reader
        .read_byte_record(&mut header_record)
        .map_err(csv_err)?
    {
        return Err(IngestError::Empty {
            id: source.id.clone(),
            path: source.path.clone(),
        });
    }
    line_of(&starts, header_record.position().map_or(0, |p| p.byte()));
    let mut header = Vec::with_capacity(header_record.len());
    for (i, f) in header_record.iter().enumerate() {
        let f = if i == 0 {
            f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
        } else {
            f
        };
        let text =
            decode::decode_field(encoding, f).ok_or_else(|| IngestError::HeaderEncoding {
                id: source.id.clone(),
                path: source.path.clone(),
                column: i + 1,
                encoding: encoding.as_str(),
            })?;
        header.push(text.trim().trim_matches('\u{3000}').to_string());
    }
    let (plan, missing_headers, unused_headers) = Plan::new(source, schema, encoding, &header)?;
    let mut accounting = FileAccounting {
        file_id: source.id.clone(),
        kind: source.layout.kind.as_str().to_string(),
        encoding: encoding.as_str().to_string(),
        bytes: bytes_total,
        missing_headers,
        unused_headers,
        ..FileAccounting::default()
    };
    let mut records = Vec::new();
    let mut quarantine = Vec::new();
    // A chunk of rows from the reader: `(rows filled, end of file)`. The chunk's byte
    // records are kept from chunk to chunk: read into again, they keep their buffers (a
    // fresh record per row grew its buffers again on every row).
    let fill = |reader: &mut csv::Reader<_>,
                rows: &mut Vec<(csv::ByteRecord, u64)>|
     -> Result<(usize, bool), IngestError> {
        let mut filled = 0;
        while filled < CHUNK_ROWS {
            if filled == rows.len() {
                rows.push((csv::ByteRecord::new(), 0));
            }
            let (rec, line) = &mut rows[filled];
            if !reader.read_byte_record(rec).map_err(csv_err)? {
                return Ok((filled, true));
            }
            *line = line_of(&starts, rec.position().map_or(0, |p| p.byte()));
            filled += 1;
        }
        Ok((filled, false))
    };
    let row = |memo: &mut normalise::Memo, (rec, line): &(csv::ByteRecord, u64)| {
        let fields: Vec<&[u8]> = rec.iter().collect();
        plan.row_with(&fields, *line, tables, memo)
    };
    // A small chunk (a small file, or the last rows) is cheaper on this thread than handed
    // to the pool and waited for. Each piece of work keeps one memo of the repeating
    // values' normalised forms across its rows.
    let normalise_rows = |chunk: &[(csv::ByteRecord, u64)]| -> Vec<RowResult> {
        if chunk.len() < PARALLEL_MIN_ROWS {
            let mut memo = normalise::Memo::default();
            chunk.iter().map(|r| row(&mut memo, r)).collect()
        } else {
            chunk
                .par_iter()
                .map_init(normalise::Memo::default, row)
                .collect()
        }
    };
    let mut rows: Vec<(csv::ByteRecord, u64)> = Vec::new();
    let mut ahead: Vec<(csv::ByteRecord, u64)> = Vec::new();
    let (mut filled, mut done) = fill(&mut reader, &mut rows)?;
    loop {
        // The next chunk is read (serial CSV work) while this one is normalised: one file
        // read alone — the registry, the VRS person list — kept the pool waiting on its
        // reads otherwise. Rows keep their order: chunks are handled one after another.
        let chunk = &rows[..filled];
        let (results, next) = if done {
            (normalise_rows(chunk), None)
        } else {
            let (results, next) =
                rayon::join(|| normalise_rows(chunk), || fill(&mut reader, &mut ahead));
            (results, Some(next))
        };
        let mut sent = Vec::new();
        for r in results {
            accounting.rows_read += 1;
            let whole_row_quarantined =
                r.records.is_empty() && r.quarantine.iter().any(|q| q.dose.is_none());
            if whole_row_quarantined {
                accounting.rows_quarantined += 1;
            } else if r.records.is_empty() && r.groups == 0 {
                accounting.rows_without_doses += 1;
            } else {
                accounting.rows_loaded += 1;
            }
            accounting.dose_groups += r.groups;
            accounting.dose_groups_quarantined +=
                r.quarantine.iter().filter(|q| q.dose.is_some()).count() as u64;
            if plan.kind.produces_records() {
                accounting.records += r.records.len() as u64;
            } else {
                accounting.persons += r.records.len() as u64;
            }
            match sink {
                Some(_) => sent.extend(r.records),
                None => records.extend(r.records),
            }
            quarantine.extend(r.quarantine);
        }
        if let (Some(sink), false) = (sink, sent.is_empty()) {
            sink(sent);
        }
        on_bytes(reader.position().byte());
        match next {
            None => break,
            Some(next) => {
                (filled, done) = next?;
                std::mem::swap(&mut rows, &mut ahead);
            }
        }
    }
    Ok((records, quarantine, accounting))
}

/// Read every source of a pipeline (files in parallel), in pipeline order.
pub fn ingest(
    sources: &[Source],
    schema: &Schema,
    tables: &Tables,
    on_bytes: OnBytes<'_>,
) -> Result<Ingested, IngestError> {
    ingest_files(sources, schema, tables, on_bytes, None)
}

/// [`ingest`], sending the dose records (ledger, VRS export) and person rows (registry,
/// VRS person list) to `sink` a chunk of rows at a time, from one thread per file, instead
/// of returning them: the returned [`Ingested::records`], [`Ingested::registry`] and
/// [`Ingested::vrs_persons`] are empty. Quarantine and accounting are returned as by
/// [`ingest`]. A caller that needs rows in pipeline order passes one source at a time.
pub fn ingest_into(
    sources: &[Source],
    schema: &Schema,
    tables: &Tables,
    on_bytes: OnBytes<'_>,
    sink: RecordSink<'_>,
) -> Result<Ingested, IngestError> {
    ingest_files(sources, schema, tables, on_bytes, Some(sink))
}

fn ingest_files(
    sources: &[Source],
    schema: &Schema,
    tables: &Tables,
    on_bytes: OnBytes<'_>,
    sink: Option<RecordSink<'_>>,
) -> Result<Ingested, IngestError> {
    let per_file: Vec<Result<FileResult, IngestError>> = match sink {
        None => sources
            .par_iter()
            .map(|s| read_file(s, schema, tables, on_bytes))
            .collect(),
        // Files on a few plain threads, not as rayon tasks: a rayon thread waiting inside
        // the sink's parallel work would steal the next file's task and start reading it,
        // nesting file upon file, each holding a batch (5M rows peaked at 2 GB that way).
        Some(_) => {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let results: Vec<std::sync::Mutex<Option<Result<FileResult, IngestError>>>> =
                sources.iter().map(|_| Default::default()).collect();
            let readers = rayon::current_num_threads().clamp(1, sources.len().max(1));
            std::thread::scope(|scope| {
                for _ in 0..readers {
                    scope.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(source) = sources.get(i) else { break };
                        let r = read_file_to(source, schema, tables, on_bytes, sink);
                        *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                    });
                }
            });
            results
                .into_iter()
                .map(|r| {
                    r.into_inner()
                        .unwrap_or_else(|p| p.into_inner())
                        .expect("every file was read")
                })
                .collect()
        }
    };
    let mut out = Ingested::default();
    for (source, result) in sources.iter().zip(per_file) {
        let (records, quarantine, accounting) = result?;
        match source.layout.kind {
            SourceKind::Registry => out.registry.extend(records),
            SourceKind::VrsPersons => out.vrs_persons.extend(records),
            SourceKind::Ledger | SourceKind::VrsLedgerExport => out.records.extend(records),
        }
        out.quarantine.extend(quarantine);
        out.accounting.push(accounting);
    }
    Ok(out)
}

/// The blake3 of each source file's bytes, in pipeline order, for
/// [`crate::archive::derive_index_secret`]. Never written anywhere. One file after another
/// on the calling thread (it is I/O, meant to run beside other work, not on rayon's pool).
pub fn source_blake3(sources: &[Source]) -> Result<Vec<[u8; 32]>, IngestError> {
    sources
        .iter()
        .map(|source| {
            let io = |source_err: std::io::Error| IngestError::Io {
                id: source.id.clone(),
                path: source.path.clone(),
                source: source_err,
            };
            let mut file = std::fs::File::open(&source.path).map_err(io)?;
            let mut hasher = blake3::Hasher::new();
            std::io::copy(&mut file, &mut hasher).map_err(io)?;
            Ok(*hasher.finalize().as_bytes())
        })
        .collect()
}

/// Total bytes of the sources, for progress bars.
pub fn total_bytes(sources: &[Source]) -> u64 {
    sources
        .iter()
        .filter_map(|s| std::fs::metadata(&s.path).ok())
        .map(|m| m.len())
        .sum()
}

/// A path for messages.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Source;

    fn source(dir: &std::path::Path, name: &str, bytes: &[u8], layout: &str) -> Source {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Source {
            id: name.replace('.', "-"),
            path,
            layout: Layout::builtin(layout, Schema::embedded()).unwrap(),
        }
    }

    /// The header of a VRS 予防接種台帳向け出力 with `doses` dose groups of 8 columns.
    fn vrs_header(doses: usize) -> Vec<String> {
        let cols = [
            "接種履歴登録日時",
            "接種日",
            "券番号",
            "接種自治体コード",
            "接種会場名",
            "接種医師名",
            "ワクチンメーカー",
            "ワクチンロット番号",
        ];
        let mut h = vec!["個別宛名番号".to_string()];
        for n in 1..=doses {
            h.extend(cols.iter().map(|c| format!("{n}回目{c}")));
        }
        h
    }

    #[test]
    fn progress_starts_at_zero_and_rises_to_the_files_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("宛名番号,接種名称,接種日,備考\n");
        for i in 0..50_000 {
            text.push_str(&format!("{i},MR,2020/01/05,\n"));
        }
        let s = source(dir.path(), "p.csv", text.as_bytes(), "ledger");
        let calls = std::sync::Mutex::new(Vec::new());
        read_file(&s, Schema::embedded(), Tables::embedded(), &|pos| {
            calls.lock().unwrap().push(pos)
        })
        .unwrap();
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.first(), Some(&0), "{calls:?}");
        assert!(calls.len() > 2, "{calls:?}");
        assert!(calls.windows(2).all(|w| w[0] <= w[1]), "{calls:?}");
        assert_eq!(calls.last(), Some(&(text.len() as u64)));
    }

    /// Each chunk of a file is read while the one before is normalised: over several
    /// chunks, with blank lines and quoted line breaks on both sides of chunk boundaries,
    /// every record keeps its physical line and its place, and the sink receives the
    /// records `read_file` returns, in order.
    #[test]
    fn lines_and_order_hold_while_the_next_chunk_is_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("宛名番号,接種名称,接種日,備考\n");
        let mut line = 2i64;
        let mut expected = Vec::new();
        for i in 0..3 * CHUNK_ROWS + 123 {
            if i % 997 == 0 {
                text.push('\n');
                line += 1;
            }
            expected.push(line);
            if i % 1_001 == 0 {
                text.push_str(&format!("{i},MR,2020/01/05,\"a\nb\"\n"));
                line += 2;
            } else {
                text.push_str(&format!("{i},MR,2020/01/05,\n"));
                line += 1;
            }
        }
        let s = source(dir.path(), "c.csv", text.as_bytes(), "ledger");
        let schema = Schema::embedded();
        let (records, quarantine, acc) =
            read_file(&s, schema, Tables::embedded(), &|_| {}).unwrap();
        assert!(quarantine.is_empty(), "{quarantine:?}");
        assert!(acc.balanced());
        let lines: Vec<i64> = records
            .iter()
            .map(|r| r.at(schema.idx("source_line")).as_int().unwrap())
            .collect();
        assert_eq!(lines, expected);
        let sent = std::sync::Mutex::new(Vec::new());
        let chunks = std::sync::atomic::AtomicUsize::new(0);
        ingest_into(
            std::slice::from_ref(&s),
            schema,
            Tables::embedded(),
            &|_| {},
            &|rows| {
                chunks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                sent.lock().unwrap().extend(rows);
            },
        )
        .unwrap();
        assert_eq!(chunks.into_inner(), 4);
        assert!(sent.into_inner().unwrap() == records);
    }

    #[test]
    fn physical_lines_survive_crlf_blank_lines_and_quoted_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let text = "宛名番号,接種名称,接種日,備考\r\n1,MR,2020/01/05,\r\n\r\n2,MR,2020/01/06,\"a\r\nb\"\r\n3,MR,2020/01/07,\r\n";
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
        let s = source(dir.path(), "l.csv", &sjis, "ledger");
        let schema = Schema::embedded();
        let (records, quarantine, acc) =
            read_file(&s, schema, Tables::embedded(), &|_| {}).unwrap();
        assert!(quarantine.is_empty(), "{quarantine:?}");
        let lines: Vec<i64> = records
            .iter()
            .map(|r| r.at(schema.idx("source_line")).as_int().unwrap())
            .collect();
        assert_eq!(lines, vec![2, 4, 6]);
        assert_eq!(acc.encoding, "cp932");
        assert!(acc.balanced());
    }

    /// Found by fuzzing (`testdata/fuzz/corpus/csv_ledger/regression-lone-cr.csv`): csv
    /// ends a record at a CR alone, so the line count must too, or every later record
    /// gets the next line's number and the last one line 0.
    #[test]
    fn a_lone_cr_ends_a_line_as_it_ends_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let text = "宛名番号,接種名称,接種日\r1,MR,2020/01/05\r\r2,MR,2020/01/06\n3,MR,2020/01/07\r\n4,MR,2020/01/08\r";
        let s = source(dir.path(), "cr.csv", text.as_bytes(), "ledger");
        let schema = Schema::embedded();
        let (records, quarantine, acc) =
            read_file(&s, schema, Tables::embedded(), &|_| {}).unwrap();
        assert!(quarantine.is_empty(), "{quarantine:?}");
        let lines: Vec<i64> = records
            .iter()
            .map(|r| r.at(schema.idx("source_line")).as_int().unwrap())
            .collect();
        assert_eq!(lines, vec![2, 4, 5, 6]);
        assert!(acc.balanced());
    }

    #[test]
    fn bad_rows_are_quarantined_with_reason_and_accounted() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes =
            "宛名番号,接種名称,接種日\n1,MR,2020/01/05\n2,MR\n3,MR,2023/02/30\n4,MR,\n5,MR,"
                .as_bytes()
                .to_vec();
        bytes.extend_from_slice(b"2020/01/0\xFF\n,MR,2020/01/05\n");
        let s = source(dir.path(), "q.csv", &bytes, "ledger");
        let (records, quarantine, acc) =
            read_file(&s, Schema::embedded(), Tables::embedded(), &|_| {}).unwrap();
        assert_eq!(records.len(), 1);
        let reasons: Vec<(u64, &str)> = quarantine
            .iter()
            .map(|q| (q.line, q.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (3, reason::WRONG_COLUMN_COUNT),
                (4, "impossible_date"),
                (5, reason::MISSING_VACCINATION_DATE),
                (6, reason::UNDECODABLE_BYTES),
                (7, reason::NO_PERSON_KEY),
            ]
        );
        assert_eq!(acc.rows_read, 6);
        assert_eq!(acc.rows_quarantined, 5);
        assert!(acc.balanced());
        // A stray quote joins the lines after it into one row: quarantined as such, with
        // the lines it spans.
        let stray = "宛名番号,接種名称,接種日\n1,MR,2020/01/05\n2,\"MR,2020/01/06\n3,MR,2020/01/07\n4,MR,2020/01/08\n";
        let s2 = source(dir.path(), "s.csv", stray.as_bytes(), "ledger");
        let (r2, q2, a2) = read_file(&s2, Schema::embedded(), Tables::embedded(), &|_| {}).unwrap();
        assert_eq!((r2.len(), a2.rows_read, a2.rows_quarantined), (1, 2, 1));
        assert_eq!(q2.len(), 1);
        assert_eq!(
            (q2[0].line, q2[0].reason.as_str()),
            (3, reason::UNBALANCED_QUOTE)
        );
        assert_eq!(lines_spanned(&q2[0]), 3);
        // A missing required field is named with its column.
        assert_eq!(
            (quarantine[2].field.as_deref(), quarantine[2].column),
            (Some("vaccination_date"), Some(3))
        );
        // The quarantine entry names the field and column, never the value.
        let shown = format!("{:?}", quarantine[1]);
        assert!(
            shown.contains("vaccination_date") && !shown.contains("2023"),
            "{shown}"
        );
    }

    /// The interned fields (held once per process, their normalised values remembered
    /// across rows) exist, are text, and are vaccination or bookkeeping fields — or one of
    /// three codes that many residents share (自己負担区分, 自治体コード, 国籍): none is a
    /// name, a number or a date that identifies a person.
    #[test]
    fn interned_fields_are_shared_codes_never_identifiers() {
        use crate::schema::{Class, FieldType};
        const SHARED_CODES: [&str; 3] = ["copay_class", "municipality_code", "nationality"];
        let schema = Schema::embedded();
        for name in INTERNED_FIELDS {
            let i = schema
                .index(name)
                .unwrap_or_else(|| panic!("`{name}` is not a schema field"));
            let f = &schema.fields[i];
            assert_eq!(f.field_type, FieldType::Utf8, "`{name}`");
            assert!(
                matches!(f.class, Class::Health | Class::Operational)
                    || SHARED_CODES.contains(name),
                "`{name}` is {:?}",
                f.class
            );
        }
        for id in [
            "record_id",
            "atena_number",
            "kojin_bango",
            "ticket_number",
            "kana_name",
        ] {
            assert!(!INTERNED_FIELDS.contains(&id), "`{id}`");
        }
    }

    /// `raw_row_blake3` is in every archive: one `update` of the whole input must give the
    /// hash the per-field updates gave (blake3 is a function of the bytes, not of how
    /// they are fed).
    #[test]
    fn row_hash_and_record_id_are_the_hashes_of_their_inputs_fed_in_pieces() {
        let fed = |fields: &[&[u8]]| {
            let mut h = blake3::Hasher::new();
            h.update(b"vaxarc-row-v1\0");
            for f in fields {
                h.update(&(f.len() as u64).to_le_bytes());
                h.update(f);
            }
            h.finalize().to_hex().to_string()
        };
        let long = vec![b'x'; 5000];
        for fields in [
            vec![],
            vec![&b""[..]],
            vec![&b"1"[..], b"MR", b"2020/01/05", b""],
            vec![&long[..], b"\xFF", &long[..17]],
        ] {
            assert_eq!(row_hash(&fields), fed(&fields));
        }
        // Field boundaries count.
        assert_ne!(row_hash(&[b"ab", b"c"]), row_hash(&[b"a", b"bc"]));
        // The record id likewise (every archive's `record_id`).
        let id = |file_id: &str, line: u64, dose: Option<u16>| {
            let mut h = blake3::Hasher::new();
            h.update(b"vaxarc-record-v1\0");
            h.update(file_id.as_bytes());
            h.update(b"\0");
            h.update(&line.to_le_bytes());
            h.update(&dose.unwrap_or(0).to_le_bytes());
            h.finalize().to_hex()[..32].to_string()
        };
        for (f, l, d) in [
            ("ledger-MR", 2, None),
            ("vrs-ledger-export", 70_001, Some(7)),
            ("", 0, Some(0)),
        ] {
            assert_eq!(record_id(f, l, d), id(f, l, d));
        }
    }

    /// What a purge decides a quarantined row by: the 接種日 and vaccine code read from the
    /// layout's columns as the record's would have been — only where the row lines up.
    #[test]
    fn quarantined_rows_keep_the_date_and_vaccine_their_record_would_have_had() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = "宛名番号,接種名称,接種日,備考\n".as_bytes().to_vec();
        bytes.extend_from_slice(b"1,MR,2020/01/05,\xFF\n");
        bytes.extend_from_slice(
            ",ＭＲ,R2.1.6,\n2,MR,2023/02/30,\n3,MR\n4,,2020/01/07,\n".as_bytes(),
        );
        bytes.extend_from_slice(b"5,MR,2020/01/0\xFF,\n");
        let s = source(dir.path(), "f.csv", &bytes, "ledger");
        let (records, quarantine, _) =
            read_file(&s, Schema::embedded(), Tables::embedded(), &|_| {}).unwrap();
        assert!(records.is_empty());
        let d = |y, m, d| crate::record::days_from_civil(y, m, d);
        let facts: Vec<(&str, Option<i32>, Option<&str>)> = quarantine
            .iter()
            .map(|q| {
                (
                    q.reason.as_str(),
                    q.vaccination_date,
                    q.vaccine_code.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            facts,
            vec![
                // Undecodable 備考: the date and vaccine columns still read.
                (reason::UNDECODABLE_BYTES, d(2020, 1, 5), Some("MR")),
                // No person key: read as written (full width, 和暦).
                (reason::NO_PERSON_KEY, d(2020, 1, 6), Some("MR")),
                // An impossible date gives no date; a short row nothing at all.
                ("impossible_date", None, Some("MR")),
                (reason::WRONG_COLUMN_COUNT, None, None),
                (reason::MISSING_VACCINE, d(2020, 1, 7), None),
                // The undecodable field is the date itself.
                (reason::UNDECODABLE_BYTES, None, Some("MR")),
            ]
        );
        // Debug shows neither the date nor the raw bytes.
        let shown = format!("{:?}", quarantine[0]);
        assert!(
            !shown.contains("2020") && !shown.contains("18266"),
            "{shown}"
        );
    }

    #[test]
    fn a_quarantined_vrs_dose_group_keeps_its_own_date() {
        let dir = tempfile::tempdir().unwrap();
        let header = vrs_header(2);
        // No 宛名番号; dose 1 has a ticket, dose 2 none (no person key), dose 2's date
        // is its own.
        let mut row = vec![String::new(); header.len()];
        row[2] = "20210701".into();
        row[3] = "1234567890".into();
        row[4] = "131091".into();
        row[10] = "20240501".into();
        let text = format!("{}\n{}\n", header.join(","), row.join(","));
        let s = source(dir.path(), "v.csv", text.as_bytes(), "vrs-ledger-export");
        let (records, quarantine, _) =
            read_file(&s, Schema::embedded(), Tables::embedded(), &|_| {}).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(quarantine.len(), 1);
        let q = &quarantine[0];
        assert_eq!(
            (q.dose, q.reason.as_str()),
            (Some(2), reason::NO_PERSON_KEY)
        );
        assert_eq!(
            q.vaccination_date,
            crate::record::days_from_civil(2024, 5, 1)
        );
        assert_eq!(q.vaccine_code.as_deref(), Some("COVID19"));
    }

    #[test]
    fn vrs_wide_rows_pivot_to_one_record_per_dose() {
        let dir = tempfile::tempdir().unwrap();
        let header = vrs_header(7);
        let mut row1 = vec![String::new(); header.len()];
        row1[0] = "123".into();
        let dose = |n: usize, row: &mut Vec<String>, date: &str| {
            let b = 1 + (n - 1) * 8;
            row[b] = format!("{date}101010");
            row[b + 1] = date.into();
            row[b + 2] = "1234567890".into();
            row[b + 3] = "131091".into();
            row[b + 6] = "ファイザー".into();
            row[b + 7] = "FK1234".into();
        };
        dose(1, &mut row1, "20210701");
        dose(2, &mut row1, "20210722");
        dose(3, &mut row1, "20230230");
        let row2 = vec![String::new(); header.len()];
        let text = format!(
            "{}\n{}\n{}\n",
            header.join(","),
            row1.join(","),
            row2.join(",")
        );
        let s = source(dir.path(), "v.csv", text.as_bytes(), "vrs-ledger-export");
        let schema = Schema::embedded();
        let (records, quarantine, acc) =
            read_file(&s, schema, Tables::embedded(), &|_| {}).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(quarantine.len(), 1);
        assert_eq!(quarantine[0].dose, Some(3));
        assert_eq!(acc.dose_groups, 3);
        assert_eq!(acc.rows_without_doses, 1);
        assert!(acc.balanced());
        let doses: Vec<i64> = records
            .iter()
            .map(|r| r.at(schema.idx("dose_number")).as_int().unwrap())
            .collect();
        assert_eq!(doses, vec![1, 2]);
        assert_eq!(
            records[0].at(schema.idx("vaccine_code")).as_str(),
            Some("COVID19")
        );
        assert_eq!(
            records[0].at(schema.idx("manufacturer_code")).as_str(),
            Some("PFIZER")
        );
    }

    #[test]
    fn vrs_exports_that_stop_at_an_earlier_dose_are_read_and_a_partial_group_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A row for `h` whose column groups (in header order) carry these dates.
        let row_of = |h: &[String], dates: &[&str]| {
            let mut row = vec![String::new(); h.len()];
            row[0] = "123".into();
            for (g, date) in dates.iter().enumerate() {
                let b = 1 + g * 8;
                row[b] = format!("{date}101010");
                row[b + 1] = date.to_string();
                row[b + 2] = "1234567890".into();
                row[b + 3] = "131091".into();
                row[b + 6] = "ファイザー".into();
            }
            row
        };
        // Doses 1 and 2 only: read, one record per dose.
        let h = vrs_header(2);
        let row = row_of(&h, &["20210701", "20210722"]);
        let text = format!("{}\n{}\n", h.join(","), row.join(","));
        let s = source(dir.path(), "two.csv", text.as_bytes(), "vrs-ledger-export");
        let (records, quarantine, acc) =
            read_file(&s, Schema::embedded(), Tables::embedded(), &|_| {}).unwrap();
        assert_eq!((records.len(), quarantine.len()), (2, 0), "{quarantine:?}");
        assert!(acc.balanced());
        // Dose 3 present but without its 接種日: refused, naming the header.
        let mut h3 = vrs_header(3);
        h3.retain(|c| c != "3回目接種日");
        let text = format!("{}\n", h3.join(","));
        let s = source(
            dir.path(),
            "partial.csv",
            text.as_bytes(),
            "vrs-ledger-export",
        );
        let err = read_file(&s, Schema::embedded(), Tables::embedded(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("`3回目接種日`"), "{err}");
        // Doses 1 and 3 with dose 2's columns absent: each record keeps its own dose number.
        let mut h13 = vrs_header(3);
        h13.retain(|c| !c.starts_with("2回目"));
        let row = row_of(&h13, &["20210701", "20211222"]);
        let text = format!("{}\n{}\n", h13.join(","), row.join(","));
        let s = source(dir.path(), "gap.csv", text.as_bytes(), "vrs-ledger-export");
        let (records, quarantine, acc) =
            read_file(&s, Schema::embedded(), Tables::embedded(), &|_| {}).unwrap();
        assert_eq!((records.len(), quarantine.len()), (2, 0), "{quarantine:?}");
        assert!(acc.balanced());
        let schema = Schema::embedded();
        let doses: Vec<_> = records
            .iter()
            .map(|r| r.at(schema.idx("dose_number")).as_int())
            .collect();
        assert_eq!(doses, [Some(1), Some(3)]);
    }

    #[test]
    fn header_errors_stay_on_one_line() {
        let e = IngestError::MissingHeader {
            id: "s\n1".into(),
            path: "p.csv".into(),
            header: "1回目\n接種日".into(),
            layout: "l\r".into(),
        };
        let d = IngestError::DuplicateHeader {
            id: "s".into(),
            path: "p.csv".into(),
            header: "a\nb".into(),
            column: 2,
        };
        for text in [e.to_string(), d.to_string()] {
            assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
        }
        assert!(e.to_string().contains("1回目\\n接種日"), "{e}");
    }

    #[test]
    fn missing_required_header_is_a_one_line_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(
            dir.path(),
            "h.csv",
            "宛名番号,接種名称\n1,MR\n".as_bytes(),
            "ledger",
        );
        let err = read_file(&s, Schema::embedded(), Tables::embedded(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("`接種日`") && err.contains("line 1"), "{err}");
        let e = source(dir.path(), "e.csv", b"", "ledger");
        assert!(matches!(
            read_file(&e, Schema::embedded(), Tables::embedded(), &|_| {}),
            Err(IngestError::Empty { .. })
        ));
    }
}
