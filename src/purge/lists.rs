//! The quarantine and review lists under purge and erase.
//!
//! Both lists hold personal data beside the record partitions: the review list names a
//! record and the registry 宛名番号 it may belong to; the quarantine list keeps the raw
//! fields of source rows that never became records. When records go, what the lists say
//! about them goes too, so that nothing of an erased person or an expired record lingers
//! in an object the purge did not touch (the lakehouse failure docs/purge.md warns of):
//!
//! - **review**: a row goes when its `record_id` is a removed record (purge and erase), or,
//!   for an erase, when its `candidate_atena_number` is one of the person's 宛名番号;
//! - **quarantine**: every row goes with `vaxarc erase --quarantine`; otherwise (erase
//!   only) a row goes when one of its raw fields, normalised as the
//!   identifier it would be, equals one of the person's identifiers — 宛名番号
//!   (`atena_number`, `registry_atena_number`, `integrated_atena_number`), 個人番号 and
//!   接種券番号 (a whole field, 10 digits; never a padded short number) — or when one
//!   field is one of their names (kana or kanji, by match key) and another their birth
//!   date. A purge decides a quarantined row by the retention rules when migrate could
//!   read its 接種日 and vaccine code from the layout's columns (the list's
//!   `vaccination_date` and `vaccine_code`): the row goes when a rule counted from the
//!   接種日 has run out and no legal hold names it (a person hold: one of its whole fields,
//!   read as a 宛名番号, has the held keyed hash). A row without both, under a rule that
//!   needs a death date, or of an archive written before the list had those columns, is
//!   kept ([`quarantine_row_expired`]).
//!
//! The pure core ([`Needles`], [`quarantine_row_matches`], [`quarantine_row_expired`],
//! [`filter`]) has no I/O; the
//! shell ([`read`]) decrypts a list object of a manifest.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, BinaryArray, BooleanArray, Date32Array, StringArray};
use arrow::record_batch::RecordBatch;

use crate::archive::manifest::{FileEntry, Manifest};
use crate::archive::store::Store;
use crate::archive::{self, ArchiveError};
use crate::normalise::{self, Kind, Tables};
use crate::record::Record;
use crate::schema::Schema;

use super::{expired, Holds, RecordFacts, Rules};

/// The two lists, by their manifest roles.
pub const LISTS: [List; 2] = [List::Review, List::Quarantine];

/// One of the lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    /// `review/<id>.parquet.age`.
    Review,
    /// `quarantine/<id>.parquet.age`.
    Quarantine,
}

impl List {
    /// The object's role in the manifest.
    pub fn role(self) -> &'static str {
        match self {
            List::Review => "review",
            List::Quarantine => "quarantine",
        }
    }

    /// The wrapped key's role.
    pub fn key_role(self) -> &'static str {
        match self {
            List::Review => "review-key",
            List::Quarantine => "quarantine-key",
        }
    }

    /// Object and key paths of the list written under `id`.
    pub fn paths(self, id: &str) -> (String, String) {
        let r = self.role();
        (
            format!("{r}/{id}.parquet.age"),
            format!("keys/{id}.{r}.key.age"),
        )
    }
}

/// What must leave the lists. No `Debug`: the values are personal identifiers (they are
/// serialised only into the custodian-encrypted pending object of a run, `run::Pending`;
/// `expiry`, which holds the hash key, never).
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Needles {
    /// Removed record ids (review rows naming them go).
    pub records: BTreeSet<String>,
    /// Canonical 宛名番号 of an erased person (review candidates and quarantined fields).
    pub atena: BTreeSet<String>,
    /// 個人番号 of an erased person (quarantined fields).
    pub kojin_bango: BTreeSet<String>,
    /// 接種券番号 of an erased person (quarantined fields).
    pub tickets: BTreeSet<String>,
    /// An erased person's names as match keys (kana key and kanji key of each kana and
    /// kanji name their records hold), by birth date (days since 1970-01-01): a
    /// quarantined row holding one of these names and that birth date goes.
    pub names: BTreeMap<i32, BTreeSet<String>>,
    /// Every quarantined row goes (`vaxarc erase --quarantine`).
    pub all_quarantine: bool,
    /// A purge: quarantined rows whose retention has run out go.
    #[serde(skip)]
    pub expiry: Option<QuarantineExpiry>,
}

