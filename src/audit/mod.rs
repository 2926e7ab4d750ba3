//! The tamper-evident audit log of an archive (`docs/audit.md`).
//!
//! `audit/log.jsonl` holds one entry per line: the canonical JSON of an [`Entry`] (time,
//! operator, purpose, command, keyed hashes of the persons concerned — never a name or
//! a number — result count, archive generation). Each line is a leaf of a Merkle tree
//! hashed as RFC 9162 does ([`crate::merkle::leaf_hash`] of the line's bytes, without
//! the newline). After each command a checkpoint `audit/checkpoint-<size>.txt` is
//! written (C2SP tlog-checkpoint body: origin, size, base64 root), signed with minisign
//! in `audit/checkpoint-<size>.txt.minisig` when a signing key is at hand.
//! [`verify`] recomputes the tree, checks every checkpoint's signature and its
//! consistency with the current log (RFC 9162 §2.1.4 consistency proof), and names
//! the line or file that is wrong.
//!
//! All I/O goes through [`Store`]. Appending rewrites the log object atomically (it is
//! small); two commands appending at the same instant can lose one entry — run audited
//! commands one at a time per archive (the checkpoints would then show the loss).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::archive::manifest::Manifest;
use crate::archive::store::{Store, StoreError};
use crate::merkle::{self, Hash};

/// Object path of the log.
pub const LOG: &str = "audit/log.jsonl";
/// Prefix of checkpoint objects.
pub const CHECKPOINT_PREFIX: &str = "audit/checkpoint-";
/// Hash kind of the person references in entries (see [`crate::archive::keyed_hash`]).
pub const PERSON_KIND: &str = "audit-person";
/// Hash kind of the query references in entries.
pub const QUERY_KIND: &str = "audit-query";

/// An audit failure: which object, never a value.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log or a checkpoint cannot be read.
    #[error("audit object `{path}`: {message}")]
    Malformed { path: String, message: String },
    /// A person reference was asked for without the archive hash key.
    #[error("an audit entry names persons but the archive hash key is not available (pass a custodian --identity)")]
    NoSecret,
    /// Signing failed.
    #[error("cannot sign the audit checkpoint: {0}")]
    Sign(String),
}

/// What a command reports to the log. `persons` are the `person_hash` values of the
/// persons concerned (operational pseudonyms); [`append`] stores only their keyed hash
/// under kind [`PERSON_KIND`]. `query` is a canonical query (e.g. `atena\0123`), stored
/// only as a keyed hash under kind [`QUERY_KIND`], so a search that found nobody still
/// leaves a trace that can be matched later by someone holding the key.
#[derive(Clone, Default)]
pub struct Event {
    /// Archive id.
    pub archive_id: String,
    /// Archive generation the command saw.
    pub generation: u64,
    /// RFC 3339 UTC time.
    pub time: String,
    /// Operator id as given.
    pub operator: String,
    /// Purpose as given.
    pub purpose: String,
    /// Command, e.g. `lookup`, `migrate`, `verify`, `purge`, `erase`.
    pub command: String,
    /// `person_hash` values concerned (hashed again before storing).
    pub persons: Vec<String>,
    /// Canonical query text (hashed before storing), if any.
    pub query: Option<String>,
    /// Result count (records found, records written, problems found…).
    pub result_count: u64,
    /// Outcome word: `found`, `not_found`, `candidates`, `ok`, `problems`, …
    pub outcome: String,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({}, {} persons)", self.command, self.persons.len())
    }
}

/// One stored entry: the canonical JSON of this struct (fields in this order) is a line
/// of the log and the data of its Merkle leaf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 0-based position in the log.
    pub seq: u64,
    /// RFC 3339 UTC time.
    pub time: String,
    /// Archive id.
    pub archive_id: String,
    /// Archive generation.
    pub generation: u64,
    /// Operator id.
    pub operator: String,
    /// Purpose.
    pub purpose: String,
    /// Command.
    pub command: String,
    /// Keyed hashes (kind `audit-person`) of the persons concerned, sorted.
    pub persons: Vec<String>,
    /// Keyed hash (kind `audit-query`) of the query, if any.
    pub query: Option<String>,
    /// Result count.
    pub result_count: u64,
    /// Outcome word.
    pub outcome: String,
}

