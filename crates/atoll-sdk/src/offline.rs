//! Offline packages on the device: H5 offline packages and mini programs,
//! unpacked from verified zips and served to the app's web container from
//! local files.
//!
//! A package is a zip with a `manifest.json` ([`WebManifest`]) naming its id,
//! version, virtual domain and entry page. [`OfflinePackages::install`]
//! unpacks a [`VerifiedFile`] into `offline/<id>/<version>/` and only then
//! makes that version the current one, by rewriting a small index file
//! atomically: a crash leaves the old version or the new one, never half of
//! one. [`OfflinePackages::resolve`] maps the container's request for
//! `https://{domain}/{path}` to a file of the current version.
//!
//! Packages come from the network, so their contents are treated as hostile
//! even though their hash is signed: names that would land outside the
//! package's folder (absolute, `..`, backslashes, drive letters) are refused,
//! as are duplicate names, and entry counts and sizes are capped before
//! anything is written. The zip is read with `atoll_delta::zip` (a small,
//! fuzzed reader already in the tree) and inflated with `flate2`. The `zip`
//! crate was not taken: its default features bring bzip2, lzma, xz, zstd,
//! deflate64 and AES, and even its bare `deflate` feature brings zopfli and
//! switches `flate2`'s backend for the whole workspace.
//!
//! Two versions are kept per package, the current one and the one before, so
//! a rollback to the previous version needs no download
//! ([`OfflinePackages::rollback_to`]).
//!
//! The methods do blocking file I/O; call `install` from a blocking task
//! (`tokio::task::spawn_blocking`) in async code.

use crate::error::{Error, Refusal, Result};
use crate::updates::{write_atomically, VerifiedFile};
use atoll_delta::zip::{Entry, DEFLATED, STORED};
use atoll_protocol::delivery::{
    limits, Installed, ResourceKind, WebManifest, PACKAGE_MANIFEST_FILE,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// The index of installed packages, inside `offline/`. Dot-prefixed: ids
/// must start with a letter or digit, so no package folder can take its name.
const INDEX_FILE: &str = ".index.json";
/// Served for a path that names a folder.
const INDEX_HTML: &str = "index.html";

/// Caps on what one offline package may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineLimits {
    /// Bytes of the zip itself (it is read into memory to be unpacked).
    pub max_package_bytes: u64,
    /// Entries in the zip, folders included.
    pub max_entries: usize,
    /// Bytes of all files once unpacked.
    pub max_total_bytes: u64,
}

impl Default for OfflineLimits {
    fn default() -> Self {
        OfflineLimits {
            max_package_bytes: 128 << 20,
            max_entries: limits::MAX_MANIFEST_FILES + 5_000,
            max_total_bytes: 512 << 20,
        }
    }
}

/// What the index file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Index {
    packages: BTreeMap<String, IndexEntry>,
}

/// One package in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct IndexEntry {
    kind: ResourceKind,
    /// The version served.
    current: String,
    /// The version before, kept on disk for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<String>,
}

/// The current version of one package, ready to answer requests.
#[derive(Debug, Clone)]
struct Live {
    /// The package id.
    id: String,
    /// Its folder.
    root: PathBuf,
    /// The entry page's path, relative to the domain root.
    entry: String,
    /// The paths served, if the manifest lists them (otherwise every file).
    files: Option<HashSet<String>>,
}

#[derive(Debug, Default)]
struct State {
    index: Index,
    /// Current versions by lowercase domain.
    live: HashMap<String, Live>,
}

/// The offline packages installed on this device.
#[derive(Debug)]
pub struct OfflinePackages {
    /// `offline/` in the updates folder.
    root: PathBuf,
    limits: OfflineLimits,
    state: RwLock<State>,
    /// Serialises installs, removals and rollbacks (reads go on meanwhile).
    changes: Mutex<()>,
}

impl OfflinePackages {
    /// The store in `offline/` of `dir` (usually [`crate::Updater::dir`]),
    /// with the default limits. A missing or unreadable index starts empty.
    pub fn open(dir: impl AsRef<Path>) -> Result<OfflinePackages> {
        OfflinePackages::with_limits(dir, OfflineLimits::default())
    }

