//! The machinery shared by purge and erase: lock, recovery, rewrite, commit, destroy.
//!
//! Commit protocol (docs/purge.md):
//! 1. take `LOCK` with a create-only put (a second purge or erase refuses);
//! 2. recover: roll forward a commit interrupted between signature and manifest (the
//!    new manifest is in `history/<G+1>/`), drop `history/` generations that never
//!    committed, delete every object the manifest does not list (new objects of a run
//!    killed before its commit, or old objects of a run killed after it);
//! 3. write the new objects (rewritten partitions under new keys, new index);
//! 4. keep the current manifest and signature under `history/<G>/`, write the new ones
//!    under `history/<G+1>/`, then the signature and `MANIFEST.json` (replace) — the
//!    commit point;
//! 5. destroy the old objects (wrapped keys first, then ciphertexts);
//! 6. remove `LOCK`.
//!
//! Until step 4 the archive is in its old state; after it, in its new state (with
//! garbage that `verify` reports and the next run deletes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::archive::index::{self, IndexEntry};
use crate::archive::manifest::{self, FileEntry, Manifest, Partition};
use crate::archive::store::Store;
use crate::archive::{self, crypto, ArchiveError, PartitionKey, WriteKeys};
use crate::record::Record;
use crate::schema::{Class, Schema};

use super::lists::{self, List};

/// Refuse, before anything changes (even the lock), when the storage forbids deleting
/// objects — object lock or a default retention on the bucket: a purge there could not
/// destroy anything. A local folder always passes.
pub fn ensure_deletable(store: &Store) -> Result<(), ArchiveError> {
    let policy = store.deletion_guard()?;
    match &policy.refusal {
        Some(why) => Err(ArchiveError::State(format!(
            "`{}` does not allow deleting objects, so nothing can be erased: {why}",
            store.location()
        ))),
        None => Ok(()),
    }
}

pub use crate::archive::lock::{acquire_lock, acquire_migrate_lock, Lock, LockInfo, LOCK};

/// `history/<generation>/MANIFEST.json` (6 digits, so paths sort by generation).
pub fn history_manifest(generation: u64) -> String {
    archive::history_path(generation, manifest::MANIFEST)
}

/// `history/<generation>/MANIFEST.json.minisig`.
pub fn history_signature(generation: u64) -> String {
    archive::history_path(generation, manifest::SIGNATURE)
}

/// What recovery did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recovery {
    /// An interrupted commit was completed from `history/`.
    pub rolled_forward: bool,
    /// Objects not listed in the manifest that were deleted.
    pub removed_unlisted: Vec<String>,
    /// The version ids deleted of each (on a versioned bucket), for a certificate.
    #[serde(skip)]
    pub versions: BTreeMap<String, Vec<String>>,
}

pub use archive::pending_path;

/// Complete or clean up an interrupted purge or erase (call with the lock held).
pub fn recover(store: &Store) -> Result<Recovery, ArchiveError> {
    // Killed between the signature and the manifest: the new manifest waits in history.
    let mut rec = Recovery {
        rolled_forward: archive::roll_forward_interrupted_commit(store)?,
        ..Recovery::default()
    };
    let (m, _) = archive::read_manifest(store)?;
    let listed: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    for o in store.list()? {
        let stale_history = o
            .path
            .strip_prefix("history/")
            .and_then(|r| r.split('/').next())
            .and_then(|g| g.parse::<u64>().ok())
            .is_some_and(|g| g > m.generation);
        if stale_history
            || (!listed.contains(o.path.as_str()) && !archive::verify::is_unlisted_ok(&o.path))
        {
            // Every version: leftovers may hold data a purge meant to destroy.
            let versions = store.delete_all_versions(&o.path)?;
            rec.versions.insert(o.path.clone(), versions);
            rec.removed_unlisted.push(o.path);
        }
    }
    // Temporary files of killed writes (never objects: ciphertext whose key is gone, or of
    // objects written again since).
    rec.removed_unlisted
        .extend(store.remove_staging_leftovers()?);
    Ok(rec)
}

