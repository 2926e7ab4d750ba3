//! The one storage abstraction under the archive: `object_store` (arrow-rs's crate).
//!
//! `--archive` is a local folder (`LocalFileSystem` with fsync on, so a successful put is
//! durable and atomic: staged file, fsync, rename) or `s3://bucket/prefix` on any
//! S3-compatible object store (issue 11; see `docs/object-storage.md`). Nothing above
//! this module touches the file system or the network for archive objects.
//!
//! On S3 the commit point ([`Store::put_new`]) is a conditional put
//! (`If-None-Match: *`), so two writers cannot both commit. The calls `object_store`
//! does not make — listing and deleting object *versions*, reading the bucket's
//! versioning and object-lock configuration — go through a small SigV4-signed client
//! in this module ([`Store::delete_all_versions`], [`Store::list_versions`],
//! [`Store::get_version`], [`Store::deletion_guard`]), with the same credentials.
//!
//! Credentials come from the environment or a shared-credentials profile and are never
//! printed: every error message from the S3 backend passes through [`redact`].
//!
//! The archive code is synchronous; this module owns a small current-thread tokio
//! runtime and blocks on each call.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AwsCredentialProvider, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// A storage failure: which object and what happened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The archive location is not usable.
    #[error("cannot open archive `{location}`: {message}")]
    Open { location: String, message: String },
    /// A named object failed.
    #[error("archive object `{path}`: {message}")]
    Object { path: String, message: String },
    /// A conditional put found the object already there.
    #[error("archive object `{path}` already exists (another writer committed first)")]
    AlreadyExists { path: String },
    /// An object is absent.
    #[error("archive object `{path}` is missing")]
    NotFound { path: String },
}

/// The state of an object a conditional write expects ([`Store::put_if_unchanged`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No check (a local folder: writers hold a file lock).
    Unchecked,
    /// The object does not exist.
    Absent,
    /// The object's current ETag.
    Tag(String),
}

/// Metadata of one stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Path relative to the archive root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// One stored version of an object (S3 versioned buckets keep every version until it is
/// deleted by id).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ObjectVersion {
    /// The version id (`"null"` for an object written while the bucket was unversioned,
    /// and for the single version of a local file).
    pub version_id: String,
    /// Whether it is the current version.
    pub is_latest: bool,
    /// A delete marker (what a plain delete leaves on a versioned bucket) rather than data.
    pub delete_marker: bool,
    /// Size in bytes (0 for a delete marker).
    pub size: u64,
}

/// Bucket versioning state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Versioning {
    /// A local folder: one copy of each file, no versions.
    NotApplicable,
    /// Versioning was never enabled: one version (`"null"`) per object.
    Unversioned,
    /// Every overwrite and delete keeps the previous version.
    Enabled,
    /// Versioning was enabled and then suspended: old versions are still there.
    Suspended,
}

/// Default retention of an object-lock bucket.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Retention {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    /// Retention period in days, if given in days.
    pub days: Option<u32>,
    /// Retention period in years, if given in years.
    pub years: Option<u32>,
}

/// What the storage allows a purge or erase to delete, checked before it changes
/// anything ([`Store::deletion_guard`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeletionPolicy {
    /// `local` or `s3`.
    pub backend: String,
    /// Bucket versioning state.
    pub versioning: Versioning,
    /// MFA delete is on (deleting a version needs an MFA token vaxarc does not have).
    pub mfa_delete: bool,
    /// Object lock is enabled on the bucket.
    pub object_lock: bool,
    /// The bucket's default retention, if object lock has one.
    pub default_retention: Option<Retention>,
    /// Why deleting is not possible, when it is not: a purge or erase must then refuse
    /// before changing anything, and print this.
    pub refusal: Option<String>,
}

impl DeletionPolicy {
    /// True when every version of an object can be deleted.
    pub fn deletion_allowed(&self) -> bool {
        self.refusal.is_none()
    }

    /// True when a plain delete would leave old versions readable, so destroyed objects
    /// must go through [`Store::delete_all_versions`].
    pub fn keeps_versions(&self) -> bool {
        matches!(self.versioning, Versioning::Enabled | Versioning::Suspended)
    }
}

/// Bytes a [`Ranged`] reader fetches at a time.
pub const RANGE_BLOCK: u64 = 256 * 1024;
/// Blocks a [`Ranged`] reader keeps.
const RANGE_CACHE: usize = 4;

/// An object read by ranges (see [`Store::ranged`]). Owns handles to the store, so it
/// can outlive the borrow that made it.
pub struct Ranged {
    inner: Arc<dyn ObjectStore>,
    runtime: Arc<tokio::runtime::Runtime>,
    location: ObjectPath,
    /// A local archive's file, opened once and read by position (see [`Store::ranged`]).
    file: Option<std::fs::File>,
    len: u64,
    pos: u64,
    /// (block number, bytes), most recently used last.
    blocks: Vec<(u64, Bytes)>,
    /// Bytes held from `window.0` on: what [`std::io::BufRead`] hands out and reads
    /// inside it are served from (see [`Ranged::prefetch`]).
    window: (u64, Bytes),
    /// Bytes fetched so far.
    pub fetched: u64,
}

impl std::fmt::Debug for Ranged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ranged({})", self.location)
    }
}

impl Ranged {
    /// Size of the object.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty object.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read up to `max` bytes from the current position into the reader's window and
    /// return them: later reads of those bytes, and [`std::io::BufRead`], are served from
    /// memory (an age header is parsed a few bytes at a time).
    pub fn prefetch(&mut self, max: usize) -> std::io::Result<Bytes> {
        let want = (max as u64).min(self.len.saturating_sub(self.pos)) as usize;
        let start = self.pos;
        let mut buf = vec![0u8; want];
        std::io::Read::read_exact(self, &mut buf)?;
        self.pos = start;
        let bytes = Bytes::from(buf);
        self.window = (start, bytes.clone());
        Ok(bytes)
    }

    /// The window's bytes from the current position on (empty outside it).
    fn in_window(&self) -> &[u8] {
        let (start, bytes) = &self.window;
        match self.pos.checked_sub(*start) {
            Some(off) if off < bytes.len() as u64 => &bytes[off as usize..],
            _ => &[],
        }
    }

    fn short(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("`{}` is shorter than listed", self.location),
        )
    }

    fn block(&mut self, n: u64) -> std::io::Result<Bytes> {
        if let Some(i) = self.blocks.iter().position(|(b, _)| *b == n) {
            let hit = self.blocks.remove(i);
            let bytes = hit.1.clone();
            self.blocks.push(hit);
            return Ok(bytes);
        }
        let start = n * RANGE_BLOCK;
        let end = (start + RANGE_BLOCK).min(self.len);
        let bytes = self
            .runtime
            .block_on(self.inner.get_range(&self.location, start..end))
            .map_err(|e| std::io::Error::other(format!("`{}`: {e}", self.location)))?;
        if bytes.len() as u64 != end - start {
            return Err(self.short());
        }
        self.fetched += bytes.len() as u64;
        if self.blocks.len() >= RANGE_CACHE {
            self.blocks.remove(0);
        }
        self.blocks.push((n, bytes.clone()));
        Ok(bytes)
    }
}

