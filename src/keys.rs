//! Key files: age identities and recipients, minisign signing keys.
//!
//! Identity and secret-key files are written with mode 0600 and never overwritten
//! silently; reading an identity that group or others can read is refused unless the
//! operator allows it (as ssh does). Key material is never printed, logged or put in a
//! `Debug` impl.

use std::io::Write;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;

use crate::archive::crypto::{Identities, Recipients};

/// A key-file problem: which file and what, never key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// I/O on a key file.
    #[error("key file `{path}`: {message}")]
    Io { path: PathBuf, message: String },
    /// Mode too open.
    #[error("identity file `{path}` is readable by group or others (mode {mode:o}); refused")]
    Insecure { path: PathBuf, mode: u32 },
    /// Malformed content.
    #[error("key file `{path}`: {message}")]
    Malformed { path: PathBuf, message: String },
}

fn io_err(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Write a secret file with mode 0600 (`create_new` unless `force`).
pub fn write_secret(path: &Path, content: &[u8], force: bool) -> Result<(), KeyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| io_err(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(path, e))?;
    }
    f.write_all(content).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Write a public file (`create_new` unless `force`).
pub fn write_public(path: &Path, content: &[u8], force: bool) -> Result<(), KeyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(content).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Read a secret file, refusing group/other-readable modes unless allowed.
pub fn read_secret(path: &Path, allow_insecure: bool) -> Result<String, KeyError> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if path.extension().is_some_and(|e| e == "pub") {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
            message: "is a public file (a recipient or public key), not a secret key: pass the matching `.key` file".into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && !allow_insecure {
            return Err(KeyError::Insecure {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if meta.len() > 1 << 20 {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
            message: "larger than 1 MiB; not a key file".into(),
        });
    }
    std::fs::read_to_string(path).map_err(|e| io_err(path, e))
}

/// Load age identities from files.
pub fn load_identities(
    paths: &[PathBuf],
    allow_insecure: bool,
) -> Result<Vec<age::x25519::Identity>, KeyError> {
    let mut out = Vec::new();
    for p in paths {
        let text = read_secret(p, allow_insecure)?;
        let ids = Identities::parse(&p.display().to_string(), &text).map_err(|e| {
            KeyError::Malformed {
                path: p.clone(),
                message: e.to_string(),
            }
        })?;
        out.extend(ids.0);
    }
    Ok(out)
}

/// Resolve recipients: each item is an `age1…` string or a path (relative to `base`)
/// to a file of recipient lines.
pub fn load_recipients(what: &str, items: &[String], base: &Path) -> Result<Recipients, KeyError> {
    let mut lines = Vec::new();
    for item in items {
        if item.starts_with("age1") {
            lines.push(item.clone());
            continue;
        }
        let path = base.join(item);
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        lines.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Recipients::parse(what, &lines).map_err(|e| KeyError::Malformed {
        path: PathBuf::from(what),
        message: match e {
            // `what` is already the path shown.
            crate::archive::crypto::CryptoError::Key { message, .. } => message,
            other => other.to_string(),
        },
    })
}

/// Load an unencrypted minisign secret key and derive its public key.
pub fn load_signing_key(
    path: &Path,
    allow_insecure: bool,
) -> Result<(minisign::SecretKey, String), KeyError> {
    let text = read_secret(path, allow_insecure)?;
    let malformed = |m: String| KeyError::Malformed {
        path: path.to_path_buf(),
        message: m,
    };
    let sk = minisign::SecretKeyBox::from_string(&text)
        .and_then(|b| b.into_unencrypted_secret_key())
        .map_err(|e| malformed(format!("not an unencrypted minisign secret key ({e})")))?;
    let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| malformed(e.to_string()))?;
    Ok((sk, pk.to_base64()))
}

/// Load a minisign public key file (`minisign.pub` format) or a bare base64 line.
pub fn load_public_key(path: &Path) -> Result<minisign::PublicKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .unwrap_or_default();
    minisign::PublicKey::from_base64(line).map_err(|e| KeyError::Malformed {
        path: path.to_path_buf(),
        message: format!("not a minisign public key ({e})"),
    })
}

/// The `.pub` path beside a key path.
pub fn pub_path(path: &Path) -> PathBuf {
    path.with_extension("pub")
}

/// What keygen made (public parts only).
#[derive(Debug, serde::Serialize)]
pub struct Generated {
    /// Identity file.
    pub identity: PathBuf,
    /// Recipient file.
    pub recipient_file: PathBuf,
    /// The recipient.
    pub recipient: String,
    /// minisign secret key file.
    pub signing_key: Option<PathBuf>,
    /// minisign public key file.
    pub signing_public_key_file: Option<PathBuf>,
    /// The minisign public key (base64 line).
    pub signing_public_key: Option<String>,
}

