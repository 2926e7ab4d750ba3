//! Custodian key rotation: re-wrap every wrapped object key to a new recipient set
//! without touching any data object (partitions, vault, index, quarantine, review keep
//! their ciphertext, so their blake3 and the plaintext hashes do not change).
//!
//! Which objects: the roles in [`CUSTODIAN_KEY_ROLES`] (`key`, `index-key`,
//! `quarantine-key`, `review-key`, `index-secret`) to the new custodians; `vault-key`
//! only when new vault recipients are given (and a vault identity opens them).
//!
//! Commit protocol (crash-safe; the same conventions as purge: `LOCK`, `history/`):
//! 1. take `LOCK` with a create-only put (refuse if a purge, erase or rekey holds it);
//! 2. [`recover`] an interrupted earlier run;
//! 3. unwrap each key in memory and put its new wrapping under a **new name**
//!    (`keys/<stem>.g<G+1>.key.age`); the old manifest does not list them, so until the
//!    commit the archive is in its old state. The index hash key keeps its fixed name
//!    (`keys/index-hmac.key.age`, which lookup and purge read directly): its new
//!    wrapping is staged in `history/<G+1>/keys/index-hmac.key.age`;
//! 4. copy the current manifest and signature to `history/<G>/`, the new ones to
//!    `history/<G+1>/`, then put the signature and replace `MANIFEST.json` — the commit
//!    point ([`super::commit_replace`]);
//! 5. put the staged index hash key in place, delete the old wrapped keys and the
//!    staged copy; append the `rekey` entry to the audit log from
//!    `history/<G+1>/rekey.json` (operator, time, counts: staged before the commit) and
//!    delete that ([`log_staged`]); remove `LOCK`.
//!
//! A run killed before step 4 leaves the old archive plus unlisted new key objects
//! (`verify` reports them; the next rekey deletes them). Killed between the signature
//! and the manifest: [`recover`] rolls forward from `history/<G+1>/`. Killed after the
//! commit: [`recover`] puts the staged index hash key in place and deletes the old
//! wrapped keys, and the next rekey, purge or erase appends the killed run's audit entry
//! from its staged `rekey.json` ([`log_staged`]). Re-running `vaxarc rekey` with the same recipients after a completed
//! rotation changes nothing.
//!
//! What rotation cannot do: copies of the old wrapped keys in **backups** taken before
//! the rotation still open with the old identities. Destroy the old identities (and
//! rotate before a custodian leaves, not after); see docs/runbooks.md.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use zeroize::Zeroizing;

use super::crypto::{self, Recipients};
use super::manifest::{self, FileEntry, Manifest};
use super::store::Store;
use super::{read_manifest, ArchiveError, INDEX_SECRET};

/// Roles re-wrapped to the custodians.
pub const CUSTODIAN_KEY_ROLES: &[&str] = &[
    "key",
    "index-key",
    "quarantine-key",
    "review-key",
    "registry-key",
    "index-secret",
];
/// Role re-wrapped to the vault recipients (only when new ones are given).
pub const VAULT_KEY_ROLE: &str = "vault-key";
pub use super::lock::LOCK;

pub use super::history_path;

/// The new name of a wrapped key in generation `generation`:
/// `keys/<stem>[.g<N>].key.age` → `keys/<stem>.g<generation>.key.age`.
pub fn renamed_key_path(path: &str, generation: u64) -> String {
    let stem = path.strip_suffix(".key.age").unwrap_or(path);
    let stem = match stem.rsplit_once(".g") {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => base,
        _ => stem,
    };
    format!("{stem}.g{generation}.key.age")
}

/// New recipient sets.
pub struct NewRecipients {
    /// New custodians.
    pub custodians: Recipients,
    /// New vault recipients, if the vault keys are to be re-wrapped too.
    pub vault: Option<Recipients>,
}

/// What recovery did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recovery {
    /// An interrupted commit was rolled forward from `history/`.
    pub rolled_forward: bool,
    /// The staged index hash key was put in place.
    pub restored_index_secret: bool,
    /// Objects not listed in the manifest that were deleted.
    pub removed_unlisted: u64,
    /// Generations of earlier rekeys, killed after their commit, whose audit entries
    /// this run appended ([`log_staged`]).
    pub logged: Vec<u64>,
}

/// `history/<generation>/rekey.json`: who rotated the keys of `generation`, when, and how
/// many (no key material, no personal data), staged before the commit and deleted once
/// the audit entry is appended.
pub const STAGED_ENTRY: &str = "rekey.json";