/// The archive's keyed-hash secret (custodian identity needed).
pub fn read_secret(
    store: &Store,
    identities: &[age::x25519::Identity],
) -> Result<[u8; 32], ArchiveError> {
    let plain = crypto::decrypt(
        archive::INDEX_SECRET,
        identities,
        &store.get(archive::INDEX_SECRET)?,
    )?;
    let text = std::str::from_utf8(&plain).map_err(|_| {
        ArchiveError::State(format!(
            "`{}` does not hold a hex key",
            archive::INDEX_SECRET
        ))
    })?;
    let hex = text.trim();
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err(ArchiveError::State(format!(
            "`{}` does not hold a 64-digit hex key",
            archive::INDEX_SECRET
        )));
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| {
            ArchiveError::State(format!(
                "`{}` does not hold a hex key",
                archive::INDEX_SECRET
            ))
        })?;
    }
    Ok(out)
}

/// The current index: its objects (shards and key) and rows.
pub fn read_index(
    store: &Store,
    m: &Manifest,
    identities: &[age::x25519::Identity],
) -> Result<(Vec<FileEntry>, Vec<IndexEntry>), ArchiveError> {
    let (mut files, key) = index::files(m)?;
    let rows = index::read_all(store, m, identities)?;
    files.push(key);
    Ok((files, rows))
}

/// One change to apply: survivors of every affected partition, persons to drop from the index.
#[derive(Default)]
pub struct Change {
    /// partition id → the records to keep (empty: drop the partition).
    pub survivors: BTreeMap<String, Vec<Record>>,
    /// Person hashes whose index entries go (no record of theirs remains).
    pub removed_persons: BTreeSet<String>,
    /// Index rows (kind, keyed hash, person hash) that go while their person stays: the
    /// identifier was carried only by the person's destroyed records.
    pub identifiers_gone: BTreeSet<(String, String, String)>,
    /// Records removed.
    pub records_removed: u64,
    /// What leaves the review and quarantine lists (docs/purge.md, "The lists").
    pub lists: lists::Needles,
}

/// A destroyed object, named in certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destroyed {
    /// Path.
    pub path: String,
    /// Role (partition, key, vault, vault-key, index, index-key).
    pub role: String,
    /// Size in bytes.
    pub size: u64,
    /// blake3 of the stored bytes.
    pub blake3: String,
    /// On a versioned bucket: every version id deleted (all of them, so no old version
    /// of the object stays readable). Empty on a local folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_ids: Vec<String>,
}

/// What was applied.
pub struct Applied {
    /// The manifest before.
    pub before: Manifest,
    /// The committed manifest.
    pub after: Manifest,
    /// Objects destroyed (keys first).
    pub destroyed: Vec<Destroyed>,
    /// Partition files dropped whole.
    pub dropped: Vec<String>,
    /// (old file, new file) of rewritten partitions.
    pub rewritten: Vec<(String, String)>,
    /// Index rows removed.
    pub index_rows_removed: u64,
    /// Review-list rows removed.
    pub review_rows_removed: u64,
    /// Quarantine-list rows removed.
    pub quarantine_rows_removed: u64,
    /// The new index (for the post-purge lookup check).
    pub index: Vec<IndexEntry>,
    /// The index rows removed (for the post-purge lookup check: each is looked up again).
    pub removed_index: Vec<IndexEntry>,
    /// What had to leave the lists (for the post-purge check).
    pub lists: lists::Needles,
}

fn vault_schema(schema: &Schema) -> Arc<ArrowSchema> {
    let v = schema.arrow_schema(|c| c == Class::NumberVault);
    let mut fields = vec![Arc::new(ArrowField::new(
        "record_id",
        DataType::Utf8,
        false,
    ))];
    fields.extend(v.fields().iter().cloned());
    Arc::new(ArrowSchema::new(fields))
}

