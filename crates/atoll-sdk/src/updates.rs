//! Updates on the device: ask the server what to install, download it (as a
//! delta patch when possible, resumably otherwise), prove it is the file the
//! workspace signed, and report what happened.
//!
//! Trust comes from the app, not from the server: the app pins the
//! workspace's Ed25519 public key, and [`Updater::download`] checks the
//! manifest's signature with it, then checks that the file it downloaded (or
//! rebuilt from a patch) has exactly the signed size and SHA-256. A compromised
//! server or CDN can withhold updates, never substitute them.
//!
//! Files live under [`UpdaterConfig::dir`] (by default `updates/` in the SDK's
//! folder):
//!
//! - `partial/<sha256>.part`: downloads in progress; a later attempt (even in
//!   the next run of the app) continues with a `Range` request.
//! - `tmp/`: files being rebuilt from a patch, and the patch's scratch space.
//! - `files/<sha256>`: verified files, moved there by an atomic rename, so a
//!   file under that name is always complete and checked.
//! - `prompts.json`: the releases already offered once (`prompt_once`).

use crate::device::{DeviceClient, RequestOptions};
use crate::error::{Error, Refusal, Result};
use crate::RetryPolicy;
use atoll_protocol::delivery::{
    limits, Download, PackageManifest, ReportEvent, SignedManifest, Update, UpdateAnswer,
    UpdateCheck, UpdateReport, UpgradeMode,
};
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PROMPTS_FILE: &str = "prompts.json";
/// Releases remembered by `prompt_once`; older ones are forgotten first (a
/// forgotten release is at worst offered once more).
const MAX_REMEMBERED_PROMPTS: usize = 200;

/// Where and how the [`Updater`] works.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// The workspace's package-signing public key, base64 (standard, padded)
    /// of its 32 bytes, as shown by the console. Pinned in the app: it is the
    /// root of trust of every update.
    pub public_key: String,
    /// The folder downloads and verified files are kept in.
    pub dir: PathBuf,
    /// Longest wait for the answer's headers or for any single read of its
    /// body. There is no limit on the whole download: a large package over a
    /// slow but live connection must be allowed to finish.
    pub read_timeout: Duration,
    /// Longest wait to connect.
    pub connect_timeout: Duration,
    /// How interrupted downloads are retried within one
    /// [`Updater::download`] call (each retry resumes where the last stopped).
    pub retry: RetryPolicy,
}

impl UpdaterConfig {
    /// The defaults: `updates/` in the client's folder, 30 s per read, 10 s
    /// to connect, the default retry policy.
    pub fn new(client: &DeviceClient, public_key: impl Into<String>) -> UpdaterConfig {
        UpdaterConfig {
            public_key: public_key.into(),
            dir: client.storage_dir().join("updates"),
            read_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// A file that was downloaded (or rebuilt) and checked against its signed
/// manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFile {
    /// Where it is: `files/<sha256>` in the updater's folder.
    pub path: PathBuf,
    /// Its lowercase hex SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The signed manifest it matches.
    pub manifest: PackageManifest,
    /// Whether it was rebuilt from a delta patch.
    pub via_delta: bool,
}

/// How far a download is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes on disk so far (a resumed download starts above zero).
    pub done: u64,
    /// Bytes of the file being downloaded (the patch's size for a patch).
    pub total: u64,
    /// Whether the bytes are those of a delta patch.
    pub delta: bool,
}

/// A progress callback; called from the downloading task, keep it quick.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// What `prompts.json` holds: release ids in the order they were offered.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PromptState {
    prompted: Vec<String>,
}

/// Checks for updates, downloads and verifies them, reports installs.
#[derive(Debug)]
pub struct Updater {
    client: Arc<DeviceClient>,
    config: UpdaterConfig,
    key: VerifyingKey,
    /// Downloads use their own client: the device client's time limit covers
    /// the whole answer, which would cut large downloads.
    http: reqwest::Client,
    /// Serialises the read-modify-write of `prompts.json`.
    prompts: Mutex<()>,
}

impl Updater {
    /// An updater for `client`; fails if the public key is not 32 bytes of
    /// valid base64 forming an Ed25519 point.
    pub fn new(client: Arc<DeviceClient>, config: UpdaterConfig) -> Result<Updater> {
        let key = parse_public_key(&config.public_key)?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()?;
        Ok(Updater {
            client,
            config,
            key,
            http,
            prompts: Mutex::new(()),
        })
    }

