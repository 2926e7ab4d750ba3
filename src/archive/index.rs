//! The lookup index, sharded by keyed hash.
//!
//! One row per distinct (identifier kind, keyed hash of the identifier, person hash,
//! bucket). The rows are split into `index_shards` shards (a power of two) by the first
//! 32 bits of the keyed hash ([`shard_of`]), so a lookup decrypts one small shard
//! instead of an index that grows with the archive. Every shard of a generation is an
//! age file to one fresh identity, wrapped once to the custodians
//! (`keys/<index id>.index.key.age`); shard `s` is `index/<index id>/<ssss>.parquet.age`.
//! An archive written before sharding has one index object: shard 0 of 1.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder, UInt16Array, UInt16Builder};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use super::crypto::{self, Recipients};
use super::manifest::{FileEntry, Manifest};
use super::store::Store;
use super::ArchiveError;

/// One index row: identifier kind, keyed hash of the identifier, person hash, bucket.
pub type IndexEntry = (String, String, String, u16);

/// An object to store: (path, role, bytes).
pub type Object = (String, String, Vec<u8>);

/// Index rows a shard holds at most on average (the writer picks the shard count).
pub const SHARD_ENTRIES: usize = 8192;
/// Upper bound of the shard count (keeps the manifest small).
pub const MAX_SHARDS: u32 = 1024;

/// Role of an index shard object in the manifest.
pub const ROLE: &str = "index";
/// Role of the wrapped index identity.
pub const KEY_ROLE: &str = "index-key";

/// Shard count for `entries` rows: the smallest power of two giving at most
/// [`SHARD_ENTRIES`] rows per shard, at most [`MAX_SHARDS`].
pub fn shards_for(entries: usize) -> u32 {
    let want = entries.div_ceil(SHARD_ENTRIES).max(1);
    (want.next_power_of_two() as u64).min(MAX_SHARDS as u64) as u32
}

/// Shard of a keyed hash (hex): its first 32 bits modulo the shard count.
pub fn shard_of(key_hash: &str, shards: u32) -> u32 {
    let prefix = u32::from_str_radix(&key_hash[..8.min(key_hash.len())], 16).unwrap_or(0);
    prefix % shards.max(1)
}

/// Object path of shard `shard` of index `index_id`.
pub fn shard_path(index_id: &str, shard: u32) -> String {
    format!("index/{index_id}/{shard:04}.parquet.age")
}

/// Object path of the wrapped identity of index `index_id`.
pub fn key_path(index_id: &str) -> String {
    format!("keys/{index_id}.index.key.age")
}

/// Arrow schema of an index shard.
pub fn arrow_schema() -> Arc<ArrowSchema> {
    Arc::new(ArrowSchema::new(vec![
        ArrowField::new("kind", DataType::Utf8, false),
        ArrowField::new("key_hash", DataType::Utf8, false),
        ArrowField::new("person_hash", DataType::Utf8, false),
        ArrowField::new("bucket", DataType::UInt16, false),
    ]))
}

/// A row [`seal`] can write: the string form read back from a shard ([`IndexEntry`]) or
/// the compact form a migration collects ([`Compact`]). Both sort and shard the same way,
/// so a shard holds the same bytes whichever form it was written from.
pub trait Row: Sync {
    /// The shard of this row's key hash ([`shard_of`]).
    fn shard(&self, shards: u32) -> u32;
    /// Order within a shard: key hash, kind, person hash, bucket.
    fn shard_order(&self, other: &Self) -> std::cmp::Ordering;
    /// Append this row to the four column builders.
    fn append(&self, to: &mut Builders);
}

/// The column builders of one shard batch.
pub struct Builders {
    kind: StringBuilder,
    key_hash: StringBuilder,
    person_hash: StringBuilder,
    bucket: UInt16Builder,
}

