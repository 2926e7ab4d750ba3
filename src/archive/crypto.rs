//! Keys and envelope encryption.
//!
//! Every encrypted object of the archive (a partition, its vault file, the index, the
//! quarantine and review lists) is encrypted with age to its own fresh X25519 identity;
//! that identity is itself encrypted ("wrapped") with age to the custodian recipients
//! (or the vault recipients) and stored as `keys/<object>.key.age`. Destroying the
//! wrapped key is a cryptographic erase of every copy of the object, backups included.
//!
//! Secrets live in `secrecy` types; nothing here implements `Debug` over key material.

use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

/// Most recipient stanzas accepted in an age header we read (an attacker's header with
/// thousands of stanzas costs seconds of CPU each).
pub const MAX_STANZAS: usize = 64;

/// A crypto failure: what, never key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Wrong key, tampered or truncated ciphertext.
    #[error("cannot decrypt `{what}`: {message}")]
    Decrypt { what: String, message: String },
    /// Encryption failed.
    #[error("cannot encrypt `{what}`: {message}")]
    Encrypt { what: String, message: String },
    /// A key file or recipient is malformed.
    #[error("{what}: {message}")]
    Key { what: String, message: String },
}

/// A set of X25519 recipients.
#[derive(Clone)]
pub struct Recipients(pub Vec<age::x25519::Recipient>);

impl Recipients {
    /// Parse `age1…` strings.
    pub fn parse(what: &str, items: &[String]) -> Result<Recipients, CryptoError> {
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let r =
                age::x25519::Recipient::from_str(item.trim()).map_err(|_| CryptoError::Key {
                    what: what.to_string(),
                    message: format!("entry {} is not an age X25519 recipient (`age1…`)", i + 1),
                })?;
            out.push(r);
        }
        if out.is_empty() {
            return Err(CryptoError::Key {
                what: what.to_string(),
                message: "no recipients given".into(),
            });
        }
        Ok(Recipients(out))
    }

    /// The `age1…` strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|r| r.to_string()).collect()
    }
}

/// A set of identities able to decrypt.
pub struct Identities(pub Vec<age::x25519::Identity>);

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities(<{} redacted>)", self.0.len())
    }
}

impl Identities {
    /// Parse an identity file's text (age-keygen format: comments and
    /// `AGE-SECRET-KEY-1…` lines).
    pub fn parse(what: &str, text: &str) -> Result<Identities, CryptoError> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = age::x25519::Identity::from_str(line).map_err(|_| CryptoError::Key {
                what: what.to_string(),
                message: format!("line {} is not an age X25519 identity", n + 1),
            })?;
            out.push(id);
        }
        if out.is_empty() {
            return Err(CryptoError::Key {
                what: what.to_string(),
                message: "holds no AGE-SECRET-KEY-1 line".into(),
            });
        }
        Ok(Identities(out))
    }

    /// Public recipients of these identities.
    pub fn recipients(&self) -> Vec<String> {
        self.0.iter().map(|i| i.to_public().to_string()).collect()
    }
}

/// A fresh identity as identity-file text (the secret), and its recipient.
pub fn fresh_identity() -> (age::secrecy::SecretString, age::x25519::Recipient) {
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public();
    (id.to_string(), recipient)
}

/// Encrypt `plaintext` to recipients.
pub fn encrypt(
    what: &str,
    recipients: &[age::x25519::Recipient],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    let mut writer = encrypt_writer(what, recipients, &mut out)?;
    writer
        .write_all(plaintext)
        .map_err(|e| CryptoError::Encrypt {
            what: what.into(),
            message: e.to_string(),
        })?;
    writer.finish().map_err(|e| CryptoError::Encrypt {
        what: what.into(),
        message: e.to_string(),
    })?;
    Ok(out)
}