    /// The folder downloads and verified files are kept in.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Asks the server what this device should install, roll back or remove
    /// (`POST /device/v1/updates/check`, signed).
    pub async fn check(&self, request: &UpdateCheck) -> Result<UpdateAnswer> {
        self.client
            .post(
                "/device/v1/updates/check",
                request,
                &RequestOptions::default(),
            )
            .await
    }

    /// Tells the server what happened to a release on this device
    /// (`POST /device/v1/updates/report`, signed; the server answers 204).
    /// `error` should be a stable code such as [`Error::report_code`]; it is
    /// cut to the protocol's limit.
    pub async fn report(
        &self,
        release_id: &str,
        event: ReportEvent,
        from_version: Option<&str>,
        delta: bool,
        error: Option<&str>,
    ) -> Result<()> {
        let report = UpdateReport {
            release_id: release_id.to_owned(),
            event,
            from_version: from_version.map(str::to_owned),
            delta,
            error: error.map(|text| truncate(text, limits::MAX_REPORT_DETAIL_BYTES).to_owned()),
        };
        self.client
            .post_no_content(
                "/device/v1/updates/report",
                &report,
                &RequestOptions::default(),
            )
            .await
    }

    /// Checks `update.signed` with the pinned key and returns the manifest,
    /// provided it describes exactly this update and its download.
    ///
    /// Fails with `signature_invalid` if the signature does not verify over
    /// the manifest's exact bytes, `manifest_mismatch` if the manifest is
    /// unreadable or disagrees with the update (kind, resource, version, app,
    /// size, SHA-256), `nothing_to_download` if the update has no file.
    pub fn verify(&self, update: &Update) -> Result<PackageManifest> {
        let (Some(signed), Some(download)) = (&update.signed, &update.download) else {
            return Err(Error::refused(
                Refusal::NothingToDownload,
                format!(
                    "{} {} {} has no signed file",
                    update.kind, update.resource_id, update.version
                ),
            ));
        };
        let manifest = verify_signed(&self.key, signed)?;
        let mismatch = |what: &str| {
            Error::refused(
                Refusal::ManifestMismatch,
                format!("the signed manifest's {what} differs from the update's"),
            )
        };
        if manifest.kind != update.kind {
            return Err(mismatch("kind"));
        }
        if manifest.resource_id != update.resource_id {
            return Err(mismatch("resource id"));
        }
        if manifest.version != update.version {
            return Err(mismatch("version"));
        }
        // The workspace key signs every app of the workspace: without this a
        // package of another app could be passed off as ours.
        if manifest.app_key != self.client.app_key() {
            return Err(mismatch("app key"));
        }
        if manifest.size != download.size {
            return Err(mismatch("size"));
        }
        if manifest.sha256.as_deref() != Some(download.sha256.as_str()) {
            return Err(mismatch("SHA-256"));
        }
        // The hash names files on disk: only the canonical form may.
        if !is_sha256_hex(&download.sha256) {
            return Err(mismatch("SHA-256 form"));
        }
        Ok(manifest)
    }