impl std::io::Read for Ranged {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let held = self.in_window();
        if !held.is_empty() {
            let take = held.len().min(buf.len());
            buf[..take].copy_from_slice(&held[..take]);
            self.pos += take as u64;
            return Ok(take);
        }
        if let Some(file) = &self.file {
            // A local file: read in place, no block copy (the page cache is the cache).
            let want = buf.len().min((self.len - self.pos) as usize);
            let n = read_at(file, &mut buf[..want], self.pos)
                .map_err(|e| std::io::Error::new(e.kind(), format!("`{}`: {e}", self.location)))?;
            if n == 0 {
                return Err(self.short());
            }
            self.pos += n as u64;
            self.fetched += n as u64;
            return Ok(n);
        }
        let n = self.pos / RANGE_BLOCK;
        let block = self.block(n)?;
        let off = (self.pos - n * RANGE_BLOCK) as usize;
        let take = (block.len() - off).min(buf.len());
        buf[..take].copy_from_slice(&block[off..off + take]);
        self.pos += take as u64;
        Ok(take)
    }
}

impl std::io::Seek for Ranged {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            std::io::SeekFrom::Start(o) => Some(o),
            std::io::SeekFrom::End(o) => self.len.checked_add_signed(o),
            std::io::SeekFrom::Current(o) => self.pos.checked_add_signed(o),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        self.pos = target;
        Ok(target)
    }
}

impl std::io::BufRead for Ranged {
    /// The window from the current position; past it, a fresh window of
    /// [`BUFREAD_WINDOW`] bytes.
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos < self.len && self.in_window().is_empty() {
            self.prefetch(BUFREAD_WINDOW)?;
        }
        Ok(self.in_window())
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt.min(self.in_window().len()) as u64;
    }
}

/// Bytes [`std::io::BufRead::fill_buf`] reads into a [`Ranged`] window at a time.
const BUFREAD_WINDOW: usize = 4096;

/// Read from `file` at byte `offset` into `buf` (the bytes read; 0 at the end).
#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Read from `file` at byte `offset` into `buf` (the bytes read; 0 at the end).
#[cfg(not(unix))]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::io::{Read, Seek};
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.read(buf)
}

/// An archive location.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    runtime: Arc<tokio::runtime::Runtime>,
    location: String,
    local_root: Option<std::path::PathBuf>,
    /// The same store as `inner` when the archive is a local folder: whole and ranged
    /// reads go straight to the file (see [`Store::local_file`]).
    local: Option<Arc<LocalFileSystem>>,
    s3: Option<S3Api>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.location)
    }
}

impl Store {
    /// Open a new archive's location: [`Store::open`], a local folder created first if
    /// absent (only `migrate` writes where nothing was).
    pub fn create(location: &str) -> Result<Store, StoreError> {
        if !location.contains("://") {
            let root = std::path::Path::new(location);
            if !root.exists() {
                std::fs::create_dir_all(root).map_err(|e| StoreError::Open {
                    location: display_location(location),
                    message: e.to_string(),
                })?;
            }
        }
        Self::open(location)
    }

    /// Open an existing location: a local folder or `s3://bucket/prefix`, with the
    /// process environment (see `docs/object-storage.md` for the variables read). A local
    /// folder that does not exist is an error (a mistyped path must not leave a folder).
    pub fn open(location: &str) -> Result<Store, StoreError> {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::open_with_env(location, &vars)
    }

