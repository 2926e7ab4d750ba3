//! Encrypted temporary storage of records (or other [`Packed`] items: the archive
//! writer's index rows), so that a stage can hand millions of them to the next one a
//! bucket at a time instead of holding them all in memory.
//!
//! Each bucket is one file in a fresh private folder (mode 0700) under the system's
//! temporary folder (or one the caller names), written as an age stream to an X25519
//! identity generated for this spill and held only in memory: no plaintext record ever
//! reaches the disk, and once the process ends — normally or killed — nobody can read
//! what it left (the folder is removed when the spill is dropped; after a kill it holds
//! only ciphertext under a lost key, and the next spill in the same temporary folder
//! removes it: folder names carry the writing process's id).
//!
//! Records are stored in their packed form ([`Record::write_packed`]): interned text is
//! an id into this process's table, so a spill is only readable by the process that wrote
//! it — which is all it is for.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::record::Record;

/// An item a spill can hold: written to bytes and read back by the same process.
pub trait Packed: Sized {
    /// Append the item's bytes.
    fn write_packed(&self, out: &mut Vec<u8>);
    /// Read back one item [`Packed::write_packed`] wrote at `bytes[*pos..]`, advancing
    /// `pos`; `None` if the bytes end early or are not such an item.
    fn read_packed(bytes: &[u8], pos: &mut usize) -> Option<Self>;
}

impl Packed for Record {
    fn write_packed(&self, out: &mut Vec<u8>) {
        Record::write_packed(self, out);
    }
    fn read_packed(bytes: &[u8], pos: &mut usize) -> Option<Record> {
        Record::read_packed(bytes, pos)
    }
}

/// A spill failed: the file at fault and what happened, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// Creating, writing or reading a spill file.
    #[error("temporary spill file `{path}`: {source}; check free space and permissions of the temporary folder (TMPDIR)")]
    Io {
        /// The spill file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A spill file did not decrypt or did not hold whole items.
    #[error("temporary spill file `{path}` is damaged ({message}); run again")]
    Damaged {
        /// The spill file.
        path: PathBuf,
        /// What is wrong (no data).
        message: String,
    },
}

type Writer = age::stream::StreamWriter<BufWriter<File>>;

/// Plaintext bytes [`Spilled::take`] decrypts before unpacking what they hold.
const TAKE_PIECE: usize = 1 << 20;

struct Bucket {
    writer: Option<Writer>,
    records: u64,
}

/// Buckets of items being written. The identity never leaves memory and is not shown
/// by `Debug`.
pub struct Spill {
    dir: tempfile::TempDir,
    stale_removed: u64,
    identity: age::x25519::Identity,
    buckets: Vec<Mutex<Bucket>>,
}

