//! The I/O shell of lookups: decrypt the hash key and the current index, then only the
//! partitions (and vault objects) of the buckets that can hold the persons asked for.
//! Every partition is decrypted at most once per [`Reader`] (batch mode).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, StringArray, UInt16Array};

use crate::archive::manifest::{Manifest, Partition};
use crate::archive::store::Store;
use crate::archive::{self, crypto, ArchiveError, INDEX_SECRET};
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
    /// (kind, key_hash) → persons.
    index: HashMap<(String, String), Vec<(String, u16)>>,
    partitions: HashMap<String, Arc<Vec<Record>>>,
    vaults: HashMap<String, Arc<Vec<Record>>>,
    /// Partitions decrypted so far.
    pub partitions_decrypted: u64,
    /// Whether a vault object could be opened with the identities given (None: not tried).
    pub vault_open: Option<bool>,
}

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
    /// Open: manifest, hash key and index (no partition yet).
    pub fn open(
        store: &'a Store,
        schema: &'a Schema,
        identities: &'a [age::x25519::Identity],
    ) -> Result<Reader<'a>, ArchiveError> {
        let (manifest, _) = archive::read_manifest(store)?;
        let secret = read_secret(store, identities)?;
        let find = |role: &str| {
            manifest
                .files
                .iter()
                .find(|f| f.role == role)
                .map(|f| f.path.clone())
                .ok_or_else(|| ArchiveError::Manifest(format!("no object with role `{role}`")))
        };
        let (index_path, key_path) = (find("index")?, find("index-key")?);
        let batches = archive::open_parquet(
            &index_path,
            &store.get(&index_path)?,
            &store.get(&key_path)?,
            identities,
        )?;
        let mut index: HashMap<(String, String), Vec<(String, u16)>> = HashMap::new();
        for b in &batches {
            let col = |name: &str| {
                b.column_by_name(name).ok_or_else(|| ArchiveError::Parquet {
                    what: index_path.clone(),
                    message: format!("no column `{name}`"),
                })
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
                return Err(ArchiveError::Parquet {
                    what: index_path.clone(),
                    message: "index columns have unexpected types".into(),
                });
            };
            for i in 0..b.num_rows() {
                if k.is_valid(i) && h.is_valid(i) && p.is_valid(i) && bu.is_valid(i) {
                    index
                        .entry((k.value(i).to_string(), h.value(i).to_string()))
                        .or_default()
                        .push((p.value(i).to_string(), bu.value(i)));
                }
            }
        }
        Ok(Reader {
            store,
            manifest,
            secret,
            identities,
            schema,
            index,
            partitions: HashMap::new(),
            vaults: HashMap::new(),
            partitions_decrypted: 0,
            vault_open: None,
        })
    }

    /// The hash key (for audit entries).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Persons (person hash, bucket) the query fits, sorted.
    pub fn resolve(&self, q: &Query) -> Vec<(String, u16)> {
        let mut out: Vec<(String, u16)> = match q {
            Query::Person(h) => {
                let b = archive::bucket_of(h, self.manifest.buckets);
                vec![(h.clone(), b)]
            }
            _ => {
                let kh = archive::keyed_hash(&self.secret, q.kind(), q.value());
                self.index
                    .get(&(q.kind().to_string(), kh))
                    .cloned()
                    .unwrap_or_default()
            }
        };
        out.sort();
        out.dedup();
        out
    }

    fn partitions_of(&self, buckets: &BTreeSet<u16>) -> Vec<Partition> {
        self.manifest
            .partitions
            .iter()
            .filter(|p| buckets.contains(&p.bucket))
            .cloned()
            .collect()
    }

    /// Records of the buckets given (whole partitions, decrypted once each).
    pub fn records(
        &mut self,
        buckets: &BTreeSet<u16>,
    ) -> Result<Vec<Arc<Vec<Record>>>, ArchiveError> {
        let mut out = Vec::new();
        for p in self.partitions_of(buckets) {
            if !self.partitions.contains_key(&p.id) {
                let rs = archive::read_partition(self.store, self.schema, &p, self.identities)?;
                self.partitions_decrypted += 1;
                self.partitions.insert(p.id.clone(), Arc::new(rs));
            }
            out.push(self.partitions[&p.id].clone());
        }
        Ok(out)
    }

    /// Vault rows (record id → row) of the buckets given, when a vault identity opens
    /// them; empty otherwise (and `vault_open` says so).
    pub fn vault(
        &mut self,
        buckets: &BTreeSet<u16>,
        wanted: &HashSet<String>,
    ) -> Result<BTreeMap<String, Record>, ArchiveError> {
        let mut out = BTreeMap::new();
        let rid = self.schema.idx("record_id");
        for p in self.partitions_of(buckets) {
            let (Some(file), Some(key)) = (&p.vault_file, &p.vault_key) else {
                continue;
            };
            if self.vault_open == Some(false) {
                break;
            }
            if !self.vaults.contains_key(&p.id) {
                let wrapped = self.store.get(key)?;
                match crypto::unwrap_key(key, self.identities, &wrapped) {
                    Ok(id) => {
                        self.vault_open = Some(true);
                        let plain = crypto::decrypt(file, &[id], &self.store.get(file)?)?;
                        let batches = archive::read_parquet(file, plain)?;
                        let rows: Vec<Record> = batches
                            .iter()
                            .flat_map(|b| archive::batch::from_batch(self.schema, b))
                            .collect();
                        self.vaults.insert(p.id.clone(), Arc::new(rows));
                    }
                    Err(_) => {
                        self.vault_open = Some(false);
                        break;
                    }
                }
            }
            for r in self.vaults[&p.id].iter() {
                if let Some(id) = r[rid].as_str() {
                    if wanted.contains(id) {
                        out.insert(id.to_string(), r.clone());
                    }
                }
            }
        }
        Ok(out)
    }
}
