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
//!   date. A purge cannot
//!   evaluate quarantined rows (their dates could not be read): it keeps them, and its
//!   certificate says so.
//!
//! The pure core ([`Needles`], [`quarantine_row_matches`], [`filter`]) has no I/O; the
//! shell ([`read`]) decrypts a list object of a manifest.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, BinaryArray, BooleanArray, StringArray};
use arrow::record_batch::RecordBatch;

use crate::archive::manifest::{FileEntry, Manifest};
use crate::archive::store::Store;
use crate::archive::{self, ArchiveError};
use crate::normalise::{self, Kind, Tables};
use crate::record::Record;
use crate::schema::Schema;

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

/// What must leave the lists. No `Debug`: the values are personal identifiers.
#[derive(Clone, Default)]
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
}

impl Needles {
    /// Nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && !self.erases_person() && !self.all_quarantine
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
    let text = match std::str::from_utf8(raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => encoding_rs::SHIFT_JIS.decode_without_bom_handling(raw).0,
    };
    let value = |kind: Kind, field: &str| match normalise::normalise(kind, field, tables) {
        Ok(n) if n.flag.is_none() => n.value.as_str().map(str::to_string),
        _ => None,
    };
    let fields = || {
        text.split([',', '\t', ';', '|'])
            .map(|field| field.trim_matches('"'))
            .filter(|field| !field.trim().is_empty())
    };
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
    fields().any(|field| {
        let keys = name_keys(field, tables);
        dates
            .iter()
            .any(|d| keys.iter().any(|k| needles.names[d].contains(k)))
    })
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
            (0..b.num_rows())
                .map(|i| {
                    needles.all_quarantine
                        || (raw.is_valid(i)
                            && quarantine_row_matches(raw.value(i), needles, tables))
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
