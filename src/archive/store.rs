//! The one storage abstraction under the archive: `object_store` (arrow-rs's crate).
//!
//! `--archive` is a local folder today (`LocalFileSystem` with fsync on, so a
//! successful put is durable and atomic: staged file, fsync, rename). The same calls
//! serve S3-compatible stores (issue 11) once the `aws` feature is enabled; nothing
//! above this module touches the file system for archive objects.
//!
//! The archive code is synchronous; this module owns a small current-thread tokio
//! runtime and blocks on each call.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
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

/// Metadata of one stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Path relative to the archive root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// An archive location.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    location: String,
    local_root: Option<std::path::PathBuf>,
}

impl Store {
    /// Open a location: a local folder (created if absent).
    pub fn open(location: &str) -> Result<Store, StoreError> {
        let open_err = |message: String| StoreError::Open {
            location: location.to_string(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        if location.starts_with("s3://") {
            return Err(open_err(
                "object storage (s3://) is not built into this version yet (issue 11); use a local folder".into(),
            ));
        }
        let root = std::path::PathBuf::from(location);
        std::fs::create_dir_all(&root).map_err(|e| open_err(e.to_string()))?;
        let root = root.canonicalize().map_err(|e| open_err(e.to_string()))?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| open_err(e.to_string()))?
            .with_fsync(true);
        Ok(Store {
            inner: Arc::new(fs),
            runtime,
            location: location.to_string(),
            local_root: Some(root),
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

    fn object_err(path: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { path: path.into() },
            object_store::Error::AlreadyExists { .. } => {
                StoreError::AlreadyExists { path: path.into() }
            }
            other => StoreError::Object {
                path: path.into(),
                message: other.to_string(),
            },
        }
    }

    /// Write an object atomically (replacing any previous one).
    pub fn put(&self, path: &str, data: Vec<u8>) -> Result<(), StoreError> {
        self.put_mode(path, data, PutMode::Overwrite)
    }

    /// Write an object only if it does not exist yet (the commit point).
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
            .map_err(|e| Self::object_err(path, e))
    }

    /// Read a whole object.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        let location = ObjectPath::from(path);
        self.runtime
            .block_on(async {
                let result = self.inner.get(&location).await?;
                result.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| Self::object_err(path, e))
    }

    /// Whether an object exists.
    pub fn exists(&self, path: &str) -> Result<bool, StoreError> {
        let location = ObjectPath::from(path);
        match self.runtime.block_on(self.inner.head(&location)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Self::object_err(path, e)),
        }
    }

    /// Delete an object (absent is fine).
    pub fn delete(&self, path: &str) -> Result<(), StoreError> {
        let location = ObjectPath::from(path);
        match self.runtime.block_on(self.inner.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::object_err(path, e)),
        }
    }

    /// Every object, sorted by path.
    pub fn list(&self) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut objects: Vec<ObjectInfo> = self
            .runtime
            .block_on(self.inner.list(None).try_collect::<Vec<_>>())
            .map_err(|e| Self::object_err("/", e))?
            .into_iter()
            .map(|m| ObjectInfo {
                path: m.location.to_string(),
                size: m.size,
            })
            .collect();
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(objects)
    }
}
