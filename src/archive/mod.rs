//! The encrypted archive: partitions of canonical records as Parquet (zstd) written
//! straight into an age stream, one fresh key per object wrapped to the custodians,
//! 個人番号 and passport items in separate vault objects wrapped to the vault
//! recipients, an encrypted lookup index, encrypted quarantine and review lists, and a
//! signed manifest committed last.
//!
//! Layout (see `docs/archive-format.md` for the full specification):
//! ```text
//! MANIFEST.json, MANIFEST.json.minisig
//! keys/<id>.key.age              wrapped age identity of object <id>
//! data/class=<c>/expiry=<y>/bucket=<bb>/<id>.parquet.age
//! vault/<id>.parquet.age
//! index/<id>/<ssss>.parquet.age  index shards: keyed hashes of identifiers -> person
//!                                hash, bucket (see [`index`])
//! keys/index-hmac.key.age        the secret hash key, wrapped to the custodians
//! quarantine/<id>.parquet.age, review/<id>.parquet.age
//! ```
//! No plaintext byte of a record ever reaches storage: Parquet is written into the age
//! encryptor in memory and only ciphertext is put.

pub mod batch;
pub mod crypto;
pub mod index;
pub mod lock;
pub mod manifest;
pub mod rekey;
pub mod seek;
pub mod store;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, StringBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use crate::ingest::QuarantineEntry;
use crate::record::Record;
use crate::schema::{Class, Schema};
use crypto::{CryptoError, Recipients};
use manifest::{FileEntry, Manifest, Partition};
use store::{Store, StoreError};

/// Fewest person buckets a migration uses by default ([`default_buckets`]).
pub const DEFAULT_BUCKETS: u16 = 16;
/// Records per bucket the default bucket count aims at: 16 buckets up to 16.8M records
/// (a city of about 3.9 million people, the largest in Japan), doubling beyond, so that a
/// lookup (which reads the page index of every partition of one bucket) does not read ever
/// larger partitions. Measured at 16.7M records (docs/performance.md, session 8): 16
/// buckets were faster than 32 and 64 for single and batch lookups alike — a lookup
/// decrypts only the pages that can hold its person, so larger partitions cost it little,
/// while every partition a batch opens costs a key unwrap, a footer and a zstd context per
/// column.
pub const RECORDS_PER_BUCKET: u64 = 1_048_576;
/// Most person buckets by default.
pub const MAX_DEFAULT_BUCKETS: u16 = 4096;

/// The number of person buckets of a new archive of `records` records when the pipeline
/// names none: [`DEFAULT_BUCKETS`], or the power of two that keeps a bucket at about
/// [`RECORDS_PER_BUCKET`] records (at most [`MAX_DEFAULT_BUCKETS`]). Deterministic: the
/// same sources give the same count.
pub fn default_buckets(records: u64) -> u16 {
    let wanted = records.div_ceil(RECORDS_PER_BUCKET).next_power_of_two();
    wanted.clamp(u64::from(DEFAULT_BUCKETS), u64::from(MAX_DEFAULT_BUCKETS)) as u16
}
/// zstd level of the Parquet pages.
pub const ZSTD_LEVEL: i32 = 1;
/// Rows per Parquet row group (index, quarantine, review and summary objects).
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per row group of a record partition (most partitions are one row group):
/// partitions are sorted by `person_hash`, and each row group carries min/max statistics
/// and a bloom filter of `person_hash`, so a lookup skips the row groups that cannot hold
/// a person.
pub const PARTITION_ROW_GROUP_ROWS: usize = 64 * 1024;
/// Records turned into one Arrow batch at a time when a partition or an index shard is
/// sealed ([`record_batches`]). Their writers ([`lookup_properties`]) cut a page every
/// [`LOOKUP_PAGE_ROWS`] rows, write that many rows at a time and keep no dictionary; a
/// batch size that divides the row groups and is a multiple of the page gives the Parquet
/// bytes a single batch of all rows gives (tested).
pub const SEAL_BATCH_ROWS: usize = 8 * 1024;
const _: () = assert!(
    PARTITION_ROW_GROUP_ROWS.is_multiple_of(SEAL_BATCH_ROWS)
        && index::SHARD_ROW_GROUP_ROWS.is_multiple_of(SEAL_BATCH_ROWS)
        && SEAL_BATCH_ROWS.is_multiple_of(LOOKUP_PAGE_ROWS)
);
/// Rows per data page of a record partition or index shard. Pages carry min/max statistics
/// of the sort column (the column index) and every column an offset index, so a lookup
/// decrypts and decodes only the pages that can hold the person or key, column by column.
/// Small pages cost size (more headers, shorter zstd frames); large pages cost decoding.
pub const LOOKUP_PAGE_ROWS: usize = 512;

/// Threads storing sealed objects while partitions are still being sealed (a put waits
/// on fsync or the network, not the CPU).
const PUT_THREADS: usize = 8;

/// Sealed objects waiting for a put thread; bounds the ciphertext held in memory.
const PUT_QUEUE: usize = 16;

/// Records whose index entries are computed together (bounds the entries held before
/// they are deduplicated).
const INDEX_CHUNK: usize = 1 << 16;

/// Disjoint sets the distinct index rows are collected in, filled in parallel.
const DISTINCT_SETS: usize = 16;

/// Groups of a spilled index ([`Writer::spill_index`]): one spill file each (a power of
/// two, like the shard count, so a group holds whole shards or a shard whole groups).
const INDEX_GROUPS: usize = 64;
/// Object path of the wrapped index hash key.
pub const INDEX_SECRET: &str = "keys/index-hmac.key.age";

/// An archive failure: what and which object, never a value.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Crypto failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A temporary spill file (a streaming migrate's index rows).
    #[error(transparent)]
    Spill(#[from] crate::spill::SpillError),
    /// Parquet / Arrow failed.
    #[error("parquet `{what}`: {message}")]
    Parquet { what: String, message: String },
    /// The archive is not in a state that allows this.
    #[error("{0}")]
    State(String),
    /// The manifest is malformed.
    #[error("`MANIFEST.json` is not a valid vaxarc manifest: {0}")]
    Manifest(String),
}

fn pq(what: &str) -> impl Fn(parquet::errors::ParquetError) -> ArchiveError + '_ {
    move |e| ArchiveError::Parquet {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// Keys a writer needs.
pub struct WriteKeys {
    /// Partition keys are wrapped to these.
    pub custodians: Recipients,
    /// Vault keys are wrapped to these.
    pub vault: Recipients,
    /// Signs the manifest.
    pub signing: minisign::SecretKey,
    /// Its public key (base64 line).
    pub signing_public: String,
}

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteKeys(<redacted>)")
    }
}

/// Everything a new archive is written from, all at once ([`write_new`]).
pub struct NewArchive<'a> {
    /// Canonical schema.
    pub schema: &'a Schema,
    /// Reconciled records.
    pub records: Vec<Record>,
    /// Person buckets.
    pub buckets: u16,
    /// The keyed-hash secret ([`derive_index_secret`]). Never printed.
    pub index_secret: [u8; 32],
    /// Everything else: lists, accounting, pipeline, time.
    pub rest: Rest,
}

/// Key of the partition a record belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    /// Retention class.
    pub retention_class: String,
    /// Earliest expiry year or "open".
    pub expiry: String,
    /// Person bucket.
    pub bucket: u16,
}

/// The person key of a record: the linked registry 宛名番号, else the record's own
/// strongest identifier followed by `|` and its birth date (`YYYY-MM-DD`, empty when it
/// has none): no registry row vouches for an unlinked record, and two people the registry
/// does not know can be filed under one number (a mistyped 宛名番号 has no check digit) —
/// with the birth date they stay two keys, each found, shown and erased alone.
/// Personal data: only ever hashed.
pub fn person_key(schema: &Schema, r: &Record) -> String {
    person_key_parts(schema, r, |parts| parts.concat())
}

/// The keyed hash of a record's [`person_key`] under the archive's secret
/// (`keyed_hash_raw(secret, "person", &person_key(..))`), hashed from its parts without
/// building the key: the writer and the migrate's routing take it for every record.
pub fn person_hash(schema: &Schema, r: &Record, secret: &[u8; 32]) -> blake3::Hash {
    person_key_parts(schema, r, |parts| keyed_hash_parts(secret, "person", parts))
}

/// [`person_key`] in parts (the key is their concatenation), handed to `f`.
fn person_key_parts<T>(schema: &Schema, r: &Record, f: impl FnOnce(&[&str]) -> T) -> T {
    let get = |name: &str| r.at(schema.idx(name)).as_str().filter(|s| !s.is_empty());
    if let Some(a) = get("registry_atena_number") {
        return f(&["R:", a]);
    }
    let birth = r
        .at(schema.idx("birth_date"))
        .as_date()
        .map(crate::record::format_date)
        .unwrap_or_default();
    if let Some(k) = get("kojin_bango") {
        return f(&["K:", k, "|", &birth]);
    }
    if let (Some(m), Some(t)) = (get("municipality_code"), get("ticket_number")) {
        return f(&["T:", m, ":", t, "|", &birth]);
    }
    if let Some(a) = get("atena_number") {
        return f(&["A:", a, "|", &birth]);
    }
    f(&["I:", get("record_id").unwrap_or_default(), "|", &birth])
}

/// What the records of one person key (or several) say about whom they are: enough to
/// tell whether two keys can be one person, never shown (erase and lookup decide with it).
#[derive(Default, Clone)]
pub struct PersonFacts {
    /// Registry 宛名番号 the records are linked to.
    pub residents: BTreeSet<String>,
    /// Birth dates (days).
    pub births: BTreeSet<i32>,
    /// Kana match keys.
    pub kana: BTreeSet<String>,
    /// Kanji match keys (variants folded: `normalise::kanji_key`).
    pub kanji: BTreeSet<String>,
    /// Sexes.
    pub sexes: BTreeSet<String>,
    /// Some record carries a kana name and no kanji name.
    pub kana_without_kanji: bool,
}

impl std::fmt::Debug for PersonFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersonFacts({} residents)", self.residents.len())
    }
}

impl PersonFacts {
    /// Take in one record's person items.
    pub fn add_record(&mut self, schema: &Schema, r: &Record) {
        let text = |n: &str| r.at(schema.idx(n)).as_str().filter(|s| !s.is_empty());
        self.residents
            .extend(text("registry_atena_number").map(str::to_string));
        self.births.extend(r.at(schema.idx("birth_date")).as_date());
        self.kana
            .extend(text("kana_name").map(crate::normalise::kana_key));
        let tables = crate::normalise::Tables::embedded();
        let kanji = text("kanji_name")
            .map(|k| crate::normalise::kanji_key(k, tables))
            .filter(|k| !k.is_empty());
        self.kana_without_kanji |= kanji.is_none() && text("kana_name").is_some();
        self.kanji.extend(kanji);
        self.sexes.extend(text("sex").map(str::to_string));
    }

    /// Take in another's facts.
    pub fn add(&mut self, other: &PersonFacts) {
        self.residents.extend(other.residents.iter().cloned());
        self.births.extend(&other.births);
        self.kana.extend(other.kana.iter().cloned());
        self.kanji.extend(other.kanji.iter().cloned());
        self.sexes.extend(other.sexes.iter().cloned());
        self.kana_without_kanji |= other.kana_without_kanji;
    }