impl Row for IndexEntry {
    fn shard(&self, shards: u32) -> u32 {
        shard_of(&self.1, shards)
    }
    fn shard_order(&self, b: &Self) -> std::cmp::Ordering {
        (&self.1, &self.0, &self.2, self.3).cmp(&(&b.1, &b.0, &b.2, b.3))
    }
    fn append(&self, to: &mut Builders) {
        to.kind.append_value(&self.0);
        to.key_hash.append_value(&self.1);
        to.person_hash.append_value(&self.2);
        to.bucket.append_value(self.3);
    }
}

/// An index row as a migration collects it: no heap allocation (80 bytes against some
/// 230 for an [`IndexEntry`] with its three strings), hashed and compared as raw bytes.
/// Raw hashes order like their lowercase hex, so sorting either form gives one order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Compact {
    /// Keyed hash of the identifier.
    pub key_hash: [u8; 32],
    /// Identifier kind (one of the fixed kinds of [`super::identifiers`]).
    pub kind: &'static str,
    /// Person hash.
    pub person_hash: [u8; 32],
    /// Person bucket.
    pub bucket: u16,
}

/// The identifier kinds of [`super::identifiers`], in text order.
pub const KINDS: [&str; 4] = ["atena", "kana_birth", "kojin_bango", "ticket"];

/// Spilled by a streaming migrate ([`super::Writer::spill_index`]): 67 bytes, the kind as
/// its place in [`KINDS`].
impl crate::spill::Packed for Compact {
    fn write_packed(&self, out: &mut Vec<u8>) {
        let kind = KINDS
            .iter()
            .position(|k| *k == self.kind)
            .expect("an index row's kind is one of KINDS");
        out.extend_from_slice(&self.key_hash);
        out.push(kind as u8);
        out.extend_from_slice(&self.person_hash);
        out.extend_from_slice(&self.bucket.to_le_bytes());
    }
    fn read_packed(bytes: &[u8], pos: &mut usize) -> Option<Compact> {
        let b = bytes.get(*pos..*pos + 67)?;
        *pos += 67;
        Some(Compact {
            key_hash: b[..32].try_into().ok()?,
            kind: KINDS.get(usize::from(b[32]))?,
            person_hash: b[33..65].try_into().ok()?,
            bucket: u16::from_le_bytes([b[65], b[66]]),
        })
    }
}

impl Row for Compact {
    fn shard(&self, shards: u32) -> u32 {
        let [a, b, c, d, ..] = self.key_hash;
        u32::from_be_bytes([a, b, c, d]) % shards.max(1)
    }
    fn shard_order(&self, other: &Self) -> std::cmp::Ordering {
        self.cmp(other)
    }
    fn append(&self, to: &mut Builders) {
        to.kind.append_value(self.kind);
        to.key_hash
            .append_value(blake3::Hash::from_bytes(self.key_hash).to_hex().as_str());
        to.person_hash
            .append_value(blake3::Hash::from_bytes(self.person_hash).to_hex().as_str());
        to.bucket.append_value(self.bucket);
    }
}

fn batch_of<E: Row>(rows: &[&E]) -> RecordBatch {
    let mut b = Builders {
        kind: StringBuilder::new(),
        key_hash: StringBuilder::new(),
        person_hash: StringBuilder::new(),
        bucket: UInt16Builder::new(),
    };
    for row in rows {
        row.append(&mut b);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(b.kind.finish()),
        Arc::new(b.key_hash.finish()),
        Arc::new(b.person_hash.finish()),
        Arc::new(b.bucket.finish()),
    ];
    RecordBatch::try_new(arrow_schema(), cols).expect("index columns match")
}

/// Rows per row group of a shard (a shard is one row group unless the index is huge):
/// a lookup reads the footer and page index, then the one page whose `key_hash`
/// statistics admit the key, column by column.
pub const SHARD_ROW_GROUP_ROWS: usize = 64 * 1024;

/// Writer properties of a shard: [`super::lookup_properties`] sorted by `key_hash`
/// (statistics on `key_hash` only, no bloom filter: a shard holds the keys of its hash
/// range, so a present key is the common case).
pub fn shard_properties() -> parquet::file::properties::WriterProperties {
    super::lookup_properties("key_hash", SHARD_ROW_GROUP_ROWS, false)
}

