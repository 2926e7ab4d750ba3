//! The I/O shell of lookups: decrypt the hash key, then for each query the one index
//! shard its keyed hash falls in, then in the person's bucket only the row groups of
//! each partition that can hold the person (see [`crate::archive::seek`]). Index rows
//! and each person's records are kept for the life of a [`Reader`] (batch mode); a
//! partition is dropped once read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use crate::archive::index::{self, IndexEntry};
use crate::archive::manifest::{FileEntry, Manifest, Partition};
use crate::archive::seek::OpenPartition;
use crate::archive::store::Store;
use crate::archive::{self, crypto, ArchiveError, PersonFacts, INDEX_SECRET};
use crate::record::Record;
use crate::schema::Schema;

use super::Query;

/// An opened archive for lookups.
pub struct Reader<'a> {
    /// Storage.
    pub store: &'a Store,
    /// The manifest.
    pub manifest: Manifest,
    /// The hash key.
    secret: [u8; 32],
    identities: &'a [age::x25519::Identity],
    schema: &'a Schema,
    /// Index shard objects, in shard order, and the index identity (unwrapped when a
    /// shard is first needed).
    shard_files: Vec<FileEntry>,
    index_key: FileEntry,
    index_identity: Option<age::x25519::Identity>,
    /// Index rows of each key hash looked up so far.
    keys: HashMap<String, Vec<IndexEntry>>,
    /// Ids of the partitions read so far.
    opened: HashSet<String>,
    /// Record columns to decode (None: all).
    columns: Option<BTreeSet<String>>,
    /// Records of each person read so far.
    by_person: HashMap<String, Arc<Vec<Record>>>,
    vaults: HashMap<String, Arc<Vec<Record>>>,
    /// Partitions opened so far (footer read; only matching row groups decrypted).
    pub partitions_decrypted: u64,
    /// Index shards decrypted so far (each counted once: a shard is decrypted again when
    /// a later query needs keys of it not read yet).
    pub shards_decrypted: u64,
    shards_opened: HashSet<u32>,
    /// Whether a vault object could be opened with the identities given (None: not tried).
    pub vault_open: Option<bool>,
    /// For an archive on object storage: a wider pool for the reads (see
    /// [`REMOTE_READS`]); a local archive reads on rayon's global pool (one thread per
    /// core: the reads are page-cache copies and the work is decryption).
    remote_pool: Option<rayon::ThreadPool>,
}

/// The exact-identifier queries (宛名番号, ticket, 個人番号; not kana + birth date, which
/// many people share) of identifiers `(kind, value)` from [`archive::identifiers`].
fn join_queries(ids: BTreeSet<(&str, String)>) -> Vec<Query> {
    ids.into_iter()
        .filter_map(|(kind, v)| match kind {
            "atena" => Some(Query::Atena(v)),
            "ticket" => Some(Query::Ticket(v)),
            "kojin_bango" => Some(Query::KojinBango(v)),
            _ => None,
        })
        .collect()
}

/// Threads reading index shards and partitions in parallel when the archive is on object
/// storage: each partition opened there is a few ranged GETs one after another, so a batch
/// waits on request latency, not the CPU, with only one reader per core.
pub const REMOTE_READS: usize = 32;

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reader(<redacted>)")
    }
}

/// Decrypt the archive's hash key (`keys/index-hmac.key.age`) with a custodian identity.
pub fn read_secret(
    store: &Store,
    identities: &[age::x25519::Identity],
) -> Result<[u8; 32], ArchiveError> {
    let wrapped = store.get(INDEX_SECRET)?;
    let plain = crypto::decrypt(INDEX_SECRET, identities, &wrapped)?;
    let text = String::from_utf8_lossy(&plain);
    let line = text.trim();
    let bad = || ArchiveError::State(format!("`{INDEX_SECRET}` does not hold 64 hex digits"));
    crate::audit::unhex(line).ok_or_else(bad)
}