    /// [`OfflinePackages::open`] with other limits.
    pub fn with_limits(dir: impl AsRef<Path>, limits: OfflineLimits) -> Result<OfflinePackages> {
        let root = dir.as_ref().join("offline");
        std::fs::create_dir_all(&root)?;
        let index: Index = std::fs::read(root.join(INDEX_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let store = OfflinePackages {
            root,
            limits,
            state: RwLock::new(State::default()),
            changes: Mutex::new(()),
        };
        store.publish(index);
        Ok(store)
    }

    /// Unpacks a verified H5 or mini program package and makes it the current
    /// version of its id; returns its manifest. The version before stays on
    /// disk, older ones are deleted.
    ///
    /// Refuses (`package_invalid`, `manifest_mismatch`, `unsafe_path`,
    /// `too_large`, `hash_mismatch`) without touching the installed versions.
    pub fn install(&self, file: &VerifiedFile) -> Result<WebManifest> {
        if !matches!(
            file.manifest.kind,
            ResourceKind::H5 | ResourceKind::Miniprogram
        ) {
            return Err(Error::refused(
                Refusal::PackageInvalid,
                format!("a {} package is not an offline package", file.manifest.kind),
            ));
        }
        let bytes = read_capped(&file.path, self.limits.max_package_bytes)?;
        // The file was verified when downloaded; it may have changed on disk
        // since, and it is about to be trusted as code.
        if hex::encode(Sha256::digest(&bytes)) != file.sha256 {
            return Err(Error::refused(
                Refusal::HashMismatch,
                "the package changed on disk since it was verified",
            ));
        }
        let entries = atoll_delta::zip::read_entries(&bytes)
            .ok_or_else(|| Error::refused(Refusal::PackageInvalid, "not a readable zip"))?;
        let plan = self.plan(&bytes, &entries)?;
        let manifest = read_manifest(&bytes, &entries)?;
        check_manifest(&manifest, file)?;
        for path in &manifest.files {
            let parts = safe_path(path).ok_or_else(|| unsafe_path(path))?;
            if !plan.files.contains(&parts.join("/").to_lowercase()) {
                return Err(Error::refused(
                    Refusal::PackageInvalid,
                    format!("manifest lists {path}, which the zip lacks"),
                ));
            }
        }

        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let domain = manifest.domain.to_lowercase();
        let taken = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .live
            .get(&domain)
            .map(|live| live.id.clone())
            .filter(|id| *id != manifest.id);
        if let Some(other) = taken {
            // Two packages on one domain would make `resolve` ambiguous.
            return Err(Error::refused(
                Refusal::PackageInvalid,
                format!("domain {domain} is served by package {other}"),
            ));
        }

        let package_dir = self.root.join(&manifest.id);
        std::fs::create_dir_all(&package_dir)?;
        let staging = package_dir.join(format!(".staging-{}", uuid::Uuid::new_v4()));
        if let Err(error) = unpack(&bytes, &plan, &staging) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
        let target = package_dir.join(&manifest.version);
        if target.exists() {
            // Reinstalling a version: move the old copy aside first, as a
            // rename cannot replace a non-empty folder.
            let aside = package_dir.join(format!(".old-{}", uuid::Uuid::new_v4()));
            std::fs::rename(&target, &aside)?;
            let _ = std::fs::remove_dir_all(&aside);
        }
        std::fs::rename(&staging, &target)?;
        sync_dir(&package_dir);

        let mut index = self.index();
        let previous = index.packages.get(&manifest.id).and_then(|entry| {
            if entry.current != manifest.version {
                Some(entry.current.clone())
            } else {
                entry.previous.clone()
            }
        });
        index.packages.insert(
            manifest.id.clone(),
            IndexEntry {
                kind: file.manifest.kind,
                current: manifest.version.clone(),
                previous,
            },
        );
        self.commit(index)?;
        self.sweep(&manifest.id);
        Ok(manifest)
    }

    /// The local file answering `url` (`https://{domain}/{path}`), from the
    /// current version of the package serving that domain. The query and
    /// fragment are ignored; `/` is the entry page and a folder its
    /// `index.html`. None when no package serves the domain or the package
    /// has no such file (the container then goes to the network).
    pub fn resolve(&self, url: &str) -> Option<PathBuf> {
        let rest = url.strip_prefix("https://")?;
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        let rest = &rest[..end];
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = host.rsplit('@').next()?;
        let host = host.split(':').next()?.to_lowercase();
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let live = state.live.get(&host)?;
        let path = percent_decode(path)?;
        let path = if path.is_empty() {
            live.entry.clone()
        } else if path.ends_with('/') {
            format!("{path}{INDEX_HTML}")
        } else {
            path
        };
        let parts = safe_path(&path)?;
        if let Some(files) = &live.files {
            if !files.contains(&parts.join("/")) {
                return None;
            }
        }
        let local = parts
            .iter()
            .fold(live.root.clone(), |dir, part| dir.join(part));
        local.is_file().then_some(local)
    }

    /// The current version of every installed package, for
    /// [`atoll_protocol::delivery::UpdateCheck::installed`].
    pub fn installed(&self) -> Vec<Installed> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .index
            .packages
            .iter()
            .map(|(id, entry)| Installed {
                kind: entry.kind,
                resource_id: id.clone(),
                version: entry.current.clone(),
            })
            .collect()
    }

    /// The manifest of a package's current version.
    pub fn current(&self, id: &str) -> Option<WebManifest> {
        let version = self.index().packages.get(id)?.current.clone();
        self.load_manifest(id, &version).ok()
    }

    /// Removes a package and all its versions (for a rollback `remove`).
    /// Removing a package that is not installed does nothing.
    pub fn remove(&self, id: &str) -> Result<()> {
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.index();
        if index.packages.remove(id).is_some() {
            self.commit(index)?;
        }
        // Only a name that is a safe folder can be deleted: never walk out
        // of the store on a hostile id.
        if safe_name(id) {
            match std::fs::remove_dir_all(self.root.join(id)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error.into())
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes `version` of `id` current again, if it is still on disk (the
    /// previous version always is); fails with `not_installed` otherwise, in
    /// which case download and [`OfflinePackages::install`] it. The version
    /// rolled back from is kept as the previous one.
    pub fn rollback_to(&self, id: &str, version: &str) -> Result<()> {
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = self.index();
        let missing = || {
            Error::refused(
                Refusal::NotInstalled,
                format!("{id} {version} is not on this device"),
            )
        };
        let Some(entry) = index.packages.get(id).cloned() else {
            return Err(missing());
        };
        if entry.current == version {
            return Ok(());
        }
        if !safe_name(id) || !safe_name(version) {
            return Err(missing());
        }
        let manifest = self.load_manifest(id, version).map_err(|_| missing())?;
        if manifest.id != id || manifest.version != version {
            return Err(missing());
        }
        index.packages.insert(
            id.to_owned(),
            IndexEntry {
                kind: entry.kind,
                current: version.to_owned(),
                previous: Some(entry.current),
            },
        );
        self.commit(index)?;
        self.sweep(id);
        Ok(())
    }

    /// A copy of the index.
    fn index(&self) -> Index {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .index
            .clone()
    }

    /// Writes the index atomically, then serves from it.
    fn commit(&self, index: Index) -> Result<()> {
        let bytes = serde_json::to_vec(&index).map_err(|error| Error::Decode(error.to_string()))?;
        write_atomically(&self.root.join(INDEX_FILE), &bytes)?;
        self.publish(index);
        Ok(())
    }

    /// Replaces the in-memory state with `index`, loading each current
    /// version's manifest. A package whose folder is gone is dropped.
    fn publish(&self, mut index: Index) {
        let mut live = HashMap::new();
        index.packages.retain(|id, entry| {
            let Ok(manifest) = self.load_manifest(id, &entry.current) else {
                return false;
            };
            let domain = manifest.domain.to_lowercase();
            let files = (!manifest.files.is_empty()).then(|| {
                manifest
                    .files
                    .iter()
                    .filter_map(|path| safe_path(path).map(|parts| parts.join("/")))
                    .collect()
            });
            live.insert(
                domain.clone(),
                Live {
                    id: id.clone(),
                    root: self.root.join(id).join(&entry.current),
                    entry: entry_path(&manifest.entry, &domain),
                    files,
                },
            );
            true
        });
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = State { index, live };
    }

    fn load_manifest(&self, id: &str, version: &str) -> Result<WebManifest> {
        if !safe_name(id) || !safe_name(version) {
            return Err(unsafe_path(id));
        }
        let path = self.root.join(id).join(version).join(PACKAGE_MANIFEST_FILE);
        let bytes = read_capped(&path, limits::MAX_MANIFEST_BYTES as u64)?;
        serde_json::from_slice(&bytes).map_err(|error| Error::Decode(error.to_string()))
    }

    /// Deletes the folders of `id` that are neither its current nor its
    /// previous version (older versions, leftovers of interrupted installs).
    /// Best effort: a folder that cannot be deleted now is deleted next time.
    fn sweep(&self, id: &str) {
        let keep: Vec<String> = match self.index().packages.get(id) {
            Some(entry) => std::iter::once(entry.current.clone())
                .chain(entry.previous.clone())
                .collect(),
            None => Vec::new(),
        };
        let Ok(folders) = std::fs::read_dir(self.root.join(id)) else {
            return;
        };
        for folder in folders.flatten() {
            let name = folder.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_dir_all(folder.path());
            }
        }
    }

    /// Checks every entry before anything is written: names, counts, sizes,
    /// methods, duplicates.
    fn plan(&self, bytes: &[u8], entries: &[Entry]) -> Result<Plan> {
        if entries.len() > self.limits.max_entries {
            return Err(Error::refused(
                Refusal::TooLarge,
                format!(
                    "{} entries, at most {} allowed",
                    entries.len(),
                    self.limits.max_entries
                ),
            ));
        }
        let mut total = 0u64;
        let mut plan = Plan::default();
        for entry in entries {
            let name = std::str::from_utf8(&entry.name)
                .map_err(|_| Error::refused(Refusal::UnsafePath, "entry name is not UTF-8"))?;
            let (is_dir, path) = match name.strip_suffix('/') {
                Some(folder) => (true, folder),
                None => (false, name),
            };
            let parts = safe_path(path).ok_or_else(|| unsafe_path(name))?;
            // Names that differ only in case are one file on a
            // case-insensitive file system (iOS, macOS, Windows): one would
            // silently replace the other.
            let key = parts.join("/").to_lowercase();
            if is_dir {
                if entry.uncompressed_size != 0 {
                    return Err(Error::refused(
                        Refusal::PackageInvalid,
                        format!("folder entry {name} has contents"),
                    ));
                }
                plan.folders.push(parts);
                continue;
            }
            if !plan.files.insert(key) {
                return Err(Error::refused(
                    Refusal::PackageInvalid,
                    format!("{name} appears twice"),
                ));
            }
            if entry.method != STORED && entry.method != DEFLATED {
                return Err(Error::refused(
                    Refusal::PackageInvalid,
                    format!("{name} uses compression method {}", entry.method),
                ));
            }
            if entry.method == STORED && entry.compressed_size != entry.uncompressed_size {
                return Err(Error::refused(
                    Refusal::PackageInvalid,
                    format!("stored entry {name} has two sizes"),
                ));
            }
            total = total.saturating_add(entry.uncompressed_size);
            if total > self.limits.max_total_bytes {
                return Err(Error::refused(
                    Refusal::TooLarge,
                    format!(
                        "the package unpacks to more than {} bytes",
                        self.limits.max_total_bytes
                    ),
                ));
            }
            if bytes.get(entry.data_range()).is_none() {
                return Err(Error::refused(
                    Refusal::PackageInvalid,
                    format!("{name} lies outside the zip"),
                ));
            }
            plan.unpack.push((parts, entry.clone()));
        }
        Ok(plan)
    }
}

/// What a package unpacks to, checked.
#[derive(Debug, Default)]
struct Plan {
    folders: Vec<Vec<String>>,
    /// Files to write: their path parts and zip entry.
    unpack: Vec<(Vec<String>, Entry)>,
    /// Lowercase paths of the files.
    files: HashSet<String>,
}

/// Writes the planned files under `dest`, each one checked against the size
/// and CRC-32 its entry declares.
fn unpack(bytes: &[u8], plan: &Plan, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    for parts in &plan.folders {
        std::fs::create_dir_all(join(dest, parts))?;
    }
    for (parts, entry) in &plan.unpack {
        let path = join(dest, parts);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // create_new: never write through something already there.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut out = Checked {
            inner: std::io::BufWriter::new(file),
            crc: flate2::Crc::new(),
            written: 0,
        };
        inflate(bytes, entry, &mut out)?;
        let name = parts.join("/");
        if out.written != entry.uncompressed_size || out.crc.sum() != entry.crc32 {
            return Err(Error::refused(
                Refusal::PackageInvalid,
                format!("{name} does not match its declared size and CRC"),
            ));
        }
        let file = out
            .inner
            .into_inner()
            .map_err(|error| Error::Io(error.into_error()))?;
        // Each file reaches the disk before the index can point at it.
        file.sync_data()?;
    }
    Ok(())
}

/// Copies an entry's content into `out`, at most one byte past its declared
/// size (so an entry lying about its size is caught, not followed).
fn inflate(bytes: &[u8], entry: &Entry, out: &mut impl Write) -> Result<()> {
    let data = bytes
        .get(entry.data_range())
        .ok_or_else(|| Error::refused(Refusal::PackageInvalid, "entry outside the zip"))?;
    let limit = entry.uncompressed_size.saturating_add(1);
    let copied = if entry.method == DEFLATED {
        std::io::copy(
            &mut flate2::read::DeflateDecoder::new(data).take(limit),
            out,
        )
    } else {
        std::io::copy(&mut data.take(limit), out)
    };
    copied.map_err(|error| match error.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => Error::refused(
            Refusal::PackageInvalid,
            format!("bad deflate data: {error}"),
        ),
        _ => Error::Io(error),
    })?;
    Ok(())
}

/// A writer that counts and checksums what passes through.
struct Checked<W> {
    inner: W,
    crc: flate2::Crc,
    written: u64,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.crc.update(&buf[..written]);
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads and parses the package's `manifest.json`.
fn read_manifest(bytes: &[u8], entries: &[Entry]) -> Result<WebManifest> {
    let entry = entries
        .iter()
        .find(|entry| entry.name == PACKAGE_MANIFEST_FILE.as_bytes())
        .ok_or_else(|| {
            Error::refused(
                Refusal::PackageInvalid,
                format!("the zip has no {PACKAGE_MANIFEST_FILE}"),
            )
        })?;
    if entry.uncompressed_size > limits::MAX_MANIFEST_BYTES as u64 {
        return Err(Error::refused(
            Refusal::TooLarge,
            format!("{PACKAGE_MANIFEST_FILE} is too large"),
        ));
    }
    let mut text = Vec::new();
    inflate(bytes, entry, &mut text)?;
    serde_json::from_slice(&text).map_err(|error| {
        Error::refused(
            Refusal::PackageInvalid,
            format!("{PACKAGE_MANIFEST_FILE} is unreadable: {error}"),
        )
    })
}

/// The package's manifest must say what the signed manifest says.
fn check_manifest(manifest: &WebManifest, file: &VerifiedFile) -> Result<()> {
    let mismatch = |what: &str| {
        Error::refused(
            Refusal::ManifestMismatch,
            format!("{PACKAGE_MANIFEST_FILE}'s {what} differs from the signed manifest's"),
        )
    };
    if manifest.id != file.manifest.resource_id {
        return Err(mismatch("id"));
    }
    if manifest.version != file.manifest.version {
        return Err(mismatch("version"));
    }
    if let Some(signed) = &file.manifest.web {
        if signed != manifest {
            return Err(mismatch("content"));
        }
    }
    // Both name folders on disk.
    if !safe_name(&manifest.id) || !safe_name(&manifest.version) {
        return Err(unsafe_path(&format!(
            "{}/{}",
            manifest.id, manifest.version
        )));
    }
    let domain_ok = !manifest.domain.is_empty()
        && manifest.domain.len() <= 253
        && manifest
            .domain
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
    if !domain_ok {
        return Err(Error::refused(
            Refusal::PackageInvalid,
            format!("domain {:?} is not a host name", manifest.domain),
        ));
    }
    Ok(())
}

/// The entry page's path under the domain: from `https://{domain}/path`, or a
/// relative path; `index.html` when the entry names nothing usable.
fn entry_path(entry: &str, domain: &str) -> String {
    let path = match entry.strip_prefix("https://") {
        Some(rest) => match rest.split_once('/') {
            Some((host, path)) if host.eq_ignore_ascii_case(domain) => path,
            _ => "",
        },
        None => entry.trim_start_matches('/'),
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = &path[..end];
    if path.is_empty() {
        INDEX_HTML.to_owned()
    } else if path.ends_with('/') {
        format!("{path}{INDEX_HTML}")
    } else {
        path.to_owned()
    }
}

/// The parts of a relative path that stays inside its folder, or None: no
/// absolute paths, no `..` or `.`, no empty parts, no backslashes, colons
/// (drive letters, alternate streams) or control characters.
fn safe_path(path: &str) -> Option<Vec<String>> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .chars()
            .any(|c| c == '\\' || c == ':' || c.is_control())
    {
        return None;
    }
    path.split('/')
        .map(|part| (!part.is_empty() && part != "." && part != "..").then(|| part.to_owned()))
        .collect()
}

/// An id or version usable as one folder name: 1 to 64 bytes of letters,
/// digits, `.`, `_`, `-`, `+`, starting with a letter or digit.
fn safe_name(name: &str) -> bool {
    name.len() <= limits::MAX_VERSION_BYTES.max(limits::MAX_RESOURCE_ID_BYTES)
        && name
            .bytes()
            .next()
            .is_some_and(|first| first.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'+'))
}

fn unsafe_path(name: &str) -> Error {
    Error::refused(
        Refusal::UnsafePath,
        format!("{name:?} would land outside the package's folder"),
    )
}

fn join(dir: &Path, parts: &[String]) -> PathBuf {
    parts
        .iter()
        .fold(dir.to_owned(), |path, part| path.join(part))
}

/// Reads a whole file, refusing one larger than `max` bytes.
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::refused(
            Refusal::TooLarge,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// Decodes `%XX` escapes; None if one is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Makes a rename in `dir` durable (a no-op where folders cannot be synced).
fn sync_dir(dir: &Path) {
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
}

#[cfg(test)]
#[path = "offline_tests.rs"]
mod tests;
