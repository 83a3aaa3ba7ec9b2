//! The write-ahead log: numbered files of checksummed frames in a local folder.
//!
//! A frame is `[length u32 LE][crc32 u32 LE][payload]`. The writer appends a whole
//! group of frames with one `write` and one `fdatasync`, then acknowledges every
//! request of the group: durability costs one sync per group, not per request.
//! A crash can leave a torn frame at the end of the newest file; replay stops at
//! the first frame whose length or checksum does not hold, and the file is cut
//! there (nothing after it was ever acknowledged).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 8;
/// A frame larger than this is corruption, not data (batches are ≤ 1 MiB of JSON).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The open log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    len: u64,
}

/// A log file left by an earlier run, to replay.
#[derive(Debug, Clone)]
pub struct WalFile {
    /// Its sequence number (files replay in this order).
    pub seq: u64,
    /// Where it is.
    pub path: PathBuf,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The log files in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<WalFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
        else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            files.push(WalFile { seq, path });
        }
    }
    files.sort_by_key(|f| f.seq);
    Ok(files)
}

/// Reads the valid frames of one file. A torn or corrupt tail ends the file: the
/// file is truncated to its last good frame so later appends (none; files are
/// never reopened for writing) and later replays agree.
pub fn read_frames(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut frames = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        if len > MAX_FRAME || bytes.len() - at - HEADER < len {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        frames.push(payload.to_vec());
        at += HEADER + len;
    }
    if at < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            kept = at,
            dropped = bytes.len() - at,
            "write-ahead log ends in a torn frame; cutting it off"
        );
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(at as u64)?;
        file.sync_all()?;
    }
    Ok(frames)
}

/// Appends one frame to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

impl Wal {
    /// Opens the log in `dir`, starting a new file after `after` (the highest
    /// sequence number seen so far).
    pub fn create(dir: &Path, after: u64) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let seq = after + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(file_name(seq)))?;
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_owned(),
            file,
            seq,
            len: 0,
        })
    }

    /// The number of the file being written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes a group of frames and syncs them to disk. On failure the file is cut
    /// back to where the group began, so a half-written group can never hide the
    /// frames written after it.
    pub fn write_durably(&mut self, frames: &[u8]) -> io::Result<()> {
        let outcome = self
            .file
            .write_all(frames)
            .and_then(|()| self.file.sync_data());
        match outcome {
            Ok(()) => {
                self.len += frames.len() as u64;
                Ok(())
            }
            Err(error) => {
                self.file.set_len(self.len)?;
                Err(error)
            }
        }
    }

    /// Closes the current file and starts the next; returns the closed file's number.
    pub fn rotate(&mut self) -> io::Result<u64> {
        let next = Wal::create(&self.dir, self.seq)?;
        let closed = self.seq;
        *self = next;
        Ok(closed)
    }

    /// Deletes the files up to and including `seq` (their content is in segments).
    pub fn remove_through(dir: &Path, seq: u64) -> io::Result<()> {
        for file in list(dir)? {
            if file.seq <= seq {
                fs::remove_file(&file.path)?;
            }
        }
        sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 0).unwrap();
        let mut group = Vec::new();
        encode_frame(b"one", &mut group);
        encode_frame(b"two", &mut group);
        wal.write_durably(&group).unwrap();
        let path = dir.path().join(file_name(1));
        // A torn third frame: header promises more bytes than follow.
        let mut torn = Vec::new();
        encode_frame(b"three-is-long", &mut torn);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&torn[..torn.len() - 3])
            .unwrap();
        let frames = read_frames(&path).unwrap();
        assert_eq!(frames, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(fs::metadata(&path).unwrap().len(), group.len() as u64);
    }

    #[test]
    fn a_flipped_byte_ends_replay_at_that_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 4).unwrap();
        let mut group = Vec::new();
        encode_frame(b"good", &mut group);
        encode_frame(b"flipped", &mut group);
        let last = group.len() - 1;
        group[last] ^= 1;
        wal.write_durably(&group).unwrap();
        let files = list(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].seq, 5);
        assert_eq!(read_frames(&files[0].path).unwrap(), vec![b"good".to_vec()]);
    }

    #[test]
    fn rotation_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 0).unwrap();
        assert_eq!(wal.rotate().unwrap(), 1);
        assert_eq!(wal.rotate().unwrap(), 2);
        Wal::remove_through(dir.path(), 2).unwrap();
        let left: Vec<u64> = list(dir.path()).unwrap().iter().map(|f| f.seq).collect();
        assert_eq!(left, vec![3]);
    }
}