    /// Whether the names of `self` and `other` can be one person's: a kana name (match key)
    /// they share; or kana names one typing slip apart ([`slip`]) that the kanji names
    /// allow. A kana dropped or added (ヨウコ/ヨーコ: the match key drops the long-vowel
    /// mark) is one name unless the kanji names differ; a kana *replaced* or two swapped
    /// (ユウキ/ユウト) is also how twins' names differ, so it is one name only under a
    /// kanji name both sides carry (twins' differ: 優希/優斗). Either side without a kana
    /// name: nothing to compare.
    fn names_meet(&self, other: &PersonFacts) -> bool {
        if self.kana.is_empty() || other.kana.is_empty() || !self.kana.is_disjoint(&other.kana) {
            return true;
        }
        let shared = !self.kanji.is_disjoint(&other.kanji);
        let none_differ = self.kanji.is_empty() || other.kanji.is_empty() || shared;
        self.kana.iter().any(|a| {
            other.kana.iter().any(|b| match slip(a, b) {
                Some(Slip::Length) => none_differ,
                Some(Slip::Letter) => shared,
                None => false,
            })
        })
    }

    /// Could these be one person: at most one registry resident between them, and birth
    /// dates, kana keys (up to one typing slip: [`close`]) and sexes that meet wherever
    /// both sides have them.
    pub fn agrees(&self, other: &PersonFacts) -> bool {
        fn meet<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> bool {
            a.is_empty() || b.is_empty() || !a.is_disjoint(b)
        }
        self.residents.union(&other.residents).count() <= 1
            && meet(&self.births, &other.births)
            && self.names_meet(other)
            && meet(&self.sexes, &other.sexes)
    }

    /// Whether the records of one person key agree among themselves. A registry resident's
    /// key does (the registry vouches for it, whatever its copies say); a key no registry
    /// row vouches for does only with at most one birth date, one sex, and kana names
    /// (match keys) at most one typing slip apart ([`slip`]: a long vowel under at most one
    /// kanji name, any other slip only under one kanji name every record with a kana name
    /// carries) — more are two people filed under one number and birth date (twins
    /// under a mistyped 宛名番号, or two people without a birth date), or one person typed
    /// two ways: either way not shown to be one person.
    pub fn consistent(&self) -> bool {
        let kana: Vec<&String> = self.kana.iter().collect();
        // Kana names one slip apart are one name only under one kanji name (or none); a
        // slip other than a long vowel (ユウキ/ユウト: twins' names) only under one kanji name that every
        // record with a kana name carries.
        let named = self.kanji.len() == 1 && !self.kana_without_kanji;
        let one_name = kana.len() <= 1
            || (self.kanji.len() <= 1
                && kana.iter().enumerate().all(|(i, a)| {
                    kana[i + 1..].iter().all(|b| match slip(a, b) {
                        Some(Slip::Length) => true,
                        Some(Slip::Letter) => named,
                        None => false,
                    })
                }));
        !self.residents.is_empty() || (self.births.len() <= 1 && one_name && self.sexes.len() <= 1)
    }

    /// Positive evidence that `other` (a key no registry row vouches for) is this person:
    /// one birth date, which this person has too, kana keys and sexes that meet, and records
    /// that agree among themselves ([`Self::consistent`]). A key without a birth date, or
    /// with two (two people filed under one number), is not.
    pub fn confirms(&self, other: &PersonFacts) -> bool {
        other.births.len() == 1
            && self.births.is_superset(&other.births)
            && other.consistent()
            && self.agrees(other)
    }

    /// Of the person keys an exact 宛名番号 `atena` reaches (key → its facts), those linked
    /// to *another* registry resident than the one whose 宛名番号 it is, when one key is
    /// that resident's: such a key is reached only through a row of its own that carries
    /// the number (a twin's dose typed under the other twin's 宛名番号, linked to its own
    /// person by name), so it is not the person asked for — a lookup answers the resident
    /// alone and an erase takes the resident alone (naming the other in `persons_left`).
    /// Empty when no key is that resident's.
    pub fn other_residents<'a>(
        atena: &str,
        keys: impl IntoIterator<Item = (&'a str, &'a PersonFacts)>,
    ) -> BTreeSet<&'a str> {
        let keys: Vec<(&str, &PersonFacts)> = keys.into_iter().collect();
        if !keys.iter().any(|(_, f)| f.residents.contains(atena)) {
            return BTreeSet::new();
        }
        keys.into_iter()
            .filter(|(_, f)| !f.residents.is_empty() && !f.residents.contains(atena))
            .map(|(k, _)| k)
            .collect()
    }

    /// Whether the person keys of `all`, reached by one identifier, are one person on
    /// positive evidence: every key's records agree among themselves
    /// ([`Self::consistent`]); several keys must also agree pairwise ([`Self::agrees`])
    /// and hold one birth date between them, which every key that no registry row vouches
    /// for carries itself — a key without a birth date is not taken for anyone (missing
    /// facts are not agreement), nor are keys whose birth dates differ.
    pub fn one_person<'a>(all: impl IntoIterator<Item = &'a PersonFacts>) -> bool {
        let all: Vec<&PersonFacts> = all.into_iter().collect();
        if !all.iter().all(|f| f.consistent()) {
            return false;
        }
        if all.len() <= 1 {
            return true;
        }
        let births: BTreeSet<i32> = all.iter().flat_map(|f| f.births.iter().copied()).collect();
        births.len() == 1
            && all
                .iter()
                .all(|f| !f.residents.is_empty() || f.births.len() == 1)
            && all
                .iter()
                .enumerate()
                .all(|(i, a)| all[i + 1..].iter().all(|b| a.agrees(b)))
    }
}

/// How two different kana match keys one typing slip apart differ ([`slip`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slip {
    /// A long vowel written or not (ヨウコ/ヨーコ, オオタ/オータ: the match key drops ー,
    /// so the keys differ by the vowel kana ウ or オ after a kana of the same sound).
    Length,
    /// One kana replaced, dropped or added otherwise, or two neighbours swapped: also how
    /// twins' names differ (ユウキ/ユウト, リク/リクト).
    Letter,
}

/// How kana match keys `a` and `b` differ when they are one typing slip apart — the
/// tolerance record linkage gives names too; `None` when they are equal or further apart.
fn slip(a: &str, b: &str) -> Option<Slip> {
    if a == b || !crate::reconcile::link::within_one_edit(a, b) {
        return None;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (long, short) = if a.len() > b.len() { (a, b) } else { (b, a) };
    if long.len() == short.len() {
        // A long vowel written two ways (オオノ/オウノ, ケイコ/ケエコ): the kana that differs
        // lengthens the one before it either way.
        let at = long.iter().zip(&short).take_while(|(x, y)| x == y).count();
        let both = at > 0
            && at < long.len()
            && long[at + 1..] == short[at + 1..]
            && long_vowel(long[at - 1], long[at])
            && long_vowel(long[at - 1], short[at]);
        return Some(if both { Slip::Length } else { Slip::Letter });
    }
    // The kana added: the first that differs (an added kana equal to its neighbour, as
    // in オオタ/オタ, is the same slip wherever it is counted).
    let at = long.iter().zip(&short).take_while(|(x, y)| x == y).count();
    let lengthens = at > 0 && long_vowel(long[at - 1], long[at]);
    Some(if lengthens {
        Slip::Length
    } else {
        Slip::Letter
    })
}

/// Whether the vowel kana `extra` after `before` only lengthens `before`'s vowel (the ways
/// a long vowel is written out in kana: アア, イイ, ウウ, エイ/エエ, オウ/オオ).
fn long_vowel(before: char, extra: char) -> bool {
    const ROWS: [(char, &str); 5] = [
        ('ア', "アカガサザタダナハバパマヤラワ"),
        ('イ', "イキギシジチヂニヒビピミリ"),
        ('ウ', "ウクグスズツヅヌフブプムユルヴ"),
        ('エ', "エケゲセゼテデネヘベペメレ"),
        ('オ', "オコゴソゾトドノホボポモヨロヲ"),
    ];
    let Some(vowel) = ROWS
        .iter()
        .find(|(_, row)| row.contains(before))
        .map(|r| r.0)
    else {
        return false;
    };
    match extra {
        'ウ' => matches!(vowel, 'ウ' | 'オ'),
        'イ' => matches!(vowel, 'イ' | 'エ'),
        'ア' | 'エ' | 'オ' => vowel == extra,
        _ => false,
    }
}

/// Keyed hash (hex) of a tagged value under the archive's secret.
pub fn keyed_hash(secret: &[u8; 32], kind: &str, value: &str) -> String {
    keyed_hash_raw(secret, kind, value).to_hex().to_string()
}

/// [`keyed_hash`] as raw bytes.
pub fn keyed_hash_raw(secret: &[u8; 32], kind: &str, value: &str) -> blake3::Hash {
    keyed_hash_parts(secret, kind, &[value])
}

/// [`keyed_hash_raw`] of the value that is the concatenation of `parts`, without building
/// it (the writer hashes several identifiers of every record).
fn keyed_hash_parts(secret: &[u8; 32], kind: &str, parts: &[&str]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(secret);
    h.update(kind.as_bytes());
    h.update(b"\0");
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize()
}

/// The first four bytes of a person hash as a big-endian integer: what [`bucket_of`] takes
/// the bucket from (the hash's first eight hex digits).
pub fn hash_prefix(hash: &[u8; 32]) -> u32 {
    u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]])
}

/// Bucket of a person hash.
pub fn bucket_of(person_hash: &str, buckets: u16) -> u16 {
    let prefix = u32::from_str_radix(&person_hash[..8.min(person_hash.len())], 16).unwrap_or(0);
    (prefix % buckets.max(1) as u32) as u16
}

/// [`bucket_of`] of a raw person hash (the hex of `hash` gives the same bucket).
pub fn bucket_of_raw(hash: &[u8; 32], buckets: u16) -> u16 {
    (hash_prefix(hash) % u32::from(buckets.max(1))) as u16
}

/// The lookup identifiers of a record, as (kind, value) pairs.
pub fn identifiers(schema: &Schema, r: &Record) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for_each_identifier(schema, r, |kind, parts| out.push((kind, parts.concat())));
    out.sort();
    out.dedup();
    out
}

/// The raw keyed hashes of a record's lookup identifiers, as (kind, hash), each once:
/// [`identifiers`] hashed with [`keyed_hash_raw`], without building the values (the
/// archive writer's index takes this for every record).
pub fn identifier_hashes(
    schema: &Schema,
    r: &Record,
    secret: &[u8; 32],
) -> Vec<(&'static str, [u8; 32])> {
    let mut out = Vec::with_capacity(6);
    for_each_identifier(schema, r, |kind, parts| {
        out.push((kind, *keyed_hash_parts(secret, kind, parts).as_bytes()));
    });
    out.sort_unstable();
    out.dedup();
    out
}