/// A streaming encryptor over `out`. The caller MUST call `finish()` on it.
pub fn encrypt_writer<W: Write>(
    what: &str,
    recipients: &[age::x25519::Recipient],
    out: W,
) -> Result<age::stream::StreamWriter<W>, CryptoError> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| CryptoError::Encrypt {
                what: what.into(),
                message: e.to_string(),
            })?;
    encryptor
        .wrap_output(out)
        .map_err(|e| CryptoError::Encrypt {
            what: what.into(),
            message: e.to_string(),
        })
}

/// Bytes of an age object [`check_header`] looks at: a header must end within them.
pub(crate) const HEADER_LIMIT: usize = 64 * 1024;

/// Refuse age headers with too many stanzas before handing them to the age crate.
pub(crate) fn check_header(what: &str, ciphertext: &[u8]) -> Result<(), CryptoError> {
    let head = &ciphertext[..ciphertext.len().min(HEADER_LIMIT)];
    let mut stanzas = 0usize;
    for line in head.split(|&b| b == b'\n') {
        if line.starts_with(b"---") {
            return Ok(());
        }
        if line.starts_with(b"-> ") {
            stanzas += 1;
            if stanzas > MAX_STANZAS {
                return Err(CryptoError::Decrypt {
                    what: what.into(),
                    message: format!(
                        "age header has more than {MAX_STANZAS} recipient stanzas; refused"
                    ),
                });
            }
        }
    }
    if ciphertext.starts_with(b"age-encryption.org/") {
        return Err(CryptoError::Decrypt {
            what: what.into(),
            message: "age header is too long or has no end; refused".into(),
        });
    }
    Ok(())
}

/// Decrypt a whole age ciphertext with any of the identities.
pub fn decrypt(
    what: &str,
    identities: &[age::x25519::Identity],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    check_header(what, ciphertext)?;
    let err = |message: String| CryptoError::Decrypt {
        what: what.into(),
        message,
    };
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| err(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| err(e.to_string()))?;
    Ok(out)
}

/// Unwrap a wrapped object key: decrypt it, then parse the identity inside.
pub fn unwrap_key(
    what: &str,
    identities: &[age::x25519::Identity],
    wrapped: &[u8],
) -> Result<age::x25519::Identity, CryptoError> {
    let plain = decrypt(what, identities, wrapped)?;
    let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Key {
        what: what.into(),
        message: "wrapped key is not text".into(),
    })?;
    let ids = Identities::parse(what, text)?;
    ids.0.into_iter().next().ok_or_else(|| CryptoError::Key {
        what: what.into(),
        message: "wrapped key holds no identity".into(),
    })
}

/// Wrap a fresh identity's secret to recipients.
pub fn wrap_key(
    what: &str,
    secret: &age::secrecy::SecretString,
    recipients: &[age::x25519::Recipient],
) -> Result<Vec<u8>, CryptoError> {
    let text = format!("{}\n", secret.expose_secret());
    encrypt(what, recipients, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let ct = encrypt("t", &[a.to_public()], b"hello").unwrap();
        assert_eq!(decrypt("t", &[a], &ct).unwrap(), b"hello");
        let err = decrypt("t", &[b], &ct).unwrap_err().to_string();
        assert!(err.contains("cannot decrypt `t`"), "{err}");
    }

    #[test]
    fn wrapped_key_unwraps_to_same_identity() {
        let custodian = age::x25519::Identity::generate();
        let (secret, recipient) = fresh_identity();
        let wrapped = wrap_key("k", &secret, &[custodian.to_public()]).unwrap();
        let id = unwrap_key("k", &[custodian], &wrapped).unwrap();
        assert_eq!(id.to_public().to_string(), recipient.to_string());
    }

    #[test]
    fn header_with_many_stanzas_is_refused() {
        let mut fake = b"age-encryption.org/v1\n".to_vec();
        for _ in 0..1000 {
            fake.extend_from_slice(b"-> X25519 AAAA\nAAAA\n");
        }
        fake.extend_from_slice(b"--- AAAA\n");
        let err = decrypt("x", &[age::x25519::Identity::generate()], &fake)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stanzas"), "{err}");
    }
}
