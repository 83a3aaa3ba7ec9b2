//! Receiving a package upload: the body is streamed to a temporary file and
//! hashed as it arrives, so a 2 GB installer never sits in memory, and the
//! blob store gets it with its address already known. Used by the admin API
//! (raw body) and the console (a multipart field) alike.

use crate::{DeliveryService, Error, Result, UploadedFile};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// An upload on disk; the file is removed when this is dropped.
#[derive(Debug)]
pub struct SpooledUpload {
    path: std::path::PathBuf,
    sha256: String,
    size: u64,
}

impl SpooledUpload {
    /// The file as `upload_package` takes it.
    pub fn file(&self) -> UploadedFile<'_> {
        UploadedFile {
            path: &self.path,
            sha256: &self.sha256,
            size: self.size,
        }
    }
}

impl Drop for SpooledUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl DeliveryService {
    /// Streams an upload to a temporary file; `None` for an empty body.
    /// Refuses (`payload_too_large`) past the configured package size.
    pub async fn spool<S, E>(&self, mut stream: S) -> Result<Option<SpooledUpload>>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let limit = self.config.max_package_bytes;
        let io = |error: std::io::Error| Error::Internal(format!("spooling an upload: {error}"));
        tokio::fs::create_dir_all(&self.config.upload_dir)
            .await
            .map_err(io)?;
        let mut spooled = SpooledUpload {
            path: self
                .config
                .upload_dir
                .join(format!("upload-{}", uuid::Uuid::new_v4())),
            sha256: String::new(),
            size: 0,
        };
        let mut file = tokio::fs::File::create(&spooled.path).await.map_err(io)?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|error| Error::Invalid(format!("the upload was cut off: {error}")))?;
            spooled.size += chunk.len() as u64;
            if spooled.size > limit {
                return Err(Error::TooLarge(format!(
                    "a package is at most {limit} bytes (delivery.max_package_bytes)"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        if spooled.size == 0 {
            return Ok(None);
        }
        spooled.sha256 = hex::encode(hasher.finalize());
        Ok(Some(spooled))
    }
}