impl fmt::Debug for Spill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spill")
            .field("dir", &self.dir.path())
            .field("buckets", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

/// Start of a spill folder's name; then the writing process's id, `-`, random letters.
const PREFIX: &str = "vaxarc-spill-";

/// Remove the spill folders in `parent` whose writing process no longer runs (a killed
/// run's: ciphertext under a key that died with it, possibly gigabytes). Where running
/// processes cannot be told (no `/proc`), nothing is removed. Never touches a folder of a
/// running process (two migrations at once each keep theirs) or anything not named like a
/// spill folder. Returns the number removed.
fn remove_stale(parent: &Path) -> u64 {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let running = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if is_dir && !running && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn path_of(dir: &Path, bucket: usize) -> PathBuf {
    dir.join(format!("bucket-{bucket:05}.age"))
}

impl Spill {
    /// A spill of `buckets` buckets in a new private folder under `parent` (the system's
    /// temporary folder if `None`).
    pub fn new(parent: Option<&Path>, buckets: usize) -> Result<Spill, SpillError> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let stale_removed = remove_stale(&parent);
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        // Private (tempfile's own default is the umask's, e.g. 0755).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder
            .tempdir_in(&parent)
            .map_err(|source| SpillError::Io {
                path: parent,
                source,
            })?;
        Ok(Spill {
            dir,
            stale_removed,
            identity: age::x25519::Identity::generate(),
            buckets: (0..buckets)
                .map(|_| {
                    Mutex::new(Bucket {
                        writer: None,
                        records: 0,
                    })
                })
                .collect(),
        })
    }

    /// Spill folders of runs that were killed, removed when this one was made.
    pub fn stale_removed(&self) -> u64 {
        self.stale_removed
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Append items to a bucket (buckets can be written from several threads at once).
    /// A bucket holds items of one type.
    ///
    /// # Panics
    /// If `bucket` is not below [`Spill::buckets`].
    pub fn push<'r, T: Packed + 'r>(
        &self,
        bucket: usize,
        records: impl IntoIterator<Item = &'r T>,
    ) -> Result<(), SpillError> {
        let path = path_of(self.dir.path(), bucket);
        let io = |source| SpillError::Io {
            path: path.clone(),
            source,
        };
        let mut bytes = Vec::new();
        let mut n = 0u64;
        for r in records {
            r.write_packed(&mut bytes);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let mut b = self.buckets[bucket]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if b.writer.is_none() {
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            let file = open.open(&path).map_err(io)?;
            let recipient = self.identity.to_public();
            let writer =
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(|e| SpillError::Damaged {
                        path: path.clone(),
                        message: e.to_string(),
                    })?
                    .wrap_output(BufWriter::with_capacity(1 << 16, file))
                    .map_err(io)?;
            b.writer = Some(writer);
        }
        let writer = b.writer.as_mut().expect("opened above");
        writer.write_all(&bytes).map_err(io)?;
        b.records += n;
        Ok(())
    }

    /// Close every bucket for writing.
    pub fn finish(self) -> Result<Spilled, SpillError> {
        let mut records = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.into_iter().enumerate() {
            let b = b.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Some(writer) = b.writer {
                let path = path_of(self.dir.path(), i);
                let io = |source| SpillError::Io {
                    path: path.clone(),
                    source,
                };
                let mut out = writer.finish().map_err(io)?;
                out.flush().map_err(io)?;
            }
            records.push(b.records);
        }
        Ok(Spilled {
            dir: self.dir,
            identity: self.identity,
            records,
        })
    }
}

/// Buckets written and closed, read back one at a time.
pub struct Spilled {
    dir: tempfile::TempDir,
    identity: age::x25519::Identity,
    records: Vec<u64>,
}

impl fmt::Debug for Spilled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spilled")
            .field("dir", &self.dir.path())
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl Spilled {
    /// Items per bucket.
    pub fn records(&self) -> &[u64] {
        &self.records
    }

    /// The items of a bucket, in the order they were pushed; the bucket's file is
    /// removed once read.
    pub fn take<T: Packed>(&self, bucket: usize) -> Result<Vec<T>, SpillError> {
        let expected = self.records[bucket];
        if expected == 0 {
            return Ok(Vec::new());
        }
        let path = path_of(self.dir.path(), bucket);
        let io = |source| SpillError::Io {
            path: path.clone(),
            source,
        };
        let damaged = |message: String| SpillError::Damaged {
            path: path.clone(),
            message,
        };
        let file = File::open(&path).map_err(io)?;
        let decryptor =
            age::Decryptor::new_buffered(std::io::BufReader::with_capacity(1 << 16, file))
                .map_err(|e| damaged(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .map_err(|e| damaged(e.to_string()))?;
        // Decrypted and unpacked a piece at a time: reading the whole plaintext first held
        // it (in a buffer grown by doubling) beside the items made from it — three times a
        // bucket's size at the moment of unpacking (at 20M rows, buckets of ≈ 110 MB taken
        // two at a time).
        let mut out = Vec::with_capacity(expected as usize);
        let mut buf: Vec<u8> = Vec::with_capacity(TAKE_PIECE);
        loop {
            let read = (&mut reader)
                .take(TAKE_PIECE as u64)
                .read_to_end(&mut buf)
                .map_err(|e| damaged(e.to_string()))?;
            let mut pos = 0;
            loop {
                let mut next = pos;
                match T::read_packed(&buf, &mut next) {
                    Some(item) => {
                        out.push(item);
                        pos = next;
                    }
                    None => break,
                }
            }
            buf.drain(..pos);
            if read == 0 {
                break;
            }
        }
        if !buf.is_empty() {
            return Err(damaged("an item is cut short".into()));
        }
        if out.len() as u64 != expected {
            return Err(damaged(format!(
                "{} items read, {expected} written",
                out.len()
            )));
        }
        std::fs::remove_file(&path).map_err(io)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;

    fn records(n: usize, seed: i64) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let mut v = vec![Value::Null; 70];
                v[0] = Value::Str(format!("名前{i}-{seed}").into());
                v[3] = Value::Int(i as i64 * seed);
                if i % 3 == 0 {
                    v[69] = Value::Str("x".repeat(i * 40).into());
                }
                Record::from(v)
            })
            .collect()
    }

    #[test]
    fn buckets_read_back_in_push_order_and_nothing_is_plaintext() {
        let parent = tempfile::tempdir().unwrap();
        let spill = Spill::new(Some(parent.path()), 3).unwrap();
        let (a, b, c) = (records(500, 1), records(700, 2), records(300, 3));
        spill.push(0, &a[..200]).unwrap();
        spill.push(2, &b).unwrap();
        spill.push(0, &a[200..]).unwrap();
        spill.push(0, &c[..0]).unwrap();
        spill.push(2, &c).unwrap();
        // On disk: ciphertext only, in a private folder, in files only we can read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            for dir in std::fs::read_dir(parent.path()).unwrap() {
                assert_eq!(mode(&dir.unwrap().path()), 0o700);
            }
            for entry in walk(parent.path()) {
                assert_eq!(mode(&entry), 0o600);
            }
        }
        for entry in walk(parent.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(bytes.starts_with(b"age-encryption.org/v1"));
            assert!(!bytes.windows(6).any(|w| w == "名前".as_bytes()));
        }
        let spilled = spill.finish().unwrap();
        assert_eq!(spilled.records(), &[500, 0, 1000]);
        for entry in walk(parent.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(!bytes.windows(6).any(|w| w == "名前".as_bytes()));
        }
        assert_eq!(spilled.take::<Record>(0).unwrap(), a);
        assert!(spilled.take::<Record>(1).unwrap().is_empty());
        let mut bc = b.clone();
        bc.extend(c);
        assert_eq!(spilled.take::<Record>(2).unwrap(), bc);
        // Read buckets are removed; the folder goes with the spill.
        assert!(walk(parent.path()).is_empty());
        drop(spilled);
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_bucket_is_refused_naming_the_file() {
        let parent = tempfile::tempdir().unwrap();
        let spill = Spill::new(Some(parent.path()), 1).unwrap();
        spill.push(0, &records(50, 1)).unwrap();
        let spilled = spill.finish().unwrap();
        let file = walk(parent.path()).pop().unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 20;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let e = spilled.take::<Record>(0).unwrap_err().to_string();
        assert!(
            e.contains("bucket-00000.age") && e.contains("damaged"),
            "{e}"
        );
        assert!(!e.contains("名前"));
    }

    #[test]
    fn a_killed_runs_spill_is_removed_and_a_running_ones_is_kept() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        // No process has this id (above Linux's largest pid_max).
        let dead = p.join(format!("{PREFIX}4294967-aBcDeF"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("bucket-00000.age"), b"ciphertext").unwrap();
        // pid 1 always runs; a file and an unrelated folder are never touched.
        let alive = p.join(format!("{PREFIX}1-xYz"));
        std::fs::create_dir(&alive).unwrap();
        std::fs::write(p.join(format!("{PREFIX}4294967-file")), b"x").unwrap();
        std::fs::create_dir(p.join("vaxarc-spillage")).unwrap();
        let spill = Spill::new(Some(p), 2).unwrap();
        assert_eq!(spill.stale_removed(), 1);
        assert!(!dead.exists());
        assert!(alive.exists());
        assert!(p.join(format!("{PREFIX}4294967-file")).exists());
        assert!(p.join("vaxarc-spillage").exists());
        // This spill's own folder carries this process's id, so a second spill keeps it.
        let second = Spill::new(Some(p), 1).unwrap();
        assert_eq!(second.stale_removed(), 0);
        assert!(spill.dir.path().exists());
        assert!(spill
            .dir
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("{PREFIX}{}-", std::process::id())));
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