/// Each lookup identifier of a record: its kind and its value in parts (the value is
/// their concatenation). One definition for [`identifiers`] and [`identifier_hashes`].
fn for_each_identifier(schema: &Schema, r: &Record, mut f: impl FnMut(&'static str, &[&str])) {
    let get = |name: &str| r.at(schema.idx(name)).as_str().filter(|s| !s.is_empty());
    for name in ["atena_number", "registry_atena_number"] {
        if let Some(a) = get(name) {
            f("atena", &[a]);
        }
    }
    if let Some(k) = get("kojin_bango") {
        f("kojin_bango", &[k]);
    }
    if let (Some(m), Some(t)) = (get("municipality_code"), get("ticket_number")) {
        f("ticket", &[m, ":", t]);
    }
    if let (Some(k), Some(b)) = (get("kana_name"), r.at(schema.idx("birth_date")).as_date()) {
        f(
            "kana_birth",
            &[&crate::normalise::kana_key(k), ":", &b.to_string()],
        );
    }
}

/// The partition of a record (pure): retention class, earliest possible expiry year,
/// bucket. Routine records expire 5 years after 接種日; COVID 特例臨時接種 records of a
/// deceased person no earlier than 5 years after the day after death; of anyone else,
/// no known expiry ("open").
pub fn partition_of(schema: &Schema, r: &Record, bucket: u16) -> PartitionKey {
    let class = r
        .at(schema.idx("retention_class"))
        .as_str()
        .unwrap_or("routine_5y")
        .to_string();
    let expiry = if class == "covid_special" {
        let deceased = r.at(schema.idx("registry_status")).as_str() == Some("deceased");
        match (deceased, r.at(schema.idx("registry_status_date")).as_date()) {
            (true, Some(d)) => (crate::record::civil_from_days(d + 1).0 + 5).to_string(),
            _ => "open".to_string(),
        }
    } else {
        match r.at(schema.idx("vaccination_date")).as_date() {
            Some(d) => (crate::record::civil_from_days(d).0 + 5).to_string(),
            None => "open".to_string(),
        }
    };
    PartitionKey {
        retention_class: class,
        expiry,
        bucket,
    }
}

/// Writer properties: zstd, fixed `created_by` so equal input gives equal bytes.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("vaxarc {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Writer properties of record partitions: [`writer_properties`] with row groups of
/// [`PARTITION_ROW_GROUP_ROWS`], data pages of [`LOOKUP_PAGE_ROWS`], min/max statistics
/// (row group and page) and a bloom filter on `person_hash` only.
pub fn partition_properties() -> WriterProperties {
    lookup_properties("person_hash", PARTITION_ROW_GROUP_ROWS, true)
}

/// [`partition_properties`] for these rows of the schema columns `indices`: a column that
/// no row fills is stored uncompressed (its pages hold only definition levels, a few bytes
/// that zstd would make larger), so its writer makes no zstd contexts — the Parquet writer
/// makes a compression and a decompression context per compressed column chunk, ≈ 2–7 %
/// of a migrate's CPU when every one of the ~60 columns of every partition had one
/// (docs/performance.md, "Session 23"). `given` is a column whose values come from
/// elsewhere ([`batch::HashColumn`]), always filled.
pub fn partition_properties_for(
    schema: &Schema,
    indices: &[usize],
    rows: &[&Record],
    given: Option<usize>,
) -> WriterProperties {
    let filled = rows
        .iter()
        .fold(crate::record::Fields::default(), |acc, r| {
            acc.union(r.filled())
        });
    let mut b = partition_properties().into_builder();
    for &i in indices {
        if !filled.has(i) && Some(i) != given {
            b = b.set_column_compression(
                parquet::schema::types::ColumnPath::from(schema.fields[i].name.as_str()),
                Compression::UNCOMPRESSED,
            );
        }
    }
    b.build()
}

/// Writer properties of an object read by lookups, sorted by `column`: row groups of at
/// most `row_group_rows`, pages of [`LOOKUP_PAGE_ROWS`] with an offset index (every
/// column) and min/max statistics of `column` only (row group and page: the column
/// index), optionally a bloom filter of `column`; no dictionary pages (nearly every
/// column is near-unique, and reading any page would decode the dictionary first).
pub fn lookup_properties(column: &str, row_group_rows: usize, bloom: bool) -> WriterProperties {
    use parquet::file::properties::EnabledStatistics;
    let col = parquet::schema::types::ColumnPath::from(column);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_data_page_row_count_limit(LOOKUP_PAGE_ROWS)
        .set_write_batch_size(LOOKUP_PAGE_ROWS)
        .set_created_by(format!("vaxarc {}", env!("CARGO_PKG_VERSION")))
        .set_dictionary_enabled(false)
        // Statistics only where a reader prunes on them: min/max of every column would
        // cost a lookup more to parse than it saves.
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(col.clone(), EnabledStatistics::Page);
    if bloom {
        b = b
            .set_column_bloom_filter_enabled(col.clone(), true)
            .set_column_bloom_filter_max_ndv(col.clone(), row_group_rows as u64)
            .set_column_bloom_filter_fpp(col, 0.01);
    }
    b.build()
}

/// Writes into the age stream while hashing the plaintext.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An encrypted object ready to store: ciphertext, its wrapped key, plaintext hash.
pub struct Sealed {
    /// Ciphertext of the Parquet file.
    pub ciphertext: Vec<u8>,
    /// The object's identity wrapped to the recipients.
    pub wrapped_key: Vec<u8>,
    /// blake3 of the Parquet plaintext.
    pub plaintext_blake3: String,
}

/// Write batches as Parquet straight into an age stream to a fresh identity, and wrap
/// that identity to `recipients`. No plaintext leaves memory.
pub fn seal_parquet(
    what: &str,
    batches: &[RecordBatch],
    schema: Arc<ArrowSchema>,
    recipients: &Recipients,
) -> Result<Sealed, ArchiveError> {
    seal_parquet_with(
        what,
        batches.iter().cloned().map(Ok),
        schema,
        recipients,
        writer_properties(),
    )
}

/// [`seal_parquet`] with other writer properties (partitions: [`partition_properties`]),
/// from batches made one at a time ([`record_batches`]): a partition's rows are never all
/// in Arrow form at once.
pub fn seal_parquet_with(
    what: &str,
    batches: impl IntoIterator<Item = Result<RecordBatch, ArchiveError>>,
    schema: Arc<ArrowSchema>,
    recipients: &Recipients,
    props: WriterProperties,
) -> Result<Sealed, ArchiveError> {
    let (secret, recipient) = crypto::fresh_identity();
    let (ciphertext, plaintext_blake3) = seal_parquet_to(what, batches, schema, &recipient, props)?;
    let wrapped_key = crypto::wrap_key(what, &secret, &recipients.0)?;
    Ok(Sealed {
        ciphertext,
        wrapped_key,
        plaintext_blake3,
    })
}

/// Rows of [`SEAL_BATCH_ROWS`] records at a time as batches of the schema columns
/// `indices` ([`batch::to_batch`]), each made when the Parquet writer asks for it; with
/// `given`, one field's values come from there (one per row) instead of the records.
pub fn record_batches<'a>(
    what: &'a str,
    schema: &'a Schema,
    indices: &'a [usize],
    arrow_schema: &'a Arc<ArrowSchema>,
    rows: &'a [&'a Record],
    given: Option<batch::HashColumn<'a>>,
) -> impl Iterator<Item = Result<RecordBatch, ArchiveError>> + 'a {
    rows.chunks(SEAL_BATCH_ROWS)
        .enumerate()
        .map(move |(k, chunk)| {
            let start = k * SEAL_BATCH_ROWS;
            let given = given.map(|g| batch::HashColumn {
                field: g.field,
                hashes: &g.hashes[start..start + chunk.len()],
            });
            batch::to_batch(schema, indices, arrow_schema.clone(), chunk, given).map_err(|e| {
                ArchiveError::Parquet {
                    what: what.to_string(),
                    message: e.to_string(),
                }
            })
        })
}

/// Write batches as Parquet straight into an age stream to `recipient`: the ciphertext
/// and the blake3 of the Parquet plaintext.
pub fn seal_parquet_to(
    what: &str,
    batches: impl IntoIterator<Item = Result<RecordBatch, ArchiveError>>,
    schema: Arc<ArrowSchema>,
    recipient: &age::x25519::Recipient,
    props: WriterProperties,
) -> Result<(Vec<u8>, String), ArchiveError> {
    let mut ciphertext = Vec::new();
    let age_writer =
        crypto::encrypt_writer(what, std::slice::from_ref(recipient), &mut ciphertext)?;
    let tee = HashingWriter {
        inner: age_writer,
        hasher: blake3::Hasher::new(),
    };
    let mut writer = ArrowWriter::try_new(tee, schema, Some(props)).map_err(pq(what))?;
    for b in batches {
        writer.write(&b?).map_err(pq(what))?;
    }
    let tee = writer.into_inner().map_err(pq(what))?;
    let plaintext_blake3 = tee.hasher.finalize().to_hex().to_string();
    // Without finish() the age stream would be silently truncated.
    tee.inner.finish().map_err(|e| CryptoError::Encrypt {
        what: what.into(),
        message: e.to_string(),
    })?;
    Ok((ciphertext, plaintext_blake3))
}

/// Decrypt an object with its wrapped key and read its Parquet batches.
pub fn open_parquet(
    what: &str,
    ciphertext: &[u8],
    wrapped_key: &[u8],
    identities: &[age::x25519::Identity],
) -> Result<Vec<RecordBatch>, ArchiveError> {
    let key = crypto::unwrap_key(what, identities, wrapped_key)?;
    let plain = crypto::decrypt(what, &[key], ciphertext)?;
    read_parquet(what, plain)
}

/// Read Parquet bytes, refusing footers that declare absurd sizes.
pub fn read_parquet(what: &str, plain: Vec<u8>) -> Result<Vec<RecordBatch>, ArchiveError> {
    let bytes = bytes::Bytes::from(plain);
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(pq(what))?;
    let declared: i64 = builder.metadata().file_metadata().num_rows();
    if !(0..=1_000_000_000).contains(&declared) {
        return Err(ArchiveError::Parquet {
            what: what.into(),
            message: "footer declares an impossible row count; refused".into(),
        });
    }
    let reader = builder.with_batch_size(8192).build().map_err(pq(what))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ArchiveError::Parquet {
            what: what.into(),
            message: e.to_string(),
        })
}

/// The secret key of the keyed hashes (person hash, bucket, index), derived from the
/// pipeline text and the blake3 of every source file's bytes (in pipeline order): equal
/// inputs give equal plaintext (deterministic archives), while anyone without the complete
/// source data cannot compute it. It is known before any record is read, so records can be
/// routed to their bucket as they are reconciled. Stored wrapped to the custodians
/// ([`INDEX_SECRET`]); the source hashes are never written anywhere (with the pipeline
/// text, which the manifest holds, they would give the secret away).
pub fn derive_index_secret(pipeline_toml: &str, source_blake3: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("vaxarc index secret v2");
    h.update(&(pipeline_toml.len() as u64).to_le_bytes());
    h.update(pipeline_toml.as_bytes());
    for source in source_blake3 {
        h.update(source);
    }
    *h.finalize().as_bytes()
}

fn hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// Id of the partition `key` written in `generation` (16 hex digits): a new generation
/// (purge, erase) gives a rewritten partition a new id, hence new object names.
pub fn partition_id(archive_id: &str, key: &PartitionKey, generation: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(archive_id.as_bytes());
    h.update(
        format!(
            "\0{}\0{}\0{}\0{}",
            key.retention_class, key.expiry, key.bucket, generation
        )
        .as_bytes(),
    );
    h.finalize().to_hex()[..16].to_string()
}

/// Object path of a record partition.
pub fn partition_path(key: &PartitionKey, id: &str) -> String {
    format!(
        "data/class={}/expiry={}/bucket={:02}/{}.parquet.age",
        key.retention_class, key.expiry, key.bucket, id
    )
}

/// Objects a fresh migrate may find left over by an interrupted earlier run. Not `audit/`:
/// a migration appends to the audit log only after its commit, so audit entries without a
/// manifest mean a committed archive whose manifest was lost ([`prepare_new`] refuses it).
pub const STAGING_PREFIXES: &[&str] = &[
    "data/",
    "vault/",
    "keys/",
    "index/",
    "quarantine/",
    "registry/",
    "review/",
    manifest::SIGNATURE,
];

/// Objects only a committed archive has: the audit log (appended after the commit), and
/// what purge, erase and rekey write to one.
const COMMITTED_PREFIXES: &[&str] = &["audit/", "history/", "certificates/"];