/// Make an identity (and optionally a signing key pair) and write the files.
pub fn keygen(
    output: &Path,
    signing: Option<&Path>,
    label: Option<&str>,
    created: &str,
    force: bool,
) -> Result<Generated, KeyError> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let label_line = label
        .map(|l| format!("# label: {}\n", l.replace(['\n', '\r'], " ")))
        .unwrap_or_default();
    let text = format!(
        "# created: {created}\n{label_line}# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    let pub_file = pub_path(output);
    // Every file this run writes is checked first, so a refusal leaves nothing half made
    // (an identity written, then its signing key refused).
    let mut targets = vec![output.to_path_buf(), pub_file.clone()];
    if let Some(sk) = signing {
        targets.extend([sk.to_path_buf(), pub_path(sk)]);
    }
    for (i, p) in targets.iter().enumerate() {
        if targets[..i].contains(p) {
            return Err(KeyError::Io {
                path: p.clone(),
                message: "is named twice (an identity's recipient file replaces its extension with `.pub`: give the identity and the signing key different names)".into(),
            });
        }
        if !force && p.exists() {
            return Err(KeyError::Io {
                path: p.clone(),
                message: "already exists (use --force to replace it)".into(),
            });
        }
    }
    write_secret(output, text.as_bytes(), force)?;
    write_public(
        &pub_file,
        format!("{label_line}{recipient}\n").as_bytes(),
        force,
    )?;
    let mut generated = Generated {
        identity: output.to_path_buf(),
        recipient_file: pub_file,
        recipient,
        signing_key: None,
        signing_public_key_file: None,
        signing_public_key: None,
    };
    if let Some(sk_path) = signing {
        let kp =
            minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| KeyError::Malformed {
                path: sk_path.to_path_buf(),
                message: e.to_string(),
            })?;
        let comment = format!(
            "vaxarc signing key{}",
            label.map(|l| format!(" ({l})")).unwrap_or_default()
        );
        let sk_box = kp
            .sk
            .to_box(Some(&comment))
            .map_err(|e| KeyError::Malformed {
                path: sk_path.to_path_buf(),
                message: e.to_string(),
            })?;
        let pk_box = kp.pk.to_box().map_err(|e| KeyError::Malformed {
            path: sk_path.to_path_buf(),
            message: e.to_string(),
        })?;
        let pk_path = pub_path(sk_path);
        write_secret(sk_path, sk_box.into_string().as_bytes(), force)?;
        write_public(&pk_path, pk_box.into_string().as_bytes(), force)?;
        generated.signing_key = Some(sk_path.to_path_buf());
        generated.signing_public_key_file = Some(pk_path);
        generated.signing_public_key = Some(kp.pk.to_base64());
    }
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_0600_and_refuses_overwrite_and_insecure_reads() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("c.key");
        let sk = dir.path().join("s.key");
        let g = keygen(&id, Some(&sk), Some("custodian 1"), "now", false).unwrap();
        assert!(g.recipient.starts_with("age1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [&id, &sk] {
                assert_eq!(
                    std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
                    0o600
                );
            }
            std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load_identities(std::slice::from_ref(&id), false),
                Err(KeyError::Insecure { .. })
            ));
            assert_eq!(
                load_identities(std::slice::from_ref(&id), true)
                    .unwrap()
                    .len(),
                1
            );
        }
        assert!(keygen(&id, None, None, "now", false).is_err());
        let (_, public) = load_signing_key(&sk, false).unwrap();
        assert_eq!(Some(public), g.signing_public_key);
        let pk = load_public_key(&pub_path(&sk)).unwrap();
        assert_eq!(pk.to_base64(), g.signing_public_key.unwrap());
    }

    /// A keygen refused for one of its files writes none of them.
    #[test]
    fn keygen_checks_every_file_before_writing_any() {
        let dir = tempfile::tempdir().unwrap();
        let sk = dir.path().join("s.key");
        std::fs::write(&sk, "taken").unwrap();
        let id = dir.path().join("b.key");
        let e = keygen(&id, Some(&sk), None, "now", false).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert!(!id.exists() && !pub_path(&id).exists());
        // An identity and a signing key whose `.pub` files would be the same file.
        let e = keygen(&id, Some(&dir.path().join("b.age")), None, "now", true).unwrap_err();
        assert!(e.to_string().contains("named twice"), "{e}");
        assert!(!id.exists());
        // A recipient file given where an identity belongs is named as what it is.
        keygen(&id, None, None, "now", false).unwrap();
        let Err(e) = load_identities(&[pub_path(&id)], true) else {
            panic!("a .pub file was taken as an identity");
        };
        assert!(e.to_string().contains("is a public file"), "{e}");
    }

    #[test]
    fn debug_of_identities_hides_keys() {
        let ids = Identities(vec![age::x25519::Identity::generate()]);
        let shown = format!("{ids:?}");
        assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
    }
}
