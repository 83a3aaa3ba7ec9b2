//! Content-addressed blobs (packages, patches, uploads) over `object_store`.

use crate::Result;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// A stored blob: its SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Lowercase hex SHA-256 of the content; also its address.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A blob being read: its whole size, the range being sent, and the bytes.
pub struct BlobRead {
    /// Size of the whole blob.
    pub size: u64,
    /// The range `stream` yields.
    pub range: std::ops::Range<u64>,
    /// The bytes of `range`, in order.
    pub stream: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
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

    /// Stores a file whose SHA-256 and size the caller computed while writing
    /// it (an upload streamed to disk), without reading it into memory. The
    /// file is read back and the hash checked as it is sent, so a wrong
    /// address is never stored.
    pub async fn put_file(
        &self,
        file: &std::path::Path,
        sha256: &str,
        size: u64,
    ) -> Result<BlobRef> {
        let blob = BlobRef {
            sha256: sha256.to_owned(),
            size,
        };
        let path = Self::path_of(sha256);
        if self.inner.head(&path).await.is_ok() {
            return Ok(blob);
        }
        let io = |error: std::io::Error| object_store::Error::Generic {
            store: "upload",
            source: Box::new(error),
        };
        let mut reader = tokio::fs::File::open(file).await.map_err(io)?;
        let mut writer = WriteMultipart::new(self.inner.put_multipart(&path).await?);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let read = reader.read(&mut buffer).await.map_err(io)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            total += read as u64;
            writer.wait_for_capacity(4).await?;
            writer.write(&buffer[..read]);
        }
        if hex::encode(hasher.finalize()) != sha256 || total != size {
            writer.abort().await?;
            return Err(object_store::Error::Generic {
                store: "upload",
                source: "the file changed while it was stored".into(),
            }
            .into());
        }
        writer.finish().await?;
        Ok(blob)
    }

    /// Streams a blob or a byte range of it; `None` when no blob has that
    /// address. A range past the end is clamped by the caller (see [`BlobRead`]).
    pub async fn read(
        &self,
        sha256: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<BlobRead>> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        match self.inner.get_opts(&Self::path_of(sha256), options).await {
            Ok(found) => Ok(Some(BlobRead {
                size: found.meta.size,
                range: found.range.clone(),
                stream: found
                    .into_stream()
                    .map(|chunk| chunk.map_err(crate::Error::from))
                    .boxed(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The size of a blob, or `None` when absent.
    pub async fn size(&self, sha256: &str) -> Result<Option<u64>> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        match self.inner.head(&Self::path_of(sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
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

    #[tokio::test]
    async fn files_are_stored_streaming_and_read_by_range() {
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(&dir.path().join("blobs")).unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let file = dir.path().join("upload");
        std::fs::write(&file, &content).unwrap();
        let sha256 = hex::encode(Sha256::digest(&content));
        let blob = store
            .put_file(&file, &sha256, content.len() as u64)
            .await
            .unwrap();
        assert_eq!(
            store.size(&blob.sha256).await.unwrap(),
            Some(content.len() as u64)
        );
        let read = store
            .read(&sha256, Some(1000..2_500_000))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.size, content.len() as u64);
        let bytes: Vec<Bytes> = read.stream.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), &content[1000..2_500_000]);
        // A wrong address is refused, not stored.
        assert!(store
            .put_file(&file, &"0".repeat(64), content.len() as u64)
            .await
            .is_err());
        assert!(store.size(&"0".repeat(64)).await.unwrap().is_none());
    }
}