/// Prepare an empty location for a new archive: refuse an existing archive; remove the
/// ciphertext objects an interrupted run left (they were never committed); refuse
/// anything else.
pub fn prepare_new(store: &Store) -> Result<u64, ArchiveError> {
    if store.exists(manifest::MANIFEST)? {
        // A migrate killed right after its commit (between the manifest's link into place
        // and the removal of its temporary file) left that file, and `verify` fails on it
        // until it goes: the rerun the runbook asks for removes it (the migrate lock is
        // held), then refuses — the archive is complete.
        let removed = store.remove_staging_leftovers()?.len();
        let cleaned = if removed > 0 {
            format!(" (removed {removed} temporary file(s) of a write that was killed)")
        } else {
            String::new()
        };
        return Err(ArchiveError::State(format!(
            "`{}` already holds an archive (MANIFEST.json exists){cleaned}; migrate writes new archives only — a migrate into it that was interrupted after its commit is complete",
            store.location()
        )));
    }
    // The migration's own lock (taken before this) is neither a leftover nor foreign.
    let objects: Vec<_> = store
        .list()?
        .into_iter()
        .filter(|o| o.path != lock::LOCK)
        .collect();
    if let Some(committed) = objects
        .iter()
        .find(|o| COMMITTED_PREFIXES.iter().any(|p| o.path.starts_with(p)))
    {
        return Err(ArchiveError::State(format!(
            "`{}` holds objects of a committed archive (found `{}`) but no MANIFEST.json: its manifest was lost or removed; migrate refuses to overwrite it",
            store.location(),
            committed.path
        )));
    }
    if let Some(foreign) = objects
        .iter()
        .find(|o| !STAGING_PREFIXES.iter().any(|p| o.path.starts_with(p)))
    {
        return Err(ArchiveError::State(format!(
            "`{}` is not empty and not an interrupted vaxarc archive (found `{}`); choose an empty folder",
            store.location(),
            foreign.path
        )));
    }
    // Every version: on a versioned bucket a plain delete would keep the uncommitted
    // ciphertexts and their wrapped keys readable as old versions, out of reach of purge.
    for o in &objects {
        store.delete_all_versions(&o.path)?;
    }
    // And temporary files of writes the killed run did not finish.
    let staged = store.remove_staging_leftovers()?.len();
    Ok((objects.len() + staged) as u64)
}

/// A sealed partition and its objects: (path, role, bytes).
type SealedPartition = (Partition, Vec<(String, String, Vec<u8>)>);

/// Progress of a write.
pub type OnObject<'a> = &'a (dyn Fn(u64) + Sync);

/// Write a new archive and commit it (manifest last, conditional create): all records
/// at once ([`Writer`] for records that come a person bucket at a time).
pub fn write_new(
    store: &Store,
    input: NewArchive<'_>,
    keys: &WriteKeys,
    on_object: OnObject<'_>,
) -> Result<Manifest, ArchiveError> {
    let mut writer = Writer::new(
        store,
        input.schema,
        keys,
        input.index_secret,
        input.buckets,
        on_object,
    );
    writer.add(input.records)?;
    writer.finish(input.rest)
}

/// A new archive's generation.
const GENERATION: u64 = 1;

type Distinct = std::collections::HashSet<index::Compact, foldhash::fast::RandomState>;

/// A [`Rest`] for tests: no quarantine, accounting or pipeline; municipality 131091,
/// created 2026-01-01.
#[cfg(test)]
pub(crate) fn test_rest(review: Vec<ReviewRow>) -> Rest {
    Rest {
        quarantine: vec![],
        review,
        accounting: vec![],
        reconciliation: serde_json::Value::Null,
        pipeline_toml: String::new(),
        municipality_code: "131091".into(),
        created: "2026-01-01T00:00:00Z".into(),
        resident_births: Vec::new(),
    }
}

/// One row of the review list: a record reconciliation could not link with confidence,
/// and a registry resident it may belong to.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewRow {
    /// The record's id.
    pub record_id: String,
    /// The candidate's registry 宛名番号 (personal data).
    pub candidate_atena_number: String,
    /// The linkage score.
    pub score: f64,
    /// The record's person hash ([`person_hash`], hex): an erase of the candidate names
    /// the record's key among the keys it leaves (`persons_left`).
    pub person_hash: String,
}

/// Everything of a new archive besides its records, given to [`Writer::finish`].
pub struct Rest {
    /// Quarantined rows.
    pub quarantine: Vec<QuarantineEntry>,
    /// Review list: one row per (record, candidate registry 宛名番号).
    pub review: Vec<ReviewRow>,
    /// Per-source accounting.
    pub accounting: Vec<crate::ingest::FileAccounting>,
    /// Reconciliation statistics.
    pub reconciliation: serde_json::Value,
    /// Pipeline text.
    pub pipeline_toml: String,
    /// Municipality code.
    pub municipality_code: String,
    /// RFC 3339 UTC time of the run (from the shell).
    pub created: String,
    /// Residents of the registry extract by birth date (days since 1970-01-01, count):
    /// aggregates only, for the report's 未接種者数; stored encrypted.
    pub resident_births: Vec<(i32, u64)>,
}

/// A new archive written a set of records at a time: each [`Writer::add`] seals and
/// stores the partitions of records that hold every record of each person bucket they
/// touch (all records, or whole buckets), so only one such set is in memory; the index
/// entries are kept (distinct) until [`Writer::finish`] seals the index and commits.
/// Nothing is committed before `finish`: an interrupted or failed writer leaves objects
/// that the next migrate removes.
pub struct Writer<'a> {
    store: &'a Store,
    schema: &'a Schema,
    keys: &'a WriteKeys,
    on_object: OnObject<'a>,
    archive_id: String,
    secret: [u8; 32],
    buckets: u16,
    /// Index rows of the records and persons added so far: distinct within each `add`
    /// (each holds whole persons, so rows of different adds never repeat one another);
    /// `add_persons` rows may repeat them (sealing keeps each row once).
    index: Vec<index::Compact>,
    /// Where the index rows go instead, by [`INDEX_GROUPS`] group of their key hash
    /// ([`Writer::spill_index`]).
    index_spill: Option<crate::spill::Spill>,
    /// Partitions written so far: a second `add` with records of one of them would write
    /// its object again under the same name.
    written: std::collections::BTreeSet<PartitionKey>,
    partitions: Vec<Partition>,
    files: Vec<FileEntry>,
    records: u64,
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("archive_id", &self.archive_id)
            .field("buckets", &self.buckets)
            .field("partitions", &self.partitions.len())
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

/// A partition's key, its rows in order, and their person hashes.
type PartitionRows<'r> = (PartitionKey, Vec<&'r Record>, Vec<[u8; 32]>);

