//! Reconciliation: link every dose record to one resident-registry person (or
//! explicitly to none) and merge the doses recorded twice (VRS export + ledger).
//!
//! [`reconcile`] is a pure function: no I/O, no clock, no randomness; the same input
//! gives the same output in the same order whatever the thread count. The steps:
//!
//! 1. **Enrich VRS doses** from the VRS person list, joined on (自治体コード, 接種券番号).
//! 2. **Deterministic links**, first hit wins: 宛名番号 (`atena`), 団体内統合宛名番号
//!    (`integrated_atena`), 個人番号 (`kojin_bango`), then the identifiers the VRS
//!    person row gave (`ticket`). A key pointing at a person whose birth date *and*
//!    kana key both disagree is not followed.
//! 3. **Probabilistic links** (Fellegi–Sunter, [`Rules`]) for the rest:
//!    `probabilistic`, `review` (never linked, listed in [`Outcome::review`]) or `none`.
//! 4. **Merge** doses of one linked person recorded in both sources.
//!
//! Relational work runs on narrow `(row, key hash)` lists (`frames.rs`): joins and
//! blocking against sides sorted once, the merge group-by in polars; see
//! `docs/reconcile.md` for the model.
//!
//! Names, numbers and dates are personal data: nothing here logs or prints them, and
//! the `Debug` impls of [`ReviewItem`] and [`Outcome`] show counts only.

mod frames;
mod keys;
pub(crate) mod link;
mod merge;
pub mod quality;
mod rules;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use rayon::prelude::*;
use serde::Serialize;

use crate::record::{Record, Value, ValueRef};
use crate::schema::Schema;

pub use quality::{score, Quality};
pub use rules::{Comparison, KeyPart, Mu, Rules, DEFAULT_RULES_TOML};

use link::{Method, TicketIds};

/// The result of [`reconcile`].
pub struct Outcome {
    /// Reconciled records, sorted by `record_id` (absorbed duplicates removed).
    pub records: Vec<Record>,
    /// Records that need a person's decision, sorted by `record_id`.
    pub review: Vec<ReviewItem>,
    /// Counts for the run report.
    pub stats: Stats,
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field("records", &self.records.len())
            .field("review", &self.review.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// A record the reconciler would not decide alone. PERSONAL DATA: the registry atena
/// numbers identify people; `Debug` shows only the number of candidates.
#[derive(Clone, PartialEq)]
pub struct ReviewItem {
    /// The record's `record_id`.
    pub record_id: String,
    /// Registry 宛名番号 and Fellegi–Sunter score of each candidate, best first.
    pub candidates: Vec<(String, f64)>,
}

impl fmt::Debug for ReviewItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReviewItem")
            .field("candidates", &self.candidates.len())
            .finish_non_exhaustive()
    }
}

/// Counts of a reconciliation run. No personal data.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Records given to [`reconcile`].
    pub records_in: u64,
    /// Records in [`Outcome::records`]; `records_in = records_out + merged_rows`.
    pub records_out: u64,
    /// Output records per `match_method`.
    pub by_method: BTreeMap<String, u64>,
    /// Output records per `registry_status`.
    pub by_status: BTreeMap<String, u64>,
    /// Output records per `merge_status`.
    pub by_merge_status: BTreeMap<String, u64>,
    /// Rows absorbed into another record by a merge.
    pub merged_rows: u64,
    /// Output records with a non-empty `conflicts` field.
    pub conflicts: u64,
    /// Records sent to review.
    pub review: u64,
    /// VRS dose records that found their person row by ticket.
    pub vrs_enriched: u64,
    /// VRS dose records whose ticket is not in the person list.
    pub vrs_ticket_unknown: u64,
    /// VRS dose records whose ticket's person row names another registry resident than
    /// their own 宛名番号: not enriched from it (conflict `ticket_atena`).
    pub vrs_ticket_mismatch: u64,
    /// Deterministic keys not followed because they pointed at a suspicious person.
    pub suspicious_keys: u64,
}