/// Proof that an entry is in the log: its position, the tree it was checked against and
/// the RFC 9162 inclusion proof. Erasure certificates carry this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReceipt {
    /// 0-based index of the entry (its leaf).
    pub index: u64,
    /// Tree size after the append.
    pub size: u64,
    /// Merkle root (hex) of the tree of `size` leaves.
    pub root: String,
    /// Leaf hash (hex) of the entry.
    pub leaf_hash: String,
    /// Inclusion proof (hex hashes), RFC 9162 §2.1.3.
    pub inclusion_proof: Vec<String>,
    /// The exact entry line (canonical JSON, the leaf data).
    pub entry: String,
}

/// The log as stored: the lines (leaf data) in order.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// Each line's bytes, without the newline.
    pub lines: Vec<Vec<u8>>,
}

impl Log {
    /// Leaf hashes.
    pub fn leaves(&self) -> Vec<Hash> {
        self.lines.iter().map(|l| merkle::leaf_hash(l)).collect()
    }

    /// Bytes of the object.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for l in &self.lines {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        out
    }

    /// Parse the object's bytes: one line per entry; a missing final newline is
    /// tolerated, an empty line is kept (and fails entry parsing in [`verify`]).
    pub fn parse(bytes: &[u8]) -> Log {
        let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        if lines.last().is_some_and(Vec::is_empty) {
            lines.pop();
        }
        Log { lines }
    }
}

/// Read the log (absent = empty).
pub fn read_log(store: &Store) -> Result<Log, AuditError> {
    match store.get(LOG) {
        Ok(b) => Ok(Log::parse(&b)),
        Err(StoreError::NotFound { .. }) => Ok(Log::default()),
        Err(e) => Err(e.into()),
    }
}

/// Build the stored entry of an event (pure).
pub fn entry_of(secret: Option<&[u8; 32]>, seq: u64, e: &Event) -> Result<Entry, AuditError> {
    let hash = |kind: &str, v: &str| {
        secret
            .map(|s| crate::archive::keyed_hash(s, kind, v))
            .ok_or(AuditError::NoSecret)
    };
    let mut persons = e
        .persons
        .iter()
        .map(|p| hash(PERSON_KIND, p))
        .collect::<Result<Vec<_>, _>>()?;
    persons.sort();
    persons.dedup();
    let query = e
        .query
        .as_deref()
        .map(|q| hash(QUERY_KIND, q))
        .transpose()?;
    Ok(Entry {
        seq,
        time: e.time.clone(),
        archive_id: e.archive_id.clone(),
        generation: e.generation,
        operator: e.operator.clone(),
        purpose: e.purpose.clone(),
        command: e.command.clone(),
        persons,
        query,
        result_count: e.result_count,
        outcome: e.outcome.clone(),
    })
}

/// Append one event; returns its inclusion receipt. `secret` is the archive hash key
/// (needed when the event names persons or a query).
pub fn append(
    store: &Store,
    secret: Option<&[u8; 32]>,
    event: Event,
) -> Result<AppendReceipt, AuditError> {
    let mut r = append_all(store, secret, vec![event])?;
    Ok(r.pop().expect("one event, one receipt"))
}