impl<'a> Writer<'a> {
    /// A writer of a new archive (fresh random id) with `buckets` person buckets.
    pub fn new(
        store: &'a Store,
        schema: &'a Schema,
        keys: &'a WriteKeys,
        index_secret: [u8; 32],
        buckets: u16,
        on_object: OnObject<'a>,
    ) -> Writer<'a> {
        Writer {
            store,
            schema,
            keys,
            on_object,
            archive_id: hex32(&random_bytes::<32>())[..32].to_string(),
            secret: index_secret,
            buckets: buckets.max(1),
            index: Vec::new(),
            index_spill: None,
            written: Default::default(),
            partitions: Vec::new(),
            files: Vec::new(),
            records: 0,
        }
    }

    /// Keep the index rows in an encrypted spill ([`crate::spill`]) in a new folder under
    /// `parent` (the system's temporary folder if `None`) instead of in memory; `finish`
    /// seals the index a group of shards at a time. The archive is the same. A streaming
    /// migrate does this: the rows are some 90 bytes per identifier and person, the
    /// largest thing a writer would otherwise keep (about 300 MB at 5M records).
    ///
    /// # Panics
    /// If records were added already.
    pub fn spill_index(&mut self, parent: Option<&std::path::Path>) -> Result<(), ArchiveError> {
        assert!(
            self.index.is_empty() && self.records == 0,
            "spill_index comes before the first add"
        );
        self.index_spill = Some(crate::spill::Spill::new(parent, INDEX_GROUPS)?);
        Ok(())
    }

    /// Index the identifiers of `persons` — slim records that hold a person key and
    /// identifiers but are no archived records (`reconcile::Linker::linked_persons`:
    /// what the registry and the VRS person list hold for the persons linked records
    /// reached) — under the person hash their key gives, which is their records'. Rows the
    /// records' own identifiers give too are kept once. Writes no partition.
    pub fn add_persons(&mut self, persons: Vec<Record>) -> Result<(), ArchiveError> {
        let (schema, secret, buckets) = (self.schema, &self.secret, self.buckets);
        let entries: Vec<index::Compact> = persons
            .par_iter()
            .flat_map_iter(|r| {
                let person_hash = *person_hash(schema, r, secret).as_bytes();
                let bucket = bucket_of_raw(&person_hash, buckets);
                identifier_hashes(schema, r, secret)
                    .into_iter()
                    .map(move |(kind, key_hash)| index::Compact {
                        key_hash,
                        kind,
                        person_hash,
                        bucket,
                    })
            })
            .collect();
        persons.into_par_iter().for_each(drop);
        match &self.index_spill {
            Some(spill) => {
                let mut by_group: Vec<Vec<&index::Compact>> = vec![Vec::new(); INDEX_GROUPS];
                for e in &entries {
                    by_group[index::Row::shard(e, INDEX_GROUPS as u32) as usize].push(e);
                }
                by_group
                    .into_par_iter()
                    .enumerate()
                    .try_for_each(|(g, rows)| spill.push(g, rows))?;
            }
            None => self.index.extend(entries),
        }
        Ok(())
    }

    /// Seal and store the partitions of `records` (settled records in record order that
    /// hold every record of each person bucket they touch) and keep their index entries.
    pub fn add(&mut self, records: Vec<Record>) -> Result<(), ArchiveError> {
        let (store, schema, keys, on_object) = (self.store, self.schema, self.keys, self.on_object);
        let archive_id = &self.archive_id;
        let person_hash_idx = schema.idx("person_hash");
        // Person hash (kept beside the record, written into its partition's `person_hash`
        // column by `batch::to_batch`: storing it in the record rebuilt every record once
        // more), bucket, partition key and index entries per
        // record, in parallel (pure), a chunk of records at a time, in one pass (each pass over
        // millions of scattered records pays its cache misses again); grouped in record order,
        // so every partition lists its rows in the same order as before. Every (identifier,
        // person) pair: one identifier can fit several persons (twins share kana and birth
        // date; an unlinked record keeps its own person key). A set keeps only distinct
        // entries (a person's records repeat them), in the compact form (raw hashes, no
        // allocation); `index::seal` orders each shard.
        let mut groups: BTreeMap<PartitionKey, Vec<(&Record, [u8; 32])>> = BTreeMap::new();
        let mut distinct: Vec<Distinct> = (0..DISTINCT_SETS).map(|_| Distinct::default()).collect();
        // foldhash, not SipHash: the set's order is never used (each shard is sorted), and
        // SipHash over ~4 entries per record was a tenth of the write stage. The set is split
        // by key-hash prefix into DISTINCT_SETS disjoint sets filled in parallel (one serial
        // set was most of the stage's single-core time at 5M rows).
        for chunk in records.chunks(INDEX_CHUNK) {
            let per_record: Vec<(PartitionKey, [u8; 32], Vec<index::Compact>)> = chunk
                .par_iter()
                .map(|r| {
                    let person_hash = *person_hash(schema, r, &self.secret).as_bytes();
                    let bucket = bucket_of_raw(&person_hash, self.buckets);
                    let entries = identifier_hashes(schema, r, &self.secret)
                        .into_iter()
                        .map(|(kind, key_hash)| index::Compact {
                            key_hash,
                            kind,
                            person_hash,
                            bucket,
                        })
                        .collect();
                    (partition_of(schema, r, bucket), person_hash, entries)
                })
                .collect();
            let mut entries = Vec::with_capacity(per_record.len());
            for (r, (key, person_hash, e)) in chunk.iter().zip(per_record) {
                groups.entry(key).or_default().push((r, person_hash));
                entries.push(e);
            }
            distinct.par_iter_mut().enumerate().for_each(|(set, d)| {
                let mine = entries
                    .iter()
                    .flatten()
                    .filter(|e| index::Row::shard(*e, DISTINCT_SETS as u32) as usize == set);
                d.extend(mine.copied());
            });
        }
        match &self.index_spill {
            Some(spill) => distinct.into_par_iter().try_for_each(|d| {
                let mut by_group: Vec<Vec<&index::Compact>> = vec![Vec::new(); INDEX_GROUPS];
                for e in &d {
                    by_group[index::Row::shard(e, INDEX_GROUPS as u32) as usize].push(e);
                }
                by_group
                    .into_iter()
                    .enumerate()
                    .try_for_each(|(g, rows)| spill.push(g, rows))
            })?,
            None => {
                for d in distinct {
                    self.index.extend(d);
                }
            }
        }
        let plain_idx = schema.indices(|c| c != Class::NumberVault);
        let plain_schema = schema.arrow_schema(|c| c != Class::NumberVault);
        let vault_pos: Vec<usize> = schema.indices(|c| c == Class::NumberVault);
        let record_id_idx = schema.idx("record_id");
        let mut vault_idx = vec![record_id_idx];
        vault_idx.extend(&vault_pos);
        let vault_schema = schema.arrow_schema(|c| c == Class::NumberVault);
        let vault_schema = {
            let mut fields = vec![Arc::new(ArrowField::new(
                "record_id",
                DataType::Utf8,
                false,
            ))];
            fields.extend(vault_schema.fields().iter().cloned());
            Arc::new(ArrowSchema::new(fields))
        };

        let seal_partition = |key: &PartitionKey,
                              rows: &[&Record],
                              person_hashes: &[[u8; 32]]|
         -> Result<SealedPartition, ArchiveError> {
            let id = partition_id(archive_id, key, GENERATION);
            let path = partition_path(key, &id);
            let given = batch::HashColumn {
                field: person_hash_idx,
                hashes: person_hashes,
            };
            let data = seal_parquet_with(
                &path,
                record_batches(&path, schema, &plain_idx, &plain_schema, rows, Some(given)),
                plain_schema.clone(),
                &keys.custodians,
                partition_properties_for(schema, &plain_idx, rows, Some(person_hash_idx)),
            )?;
            let key_path = format!("keys/{id}.key.age");
            let mut objects = vec![
                (path.clone(), "partition".to_string(), data.ciphertext),
                (key_path.clone(), "key".to_string(), data.wrapped_key),
            ];
            let vault_rows: Vec<&Record> = rows
                .iter()
                .copied()
                .filter(|r| vault_pos.iter().any(|&i| !r.at(i).is_null()))
                .collect();
            let (mut vault_file, mut vault_key, mut vault_hash) = (None, None, None);
            if !vault_rows.is_empty() {
                let vpath = format!("vault/{id}.parquet.age");
                // One batch: the vault's writer (dictionary pages, pages cut by
                // size) gives other bytes for other cuts; its columns are few.
                let vb =
                    batch::to_batch(schema, &vault_idx, vault_schema.clone(), &vault_rows, None)
                        .map_err(|e| ArchiveError::Parquet {
                            what: vpath.clone(),
                            message: e.to_string(),
                        })?;
                let v = seal_parquet(&vpath, &[vb], vault_schema.clone(), &keys.vault)?;
                let vkey = format!("keys/{id}.vault.key.age");
                objects.push((vpath.clone(), "vault".into(), v.ciphertext));
                objects.push((vkey.clone(), "vault-key".into(), v.wrapped_key));
                vault_file = Some(vpath);
                vault_key = Some(vkey);
                vault_hash = Some(v.plaintext_blake3);
            }
            let partition = Partition {
                id,
                retention_class: key.retention_class.clone(),
                expiry: key.expiry.clone(),
                bucket: key.bucket,
                rows: rows.len() as u64,
                vault_rows: vault_rows.len() as u64,
                file: path,
                key: key_path,
                vault_file,
                vault_key,
                plaintext_blake3: data.plaintext_blake3,
                vault_plaintext_blake3: vault_hash,
            };
            Ok((partition, objects))
        };

        // Seal partitions in parallel; put workers store each partition's objects as soon
        // as it is sealed (puts fsync: several in flight overlap that wait with the sealing,
        // and a ciphertext is freed once stored instead of waiting for every partition).
        // Each partition sorted by person hash (stable: record order within a person), so
        // row-group statistics and bloom filters narrow a lookup to a row group or two.
        // The sort key holds the hash's first 32 hex digits inline (no pointer chase per
        // comparison); ties fall back to the whole hash, and the cached-key sort breaks equal
        // keys by position, so the order is exactly the stable sort by person hash.
        if let Some(again) = groups.keys().find(|k| self.written.contains(*k)) {
            return Err(ArchiveError::State(format!(
                "internal error: partition class={} expiry={} bucket={} was written by an earlier set of records; nothing was committed (report this as a bug)",
                again.retention_class, again.expiry, again.bucket
            )));
        }
        self.written.extend(groups.keys().cloned());
        // The raw hashes order as their hex does. Rows and their hashes are then split into
        // two lists, as `seal_partition` takes them.
        let keyed: Vec<PartitionRows<'_>> = groups
            .into_par_iter()
            .map(|(key, mut rows)| {
                rows.sort_by_key(|row| row.1);
                let (rows, hashes) = rows.into_iter().unzip();
                (key, rows, hashes)
            })
            .collect();
        // The largest partitions start first, so the pool does not end on one big partition
        // sealed alone; results are put back in key order below.
        let mut order: Vec<usize> = (0..keyed.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(keyed[i].1.len()));
        // Set by the first failed seal or put: partitions not started yet are skipped and the
        // index is not sealed (nothing will commit; at 20M rows the rest would be minutes).
        let (sealed, put_results) = with_put_workers(store, on_object, |tx, stop| {
            // None: skipped after a failure.
            let mut sealed: Vec<(usize, Option<Result<Partition, ArchiveError>>)> = order
                .par_iter()
                .with_max_len(1)
                .map(|&i| {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return (i, None);
                    }
                    let (key, rows, hashes) = &keyed[i];
                    let sealed = seal_partition(key, rows, hashes).map(|(partition, objects)| {
                        for object in objects {
                            // The workers never hang up before the sender is dropped.
                            let _ = tx.send(object);
                        }
                        partition
                    });
                    if sealed.is_err() {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    (i, Some(sealed))
                })
                .collect();
            sealed.sort_by_key(|(i, _)| *i);
            sealed
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Vec<Option<Result<Partition, ArchiveError>>>>()
        });
        drop(keyed);
        self.records += records.len() as u64;
        // Millions of records' frees, spread over the pool (serially this was seconds).
        records.into_par_iter().for_each(drop);

        // The first failure in partition order (a seal's, else a put's); skipped partitions
        // only follow a failure.
        for s in sealed.into_iter().flatten() {
            self.partitions.push(s?);
        }
        self.files.extend(put_results?);
        Ok(())
    }

    /// Seal the index, store the hash key, the quarantine and review lists and the registry
    /// summary, and commit the manifest.
    pub fn finish(mut self, rest: Rest) -> Result<Manifest, ArchiveError> {
        let (store, schema, keys, on_object) = (self.store, self.schema, self.keys, self.on_object);
        // Partitions in key order, whatever order the sets came in.
        self.partitions.sort_by(|a, b| {
            (&a.retention_class, &a.expiry, a.bucket).cmp(&(
                &b.retention_class,
                &b.expiry,
                b.bucket,
            ))
        });
        // The index shards and their wrapped identity.
        let index = std::mem::take(&mut self.index);
        let spilled = self.index_spill.take().map(|s| s.finish()).transpose()?;
        let rows = spilled
            .as_ref()
            .map_or(index.len() as u64, |s| s.records().iter().sum());
        let index_id = format!("{}-g{GENERATION}", &self.archive_id[..16]);
        let index_shards = index::shards_for(rows as usize);
        let (sealed, stored) = with_put_workers(store, on_object, |tx, _| {
            // The workers never hang up before the sender is dropped.
            let emit = |object| {
                let _ = tx.send(object);
            };
            match &spilled {
                Some(spilled) => index::seal_in_groups(
                    INDEX_GROUPS as u32,
                    &|g| Ok(spilled.take::<index::Compact>(g as usize)?),
                    index_shards,
                    &index_id,
                    &keys.custodians,
                    &emit,
                ),
                None => index::seal(&index, index_shards, &index_id, &keys.custodians, &emit),
            }
        });
        sealed?;
        drop(spilled);
        self.files.extend(stored?);
        drop(index);
        let mut files = std::mem::take(&mut self.files);
        let mut put = |path: String, role: String, data: Vec<u8>| -> Result<(), ArchiveError> {
            let entry = FileEntry::of(&path, role, &data);
            store.put(&path, data)?;
            files.push(entry);
            on_object(1);
            Ok(())
        };

        // The index hash key, wrapped to the custodians.
        let secret_text = age::secrecy::SecretString::from(hex32(&self.secret));
        let wrapped_secret = crypto::encrypt(
            INDEX_SECRET,
            &keys.custodians.0,
            format!(
                "{}\n",
                age::secrecy::ExposeSecret::expose_secret(&secret_text)
            )
            .as_bytes(),
        )?;
        put(
            INDEX_SECRET.to_string(),
            "index-secret".into(),
            wrapped_secret,
        )?;

        // Quarantine and review lists (personal data: encrypted like partitions).
        let (qb, qs) = quarantine_batch(&rest.quarantine);
        let sq = seal_parquet("quarantine", &[qb], qs, &keys.custodians)?;
        put(
            format!("quarantine/{index_id}.parquet.age"),
            "quarantine".into(),
            sq.ciphertext,
        )?;
        put(
            format!("keys/{index_id}.quarantine.key.age"),
            "quarantine-key".into(),
            sq.wrapped_key,
        )?;
        let (rb, rs) = review_batch(&rest.review);
        let sr = seal_parquet("review", &[rb], rs, &keys.custodians)?;
        put(
            format!("review/{index_id}.parquet.age"),
            "review".into(),
            sr.ciphertext,
        )?;
        put(
            format!("keys/{index_id}.review.key.age"),
            "review-key".into(),
            sr.wrapped_key,
        )?;

        // The registry summary (residents by birth date; no names or numbers), encrypted.
        let (gb, gs) = registry_summary_batch(&rest.resident_births);
        let sg = seal_parquet("registry summary", &[gb], gs, &keys.custodians)?;
        put(
            format!("registry/{index_id}.parquet.age"),
            "registry-summary".into(),
            sg.ciphertext,
        )?;
        put(
            format!("keys/{index_id}.registry.key.age"),
            "registry-key".into(),
            sg.wrapped_key,
        )?;

        files.sort_by(|a, b| a.path.cmp(&b.path));
        let totals = manifest::Totals {
            rows_read: rest.accounting.iter().map(|a| a.rows_read).sum(),
            records: self.records,
            merged: rest.accounting.iter().map(|a| a.records_merged).sum(),
            quarantined: rest.quarantine.len() as u64,
            review: rest
                .review
                .iter()
                .map(|r| &r.record_id)
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64,
        };
        let merkle_root = manifest::files_root(&files);
        let manifest = Manifest {
            format: manifest::FORMAT.into(),
            format_version: schema.format_version,
            archive_id: self.archive_id,
            generation: GENERATION,
            previous_root: None,
            created: rest.created,
            program: manifest::Program {
                name: "vaxarc".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            municipality_code: rest.municipality_code,
            custodians: keys.custodians.to_strings(),
            vault_recipients: keys.vault.to_strings(),
            signing_public_key: keys.signing_public.clone(),
            buckets: self.buckets,
            index_shards,
            schema_toml: crate::schema::RECORD_TOML.to_string(),
            pipeline_toml: rest.pipeline_toml,
            accounting: rest.accounting,
            reconciliation: rest.reconciliation,
            partitions: self.partitions,
            files,
            totals,
            merkle_root,
        };
        commit(store, &manifest, keys)?;
        Ok(manifest)
    }
}