/// Indices of the fields reconciliation reads or writes.
pub(crate) struct Fields {
    pub record_id: usize,
    pub atena_number: usize,
    pub integrated_atena_number: usize,
    pub kojin_bango: usize,
    pub kanji_name: usize,
    pub kana_name: usize,
    pub birth_date: usize,
    pub sex: usize,
    pub postal_code: usize,
    pub address: usize,
    pub vaccine_code: usize,
    pub dose_number: usize,
    pub vaccination_date: usize,
    pub lot_number: usize,
    pub municipality_code: usize,
    pub ticket_number: usize,
    pub source_kind: usize,
    pub source_file_id: usize,
    pub source_line: usize,
    pub raw_row_blake3: usize,
    pub merged_provenance: usize,
    pub match_method: usize,
    pub match_score: usize,
    pub registry_atena_number: usize,
    pub registry_status: usize,
    pub registry_status_date: usize,
    pub conflicts: usize,
    pub merge_status: usize,
    /// Person-row fields a VRS dose takes from its ticket's person row when Null.
    pub person_fill: Vec<usize>,
}

/// Fields a VRS dose fills from its person row (those the schema has).
const PERSON_FILL: &[&str] = &[
    "atena_number",
    "kojin_bango",
    "kanji_name",
    "kana_name",
    "birth_date",
    "sex",
    "vaccination_status",
    "vaccine_type",
    "product_name",
    "former_name",
    "romaji_name",
    "nationality",
    "passport_number",
    "certificate_id",
    "certificate_issued_date",
];

impl Fields {
    pub(crate) fn new(s: &Schema) -> Fields {
        Fields {
            record_id: s.idx("record_id"),
            atena_number: s.idx("atena_number"),
            integrated_atena_number: s.idx("integrated_atena_number"),
            kojin_bango: s.idx("kojin_bango"),
            kanji_name: s.idx("kanji_name"),
            kana_name: s.idx("kana_name"),
            birth_date: s.idx("birth_date"),
            sex: s.idx("sex"),
            postal_code: s.idx("postal_code"),
            address: s.idx("address"),
            vaccine_code: s.idx("vaccine_code"),
            dose_number: s.idx("dose_number"),
            vaccination_date: s.idx("vaccination_date"),
            lot_number: s.idx("lot_number"),
            municipality_code: s.idx("municipality_code"),
            ticket_number: s.idx("ticket_number"),
            source_kind: s.idx("source_kind"),
            source_file_id: s.idx("source_file_id"),
            source_line: s.idx("source_line"),
            raw_row_blake3: s.idx("raw_row_blake3"),
            merged_provenance: s.idx("merged_provenance"),
            match_method: s.idx("match_method"),
            match_score: s.idx("match_score"),
            registry_atena_number: s.idx("registry_atena_number"),
            registry_status: s.idx("registry_status"),
            registry_status_date: s.idx("registry_status_date"),
            conflicts: s.idx("conflicts"),
            merge_status: s.idx("merge_status"),
            person_fill: PERSON_FILL.iter().filter_map(|n| s.index(n)).collect(),
        }
    }
}

/// Total, deterministic record order: `record_id`, then provenance, then all values.
fn record_order(f: &Fields, a: &Record, b: &Record) -> Ordering {
    // Borrowed keys: the same order as owned strings, without allocating per comparison.
    fn borrowed<'a>(
        f: &Fields,
        r: &'a Record,
    ) -> (
        Option<&'a str>,
        Option<&'a str>,
        Option<i64>,
        Option<&'a str>,
    ) {
        (
            r.at(f.record_id).as_str(),
            r.at(f.source_file_id).as_str(),
            r.at(f.source_line).as_int(),
            r.at(f.raw_row_blake3).as_str(),
        )
    }
    borrowed(f, a).cmp(&borrowed(f, b)).then_with(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.partial_cmp(&y).unwrap_or(Ordering::Equal))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

/// Sort records by [`record_order`], stably — the order of `sort_by(record_order)` —
/// without chasing two records' heap strings per comparison: each record's first 16
/// bytes of `record_id` (a 32-hex-digit hash) are compared as one integer in a compact
/// array, the full order only on a tie, the original position last; then the records
/// are moved into that order once.
fn sort_records(f: &Fields, records: &mut Vec<Record>) {
    let prefix = |r: &Record| -> (bool, u128) {
        match r.at(f.record_id).as_str() {
            None => (false, 0),
            Some(id) => (true, u128::from_be_bytes(crate::record::text_head(id))),
        }
    };
    let mut order: Vec<((bool, u128), usize)> = records
        .par_iter()
        .enumerate()
        .map(|(i, r)| (prefix(r), i))
        .collect();
    {
        let records = &*records;
        order.par_sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| record_order(f, &records[a.1], &records[b.1]))
                .then(a.1.cmp(&b.1))
        });
    }
    let mut slots = std::mem::take(records);
    *records = order
        .into_iter()
        .map(|(_, i)| std::mem::take(&mut slots[i]))
        .collect();
}

