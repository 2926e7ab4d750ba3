//! `vaxarc verify`: signature, presence, size and blake3 of every listed object, no
//! unlisted object, the Merkle root; with identities, decrypt every partition and vault
//! object and check its row count, schema and plaintext hash.

use serde::Serialize;

use super::manifest::{self, Manifest};
use super::store::Store;
use super::{read_manifest, ArchiveError};
use crate::schema::{Class, Schema};

/// One problem found, naming the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Object path.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// Result of a verification.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Archive id.
    pub archive_id: String,
    /// Generation.
    pub generation: u64,
    /// Merkle root (as recomputed).
    pub merkle_root: String,
    /// Objects checked.
    pub objects_checked: u64,
    /// Partitions decrypted (with identities).
    pub partitions_decrypted: u64,
    /// Vault objects decrypted (with a vault identity).
    pub vault_decrypted: u64,
    /// Records counted in decrypted partitions.
    pub records_checked: u64,
    /// Problems; empty means the archive verifies.
    pub problems: Vec<Problem>,
    /// Key id of the signature's public key.
    pub signing_key_id: String,
    /// This generation was committed by a purge or erase that was killed before its
    /// certificate (its pending object is in `history/`): not a problem of the archive,
    /// but the next purge or erase must run to certify it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uncertified: bool,
}