    /// [`Store::open`] with an explicit environment (`AWS_*` variables, `HOME`) instead of
    /// the process's: for tests and embedding.
    pub fn open_with_env(location: &str, vars: &[(String, String)]) -> Result<Store, StoreError> {
        let open_err = |message: String| StoreError::Open {
            location: display_location(location),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        if let Some(rest) = location.strip_prefix("s3://") {
            return Self::open_s3(location, rest, runtime, vars);
        }
        if location.contains("://") {
            return Err(open_err(
                "only local folders and s3://bucket/prefix are supported".into(),
            ));
        }
        let root = std::path::PathBuf::from(location);
        if !root.exists() {
            return Err(open_err("no such folder".into()));
        }
        if !root.is_dir() {
            return Err(open_err(
                "it is a file, not a folder: name a folder (new or holding an archive)".into(),
            ));
        }
        let root = root.canonicalize().map_err(|e| open_err(e.to_string()))?;
        let fs = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| open_err(e.to_string()))?
                .with_fsync(true),
        );
        Ok(Store {
            inner: fs.clone(),
            runtime: Arc::new(runtime),
            location: location.to_string(),
            local_root: Some(root),
            local: Some(fs),
            s3: None,
        })
    }

    fn open_s3(
        location: &str,
        rest: &str,
        runtime: tokio::runtime::Runtime,
        vars: &[(String, String)],
    ) -> Result<Store, StoreError> {
        let open_err = |message: String| StoreError::Open {
            location: display_location(location),
            message,
        };
        let (bucket, prefix) = parse_s3_location(rest).map_err(open_err)?;
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.trim().is_empty())
        };
        let config = S3Config::from_vars(&var).map_err(open_err)?;
        // The rest of the AWS chain (web identity, container and instance credentials,
        // AWS_ALLOW_HTTP, ...) as `AmazonS3Builder::from_env` would read it.
        let mut builder = AmazonS3Builder::new();
        for (k, v) in vars {
            if k.starts_with("AWS_") {
                if let Ok(key) = k.to_ascii_lowercase().parse() {
                    builder = builder.with_config(key, v);
                }
            }
        }
        let mut builder = builder
            .with_bucket_name(&bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some((key_id, secret, token)) = &config.static_credentials {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
        }
        let s3 = builder
            .build()
            .map_err(|e| open_err(redact(&e.to_string(), &config.secrets)))?;
        let credentials = s3.credentials().clone();
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix.as_str()))
        };
        let api = S3Api::new(&config, &bucket, &prefix, credentials).map_err(open_err)?;
        // A missing bucket must not read as "no manifest here" (an uncommitted archive).
        runtime.block_on(api.check_bucket()).map_err(open_err)?;
        Ok(Store {
            inner,
            runtime: Arc::new(runtime),
            location: location.to_string(),
            local_root: None,
            local: None,
            s3: Some(api),
        })
    }

    /// The location as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The local folder, when the archive is local.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// Temporary files of writes killed before their rename (`<object>#<n>`: a local
    /// folder's put writes one and renames it onto the object) of the archive's objects
    /// (under its object prefixes, `history/`, `certificates/`, or the manifest's),
    /// relative paths, sorted. Object storage has none (a put is atomic). `audit/` is left
    /// out (a lookup running beside a purge writes to the log without the archive's lock:
    /// its temporary file is not a leftover), and `LOCK#n` counts only when a minute old (a
    /// run may be taking the lock). Other files are not the archive's and never touched.
    /// They are not objects: listing never shows them.
    pub fn staging_leftovers(&self) -> Result<Vec<String>, StoreError> {
        let Some(root) = self.local_root() else {
            return Ok(Vec::new());
        };
        let err = |path: &std::path::Path, e: std::io::Error| StoreError::Object {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let is_staging = |name: &str| {
            name.rsplit_once('#').is_some_and(|(object, n)| {
                let ours = super::STAGING_PREFIXES
                    .iter()
                    .chain(&["history/", "certificates/", super::manifest::MANIFEST])
                    .any(|p| object.starts_with(p));
                ours && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            })
        };
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir, e))? {
                let entry = entry.map_err(|e| err(&dir, e))?;
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                let rel = rel.to_string_lossy().replace('\\', "/");
                let kind = entry.file_type().map_err(|e| err(&path, e))?;
                if kind.is_dir() {
                    if rel != "audit" {
                        dirs.push(path);
                    }
                } else if is_staging(&rel) {
                    out.push(rel);
                } else if rel.starts_with("LOCK#") && rel[5..].bytes().all(|b| b.is_ascii_digit()) {
                    // Another run may be taking the lock this instant (its put takes
                    // milliseconds): only a lock's temporary file a minute old is left over.
                    let old = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(60));
                    if old {
                        out.push(rel);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Delete [`Store::staging_leftovers`] (call with the archive's lock held); returns
    /// what was deleted.
    pub fn remove_staging_leftovers(&self) -> Result<Vec<String>, StoreError> {
        let found = self.staging_leftovers()?;
        if let Some(root) = self.local_root() {
            for rel in &found {
                match std::fs::remove_file(root.join(rel)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(StoreError::Object {
                            path: rel.clone(),
                            message: e.to_string(),
                        })
                    }
                }
            }
        }
        Ok(found)
    }

    /// True when the archive is on S3-compatible object storage.
    pub fn is_object_storage(&self) -> bool {
        self.s3.is_some()
    }

    fn object_err(&self, path: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { path: path.into() },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => {
                StoreError::AlreadyExists { path: path.into() }
            }
            other => {
                let text = other.to_string();
                let message = match &self.s3 {
                    Some(api) => with_hint(&redact(&text, &api.secrets)),
                    None => text,
                };
                StoreError::Object {
                    path: path.into(),
                    message,
                }
            }
        }
    }

    /// Write an object atomically (replacing any previous one).
    pub fn put(&self, path: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.put_mode(path, data, PutMode::Overwrite)
    }

    /// Write an object only if it does not exist yet (the commit point). On S3 this is a
    /// conditional put (`If-None-Match: *`): of two writers, exactly one succeeds and the
    /// other gets [`StoreError::AlreadyExists`].
    pub fn put_new(&self, path: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.put_mode(path, data, PutMode::Create)
    }

    fn put_mode(&self, path: &str, data: Vec<u8>, mode: PutMode) -> Result<(), StoreError> {
        let location = ObjectPath::from(path);
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.runtime
            .block_on(
                self.inner
                    .put_opts(&location, PutPayload::from(Bytes::from(data)), options),
            )
            .map(|_| ())
            .map_err(|e| self.object_err(path, e))
    }

    /// A local archive's object opened as a file, with its size (None on object storage).
    /// Reads through `object_store` hand each read to tokio's blocking pool and open the
    /// file again per range: a batch lookup at 20M rows makes tens of thousands of them,
    /// and those hand-offs were a fifth of its time (docs/performance.md). The path maps
    /// to the file exactly as `object_store` maps it for writes.
    fn local_file(&self, path: &str) -> Option<Result<(std::fs::File, u64), StoreError>> {
        let fs = self.local.as_ref()?;
        let open = || {
            let file = fs
                .path_to_filesystem(&ObjectPath::from(path))
                .map_err(|e| self.object_err(path, e))?;
            let err = |e: std::io::Error| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound { path: path.into() },
                _ => StoreError::Object {
                    path: path.into(),
                    message: e.to_string(),
                },
            };
            let file = std::fs::File::open(file).map_err(err)?;
            let meta = file.metadata().map_err(err)?;
            if meta.is_dir() {
                return Err(StoreError::NotFound { path: path.into() });
            }
            Ok((file, meta.len()))
        };
        Some(open())
    }

    /// Read a whole object with what a later [`Store::put_if_unchanged`] needs to replace
    /// exactly this version: on object storage its ETag (`Expect::Tag`), on a local folder
    /// `Expect::Unchecked` (local writers are serialised by a file lock instead).
    pub fn get_tagged(&self, path: &str) -> Result<(Vec<u8>, Expect), StoreError> {
        if self.local.is_some() {
            return self.get(path).map(|b| (b, Expect::Unchecked));
        }
        let location = ObjectPath::from(path);
        self.runtime
            .block_on(async {
                let result = self.inner.get(&location).await?;
                let tag = result.meta.e_tag.clone();
                Ok::<_, object_store::Error>((result.bytes().await?, tag))
            })
            .map(|(b, tag)| (b.to_vec(), tag.map_or(Expect::Unchecked, Expect::Tag)))
            .map_err(|e| self.object_err(path, e))
    }

    /// What [`Store::put_if_unchanged`] expects of an object that [`Store::get_tagged`]
    /// found absent.
    pub fn expect_absent(&self) -> Expect {
        if self.local.is_some() {
            Expect::Unchecked
        } else {
            Expect::Absent
        }
    }

    /// Write an object only if it is still as it was read: absent (`If-None-Match: *`) or
    /// the version with that ETag (`If-Match`). Of two writers that read the same version,
    /// one succeeds and the other gets [`StoreError::AlreadyExists`] and reads again.
    pub fn put_if_unchanged(
        &self,
        path: &str,
        data: Vec<u8>,
        expect: &Expect,
    ) -> Result<(), StoreError> {
        let mode = match expect {
            Expect::Unchecked => PutMode::Overwrite,
            Expect::Absent => PutMode::Create,
            Expect::Tag(tag) => PutMode::Update(object_store::UpdateVersion {
                e_tag: Some(tag.clone()),
                version: None,
            }),
        };
        self.put_mode(path, data, mode)
    }

    /// Read a whole object.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        if let Some(opened) = self.local_file(path) {
            let (mut file, len) = opened?;
            let mut data = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut file, &mut data).map_err(|e| StoreError::Object {
                path: path.into(),
                message: e.to_string(),
            })?;
            return Ok(data);
        }
        let location = ObjectPath::from(path);
        self.runtime
            .block_on(async {
                let result = self.inner.get(&location).await?;
                result.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| self.object_err(path, e))
    }

    /// An object opened for ranged reads ([`Ranged`]: `Read + Seek`, fetching blocks of
    /// [`RANGE_BLOCK`] bytes on demand), for reading part of a large object.
    pub fn ranged(&self, path: &str) -> Result<Ranged, StoreError> {
        let location = ObjectPath::from(path);
        let (file, len) = match self.local_file(path) {
            Some(opened) => {
                let (file, len) = opened?;
                (Some(file), len)
            }
            None => {
                let meta = self
                    .runtime
                    .block_on(self.inner.head(&location))
                    .map_err(|e| self.object_err(path, e))?;
                (None, meta.size)
            }
        };
        Ok(Ranged {
            inner: self.inner.clone(),
            runtime: self.runtime.clone(),
            location,
            file,
            len,
            pos: 0,
            blocks: Vec::new(),
            window: (0, Bytes::new()),
            fetched: 0,
        })
    }

    /// Whether an object exists.
    pub fn exists(&self, path: &str) -> Result<bool, StoreError> {
        let location = ObjectPath::from(path);
        match self.runtime.block_on(self.inner.head(&location)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.object_err(path, e)),
        }
    }

    /// Delete an object (absent is fine). On a versioned bucket this only hides it behind
    /// a delete marker: every old version stays readable. Destroying data needs
    /// [`Store::delete_all_versions`].
    pub fn delete(&self, path: &str) -> Result<(), StoreError> {
        let location = ObjectPath::from(path);
        match self.runtime.block_on(self.inner.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.object_err(path, e)),
        }
    }

    /// Every object, sorted by path.
    pub fn list(&self) -> Result<Vec<ObjectInfo>, StoreError> {
        self.list_under("")
    }

    /// The objects whose path starts with `prefix`, sorted by path. Only the folder that
    /// holds the prefix is listed (on object storage one listing request per 1,000 keys of
    /// that folder instead of the whole archive's: reading the audit log lists `audit/`
    /// this way, not the thousands of partitions, keys and shards beside it).
    pub fn list_under(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let folder = prefix.rsplit_once('/').map(|(f, _)| f).unwrap_or_default();
        let location = (!folder.is_empty()).then(|| ObjectPath::from(folder));
        let mut objects: Vec<ObjectInfo> = self
            .runtime
            .block_on(self.inner.list(location.as_ref()).try_collect::<Vec<_>>())
            .map_err(|e| self.object_err(if folder.is_empty() { "/" } else { folder }, e))?
            .into_iter()
            .map(|m| ObjectInfo {
                path: m.location.to_string(),
                size: m.size,
            })
            .filter(|o| o.path.starts_with(prefix))
            .collect();
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(objects)
    }

    /// Delete **every version** of an object, delete markers included, and return the
    /// version ids deleted (in the order listed). Afterwards the versions are listed again
    /// and any survivor is an error. Absent is fine (empty list). On a local folder this
    /// is a plain delete returning an empty list.
    ///
    /// Call [`Store::deletion_guard`] first: on a bucket with object lock the deletes of
    /// locked versions fail half-way.
    pub fn delete_all_versions(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let Some(api) = &self.s3 else {
            self.delete(path)?;
            return Ok(Vec::new());
        };
        self.runtime.block_on(async {
            let versions = api.list_versions(path).await?;
            let mut deleted = Vec::with_capacity(versions.len());
            for v in &versions {
                api.delete_version(path, &v.version_id).await?;
                deleted.push(v.version_id.clone());
            }
            let left = api.list_versions(path).await?;
            if !left.is_empty() {
                return Err(StoreError::Object {
                    path: path.into(),
                    message: format!(
                        "{} version(s) remain after deleting every listed version (another writer, or a \
                         retention the bucket enforces); nothing vaxarc wrote should be written there now",
                        left.len()
                    ),
                });
            }
            Ok(deleted)
        })
    }

    /// Every stored version of an object, delete markers included (empty when none). A
    /// local file has one version, `"null"`.
    pub fn list_versions(&self, path: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        match &self.s3 {
            Some(api) => self.runtime.block_on(api.list_versions(path)),
            None => {
                let location = ObjectPath::from(path);
                match self.runtime.block_on(self.inner.head(&location)) {
                    Ok(meta) => Ok(vec![ObjectVersion {
                        version_id: "null".into(),
                        is_latest: true,
                        delete_marker: false,
                        size: meta.size,
                    }]),
                    Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                    Err(e) => Err(self.object_err(path, e)),
                }
            }
        }
    }

    /// Read one version of an object by id ([`StoreError::NotFound`] once it is deleted).
    /// On a local folder only the version `"null"` exists.
    pub fn get_version(&self, path: &str, version_id: &str) -> Result<Vec<u8>, StoreError> {
        match &self.s3 {
            Some(api) => self.runtime.block_on(api.get_version(path, version_id)),
            None if version_id == "null" => self.get(path),
            None => Err(StoreError::NotFound { path: path.into() }),
        }
    }

    /// Preflight for purge and erase: whether the storage keeps old versions (so every
    /// version must be deleted) and whether it forbids deletion (object lock with a
    /// default retention, or any object lock, or MFA delete), in which case
    /// [`DeletionPolicy::refusal`] says why and the caller must refuse before changing
    /// anything. A local folder allows deletion and keeps no versions.
    pub fn deletion_guard(&self) -> Result<DeletionPolicy, StoreError> {
        let Some(api) = &self.s3 else {
            return Ok(DeletionPolicy {
                backend: "local".into(),
                versioning: Versioning::NotApplicable,
                mfa_delete: false,
                object_lock: false,
                default_retention: None,
                refusal: None,
            });
        };
        self.runtime.block_on(api.deletion_guard())
    }
}