    /// Downloads `update`'s file and returns it verified, at
    /// `files/<sha256>` in the updater's folder.
    ///
    /// 1. The signed manifest is checked ([`Updater::verify`]).
    /// 2. If the update carries a delta patch and `installed_file` is the file
    ///    it applies to (same SHA-256), the patch is downloaded and applied;
    ///    the rebuilt file must have the signed SHA-256 and size. Any failure
    ///    on this path falls back to step 3.
    /// 3. The full file is downloaded into `partial/`, continuing a previous
    ///    partial download with a `Range` request, then hashed
    ///    (`hash_mismatch` deletes it).
    ///
    /// A file already verified under its hash is returned without a download.
    /// Do not download the same file in two tasks at once: they would share
    /// its partial file.
    pub async fn download(
        &self,
        update: &Update,
        installed_file: Option<&Path>,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<VerifiedFile> {
        let manifest = self.verify(update)?;
        let Some(download) = &update.download else {
            return Err(Error::refused(Refusal::NothingToDownload, "no download"));
        };
        let sha256 = download.sha256.clone();
        let size = download.size;
        let files = self.config.dir.join("files");
        tokio::fs::create_dir_all(&files).await?;
        let final_path = files.join(&sha256);
        let verified = |via_delta: bool| VerifiedFile {
            path: final_path.clone(),
            sha256: sha256.clone(),
            size,
            manifest: manifest.clone(),
            via_delta,
        };

        if let Ok(existing) = tokio::fs::metadata(&final_path).await {
            // Files are renamed there only once verified, but the disk may
            // have been tampered with or damaged since: check again.
            if existing.len() == size && hash_file(final_path.clone()).await? == sha256 {
                return Ok(verified(false));
            }
            tokio::fs::remove_file(&final_path).await?;
        }

        if let (Some(delta), Some(installed)) = (&update.delta, installed_file) {
            let base_sha256 = hash_file(installed.to_owned()).await.ok();
            if base_sha256.as_deref() == Some(delta.from_sha256.as_str()) {
                let base = installed.to_owned();
                // Any failure (download, corrupt patch, wrong result) leaves
                // the full download as the way to get the file.
                if let Ok(rebuilt) = self
                    .rebuild(
                        &delta.download,
                        base,
                        &delta.from_sha256,
                        &sha256,
                        size,
                        progress,
                    )
                    .await
                {
                    persist(&rebuilt, &final_path).await?;
                    return Ok(verified(true));
                }
            }
        }

        let part = self.fetch(download, false, progress).await?;
        persist(&part, &final_path).await?;
        Ok(verified(false))
    }

    /// Whether to show the user an offer for `update` now, per its mode:
    /// `silent` never, `prompt_every_launch` and `forced` always,
    /// `prompt_once` the first time a release is seen (remembered in the
    /// updater's folder across runs).
    pub fn should_prompt(&self, update: &Update) -> bool {
        match update.mode {
            UpgradeMode::Silent => false,
            UpgradeMode::PromptEveryLaunch | UpgradeMode::Forced => true,
            UpgradeMode::PromptOnce => {
                let _guard = self.prompts.lock().unwrap_or_else(|e| e.into_inner());
                let path = self.config.dir.join(PROMPTS_FILE);
                let mut state: PromptState = std::fs::read(&path)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or_default();
                if state.prompted.contains(&update.release_id) {
                    return false;
                }
                state.prompted.push(update.release_id.clone());
                let excess = state.prompted.len().saturating_sub(MAX_REMEMBERED_PROMPTS);
                state.prompted.drain(..excess);
                // Failing to remember only means offering once more later;
                // the offer itself must not fail.
                if let Ok(bytes) = serde_json::to_vec(&state) {
                    let _ = std::fs::create_dir_all(&self.config.dir)
                        .and_then(|()| write_atomically(&path, &bytes));
                }
                true
            }
        }
    }

    /// Whether the app may not be used until `update` is installed.
    pub fn is_forced(&self, update: &Update) -> bool {
        update.mode == UpgradeMode::Forced
    }

    /// Deletes verified files and partial downloads whose SHA-256 is not in
    /// `keep` (e.g. the installed and the pending packages).
    pub fn prune(&self, keep: &[&str]) -> Result<()> {
        for (folder, suffix) in [("files", ""), ("partial", ".part")] {
            let Ok(entries) = std::fs::read_dir(self.config.dir.join(folder)) else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let sha = name.strip_suffix(suffix).unwrap_or(&name);
                if !keep.contains(&sha) {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(())
    }

    /// Downloads and applies a delta patch to `base`; returns the rebuilt,
    /// verified file in `tmp/`.
    async fn rebuild(
        &self,
        patch: &Download,
        base: PathBuf,
        base_sha256: &str,
        sha256: &str,
        size: u64,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<PathBuf> {
        if !is_sha256_hex(&patch.sha256) {
            return Err(Error::refused(Refusal::ManifestMismatch, "patch SHA-256"));
        }
        let patch_path = self.fetch(patch, true, progress).await?;
        let tmp = self.config.dir.join("tmp");
        tokio::fs::create_dir_all(&tmp).await?;
        let out_path = tmp.join(format!("{sha256}.rebuilt"));
        // The base was just hashed to choose this path: `apply` need not
        // read it a second time (a wrong claim would still fail its result
        // check).
        let mut base_hash = [0u8; 32];
        hex::decode_to_slice(base_sha256, &mut base_hash)
            .map_err(|_| Error::refused(Refusal::ManifestMismatch, "base SHA-256"))?;
        let job = PatchJob {
            patch: patch_path.clone(),
            base,
            base_sha256: base_hash,
            out: out_path.clone(),
            scratch: tmp,
            sha256: sha256.to_owned(),
            size,
        };
        let outcome = tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?;
        // The patch is of no use after one attempt: a corrupt one would fail
        // again, a good one has done its work.
        let _ = tokio::fs::remove_file(&patch_path).await;
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&out_path).await;
        }
        outcome.map(|()| out_path)
    }

    /// Downloads `download` into `partial/<sha256>.part`, resuming what a
    /// previous attempt left, and returns the path once its size and SHA-256
    /// match. Interrupted transfers are retried per the policy, each retry
    /// continuing where the last one stopped.
    async fn fetch(
        &self,
        download: &Download,
        delta: bool,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<PathBuf> {
        let partial = self.config.dir.join("partial");
        tokio::fs::create_dir_all(&partial).await?;
        let part = partial.join(format!("{}.part", download.sha256));
        let url = self.download_url(&download.url);
        let mut attempt = 0;
        loop {
            let before = file_len(&part).await;
            let outcome = self
                .fetch_once(&url, &part, download.size, delta, progress)
                .await;
            let error = match outcome {
                Ok(()) => break,
                Err(error) => error,
            };
            // Progress earns a fresh set of retries: a flaky connection that
            // keeps delivering bytes will get there.
            if file_len(&part).await > before {
                attempt = 0;
            }
            match retry_delay(&self.config.retry, attempt, &error) {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(error),
            }
        }
        let actual = hash_file(part.clone()).await?;
        if actual != download.sha256 {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(Error::refused(
                Refusal::HashMismatch,
                format!(
                    "downloaded file has SHA-256 {actual}, expected {}",
                    download.sha256
                ),
            ));
        }
        Ok(part)
    }

    /// One request of a resumable download. Ok once the file on disk has
    /// `size` bytes (its hash is checked by the caller).
    async fn fetch_once(
        &self,
        url: &str,
        part: &Path,
        size: u64,
        delta: bool,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<()> {
        let mut have = file_len(part).await;
        if have > size {
            // Not a prefix of this file: start over.
            tokio::fs::remove_file(part).await?;
            have = 0;
        }
        if have == size {
            if size == 0 {
                // Nothing to fetch, but the caller hashes the file.
                tokio::fs::File::create(part).await?;
            }
            return Ok(());
        }
        let mut request = self.http.get(url);
        if have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let response = self.timed(request.send()).await??;
        let status = response.status();
        let mut file = if status == reqwest::StatusCode::PARTIAL_CONTENT && have > 0 {
            let range = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_content_range);
            if range != Some((have, size)) {
                // Some other range or some other file: our part is not
                // trusted any more.
                tokio::fs::remove_file(part).await?;
                return Err(restart("the server sent another range"));
            }
            tokio::fs::OpenOptions::new()
                .append(true)
                .open(part)
                .await?
        } else if status == reqwest::StatusCode::OK {
            // The whole file (the server ignored or cannot serve the range).
            have = 0;
            tokio::fs::File::create(part).await?
        } else if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            tokio::fs::remove_file(part).await?;
            return Err(restart("the server refused the range"));
        } else {
            crate::error::check(response).await?;
            return Err(Error::Decode(format!(
                "unexpected download status {status}"
            )));
        };
        let mut response = response;
        let result = async {
            while let Some(chunk) = self.timed(response.chunk()).await?? {
                if have + chunk.len() as u64 > size {
                    return Err(Error::refused(
                        Refusal::HashMismatch,
                        format!("the download is larger than the signed {size} bytes"),
                    ));
                }
                file.write_all(&chunk).await?;
                have += chunk.len() as u64;
                if let Some(progress) = progress {
                    progress(Progress {
                        done: have,
                        total: size,
                        delta,
                    });
                }
            }
            Ok(())
        }
        .await;
        // Keep what arrived, even on error: the next attempt resumes from it.
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        if let Err(error) = result {
            if matches!(error, Error::Refused { .. }) {
                let _ = tokio::fs::remove_file(part).await;
            }
            return Err(error);
        }
        if have < size {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the download stopped at {have} of {size} bytes"),
            )));
        }
        Ok(())
    }

    /// Runs `future` with the per-read time limit.
    async fn timed<F: std::future::Future>(&self, future: F) -> Result<F::Output> {
        tokio::time::timeout(self.config.read_timeout, future)
            .await
            .map_err(|_| {
                Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the download stalled",
                ))
            })
    }

    /// Download URLs are server paths; an absolute URL (a CDN) is used as is.
    fn download_url(&self, url: &str) -> String {
        if url.starts_with("https://") || url.starts_with("http://") {
            url.to_owned()
        } else if url.starts_with('/') {
            format!("{}{url}", self.client.server_url())
        } else {
            format!("{}/{url}", self.client.server_url())
        }
    }
}