/// Run `produce` with [`PUT_THREADS`] put workers storing every object it sends (at most
/// [`PUT_QUEUE`] waiting: the ciphertext in memory stays bounded, and puts wait on fsync
/// or the network while `produce` seals). After the first failed put, `stop` is set and
/// the rest is drained unstored (nothing will commit). Returns what `produce` returned and
/// the stored objects' file entries, or the first failed put.
fn with_put_workers<T>(
    store: &Store,
    on_object: OnObject<'_>,
    produce: impl FnOnce(
        &std::sync::mpsc::SyncSender<index::Object>,
        &std::sync::atomic::AtomicBool,
    ) -> T,
) -> (T, Result<Vec<FileEntry>, ArchiveError>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<index::Object>(PUT_QUEUE);
    let rx = std::sync::Mutex::new(rx);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let put_worker = || {
        let mut entries = Vec::new();
        let mut failed: Option<ArchiveError> = None;
        loop {
            let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok((path, role, data)) = next else { break };
            // After a failure, drain the queue without storing more (nothing commits).
            if failed.is_some() {
                continue;
            }
            let entry = FileEntry::of(&path, role, &data);
            match store.put(&path, data) {
                Ok(()) => {
                    entries.push(entry);
                    on_object(1);
                }
                Err(e) => {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    failed = Some(e.into());
                }
            }
        }
        (entries, failed)
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PUT_THREADS).map(|_| scope.spawn(put_worker)).collect();
        let out = produce(&tx, &stop);
        drop(tx);
        let mut entries = Vec::new();
        let mut failed = None;
        for w in workers {
            let (e, f) = w.join().expect("put worker panicked");
            entries.extend(e);
            failed = failed.or(f);
        }
        (out, failed.map_or(Ok(entries), Err))
    })
}

/// Sign and commit a manifest: signature first, then the manifest with a conditional
/// create — the single commit point. A crash before it leaves no manifest, so nothing
/// half-written can verify.
pub fn commit(store: &Store, manifest: &Manifest, keys: &WriteKeys) -> Result<(), ArchiveError> {
    let (text, sig) = sign_manifest(manifest, keys)?;
    store.put(manifest::SIGNATURE, sig.into_bytes())?;
    store.put_new(manifest::MANIFEST, text)?;
    Ok(())
}

/// The manifest's bytes and their minisign signature (trusted comment: archive id,
/// generation, Merkle root).
pub fn sign_manifest(
    manifest: &Manifest,
    keys: &WriteKeys,
) -> Result<(Vec<u8>, String), ArchiveError> {
    let text =
        serde_json::to_vec_pretty(manifest).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    let sig = sign_manifest_bytes(manifest, &text, &keys.signing)?;
    Ok((text, sig))
}

/// Commit a manifest that replaces the current one (rekey; later generations): the
/// signature first, then `MANIFEST.json` replaced atomically (staged, fsynced, renamed)
/// — the commit point. Sign with [`sign_manifest`]. The caller keeps copies of the old
/// and new manifest and signature under `history/` first, so a run killed between the
/// two puts can be rolled forward (see [`rekey::recover`]). [`commit`] stays the
/// create-only commit of a new archive.
pub fn commit_replace(store: &Store, text: &[u8], signature: &str) -> Result<(), ArchiveError> {
    let old = store.get(manifest::SIGNATURE).ok();
    store.put(manifest::SIGNATURE, signature.as_bytes().to_vec())?;
    if let Err(e) = store.put(manifest::MANIFEST, text.to_vec()) {
        // The manifest could not be replaced while this process lives (a full disk): the
        // old signature goes back, so the archive still verifies at its generation and a
        // rerun starts over (with its certificate) instead of rolling this commit forward.
        if let Some(old) = old {
            let _ = store.put(manifest::SIGNATURE, old);
        }
        return Err(e.into());
    }
    Ok(())
}

/// The `.minisig` text of a manifest's bytes, with the trusted comment [`commit`] uses.
pub fn sign_manifest_bytes(
    manifest: &Manifest,
    text: &[u8],
    signing: &minisign::SecretKey,
) -> Result<String, ArchiveError> {
    let comment = format!(
        "vaxarc manifest archive={} generation={} root={}",
        manifest.archive_id, manifest.generation, manifest.merkle_root
    );
    manifest::sign(signing, text, &comment)
        .map_err(|e| ArchiveError::State(format!("cannot sign the manifest: {e}")))
}

fn quarantine_batch(q: &[QuarantineEntry]) -> (RecordBatch, Arc<ArrowSchema>) {
    let schema = Arc::new(ArrowSchema::new(vec![
        ArrowField::new("source_file_id", DataType::Utf8, false),
        ArrowField::new("source_line", DataType::UInt64, false),
        ArrowField::new("dose", DataType::UInt16, true),
        ArrowField::new("reason", DataType::Utf8, false),
        ArrowField::new("field", DataType::Utf8, true),
        ArrowField::new("column", DataType::UInt32, true),
        ArrowField::new("raw", DataType::Binary, false),
        ArrowField::new("vaccination_date", DataType::Date32, true),
        ArrowField::new("vaccine_code", DataType::Utf8, true),
    ]));
    let mut f = StringBuilder::new();
    let mut l = UInt64Builder::new();
    let mut d = UInt16Builder::new();
    let mut r = StringBuilder::new();
    let mut fi = StringBuilder::new();
    let mut c = UInt32Builder::new();
    let mut raw = BinaryBuilder::new();
    let mut vd = arrow::array::Date32Builder::new();
    let mut vc = StringBuilder::new();
    for e in q {
        f.append_value(&e.file_id);
        l.append_value(e.line);
        d.append_option(e.dose);
        r.append_value(&e.reason);
        fi.append_option(e.field.as_deref());
        c.append_option(e.column);
        raw.append_value(&e.raw);
        vd.append_option(e.vaccination_date);
        vc.append_option(e.vaccine_code.as_deref());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(f.finish()),
        Arc::new(l.finish()),
        Arc::new(d.finish()),
        Arc::new(r.finish()),
        Arc::new(fi.finish()),
        Arc::new(c.finish()),
        Arc::new(raw.finish()),
        Arc::new(vd.finish()),
        Arc::new(vc.finish()),
    ];
    (
        RecordBatch::try_new(schema.clone(), cols).expect("quarantine columns match"),
        schema,
    )
}

/// Columns `birth_date` (date32) and `residents` (uint64).
fn registry_summary_batch(rows: &[(i32, u64)]) -> (RecordBatch, Arc<ArrowSchema>) {
    let schema = Arc::new(ArrowSchema::new(vec![
        ArrowField::new("birth_date", DataType::Date32, false),
        ArrowField::new("residents", DataType::UInt64, false),
    ]));
    let mut d = arrow::array::Date32Builder::new();
    let mut n = UInt64Builder::new();
    for (day, count) in rows {
        d.append_value(*day);
        n.append_value(*count);
    }
    let cols: Vec<ArrayRef> = vec![Arc::new(d.finish()), Arc::new(n.finish())];
    (
        RecordBatch::try_new(schema.clone(), cols).expect("registry summary columns match"),
        schema,
    )
}

fn review_batch(review: &[ReviewRow]) -> (RecordBatch, Arc<ArrowSchema>) {
    let schema = Arc::new(ArrowSchema::new(vec![
        ArrowField::new("record_id", DataType::Utf8, false),
        ArrowField::new("candidate_atena_number", DataType::Utf8, false),
        ArrowField::new("score", DataType::Float64, false),
        ArrowField::new("person_hash", DataType::Utf8, false),
    ]));
    let (mut a, mut b, mut c, mut d) = (
        StringBuilder::new(),
        StringBuilder::new(),
        Float64Builder::new(),
        StringBuilder::new(),
    );
    for r in review {
        a.append_value(&r.record_id);
        b.append_value(&r.candidate_atena_number);
        c.append_value(r.score);
        d.append_value(&r.person_hash);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(a.finish()),
        Arc::new(b.finish()),
        Arc::new(c.finish()),
        Arc::new(d.finish()),
    ];
    (
        RecordBatch::try_new(schema.clone(), cols).expect("review columns match"),
        schema,
    )
}

/// `history/<generation, 6 digits>/<name>`: where purge, erase and rekey keep each
/// generation's manifest and signature (and a staged commit).
pub fn history_path(generation: u64, name: &str) -> String {
    format!("history/{generation:06}/{name}")
}

/// `history/<generation>/pending.json.age`: what the purge or erase that wrote generation
/// `generation` decided, staged (encrypted to the custodians) before its commit and deleted
/// once its certificate is written — so that a run killed between the two is certified by
/// the next purge or erase (`purge::run`). Present for the current generation: that
/// generation has no certificate yet.
pub fn pending_path(generation: u64) -> String {
    history_path(generation, "pending.json.age")
}

/// Whether generation `generation` was committed by a purge or erase that was killed
/// before its certificate: its pending object is there and no certificate of that
/// generation (`certificates/<generation>-<kind>.json`) is. A pending object beside its
/// certificate is only not yet deleted (the next purge or erase deletes it).
pub fn uncertified(store: &Store, generation: u64) -> Result<bool, ArchiveError> {
    if !store.exists(&pending_path(generation))? {
        return Ok(false);
    }
    let prefix = format!("certificates/{generation:06}-");
    Ok(!store
        .list_under("certificates/")?
        .iter()
        .any(|o| o.path.starts_with(&prefix) && o.path.ends_with(".json")))
}

/// Complete a replacing commit (purge, erase, rekey) that was killed between writing the
/// new signature and the new manifest: the signature then matches the staged manifest in
/// `history/<generation + 1>/`, which is put in place. Returns whether it rolled forward;
/// refuses when the signature does not match and no staged commit explains it.
pub fn roll_forward_interrupted_commit(store: &Store) -> Result<bool, ArchiveError> {
    match read_signed_manifest(store)? {
        (_, _, Some(staged)) => {
            store.put(manifest::MANIFEST, staged)?;
            Ok(true)
        }
        (_, _, None) => Ok(false),
    }
}

/// A manifest whose signature checked, its bytes, and the staged manifest of a commit
/// interrupted between its two puts ([`read_signed_manifest`]).
pub type SignedManifest = (Manifest, Vec<u8>, Option<Vec<u8>>);

/// Read the manifest and check its signature under the manifest's own
/// `signing_public_key` (a pinned key is `vaxarc verify --pubkey`'s job). A commit
/// interrupted between its two puts leaves the next generation's signature over the
/// manifest staged in `history/<generation + 1>/`: the current manifest is then still the
/// committed state (nothing of it was destroyed yet), and the staged manifest is returned
/// third. Refuses any other mismatch: the archive is not as its signer left it.
pub fn read_signed_manifest(store: &Store) -> Result<SignedManifest, ArchiveError> {
    let (m, bytes) = read_manifest(store)?;
    let public = minisign::PublicKey::from_base64(m.signing_public_key.trim())
        .map_err(|e| ArchiveError::Manifest(format!("signing public key unusable: {e}")))?;
    let sig = String::from_utf8(store.get(manifest::SIGNATURE)?).unwrap_or_default();
    if manifest::verify_signature(&public, &bytes, &sig).is_ok() {
        return Ok((m, bytes, None));
    }
    let next = m.generation + 1;
    let staged = store.get(&history_path(next, manifest::MANIFEST)).ok();
    let staged_sig = store
        .get(&history_path(next, manifest::SIGNATURE))
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    match (staged, staged_sig) {
        (Some(text), Some(s)) if s == sig && manifest::verify_signature(&public, &text, &sig).is_ok() => {
            Ok((m, bytes, Some(text)))
        }
        _ => Err(ArchiveError::State(format!(
            "`{}` does not verify against `{}` and no interrupted commit explains it; refusing to use the archive (`vaxarc verify` names what differs)",
            manifest::SIGNATURE,
            manifest::MANIFEST
        ))),
    }
}