/// The location as it may be shown: user info (`s3://KEY:SECRET@bucket/…`, refused
/// anyway) is cut out.
fn display_location(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
                None => location.to_string(),
            }
        }
        None => location.to_string(),
    }
}

/// Split `bucket/prefix` and check both.
fn parse_s3_location(rest: &str) -> Result<(String, String), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.contains('@') || bucket.contains(':') {
        return Err(
            "the location must be s3://bucket/prefix without credentials or a port; put the endpoint in \
             AWS_ENDPOINT_URL and the credentials in the environment (docs/object-storage.md)"
                .into(),
        );
    }
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !valid_bucket {
        return Err(format!(
            "`{bucket}` is not a valid bucket name (3 to 63 lowercase letters, digits, `-` and `.`)"
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty()
        && !prefix
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0', '?', '#']))
    {
        return Err(format!(
            "prefix `{}` must be plain `/`-separated names (no empty, `.` or `..` parts)",
            prefix.escape_default()
        ));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

// ---------------------------------------------------------------------------------------
// Configuration from the environment or a profile.

type StaticCredentials = (String, String, Option<String>);

struct S3Config {
    endpoint: Option<String>,
    region: String,
    allow_http: bool,
    /// Credentials vaxarc found itself (environment or profile); `None` leaves the
    /// rest of the AWS chain to `object_store` (web identity, container, instance).
    static_credentials: Option<StaticCredentials>,
    /// Every credential value known, for [`redact`].
    secrets: Vec<String>,
}

impl S3Config {
    fn from_vars(env_var: &dyn Fn(&str) -> Option<String>) -> Result<S3Config, String> {
        let endpoint = env_var("AWS_ENDPOINT_URL_S3")
            .or_else(|| env_var("AWS_ENDPOINT_URL"))
            .or_else(|| env_var("AWS_ENDPOINT"))
            .map(|e| e.trim_end_matches('/').to_string());
        let profile_name = env_var("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let profile_explicit = env_var("AWS_PROFILE").is_some();
        let env_keys = match (
            env_var("AWS_ACCESS_KEY_ID"),
            env_var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(k), Some(s)) => Some((k, s, env_var("AWS_SESSION_TOKEN"))),
            (Some(_), None) => {
                return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
            }
            (None, Some(_)) => {
                return Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into())
            }
            (None, None) => None,
        };
        let home = env_var("HOME").map(std::path::PathBuf::from);
        let credentials_file = env_var("AWS_SHARED_CREDENTIALS_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
        let config_file = env_var("AWS_CONFIG_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
        let read = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
        };
        let (cred_text, config_text) = (read(&credentials_file), read(&config_file));
        let profile = Profile::find(&cred_text, &config_text, &profile_name);
        let static_credentials = match env_keys {
            Some(keys) => Some(keys),
            None => match profile.static_keys() {
                Some(keys) => Some(keys),
                None if profile_explicit => {
                    return Err(format!(
                        "AWS_PROFILE `{profile_name}` has no aws_access_key_id / aws_secret_access_key; vaxarc reads \
                         only static keys from profiles (not SSO, role_arn or credential_process): export \
                         temporary credentials instead, e.g. `eval \"$(aws configure export-credentials --profile \
                         {profile_name} --format env)\"`"
                    ))
                }
                None => None,
            },
        };
        let region = env_var("AWS_REGION")
            .or_else(|| env_var("AWS_DEFAULT_REGION"))
            .or_else(|| profile.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        let allow_http = match &endpoint {
            Some(e) if e.starts_with("http://") => {
                let loopback = reqwest::Url::parse(e)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .is_some_and(|h| h == "localhost" || h == "[::1]" || h.starts_with("127."));
                let explicit =
                    env_var("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if !loopback && !explicit {
                    return Err(format!(
                        "endpoint `{}` is plain http outside this machine: archive objects and credentials would \
                         cross the network unprotected; use https, or set AWS_ALLOW_HTTP=true if the link is \
                         otherwise protected",
                        strip_userinfo(e)
                    ));
                }
                true
            }
            _ => false,
        };
        if let Some(e) = &endpoint {
            if reqwest::Url::parse(e)
                .map(|u| !u.username().is_empty() || u.password().is_some())
                .unwrap_or(true)
            {
                return Err(format!(
                    "AWS_ENDPOINT_URL `{}` is not a plain URL (no user or password in it)",
                    strip_userinfo(e)
                ));
            }
        }
        let mut secrets = Vec::new();
        if let Some((k, s, t)) = &static_credentials {
            secrets.push(k.clone());
            secrets.push(s.clone());
            secrets.extend(t.clone());
        }
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            secrets.extend(env_var(name));
        }
        secrets.retain(|s| s.len() >= 4);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Ok(S3Config {
            endpoint,
            region,
            allow_http,
            static_credentials,
            secrets,
        })
    }
}

/// The parts of one named profile vaxarc uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Profile {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    region: Option<String>,
}

impl Profile {
    /// Find `name` in the shared credentials file (`[name]`) and config file
    /// (`[profile name]`, or `[default]`).
    fn find(credentials: &str, config: &str, name: &str) -> Profile {
        let mut p = Profile::default();
        let config_section = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        for (text, section) in [(config, config_section.as_str()), (credentials, name)] {
            for (k, v) in ini_section(text, section) {
                match k.as_str() {
                    "aws_access_key_id" => p.access_key_id = Some(v),
                    "aws_secret_access_key" => p.secret_access_key = Some(v),
                    "aws_session_token" => p.session_token = Some(v),
                    "region" => p.region = Some(v),
                    _ => {}
                }
            }
        }
        p
    }

    fn static_keys(&self) -> Option<StaticCredentials> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(k), Some(s)) => Some((k.clone(), s.clone(), self.session_token.clone())),
            _ => None,
        }
    }
}