impl<'a> Reader<'a> {
    /// Open: manifest and hash key (no index shard or partition yet).
    pub fn open(
        store: &'a Store,
        schema: &'a Schema,
        identities: &'a [age::x25519::Identity],
    ) -> Result<Reader<'a>, ArchiveError> {
        // Signed as its signer left it: an answer read through an altered manifest could
        // be another person's records or miss some.
        let (manifest, _, _) = archive::read_signed_manifest(store)?;
        let secret = read_secret(store, identities)?;
        let (shard_files, index_key) = index::files(&manifest)?;
        Ok(Reader {
            store,
            manifest,
            secret,
            identities,
            schema,
            shard_files,
            index_key,
            index_identity: None,
            keys: HashMap::new(),
            opened: HashSet::new(),
            columns: None,
            by_person: HashMap::new(),
            vaults: HashMap::new(),
            partitions_decrypted: 0,
            shards_decrypted: 0,
            shards_opened: HashSet::new(),
            vault_open: None,
            remote_pool: match store.local_root() {
                Some(_) => None,
                // A pool that cannot be built (no threads left) leaves the global one.
                None => rayon::ThreadPoolBuilder::new()
                    .num_threads(REMOTE_READS)
                    .build()
                    .ok(),
            },
        })
    }

    /// Run `work` on the pool the archive's reads belong on.
    fn in_read_pool<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        match &self.remote_pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }

    /// Decode only these record columns (the others stay Null): set before reading.
    pub fn set_columns(&mut self, columns: BTreeSet<String>) {
        self.columns = Some(columns);
    }

    /// The hash key (for audit entries).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    fn index_identity(&mut self) -> Result<age::x25519::Identity, ArchiveError> {
        if self.index_identity.is_none() {
            let wrapped = self.store.get(&self.index_key.path)?;
            self.index_identity = Some(crypto::unwrap_key(
                &self.index_key.path,
                self.identities,
                &wrapped,
            )?);
        }
        Ok(self.index_identity.clone().expect("set above"))
    }

    /// Read the index rows of these queries: per shard, once, only the row groups that
    /// can hold their key hashes (shards in parallel).
    pub fn load_shards(&mut self, queries: &[&Query]) -> Result<(), ArchiveError> {
        let n = self.shard_files.len() as u32;
        let mut wanted: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for q in queries.iter().filter(|q| !matches!(q, Query::Person(_))) {
            let kh = archive::keyed_hash(&self.secret, q.kind(), q.value());
            if !self.keys.contains_key(&kh) {
                wanted
                    .entry(index::shard_of(&kh, n))
                    .or_default()
                    .insert(kh);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let id = self.index_identity()?;
        let (store, files) = (self.store, &self.shard_files);
        let read: Vec<Result<Vec<IndexEntry>, ArchiveError>> = self.in_read_pool(|| {
            wanted
                .par_iter()
                .map(|(s, keys)| index::read_keys(store, &files[*s as usize].path, &id, keys))
                .collect()
        });
        for keys in wanted.values() {
            for k in keys {
                self.keys.insert(k.clone(), Vec::new());
            }
        }
        for (shard, rows) in wanted.keys().zip(read) {
            if self.shards_opened.insert(*shard) {
                self.shards_decrypted += 1;
            }
            for e in rows? {
                self.keys.entry(e.1.clone()).or_default().push(e);
            }
        }
        Ok(())
    }

    /// Persons (person hash, bucket) the query fits, sorted.
    pub fn resolve(&mut self, q: &Query) -> Result<Vec<(String, u16)>, ArchiveError> {
        let mut out: Vec<(String, u16)> = match q {
            Query::Person(h) => {
                let b = archive::bucket_of(h, self.manifest.buckets);
                vec![(h.clone(), b)]
            }
            _ => {
                self.load_shards(&[q])?;
                let kh = archive::keyed_hash(&self.secret, q.kind(), q.value());
                self.keys[&kh]
                    .iter()
                    .filter(|e| e.0 == q.kind())
                    .map(|e| (e.2.clone(), e.3))
                    .collect()
            }
        };
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// For a batch: read at once what [`Self::join_unlinked`] of each query will need
    /// first — the index rows of the 宛名番号, tickets and 個人番号 on the records of every
    /// unlinked key in `persons`, and the records of the keys they reach — so that the
    /// joins of a batch cost one pass over the shards and partitions, not one per query.
    pub fn prefetch_joins(&mut self, persons: &[(String, u16)]) -> Result<(), ArchiveError> {
        let schema = self.schema;
        let registry = schema.idx("registry_atena_number");
        let mut seen: BTreeSet<(String, u16)> = persons.iter().cloned().collect();
        let mut asked: BTreeSet<(&str, String)> = BTreeSet::new();
        let mut todo: Vec<(String, u16)> = persons.to_vec();
        // Level by level (a join can lead on through the keys it joins), each level's
        // shards and partitions in one pass; only unlinked records' numbers are followed.
        while !todo.is_empty() {
            let ids: BTreeSet<(&str, String)> = self
                .person_records(&todo)?
                .iter()
                .filter(|r| r.at(registry).is_null())
                .flat_map(|r| archive::identifiers(schema, r))
                .filter(|id| !asked.contains(id))
                .collect();
            asked.extend(ids.iter().cloned());
            let queries = join_queries(ids);
            self.load_shards(&queries.iter().collect::<Vec<_>>())?;
            todo.clear();
            for q in &queries {
                todo.extend(
                    self.resolve(q)?
                        .into_iter()
                        .filter(|p| seen.insert(p.clone())),
                );
            }
            self.load_persons(&todo)?;
        }
        Ok(())
    }

    /// Add to `persons` (the keys an exact identifier reached) every key of records linked
    /// to no registry resident that shares a 宛名番号, ticket or 個人番号 carried by the
    /// records of an unlinked key already in, and is shown to be the same person
    /// ([`PersonFacts::confirms`]: one birth date, which the keys reached carry, kana name
    /// and sex agreeing), transitively — what `vaxarc erase` joins, so that a lookup by a
    /// person's 個人番号 also shows the ledger records reconciliation keyed by their
    /// 宛名番号 (a person the registry does not know). A resident's records are not
    /// followed (a row can carry a number mistyped from another person's), and nothing is
    /// joined when the keys reached are not one person (the answer lists candidates).
    /// Returns how many keys were added.
    pub fn join_unlinked(&mut self, persons: &mut Vec<(String, u16)>) -> Result<u64, ArchiveError> {
        let schema = self.schema;
        let ph = schema.idx("person_hash");
        let facts_of = |records: &[Record]| {
            let mut out: BTreeMap<String, PersonFacts> = BTreeMap::new();
            for r in records {
                if let Some(p) = r.at(ph).as_str() {
                    out.entry(p.to_string()).or_default().add_record(schema, r);
                }
            }
            out
        };
        let reached = facts_of(&self.person_records(persons)?);
        if !PersonFacts::one_person(reached.values()) {
            return Ok(0);
        }
        let mut person = PersonFacts::default();
        for f in reached.values() {
            person.add(f);
        }
        // Every key in agrees with every other (kana names one slip apart agree, which is
        // not transitive): each candidate is held against all, as `answer` holds them.
        let mut members: Vec<PersonFacts> = reached.values().cloned().collect();
        let unlinked = |f: &PersonFacts| f.residents.is_empty();
        let mut seen: BTreeSet<String> = persons.iter().map(|p| p.0.clone()).collect();
        let mut follow: Vec<(String, u16)> = persons
            .iter()
            .filter(|p| reached.get(&p.0).is_some_and(unlinked))
            .cloned()
            .collect();
        let mut joined = 0;
        while !follow.is_empty() {
            let ids: BTreeSet<(&str, String)> = self
                .person_records(&follow)?
                .iter()
                .flat_map(|r| archive::identifiers(schema, r))
                .collect();
            let queries = join_queries(ids);
            self.load_shards(&queries.iter().collect::<Vec<_>>())?;
            let mut candidates = Vec::new();
            for q in &queries {
                candidates.extend(
                    self.resolve(q)?
                        .into_iter()
                        .filter(|p| seen.insert(p.0.clone())),
                );
            }
            follow.clear();
            if candidates.is_empty() {
                break;
            }
            let facts = facts_of(&self.person_records(&candidates)?);
            for c in candidates {
                let f = facts.get(&c.0).filter(|f| {
                    unlinked(f) && person.confirms(f) && members.iter().all(|m| m.agrees(f))
                });
                if let Some(f) = f {
                    members.push(f.clone());
                    follow.push(c.clone());
                    persons.push(c);
                    joined += 1;
                }
            }
        }
        persons.sort();
        Ok(joined)
    }

    fn partitions_of(&self, buckets: &BTreeSet<u16>) -> Vec<Partition> {
        self.manifest
            .partitions
            .iter()
            .filter(|p| buckets.contains(&p.bucket))
            .cloned()
            .collect()
    }

    /// Read the records of these persons: in each partition of their buckets, once,
    /// the row groups that can hold any of them (partitions in parallel).
    pub fn load_persons(&mut self, persons: &[(String, u16)]) -> Result<(), ArchiveError> {
        let todo: BTreeMap<String, u16> = persons
            .iter()
            .filter(|p| !self.by_person.contains_key(&p.0))
            .cloned()
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let buckets: BTreeSet<u16> = todo.values().copied().collect();
        let work: Vec<(Partition, BTreeSet<String>)> = self
            .partitions_of(&buckets)
            .into_iter()
            .map(|p| {
                let wanted = todo
                    .iter()
                    .filter(|(_, b)| **b == p.bucket)
                    .map(|(h, _)| h.clone())
                    .collect();
                (p, wanted)
            })
            .collect();
        let (store, schema, ids) = (self.store, self.schema, self.identities);
        let columns = self.columns.as_ref();
        // Each partition is opened, read and dropped in one task: an open partition holds
        // its footer, page index, decrypted chunks and ciphertext blocks (≈ 1 MiB), and a
        // batch touches every partition of its buckets (1,182 at 20M rows) — kept, they
        // grew a batch to 1.3 GB of fresh memory, paid again as page faults.
        let read: Vec<Result<(String, Vec<Record>), ArchiveError>> = self.in_read_pool(|| {
            work.par_iter()
                .map(|(p, wanted)| {
                    let records =
                        OpenPartition::open(store, p, ids)?.records_of(schema, wanted, columns)?;
                    Ok((p.id.clone(), records))
                })
                .collect()
        });
        let ph = self.schema.idx("person_hash");
        let mut found: HashMap<String, Vec<Record>> =
            todo.keys().map(|h| (h.clone(), Vec::new())).collect();
        for r in read {
            let (id, records) = r?;
            if self.opened.insert(id) {
                self.partitions_decrypted += 1;
            }
            for rec in records {
                if let Some(list) = rec.at(ph).as_str().and_then(|h| found.get_mut(h)) {
                    list.push(rec);
                }
            }
        }
        for (h, list) in found {
            self.by_person.insert(h, Arc::new(list));
        }
        Ok(())
    }

    /// The records of these persons, in partition order (reads what is not loaded yet).
    pub fn person_records(
        &mut self,
        persons: &[(String, u16)],
    ) -> Result<Vec<Record>, ArchiveError> {
        self.load_persons(persons)?;
        Ok(persons
            .iter()
            .flat_map(|p| self.by_person[&p.0].iter().cloned())
            .collect())
    }

    /// Vault rows (record id → row) of the buckets given, when a vault identity opens
    /// them; empty otherwise (and `vault_open` says so). The first vault file not read yet
    /// is opened alone (it settles whether the identities open the vault at all: every
    /// vault key is wrapped to the same recipients), the rest in parallel on the read pool
    /// (on object storage each is two requests: one after another they were most of a
    /// lookup's wait).
    pub fn vault(
        &mut self,
        buckets: &BTreeSet<u16>,
        wanted: &HashSet<String>,
    ) -> Result<BTreeMap<String, Record>, ArchiveError> {
        let mut out = BTreeMap::new();
        if self.vault_open == Some(false) {
            return Ok(out);
        }
        let partitions: Vec<Partition> = self
            .partitions_of(buckets)
            .into_iter()
            .filter(|p| p.vault_file.is_some() && p.vault_key.is_some())
            .collect();
        let mut todo: Vec<&Partition> = partitions
            .iter()
            .filter(|p| !self.vaults.contains_key(&p.id))
            .collect();
        let (store, schema, ids) = (self.store, self.schema, self.identities);
        // None: the identities do not open this vault key.
        let open = |p: &Partition| -> Result<Option<Vec<Record>>, ArchiveError> {
            let (Some(file), Some(key)) = (&p.vault_file, &p.vault_key) else {
                return Ok(Some(Vec::new()));
            };
            let Ok(id) = crypto::unwrap_key(key, ids, &store.get(key)?) else {
                return Ok(None);
            };
            let plain = crypto::decrypt(file, &[id], &store.get(file)?)?;
            let batches = archive::read_parquet(file, plain)?;
            Ok(Some(
                batches
                    .iter()
                    .flat_map(|b| archive::batch::from_batch(schema, b))
                    .collect(),
            ))
        };
        if self.vault_open.is_none() && !todo.is_empty() {
            let first = todo.remove(0);
            match open(first)? {
                Some(rows) => {
                    self.vault_open = Some(true);
                    self.vaults.insert(first.id.clone(), Arc::new(rows));
                }
                None => {
                    self.vault_open = Some(false);
                    return Ok(out);
                }
            }
        }
        let read: Vec<Result<Option<Vec<Record>>, ArchiveError>> =
            self.in_read_pool(|| todo.par_iter().map(|p| open(p)).collect());
        for (p, rows) in todo.iter().zip(read) {
            match rows? {
                Some(rows) => {
                    self.vaults.insert(p.id.clone(), Arc::new(rows));
                }
                // Opened one, not this one: a vault key wrapped to other recipients.
                None => {
                    return Err(ArchiveError::State(format!(
                        "`{}` does not open with the identity that opened the other vault keys; the archive's vault keys disagree",
                        p.vault_key.as_deref().unwrap_or_default()
                    )))
                }
            }
        }
        let rid = self.schema.idx("record_id");
        for p in &partitions {
            for r in self.vaults[&p.id].iter() {
                if let Some(id) = r.at(rid).as_str() {
                    if wanted.contains(id) {
                        out.insert(id.to_string(), r.clone());
                    }
                }
            }
        }
        Ok(out)
    }
}