/// Read and parse the manifest (no signature check: see [`verify`]).
pub fn read_manifest(store: &Store) -> Result<(Manifest, Vec<u8>), ArchiveError> {
    let bytes = store.get(manifest::MANIFEST)?;
    let m = parse_manifest(&bytes)?;
    Ok((m, bytes))
}

/// Parse and check manifest bytes (no signature check): the format, and that every
/// listed path is a safe relative path. Errors give the line and column, never text.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ArchiveError> {
    if bytes.len() > 512 * 1024 * 1024 {
        return Err(ArchiveError::Manifest("larger than 512 MiB".into()));
    }
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
        ArchiveError::Manifest(format!(
            "line {}, column {}: {}",
            e.line(),
            e.column(),
            e.classify_name()
        ))
    })?;
    if m.format != manifest::FORMAT {
        return Err(ArchiveError::Manifest(
            "`format` is not vaxarc-archive".into(),
        ));
    }
    for f in &m.files {
        if !verify::safe_object_path(&f.path) {
            return Err(ArchiveError::Manifest(format!(
                "object path `{}` is not a safe relative path; refused",
                f.path.escape_default()
            )));
        }
    }
    Ok(m)
}

/// Decrypt one partition's records (plain columns; vault columns stay Null).
pub fn read_partition(
    store: &Store,
    schema: &Schema,
    p: &Partition,
    identities: &[age::x25519::Identity],
) -> Result<Vec<Record>, ArchiveError> {
    let ct = store.get(&p.file)?;
    let key = store.get(&p.key)?;
    let batches = open_parquet(&p.file, &ct, &key, identities)?;
    Ok(batches
        .iter()
        .flat_map(|b| batch::from_batch(schema, b))
        .collect())
}

