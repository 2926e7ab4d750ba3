//! `MANIFEST.json`: what an archive holds, and its signature.
//!
//! The manifest lists every object with its size and the blake3 of its ciphertext,
//! the partitions with their row counts and plaintext hashes, the per-source
//! accounting, the canonical schema and pipeline as written, and a Merkle root over
//! the file list (RFC 9162 hashing, see [`crate::merkle`]). It is signed with minisign
//! (`MANIFEST.json.minisig`, verifiable with `minisign -Vm MANIFEST.json -p KEY.pub`).

use serde::{Deserialize, Serialize};

use crate::merkle;

/// Name of the manifest object.
pub const MANIFEST: &str = "MANIFEST.json";
/// Name of its detached signature.
pub const SIGNATURE: &str = "MANIFEST.json.minisig";
/// Archive format identifier.
pub const FORMAT: &str = "vaxarc-archive";

/// One object of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the archive root, `/`-separated.
    pub path: String,
    /// What the object is: partition, vault, key, vault-key, index, index-key,
    /// index-secret, quarantine, quarantine-key, review, review-key.
    pub role: String,
    /// Size in bytes.
    pub size: u64,
    /// blake3 of the stored bytes (ciphertext), hex.
    pub blake3: String,
}

impl FileEntry {
    /// The entry of an object about to be stored at `path` with these bytes.
    pub fn of(path: &str, role: impl Into<String>, data: &[u8]) -> FileEntry {
        FileEntry {
            path: path.to_string(),
            role: role.into(),
            size: data.len() as u64,
            blake3: blake3::hash(data).to_hex().to_string(),
        }
    }

    /// The Merkle leaf bytes: `path \0 size \0 blake3`.
    pub fn leaf(&self) -> Vec<u8> {
        format!("{}\0{}\0{}", self.path, self.size, self.blake3).into_bytes()
    }
}

/// One record partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// Partition id (16 hex digits).
    pub id: String,
    /// Retention class: routine_5y or covid_special.
    pub retention_class: String,
    /// Earliest year any record in it can expire, or "open" (no known expiry).
    pub expiry: String,
    /// Person bucket.
    pub bucket: u16,
    /// Records in the partition.
    pub rows: u64,
    /// Records with vault items.
    pub vault_rows: u64,
    /// Record partition object.
    pub file: String,
    /// Its wrapped key.
    pub key: String,
    /// Vault object (個人番号 and passport items), if any rows have them.
    pub vault_file: Option<String>,
    /// Its wrapped key (to the vault recipients).
    pub vault_key: Option<String>,
    /// blake3 of the Parquet plaintext: equal across runs with equal input.
    pub plaintext_blake3: String,
    /// blake3 of the vault Parquet plaintext.
    pub vault_plaintext_blake3: Option<String>,
}

/// The manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Archive format version (the schema's `format_version`).
    pub format_version: u32,
    /// Random id of the archive, fixed at creation.
    pub archive_id: String,
    /// 1 at migration; +1 for each purge or erase.
    pub generation: u64,
    /// Merkle root of the previous generation's manifest, if any.
    pub previous_root: Option<String>,
    /// UTC time of this generation (RFC 3339).
    pub created: String,
    /// Program that wrote it.
    pub program: Program,
    /// The municipality code from the pipeline.
    pub municipality_code: String,
    /// Custodian recipients (partition keys are wrapped to them).
    pub custodians: Vec<String>,
    /// Vault recipients.
    pub vault_recipients: Vec<String>,
    /// The minisign public key (base64 line) that signs this manifest.
    pub signing_public_key: String,
    /// Number of person buckets.
    pub buckets: u16,
    /// Number of index shards (`index/<id>/<ssss>.parquet.age`); 1 in archives written
    /// before the index was sharded (one `index/<id>.parquet.age`).
    #[serde(default = "one")]
    pub index_shards: u32,
    /// `schemas/record.toml` as used.
    pub schema_toml: String,
    /// The pipeline file as written.
    pub pipeline_toml: String,
    /// Per-source accounting.
    pub accounting: Vec<crate::ingest::FileAccounting>,
    /// Reconciliation statistics.
    pub reconciliation: serde_json::Value,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Every object except the manifest and its signature, sorted by path.
    pub files: Vec<FileEntry>,
    /// Totals.
    pub totals: Totals,
    /// Merkle root over `files` (hex).
    pub merkle_root: String,
}

fn one() -> u32 {
    1
}

/// Program identity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Program {
    /// "vaxarc".
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// Totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Rows read over all sources.
    pub rows_read: u64,
    /// Records archived.
    pub records: u64,
    /// Records merged into another.
    pub merged: u64,
    /// Rows and dose groups quarantined.
    pub quarantined: u64,
    /// Records awaiting review.
    pub review: u64,
}

/// Merkle root over file entries (sorted by path first).
pub fn files_root(files: &[FileEntry]) -> String {
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let leaves: Vec<merkle::Hash> = sorted
        .iter()
        .map(|f| merkle::leaf_hash(&f.leaf()))
        .collect();
    merkle::hex(&merkle::root(&leaves))
}

/// Sign bytes with a minisign secret key; returns the `.minisig` text.
pub fn sign(
    secret: &minisign::SecretKey,
    data: &[u8],
    trusted_comment: &str,
) -> Result<String, String> {
    minisign::sign(
        None,
        secret,
        std::io::Cursor::new(data),
        Some(trusted_comment),
        Some("vaxarc signature"),
    )
    .map(|b| b.into_string())
    .map_err(|e| e.to_string())
}

/// Verify a `.minisig` text over bytes with a minisign public key.
pub fn verify_signature(
    public: &minisign::PublicKey,
    data: &[u8],
    signature: &str,
) -> Result<(), String> {
    let sig = minisign::SignatureBox::from_string(signature).map_err(|e| e.to_string())?;
    minisign::verify(public, &sig, std::io::Cursor::new(data), true, false, false)
        .map_err(|e| e.to_string())
}