fn ticket_key(f: &Fields, r: &Record) -> Option<String> {
    let m = r
        .at(f.municipality_code)
        .as_str()
        .filter(|s| !s.is_empty())?;
    let t = r.at(f.ticket_number).as_str().filter(|s| !s.is_empty())?;
    Some(format!("{m}\u{1f}{t}"))
}

/// Step 1: fill VRS doses' Null person items from their ticket's person row
/// (`persons_side`: the VRS person rows as the right side of the join on the ticket).
/// Each person row a dose was enriched from is set in `enriched` (a bit per row).
///
/// A dose whose own 宛名番号 is a registry resident's (`registry_atena`) and whose
/// ticket's person row names another 宛名番号 is not enriched: one of the two is wrong,
/// and filling the row's 個人番号, names and birth date would file another resident's
/// identifiers under the dose's person (a lookup or erasure by that 個人番号 would reach
/// them). It keeps its own 宛名番号 and gets conflict `ticket_atena`. A 宛名番号 no
/// resident has (a typo) does not count: the ticket is then the better evidence.
fn enrich(
    f: &Fields,
    records: &mut [Record],
    persons: &[Record],
    persons_side: &frames::Right,
    registry_atena: &frames::Right,
    stats: &mut Stats,
    enriched: &[std::sync::atomic::AtomicU64],
) -> Vec<TicketIds> {
    let is_vrs = |r: &Record| r.at(f.source_kind).as_str() == Some(merge::VRS_KIND);
    let left: frames::Keyed = records
        .par_iter()
        .enumerate()
        .filter(|(_, r)| is_vrs(r))
        .filter_map(|(i, r)| ticket_key(f, r).map(|k| (i as u32, frames::key(&k))))
        .collect();
    let with_ticket = left.len() as u64;
    // Pairs are sorted: the first pair of a record is its lowest-indexed person row.
    let mut person_of: Vec<Option<usize>> = vec![None; records.len()];
    for (r, p) in frames::join_with(left, persons_side) {
        person_of[r as usize].get_or_insert(p as usize);
    }
    let mismatch: Vec<bool> = records
        .par_iter()
        .zip(person_of.par_iter_mut())
        .map(|(r, p)| {
            let Some(row) = *p else { return false };
            let (own, named) = (
                r.at(f.atena_number).as_str(),
                persons[row].at(f.atena_number).as_str(),
            );
            let other = matches!((own, named), (Some(a), Some(b)) if a != b)
                && own.is_some_and(|a| !registry_atena.rows_of(frames::key(a)).is_empty());
            if other {
                *p = None;
            }
            other
        })
        .collect();
    let mismatched = mismatch.iter().filter(|&&m| m).count() as u64;
    stats.vrs_ticket_mismatch += mismatched;
    for &p in person_of.iter().flatten() {
        enriched[p / 64].fetch_or(1 << (p % 64), std::sync::atomic::Ordering::Relaxed);
    }
    let enriched = person_of.iter().flatten().count() as u64;
    stats.vrs_enriched += enriched;
    let mut fill = vec![false; f.person_fill.iter().max().map_or(0, |m| m + 1)];
    for &field in &f.person_fill {
        fill[field] = true;
    }
    let ids = records
        .par_iter_mut()
        .zip(person_of.par_iter().zip(mismatch.par_iter()))
        .map(|(record, (p, &mismatch))| {
            let Some(p) = *p else {
                return TicketIds {
                    mismatch,
                    ..TicketIds::default()
                };
            };
            let person = &persons[p];
            // The person row fills these (both are person-fill fields): the record then
            // holds the ticket's value, and `ids` only says it came from the ticket.
            let ids = TicketIds {
                atena: record.at(f.atena_number).is_null()
                    && person.at(f.atena_number).as_str().is_some(),
                kojin_bango: record.at(f.kojin_bango).is_null()
                    && person.at(f.kojin_bango).as_str().is_some(),
                mismatch: false,
            };
            record.fill_from(person, |i| fill.get(i) == Some(&true));
            ids
        })
        .collect();
    stats.vrs_ticket_unknown += with_ticket - enriched - mismatched;
    ids
}