/// A JSON error's category in words (its text may quote the input).
pub(crate) trait ClassifyName {
    /// The category.
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected structure",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the new manifest cannot be put (a full disk), the old signature is put back:
    /// the archive still verifies at its generation instead of holding a new signature
    /// over the old manifest.
    #[test]
    fn a_failed_manifest_replace_puts_the_old_signature_back() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().to_str().unwrap()).unwrap();
        store.put(manifest::SIGNATURE, b"old".to_vec()).unwrap();
        // A folder where the manifest goes: its put fails.
        std::fs::create_dir_all(d.path().join(manifest::MANIFEST).join("x")).unwrap();
        assert!(commit_replace(&store, b"{}", "new").is_err());
        assert_eq!(store.get(manifest::SIGNATURE).unwrap(), b"old".to_vec());
    }

    /// A fresh migrate removes what an interrupted run left (never committed), but refuses a
    /// folder holding what only a committed archive has — its manifest lost — and anything
    /// foreign, changing nothing.
    #[test]
    fn prepare_new_clears_leftovers_and_refuses_a_committed_archive_without_manifest() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().to_str().unwrap()).unwrap();
        store
            .put(
                "data/class=a/expiry=2030/bucket=00/x.parquet.age",
                b"c".to_vec(),
            )
            .unwrap();
        store.put("keys/x.key.age", b"k".to_vec()).unwrap();
        store.put(manifest::SIGNATURE, b"s".to_vec()).unwrap();
        assert_eq!(prepare_new(&store).unwrap(), 3);
        assert!(store.list().unwrap().is_empty());
        for committed in [
            "audit/log-00000000.jsonl",
            "history/000001/MANIFEST.json",
            "certificates/000002-purge.json",
        ] {
            store.put("keys/x.key.age", b"k".to_vec()).unwrap();
            store.put(committed, b"{}".to_vec()).unwrap();
            let e = prepare_new(&store).unwrap_err().to_string();
            assert!(
                e.contains("manifest was lost") && e.contains(committed),
                "{e}"
            );
            assert_eq!(store.list().unwrap().len(), 2, "nothing removed");
            store.delete_all_versions(committed).unwrap();
        }
        store.put("notes.txt", b"x".to_vec()).unwrap();
        let e = prepare_new(&store).unwrap_err().to_string();
        assert!(e.contains("not an interrupted vaxarc archive"), "{e}");
        // A committed archive whose manifest's temporary file a kill left: the rerun
        // removes that file and refuses (the archive is complete).
        store.delete_all_versions("notes.txt").unwrap();
        store.put(manifest::MANIFEST, b"{}".to_vec()).unwrap();
        std::fs::write(d.path().join("MANIFEST.json#1"), b"{}").unwrap();
        let e = prepare_new(&store).unwrap_err().to_string();
        assert!(
            e.contains("already holds an archive") && e.contains("removed 1"),
            "{e}"
        );
        assert!(store.staging_leftovers().unwrap().is_empty());
        assert!(store.exists(manifest::MANIFEST).unwrap());
    }

    /// Partitions and index shards are sealed a batch of [`SEAL_BATCH_ROWS`] at a time:
    /// their Parquet bytes must be the ones one batch of all rows gives (the plaintext
    /// hashes in every manifest), across row groups and a last short batch.
    #[test]
    fn sealing_in_batches_writes_the_bytes_of_one_batch() {
        use arrow::array::{Int64Array, StringArray};
        let n = PARTITION_ROW_GROUP_ROWS + 3 * SEAL_BATCH_ROWS + 77;
        let hashes: Vec<String> = (0..n).map(|i| format!("{:064x}", i * 7919)).collect();
        let texts: Vec<Option<String>> = (0..n)
            .map(|i| (i % 5 != 0).then(|| "名".repeat(i % 13) + &i.to_string()))
            .collect();
        let ints: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 3 != 0).then_some(i as i64 * 31))
            .collect();
        let schema = Arc::new(ArrowSchema::new(vec![
            ArrowField::new("person_hash", DataType::Utf8, false),
            ArrowField::new("name", DataType::Utf8, true),
            ArrowField::new("n", DataType::Int64, true),
        ]));
        let all = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(hashes)),
                Arc::new(StringArray::from(texts)),
                Arc::new(Int64Array::from(ints)),
            ],
        )
        .unwrap();
        let (_, recipient) = crypto::fresh_identity();
        let seal = |cut: usize| {
            let batches = (0..n)
                .step_by(cut)
                .map(|at| Ok(all.slice(at, cut.min(n - at))));
            seal_parquet_to(
                "t",
                batches,
                schema.clone(),
                &recipient,
                partition_properties(),
            )
            .unwrap()
            .1
        };
        let whole = seal(n);
        assert_eq!(seal(SEAL_BATCH_ROWS), whole);
        assert_eq!(seal(LOOKUP_PAGE_ROWS), whole);
        // The comparison can tell: cuts inside a page give other pages.
        assert_ne!(seal(LOOKUP_PAGE_ROWS + 100), whole);
    }

    /// A partition column no row fills is stored uncompressed, a filled one (and the given
    /// `person_hash`) with zstd; every value reads back.
    #[test]
    fn columns_no_row_fills_are_stored_uncompressed() {
        use crate::record::Value;
        use crate::schema::FieldType;
        use arrow::array::Array;
        use parquet::file::reader::FileReader;
        let schema = Schema::embedded();
        let (rid, kana, ph) = (
            schema.idx("record_id"),
            schema.idx("kana_name"),
            schema.idx("person_hash"),
        );
        let rows: Vec<Record> = (0..3)
            .map(|k| {
                let mut v: Vec<Value> = schema
                    .fields
                    .iter()
                    .map(|f| match (f.nullable, f.field_type) {
                        (true, _) => Value::Null,
                        (false, FieldType::Utf8) => Value::Str("x".into()),
                        (false, FieldType::Date32) => Value::Date(0),
                        (false, FieldType::Bool) => Value::Bool(true),
                        (false, FieldType::Float64) => Value::Float(0.0),
                        (false, FieldType::TimestampS) => Value::Timestamp(0),
                        (false, _) => Value::Int(1),
                    })
                    .collect();
                v[rid] = Value::Str(format!("r{k}").into());
                if k == 1 {
                    v[kana] = Value::Str("ヤマダ タロウ".into());
                }
                Record::from(v)
            })
            .collect();
        let refs: Vec<&Record> = rows.iter().collect();
        let idx = schema.indices(|c| c != Class::NumberVault);
        let arrow_schema = schema.arrow_schema(|c| c != Class::NumberVault);
        let hashes = [[7u8; 32]; 3];
        let given = batch::HashColumn {
            field: ph,
            hashes: &hashes,
        };
        let props = partition_properties_for(schema, &idx, &refs, Some(ph));
        let id = age::x25519::Identity::generate();
        let (ct, _) = seal_parquet_to(
            "t",
            record_batches("t", schema, &idx, &arrow_schema, &refs, Some(given)),
            arrow_schema.clone(),
            &id.to_public(),
            props,
        )
        .unwrap();
        let plain = crypto::decrypt("t", &[id], &ct).unwrap();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            bytes::Bytes::from(plain.clone()),
        )
        .unwrap();
        let group = reader.metadata().row_group(0);
        let codec = |name: &str| {
            (0..group.num_columns())
                .map(|c| group.column(c))
                .find(|c| c.column_path().string() == name)
                .unwrap()
                .compression()
        };
        assert!(matches!(codec("record_id"), Compression::ZSTD(_)));
        assert!(matches!(codec("kana_name"), Compression::ZSTD(_)));
        assert!(matches!(codec("person_hash"), Compression::ZSTD(_)));
        let empty = schema
            .fields
            .iter()
            .enumerate()
            .find(|&(i, f)| idx.contains(&i) && ![rid, kana, ph].contains(&i) && f.nullable)
            .unwrap()
            .1
            .name
            .clone();
        assert_eq!(codec(&empty), Compression::UNCOMPRESSED);
        let back = read_parquet("t", plain).unwrap();
        assert_eq!(back[0].num_rows(), 3);
        let kana_col = back[0]
            .column_by_name("kana_name")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(kana_col.value(1), "ヤマダ タロウ");
        assert_eq!(kana_col.null_count(), 2);
    }

    #[test]
    fn default_buckets_grow_with_the_archive() {
        assert_eq!(default_buckets(0), DEFAULT_BUCKETS);
        assert_eq!(default_buckets(4_176_021), 16); // the 5M-row benchmark set
        assert_eq!(default_buckets(16 * RECORDS_PER_BUCKET), 16);
        assert_eq!(default_buckets(16 * RECORDS_PER_BUCKET + 1), 32);
        assert_eq!(default_buckets(16_672_224), 16); // the 20M-row benchmark set
        assert_eq!(default_buckets(40_000_000), 64);
        assert_eq!(default_buckets(u64::MAX), MAX_DEFAULT_BUCKETS);
    }

    /// `person_hash` is the keyed hash of `person_key`, whichever identifier makes the key.
    #[test]
    fn person_hash_is_the_keyed_hash_of_the_person_key() {
        let schema = Schema::embedded();
        let secret = [7u8; 32];
        let record = |fields: &[(&str, &str)]| {
            let mut values = vec![crate::record::Value::Null; schema.len()];
            for (name, v) in fields {
                values[schema.idx(name)] = crate::record::Value::Str((*v).into());
            }
            Record::from(values)
        };
        let all = [
            ("registry_atena_number", "1000001"),
            ("kojin_bango", "123456789018"),
            ("municipality_code", "131091"),
            ("ticket_number", "0000012345"),
            ("atena_number", "2000002"),
            ("record_id", "0123456789abcdef0123456789abcdef"),
        ];
        let mut keys = std::collections::BTreeSet::new();
        for skip in 0..all.len() {
            let r = record(&all[skip..]);
            let key = person_key(schema, &r);
            keys.insert(key.clone());
            let hash = person_hash(schema, &r, &secret);
            assert_eq!(hash, keyed_hash_raw(&secret, "person", &key));
            for buckets in [1, 16, 32, 4096] {
                assert_eq!(
                    bucket_of_raw(hash.as_bytes(), buckets),
                    bucket_of(hash.to_hex().as_str(), buckets)
                );
            }
        }
        // Six records, five distinct keys (without its municipality code a ticket number
        // makes no key: that record falls to its 宛名番号): each branch taken.
        assert_eq!(keys.len(), 5);
        assert!(["R:", "K:", "T:", "A:", "I:"]
            .iter()
            .all(|tag| keys.iter().any(|k| k.starts_with(tag))));
    }

    /// An unlinked record's person key carries its birth date: two people the registry does
    /// not know, filed under one 宛名番号, are two keys; a linked record's key is the
    /// resident's whatever birth date the record gives.
    #[test]
    fn unlinked_person_keys_carry_the_birth_date() {
        let schema = Schema::embedded();
        let record = |fields: &[(&str, &str)], birth: Option<i32>| {
            let mut values = vec![crate::record::Value::Null; schema.len()];
            for (name, v) in fields {
                values[schema.idx(name)] = crate::record::Value::Str((*v).into());
            }
            if let Some(b) = birth {
                values[schema.idx("birth_date")] = crate::record::Value::Date(b);
            }
            Record::from(values)
        };
        let a = [("atena_number", "2000002")];
        let key = |fields: &[(&str, &str)], birth| person_key(schema, &record(fields, birth));
        assert_eq!(key(&a, Some(7395)), "A:2000002|1990-04-01");
        assert_eq!(key(&a, None), "A:2000002|");
        assert_ne!(key(&a, Some(7396)), key(&a, Some(7397)));
        let k = [("kojin_bango", "123456789018"), ("atena_number", "2000002")];
        assert_eq!(key(&k, Some(0)), "K:123456789018|1970-01-01");
        let r = [
            ("registry_atena_number", "1000001"),
            ("atena_number", "2000002"),
        ];
        assert_eq!(key(&r, Some(7396)), "R:1000001");
        assert_eq!(key(&r, Some(7396)), key(&r, None));
    }

    /// Keys reached by one identifier are one person only on positive evidence.
    #[test]
    fn person_facts_need_one_birth_date_and_agreement() {
        let facts =
            |resident: Option<&str>, births: &[i32], kana: &[&str], sex: &[&str]| PersonFacts {
                residents: resident.into_iter().map(str::to_string).collect(),
                births: births.iter().copied().collect(),
                kana: kana.iter().map(|k| k.to_string()).collect(),
                kanji: BTreeSet::new(),
                sexes: sex.iter().map(|k| k.to_string()).collect(),
                kana_without_kanji: !kana.is_empty(),
            };
        let resident = facts(Some("1"), &[10], &["ヤマダタロウ"], &["M"]);
        let copy = facts(None, &[10], &["ヤマダタロウ"], &["M"]);
        let one = |all: &[&PersonFacts]| PersonFacts::one_person(all.iter().copied());
        assert!(one(&[]) && one(&[&facts(Some("1"), &[1, 2], &["A", "B"], &["M", "F"])]));
        // One unlinked key holding two birth dates, kana names or sexes: two people under
        // one number (or one typed two ways) — not shown to be one person, nor joined.
        for two in [
            facts(None, &[1, 2], &[], &[]),
            facts(None, &[10], &["ヤマダタロウ", "ヤマダハナコ"], &[]),
            facts(None, &[10], &[], &["M", "F"]),
        ] {
            assert!(!one(&[&two]));
            assert!(!resident.confirms(&two));
        }
        assert!(one(&[&copy]));
        // A kana dropped (ヨウコ/ヨーコ: the match key of タロー is タロ) is one name, within a
        // key and across keys.
        let slip = facts(None, &[10], &["ヤマダタロウ", "ヤマダタロ"], &["M"]);
        assert!(one(&[&slip]) && one(&[&resident, &slip]) && resident.confirms(&slip));
        let other = facts(None, &[10], &["ヤマダタロ"], &["M"]);
        assert!(one(&[&resident, &other]) && resident.confirms(&other));
        // Unless the kanji names say two people: twins one kana apart (ユウキ/ユウト) have
        // other kanji (優希/優斗) — across keys and within one; kana equal, kanji aside.
        let named = |kana: &str, kanji: &str| {
            let mut f = facts(None, &[10], &[kana], &["M"]);
            f.kanji.insert(kanji.to_string());
            f
        };
        let (yuki, yuto) = (
            named("ヤマダユウキ", "山田優希"),
            named("ヤマダユウト", "山田優斗"),
        );
        assert!(!one(&[&yuki, &yuto]) && !yuki.confirms(&yuto));
        let mut both = yuki.clone();
        both.add(&yuto);
        assert!(!one(&[&both]));
        assert!(one(&[&yuki, &named("ヤマダユウト", "山田優希")]));
        assert!(one(&[&yuki, &named("ヤマダユウキ", "山田由紀")]));
        // A kana replaced is how twins' names differ: without a kanji name both sides
        // carry, not one person — across keys, and within one key unless every record
        // with a kana name carries the one kanji name (then it is a typo of that name).
        let bare = |kana: &[&str]| facts(None, &[10], kana, &["M"]);
        assert!(!one(&[&yuki, &bare(&["ヤマダユウト"])]));
        assert!(!one(&[&bare(&["ヤマダユウキ"]), &bare(&["ヤマダユウト"])]));
        assert!(!one(&[&bare(&["ヤマダユウキ", "ヤマダユウト"])]));
        let mut typed_twice = bare(&["ヤマダユウキ", "ヤマダユウト"]);
        typed_twice.kanji.insert("山田優希".into());
        assert!(
            !one(&[&typed_twice]),
            "a record with a kana name and no kanji one"
        );
        typed_twice.kana_without_kanji = false;
        assert!(one(&[&typed_twice]));
        // A long vowel written or not stays one name without kanji names (the match key
        // of ユーキ is ユキ, of オータ オタ); another kana added does not (リク/リクト).
        assert!(one(&[&bare(&["ヤマダユウキ"]), &bare(&["ヤマダユキ"])]));
        assert!(one(&[&bare(&["オオタヨウコ"]), &bare(&["オタヨウコ"])]));
        assert!(one(&[&bare(&["サトウケイ"]), &bare(&["サトウケ"])]));
        assert!(!one(&[&bare(&["サトウリク"]), &bare(&["サトウリクト"])]));
        assert!(!one(&[&bare(&["サトウリク", "サトウリクト"])]));
        assert!(
            !one(&[&bare(&["サトウカイ"]), &bare(&["サトウカ"])]),
            "カ+イ is no long vowel"
        );
        assert_eq!(super::slip("ヨウコ", "ヨコ"), Some(Slip::Length));
        assert_eq!(super::slip("ヨコ", "ヨウコ"), Some(Slip::Length));
        assert_eq!(super::slip("ユウキ", "ユウト"), Some(Slip::Letter));
        assert_eq!(
            super::slip("オオノタロウ", "オウノタロウ"),
            Some(Slip::Length)
        );
        assert_eq!(super::slip("コウノ", "コオノ"), Some(Slip::Length));
        assert_eq!(
            super::slip("カイ", "カウ"),
            Some(Slip::Letter),
            "カ+ウ is no long vowel"
        );
        assert!(one(&[&bare(&["オオノタロウ"]), &bare(&["オウノタロウ"])]));
        assert_eq!(super::slip("リクト", "リク"), Some(Slip::Letter));
        assert_eq!(
            super::slip("ウキ", "キ"),
            Some(Slip::Letter),
            "nothing before the vowel"
        );
        assert_eq!(super::slip("ヨコ", "ヨコ"), None);
        assert!(one(&[&resident, &copy]));
        assert!(one(&[&copy, &facts(None, &[10], &[], &[])]));
        // No birth date, two, or a different one: not one person.
        assert!(!one(&[
            &resident,
            &facts(None, &[], &["ヤマダタロウ"], &["M"])
        ]));
        assert!(!one(&[&resident, &facts(None, &[10, 11], &[], &[])]));
        assert!(!one(&[&copy, &facts(None, &[11], &[], &[])]));
        // A resident without birth dates and an unlinked key: no date to share.
        assert!(!one(&[
            &facts(Some("1"), &[], &[], &[]),
            &facts(None, &[], &[], &[])
        ]));
        // Two residents, or names or sexes that differ.
        assert!(!one(&[&resident, &facts(Some("2"), &[10], &[], &[])]));
        assert!(!one(&[
            &resident,
            &facts(None, &[10], &["ヤマダハナコ"], &[])
        ]));
        assert!(!one(&[&resident, &facts(None, &[10], &[], &["F"])]));
        // `confirms`: the same evidence, one key against the person.
        assert!(resident.confirms(&copy));
        assert!(!resident.confirms(&facts(None, &[], &[], &[])));
        assert!(!resident.confirms(&facts(None, &[10, 11], &[], &[])));
    }

    /// The index the writer builds from `identifier_hashes` is the one a lookup (and the
    /// post-erasure check) finds by hashing `identifiers`' values.
    #[test]
    fn identifier_hashes_are_the_keyed_hashes_of_the_identifiers() {
        use crate::record::Value;
        let schema = Schema::embedded();
        let secret = [9u8; 32];
        let mut full = vec![Value::Null; schema.len()];
        for (name, v) in [
            ("atena_number", Value::Str("1234567".into())),
            ("registry_atena_number", Value::Str("1234567".into())),
            ("kojin_bango", Value::Str("123456789018".into())),
            ("municipality_code", Value::Str("131091".into())),
            ("ticket_number", Value::Str("0012345678".into())),
            ("kana_name", Value::Str("ヤマダ　タロウ".into())),
            ("birth_date", Value::Date(3743)),
        ] {
            full[schema.idx(name)] = v;
        }
        let mut partial = full.clone();
        partial[schema.idx("ticket_number")] = Value::Null;
        partial[schema.idx("registry_atena_number")] = Value::Str("7654321".into());
        for values in [full, partial, vec![Value::Null; schema.len()]] {
            let r = Record::from(values);
            let mut expected: Vec<(&str, [u8; 32])> = identifiers(schema, &r)
                .into_iter()
                .map(|(k, v)| (k, *keyed_hash_raw(&secret, k, &v).as_bytes()))
                .collect();
            expected.sort_unstable();
            assert_eq!(identifier_hashes(schema, &r, &secret), expected);
        }
        // The shared 宛名番号 counts once; the ticket joins code and number.
        let r = Record::from({
            let mut v = vec![Value::Null; schema.len()];
            v[schema.idx("atena_number")] = Value::Str("1".into());
            v[schema.idx("registry_atena_number")] = Value::Str("1".into());
            v[schema.idx("municipality_code")] = Value::Str("131091".into());
            v[schema.idx("ticket_number")] = Value::Str("0012345678".into());
            v
        });
        assert_eq!(
            identifiers(schema, &r),
            [
                ("atena", "1".to_string()),
                ("ticket", "131091:0012345678".to_string())
            ]
        );
    }

    #[test]
    fn index_secret_depends_on_every_input() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let base = derive_index_secret("pipeline", &[a, b]);
        assert_eq!(base, derive_index_secret("pipeline", &[a, b]));
        for other in [
            derive_index_secret("pipeline ", &[a, b]),
            derive_index_secret("pipeline", &[b, a]),
            derive_index_secret("pipeline", &[a]),
            derive_index_secret("pipeline", &[a, b, a]),
            derive_index_secret("", &[a, b]),
        ] {
            assert_ne!(base, other);
        }
    }
}