/// Seal an index as `shards` shard objects (empty shards included, so shard `s`
/// always exists) and the wrapped identity, each `(path, role, bytes)` handed to `emit` as
/// soon as it is sealed (shards in any order, the key last). A shard's rows are sorted by (`key_hash`, `kind`, `person_hash`).
pub fn seal<E: Row>(
    index: &[E],
    shards: u32,
    index_id: &str,
    custodians: &Recipients,
    emit: &(dyn Fn(Object) + Sync),
) -> Result<(), ArchiveError> {
    let shards = shards.max(1);
    let (secret, recipient) = crypto::fresh_identity();
    seal_shards(index, shards, 0..shards, index_id, &recipient, emit)?;
    let wrapped = crypto::wrap_key("index", &secret, &custodians.0)?;
    emit((key_path(index_id), KEY_ROLE.to_string(), wrapped));
    Ok(())
}

/// [`seal`], the rows handed over a group at a time (for a migrate that spilled them):
/// `group(g)` gives every row whose key hash's shard among `groups` is `g` (in any order;
/// `groups` a power of two, as `shards` is). Each shard is sealed once all its rows are in:
/// with `shards ≥ groups` a group holds whole shards; with fewer shards, a shard is a set
/// of groups. The objects are those [`seal`] makes of all the rows at once (tested).
pub fn seal_in_groups<E: Row>(
    groups: u32,
    group: &(dyn Fn(u32) -> Result<Vec<E>, ArchiveError> + Sync),
    shards: u32,
    index_id: &str,
    custodians: &Recipients,
    emit: &(dyn Fn(Object) + Sync),
) -> Result<(), ArchiveError> {
    let (groups, shards) = (groups.max(1), shards.max(1));
    assert!(
        groups.is_power_of_two() && shards.is_power_of_two(),
        "index groups and shards are powers of two"
    );
    let (secret, recipient) = crypto::fresh_identity();
    if shards >= groups {
        for g in 0..groups {
            let rows = group(g)?;
            let mine = (g..shards).step_by(groups as usize);
            seal_shards(&rows, shards, mine, index_id, &recipient, emit)?;
        }
    } else {
        for s in 0..shards {
            let mut rows = Vec::new();
            for g in (s..groups).step_by(shards as usize) {
                rows.extend(group(g)?);
            }
            seal_shards(&rows, shards, s..s + 1, index_id, &recipient, emit)?;
        }
    }
    let wrapped = crypto::wrap_key("index", &secret, &custodians.0)?;
    emit((key_path(index_id), KEY_ROLE.to_string(), wrapped));
    Ok(())
}

/// Seal shards `which` (of `shards`) from `rows`, which hold every row of those shards (and
/// maybe others, ignored), each handed to `emit` as soon as it is sealed.
fn seal_shards<E: Row>(
    rows: &[E],
    shards: u32,
    which: impl Iterator<Item = u32>,
    index_id: &str,
    recipient: &age::x25519::Recipient,
    emit: &(dyn Fn(Object) + Sync),
) -> Result<(), ArchiveError> {
    let which: Vec<u32> = which.collect();
    let mut by_shard: std::collections::BTreeMap<u32, Vec<&E>> =
        which.iter().map(|&s| (s, Vec::new())).collect();
    for e in rows {
        if let Some(v) = by_shard.get_mut(&e.shard(shards)) {
            v.push(e);
        }
    }
    let mut by_shard: Vec<(u32, Vec<&E>)> = by_shard.into_iter().collect();
    // Sorted by key hash (then kind, person), so row groups cover disjoint key ranges.
    // A row given twice (a record's identifier that the registry gives its person too)
    // is written once.
    by_shard.par_iter_mut().for_each(|(_, rows)| {
        rows.sort_unstable_by(|a, b| a.shard_order(b));
        rows.dedup_by(|a, b| a.shard_order(b).is_eq());
    });
    // Each shard is handed on as soon as it is sealed (not all shards held at once).
    by_shard
        .par_iter()
        .try_for_each(|(s, rows)| -> Result<(), ArchiveError> {
            let path = shard_path(index_id, *s);
            // A batch at a time, each made when the writer asks for it (an empty shard
            // is one empty batch).
            let empty = rows.is_empty().then(|| Ok(batch_of::<E>(&[])));
            let batches = empty
                .into_iter()
                .chain(rows.chunks(super::SEAL_BATCH_ROWS).map(|c| Ok(batch_of(c))));
            let (ciphertext, _) = super::seal_parquet_to(
                &path,
                batches,
                arrow_schema(),
                recipient,
                shard_properties(),
            )?;
            emit((path, ROLE.to_string(), ciphertext));
            Ok(())
        })
}