/// Conflicts between a linked record and its registry person (by key for names).
fn person_conflicts(rp: &link::Person, gp: &link::Person) -> Vec<&'static str> {
    let mut out = Vec::new();
    if matches!((rp.birth, gp.birth), (Some(a), Some(b)) if a != b) {
        out.push("birth_date");
    }
    if matches!((rp.sex(), gp.sex()), (Some(a), Some(b)) if a != b) {
        out.push("sex");
    }
    if matches!((rp.kana(), gp.kana()), (Some(a), Some(b)) if a != b) {
        out.push("kana_name");
    }
    if matches!((rp.kanji(), gp.kanji()), (Some(a), Some(b)) if a != b) {
        out.push("kanji_name");
    }
    out
}

/// Steps 1–3 (enrich, link, apply the links) for any chunk of records: each record's
/// outcome depends only on the record, the registry and the VRS person list, never on the
/// other records, so a streaming migrate links records a chunk at a time as they are read
/// and [`reconcile`] links them all. The registry's and person list's sides of the joins
/// and their match keys are built once.
pub struct Linker<'a> {
    f: Fields,
    registry: link::Registry,
    /// VRS person rows with only the fields enrichment copies.
    vrs_persons: Vec<Record>,
    rules: &'a Rules,
    persons_side: frames::Right,
    /// Bit `g`: a record linked to registry row `g` (by any [`Linker::link`] so far).
    linked: Vec<std::sync::atomic::AtomicU64>,
    /// Bit `p`: a VRS dose was enriched from person row `p` (so far).
    enriched: Vec<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for Linker<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Linker")
            .field("registry", &self.registry.rows.len())
            .field("vrs_persons", &self.vrs_persons.len())
            .finish_non_exhaustive()
    }
}

/// What [`Linker::link`] found in a chunk besides the records it updated.
#[derive(Debug, Default)]
pub struct Linked {
    /// Records sent to review, in chunk order.
    pub review: Vec<ReviewItem>,
    /// `vrs_enriched`, `vrs_ticket_unknown` and `suspicious_keys` of the chunk.
    pub stats: Stats,
}

/// The registry's side of linking ([`Linker::prepare_registry`]): built before the VRS
/// person list is read, so that a streaming migrate never holds both lists' full rows.
pub struct PreparedRegistry(link::Registry);

impl fmt::Debug for PreparedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRegistry")
            .field("rows", &self.0.rows.len())
            .finish_non_exhaustive()
    }
}

/// [`Linker::prepare_registry`] a chunk of registry rows at a time, so that a streaming
/// migrate never holds the registry's full rows together (at 20M source rows, a registry
/// of 3.8M residents, they set the run's peak memory). Rows must come in registry order;
/// the result is the one `prepare_registry` gives over all rows at once (tested).
pub struct RegistryBuilder {
    f: Fields,
    inner: link::RegistryBuilder,
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field("rows", &self.inner.len())
            .finish_non_exhaustive()
    }
}

impl RegistryBuilder {
    /// An empty registry of `schema`'s records.
    pub fn new(schema: &Schema) -> RegistryBuilder {
        RegistryBuilder {
            f: Fields::new(schema),
            inner: link::RegistryBuilder::default(),
        }
    }

    /// Take the registry's next rows (they can be dropped afterwards).
    pub fn add(&mut self, rows: &[Record]) {
        self.inner.add(&self.f, rows);
    }

    /// The registry's side of linking under `rules`.
    pub fn finish(self, rules: &Rules) -> PreparedRegistry {
        PreparedRegistry(self.inner.finish(rules))
    }
}

/// The VRS person list's side of linking taken a chunk of rows at a time (for
/// [`Linker::with_person_list`]): the ticket join's side and, of each row, only the fields
/// enrichment copies. Rows must come in list order; the result is the one
/// [`Linker::with_registry`] gives over all rows at once (tested).
pub struct PersonListBuilder {
    f: Fields,
    keyed: frames::KeyColumns,
    slim: Vec<Record>,
}

