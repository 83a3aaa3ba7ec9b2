//! Secrets at rest: vendor credentials and webhook secrets are stored sealed
//! with AES-256-GCM under the server's secrets key, bound to what they belong
//! to (the associated data names the app and the purpose), so a sealed value
//! copied to another row does not open.
//!
//! The key comes from the configuration (`secrets_key`, base64 of 32 bytes; every
//! node of a cluster needs the same one) or, on a single node, from a key file
//! in the data directory created on first start with owner-only permissions.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use rand::RngCore;
use std::path::Path;

/// The version prefix of a sealed value.
const PREFIX: &str = "s1.";
const NONCE_LEN: usize = 12;

/// Seals and opens small secrets with the server's key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// A sealed value that does not open: another key, another context, or damage.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret does not open ({0}); was the secrets key changed?")]
pub struct SealError(&'static str);

impl SecretBox {
    /// A box over a 32-byte key.
    pub fn new(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// The key given as base64 (32 bytes), or else the key file at `path`,
    /// created (owner-only) with a random key when it does not exist.
    pub fn from_config(base64_key: Option<&str>, path: &Path) -> std::io::Result<SecretBox> {
        let invalid =
            |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
        let text = match base64_key.filter(|k| !k.trim().is_empty()) {
            Some(key) => key.trim().to_owned(),
            None => match std::fs::read_to_string(path) {
                Ok(text) => text.trim().to_owned(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    let mut key = [0u8; 32];
                    rand::rng().fill_bytes(&mut key);
                    let text = base64::engine::general_purpose::STANDARD.encode(key);
                    write_owner_only(path, &text)?;
                    text
                }
                Err(error) => return Err(error),
            },
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| invalid("the secrets key is not base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| invalid("the secrets key must be 32 bytes"))?;
        Ok(SecretBox::new(&key))
    }

    /// Seals `plaintext` for `context` (e.g. `push-channel:<app>:apns`).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM seals any input under 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(bytes))
    }

    /// Opens what [`SecretBox::seal`] sealed for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or(SealError("unknown format"))?;
        let bytes = B64.decode(body).map_err(|_| SealError("not base64"))?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError("too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError("authentication failed"))
    }
}

fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_in_its_context_and_with_its_key() {
        let one = SecretBox::new(&[7; 32]);
        let sealed = one.seal("push-channel:a:apns", b"secret");
        assert_eq!(one.open("push-channel:a:apns", &sealed).unwrap(), b"secret");
        assert!(one.open("push-channel:b:apns", &sealed).is_err());
        assert!(SecretBox::new(&[8; 32])
            .open("push-channel:a:apns", &sealed)
            .is_err());
        assert_ne!(
            sealed,
            one.seal("push-channel:a:apns", b"secret"),
            "fresh nonce"
        );
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let first = SecretBox::from_config(None, &path).unwrap();
        let sealed = first.seal("x", b"y");
        let second = SecretBox::from_config(None, &path).unwrap();
        assert_eq!(second.open("x", &sealed).unwrap(), b"y");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only");
        }
        assert!(SecretBox::from_config(Some("c2hvcnQ="), &path).is_err());
    }
}
