//! The tamper-evident audit log of an archive (`docs/audit.md`).
//!
//! The log is a sequence of entries, one per line: the canonical JSON of an [`Entry`]
//! (time, operator, purpose, command, keyed hashes of the persons concerned — never a
//! name or a number — result count, archive generation). Entry `seq` s is stored in
//! segment object `audit/log-<s / 4096 as 8 digits>.jsonl` ([`segment_path`]); archives
//! written before segments keep their first entries in `audit/log.jsonl`
//! ([`LEGACY_LOG`]), read first. Each line is a leaf of a Merkle tree hashed as RFC 9162
//! does ([`crate::merkle::leaf_hash`] of the line's bytes, without the newline). After
//! each command a checkpoint `audit/checkpoint-<size>.txt` is written (C2SP
//! tlog-checkpoint body: origin, size, base64 root), signed with minisign in
//! `audit/checkpoint-<size>.txt.minisig` when a signing key is at hand.
//!
//! Appending reads and rewrites only the last segment, and computes the new root and
//! the receipts' inclusion proofs from `audit/frontier.json` ([`FRONTIER`]: the roots of
//! the tree's maximal perfect subtrees, [`merkle::Frontier`]) — O(appended + log n),
//! however long the log. The frontier is a cache: when it does not match the last
//! segment (a crash between the two writes) it is rebuilt from the whole log.
//! [`verify`] recomputes the tree from every entry, checks every checkpoint's
//! signature and its consistency with the current log (RFC 9162 §2.1.4 consistency
//! proof), and names the object and line that is wrong.
//!
//! Two commands appending at the same instant can lose one entry — run audited
//! commands one at a time per archive (the checkpoints would then show the loss).

use std::collections::BTreeSet;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::archive::manifest::Manifest;
use crate::archive::store::{Expect, Store, StoreError};
use crate::merkle::{self, Hash};

/// The single log object of archives written before segments (read, never appended to).
pub const LEGACY_LOG: &str = "audit/log.jsonl";
/// Prefix of log segment objects (see [`segment_path`]).
pub const SEGMENT_PREFIX: &str = "audit/log-";
/// How a problem of the log as a whole (entries spanning segments) names its place.
pub const LOG_PATHS: &str = "audit/log-*.jsonl";
/// Entries per log segment.
pub const SEGMENT_ENTRIES: u64 = 4096;
/// The tree state appends work from (a cache of the log; see the module docs).
pub const FRONTIER: &str = "audit/frontier.json";

/// Object holding entry `seq` (unless it is one of a legacy log's).
pub fn segment_path(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{:08}.jsonl", seq / SEGMENT_ENTRIES)
}
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

/// A receipt for the last entry already in the log that `matches` (its inclusion proof
/// against the whole log as it is now), or `None`. A run that recovers an interrupted one
/// takes the entry that run appended instead of appending a second.
pub fn find_entry(
    store: &Store,
    matches: impl Fn(&Entry) -> bool,
) -> Result<Option<AppendReceipt>, AuditError> {
    let log = read_log(store)?;
    let Some(index) = log
        .lines
        .iter()
        .rposition(|l| serde_json::from_slice::<Entry>(l).is_ok_and(|e| matches(&e)))
    else {
        return Ok(None);
    };
    let leaves = log.leaves();
    Ok(Some(AppendReceipt {
        index: index as u64,
        size: leaves.len() as u64,
        root: merkle::hex(&merkle::root(&leaves)),
        leaf_hash: merkle::hex(&leaves[index]),
        inclusion_proof: merkle::inclusion_proof(&leaves, index)
            .iter()
            .map(merkle::hex)
            .collect(),
        entry: String::from_utf8_lossy(&log.lines[index]).into_owned(),
    }))
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

/// The log as stored: the lines (leaf data) in order, and where each one is.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// Each line's bytes, without the newline.
    pub lines: Vec<Vec<u8>>,
    /// (object, 1-based line) of each line, for messages.
    pub places: Vec<(String, usize)>,
    /// Lines read from [`LEGACY_LOG`] (the first ones).
    pub legacy: u64,
}

/// One object's lines: a missing final newline is tolerated, an empty line is kept (and
/// fails entry parsing in [`verify`]).
fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines
}