impl fmt::Debug for PersonListBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonListBuilder")
            .field("rows", &self.slim.len())
            .finish_non_exhaustive()
    }
}

impl PersonListBuilder {
    /// An empty person list of `schema`'s records.
    pub fn new(schema: &Schema) -> PersonListBuilder {
        PersonListBuilder {
            f: Fields::new(schema),
            keyed: frames::KeyColumns::default(),
            slim: Vec::new(),
        }
    }

    /// Take the list's next rows (they can be dropped afterwards).
    pub fn add(&mut self, rows: &[Record]) {
        let f = &self.f;
        let base = self.slim.len() as u32;
        let keyed: frames::Keyed = rows
            .par_iter()
            .enumerate()
            .filter_map(|(i, r)| ticket_key(f, r).map(|k| (i as u32, frames::key(&k))))
            .collect();
        self.keyed.extend_shifted(keyed, base);
        // The ticket too, for the lookup index ([`Linker::linked_persons`]); enrichment
        // copies only the person-fill fields.
        let kept = |i: usize| {
            f.person_fill.contains(&i) || i == f.municipality_code || i == f.ticket_number
        };
        self.slim.par_extend(rows.par_iter().map(|r| {
            let mut slim = Record::new(r.len());
            slim.fill_from(r, kept);
            slim
        }));
    }
}