/// Append several events with one rewrite of the log (batch lookups). Receipts are
/// against the tree after the last append.
pub fn append_all(
    store: &Store,
    secret: Option<&[u8; 32]>,
    events: Vec<Event>,
) -> Result<Vec<AppendReceipt>, AuditError> {
    let mut log = read_log(store)?;
    let first = log.lines.len() as u64;
    for (i, e) in events.iter().enumerate() {
        let entry = entry_of(secret, first + i as u64, e)?;
        let line = serde_json::to_vec(&entry).map_err(|e| AuditError::Malformed {
            path: LOG.into(),
            message: e.to_string(),
        })?;
        log.lines.push(line);
    }
    store.put(LOG, log.to_bytes())?;
    let leaves = log.leaves();
    let mut tree = merkle::Tree::new(&leaves);
    let root = merkle::hex(&tree.root());
    let size = leaves.len() as u64;
    Ok((first..size)
        .map(|i| AppendReceipt {
            index: i,
            size,
            root: root.clone(),
            leaf_hash: merkle::hex(&leaves[i as usize]),
            inclusion_proof: tree
                .inclusion_proof(i as usize)
                .iter()
                .map(merkle::hex)
                .collect(),
            entry: String::from_utf8_lossy(&log.lines[i as usize]).into_owned(),
        })
        .collect())
}

/// Check a receipt on its own: the entry's leaf hash and the inclusion proof against
/// the receipt's root (pair it with a signed checkpoint of that size and root).
pub fn verify_inclusion(receipt: &AppendReceipt) -> bool {
    let leaf = merkle::leaf_hash(receipt.entry.as_bytes());
    let (Some(root), Some(proof)) = (
        unhex(&receipt.root),
        receipt
            .inclusion_proof
            .iter()
            .map(|h| unhex(h))
            .collect::<Option<Vec<Hash>>>(),
    ) else {
        return false;
    };
    merkle::hex(&leaf) == receipt.leaf_hash
        && merkle::verify_inclusion(
            &leaf,
            receipt.index as usize,
            receipt.size as usize,
            &proof,
            &root,
        )
}

/// A checkpoint: origin, size, root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// `vaxarc-audit/<archive_id>`.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root (hex).
    pub root: String,
    /// Object path.
    pub path: String,
    /// Whether a signature was written.
    pub signed: bool,
}

/// Text of a checkpoint body (C2SP tlog-checkpoint's three lines).
pub fn checkpoint_text(archive_id: &str, size: u64, root: &Hash) -> String {
    format!(
        "vaxarc-audit/{archive_id}\n{size}\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(root)
    )
}

/// Parse a checkpoint body into (origin, size, root).
pub fn parse_checkpoint(text: &str) -> Option<(String, u64, Hash)> {
    let mut lines = text.lines();
    let origin = lines.next()?.to_string();
    let size = lines.next()?.parse().ok()?;
    let root = base64::engine::general_purpose::STANDARD
        .decode(lines.next()?)
        .ok()?;
    Some((origin, size, root.try_into().ok()?))
}

/// Write the checkpoint of the current log (and its minisign signature when `signer`
/// is given). Call once at the end of each audited command.
pub fn checkpoint(
    store: &Store,
    archive_id: &str,
    signer: Option<&minisign::SecretKey>,
) -> Result<Checkpoint, AuditError> {
    let log = read_log(store)?;
    let leaves = log.leaves();
    let root = merkle::root(&leaves);
    let size = leaves.len() as u64;
    let text = checkpoint_text(archive_id, size, &root);
    let path = format!("{CHECKPOINT_PREFIX}{size}.txt");
    if let Some(sk) = signer {
        let comment = format!(
            "vaxarc audit checkpoint archive={archive_id} size={size} root={}",
            merkle::hex(&root)
        );
        let sig = crate::archive::manifest::sign(sk, text.as_bytes(), &comment)
            .map_err(AuditError::Sign)?;
        store.put(&format!("{path}.minisig"), sig.into_bytes())?;
    } else {
        // An unsigned checkpoint must not keep an older signature of another text.
        store.delete(&format!("{path}.minisig"))?;
    }
    store.put(&path, text.into_bytes())?;
    Ok(Checkpoint {
        origin: format!("vaxarc-audit/{archive_id}"),
        size,
        root: merkle::hex(&root),
        path,
        signed: signer.is_some(),
    })
}