/// What a rekey's audit entry says, staged beside its new generation ([`STAGED_ENTRY`]).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
struct Staged {
    operator: String,
    time: String,
    keys_rewrapped: u64,
    vault_keys_rewrapped: u64,
}

/// Append the `rekey` audit entry of every committed generation whose staged
/// [`STAGED_ENTRY`] is still there — this run's, or an earlier rekey's killed between its
/// commit and its entry — unless the log already has it, then write a signed checkpoint
/// and delete the staged objects; returns the generations logged. A staged entry of a
/// generation never committed is not logged ([`recover`] deletes it). Call with the lock
/// held.
pub fn log_staged(store: &Store, signing: &minisign::SecretKey) -> Result<Vec<u64>, ArchiveError> {
    let (m, _) = read_manifest(store)?;
    let audit = |e: crate::audit::AuditError| {
        ArchiveError::State(format!("cannot write the rekey's audit entry: {e}"))
    };
    let mut staged: Vec<(u64, String)> = store
        .list_under("history/")?
        .into_iter()
        .filter_map(|o| {
            let g = o
                .path
                .strip_prefix("history/")?
                .strip_suffix(&format!("/{STAGED_ENTRY}"))?
                .parse::<u64>()
                .ok()?;
            (g <= m.generation).then_some((g, o.path))
        })
        .collect();
    staged.sort();
    let mut logged = Vec::new();
    for (g, path) in &staged {
        let s: Staged = serde_json::from_slice(&store.get(path)?).map_err(|e| {
            ArchiveError::State(format!(
                "`{path}` is not a staged rekey entry ({}); it was changed by hand — restore it from a backup",
                super::ClassifyName::classify_name(&e)
            ))
        })?;
        let there = crate::audit::find_entry(store, |e| {
            e.archive_id == m.archive_id && e.generation == *g && e.command == "rekey"
        })
        .map_err(audit)?
        .is_some();
        if !there {
            crate::audit::append(
                store,
                None,
                crate::audit::Event {
                    archive_id: m.archive_id.clone(),
                    generation: *g,
                    time: s.time,
                    operator: s.operator,
                    purpose: "key rotation".into(),
                    command: "rekey".into(),
                    result_count: s.keys_rewrapped + s.vault_keys_rewrapped,
                    outcome: "committed".into(),
                    ..Default::default()
                },
            )
            .map_err(audit)?;
            logged.push(*g);
        }
    }
    if !logged.is_empty() {
        crate::audit::checkpoint(store, &m.archive_id, Some(signing)).map_err(audit)?;
    }
    for (_, path) in &staged {
        store.delete_all_versions(path)?;
    }
    Ok(logged)
}

/// What a rekey did (no key material).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    /// Generation before.
    pub previous_generation: u64,
    /// Generation after (equal when nothing had to change).
    pub generation: u64,
    /// Merkle root after.
    pub merkle_root: String,
    /// Custodian-wrapped keys re-wrapped.
    pub keys_rewrapped: u64,
    /// Vault keys re-wrapped.
    pub vault_keys_rewrapped: u64,
    /// Old wrapped keys deleted.
    pub old_keys_deleted: u64,
    /// The archive already had these recipients: nothing changed.
    pub unchanged: bool,
    /// Recovery of an interrupted earlier run.
    pub recovery: Recovery,
}

/// Complete or clean up an interrupted rekey (call with the lock held).
pub fn recover(store: &Store) -> Result<Recovery, ArchiveError> {
    let mut rec = Recovery {
        rolled_forward: super::roll_forward_interrupted_commit(store)?,
        ..Recovery::default()
    };
    let (m, _) = read_manifest(store)?;
    let staged_secret = history_path(m.generation, INDEX_SECRET);
    if let Some(entry) = m.files.iter().find(|f| f.path == INDEX_SECRET) {
        let live_ok = store
            .get(INDEX_SECRET)
            .map(|b| blake3::hash(&b).to_hex().to_string() == entry.blake3)
            .unwrap_or(false);
        if !live_ok {
            if let Ok(staged) = store.get(&staged_secret) {
                if blake3::hash(&staged).to_hex().to_string() == entry.blake3 {
                    store.put(INDEX_SECRET, staged)?;
                    rec.restored_index_secret = true;
                }
            }
        }
    }
    let listed: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    for o in store.list()? {
        let later_history = o
            .path
            .strip_prefix("history/")
            .and_then(|r| r.split('/').next())
            .and_then(|g| g.parse::<u64>().ok())
            .is_some_and(|g| g > m.generation);
        let unlisted = !listed.contains(o.path.as_str()) && !super::verify::is_unlisted_ok(&o.path);
        if (later_history || unlisted || o.path == staged_secret) && o.path != LOCK {
            store.delete_all_versions(&o.path)?;
            rec.removed_unlisted += 1;
        }
    }
    // Temporary files of killed writes.
    rec.removed_unlisted += store.remove_staging_leftovers()?.len() as u64;
    Ok(rec)
}