impl<'a> Linker<'a> {
    /// Prepare the registry's and the VRS person list's side of every join.
    pub fn new(
        schema: &Schema,
        registry: &[Record],
        vrs_persons: &[Record],
        rules: &'a Rules,
    ) -> Linker<'a> {
        let registry = Self::prepare_registry(schema, registry, rules);
        Self::with_registry(schema, registry, vrs_persons, rules)
    }

    /// The registry's part of [`Linker::new`]: its match keys, its side of every join and
    /// the few fields a link copies. The caller can drop the registry rows afterwards.
    pub fn prepare_registry(
        schema: &Schema,
        registry: &[Record],
        rules: &Rules,
    ) -> PreparedRegistry {
        PreparedRegistry(link::Registry::new(&Fields::new(schema), registry, rules))
    }

    /// The rest of [`Linker::new`]: the VRS person list's side, with a registry prepared by
    /// [`Linker::prepare_registry`] under the same schema and rules.
    pub fn with_registry(
        schema: &Schema,
        registry: PreparedRegistry,
        vrs_persons: &[Record],
        rules: &'a Rules,
    ) -> Linker<'a> {
        let mut persons = PersonListBuilder::new(schema);
        persons.add(vrs_persons);
        Self::with_person_list(registry, persons, rules)
    }

    /// [`Linker::with_registry`] with the VRS person list taken a chunk at a time by a
    /// [`PersonListBuilder`] (of the same schema).
    pub fn with_person_list(
        registry: PreparedRegistry,
        persons: PersonListBuilder,
        rules: &'a Rules,
    ) -> Linker<'a> {
        let PersonListBuilder { f, keyed, slim } = persons;
        let bits = |n: usize| (0..n.div_ceil(64)).map(|_| Default::default()).collect();
        Linker {
            linked: bits(registry.0.rows.len()),
            enriched: bits(slim.len()),
            registry: registry.0,
            f,
            vrs_persons: slim,
            rules,
            persons_side: frames::Right::of_columns(keyed, None),
        }
    }

    /// Has a record been linked to registry row `g`?
    fn is_linked(&self, g: usize) -> bool {
        is_set(&self.linked, g)
    }

    /// The identifiers the registry and the VRS person list hold for the registry persons
    /// that [`Linker::link`] linked records to so far, as slim records the lookup index
    /// reads like any record's (`crate::archive::identifiers`): each holds only
    /// `registry_atena_number` — the linked records' person key — and one source's
    /// identifiers of that person:
    ///
    /// - of each linked registry row: its kana key with its birth date, and its 個人番号
    ///   unless another registry row holds the same number (it identifies no one);
    /// - of each VRS person row that no VRS dose was enriched from (a resident whose doses
    ///   are all in the ledgers: a dose's ticket is on the dose record, indexed under
    ///   whoever the dose was linked to), whose ticket no other person row holds, and
    ///   that names a linked registry row by its 宛名番号 or 個人番号 while agreeing with
    ///   it on kana key and birth date ([`link::registry_rows_of_persons`]): its
    ///   自治体コード and 接種券番号.
    ///
    /// Each condition keeps a source error (a person row naming someone else, a number
    /// two rows share) from indexing an identifier under the wrong person, whose records a
    /// lookup — or an erase — by it would then reach.
    ///
    /// Without them a person is found only by the identifiers written on their records:
    /// a 個人番号 only the registry holds, the ticket of a resident whose doses are all in
    /// the ledgers, or the registry's kana spelling would find nobody. Handed to `take`
    /// [`LINKED_CHUNK`] source rows at a time (registry rows, then person rows, in
    /// order); pure and deterministic. The records' own identifiers may repeat among
    /// them (the index keeps each row once).
    pub fn linked_persons<E>(
        &self,
        mut take: impl FnMut(Vec<Record>) -> Result<(), E>,
    ) -> Result<(), E> {
        let f = &self.f;
        let reg = &self.registry;
        let atena_of = |g: usize| {
            reg.rows[g]
                .at(f.atena_number)
                .as_str()
                .filter(|s| !s.trim().is_empty())
        };
        let slim = |g: usize, len: usize| {
            let mut r = Record::new(len);
            r.set_many([(
                f.registry_atena_number,
                atena_of(g).map_or(Value::Null, |a| Value::Str(a.into())),
            )]);
            r
        };
        for start in (0..reg.rows.len()).step_by(LINKED_CHUNK) {
            let end = (start + LINKED_CHUNK).min(reg.rows.len());
            let rows: Vec<Record> = (start..end)
                .into_par_iter()
                .filter(|&g| self.is_linked(g) && atena_of(g).is_some())
                .map(|g| {
                    let person = &reg.people[g];
                    let mut r = slim(g, reg.rows[g].len());
                    let kojin_bango = if reg.kojin_bango_unique(f, g) {
                        reg.rows[g].at(f.kojin_bango).to_value()
                    } else {
                        Value::Null
                    };
                    r.set_many([
                        (f.kojin_bango, kojin_bango),
                        (
                            f.kana_name,
                            person.kana().map_or(Value::Null, |k| Value::Str(k.into())),
                        ),
                        (f.birth_date, person.birth.map_or(Value::Null, Value::Date)),
                    ]);
                    r
                })
                .collect();
            take(rows)?;
        }
        for (c, chunk) in self.vrs_persons.chunks(LINKED_CHUNK).enumerate() {
            let of = link::registry_rows_of_persons(f, chunk, reg);
            let rows: Vec<Record> = chunk
                .par_iter()
                .zip(of)
                .enumerate()
                .filter_map(|(i, (p, g))| {
                    let only_row = ticket_key(f, p)
                        .is_some_and(|k| self.persons_side.rows_of(frames::key(&k)).len() == 1);
                    if is_set(&self.enriched, c * LINKED_CHUNK + i) || !only_row {
                        return None;
                    }
                    let g = g.filter(|&g| self.is_linked(g) && atena_of(g).is_some())?;
                    let ticket = (p.at(f.municipality_code), p.at(f.ticket_number));
                    let present = |v: ValueRef<'_>| v.as_str().is_some_and(|s| !s.is_empty());
                    if !present(ticket.0) || !present(ticket.1) {
                        return None;
                    }
                    let mut r = slim(g, p.len());
                    r.set_many([
                        (f.municipality_code, ticket.0.to_value()),
                        (f.ticket_number, ticket.1.to_value()),
                    ]);
                    Some(r)
                })
                .collect();
            take(rows)?;
        }
        Ok(())
    }

    /// Enrich, link and apply the links to `records` (in place). Pure; the result does not
    /// depend on how records are split into chunks or on the thread count.
    pub fn link(&self, records: &mut [Record]) -> Linked {
        let f = &self.f;
        let mut stats = Stats::default();
        let ticket = enrich(
            f,
            records,
            &self.vrs_persons,
            &self.persons_side,
            &self.registry.atena,
            &mut stats,
            &self.enriched,
        );
        // Match keys once per distinct person of the chunk (kana and kanji keys are the
        // costly part), for linking and conflicts.
        let people = link::People::of(f, records);
        let links = link::link(f, records, &ticket, &self.registry, self.rules, &people);
        // Each record takes its link's outcome (in parallel; review items keep record order).
        let applied: Vec<(u64, Option<ReviewItem>)> = records
            .par_iter_mut()
            .zip(links.par_iter())
            .enumerate()
            .map(|(i, (r, l))| {
                let rp = &people[i];
                let score = match l.method {
                    Method::Probabilistic | Method::Review => {
                        l.score.map_or(Value::Null, Value::Float)
                    }
                    _ => Value::Null,
                };
                // Every field the link decides, in one pass over the packed record. Conflicts
                // start empty; `person_conflicts` lists them in `merge::CONFLICT_ORDER`.
                let (atena, status, status_date, conflicts) = match l.registry {
                    Some(g) => {
                        self.linked[g / 64]
                            .fetch_or(1 << (g % 64), std::sync::atomic::Ordering::Relaxed);
                        let person = &self.registry.rows[g];
                        let status = match person.at(f.registry_status) {
                            ValueRef::Str(s) if !s.is_empty() => s,
                            _ => DEFAULT_REGISTRY_STATUS,
                        };
                        (
                            person.at(f.atena_number).to_value(),
                            Value::Str(status.into()),
                            person.at(f.registry_status_date).to_value(),
                            person_conflicts(rp, &self.registry.people[g]),
                        )
                    }
                    None => (
                        Value::Null,
                        Value::Str("unlinked".into()),
                        Value::Null,
                        Vec::new(),
                    ),
                };
                let mut conflicts = conflicts;
                if ticket[i].mismatch {
                    conflicts.push("ticket_atena");
                }
                let conflicts = if conflicts.is_empty() {
                    Value::Null
                } else {
                    Value::Str(conflicts.join(";").into())
                };
                let updates = [
                    (f.match_method, Value::Str(l.method.as_str().into())),
                    (f.match_score, score),
                    (f.conflicts, conflicts),
                    (f.registry_atena_number, atena),
                    (f.registry_status, status),
                    (f.registry_status_date, status_date),
                ];
                // An unlinked record usually holds these values already (ingest's defaults):
                // `set_many` then leaves the packed record as it is.
                r.set_many(updates);
                let review = (l.method == Method::Review).then(|| ReviewItem {
                    record_id: r.at(f.record_id).as_str().unwrap_or("").to_string(),
                    candidates: l
                        .candidates
                        .iter()
                        .map(|&(g, s)| {
                            (
                                self.registry.rows[g]
                                    .at(f.atena_number)
                                    .as_str()
                                    .unwrap_or("")
                                    .to_string(),
                                s,
                            )
                        })
                        .collect(),
                });
                (u64::from(l.suspicious), review)
            })
            .collect();
        // Many small frees (match keys): spread them over the pool.
        people.free();
        let mut review = Vec::new();
        for (suspicious, item) in applied {
            stats.suspicious_keys += suspicious;
            review.extend(item);
        }
        Linked { review, stats }
    }
}