/// What a purge decides quarantined rows by. No `Debug`: it holds the archive's hash key.
#[derive(Clone)]
pub struct QuarantineExpiry {
    /// The purge's retention rules.
    pub rules: Rules,
    /// Its legal holds.
    pub holds: Holds,
    /// Its as-of date (days since 1970-01-01).
    pub as_of: i32,
    /// The archive's hash key (person holds name keyed hashes of 宛名番号).
    pub secret: [u8; 32],
}

impl Needles {
    /// Nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && !self.erases_person()
            && !self.all_quarantine
            && self.expiry.is_none()
    }

    /// Whether the needles name a person (an erase), not only records (a purge).
    pub fn erases_person(&self) -> bool {
        !(self.atena.is_empty()
            && self.kojin_bango.is_empty()
            && self.tickets.is_empty()
            && self.names.is_empty())
    }

    /// Add an erased person's identifiers as they appear in a removed record: 宛名番号,
    /// 個人番号, 接種券番号, and their names with their birth date.
    pub fn add_person_record(&mut self, schema: &Schema, tables: &Tables, r: &Record) {
        for name in [
            "atena_number",
            "registry_atena_number",
            "integrated_atena_number",
        ] {
            if let Some(v) = schema.index(name).and_then(|i| r.at(i).as_str()) {
                self.atena.insert(v.to_string());
            }
        }
        if let Some(v) = schema.index("kojin_bango").and_then(|i| r.at(i).as_str()) {
            self.kojin_bango.insert(v.to_string());
        }
        if let Some(v) = schema.index("ticket_number").and_then(|i| r.at(i).as_str()) {
            self.tickets.insert(v.to_string());
        }
        let Some(birth) = schema.index("birth_date").and_then(|i| r.at(i).as_date()) else {
            return;
        };
        let text = |name: &str| schema.index(name).and_then(|i| r.at(i).as_str());
        let keys: Vec<String> = [text("kana_name"), text("kanji_name")]
            .into_iter()
            .flatten()
            .flat_map(|n| name_keys(n, tables))
            .collect();
        if !keys.is_empty() {
            self.names.entry(birth).or_default().extend(keys);
        }
    }

    /// Add the identifier an erase was asked for (`kind` as in the index: `atena`,
    /// `kojin_bango`, `ticket` with `MUNI:NUMBER`, `kana_birth` with `KANA_KEY:DAYS`).
    pub fn add_identifier(&mut self, kind: &str, value: &str) {
        match kind {
            "atena" => {
                self.atena.insert(value.to_string());
            }
            "kojin_bango" => {
                self.kojin_bango.insert(value.to_string());
            }
            "ticket" => {
                if let Some((_, t)) = value.split_once(':') {
                    self.tickets.insert(t.to_string());
                }
            }
            "kana_birth" => {
                if let Some((k, b)) = value.rsplit_once(':') {
                    if let (false, Ok(b)) = (k.is_empty(), b.parse::<i32>()) {
                        self.names.entry(b).or_default().insert(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether a review row goes.
    pub fn review_row_goes(&self, record_id: &str, candidate_atena: &str) -> bool {
        self.records.contains(record_id) || self.atena.contains(candidate_atena)
    }
}

/// The match keys of a name (kana key and kanji key, as linking compares names: width,
/// spacing, small kana and kanji variants folded); none for a name that folds to nothing.
fn name_keys(name: &str, tables: &Tables) -> Vec<String> {
    let mut keys = vec![
        normalise::kana_key(name),
        normalise::kanji_key(name, tables),
    ];
    keys.retain(|k| !k.is_empty());
    keys.dedup();
    keys
}

/// Whether a quarantined row's raw fields (joined with the source's delimiter, in the
/// source's encoding) hold one of the erased person's identifiers as a whole field, or
/// one of their names (kana or kanji, as a whole field, compared by match key) together
/// with their birth date (a whole field in any spelling the `date` normaliser reads).
/// Fields are split on every delimiter a layout may use (`,` tab `;` `|`): identifiers
/// never contain one. Text is read as UTF-8, else as CP932.
pub fn quarantine_row_matches(raw: &[u8], needles: &Needles, tables: &Tables) -> bool {
    if !needles.erases_person() {
        return false;
    }
    let text = raw_text(raw);
    let value = |kind: Kind, field: &str| identifier(kind, field, tables);
    let fields = || raw_fields(&text);
    let by_identifier = fields().any(|field| {
        (!needles.atena.is_empty()
            && value(Kind::Atena, field).is_some_and(|v| needles.atena.contains(&v)))
            || (!needles.kojin_bango.is_empty()
                && value(Kind::KojinBango, field).is_some_and(|v| needles.kojin_bango.contains(&v)))
            || (!needles.tickets.is_empty()
                && value(Kind::TicketNumber, field).is_some_and(|v| needles.tickets.contains(&v)))
    });
    if by_identifier || needles.names.is_empty() {
        return by_identifier;
    }
    // A birth date of the person among the fields, then one of the names they go with.
    let dates: BTreeSet<i32> = fields()
        .filter_map(
            |field| match normalise::normalise(Kind::Date, field, tables) {
                Ok(n) => n.value.as_date(),
                Err(_) => None,
            },
        )
        .filter(|d| needles.names.contains_key(d))
        .collect();
    if dates.is_empty() {
        return false;
    }
    let named = fields().any(|field| {
        let keys = name_keys(field, tables);
        dates
            .iter()
            .any(|d| keys.iter().any(|k| needles.names[d].contains(k)))
    });
    named
}

/// A quarantined row's raw bytes as text: UTF-8, else CP932.
fn raw_text(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => encoding_rs::SHIFT_JIS.decode_without_bom_handling(raw).0,
    }
}

/// The non-empty fields of a quarantined row's text, split on every delimiter a layout
/// may use (`,` tab `;` `|`), quotes trimmed.
fn raw_fields(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', '\t', ';', '|'])
        .map(|field| field.trim_matches('"'))
        .filter(|field| !field.trim().is_empty())
}

/// A field read as an identifier of `kind`, when it reads without a repair flag.
fn identifier(kind: Kind, field: &str, tables: &Tables) -> Option<String> {
    match normalise::normalise(kind, field, tables) {
        Ok(n) if n.flag.is_none() => n.value.as_str().map(str::to_string),
        _ => None,
    }
}

/// Whether a purge destroys a quarantined row: the evaluator of records
/// ([`super::expired`]) on what migrate read of it — its 接種日 and vaccine code — with no
/// record id, no death date and no provision date (so a rule counted from a death keeps
/// it), and, when the purge has person holds, the keyed hash of every whole field that
/// reads as a 宛名番号 (a field matching a held person keeps the row). Without a 接種日 or
/// a vaccine code the row is kept.
pub fn quarantine_row_expired(
    vaccination_date: Option<i32>,
    vaccine_code: Option<&str>,
    raw: &[u8],
    e: &QuarantineExpiry,
    tables: &Tables,
) -> bool {
    let (Some(date), Some(code)) = (vaccination_date, vaccine_code) else {
        return false;
    };
    let atena_hashes = if e.holds.persons.is_empty() {
        Vec::new()
    } else {
        let text = raw_text(raw);
        // Any reading, repaired or not: a hold errs on the side of keeping.
        raw_fields(&text)
            .filter_map(|f| normalise::normalise(Kind::Atena, f, tables).ok())
            .filter_map(|n| {
                n.value
                    .as_str()
                    .map(|a| archive::keyed_hash(&e.secret, "atena", a))
            })
            .collect()
    };
    let facts = RecordFacts {
        record_id: String::new(),
        category: tables.vaccine(code).map(|v| v.category.clone()),
        vaccination_date: Some(date),
        atena_hashes,
    };
    expired(&facts, &e.rules, e.as_of, None, None, &e.holds).expired
}

/// Keep the rows of a list that do not go; returns the kept batches and the rows removed.
pub fn filter(
    list: List,
    batches: &[RecordBatch],
    needles: &Needles,
    tables: &Tables,
) -> Result<(Vec<RecordBatch>, u64), ArchiveError> {
    let mut out = Vec::with_capacity(batches.len());
    let mut removed = 0u64;
    for b in batches {
        let goes = goes(list, b, needles, tables)?;
        let mask: BooleanArray = goes.iter().map(|g| Some(!g)).collect();
        removed += goes.iter().filter(|g| **g).count() as u64;
        let kept =
            arrow::compute::filter_record_batch(b, &mask).map_err(|e| ArchiveError::Parquet {
                what: list.role().into(),
                message: e.to_string(),
            })?;
        out.push(kept);
    }
    Ok((out, removed))
}

/// Per row of a list batch: whether it goes.
pub fn goes(
    list: List,
    b: &RecordBatch,
    needles: &Needles,
    tables: &Tables,
) -> Result<Vec<bool>, ArchiveError> {
    let missing =
        |c: &str| ArchiveError::State(format!("the {} list has no `{c}` column", list.role()));
    Ok(match list {
        List::Review => {
            let col = |c: &str| {
                b.column_by_name(c)
                    .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned())
                    .ok_or_else(|| missing(c))
            };
            let (ids, cands) = (col("record_id")?, col("candidate_atena_number")?);
            (0..b.num_rows())
                .map(|i| needles.review_row_goes(ids.value(i), cands.value(i)))
                .collect()
        }
        List::Quarantine => {
            let raw = b
                .column_by_name("raw")
                .and_then(|a| a.as_any().downcast_ref::<BinaryArray>().cloned())
                .ok_or_else(|| missing("raw"))?;
            // Absent from lists written before a purge could decide quarantined rows:
            // those rows are kept.
            let dates = b
                .column_by_name("vaccination_date")
                .and_then(|a| a.as_any().downcast_ref::<Date32Array>().cloned());
            let codes = b
                .column_by_name("vaccine_code")
                .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned());
            (0..b.num_rows())
                .map(|i| {
                    let raw = raw.is_valid(i).then(|| raw.value(i));
                    needles.all_quarantine
                        || raw.is_some_and(|raw| quarantine_row_matches(raw, needles, tables))
                        || needles.expiry.as_ref().is_some_and(|e| {
                            let date = dates
                                .as_ref()
                                .and_then(|d| d.is_valid(i).then(|| d.value(i)));
                            let code = codes
                                .as_ref()
                                .and_then(|c| c.is_valid(i).then(|| c.value(i)));
                            quarantine_row_expired(date, code, raw.unwrap_or_default(), e, tables)
                        })
                })
                .collect()
        }
    })
}

/// The list object and its wrapped key in a manifest, if the archive has the list.
pub fn entries(m: &Manifest, list: List) -> Option<(FileEntry, FileEntry)> {
    let find = |role: &str| m.files.iter().find(|f| f.role == role).cloned();
    Some((find(list.role())?, find(list.key_role())?))
}

/// Decrypt a list of a manifest (with custodian identities). `None`: the archive has no
/// such list.
pub fn read(
    store: &Store,
    m: &Manifest,
    list: List,
    identities: &[age::x25519::Identity],
) -> Result<Option<Vec<RecordBatch>>, ArchiveError> {
    let Some((object, key)) = entries(m, list) else {
        return Ok(None);
    };
    Ok(Some(archive::open_parquet(
        &object.path,
        &store.get(&object.path)?,
        &store.get(&key.path)?,
        identities,
    )?))
}

/// The person hashes of the records whose review rows go only because they name an erased
/// person as the candidate: the records stay (they were never linked), and may be that
/// person's. Lists written before the review list carried `person_hash` give none.
pub fn review_persons_left(batches: &[RecordBatch], needles: &Needles) -> BTreeSet<String> {
    let col = |b: &RecordBatch, c: &str| {
        b.column_by_name(c)
            .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned())
    };
    let mut out = BTreeSet::new();
    for b in batches {
        let (Some(ids), Some(cands), Some(persons)) = (
            col(b, "record_id"),
            col(b, "candidate_atena_number"),
            col(b, "person_hash"),
        ) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if needles.atena.contains(cands.value(i))
                && !needles.records.contains(ids.value(i))
                && !persons.value(i).is_empty()
            {
                out.insert(persons.value(i).to_string());
            }
        }
    }
    out
}