/// Parses the pinned key.
fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|error| Error::Config(format!("public key is not base64: {error}")))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::Config("public key must be 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|error| Error::Config(format!("public key is not an Ed25519 key: {error}")))
}

/// Verifies the signature over the manifest's exact bytes, then parses them.
fn verify_signed(key: &VerifyingKey, signed: &SignedManifest) -> Result<PackageManifest> {
    let invalid = |detail: String| Error::refused(Refusal::SignatureInvalid, detail);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(signed.signature.trim())
        .map_err(|error| invalid(format!("signature is not base64: {error}")))?;
    let signature =
        Signature::from_slice(&bytes).map_err(|error| invalid(format!("signature: {error}")))?;
    // Strict: also refuses small-order keys and non-canonical signatures,
    // which an honest signer never produces.
    key.verify_strict(signed.manifest.as_bytes(), &signature)
        .map_err(|_| {
            invalid(format!(
                "signature of key {} does not verify",
                signed.key_id
            ))
        })?;
    serde_json::from_str(&signed.manifest).map_err(|error| {
        Error::refused(
            Refusal::ManifestMismatch,
            format!("signed manifest is unreadable: {error}"),
        )
    })
}

/// A patch to apply, off the async threads.
struct PatchJob {
    patch: PathBuf,
    base: PathBuf,
    base_sha256: [u8; 32],
    out: PathBuf,
    scratch: PathBuf,
    /// The signed SHA-256 and size of the file to rebuild.
    sha256: String,
    size: u64,
}

