//! Password hashing with argon2id (the crate's defaults are OWASP's recommended
//! parameters: 19 MiB, t=2, p=1). Hashing is deliberately slow, so it runs on the
//! blocking pool.

use crate::{Error, Result};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

fn hash_now(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::Internal(format!("password hashing failed: {error}")))
}

fn verify_now(password: &str, phc: &str) -> Result<bool> {
    let parsed = PasswordHash::new(phc)
        .map_err(|error| Error::Internal(format!("stored hash unreadable: {error}")))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Internal(error.to_string()))?
}

/// Hashes a password into a PHC string.
pub(crate) async fn hash(password: String) -> Result<String> {
    blocking(move || hash_now(&password)).await
}

/// Checks a password against a PHC string, in constant time. With no stored hash
/// (unknown email) it still verifies against a throwaway hash, so that unknown
/// and known emails take the same time.
pub(crate) async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    static THROWAWAY: OnceLock<Result<String, String>> = OnceLock::new();
    blocking(move || match phc {
        Some(phc) => verify_now(&password, &phc),
        None => {
            let throwaway = THROWAWAY
                .get_or_init(|| hash_now("no user has this password").map_err(|e| e.to_string()))
                .as_ref()
                .map_err(|error| Error::Internal(error.clone()))?;
            verify_now(&password, throwaway).map(|_| false)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong".into(), Some(phc)).await.unwrap());
        assert!(!verify("no user has this password".into(), None)
            .await
            .unwrap());
    }
}