/// Step 4 for a set of linked records that holds every record of each person it holds
/// (all records, or one person bucket of them): sort, merge the doses recorded twice,
/// sort again. Returns the records and the number of rows absorbed by merges.
pub fn settle(schema: &Schema, records: Vec<Record>) -> (Vec<Record>, u64) {
    let f = Fields::new(schema);
    let mut records = records;
    sort_records(&f, &mut records);
    let keep = merge::keep_indices(schema);
    let (mut records, merged_rows) = merge::merge(schema, &f, &keep, records);
    sort_records(&f, &mut records);
    (records, merged_rows)
}

impl Stats {
    /// Add another part's counts (chunks of [`Linker::link`], buckets of [`Stats::count`]).
    pub fn add(&mut self, other: &Stats) {
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        for (target, counts) in [
            (&mut self.by_method, &other.by_method),
            (&mut self.by_status, &other.by_status),
            (&mut self.by_merge_status, &other.by_merge_status),
        ] {
            for (k, v) in counts {
                *target.entry(k.clone()).or_default() += v;
            }
        }
        self.merged_rows += other.merged_rows;
        self.conflicts += other.conflicts;
        self.review += other.review;
        self.vrs_enriched += other.vrs_enriched;
        self.vrs_ticket_unknown += other.vrs_ticket_unknown;
        self.vrs_ticket_mismatch += other.vrs_ticket_mismatch;
        self.suspicious_keys += other.suspicious_keys;
    }