/// One problem found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Object (and line) concerned.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// Result of [`verify`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Entries in the log.
    pub entries: u64,
    /// Root (hex) of the whole log.
    pub root: String,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Of which carried a valid signature.
    pub signed_checkpoints: u64,
    /// Of which had no signature (reported, not a failure: see docs/audit.md).
    pub unsigned_checkpoints: Vec<String>,
    /// Problems; empty means the log verifies.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verify the log: every line an entry with the right `seq` and archive id; every
/// checkpoint signed (when a signature is present it must verify with `key`), and
/// consistent with the current log by an RFC 9162 consistency proof.
pub fn verify(
    store: &Store,
    manifest: &Manifest,
    key: Option<&minisign::PublicKey>,
) -> Result<Report, AuditError> {
    let mut report = Report::default();
    let log = read_log(store)?;
    let leaves = log.leaves();
    let root = merkle::root(&leaves);
    report.entries = leaves.len() as u64;
    report.root = merkle::hex(&root);
    let mut problem = |path: String, what: String| {
        report.problems.push(Problem {
            path,
            problem: what,
        })
    };
    for (i, line) in log.lines.iter().enumerate() {
        let at = format!("{LOG}:{}", i + 1);
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => {
                if e.seq != i as u64 {
                    problem(at, format!("entry says seq {} but is line {} (an entry before it was deleted or inserted)", e.seq, i + 1));
                } else if e.archive_id != manifest.archive_id {
                    problem(at, "entry belongs to another archive".into());
                }
            }
            Err(err) => problem(at, format!("not an audit entry ({})", err.classify_name())),
        }
    }
    let mut checkpoints: Vec<(u64, String)> = store
        .list()?
        .into_iter()
        .filter_map(|o| {
            let n = o
                .path
                .strip_prefix(CHECKPOINT_PREFIX)?
                .strip_suffix(".txt")?
                .parse()
                .ok()?;
            Some((n, o.path))
        })
        .collect();
    checkpoints.sort();
    let origin = format!("vaxarc-audit/{}", manifest.archive_id);
    let mut last_good = 0u64;
    for (named_size, path) in &checkpoints {
        report.checkpoints += 1;
        let text = store.get(path)?;
        let Some((o, size, cp_root)) = std::str::from_utf8(&text).ok().and_then(parse_checkpoint)
        else {
            problem(
                path.clone(),
                "not a checkpoint (origin, size, base64 root)".into(),
            );
            continue;
        };
        if o != origin {
            problem(path.clone(), "origin names another archive".into());
        }
        if size != *named_size {
            problem(
                path.clone(),
                format!("says size {size} but is named for size {named_size}"),
            );
        }
        let sig_path = format!("{path}.minisig");
        match store.get(&sig_path) {
            Ok(sig) => match key {
                Some(k) => match crate::archive::manifest::verify_signature(
                    k,
                    &text,
                    &String::from_utf8_lossy(&sig),
                ) {
                    Ok(()) => report.signed_checkpoints += 1,
                    Err(e) => problem(sig_path.clone(), format!("signature does not verify: {e}")),
                },
                None => problem(
                    sig_path.clone(),
                    "no public key to check the signature".into(),
                ),
            },
            Err(StoreError::NotFound { .. }) => report.unsigned_checkpoints.push(path.clone()),
            Err(e) => return Err(e.into()),
        }
        if size > leaves.len() as u64 {
            problem(
                LOG.into(),
                format!(
                    "{path} covers {size} entries but the log holds only {}: entries were deleted",
                    leaves.len()
                ),
            );
            continue;
        }
        let proof = merkle::consistency_proof(&leaves, size as usize);
        let consistent =
            merkle::verify_consistency(size as usize, leaves.len(), &proof, &cp_root, &root);
        if consistent {
            last_good = last_good.max(size);
        } else {
            problem(
                LOG.into(),
                format!(
                    "not consistent with {path}: an entry among lines {}..={size} was altered, deleted or inserted",
                    last_good + 1
                ),
            );
        }
    }
    Ok(report)
}

trait ClassifyName {
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

/// Parse 64 hex digits.
pub fn unhex(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