/// `key = value` lines of one `[section]` of an INI text.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

fn strip_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

/// Remove every known credential value, and the credential-bearing parts S3 servers and
/// presigned URLs may echo (`AWSAccessKeyId`, string-to-sign, canonical request,
/// `X-Amz-Credential`/`Signature`/`Security-Token` parameters, URL user info), from a
/// message before it is shown.
pub fn redact(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    for tag in [
        "AWSAccessKeyId",
        "StringToSign",
        "StringToSignBytes",
        "CanonicalRequest",
        "CanonicalRequestBytes",
        "SignatureProvided",
    ] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut from = 0;
        while let Some(start) = out[from..].find(&open).map(|i| i + from) {
            let body = start + open.len();
            let Some(end) = out[body..].find(&close).map(|i| i + body) else {
                out.truncate(body);
                out.push_str("<redacted>");
                break;
            };
            out.replace_range(body..end, "<redacted>");
            from = body + "<redacted>".len() + close.len();
        }
    }
    for param in [
        "X-Amz-Credential=",
        "X-Amz-Signature=",
        "X-Amz-Security-Token=",
    ] {
        let mut from = 0;
        while let Some(start) = out[from..].find(param).map(|i| i + from) {
            let body = start + param.len();
            let end = out[body..]
                .find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '\'')
                .map(|i| i + body)
                .unwrap_or(out.len());
            out.replace_range(body..end, "<redacted>");
            from = body + "<redacted>".len();
        }
    }
    // user:password@ in any URL
    let mut from = 0;
    while let Some(scheme) = out[from..].find("://").map(|i| i + from + 3) {
        let end = out[scheme..]
            .find(|c: char| c == '/' || c.is_whitespace())
            .map(|i| i + scheme)
            .unwrap_or(out.len());
        if let Some(at) = out[scheme..end].rfind('@') {
            out.replace_range(scheme..scheme + at + 1, "");
        }
        from = scheme;
    }
    out
}

/// Add a hint to a redacted S3 error message.
fn with_hint(message: &str) -> String {
    let hint = if message.contains("403") || message.contains("AccessDenied") {
        "access denied: check the credentials and that they grant the IAM actions listed for this command in \
         docs/object-storage.md"
    } else if message.contains("NoSuchBucket") {
        "the bucket does not exist (or the endpoint/region is wrong): check the s3:// location and AWS_ENDPOINT_URL"
    } else if message.contains("InvalidAccessKeyId") || message.contains("SignatureDoesNotMatch") {
        "the credentials were refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and the clock"
    } else if message.contains("connect")
        || message.contains("dns")
        || message.contains("timed out")
    {
        "the endpoint is unreachable: check AWS_ENDPOINT_URL / AWS_REGION and the network"
    } else {
        return message.to_string();
    };
    format!("{message} (hint: {hint})")
}

// ---------------------------------------------------------------------------------------
// The S3 calls object_store does not make, signed with SigV4.

struct S3Api {
    http: reqwest::Client,
    credentials: AwsCredentialProvider,
    /// `http(s)://host[:port]`.
    origin: String,
    /// `host[:port]` as sent in the Host header.
    host: String,
    /// Path of the bucket: `/bucket` (path style) or `` (virtual-hosted style), after any
    /// endpoint path.
    bucket_path: String,
    region: String,
    bucket: String,
    prefix: String,
    secrets: Vec<String>,
}

