//! Content-addressed blobs (packages, patches, uploads) over `object_store`.

use crate::Result;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A stored blob: its SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Lowercase hex SHA-256 of the content; also its address.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Blobs addressed by the SHA-256 of their content: storing the same bytes twice
/// stores them once, and a blob can never change under its name.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// A blob store in a local folder (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<BlobStore> {
        std::fs::create_dir_all(dir).map_err(|error| object_store::Error::Generic {
            store: "local",
            source: Box::new(error),
        })?;
        Ok(BlobStore {
            inner: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
        })
    }

    /// A blob store over any `object_store` backend (S3 in cluster mode, memory in tests).
    pub fn new(inner: Arc<dyn ObjectStore>) -> BlobStore {
        BlobStore { inner }
    }

    fn path_of(sha256: &str) -> Path {
        Path::from(format!("sha256/{}/{}", &sha256[..2], sha256))
    }

    /// Stores bytes and returns their address.
    pub async fn put(&self, content: Bytes) -> Result<BlobRef> {
        let sha256 = hex::encode(Sha256::digest(&content));
        let size = content.len() as u64;
        let path = Self::path_of(&sha256);
        if self.inner.head(&path).await.is_err() {
            self.inner.put(&path, PutPayload::from(content)).await?;
        }
        Ok(BlobRef { sha256, size })
    }

    /// Reads a blob, or `None` when no blob has that address.
    pub async fn get(&self, sha256: &str) -> Result<Option<Bytes>> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        match self.inner.get(&Self::path_of(sha256)).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Checks that the backing store answers.
    pub async fn ping(&self) -> Result<()> {
        match self.inner.head(&Path::from("atoll-ping")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_are_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let first = store.put(Bytes::from_static(b"hello")).await.unwrap();
        let again = store.put(Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(first.size, 5);
        assert_eq!(
            store.get(&first.sha256).await.unwrap().unwrap(),
            Bytes::from_static(b"hello")
        );
        assert!(store.get(&"0".repeat(64)).await.unwrap().is_none());
        assert!(store.get("../etc/passwd").await.unwrap().is_none());
    }
}