fn keep_rows(
    what: &str,
    batches: &[RecordBatch],
    column: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<RecordBatch>, u64), ArchiveError> {
    let mut out = Vec::new();
    let mut kept = 0u64;
    for b in batches {
        let col = b
            .column_by_name(column)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
            .ok_or_else(|| ArchiveError::State(format!("`{what}` has no `{column}` column")))?;
        let mask: BooleanArray = (0..b.num_rows())
            .map(|i| Some(col.is_valid(i) && keep(col.value(i))))
            .collect();
        let f =
            arrow::compute::filter_record_batch(b, &mask).map_err(|e| ArchiveError::Parquet {
                what: what.into(),
                message: e.to_string(),
            })?;
        kept += f.num_rows() as u64;
        if f.num_rows() > 0 {
            out.push(f);
        }
    }
    Ok((out, kept))
}

/// What a run stages before its commit ([`pending_path`]): the bytes to store, made from
/// what is about to be committed (`destroyed` still empty).
pub type Stage<'a> = &'a dyn Fn(&Applied) -> Result<Vec<u8>, ArchiveError>;

/// Write the new generation and destroy the old objects. The lock must be held. `stage`
/// gives the pending object put beside the new generation before the commit point.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    store: &Store,
    schema: &Schema,
    m: &Manifest,
    identities: &[age::x25519::Identity],
    keys: &WriteKeys,
    change: Change,
    created: &str,
    stage: Stage<'_>,
) -> Result<Applied, ArchiveError> {
    let generation = m.generation + 1;
    let files: BTreeMap<&str, &FileEntry> = m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let by_id: BTreeMap<&str, &Partition> =
        m.partitions.iter().map(|p| (p.id.as_str(), p)).collect();
    let plain_idx = schema.indices(|c| c != Class::NumberVault);
    let plain_schema = schema.arrow_schema(|c| c != Class::NumberVault);
    let vschema = vault_schema(schema);
    let rid = schema.idx("record_id");

    // Refuse before writing anything if a vault that must be rewritten cannot be opened.
    let mut vault_keys = BTreeMap::new();
    for (id, survivors) in &change.survivors {
        let p = by_id
            .get(id.as_str())
            .ok_or_else(|| ArchiveError::State(format!("no partition `{id}` in the manifest")))?;
        if let (false, Some(vk)) = (survivors.is_empty(), &p.vault_key) {
            let wrapped = store.get(vk)?;
            let key = crypto::unwrap_key(vk, identities, &wrapped).map_err(|_| {
                ArchiveError::State(format!(
                    "partition `{}` keeps records whose vault object must be rewritten, but `{vk}` cannot be unwrapped with the given identities (pass a vault identity too)",
                    p.file
                ))
            })?;
            vault_keys.insert(id.clone(), key);
        }
    }

    let mut new_files: Vec<FileEntry> = Vec::new();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut partitions: Vec<Partition> = Vec::new();
    let mut dropped = Vec::new();
    let mut rewritten = Vec::new();
    let mut put = |path: String, role: &str, data: Vec<u8>| -> Result<(), ArchiveError> {
        let e = FileEntry::of(&path, role, &data);
        store.put(&path, data)?;
        new_files.push(e);
        Ok(())
    };
    for p in &m.partitions {
        let Some(survivors) = change.survivors.get(&p.id) else {
            partitions.push(p.clone());
            continue;
        };
        for path in [
            Some(&p.file),
            Some(&p.key),
            p.vault_file.as_ref(),
            p.vault_key.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            gone.insert(path.clone());
        }
        if survivors.is_empty() {
            dropped.push(p.file.clone());
            continue;
        }
        let key = PartitionKey {
            retention_class: p.retention_class.clone(),
            expiry: p.expiry.clone(),
            bucket: p.bucket,
        };
        let id = archive::partition_id(&m.archive_id, &key, generation);
        let path = archive::partition_path(&key, &id);
        let refs: Vec<&Record> = survivors.iter().collect();
        let sealed = archive::seal_parquet_with(
            &path,
            archive::record_batches(&path, schema, &plain_idx, &plain_schema, &refs, None),
            plain_schema.clone(),
            &keys.custodians,
            archive::partition_properties_for(schema, &plain_idx, &refs, None),
        )?;
        let key_path = format!("keys/{id}.key.age");
        put(path.clone(), "partition", sealed.ciphertext)?;
        put(key_path.clone(), "key", sealed.wrapped_key)?;
        let (mut vault_file, mut vault_key, mut vault_hash, mut vault_rows) = (None, None, None, 0);
        if let (Some(vf), Some(vkey)) = (&p.vault_file, vault_keys.get(&p.id)) {
            let plain = crypto::decrypt(vf, std::slice::from_ref(vkey), &store.get(vf)?)?;
            let old = archive::read_parquet(vf, plain)?;
            let keep: BTreeSet<&str> = survivors
                .iter()
                .filter_map(|r| r.at(rid).as_str())
                .collect();
            let (kept, n) = keep_rows(vf, &old, "record_id", |v| keep.contains(v))?;
            if n > 0 {
                let vpath = format!("vault/{id}.parquet.age");
                let v = archive::seal_parquet(&vpath, &kept, vschema.clone(), &keys.vault)?;
                let vk = format!("keys/{id}.vault.key.age");
                put(vpath.clone(), "vault", v.ciphertext)?;
                put(vk.clone(), "vault-key", v.wrapped_key)?;
                vault_file = Some(vpath);
                vault_key = Some(vk);
                vault_hash = Some(v.plaintext_blake3);
                vault_rows = n;
            }
        }
        rewritten.push((p.file.clone(), path.clone()));
        partitions.push(Partition {
            id: id.clone(),
            retention_class: p.retention_class.clone(),
            expiry: p.expiry.clone(),
            bucket: p.bucket,
            rows: survivors.len() as u64,
            vault_rows,
            file: path,
            key: key_path,
            vault_file,
            vault_key,
            plaintext_blake3: sealed.plaintext_blake3,
            vault_plaintext_blake3: vault_hash,
        });
    }

    // The index without the removed persons and the identifiers only destroyed records
    // carried (every shard rewritten under a new key).
    let (index_files, old_index) = read_index(store, m, identities)?;
    let before = old_index.len() as u64;
    let ids_gone: BTreeSet<(&str, &str, &str)> = change
        .identifiers_gone
        .iter()
        .map(|(k, h, p)| (k.as_str(), h.as_str(), p.as_str()))
        .collect();
    let (removed_index, index): (Vec<IndexEntry>, Vec<IndexEntry>) =
        old_index.into_iter().partition(|e| {
            change.removed_persons.contains(&e.2)
                || ids_gone.contains(&(e.0.as_str(), e.1.as_str(), e.2.as_str()))
        });
    let index_rows_removed = before - index.len() as u64;
    let index_shards = m.index_shards.max(1);
    if index_rows_removed > 0 {
        let index_id = format!(
            "{}-g{generation}",
            &m.archive_id[..16.min(m.archive_id.len())]
        );
        let sealed = std::sync::Mutex::new(Vec::new());
        index::seal(
            &index,
            index_shards,
            &index_id,
            &keys.custodians,
            &|object| {
                sealed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(object);
            },
        )?;
        let mut sealed = sealed.into_inner().unwrap_or_else(|p| p.into_inner());
        // Shards in order, the key last (as they were sealed before shards went in parallel).
        sealed.sort_by_key(|(path, role, _)| (role == index::KEY_ROLE, path.clone()));
        for (path, role, data) in sealed {
            put(path, &role, data)?;
        }
        for f in &index_files {
            gone.insert(f.path.clone());
        }
    }

    // The review and quarantine lists without what names the removed records or the
    // erased person (each list rewritten under a new key only when a row goes).
    let tables = crate::normalise::Tables::embedded();
    let list_id = format!(
        "{}-g{generation}",
        &m.archive_id[..16.min(m.archive_id.len())]
    );
    let (mut review_rows_removed, mut quarantine_rows_removed) = (0, 0);
    let (mut review_total, mut quarantine_total) = (None, None);
    for list in lists::LISTS {
        if change.lists.is_empty() {
            break;
        }
        let Some(batches) = lists::read(store, m, list, identities)? else {
            continue;
        };
        let (kept, removed) = lists::filter(list, &batches, &change.lists, tables)?;
        match list {
            List::Review => {
                review_rows_removed = removed;
                review_total = Some(lists::review_records(&kept));
            }
            List::Quarantine => {
                quarantine_rows_removed = removed;
                quarantine_total = Some(lists::rows(&kept));
            }
        }
        let (Some(first), true) = (batches.first(), removed > 0) else {
            continue;
        };
        let (path, key_path) = list.paths(&list_id);
        let sealed = archive::seal_parquet(&path, &kept, first.schema(), &keys.custodians)?;
        put(path, list.role(), sealed.ciphertext)?;
        put(key_path, list.key_role(), sealed.wrapped_key)?;
        if let Some((object, key)) = lists::entries(m, list) {
            gone.insert(object.path);
            gone.insert(key.path);
        }
    }

    // The new manifest.
    let mut after = m.clone();
    after.generation = generation;
    after.previous_root = Some(m.merkle_root.clone());
    after.created = created.to_string();
    after.program = manifest::Program {
        name: "vaxarc".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    after.partitions = partitions;
    after.index_shards = index_shards;
    after.files = m
        .files
        .iter()
        .filter(|f| !gone.contains(&f.path))
        .cloned()
        .chain(new_files)
        .collect();
    after.files.sort_by(|a, b| a.path.cmp(&b.path));
    after.totals.records = after.partitions.iter().map(|p| p.rows).sum();
    if let Some(n) = review_total {
        after.totals.review = n;
    }
    if let Some(n) = quarantine_total {
        after.totals.quarantined = n;
    }
    after.merkle_root = manifest::files_root(&after.files);

    let mut applied = Applied {
        before: m.clone(),
        after,
        destroyed: Vec::new(),
        dropped,
        rewritten,
        index_rows_removed,
        review_rows_removed,
        quarantine_rows_removed,
        index,
        removed_index,
        lists: change.lists,
    };
    let after = &applied.after;
    store.put(&pending_path(generation), stage(&applied)?)?;

    // History, then the commit point.
    let old_text = store.get(manifest::MANIFEST)?;
    let old_sig = store.get(manifest::SIGNATURE)?;
    store.put(&history_manifest(m.generation), old_text)?;
    store.put(&history_signature(m.generation), old_sig)?;
    let (text, sig) = archive::sign_manifest(after, keys)?;
    store.put(&history_manifest(generation), text.clone())?;
    store.put(&history_signature(generation), sig.clone().into_bytes())?;
    // A manifest put that fails while this process lives puts the old signature back.
    archive::commit_replace(store, &text, &sig)?;

    // Destroy: wrapped keys first (the cryptographic erase), then the ciphertexts.
    let mut destroyed: Vec<Destroyed> = gone
        .iter()
        .filter_map(|p| files.get(p.as_str()))
        .map(|f| Destroyed {
            path: f.path.clone(),
            role: f.role.clone(),
            size: f.size,
            blake3: f.blake3.clone(),
            version_ids: Vec::new(),
        })
        .collect();
    destroyed.sort_by_key(|d| (!d.role.ends_with("key"), d.path.clone()));
    for d in &mut destroyed {
        d.version_ids = store.delete_all_versions(&d.path)?;
    }
    applied.destroyed = destroyed;
    Ok(applied)
}