/// Characters SigV4 leaves unencoded: RFC 3986 unreserved.
const SIGV4_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn uri_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// SigV4 headers for one S3 request (`Authorization`, `x-amz-date`,
/// `x-amz-content-sha256`, and `x-amz-security-token` with a session token). `path` and
/// `query` must already be URI-encoded exactly as sent; `query` sorted.
#[allow(clippy::too_many_arguments)]
fn sign_v4(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    extra_headers: &[(&str, &str)],
    payload_sha256: &str,
    amz_date: &str,
    region: &str,
    key_id: &str,
    secret: &str,
    token: Option<&str>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host.into()),
        ("x-amz-content-sha256".into(), payload_sha256.into()),
        ("x-amz-date".into(), amz_date.into()),
    ];
    if let Some(t) = token {
        headers.push(("x-amz-security-token".into(), t.into()));
    }
    for (k, v) in extra_headers {
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}"
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&<sha2::Sha256 as sha2::Digest>::digest(
            canonical_request.as_bytes()
        ))
    );
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, b"s3");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    let mut out: Vec<(String, String)> = headers.into_iter().filter(|(k, _)| k != "host").collect();
    out.push((
        "authorization".into(),
        format!("AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"),
    ));
    out
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsResult {
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_version_id_marker: Option<String>,
    #[serde(default, rename = "Version")]
    versions: Vec<VersionEntry>,
    #[serde(default, rename = "DeleteMarker")]
    delete_markers: Vec<VersionEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionEntry {
    key: String,
    version_id: String,
    #[serde(default)]
    is_latest: bool,
    #[serde(default)]
    size: u64,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersioningConfiguration {
    status: Option<String>,
    mfa_delete: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectLockConfiguration {
    object_lock_enabled: Option<String>,
    rule: Option<ObjectLockRule>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectLockRule {
    default_retention: Option<DefaultRetention>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DefaultRetention {
    mode: Option<String>,
    days: Option<u32>,
    years: Option<u32>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3ErrorBody {
    code: Option<String>,
}

impl S3Api {
    fn new(
        config: &S3Config,
        bucket: &str,
        prefix: &str,
        credentials: AwsCredentialProvider,
    ) -> Result<S3Api, String> {
        let (origin, host, bucket_path) = match &config.endpoint {
            Some(endpoint) => {
                let url = reqwest::Url::parse(endpoint).map_err(|_| {
                    format!(
                        "AWS_ENDPOINT_URL `{}` is not a URL",
                        strip_userinfo(endpoint)
                    )
                })?;
                let host_name = url.host_str().ok_or_else(|| {
                    format!(
                        "AWS_ENDPOINT_URL `{}` has no host",
                        strip_userinfo(endpoint)
                    )
                })?;
                let host = match url.port() {
                    Some(p) => format!("{host_name}:{p}"),
                    None => host_name.to_string(),
                };
                let base = url.path().trim_end_matches('/');
                (
                    format!("{}://{host}", url.scheme()),
                    host,
                    format!("{base}/{}", uri_encode(bucket)),
                )
            }
            None => {
                let host = format!("{bucket}.s3.{}.amazonaws.com", config.region);
                (format!("https://{host}"), host, String::new())
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(S3Api {
            http,
            credentials,
            origin,
            host,
            bucket_path,
            region: config.region.clone(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            secrets: config.secrets.clone(),
        })
    }

    /// The full object key of an archive path (the prefix applied).
    fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    fn err(&self, path: &str, message: impl AsRef<str>) -> StoreError {
        StoreError::Object {
            path: path.to_string(),
            message: redact(message.as_ref(), &self.secrets),
        }
    }

    /// Send one signed request; `key` None addresses the bucket. Returns status and body.
    async fn send(
        &self,
        what: &str,
        method: reqwest::Method,
        key: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, Bytes), StoreError> {
        let path = match key {
            Some(k) => format!(
                "{}/{}",
                self.bucket_path,
                k.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
            ),
            None if self.bucket_path.is_empty() => "/".to_string(),
            None => self.bucket_path.clone(),
        };
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k), uri_encode(v)))
            .collect();
        pairs.sort();
        let query_string = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| self.err(what, format!("no usable credentials: {e}")))?;
        let amz_date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .map_err(|e| self.err(what, e.to_string()))?;
        let headers = sign_v4(
            method.as_str(),
            &self.host,
            &path,
            &query_string,
            &[],
            EMPTY_SHA256,
            &amz_date,
            &self.region,
            &credential.key_id,
            &credential.secret_key,
            credential.token.as_deref(),
        );
        let url = if query_string.is_empty() {
            format!("{}{path}", self.origin)
        } else {
            format!("{}{path}?{query_string}", self.origin)
        };
        let mut request = self.http.request(method.clone(), &url);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let mut secrets = self.secrets.clone();
        secrets.push(credential.secret_key.clone());
        secrets.extend(credential.token.clone());
        let response = request.send().await.map_err(|e| StoreError::Object {
            path: what.to_string(),
            message: with_hint(&redact(
                &format!("{method} s3://{}/{}: {e}", self.bucket, key.unwrap_or("")),
                &secrets,
            )),
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| StoreError::Object {
            path: what.to_string(),
            message: redact(&format!("reading the response: {e}"), &secrets),
        })?;
        Ok((status, body))
    }

    fn error_code(body: &[u8]) -> String {
        quick_xml::de::from_reader::<_, S3ErrorBody>(body)
            .ok()
            .and_then(|e| e.code)
            .unwrap_or_default()
    }

    fn failure(
        &self,
        path: &str,
        operation: &str,
        action: &str,
        status: reqwest::StatusCode,
        body: &[u8],
    ) -> StoreError {
        let code = Self::error_code(body);
        let code = if code.is_empty() {
            String::new()
        } else {
            format!(" {code}")
        };
        let hint = if status == reqwest::StatusCode::FORBIDDEN {
            format!(
                "access denied: the credentials need `{action}` (docs/object-storage.md); on a bucket with object \
                 lock, locked versions cannot be deleted before their retention ends"
            )
        } else {
            format!("the server refused {operation}; see docs/object-storage.md")
        };
        self.err(
            path,
            format!(
                "{operation} failed: HTTP {}{code} (hint: {hint})",
                status.as_u16()
            ),
        )
    }

    /// `HeadBucket`: the bucket exists and these credentials may use it.
    async fn check_bucket(&self) -> Result<(), String> {
        let what = format!("s3://{}", self.bucket);
        let (status, _) = self
            .send(&what, reqwest::Method::HEAD, None, &[])
            .await
            .map_err(|e| e.to_string())?;
        match status.as_u16() {
            200..=299 => Ok(()),
            404 => Err(format!(
                "bucket `{}` does not exist at this endpoint (hint: check the s3:// location, AWS_ENDPOINT_URL and \
                 AWS_REGION)",
                self.bucket
            )),
            401 | 403 => Err(format!(
                "access to bucket `{}` denied (hint: the credentials need `s3:ListBucket` on it, see \
                 docs/object-storage.md)",
                self.bucket
            )),
            301 => Err(format!(
                "bucket `{}` is in another region (hint: set AWS_REGION to the bucket's region)",
                self.bucket
            )),
            code => Err(format!("HeadBucket on `{}` answered HTTP {code}", self.bucket)),
        }
    }

    async fn list_versions(&self, path: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        let key = self.key(path);
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _page in 0..10_000 {
            let mut query: Vec<(&str, &str)> = vec![("versions", ""), ("prefix", key.as_str())];
            if let Some((k, v)) = &markers {
                query.push(("key-marker", k.as_str()));
                query.push(("version-id-marker", v.as_str()));
            }
            let (status, body) = self.send(path, reqwest::Method::GET, None, &query).await?;
            if !status.is_success() {
                return Err(self.failure(
                    path,
                    "ListObjectVersions",
                    "s3:ListBucketVersions",
                    status,
                    &body,
                ));
            }
            let page: ListVersionsResult =
                quick_xml::de::from_reader(body.as_ref()).map_err(|e| {
                    self.err(path, format!("ListObjectVersions: unreadable answer: {e}"))
                })?;
            let exact = |e: &VersionEntry| e.key == key;
            out.extend(
                page.versions
                    .iter()
                    .filter(|e| exact(e))
                    .map(|e| ObjectVersion {
                        version_id: e.version_id.clone(),
                        is_latest: e.is_latest,
                        delete_marker: false,
                        size: e.size,
                    }),
            );
            out.extend(
                page.delete_markers
                    .iter()
                    .filter(|e| exact(e))
                    .map(|e| ObjectVersion {
                        version_id: e.version_id.clone(),
                        is_latest: e.is_latest,
                        delete_marker: true,
                        size: 0,
                    }),
            );
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_version_id_marker,
            ) {
                (true, Some(k), Some(v)) => markers = Some((k, v)),
                (true, _, _) => {
                    return Err(
                        self.err(path, "ListObjectVersions: truncated answer without markers")
                    );
                }
                _ => return Ok(out),
            }
        }
        Err(self.err(path, "ListObjectVersions: more than 10,000 pages; refused"))
    }

    async fn delete_version(&self, path: &str, version_id: &str) -> Result<(), StoreError> {
        let key = self.key(path);
        let (status, body) = self
            .send(
                path,
                reqwest::Method::DELETE,
                Some(&key),
                &[("versionId", version_id)],
            )
            .await?;
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(self.failure(
                path,
                &format!("DeleteObject of version {version_id}"),
                "s3:DeleteObjectVersion",
                status,
                &body,
            ))
        }
    }

    async fn get_version(&self, path: &str, version_id: &str) -> Result<Vec<u8>, StoreError> {
        let key = self.key(path);
        let (status, body) = self
            .send(
                path,
                reqwest::Method::GET,
                Some(&key),
                &[("versionId", version_id)],
            )
            .await?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let code = Self::error_code(&body);
        if status == reqwest::StatusCode::NOT_FOUND
            || code == "NoSuchVersion"
            || code == "NoSuchKey"
        {
            return Err(StoreError::NotFound { path: path.into() });
        }
        Err(self.failure(
            path,
            &format!("GetObject of version {version_id}"),
            "s3:GetObjectVersion",
            status,
            &body,
        ))
    }

    async fn deletion_guard(&self) -> Result<DeletionPolicy, StoreError> {
        let what = format!("s3://{}", self.bucket);
        let (status, body) = self
            .send(&what, reqwest::Method::GET, None, &[("versioning", "")])
            .await?;
        if !status.is_success() {
            return Err(self.failure(
                &what,
                "GetBucketVersioning",
                "s3:GetBucketVersioning",
                status,
                &body,
            ));
        }
        let v: VersioningConfiguration = if body.iter().all(u8::is_ascii_whitespace) {
            VersioningConfiguration::default()
        } else {
            quick_xml::de::from_reader(body.as_ref()).map_err(|e| {
                self.err(
                    &what,
                    format!("GetBucketVersioning: unreadable answer: {e}"),
                )
            })?
        };
        let versioning = match v.status.as_deref() {
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            _ => Versioning::Unversioned,
        };
        let mfa_delete = v.mfa_delete.as_deref() == Some("Enabled");

        let (status, body) = self
            .send(&what, reqwest::Method::GET, None, &[("object-lock", "")])
            .await?;
        let lock = if status.is_success() {
            quick_xml::de::from_reader::<_, ObjectLockConfiguration>(body.as_ref()).map_err(
                |e| {
                    self.err(
                        &what,
                        format!("GetObjectLockConfiguration: unreadable answer: {e}"),
                    )
                },
            )?
        } else if status == reqwest::StatusCode::NOT_FOUND
            || Self::error_code(&body) == "ObjectLockConfigurationNotFoundError"
        {
            ObjectLockConfiguration::default()
        } else {
            return Err(self.failure(
                &what,
                "GetObjectLockConfiguration",
                "s3:GetBucketObjectLockConfiguration",
                status,
                &body,
            ));
        };
        let object_lock = lock.object_lock_enabled.as_deref() == Some("Enabled");
        let default_retention = lock
            .rule
            .and_then(|r| r.default_retention)
            .map(|d| Retention {
                mode: d.mode.unwrap_or_default(),
                days: d.days.filter(|&n| n > 0),
                years: d.years.filter(|&n| n > 0),
            });
        let refusal = if object_lock {
            let retention = match &default_retention {
                Some(r) => {
                    let period = match (r.days, r.years) {
                        (Some(d), _) => format!("{d} day(s)"),
                        (None, Some(y)) => format!("{y} year(s)"),
                        _ => "an unstated period".into(),
                    };
                    format!(
                        "a default retention of {period} in {} mode protects every new version from deletion{}",
                        r.mode,
                        if r.mode == "COMPLIANCE" {
                            " by anyone, the root account included, until it expires"
                        } else {
                            ""
                        }
                    )
                }
                None => "any version may carry its own retention or legal hold".into(),
            };
            Some(format!(
                "bucket `{}` has S3 object lock enabled ({retention}); vaxarc cannot guarantee that every version \
                 of the destroyed objects can be deleted, so it changes nothing. Erase with an archive on a bucket \
                 without object lock (docs/object-storage.md, \"Object lock\")",
                self.bucket
            ))
        } else if mfa_delete {
            Some(format!(
                "bucket `{}` has MFA delete enabled: deleting a version needs the bucket owner's MFA token, which \
                 vaxarc does not use, so it changes nothing",
                self.bucket
            ))
        } else {
            None
        };
        Ok(DeletionPolicy {
            backend: "s3".into(),
            versioning,
            mfa_delete,
            object_lock,
            default_retention,
            refusal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Temporary files of killed writes of the archive's objects are found and removed;
    /// the audit log's, the lock's and files that are not the archive's are left alone.
    #[test]
    fn staging_leftovers_are_the_archives_own_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        store.put("data/a.parquet.age", b"x".to_vec()).unwrap();
        for f in [
            "data/a.parquet.age#1",
            "keys/k.key.age#12",
            "MANIFEST.json#1",
            "history/000002/MANIFEST.json#3",
            "audit/log-00000000.jsonl#1",
            "LOCK#1",
            "notes#1",
            "data/b.parquet.age#x",
        ] {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let want = [
            "MANIFEST.json#1",
            "data/a.parquet.age#1",
            "history/000002/MANIFEST.json#3",
            "keys/k.key.age#12",
        ];
        assert_eq!(store.staging_leftovers().unwrap(), want);
        assert_eq!(store.remove_staging_leftovers().unwrap(), want);
        assert!(store.staging_leftovers().unwrap().is_empty());
        for kept in [
            "audit/log-00000000.jsonl#1",
            "LOCK#1",
            "notes#1",
            "data/a.parquet.age",
        ] {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }
        // A lock's temporary file a minute old is a leftover too.
        let lock = std::fs::File::options()
            .write(true)
            .open(dir.path().join("LOCK#1"))
            .unwrap();
        lock.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120))
            .unwrap();
        assert_eq!(store.staging_leftovers().unwrap(), ["LOCK#1"]);
    }

    /// A local archive's whole and ranged reads go to the file directly: they must give
    /// the same bytes, lengths, end of object and missing-object errors as reads through
    /// `object_store` (the path every other backend takes).
    #[test]
    fn local_reads_match_object_store_reads() {
        use std::io::{Read, Seek, SeekFrom};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let len = 3 * RANGE_BLOCK as usize + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        store
            .put("partitions/a/b.parquet.age", data.clone())
            .unwrap();
        assert_eq!(store.get("partitions/a/b.parquet.age").unwrap(), data);

        let local = store.ranged("partitions/a/b.parquet.age").unwrap();
        assert!(
            local.file.is_some(),
            "a local store reads the file directly"
        );
        let mut remote = Ranged {
            file: None,
            blocks: Vec::new(),
            pos: 0,
            fetched: 0,
            ..store.ranged("partitions/a/b.parquet.age").unwrap()
        };
        let mut local = local;
        assert_eq!((local.len(), remote.len()), (len as u64, len as u64));
        let mut seed = 17u64;
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let start = (seed >> 33) as usize % len;
            let n = ((seed >> 13) as usize % 200_000).min(len - start);
            let mut a = vec![0u8; n];
            let mut b = vec![0u8; n];
            local.seek(SeekFrom::Start(start as u64)).unwrap();
            remote.seek(SeekFrom::Start(start as u64)).unwrap();
            local.read_exact(&mut a).unwrap();
            remote.read_exact(&mut b).unwrap();
            assert_eq!(a, &data[start..start + n]);
            assert_eq!(a, b);
        }
        for r in [&mut local, &mut remote] {
            r.seek(SeekFrom::End(-5)).unwrap();
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, &data[len - 5..]);
            assert_eq!(r.read(&mut [0u8; 8]).unwrap(), 0, "nothing past the end");
        }

        assert!(matches!(
            store.get("partitions/missing.parquet.age"),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.ranged("partitions/missing.parquet.age"),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.get("partitions/a"),
            Err(StoreError::NotFound { .. })
        ));
    }

    /// Bytes held in a reader's window (prefetched, or filled by `BufRead`) read the
    /// same as the object, whatever the read crosses: the window's end, a seek, the end.
    #[test]
    fn listing_under_a_prefix_is_the_whole_listing_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        // No folder of the prefix yet: nothing, not an error.
        assert!(store.list_under("audit/log-").unwrap().is_empty());
        for p in [
            "MANIFEST.json",
            "audit/log-000001.jsonl",
            "audit/log-000002.jsonl",
            "audit/checkpoint-000001.txt",
            "audit/frontier.json",
            "auditx/log-000009.jsonl",
            "partitions/audit/log-1",
            "keys/a.key.age",
        ] {
            store.put(p, b"x".to_vec()).unwrap();
        }
        let all = store.list().unwrap();
        assert_eq!(all.len(), 8);
        for prefix in [
            "audit/log-",
            "audit/checkpoint-",
            "audit/",
            "keys/a",
            "MANIFEST",
            "",
        ] {
            let want: Vec<String> = all
                .iter()
                .filter(|o| o.path.starts_with(prefix))
                .map(|o| o.path.clone())
                .collect();
            let got: Vec<String> = store
                .list_under(prefix)
                .unwrap()
                .into_iter()
                .map(|o| o.path)
                .collect();
            assert_eq!(got, want, "{prefix}");
        }
        assert_eq!(store.list_under("audit/log-").unwrap().len(), 2);
    }

    #[test]
    fn windowed_reads_match_the_object() {
        use std::io::{BufRead, Read, Seek, SeekFrom};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let len = RANGE_BLOCK as usize + 70_000;
        let data: Vec<u8> = (0..len).map(|i| (i * 13 + i / 97) as u8).collect();
        store.put("obj.age", data.clone()).unwrap();
        let local = store.ranged("obj.age").unwrap();
        let remote = Ranged {
            file: None,
            ..store.ranged("obj.age").unwrap()
        };
        for mut r in [local, remote] {
            let head = r.prefetch(65_536).unwrap();
            assert_eq!(&head[..], &data[..65_536]);
            assert_eq!(
                r.fill_buf().unwrap(),
                &data[..65_536],
                "the window is the buffer"
            );
            r.consume(10);
            let mut line = Vec::new();
            // Bytes up to the first newline-valued byte, starting inside the window.
            let n = r.read_until(b'\n', &mut line).unwrap();
            let end = 10 + data[10..].iter().position(|&b| b == b'\n').unwrap() + 1;
            assert_eq!((n, &line[..]), (end - 10, &data[10..end]));
            // A read across the window's end, then one past it.
            r.seek(SeekFrom::Start(65_000)).unwrap();
            let mut buf = vec![0u8; 2_000];
            r.read_exact(&mut buf).unwrap();
            assert_eq!(buf, &data[65_000..67_000]);
            // `BufRead` past the window reads a fresh one there.
            r.seek(SeekFrom::Start(200_000)).unwrap();
            let got = r.fill_buf().unwrap().to_vec();
            assert!(!got.is_empty() && got.len() <= BUFREAD_WINDOW);
            assert_eq!(got, &data[200_000..200_000 + got.len()]);
            r.consume(got.len());
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, &data[200_000 + got.len()..]);
            assert!(r.fill_buf().unwrap().is_empty(), "nothing past the end");
            // A prefetch asks for more than is left: it holds what is left.
            r.seek(SeekFrom::Start(len as u64 - 3)).unwrap();
            assert_eq!(&r.prefetch(100).unwrap()[..], &data[len - 3..]);
        }
    }

    /// The "GET Object" example of the AWS SigV4 documentation for S3 (header signing).
    #[test]
    fn sigv4_matches_the_aws_example() {
        let headers = sign_v4(
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            &[("Range", "bytes=0-9")],
            EMPTY_SHA256,
            "20130524T000000Z",
            "us-east-1",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        );
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn redact_removes_credentials_and_echoed_signing_material() {
        let secrets = vec!["SECRETKEYVALUE".to_string(), "AKIDVALUE".to_string()];
        let msg = "PUT https://user:pw@host/b/k failed: <Error><AWSAccessKeyId>AKIDVALUE</AWSAccessKeyId>\
                   <StringToSign>AWS4 stuff</StringToSign></Error> X-Amz-Credential=AKIDVALUE%2F2013&X-Amz-Signature=abc \
                   secret SECRETKEYVALUE";
        let out = redact(msg, &secrets);
        for leaked in [
            "SECRETKEYVALUE",
            "AKIDVALUE",
            "AWS4 stuff",
            "user:pw",
            "abc ",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(out.contains("https://host/b/k"), "{out}");
    }

    #[test]
    fn locations_and_profiles_parse() {
        assert_eq!(
            parse_s3_location("bucket/a/b/").unwrap(),
            ("bucket".into(), "a/b".into())
        );
        assert_eq!(
            parse_s3_location("bucket").unwrap(),
            ("bucket".into(), "".into())
        );
        assert!(parse_s3_location("key:secret@bucket/p").is_err());
        assert_eq!(
            display_location("s3://key:secret@bucket/p"),
            "s3://<redacted>@bucket/p"
        );
        assert_eq!(display_location("s3://bucket/p"), "s3://bucket/p");
        assert!(parse_s3_location("Bucket/p").is_err());
        assert!(parse_s3_location("bucket/a/../b").is_err());
        let creds = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n[ops]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        let config = "[default]\nregion = ap-northeast-1\n[profile ops]\nregion=ap-northeast-3\n";
        let p = Profile::find(creds, config, "ops");
        assert_eq!(
            p.static_keys(),
            Some(("C".into(), "D".into(), Some("E".into())))
        );
        assert_eq!(p.region.as_deref(), Some("ap-northeast-3"));
        let d = Profile::find(creds, config, "default");
        assert_eq!(d.static_keys(), Some(("A".into(), "B".into(), None)));
        assert_eq!(d.region.as_deref(), Some("ap-northeast-1"));
        assert_eq!(Profile::find(creds, config, "none").static_keys(), None);
    }

    #[test]
    fn version_listing_parses_interleaved_entries() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>k</Prefix>
<IsTruncated>false</IsTruncated>
<Version><Key>k</Key><VersionId>v3</VersionId><IsLatest>false</IsLatest><Size>3</Size></Version>
<DeleteMarker><Key>k</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest></DeleteMarker>
<Version><Key>k</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest><Size>1</Size></Version>
<Version><Key>k2</Key><VersionId>x</VersionId><IsLatest>true</IsLatest><Size>1</Size></Version>
</ListVersionsResult>"#;
        let r: ListVersionsResult = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(r.versions.len(), 3);
        assert_eq!(r.delete_markers.len(), 1);
        assert!(r.delete_markers[0].is_latest);
    }
}
