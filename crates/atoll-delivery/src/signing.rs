//! Workspace signing keys: one Ed25519 key per workspace, made on first use,
//! signs every package manifest. Apps pin the public key and refuse packages
//! whose manifest signature or file hash does not check out, so a compromised
//! download path (CDN, proxy, blob store) cannot ship code to devices.
//!
//! The secret half is kept in the metadata store, as app secrets are; whoever
//! can read that store can sign, so it gets the same protection (file mode,
//! database access, backups).

use crate::{Error, Result};
use atoll_protocol::delivery::{PackageManifest, SignedManifest, SigningKey};
use atoll_store::{MetaStore, WriteTx};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// A workspace's key pair.
pub struct WorkspaceKey {
    public: SigningKey,
    secret: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for WorkspaceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceKey")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

fn key_id_of(public: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

impl WorkspaceKey {
    /// The public half, as apps pin it.
    pub fn public(&self) -> &SigningKey {
        &self.public
    }

    /// Signs a manifest: its compact JSON is the signed text.
    pub fn sign(&self, manifest: &PackageManifest) -> SignedManifest {
        let text = serde_json::to_string(manifest).expect("a manifest serialises");
        let signature = self.secret.sign(text.as_bytes());
        SignedManifest {
            manifest: text,
            signature: STANDARD.encode(signature.to_bytes()),
            key_id: self.public.key_id.clone(),
        }
    }
}

/// Checks a signed manifest against a base64 public key and parses it: what
/// the SDK does before trusting a package (here for tests and tools).
pub fn verify(signed: &SignedManifest, public_key: &str) -> Result<PackageManifest> {
    let bad = |what: &str| Error::Invalid(format!("manifest signature: {what}"));
    let public: [u8; 32] = STANDARD
        .decode(public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| bad("the public key is not 32 bytes of base64"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|_| bad("bad key"))?;
    let signature: [u8; 64] = STANDARD
        .decode(&signed.signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| bad("not 64 bytes of base64"))?;
    key.verify(
        signed.manifest.as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .map_err(|_| bad("does not verify"))?;
    serde_json::from_str(&signed.manifest).map_err(|error| bad(&error.to_string()))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<WorkspaceKey> {
    let secret: String = row.try_get(2)?;
    let secret: [u8; 32] = STANDARD
        .decode(secret)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| Error::Internal("stored signing key is not 32 bytes".into()))?;
    Ok(WorkspaceKey {
        public: SigningKey {
            key_id: row.try_get(0)?,
            algorithm: "ed25519".into(),
            public_key: row.try_get(1)?,
            created_at: row.try_get(3)?,
        },
        secret: ed25519_dalek::SigningKey::from_bytes(&secret),
    })
}

const SELECT: &str =
    "SELECT key_id, public_key, secret_key, created_at FROM signing_keys WHERE workspace_id = $1";

/// The workspace's key, if it has one.
pub async fn find(store: &MetaStore, workspace_id: &str) -> Result<Option<WorkspaceKey>> {
    let row = sqlx::query(SELECT)
        .bind(workspace_id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The workspace's key, made inside this write if it has none yet.
pub async fn get_or_create(tx: &mut WriteTx, workspace_id: &str, now: i64) -> Result<WorkspaceKey> {
    let row = sqlx::query(SELECT)
        .bind(workspace_id)
        .fetch_optional(&mut ***tx)
        .await?;
    if let Some(row) = row {
        return from_row(&row);
    }
    let seed: [u8; 32] = rand::random();
    let secret = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public_bytes = secret.verifying_key().to_bytes();
    let key = WorkspaceKey {
        public: SigningKey {
            key_id: key_id_of(&public_bytes),
            algorithm: "ed25519".into(),
            public_key: STANDARD.encode(public_bytes),
            created_at: now,
        },
        secret,
    };
    sqlx::query(
        "INSERT INTO signing_keys (workspace_id, key_id, public_key, secret_key, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(workspace_id)
    .bind(&key.public.key_id)
    .bind(&key.public.public_key)
    .bind(STANDARD.encode(seed))
    .bind(now)
    .execute(&mut ***tx)
    .await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_protocol::delivery::ResourceKind;
    use atoll_protocol::device::Platform;

    #[test]
    fn signatures_verify_and_any_change_breaks_them() {
        let secret = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let public = secret.verifying_key().to_bytes();
        let key = WorkspaceKey {
            public: SigningKey {
                key_id: key_id_of(&public),
                algorithm: "ed25519".into(),
                public_key: STANDARD.encode(public),
                created_at: 0,
            },
            secret,
        };
        let manifest = PackageManifest {
            app_key: "ak".into(),
            kind: ResourceKind::App,
            resource_id: "app".into(),
            platform: Platform::Android,
            version: "2.0.0".into(),
            for_app_version: None,
            sha256: Some("ab".repeat(32)),
            size: 10,
            store_url: None,
            web: None,
        };
        let signed = key.sign(&manifest);
        assert_eq!(verify(&signed, &key.public.public_key).unwrap(), manifest);
        let mut tampered = signed.clone();
        tampered.manifest = tampered.manifest.replace("2.0.0", "2.0.1");
        assert!(verify(&tampered, &key.public.public_key).is_err());
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        assert!(verify(&signed, &STANDARD.encode(other.verifying_key().to_bytes())).is_err());
    }
}