#[cfg(test)]
thread_local! {
    /// `rekey` fails right after its commit, as if the run were killed there.
    pub(crate) static KILLED_AFTER_COMMIT: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

/// Who rotates the keys, and when.
pub struct Rotation<'a> {
    /// Signs the new manifest: the archive's signer.
    pub signing: &'a minisign::SecretKey,
    /// Its public key (base64 line), checked against the manifest's.
    pub signing_public: &'a str,
    /// RFC 3339 time of the new generation.
    pub now: &'a str,
    /// Operator id, recorded in the archive's lock.
    pub operator: &'a str,
}

/// Re-wrap every key to `new` and commit generation + 1 signed by `by.signing`, holding
/// the archive's lock in `by.operator`'s name.
/// `identities` must open the custodian keys (and the vault keys when `new.vault` is
/// set). Refuses an archive that does not verify.
pub fn rekey(
    store: &Store,
    identities: &[age::x25519::Identity],
    new: &NewRecipients,
    by: &Rotation<'_>,
    on_key: super::OnObject<'_>,
) -> Result<Outcome, ArchiveError> {
    let Rotation {
        signing,
        signing_public,
        now,
        operator,
    } = *by;
    let _lock = super::lock::acquire_lock(store, "rekey", operator, now)?;
    // Before recovery, which would delete the old generation's objects that certifying
    // run names (with the version ids it deletes): a generation committed by a purge or
    // erase killed before its certificate (a commit interrupted between its two puts
    // counts as committed).
    let (m, _, staged) = super::read_signed_manifest(store)?;
    let committed = m.generation + u64::from(staged.is_some());
    if super::uncertified(store, committed)? {
        return Err(ArchiveError::State(format!(
            "generation {committed} was committed by a purge or erase that was killed before its certificate (`{}` is there); rekey refuses until it is certified, and changed nothing",
            super::pending_path(committed)
        )));
    }
    let mut recovery = recover(store)?;
    let (m, old_text) = read_manifest(store)?;
    if m.signing_public_key.trim() != signing_public.trim() {
        return Err(ArchiveError::State(
            "the signing key is not the one that signed this archive (`signing_public_key` in the manifest); rekey keeps the signer".into(),
        ));
    }
    recovery.logged = log_staged(store, signing)?;
    let check = super::verify::verify(store, crate::schema::Schema::embedded(), None, &[])?;
    if !check.ok() {
        return Err(ArchiveError::State(format!(
            "archive `{}` does not verify ({}, first: `{}`: {}); rekey refuses to change it",
            store.location(),
            crate::commands::problems(check.problems.len()),
            check.problems[0].path,
            check.problems[0].problem
        )));
    }
    let sorted = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    let new_custodians = new.custodians.to_strings();
    let new_vault = new.vault.as_ref().map(|v| v.to_strings());
    let mut outcome = Outcome {
        previous_generation: m.generation,
        generation: m.generation,
        merkle_root: m.merkle_root.clone(),
        recovery,
        ..Outcome::default()
    };
    if sorted(&m.custodians) == sorted(&new_custodians)
        && new_vault
            .as_ref()
            .is_none_or(|v| sorted(v) == sorted(&m.vault_recipients))
    {
        outcome.unchanged = true;
        return Ok(outcome);
    }

    let generation = m.generation + 1;
    let old_sig = store.get(manifest::SIGNATURE)?;
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    let mut files: Vec<FileEntry> = Vec::with_capacity(m.files.len());
    let mut staged_secret: Option<Vec<u8>> = None;
    for f in &m.files {
        let recipients = if CUSTODIAN_KEY_ROLES.contains(&f.role.as_str()) {
            &new.custodians
        } else if f.role == VAULT_KEY_ROLE && new.vault.is_some() {
            new.vault.as_ref().expect("checked")
        } else {
            files.push(f.clone());
            continue;
        };
        let plain = Zeroizing::new(crypto::decrypt(&f.path, identities, &store.get(&f.path)?)?);
        let wrapped = crypto::encrypt(&f.path, &recipients.0, &plain)?;
        let entry_for = |path: String| FileEntry {
            path,
            role: f.role.clone(),
            size: wrapped.len() as u64,
            blake3: blake3::hash(&wrapped).to_hex().to_string(),
        };
        if f.path == INDEX_SECRET {
            files.push(entry_for(f.path.clone()));
            staged_secret = Some(wrapped);
        } else {
            let path = renamed_key_path(&f.path, generation);
            files.push(entry_for(path.clone()));
            store.put(&path, wrapped)?;
            renamed.insert(f.path.clone(), path);
        }
        if f.role == VAULT_KEY_ROLE {
            outcome.vault_keys_rewrapped += 1;
        } else {
            outcome.keys_rewrapped += 1;
        }
        on_key(1);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let mut next: Manifest = m.clone();
    next.generation = generation;
    next.previous_root = Some(m.merkle_root.clone());
    next.created = now.to_string();
    next.program.version = env!("CARGO_PKG_VERSION").into();
    next.custodians = new_custodians;
    if let Some(v) = new_vault {
        next.vault_recipients = v;
    }
    for p in &mut next.partitions {
        if let Some(n) = renamed.get(&p.key) {
            p.key = n.clone();
        }
        if let Some(n) = p.vault_key.as_ref().and_then(|k| renamed.get(k)) {
            p.vault_key = Some(n.clone());
        }
    }
    next.merkle_root = manifest::files_root(&files);
    next.files = files;
    let text =
        serde_json::to_vec_pretty(&next).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    let sig = super::sign_manifest_bytes(&next, &text, signing)?;

    store.put(&history_path(m.generation, manifest::MANIFEST), old_text)?;
    store.put(&history_path(m.generation, manifest::SIGNATURE), old_sig)?;
    if let Some(s) = &staged_secret {
        store.put(&history_path(generation, INDEX_SECRET), s.clone())?;
    }
    store.put(&history_path(generation, manifest::MANIFEST), text.clone())?;
    store.put(
        &history_path(generation, manifest::SIGNATURE),
        sig.clone().into_bytes(),
    )?;
    let entry = Staged {
        operator: operator.to_string(),
        time: now.to_string(),
        keys_rewrapped: outcome.keys_rewrapped,
        vault_keys_rewrapped: outcome.vault_keys_rewrapped,
    };
    store.put(
        &history_path(generation, STAGED_ENTRY),
        serde_json::to_vec_pretty(&entry).map_err(|e| ArchiveError::State(e.to_string()))?,
    )?;
    super::commit_replace(store, &text, &sig)?;

    // After the commit: the index hash key in place, old wrappings destroyed.
    if let Some(s) = staged_secret {
        store.put(INDEX_SECRET, s)?;
        store.delete_all_versions(&history_path(generation, INDEX_SECRET))?;
    }
    for old in renamed.keys() {
        // Every version: an old wrapped key must not stay readable by a departed custodian.
        store.delete_all_versions(old)?;
        outcome.old_keys_deleted += 1;
    }
    #[cfg(test)]
    if KILLED_AFTER_COMMIT.with(std::cell::Cell::get) {
        return Err(ArchiveError::State("test: killed after the commit".into()));
    }
    // The audit entry, under the lock (this run's staged entry, and any a killed earlier
    // run left).
    log_staged(store, signing)?;
    outcome.generation = generation;
    outcome.merkle_root = next.merkle_root;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_move_to_the_new_generation() {
        assert_eq!(
            renamed_key_path("keys/0123456789abcdef.key.age", 2),
            "keys/0123456789abcdef.g2.key.age"
        );
        assert_eq!(
            renamed_key_path("keys/0123456789abcdef.g2.key.age", 3),
            "keys/0123456789abcdef.g3.key.age"
        );
        assert_eq!(
            renamed_key_path("keys/0123.vault.key.age", 2),
            "keys/0123.vault.g2.key.age"
        );
        assert_eq!(
            renamed_key_path("keys/aaaa-g1.index.key.age", 2),
            "keys/aaaa-g1.index.g2.key.age"
        );
        assert_eq!(
            history_path(7, "MANIFEST.json"),
            "history/000007/MANIFEST.json"
        );
    }
}