/// Rows of a list, over its batches.
pub fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Distinct record ids of review batches (the manifest's `totals.review`).
pub fn review_records(batches: &[RecordBatch]) -> u64 {
    let mut ids = BTreeSet::new();
    for b in batches {
        if let Some(c) = b
            .column_by_name("record_id")
            .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        {
            for i in 0..c.len() {
                ids.insert(c.value(i).to_string());
            }
        }
    }
    ids.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needles() -> Needles {
        let mut n = Needles::default();
        n.atena.insert("1234567".into());
        n.tickets.insert("0012345678".into());
        n.kojin_bango.insert("123456789018".into());
        n
    }

    #[test]
    fn a_quarantined_row_matches_a_whole_identifier_field_in_any_written_form() {
        let t = Tables::embedded();
        let n = needles();
        // Zero-padded and full-width 宛名番号, in UTF-8 and CP932.
        assert!(quarantine_row_matches(b"x,0001234567,2021-13-40", &n, t));
        let wide = "山田,１２３４５６７,bad";
        assert!(quarantine_row_matches(wide.as_bytes(), &n, t));
        let (cp932, _, _) = encoding_rs::SHIFT_JIS.encode(wide);
        assert!(std::str::from_utf8(&cp932).is_err());
        assert!(quarantine_row_matches(&cp932, &n, t));
        // A ticket number as a whole field, quoted; a 個人番号 with hyphens.
        assert!(quarantine_row_matches(b"a,\"0012345678\",b", &n, t));
        assert!(quarantine_row_matches(b"a\t1234-5678-9018\tb", &n, t));
    }

    #[test]
    fn a_quarantined_row_without_the_identifiers_stays() {
        let t = Tables::embedded();
        let n = needles();
        // Part of a field, a longer number, a short number that pads to the ticket.
        assert!(!quarantine_row_matches(b"x,12345678,y", &n, t));
        assert!(!quarantine_row_matches(b"x,A1234567,y", &n, t));
        assert!(!quarantine_row_matches(b"x,12345678 9,y", &n, t));
        assert!(!quarantine_row_matches(b"x,1234567-0,y", &n, t));
        let mut short = Needles::default();
        short.tickets.insert("0000000012".into());
        assert!(!quarantine_row_matches(b"x,12,y", &short, t));
        // A purge's needles (records only) never match a quarantined row.
        let mut records = Needles::default();
        records.records.insert("r1".into());
        assert!(!quarantine_row_matches(b"1234567,r1", &records, t));
        assert!(!records.erases_person() && !records.is_empty());
        let all = Needles {
            all_quarantine: true,
            ..Needles::default()
        };
        assert!(!all.is_empty() && !all.erases_person());
    }

    /// Needles of a person as an erase gathers them from a removed record.
    fn person() -> Needles {
        let schema = Schema::embedded();
        let mut v = vec![crate::record::Value::Null; schema.len()];
        v[schema.idx("kana_name")] = crate::record::Value::Str("ヤマダ タロウ".into());
        v[schema.idx("kanji_name")] = crate::record::Value::Str("山﨑 太郎".into());
        v[schema.idx("birth_date")] = crate::record::Value::Date(3743); // 1980-04-01
        let mut n = Needles::default();
        n.add_person_record(schema, Tables::embedded(), &Record::from(v));
        n
    }

    #[test]
    fn a_quarantined_row_matches_a_name_with_the_birth_date() {
        let t = Tables::embedded();
        let n = person();
        assert!(n.erases_person());
        // Kana in half width without a space, a 和暦 birth date, a broken 宛名番号.
        assert!(quarantine_row_matches(
            "x,ﾔﾏﾀﾞﾀﾛｳ,S55.4.1,12a".as_bytes(),
            &n,
            t
        ));
        // The kanji name with the variant folded (崎), the date in another spelling; CP932.
        let row = "山崎　太郎;1980/04/01;bad";
        assert!(quarantine_row_matches(row.as_bytes(), &n, t));
        let (cp932, _, _) = encoding_rs::SHIFT_JIS.encode(row);
        assert!(quarantine_row_matches(&cp932, &n, t));
        // The kana_birth identifier an erase by that key names.
        let mut by_key = Needles::default();
        by_key.add_identifier(
            "kana_birth",
            &format!("{}:3743", normalise::kana_key("ヤマダタロウ")),
        );
        assert!(quarantine_row_matches(
            "ヤマダ　タロウ,1980-04-01".as_bytes(),
            &by_key,
            t
        ));
    }

    #[test]
    fn a_name_without_the_birth_date_or_a_date_without_the_name_stays() {
        let t = Tables::embedded();
        let n = person();
        // The name with another date; the date with another name; the name only as part
        // of a field; the birth date alone; the name alone.
        assert!(!quarantine_row_matches(
            "ヤマダ タロウ,1980-04-02".as_bytes(),
            &n,
            t
        ));
        assert!(!quarantine_row_matches(
            "ヤマダ ハナコ,1980-04-01".as_bytes(),
            &n,
            t
        ));
        assert!(!quarantine_row_matches(
            "ヤマダ タロウ様方,1980-04-01".as_bytes(),
            &n,
            t
        ));
        assert!(!quarantine_row_matches(b"x,1980-04-01,y", &n, t));
        assert!(!quarantine_row_matches("山﨑 太郎,x".as_bytes(), &n, t));
        // A record without a birth date gives no name needle.
        let schema = Schema::embedded();
        let mut v = vec![crate::record::Value::Null; schema.len()];
        v[schema.idx("kana_name")] = crate::record::Value::Str("ヤマダ タロウ".into());
        let mut none = Needles::default();
        none.add_person_record(schema, t, &Record::from(v));
        assert!(!none.erases_person());
    }

    fn expiry(as_of: &str) -> QuarantineExpiry {
        let (rules, holds) = crate::purge::Rules::embedded();
        QuarantineExpiry {
            rules,
            holds,
            as_of: crate::purge::parse_date(as_of).unwrap(),
            secret: [7; 32],
        }
    }

    #[test]
    fn a_purge_decides_a_quarantined_row_by_its_date_and_vaccine() {
        let t = Tables::embedded();
        let d = |s: &str| crate::purge::parse_date(s);
        let e = expiry("2025-04-11");
        let raw = b"1234567,x,2020-04-10";
        // Five years from 接種日 2020-04-10 end on 2025-04-10 (初日不算入).
        assert!(quarantine_row_expired(
            d("2020-04-10"),
            Some("MR"),
            raw,
            &e,
            t
        ));
        assert!(!quarantine_row_expired(
            d("2020-04-10"),
            Some("MR"),
            raw,
            &expiry("2025-04-10"),
            t
        ));
        // Without a date or a vaccine code, or with a code the tables do not know: kept.
        assert!(!quarantine_row_expired(None, Some("MR"), raw, &e, t));
        assert!(!quarantine_row_expired(d("2010-01-01"), None, raw, &e, t));
        assert!(!quarantine_row_expired(
            d("2010-01-01"),
            Some("NOPE"),
            raw,
            &e,
            t
        ));
        // A COVID-19 dose of the special period needs a death date: kept, however old.
        let late = expiry("2090-01-01");
        assert!(!quarantine_row_expired(
            d("2021-07-01"),
            Some("COVID19"),
            raw,
            &late,
            t
        ));
        assert!(quarantine_row_expired(
            d("2024-05-01"),
            Some("COVID19"),
            raw,
            &late,
            t
        ));
    }

    #[test]
    fn a_person_hold_keeps_a_quarantined_row_naming_the_held_atena() {
        let t = Tables::embedded();
        let mut e = expiry("2030-01-01");
        let date = crate::purge::parse_date("2020-01-01");
        let held = archive::keyed_hash(&e.secret, "atena", "1234567");
        e.holds.persons.insert(held, "disclosure".into());
        // The held 宛名番号 as a whole field in any written form keeps the row.
        assert!(!quarantine_row_expired(
            date,
            Some("MR"),
            b"x,1234567,y",
            &e,
            t
        ));
        let wide = "x,００１２３４５６７,y";
        assert!(!quarantine_row_expired(
            date,
            Some("MR"),
            wide.as_bytes(),
            &e,
            t
        ));
        // Another number, or the number inside a field, does not.
        assert!(quarantine_row_expired(
            date,
            Some("MR"),
            b"x,1234568,y",
            &e,
            t
        ));
        assert!(quarantine_row_expired(
            date,
            Some("MR"),
            b"x,A1234567,y",
            &e,
            t
        ));
    }

    #[test]
    fn quarantine_rows_go_by_their_columns_and_older_lists_keep_theirs() {
        use arrow::array::{ArrayRef, BinaryArray, Date32Array};
        use std::sync::Arc;
        let t = Tables::embedded();
        let d = |s: &str| crate::purge::parse_date(s);
        let raw = || Arc::new(BinaryArray::from(vec![&b"a"[..], b"b", b"c", b"d"])) as ArrayRef;
        let with = RecordBatch::try_from_iter(vec![
            ("raw", raw()),
            (
                "vaccination_date",
                Arc::new(Date32Array::from(vec![
                    d("2010-01-01"),
                    d("2029-01-01"),
                    None,
                    d("2010-01-01"),
                ])) as ArrayRef,
            ),
            (
                "vaccine_code",
                Arc::new(StringArray::from(vec![
                    Some("BCG"),
                    Some("BCG"),
                    Some("BCG"),
                    None,
                ])) as ArrayRef,
            ),
        ])
        .unwrap();
        let n = Needles {
            expiry: Some(expiry("2030-01-01")),
            ..Needles::default()
        };
        assert!(!n.is_empty() && !n.erases_person());
        let going = goes(List::Quarantine, &with, &n, t).unwrap();
        assert_eq!(going, [true, false, false, false]);
        let (kept, removed) = filter(List::Quarantine, &[with], &n, t).unwrap();
        assert_eq!((removed, rows(&kept)), (1, 3));
        // A list written before the columns existed: every row stays.
        let old = RecordBatch::try_from_iter(vec![("raw", raw())]).unwrap();
        assert_eq!(
            goes(List::Quarantine, &old, &n, t).unwrap(),
            [false, false, false, false]
        );
    }

    #[test]
    fn review_rows_go_by_record_or_candidate() {
        let mut n = Needles::default();
        n.records.insert("r1".into());
        assert!(n.review_row_goes("r1", "99"));
        assert!(!n.review_row_goes("r2", "1234567"));
        n.atena.insert("1234567".into());
        assert!(n.review_row_goes("r2", "1234567"));
        assert!(!n.review_row_goes("r2", "7654321"));
    }

    #[test]
    fn filter_keeps_the_other_rows_in_order() {
        use arrow::array::{ArrayRef, Float64Array};
        use std::sync::Arc;
        let b = RecordBatch::try_from_iter(vec![
            (
                "record_id",
                Arc::new(StringArray::from(vec!["r1", "r2", "r3", "r4"])) as ArrayRef,
            ),
            (
                "candidate_atena_number",
                Arc::new(StringArray::from(vec!["5", "1234567", "6", "7"])) as ArrayRef,
            ),
            (
                "score",
                Arc::new(Float64Array::from(vec![0.9, 0.8, 0.7, 0.6])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut n = Needles::default();
        n.records.insert("r1".into());
        n.atena.insert("1234567".into());
        let (kept, removed) = filter(List::Review, &[b], &n, Tables::embedded()).unwrap();
        assert_eq!(removed, 2);
        let ids = kept[0]
            .column_by_name("record_id")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(ids.iter().flatten().collect::<Vec<_>>(), ["r3", "r4"]);
        assert_eq!(review_records(&kept), 2);
    }
}