impl Report {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Paths in a manifest must be plain relative paths inside the archive.
pub fn safe_object_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Objects that live beside the listed files and are checked by other commands.
pub fn is_unlisted_ok(path: &str) -> bool {
    path == manifest::MANIFEST
        || path == manifest::SIGNATURE
        || path.starts_with("audit/")
        || path.starts_with("certificates/")
        || path.starts_with("history/")
        || path == "LOCK"
}

/// Verify an archive. `pinned_key` (a minisign public key) overrides the key in the
/// manifest; identities (custodian, and vault if given) enable the deep checks.
pub fn verify(
    store: &Store,
    schema: &Schema,
    pinned_key: Option<&minisign::PublicKey>,
    identities: &[age::x25519::Identity],
) -> Result<Report, ArchiveError> {
    let mut report = Report::default();
    let mut problem = |path: &str, what: String| {
        report.problems.push(Problem {
            path: path.to_string(),
            problem: what,
        })
    };
    let (m, bytes) = match read_manifest(store) {
        Ok(x) => x,
        Err(ArchiveError::Store(super::StoreError::NotFound { .. })) => {
            let mut r = Report::default();
            r.problems.push(Problem {
                path: manifest::MANIFEST.into(),
                problem:
                    "missing: this is not a committed archive (an interrupted run leaves none)"
                        .into(),
            });
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    report.uncertified = super::uncertified(store, m.generation).unwrap_or(false);
    // Signature.
    let key = match pinned_key {
        Some(k) => Ok(k.clone()),
        None => minisign::PublicKey::from_base64(&m.signing_public_key).map_err(|e| e.to_string()),
    };
    match (key, store.get(manifest::SIGNATURE)) {
        (Ok(k), Ok(sig)) => {
            let sig = String::from_utf8_lossy(&sig).to_string();
            if let Err(e) = manifest::verify_signature(&k, &bytes, &sig) {
                // The next generation's signature in place over this manifest, with that
                // generation staged under history/: a commit interrupted between its two
                // puts, which the command's rerun completes (docs/archive-format.md).
                let next = super::history_path(m.generation + 1, manifest::SIGNATURE);
                let interrupted = store
                    .get(&next)
                    .is_ok_and(|staged| String::from_utf8_lossy(&staged) == sig);
                // A purge or erase stages its certificate's facts (the pending object)
                // before its commit; rekey refuses until that run's rerun certifies it.
                let of_purge =
                    interrupted && super::uncertified(store, m.generation + 1).unwrap_or(false);
                problem(
                    manifest::SIGNATURE,
                    if of_purge {
                        "signature does not verify: an interrupted commit of a purge or erase (the next generation's signature is in place); rerun `vaxarc purge` or `vaxarc erase` to complete it and write its certificate".to_string()
                    } else if interrupted {
                        "signature does not verify: an interrupted commit (the next generation's signature is in place); rerun the purge, erase or rekey to complete it".to_string()
                    } else {
                        format!("signature does not verify: {e}")
                    },
                );
            }
        }
        (Err(e), _) => problem(
            manifest::MANIFEST,
            format!("signing public key unusable: {e}"),
        ),
        (_, Err(_)) => problem(manifest::SIGNATURE, "missing".into()),
    }
    // Listed objects.
    let listed: std::collections::BTreeMap<&str, &manifest::FileEntry> =
        m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    if let Some(root) = store.local_root() {
        for link in symlinks_under(root) {
            problem(
                &link,
                "is a symbolic link; archives hold plain files only (refused, not followed)".into(),
            );
        }
    }
    let present = store.list()?;
    let present_paths: std::collections::BTreeSet<&str> =
        present.iter().map(|o| o.path.as_str()).collect();
    for o in &present {
        if !listed.contains_key(o.path.as_str()) && !is_unlisted_ok(&o.path) {
            problem(&o.path, "not listed in the manifest".into());
        }
    }
    for path in store.staging_leftovers()? {
        problem(
            &path,
            "not listed in the manifest: the temporary file of a write that was killed (the next purge, erase or rekey removes it)".into(),
        );
    }
    for f in &m.files {
        if !present_paths.contains(f.path.as_str()) {
            problem(&f.path, "listed in the manifest but missing".into());
            continue;
        }
        match store.get(&f.path) {
            Ok(data) => {
                if data.len() as u64 != f.size {
                    problem(
                        &f.path,
                        format!("size {} differs from the manifest's {}", data.len(), f.size),
                    );
                } else if blake3::hash(&data).to_hex().as_str() != f.blake3 {
                    problem(&f.path, "blake3 differs from the manifest".into());
                }
            }
            Err(e) => problem(&f.path, e.to_string()),
        }
        report.objects_checked += 1;
    }
    let root = manifest::files_root(&m.files);
    if root != m.merkle_root {
        problem(
            manifest::MANIFEST,
            "Merkle root does not match the file list".into(),
        );
    }
    for p in &m.partitions {
        for path in [
            Some(&p.file),
            Some(&p.key),
            p.vault_file.as_ref(),
            p.vault_key.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !listed.contains_key(path.as_str()) {
                problem(path, "named by a partition but not in the file list".into());
            }
        }
    }
    // Deep checks.
    if !identities.is_empty() {
        let plain_fields: Vec<&str> = schema
            .fields
            .iter()
            .filter(|f| f.class != Class::NumberVault)
            .map(|f| f.name.as_str())
            .collect();
        for p in &m.partitions {
            match deep_partition(store, p, identities, &plain_fields) {
                Ok(Some(rows)) => {
                    report.partitions_decrypted += 1;
                    report.records_checked += rows;
                }
                Ok(None) => {}
                Err(e) => problem(&p.file, e),
            }
            if let (Some(vf), Some(vk)) = (&p.vault_file, &p.vault_key) {
                match deep_vault(store, vf, vk, p, identities) {
                    Ok(true) => report.vault_decrypted += 1,
                    Ok(false) => {}
                    Err(e) => problem(vf, e),
                }
            }
        }
    }
    report.archive_id = m.archive_id.clone();
    report.generation = m.generation;
    report.merkle_root = root;
    report.signing_key_id = key_id_of(&m);
    Ok(report)
}

/// Symbolic links under a local archive root (relative, `/`-separated).
fn symlinks_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(rel.to_string_lossy().replace('\\', "/"));
            } else if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The minisign key id (hex, as `minisign` prints it) of the manifest's signing key.
pub fn key_id_of(m: &Manifest) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(m.signing_public_key.trim())
        .ok()
        .filter(|b| b.len() >= 10)
        .map(|b| b[2..10].iter().rev().map(|x| format!("{x:02X}")).collect())
        .unwrap_or_default()
}

fn deep_partition(
    store: &Store,
    p: &manifest::Partition,
    ids: &[age::x25519::Identity],
    plain_fields: &[&str],
) -> Result<Option<u64>, String> {
    let key = store.get(&p.key).map_err(|e| e.to_string())?;
    let identity = match super::crypto::unwrap_key(&p.key, ids, &key) {
        Ok(i) => i,
        // None of the given identities is a custodian of this partition.
        Err(_) => {
            return Err(format!(
                "cannot unwrap `{}` with the given identities",
                p.key
            ))
        }
    };
    let ct = store.get(&p.file).map_err(|e| e.to_string())?;
    let plain = super::crypto::decrypt(&p.file, &[identity], &ct).map_err(|e| e.to_string())?;
    if blake3::hash(&plain).to_hex().as_str() != p.plaintext_blake3 {
        return Err("plaintext hash differs from the manifest".into());
    }
    let batches = super::read_parquet(&p.file, plain).map_err(|e| e.to_string())?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if rows != p.rows {
        return Err(format!("holds {rows} rows; the manifest says {}", p.rows));
    }
    if let Some(b) = batches.first() {
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if names
            .iter()
            .map(String::as_str)
            .ne(plain_fields.iter().copied())
        {
            return Err("columns differ from the canonical schema".into());
        }
    }
    Ok(Some(rows))
}

fn deep_vault(
    store: &Store,
    file: &str,
    key: &str,
    p: &manifest::Partition,
    ids: &[age::x25519::Identity],
) -> Result<bool, String> {
    let wrapped = store.get(key).map_err(|e| e.to_string())?;
    let Ok(identity) = super::crypto::unwrap_key(key, ids, &wrapped) else {
        // No vault identity given: the vault object is checked by hash only.
        return Ok(false);
    };
    let ct = store.get(file).map_err(|e| e.to_string())?;
    let plain = super::crypto::decrypt(file, &[identity], &ct).map_err(|e| e.to_string())?;
    if Some(blake3::hash(&plain).to_hex().to_string()) != p.vault_plaintext_blake3 {
        return Err("plaintext hash differs from the manifest".into());
    }
    let batches = super::read_parquet(file, plain).map_err(|e| e.to_string())?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if rows != p.vault_rows {
        return Err(format!(
            "holds {rows} rows; the manifest says {}",
            p.vault_rows
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe_object_path(
            "data/class=x/expiry=2030/bucket=01/a.parquet.age"
        ));
        for bad in ["../x", "/etc/passwd", "a/../b", "a//b", "", "a\\b", "./a"] {
            assert!(!safe_object_path(bad), "{bad}");
        }
    }
}