    /// The counts of settled records ([`settle`]): `records_out`, per method, status and
    /// merge status, conflicts.
    pub fn count(schema: &Schema, records: &[Record]) -> Stats {
        let f = Fields::new(schema);
        let mut stats = Stats {
            records_out: records.len() as u64,
            ..Stats::default()
        };
        // Counted on borrowed names (a handful of distinct values), owned once at the end;
        // in parallel (sums: the same in any order).
        type Counts<'a> = ([BTreeMap<&'a str, u64>; 3], u64);
        let (by, conflicts) = records
            .par_iter()
            .fold(Counts::default, |(mut by, mut conflicts), r| {
                for (map, i) in
                    by.iter_mut()
                        .zip([f.match_method, f.registry_status, f.merge_status])
                {
                    *map.entry(r.at(i).as_str().unwrap_or("")).or_default() += 1;
                }
                if !r.at(f.conflicts).is_null() {
                    conflicts += 1;
                }
                (by, conflicts)
            })
            .reduce(Counts::default, |(mut a, ca), (b, cb)| {
                for (into, from) in a.iter_mut().zip(b) {
                    for (k, v) in from {
                        *into.entry(k).or_default() += v;
                    }
                }
                (a, ca + cb)
            });
        stats.conflicts = conflicts;
        let [method, status, merge_status] = by;
        for (target, counts) in [
            (&mut stats.by_method, method),
            (&mut stats.by_status, status),
            (&mut stats.by_merge_status, merge_status),
        ] {
            target.extend(counts.into_iter().map(|(k, v)| (k.to_string(), v)));
        }
        stats
    }
}

/// Review items in `record_id` order (then candidates: a total order, whatever order the
/// chunks were linked in).
pub fn sort_review(review: &mut [ReviewItem]) {
    review.sort_by(|a, b| {
        a.record_id.cmp(&b.record_id).then_with(|| {
            a.candidates
                .iter()
                .map(|(g, s)| (g, s.to_bits()))
                .cmp(b.candidates.iter().map(|(g, s)| (g, s.to_bits())))
        })
    });
}

/// Records linked at a time by [`reconcile`] (bounds the join frames and links in memory).
const LINK_CHUNK: usize = 1 << 18;

/// Reconcile dose records against the registry. See the module documentation.
pub fn reconcile(
    schema: &Schema,
    records: Vec<Record>,
    registry: &[Record],
    vrs_persons: &[Record],
    rules: &Rules,
) -> Outcome {
    reconcile_in_chunks(schema, records, registry, vrs_persons, rules, LINK_CHUNK)
}

/// [`reconcile`], linking `chunk` records at a time (any chunk size gives the same outcome).
fn reconcile_in_chunks(
    schema: &Schema,
    records: Vec<Record>,
    registry: &[Record],
    vrs_persons: &[Record],
    rules: &Rules,
    chunk: usize,
) -> Outcome {
    let mut stats = Stats {
        records_in: records.len() as u64,
        ..Stats::default()
    };
    let mut records = records;
    let linker = Linker::new(schema, registry, vrs_persons, rules);
    let mut review = Vec::new();
    for part in records.chunks_mut(chunk.max(1)) {
        let linked = linker.link(part);
        stats.add(&linked.stats);
        review.extend(linked.review);
    }
    drop(linker);
    let (records, merged_rows) = settle(schema, records);
    sort_review(&mut review);
    stats.merged_rows = merged_rows;
    stats.review = review.len() as u64;
    stats.add(&Stats::count(schema, &records));
    Outcome {
        records,
        review,
        stats,
    }
}

/// Source rows per chunk of [`Linker::linked_persons`].
const LINKED_CHUNK: usize = 1 << 16;

/// Bit `i` of a bit set.
fn is_set(bits: &[std::sync::atomic::AtomicU64], i: usize) -> bool {
    bits[i / 64].load(std::sync::atomic::Ordering::Relaxed) & (1 << (i % 64)) != 0
}

/// The status given to a linked record whose registry row carries none.
const DEFAULT_REGISTRY_STATUS: &str = "resident";

#[cfg(test)]
mod tests;
