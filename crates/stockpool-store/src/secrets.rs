//! Channel credentials and webhook secrets, encrypted at rest.
//!
//! A store's `secret` and `credentials` are sealed with XChaCha20-Poly1305 under the
//! server's 256-bit key before they are written, and opened when a workspace is loaded;
//! only the server process holds them in the clear. A sealed value is the text
//! `sealed:v1:` + hex(24-byte random nonce || ciphertext and tag).
//!
//! Where the key comes from (the first that is set):
//! 1. `STOCKPOOL_SECRET_KEY`: 64 hex characters (for several servers on one PostgreSQL,
//!    give each the same key this way or through the key file);
//! 2. `STOCKPOOL_SECRET_KEY_FILE`: a file holding the same;
//! 3. SQLite: the file `<database>.key` beside the database;
//! 4. PostgreSQL: `$HOME/.config/stockpool/secret.key`.
//!
//! A key file that does not exist is created (mode 0600) with a new random key. The key is
//! never written to the database, so a copy of the database alone reveals no secret. A
//! sealed value that this key cannot open fails loading with an error that names where
//! the key came from: the operator must bring the right key back, nothing is guessed.

use crate::StoreError;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::{Path, PathBuf};

/// Prefix of a sealed value (format version 1).
const SEALED_PREFIX: &str = "sealed:v1:";
/// Bytes of an XChaCha20 nonce.
const NONCE_BYTES: usize = 24;
/// Largest secret or credentials document accepted, in bytes (before sealing).
pub const SECRET_BYTES_MAX: usize = 16 * 1024;

/// The server's key, and where it came from (for error messages).
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    origin: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(from {})", self.origin)
    }
}

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{origin} must hold 64 hex characters (a 256-bit key)")]
    Malformed { origin: String },
    #[error("cannot read or create the secret key file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("no randomness available to make a secret key: {0}")]
    Random(String),
    #[error("no key source: set STOCKPOOL_SECRET_KEY or STOCKPOOL_SECRET_KEY_FILE (HOME is not set)")]
    NoSource,
}

impl SecretKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32], origin: impl Into<String>) -> SecretKey {
        SecretKey { cipher: XChaCha20Poly1305::new(&bytes.into()), origin: origin.into() }
    }

    fn from_hex(text: &str, origin: String) -> Result<SecretKey, KeyError> {
        let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
        match bytes {
            Some(b) => Ok(SecretKey::from_bytes(b, origin)),
            None => Err(KeyError::Malformed { origin }),
        }
    }

    /// The key for the database at `database_url`, from the sources in the module doc.
    pub fn for_database(database_url: &str) -> Result<SecretKey, KeyError> {
        if let Ok(text) = std::env::var("STOCKPOOL_SECRET_KEY") {
            return SecretKey::from_hex(&text, "STOCKPOOL_SECRET_KEY".into());
        }
        let path = match std::env::var_os("STOCKPOOL_SECRET_KEY_FILE") {
            Some(p) => PathBuf::from(p),
            None => match crate::db::sqlite_file(database_url) {
                Some(db) => {
                    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "stockpool.db".into());
                    name.push(".key");
                    db.with_file_name(name)
                }
                None => {
                    let home = std::env::var_os("HOME").ok_or(KeyError::NoSource)?;
                    PathBuf::from(home).join(".config").join("stockpool").join("secret.key")
                }
            },
        };
        SecretKey::from_file(&path)
    }

    /// Reads the key file, creating it with a new key (mode 0600) when it does not exist.
    /// Two processes starting at once agree: only one creation succeeds, the other reads.
    pub fn from_file(path: &Path) -> Result<SecretKey, KeyError> {
        let file_err = |source| KeyError::File { path: path.to_path_buf(), source };
        let origin = format!("the key file {}", path.display());
        match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => return SecretKey::from_hex(&text, origin),
            Ok(_) => {
                // Another process is creating it right now: give it a moment.
                std::thread::sleep(std::time::Duration::from_millis(50));
                let text = std::fs::read_to_string(path).map_err(file_err)?;
                return SecretKey::from_hex(&text, origin);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(e)),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(file_err)?;
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(format!("{}\n", hex::encode(bytes)).as_bytes()).map_err(file_err)?;
                f.sync_all().map_err(file_err)?;
                tracing::info!(path = %path.display(), "created a new secret key for channel credentials");
                Ok(SecretKey::from_bytes(bytes, origin))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => SecretKey::from_file(path),
            Err(e) => Err(file_err(e)),
        }
    }

    /// Seals `plain`: a fresh random nonce each time.
    pub fn seal(&self, plain: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Invalid(format!("no randomness available: {e}")))?;
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| StoreError::Invalid("a secret could not be encrypted".into()))?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", hex::encode(out)))
    }

    /// Opens a value made by `seal`.
    pub fn open(&self, sealed: &str) -> Result<String, StoreError> {
        let cannot = || {
            StoreError::Corrupt(format!(
                "a stored channel secret cannot be decrypted with {}: start the server with the key it was saved under",
                self.origin
            ))
        };
        let raw = sealed.strip_prefix(SEALED_PREFIX).and_then(|h| hex::decode(h).ok()).ok_or_else(cannot)?;
        if raw.len() < NONCE_BYTES {
            return Err(cannot());
        }
        let (nonce, body) = raw.split_at(NONCE_BYTES);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), body).map_err(|_| cannot())?;
        String::from_utf8(plain).map_err(|_| cannot())
    }

    /// Whether `text` looks sealed (rows written before encryption existed are not).
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(SEALED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes([n; 32], "a test key")
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_hides_the_text() {
        let sealed = key(1).seal("s3cret").unwrap();
        assert!(SecretKey::is_sealed(&sealed));
        assert!(!sealed.contains("s3cret"));
        assert_ne!(sealed, key(1).seal("s3cret").unwrap(), "a fresh nonce each time");
        assert_eq!(key(1).open(&sealed).unwrap(), "s3cret");
    }

    #[test]
    fn another_key_or_a_tampered_value_cannot_open_it() {
        let sealed = key(1).seal("s3cret").unwrap();
        let err = key(2).open(&sealed).unwrap_err().to_string();
        assert!(err.contains("cannot be decrypted with a test key"), "{err}");
        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == '0' { '1' } else { '0' });
        assert!(key(1).open(&tampered).is_err());
        assert!(key(1).open("s3cret").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_read_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("secret.key");
        let first = SecretKey::from_file(&path).unwrap();
        let sealed = first.seal("x").unwrap();
        let again = SecretKey::from_file(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(SecretKey::from_file(&path), Err(KeyError::Malformed { .. })));
    }

    #[test]
    fn a_sqlite_database_keeps_its_key_beside_it() {
        use crate::db::sqlite_file;
        assert_eq!(sqlite_file("sqlite:///tmp/a/stockpool.db?mode=rwc"), Some(PathBuf::from("/tmp/a/stockpool.db")));
        assert_eq!(sqlite_file("sqlite://stockpool.db"), Some(PathBuf::from("stockpool.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