impl Log {
    /// Leaf hashes.
    pub fn leaves(&self) -> Vec<Hash> {
        self.lines.iter().map(|l| merkle::leaf_hash(l)).collect()
    }

    fn push_object(&mut self, path: &str, bytes: &[u8]) {
        for (i, l) in lines_of(bytes).into_iter().enumerate() {
            self.lines.push(l);
            self.places.push((path.to_string(), i + 1));
        }
    }

    /// "object:line" of entry `i`.
    pub fn place(&self, i: usize) -> String {
        match self.places.get(i) {
            Some((path, line)) => format!("{path}:{line}"),
            None => format!("{SEGMENT_PREFIX}…:{}", i + 1),
        }
    }
}

/// Read the whole log: the legacy object, then every segment in order (absent = empty).
pub fn read_log(store: &Store) -> Result<Log, AuditError> {
    let mut log = Log::default();
    match store.get(LEGACY_LOG) {
        Ok(b) => {
            log.push_object(LEGACY_LOG, &b);
            log.legacy = log.lines.len() as u64;
        }
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut segments: Vec<(u64, String)> = store
        .list_under(SEGMENT_PREFIX)?
        .into_iter()
        .filter_map(|o| {
            let n = o
                .path
                .strip_prefix(SEGMENT_PREFIX)?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()?;
            Some((n, o.path))
        })
        .collect();
    segments.sort();
    for (_, path) in segments {
        let b = store.get(&path)?;
        log.push_object(&path, &b);
    }
    Ok(log)
}

/// `audit/frontier.json`.
#[derive(Serialize, Deserialize)]
struct FrontierFile {
    /// Entries in the log.
    size: u64,
    /// Entries in the legacy object.
    legacy: u64,
    /// Subtree roots (hex), [`merkle::Frontier::blocks`].
    blocks: Vec<String>,
}

/// Where appends start: the tree's frontier, the legacy count, and the bytes of the
/// segment the next entry goes to (empty when it does not exist yet).
struct Tail {
    frontier: merkle::Frontier,
    legacy: u64,
    segment: Vec<u8>,
    /// What the segment's replacement expects (object storage: its ETag, or absent).
    expect: Expect,
}

/// The last entry's `seq` in a segment's bytes.
fn last_seq(bytes: &[u8]) -> Option<u64> {
    let line = lines_of(bytes).pop()?;
    serde_json::from_slice::<Entry>(&line).ok().map(|e| e.seq)
}

/// The append state from `audit/frontier.json` when it matches the segment it points
/// at; otherwise rebuilt from the whole log.
fn load_tail(store: &Store) -> Result<Tail, AuditError> {
    let cached = match store.get(FRONTIER) {
        Ok(b) => serde_json::from_slice::<FrontierFile>(&b).ok(),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(f) = cached {
        let blocks: Option<Vec<Hash>> = f.blocks.iter().map(|h| unhex(h)).collect();
        let frontier = blocks.map(|blocks| merkle::Frontier {
            size: f.size,
            blocks,
        });
        let path = segment_path(f.size);
        let (segment, expect) = match store.get_tagged(&path) {
            Ok((b, expect)) => (Some(b), expect),
            Err(StoreError::NotFound { .. }) => (None, store.expect_absent()),
            Err(e) => return Err(e.into()),
        };
        let matches = match &segment {
            // The next entry goes after this segment's last one.
            Some(b) => f.size > 0 && last_seq(b) == Some(f.size - 1),
            // …or starts a segment (or follows the legacy log).
            None => f.size % SEGMENT_ENTRIES == 0 || f.size == f.legacy,
        };
        if let (true, Some(frontier)) = (matches, frontier) {
            if frontier.append(&[]).is_some() && f.size >= f.legacy {
                return Ok(Tail {
                    frontier,
                    legacy: f.legacy,
                    segment: segment.unwrap_or_default(),
                    expect,
                });
            }
        }
    }
    // The log, then its last segment with its tag: another writer appending in between
    // leaves a segment that holds more than the log read (its tag would let this writer
    // append after entries it did not count); read both again then. A log whose last
    // entry is damaged never agrees: after a few reads it is taken as it is (`verify`
    // reports the damage).
    for attempt in 0.. {
        let log = read_log(store)?;
        let frontier = merkle::Frontier::of(&log.leaves());
        let (segment, expect) = match store.get_tagged(&segment_path(frontier.size)) {
            Ok((b, expect)) if frontier.size > log.legacy => (b, expect),
            Ok((_, expect)) => (Vec::new(), expect),
            Err(StoreError::NotFound { .. }) => (Vec::new(), store.expect_absent()),
            Err(e) => return Err(e.into()),
        };
        let consistent = segment.is_empty() || last_seq(&segment) == frontier.size.checked_sub(1);
        if consistent || attempt >= 8 {
            return Ok(Tail {
                frontier,
                legacy: log.legacy,
                segment,
                expect,
            });
        }
    }
    unreachable!("the loop returns")
}

fn put_frontier(store: &Store, frontier: &merkle::Frontier, legacy: u64) -> Result<(), AuditError> {
    let file = FrontierFile {
        size: frontier.size,
        legacy,
        blocks: frontier.blocks.iter().map(merkle::hex).collect(),
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| AuditError::Malformed {
        path: FRONTIER.into(),
        message: e.to_string(),
    })?;
    store.put(FRONTIER, bytes)?;
    Ok(())
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

/// The advisory lock file that serialises appends and checkpoints to a local archive's
/// log (not an archive object: verify and `audit verify` read only the log's objects).
pub const APPEND_LOCK: &str = "audit/append.lock";

/// Hold [`APPEND_LOCK`] (blocking) while the returned file lives, for a local archive.
/// Each append rewrites the last segment: two processes appending at the same instant lost
/// one's entries, which `audit verify` then reported as tampering. Object storage has no
/// such lock: there each segment write is conditional instead ([`append_all`]).
fn local_append_lock(store: &Store) -> Result<Option<std::fs::File>, AuditError> {
    let Some(root) = store.local_root() else {
        return Ok(None);
    };
    let io = |e: std::io::Error| AuditError::Malformed {
        path: APPEND_LOCK.into(),
        message: e.to_string(),
    };
    let path = root.join(APPEND_LOCK);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(Some(file))
}

/// Append several events with one write of the last segment (batch lookups; one write per
/// segment when they cross into the next). Each receipt is against the tree just after the
/// write that holds its entry.
///
/// Concurrent appenders: on a local folder they take turns ([`APPEND_LOCK`]); on object
/// storage each segment write is conditional on the segment being the version read
/// (`If-Match` its ETag, or `If-None-Match` for a new segment), and a writer that lost the
/// race reads the log's tail again and appends after the winner's entries — no entry is
/// lost or overwritten. The frontier is a cache written after each segment: one left
/// behind by a slower writer is rebuilt from the log by the next append.
///
/// The log of an archive starts with its migration's entry. A migrate killed (or failing
/// to write the log) after its commit leaves an empty log: the first append of any other
/// command then writes that entry first, rebuilt from the generation-1 manifest, with
/// outcome [`RECOVERED`] and operator `unknown` ([`recovered_migration`]).
pub fn append_all(
    store: &Store,
    secret: Option<&[u8; 32]>,
    events: Vec<Event>,
) -> Result<Vec<AppendReceipt>, AuditError> {
    let _serialised = local_append_lock(store)?;
    let mode = if events.first().is_some_and(|e| e.command != "migrate") {
        Mode::RecoverFirst
    } else {
        Mode::Plain
    };
    append_locked(store, secret, &events, mode)
}

/// How [`append_locked`] treats an empty log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Append the events.
    Plain,
    /// Found empty: write [`recovered_migration`] first (if it applies), then the events.
    RecoverFirst,
    /// Append only while the log is empty (the recovered entry itself: a writer that lost
    /// the race to another appends nothing).
    OnlyIntoEmpty,
}

/// Outcome of a migration entry written by a later command ([`append_all`]).
pub const RECOVERED: &str = "recovered";

/// The migration's entry rebuilt from the archive's manifest, when the log can only be
/// empty because migrate stopped between its commit and its entry: the manifest is still
/// generation 1 (after a purge, erase or rekey, each of which logs, an empty log means
/// removed entries), `audit/` holds no object at all (no segment, frontier or checkpoint)
/// and no certificate exists (each names its entry). `None` otherwise, and for a store
/// that is no archive.
pub fn recovered_migration(store: &Store) -> Result<Option<Event>, AuditError> {
    let audit_objects = store
        .list_under("audit/")?
        .into_iter()
        .filter(|o| o.path != APPEND_LOCK)
        .count();
    if audit_objects != 0 || !store.list_under(CERTIFICATE_PREFIX)?.is_empty() {
        return Ok(None);
    }
    let manifest = match store.get(crate::archive::manifest::MANIFEST) {
        Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes).ok(),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(manifest.filter(|m| m.generation == 1).map(|m| Event {
        archive_id: m.archive_id,
        generation: 1,
        time: m.created,
        operator: "unknown".into(),
        purpose: "migration".into(),
        command: "migrate".into(),
        result_count: m.totals.records,
        outcome: RECOVERED.into(),
        ..Default::default()
    }))
}

/// [`append_all`] with the local lock held. The rebuilt migration entry is looked for only
/// when the tail read shows an empty log (no cost to an append to a log that has entries).
fn append_locked(
    store: &Store,
    secret: Option<&[u8; 32]>,
    events: &[Event],
    mut mode: Mode,
) -> Result<Vec<AppendReceipt>, AuditError> {
    let mut receipts = Vec::with_capacity(events.len());
    let mut remaining: &[Event] = events;
    let mut lost = 0u32;
    while !remaining.is_empty() {
        let tail = load_tail(store)?;
        let first = tail.frontier.size;
        if mode == Mode::OnlyIntoEmpty && first != 0 {
            break;
        }
        if mode == Mode::RecoverFirst && first == 0 {
            mode = Mode::Plain;
            if let Some(migration) = recovered_migration(store)? {
                append_locked(store, None, &[migration], Mode::OnlyIntoEmpty)?;
                continue;
            }
        }
        // The events that go into the tail's segment (up to its last entry).
        let room = (SEGMENT_ENTRIES - first % SEGMENT_ENTRIES) as usize;
        let now = &remaining[..remaining.len().min(room)];
        let path = segment_path(first);
        let mut lines = Vec::with_capacity(now.len());
        for (i, e) in now.iter().enumerate() {
            let entry = entry_of(secret, first + i as u64, e)?;
            let line = serde_json::to_vec(&entry).map_err(|e| AuditError::Malformed {
                path: path.clone(),
                message: e.to_string(),
            })?;
            lines.push(line);
        }
        let leaves: Vec<Hash> = lines.iter().map(|l| merkle::leaf_hash(l)).collect();
        let (next, root, proofs) =
            tail.frontier
                .append(&leaves)
                .ok_or_else(|| AuditError::Malformed {
                    path: FRONTIER.into(),
                    message: "not the state of a Merkle tree".into(),
                })?;
        // The segment first (the entries), the frontier last: a crash in between leaves a
        // frontier that no longer matches the last segment, and the next append rebuilds it.
        let mut object = tail.segment;
        for line in &lines {
            object.extend_from_slice(line);
            object.push(b'\n');
        }
        match store.put_if_unchanged(&path, object, &tail.expect) {
            Ok(()) => {}
            Err(StoreError::AlreadyExists { .. }) if lost < APPEND_RETRIES => {
                // Another writer appended since this one read the tail: read it again.
                lost += 1;
                std::thread::sleep(std::time::Duration::from_millis(
                    5 * u64::from(lost) + u64::from(std::process::id() % 7),
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        put_frontier(store, &next, tail.legacy)?;
        let root = merkle::hex(&root);
        receipts.extend(lines.into_iter().zip(leaves).zip(proofs).enumerate().map(
            |(i, ((line, leaf), proof))| AppendReceipt {
                index: first + i as u64,
                size: next.size,
                root: root.clone(),
                leaf_hash: merkle::hex(&leaf),
                inclusion_proof: proof.iter().map(merkle::hex).collect(),
                entry: String::from_utf8_lossy(&line).into_owned(),
            },
        ));
        remaining = &remaining[now.len()..];
    }
    Ok(receipts)
}

/// How often an append on object storage reads the tail again after losing a race to
/// another writer before it gives up.
const APPEND_RETRIES: u32 = 64;

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
    let _serialised = local_append_lock(store)?;
    let tail = load_tail(store)?;
    let root = tail.frontier.root();
    let size = tail.frontier.size;
    let text = checkpoint_text(archive_id, size, &root);
    let path = format!("{CHECKPOINT_PREFIX}{size}.txt");
    // The text of a size is the same for every run (the log's first `size` entries), so
    // runs checkpointing one size at once — lookups on object storage, where no lock
    // serialises them — write equal texts. The text goes first, then the signature: an
    // unsigned run that finds this text keeps a signature a signed run wrote (or is about
    // to write) over it; it deletes only a signature of another text (a rewritten log).
    let sig_path = format!("{path}.minisig");
    if let Some(sk) = signer {
        let comment = format!(
            "vaxarc audit checkpoint archive={archive_id} size={size} root={}",
            merkle::hex(&root)
        );
        let sig = crate::archive::manifest::sign(sk, text.as_bytes(), &comment)
            .map_err(AuditError::Sign)?;
        store.put(&path, text.into_bytes())?;
        store.put(&sig_path, sig.into_bytes())?;
    } else {
        let same = store.get(&path).is_ok_and(|old| old == text.as_bytes());
        if !same {
            store.delete(&sig_path)?;
        }
        store.put(&path, text.into_bytes())?;
    }
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
    /// Erasure certificates whose inclusion receipt was checked against the log.
    pub receipts: u64,
    /// Problems; empty means the log verifies.
    pub problems: Vec<Problem>,
    /// Observations that are no failure (e.g. no migration entry yet).
    pub notes: Vec<String>,
}

impl Report {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Commands that write a new generation (and log it, with that generation).
const CHANGES: [&str; 3] = ["purge", "erase", "rekey"];

/// What wrote a generation the log has no entry for.
enum Unlogged {
    /// A purge or erase killed between its commit and its certificate (its pending object
    /// is there): the next purge or erase logs and certifies it.
    Uncertified,
    /// The same data objects as the generation before (path and blake3; every object but
    /// the wrapped keys), by signed manifests: only wrapped keys changed.
    KeysOnly,
    /// Records changed (or the manifests to tell are gone).
    Records,
}

/// Tell what wrote generation `g` from the signed manifests kept in `history/` (the
/// current one for the current generation).
fn unlogged_generation(
    store: &Store,
    current: &Manifest,
    g: u64,
    key: Option<&minisign::PublicKey>,
) -> Result<Unlogged, AuditError> {
    if crate::archive::uncertified(store, g).map_err(|e| AuditError::Malformed {
        path: crate::archive::history_path(g, "pending.json.age"),
        message: e.to_string(),
    })? {
        return Ok(Unlogged::Uncertified);
    }
    // The data objects (partitions, vault, index, lists: every object but wrapped keys),
    // from a manifest whose signature checks.
    let files = |g: u64| -> Option<BTreeSet<(String, String)>> {
        let m = if g == current.generation {
            current.clone()
        } else {
            let path = crate::archive::history_path(g, crate::archive::manifest::MANIFEST);
            let text = store.get(&path).ok()?;
            if let Some(k) = key {
                let sig_path = crate::archive::history_path(g, crate::archive::manifest::SIGNATURE);
                let sig = store.get(&sig_path).ok()?;
                crate::archive::manifest::verify_signature(
                    k,
                    &text,
                    &String::from_utf8_lossy(&sig),
                )
                .ok()?;
            }
            serde_json::from_slice::<Manifest>(&text).ok()?
        };
        Some(
            m.files
                .iter()
                .filter(|f| !f.role.ends_with("key") && f.role != "index-secret")
                .map(|f| (f.path.clone(), f.blake3.clone()))
                .collect(),
        )
    };
    Ok(match (files(g - 1), files(g)) {
        (Some(a), Some(b)) if a == b => Unlogged::KeysOnly,
        _ => Unlogged::Records,
    })
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
    let mut tree = merkle::Tree::new(&leaves);
    let root = tree.root();
    report.entries = leaves.len() as u64;
    report.root = merkle::hex(&root);
    // The append cache must describe this log when it claims the same size (a smaller
    // size is a crash between two writes, repaired by the next append).
    let frontier_problem = match store.get(FRONTIER) {
        Ok(b) => match serde_json::from_slice::<FrontierFile>(&b) {
            Ok(f) if f.size == report.entries => {
                let actual = merkle::Frontier::of(&leaves);
                let blocks: Vec<String> = actual.blocks.iter().map(merkle::hex).collect();
                (f.blocks != blocks || f.legacy != log.legacy)
                    .then(|| "does not match the log: an entry was altered".to_string())
            }
            Ok(f) if f.size > report.entries => Some(format!(
                "describes {} entries but the log holds {}: entries were deleted",
                f.size, report.entries
            )),
            Ok(_) => None,
            Err(_) => Some("not an audit tree state".to_string()),
        },
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut problem = |path: String, what: String| {
        report.problems.push(Problem {
            path,
            problem: what,
        })
    };
    if let Some(p) = frontier_problem {
        problem(FRONTIER.into(), p);
    }
    for (i, line) in log.lines.iter().enumerate() {
        let at = log.place(i);
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => {
                if i == 0 && e.command != "migrate" {
                    report.notes.push(format!(
                        "the first entry ({at}) is a `{}`, not the migration's: the migration's entry is missing (migrate stopped after its commit and an older vaxarc did not write the entry later)",
                        e.command
                    ));
                } else if i == 0 && e.outcome == RECOVERED {
                    report.notes.push(format!(
                        "the migration's entry ({at}) was rebuilt by a later command: migrate stopped after its commit, before its own entry (or the log was removed before anything else was logged: compare with checkpoints kept outside the archive)"
                    ));
                }
                let misplaced = i as u64 >= log.legacy && log.places[i].0 != segment_path(e.seq);
                if e.seq != i as u64 {
                    problem(at, format!("entry says seq {} but is entry {} of the log (an entry before it was deleted or inserted)", e.seq, i + 1));
                } else if misplaced {
                    problem(
                        at,
                        format!("entry {} is stored in the wrong segment", e.seq),
                    );
                } else if e.archive_id != manifest.archive_id {
                    problem(at, "entry belongs to another archive".into());
                }
            }
            Err(err) => problem(at, format!("not an audit entry ({})", err.classify_name())),
        }
    }
    // Every generation after the first was written by a purge, erase or rekey, and each
    // logs the generation it wrote: one without its entry lost it (with its certificate,
    // or the receipt check above would say so).
    let logged: BTreeSet<u64> = log
        .lines
        .iter()
        .filter_map(|l| serde_json::from_slice::<Entry>(l).ok())
        .filter(|e| CHANGES.contains(&e.command.as_str()) && e.outcome != "unchanged")
        .map(|e| e.generation)
        .collect();
    // Every purge or erase entry has its certificate (one removed, with nothing else
    // touched, leaves the entry proving an erasure nobody can show).
    let certified: BTreeSet<u64> = store
        .list_under(CERTIFICATE_PREFIX)?
        .iter()
        .filter(|o| o.path.ends_with(".json"))
        .filter_map(|o| {
            o.path
                .strip_prefix(CERTIFICATE_PREFIX)?
                .get(..6)?
                .parse()
                .ok()
        })
        .collect();
    for (i, line) in log.lines.iter().enumerate() {
        let Ok(e) = serde_json::from_slice::<Entry>(line) else {
            continue;
        };
        let erasure = matches!(e.command.as_str(), "purge" | "erase") && e.outcome == "erased";
        if erasure && !certified.contains(&e.generation) {
            problem(
                log.place(i),
                format!(
                    "the {} of generation {} has no certificate (`{CERTIFICATE_PREFIX}{:06}-….json`): it was removed",
                    e.command, e.generation, e.generation
                ),
            );
        }
    }
    if !log.lines.is_empty() {
        for g in (2..=manifest.generation).filter(|g| !logged.contains(g)) {
            match unlogged_generation(store, manifest, g, key)? {
                Unlogged::Uncertified => report.notes.push(format!(
                    "generation {g} was committed by a purge or erase killed before its certificate and entry: the next purge or erase writes both"
                )),
                Unlogged::KeysOnly => report.notes.push(format!(
                    "generation {g} changed only the wrapped keys (a rekey) and has no `rekey` entry: vaxarc logs rekeys since 2026-12-07; a rekey killed right after its commit left its entry in `history/{g:06}/rekey.json` (since 2026-12-08), which the next rekey, purge or erase appends"
                )),
                Unlogged::Records => problem(
                    LOG_PATHS.into(),
                    format!(
                        "generation {g} changed the archive's records (a purge or erase) but the log has no entry for it: entries were removed (with its certificate)"
                    ),
                ),
            }
        }
    }
    if log.lines.is_empty() && manifest.generation > 1 {
        problem(
            LOG_PATHS.into(),
            format!(
                "the log is empty but the archive is at generation {}: its purge, erase or rekey logged, so entries were removed (or that run was killed right after its commit: rerun it)",
                manifest.generation
            ),
        );
    } else if log.lines.is_empty() {
        report.notes.push(format!(
            "the log is empty: migrate stopped after its commit, before its entry (or the log was removed: compare with checkpoints kept outside the archive); the next command that logs (verify, lookup, purge, erase) writes the migration's entry first, with outcome `{RECOVERED}`"
        ));
    }
    // Each erasure certificate carries its entry's inclusion receipt: the entry must still
    // be the log's leaf at that index, and the tree the receipt names a prefix of this log
    // (a log removed, truncated or rewritten after a purge or erase fails here, as it does
    // in `certificate verify`).
    for o in store.list_under(CERTIFICATE_PREFIX)? {
        if !o.path.ends_with(".json") {
            continue;
        }
        let bytes = store.get(&o.path)?;
        // Signed by the archive's key: a receipt rewritten along with the log (and
        // recomputed to match it) is caught by the signature.
        if let Some(k) = key {
            let sig_path = format!("{}.minisig", o.path);
            match store.get(&sig_path) {
                Ok(sig) => {
                    if let Err(e) = crate::archive::manifest::verify_signature(
                        k,
                        &bytes,
                        &String::from_utf8_lossy(&sig),
                    ) {
                        problem(
                            sig_path,
                            format!("certificate signature does not verify: {e}"),
                        );
                    }
                }
                Err(StoreError::NotFound { .. }) => {
                    problem(sig_path, "the certificate's signature is missing".into())
                }
                Err(e) => return Err(e.into()),
            }
        }
        let receipt = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|c| c.get("audit").cloned())
            .and_then(|a| serde_json::from_value::<AppendReceipt>(a).ok());
        let Some(receipt) = receipt else {
            problem(o.path, "carries no audit-log inclusion receipt".into());
            continue;
        };
        report.receipts += 1;
        let i = receipt.index as usize;
        let receipt_root = unhex(&receipt.root);
        if !verify_inclusion(&receipt) {
            problem(o.path, "its audit inclusion proof does not verify".into());
        } else if log.lines.get(i).map(Vec::as_slice) != Some(receipt.entry.as_bytes()) {
            let at = if i < log.lines.len() {
                log.place(i)
            } else {
                LOG_PATHS.to_string()
            };
            problem(
                at,
                format!(
                    "entry {} is missing or differs from the one {} proves: entries were altered or removed",
                    receipt.index + 1,
                    o.path
                ),
            );
        } else if receipt.size as usize > leaves.len()
            || !receipt_root.is_some_and(|r| {
                let proof = tree.consistency_proof(receipt.size as usize);
                merkle::verify_consistency(receipt.size as usize, leaves.len(), &proof, &r, &root)
            })
        {
            problem(
                LOG_PATHS.into(),
                format!(
                    "not consistent with the log of {} entries that {} proves its entry in: an entry before it was altered, deleted or inserted",
                    receipt.size, o.path
                ),
            );
        }
    }
    let mut checkpoints: Vec<(u64, String)> = store
        .list_under(CHECKPOINT_PREFIX)?
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
                LOG_PATHS.into(),
                format!(
                    "{path} covers {size} entries but the log holds only {}: entries were deleted",
                    leaves.len()
                ),
            );
            continue;
        }
        let proof = tree.consistency_proof(size as usize);
        let consistent =
            merkle::verify_consistency(size as usize, leaves.len(), &proof, &cp_root, &root);
        if consistent {
            last_good = last_good.max(size);
        } else {
            let from = (last_good as usize).min(leaves.len().saturating_sub(1));
            let to = (size as usize)
                .saturating_sub(1)
                .min(leaves.len().saturating_sub(1));
            problem(
                LOG_PATHS.into(),
                format!(
                    "not consistent with {path}: an entry among entries {}..={size} ({} to {}) was altered, deleted or inserted",
                    last_good + 1,
                    log.place(from),
                    log.place(to),
                ),
            );
        }
    }
    Ok(report)
}

use crate::archive::ClassifyName;
use crate::purge::certificate::PREFIX as CERTIFICATE_PREFIX;

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