/// The index objects of a manifest: shard entries in shard order, and the key entry.
/// Refuses a manifest whose shard objects do not match its `index_shards`.
pub fn files(m: &Manifest) -> Result<(Vec<FileEntry>, FileEntry), ArchiveError> {
    let mut shards: Vec<FileEntry> = m.files.iter().filter(|f| f.role == ROLE).cloned().collect();
    shards.sort_by(|a, b| a.path.cmp(&b.path));
    if shards.len() != m.index_shards.max(1) as usize {
        return Err(ArchiveError::Manifest(format!(
            "the manifest lists {} index objects but `index_shards` is {}",
            shards.len(),
            m.index_shards
        )));
    }
    let key = m
        .files
        .iter()
        .find(|f| f.role == KEY_ROLE)
        .cloned()
        .ok_or_else(|| ArchiveError::Manifest(format!("no object with role `{KEY_ROLE}`")))?;
    Ok((shards, key))
}

/// The index identity (unwrapped with a custodian identity).
pub fn identity(
    store: &Store,
    m: &Manifest,
    identities: &[age::x25519::Identity],
) -> Result<age::x25519::Identity, ArchiveError> {
    let (_, key) = files(m)?;
    Ok(crypto::unwrap_key(
        &key.path,
        identities,
        &store.get(&key.path)?,
    )?)
}

/// The rows of shard object `path` whose key hash is one of `keys`, reading only the row
/// groups that can hold them.
pub fn read_keys(
    store: &Store,
    path: &str,
    identity: &age::x25519::Identity,
    keys: &std::collections::BTreeSet<String>,
) -> Result<Vec<IndexEntry>, ArchiveError> {
    let shard = super::seek::OpenParquet::open(store, path, identity)?;
    let batches = shard.rows_where("key_hash", keys, None)?;
    Ok(rows(path, &batches)?
        .into_iter()
        .filter(|e| keys.contains(&e.1))
        .collect())
}

/// Rows of one shard object.
pub fn read_shard(
    store: &Store,
    path: &str,
    identity: &age::x25519::Identity,
) -> Result<Vec<IndexEntry>, ArchiveError> {
    let plain = crypto::decrypt(path, std::slice::from_ref(identity), &store.get(path)?)?;
    rows(path, &super::read_parquet(path, plain)?)
}