impl PatchJob {
    /// Applies the patch to the base into `out`, checking the patch's promise
    /// against the signed hash first and the written file after.
    fn run(self) -> Result<()> {
        let patch = std::fs::read(&self.patch)?;
        let header = atoll_delta::read_header(&patch)
            .map_err(|error| Error::refused(Refusal::HashMismatch, error.to_string()))?;
        // Only a patch that promises the signed file is worth applying.
        if hex::encode(header.new_sha256) != self.sha256 || header.new_size != self.size {
            return Err(Error::refused(
                Refusal::ManifestMismatch,
                "the patch does not produce the signed file",
            ));
        }
        let old = std::fs::File::open(&self.base)?;
        let mut writer = std::io::BufWriter::new(std::fs::File::create(&self.out)?);
        let options = atoll_delta::ApplyOptions {
            scratch_dir: Some(self.scratch.clone()),
            old_sha256: Some(self.base_sha256),
            ..atoll_delta::ApplyOptions::default()
        };
        atoll_delta::apply(&old, &patch, &mut writer, &options)
            .map_err(|error| Error::refused(Refusal::HashMismatch, error.to_string()))?;
        let file = writer
            .into_inner()
            .map_err(|error| Error::Io(error.into_error()))?;
        file.sync_all()?;
        drop(file);
        // `apply` checked its output as it wrote it; check the file as it is
        // on disk against the manifest too, as for a full download.
        let (actual, length) = hash_path(&self.out)?;
        if actual != self.sha256 || length != self.size {
            return Err(Error::refused(
                Refusal::HashMismatch,
                format!(
                    "rebuilt file has SHA-256 {actual}, expected {}",
                    self.sha256
                ),
            ));
        }
        Ok(())
    }
}

/// Moves a verified file to its final name atomically.
async fn persist(from: &Path, to: &Path) -> Result<()> {
    tokio::fs::rename(from, to).await?;
    Ok(())
}

/// The lowercase hex SHA-256 of a file, hashed off the async threads.
async fn hash_file(path: PathBuf) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_path(&path).map(|(hash, _)| hash))
        .await
        .map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?
}

/// The SHA-256 and length of a file, read in chunks.
pub(crate) fn hash_path(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut length = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        length += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), length))
}

async fn file_len(path: &Path) -> u64 {
    tokio::fs::metadata(path)
        .await
        .map(|meta| meta.len())
        .unwrap_or(0)
}

/// Writes a small file atomically: temporary file, fsync, rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// An error that makes the download start again from the first byte.
fn restart(detail: &str) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        detail.to_owned(),
    ))
}

/// How long to wait before retrying a download after `error`, if at all.
fn retry_delay(policy: &RetryPolicy, attempt: u32, error: &Error) -> Option<Duration> {
    match error {
        // Stalls, cuts and restarts are this module's own transient errors.
        Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::Interrupted
            ) =>
        {
            if attempt + 1 >= policy.max_attempts {
                return None;
            }
            Some(
                policy
                    .base_delay
                    .saturating_mul(1 << attempt.min(16))
                    .min(policy.max_delay),
            )
        }
        _ => policy.delay_after(attempt, error),
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL); the end must be TOTAL - 1.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end, total): (u64, u64, u64) =
        (start.parse().ok()?, end.parse().ok()?, total.parse().ok()?);
    (end.checked_add(1)? == total && start <= end).then_some((start, total))
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The longest prefix of `text` within `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
#[path = "updates_tests.rs"]
mod tests;