/// Every row of the index, in shard order.
pub fn read_all(
    store: &Store,
    m: &Manifest,
    identities: &[age::x25519::Identity],
) -> Result<Vec<IndexEntry>, ArchiveError> {
    let (shards, _) = files(m)?;
    let id = identity(store, m, identities)?;
    let parts: Vec<Result<Vec<IndexEntry>, ArchiveError>> = shards
        .par_iter()
        .map(|f| read_shard(store, &f.path, &id))
        .collect();
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// The rows of decoded index batches.
pub fn rows(what: &str, batches: &[RecordBatch]) -> Result<Vec<IndexEntry>, ArchiveError> {
    let mut out = Vec::new();
    for b in batches {
        let bad = |message: String| ArchiveError::Parquet {
            what: what.into(),
            message,
        };
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| bad(format!("no column `{name}`")))
        };
        let (k, h, p, bu) = (
            col("kind")?,
            col("key_hash")?,
            col("person_hash")?,
            col("bucket")?,
        );
        let (Some(k), Some(h), Some(p), Some(bu)) = (
            k.as_any().downcast_ref::<StringArray>(),
            h.as_any().downcast_ref::<StringArray>(),
            p.as_any().downcast_ref::<StringArray>(),
            bu.as_any().downcast_ref::<UInt16Array>(),
        ) else {
            return Err(bad("index columns have unexpected types".into()));
        };
        for i in 0..b.num_rows() {
            if k.is_valid(i) && h.is_valid(i) && p.is_valid(i) && bu.is_valid(i) {
                out.push((
                    k.value(i).to_string(),
                    h.value(i).to_string(),
                    p.value(i).to_string(),
                    bu.value(i),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_are_powers_of_two_and_bounded() {
        assert_eq!(shards_for(0), 1);
        assert_eq!(shards_for(SHARD_ENTRIES), 1);
        assert_eq!(shards_for(SHARD_ENTRIES + 1), 2);
        assert_eq!(shards_for(5 * SHARD_ENTRIES), 8);
        assert_eq!(shards_for(usize::MAX / 2), MAX_SHARDS);
        for n in [1, 7, 100_000, 3_300_000] {
            assert!(shards_for(n).is_power_of_two());
        }
    }

    #[test]
    fn shard_of_uses_the_hash_prefix() {
        assert_eq!(shard_of("00000005ff", 4), 1);
        assert_eq!(shard_of("ffffffff00", 1), 0);
        assert_eq!(shard_of("0000000a", 8), 2);
        assert_eq!(shard_path("abcd-g1", 7), "index/abcd-g1/0007.parquet.age");
    }

    fn both_forms(seed: u8, kind: &'static str, bucket: u16) -> (Compact, IndexEntry) {
        let key_hash = *blake3::hash(&[seed]).as_bytes();
        let person_hash = *blake3::hash(&[seed, 1]).as_bytes();
        let hex = |b: [u8; 32]| blake3::Hash::from_bytes(b).to_hex().to_string();
        (
            Compact {
                key_hash,
                kind,
                person_hash,
                bucket,
            },
            (kind.to_string(), hex(key_hash), hex(person_hash), bucket),
        )
    }

    #[test]
    fn compact_rows_shard_sort_and_write_like_their_string_form() {
        let kinds = ["atena", "kana_birth", "kojin_bango", "ticket"];
        let rows: Vec<(Compact, IndexEntry)> = (0..=255u8)
            .flat_map(|i| {
                // Same key hash under two kinds, and two persons of one key hash.
                [
                    both_forms(i, kinds[usize::from(i) % 4], u16::from(i) % 3),
                    both_forms(i, kinds[(usize::from(i) + 1) % 4], 0),
                ]
            })
            .collect();
        for shards in [1, 2, 8, 1024] {
            for (c, e) in &rows {
                assert_eq!(c.shard(shards), e.shard(shards));
            }
        }
        let mut compact: Vec<&Compact> = rows.iter().map(|r| &r.0).collect();
        let mut strings: Vec<&IndexEntry> = rows.iter().map(|r| &r.1).collect();
        compact.sort_unstable_by(|a, b| a.shard_order(b));
        strings.sort_unstable_by(|a, b| a.shard_order(b));
        let (a, b) = (batch_of(&compact), batch_of(&strings));
        assert_eq!(a, b);
        assert_eq!(a.num_rows(), 512);
    }

    /// The shards a sealing wrote: path → rows, decrypted with the index identity it
    /// wrapped to a test custodian.
    fn sealed(
        seal: impl FnOnce(&Recipients, &(dyn Fn(Object) + Sync)) -> Result<(), ArchiveError>,
    ) -> std::collections::BTreeMap<String, Vec<IndexEntry>> {
        let custodian = age::x25519::Identity::generate();
        let objects = std::sync::Mutex::new(Vec::new());
        seal(&Recipients(vec![custodian.to_public()]), &|o| {
            objects.lock().unwrap().push(o);
        })
        .unwrap();
        let objects = objects.into_inner().unwrap();
        let keys: Vec<&Object> = objects.iter().filter(|o| o.1 == KEY_ROLE).collect();
        assert_eq!(keys.len(), 1, "one wrapped index identity");
        let id = crypto::unwrap_key("index", &[custodian], &keys[0].2).unwrap();
        objects
            .iter()
            .filter(|o| o.1 == ROLE)
            .map(|(path, _, bytes)| {
                let plain = crypto::decrypt(path, std::slice::from_ref(&id), bytes).unwrap();
                let batches = super::super::read_parquet(path, plain).unwrap();
                (path.clone(), rows(path, &batches).unwrap())
            })
            .collect()
    }

    #[test]
    fn packed_rows_read_back_and_refuse_short_bytes() {
        use crate::spill::Packed;
        let rows: Vec<Compact> = (0..=255u8)
            .map(|i| both_forms(i, KINDS[usize::from(i) % 4], u16::from(i) * 257).0)
            .collect();
        let mut bytes = Vec::new();
        for r in &rows {
            r.write_packed(&mut bytes);
        }
        let mut pos = 0;
        let back: Vec<Compact> =
            std::iter::from_fn(|| Compact::read_packed(&bytes, &mut pos)).collect();
        assert!(back == rows);
        assert_eq!(pos, bytes.len());
        let mut pos = 0;
        assert!(Compact::read_packed(&bytes[..66], &mut pos).is_none());
        let mut bad = bytes[..67].to_vec();
        bad[32] = 4; // no such kind
        assert!(Compact::read_packed(&bad, &mut 0).is_none());
    }

    #[test]
    fn sealing_a_group_at_a_time_writes_the_shards_sealing_all_at_once_does() {
        // Rows over the whole key-hash range, several per shard at 64 shards.
        let rows: Vec<Compact> = (0..=255u8)
            .flat_map(|i| {
                [
                    both_forms(i, KINDS[usize::from(i) % 4], u16::from(i) % 5).0,
                    both_forms(i, KINDS[(usize::from(i) + 2) % 4], 1).0,
                ]
            })
            .collect();
        for shards in [1, 4, 64, 256] {
            let all = sealed(|c, emit| seal(&rows, shards, "id-g1", c, emit));
            assert_eq!(all.len(), shards as usize);
            assert_eq!(all.values().map(Vec::len).sum::<usize>(), rows.len());
            for groups in [1, 16, 64] {
                let taken = std::sync::Mutex::new(Vec::new());
                let grouped = sealed(|c, emit| {
                    seal_in_groups(
                        groups,
                        &|g| {
                            taken.lock().unwrap().push(g);
                            // Each group's rows, in an order unlike the sorted one.
                            Ok(rows
                                .iter()
                                .rev()
                                .filter(|r| r.shard(groups) == g)
                                .copied()
                                .collect())
                        },
                        shards,
                        "id-g1",
                        c,
                        emit,
                    )
                });
                assert_eq!(grouped, all, "{groups} groups, {shards} shards");
                let mut taken = taken.into_inner().unwrap();
                taken.sort_unstable();
                assert_eq!(
                    taken,
                    (0..groups).collect::<Vec<_>>(),
                    "each group taken once"
                );
            }
        }
    }

    #[test]
    fn a_row_given_twice_is_sealed_once() {
        let rows: Vec<Compact> = (0..=63u8)
            .map(|i| both_forms(i, KINDS[usize::from(i) % 4], 1).0)
            .collect();
        // Every row again (a record's identifier that its registry row gives too).
        let twice: Vec<Compact> = rows.iter().chain(&rows).copied().collect();
        for shards in [1, 4] {
            let once = sealed(|c, emit| seal(&rows, shards, "ab-g1", c, emit));
            let again = sealed(|c, emit| seal(&twice, shards, "ab-g1", c, emit));
            assert_eq!(once, again);
            assert_eq!(once.values().map(Vec::len).sum::<usize>(), 64);
        }
    }
}
