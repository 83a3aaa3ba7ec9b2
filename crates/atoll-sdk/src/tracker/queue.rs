//! The on-disk event queue: one append-only JSON-lines log.
//!
//! Every line is one record, tagged by `t`:
//!
//! ```text
//! {"t":"event","seq":1,"event":{"uuid":"…","event_id":"buy","time":1700000000000,…}}
//! {"t":"event","seq":2,"event":{…}}
//! {"t":"ack","through":1}
//! ```
//!
//! `seq` grows by one per event and is never reused; `{"t":"ack","through":N}`
//! removes every event with `seq <= N`. Sending, dropping the oldest when the
//! queue is full and clearing are all "remove a prefix", so one ack record
//! expresses each of them, and an ack is a single append: there is no second file
//! whose state could disagree with the log after a crash.
//!
//! **Crash tolerance.** A record is complete when its `\n` is on disk; a torn
//! last line (the process died mid-write) is cut off on open. Lines that do not
//! parse (a disk that kept zeros, a format from a newer SDK) are skipped and
//! counted, never fatal. A lost ack only means a batch is sent again, which the
//! server absorbs: each event keeps the uuid it got when tracked.
//!
//! **Compaction.** Acked records stay in the file until the dead prefix is both
//! larger than [`COMPACT_MIN_BYTES`] and larger than the live part; then the live
//! part is copied to a fresh file that starts with an ack record carrying the seq
//! floor, and renamed over the log. A crash before the rename leaves the old log
//! (still correct); after it, the new one. Either way `seq` keeps increasing.
//!
//! Only an index (seq, offset, length) of unsent events is kept in memory; a
//! batch is read back from the file as one contiguous range.

use atoll_protocol::events::TrackedEvent;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Dead bytes tolerated before compacting, however small the live part.
pub(crate) const COMPACT_MIN_BYTES: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Record {
    Event { seq: u64, event: TrackedEvent },
    Ack { through: u64 },
}

/// Where an unsent event's line sits in the file.
#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    offset: u64,
    /// Line length, `\n` included.
    len: u64,
}

/// What opening the queue found besides the events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenReport {
    /// Lines that did not parse (skipped), a torn tail included.
    pub corrupt: usize,
    /// Oldest events dropped because the file held more than the capacity.
    pub dropped_full: usize,
}

/// A batch read from the queue, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The events, in queue order.
    pub events: Vec<TrackedEvent>,
    /// Acking through this seq removes exactly the events read (and any
    /// unreadable line among them).
    pub through: u64,
    /// Lines in the range that no longer parse.
    pub unreadable: usize,
}

/// The queue. Not thread-safe by itself: the tracker keeps it behind a mutex.
#[derive(Debug)]
pub(crate) struct EventQueue {
    path: PathBuf,
    file: File,
    entries: VecDeque<Entry>,
    next_seq: u64,
    /// Every seq up to this one is acknowledged.
    acked: u64,
    /// End of the last complete record: where the next one goes.
    end: u64,
    capacity: usize,
    fsync: bool,
    /// A failed write may have left a partial line that could not be cut off:
    /// the next record starts with a `\n` so it does not glue onto it.
    dirty_tail: bool,
    compact_min_bytes: u64,
}

fn open_log(path: &Path) -> io::Result<File> {
    // Append mode: writes always land at the end, whatever the read position.
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

fn encode(record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, record).map_err(io::Error::other)?;
    out.push(b'\n');
    Ok(())
}

/// Writes `contents` to `temporary` and renames it over `path`. The handle is
/// opened before the rename so that it follows the file: there is never a
/// moment where the queue holds a handle to an unlinked log.
fn write_replacement(
    temporary: &Path,
    path: &Path,
    contents: &[u8],
    fsync: bool,
) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(temporary)?;
    file.write_all(contents)?;
    if fsync {
        file.sync_all()?;
    }
    std::fs::rename(temporary, path)?;
    Ok(file)
}

/// Best-effort fsync of a folder, so a rename in it is durable. Not every
/// platform can open a folder as a file; losing this only risks the rename.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

impl EventQueue {
    /// Opens (or creates) the log at `path` and replays it.
    pub fn open(path: &Path, capacity: usize, fsync: bool) -> io::Result<(EventQueue, OpenReport)> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = open_log(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut report = OpenReport::default();
        // Everything after the last newline is a record whose write was cut short.
        let complete = bytes
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |last| last + 1);
        let mut entries = VecDeque::new();
        let mut acked = 0u64;
        let mut max_seq = 0u64;
        let mut offset = 0usize;
        for line in bytes[..complete].split_inclusive(|&byte| byte == b'\n') {
            let start = offset;
            offset += line.len();
            let body = &line[..line.len() - 1];
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(body) {
                // Seqs only grow; one that does not is a damaged or replayed line.
                Ok(Record::Event { seq, .. }) if seq > max_seq => {
                    max_seq = seq;
                    entries.push_back(Entry {
                        seq,
                        offset: start as u64,
                        len: line.len() as u64,
                    });
                }
                Ok(Record::Ack { through }) => acked = acked.max(through),
                Ok(Record::Event { .. }) | Err(_) => report.corrupt += 1,
            }
        }
        entries.retain(|entry| entry.seq > acked);
        let mut dirty_tail = false;
        if complete < bytes.len() {
            report.corrupt += 1;
            if file.set_len(complete as u64).is_err() {
                dirty_tail = true;
            }
        }
        let mut queue = EventQueue {
            path: path.to_owned(),
            file,
            entries,
            next_seq: max_seq.max(acked) + 1,
            acked,
            end: complete as u64,
            capacity: capacity.max(1),
            fsync,
            dirty_tail,
            compact_min_bytes: COMPACT_MIN_BYTES,
        };
        if queue.entries.len() > queue.capacity {
            let excess = queue.entries.len() - queue.capacity;
            let through = queue.entries[excess - 1].seq;
            report.dropped_full = queue.ack_through(through)?;
        } else {
            queue.maybe_compact()?;
        }
        Ok((queue, report))
    }

    /// Unsent events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No unsent events.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub fn set_compact_min_bytes(&mut self, bytes: u64) {
        self.compact_min_bytes = bytes;
    }

    #[cfg(test)]
    pub fn file_len(&self) -> u64 {
        self.end
    }

    /// Appends `event` (durably when fsync is on). When the queue is full the
    /// oldest events make room; returns how many were dropped.
    pub fn append(&mut self, event: &TrackedEvent) -> io::Result<usize> {
        let mut buffer = Vec::with_capacity(256);
        if self.dirty_tail {
            buffer.push(b'\n');
        }
        let mut dropped = 0;
        let mut through = self.acked;
        if self.entries.len() >= self.capacity {
            dropped = self.entries.len() + 1 - self.capacity;
            through = self.entries[dropped - 1].seq;
            encode(&Record::Ack { through }, &mut buffer)?;
        }
        let seq = self.next_seq;
        // Burn the seq even if the write fails: a record that reached the file
        // despite the error must not share its seq with the next one.
        self.next_seq += 1;
        let offset = self.end + buffer.len() as u64;
        let record = Record::Event {
            seq,
            event: event.clone(),
        };
        encode(&record, &mut buffer)?;
        let len = self.end + buffer.len() as u64 - offset;
        self.write_durably(&buffer)?;
        self.entries.drain(..dropped);
        self.acked = through;
        self.entries.push_back(Entry { seq, offset, len });
        Ok(dropped)
    }

    /// Writes whole records at the end, or nothing: on failure the file is cut
    /// back so a caller told "failed" never finds the record sent later.
    fn write_durably(&mut self, buffer: &[u8]) -> io::Result<()> {
        let outcome = self.file.write_all(buffer).and_then(|()| {
            if self.fsync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match outcome {
            Ok(()) => {
                self.end += buffer.len() as u64;
                self.dirty_tail = false;
                Ok(())
            }
            Err(error) => {
                if self.file.set_len(self.end).is_err() {
                    self.dirty_tail = true;
                }
                Err(error)
            }
        }
    }

    /// Reads up to `max_events` of the oldest events, stopping before the lines
    /// would exceed `max_bytes` (at least one event is always read).
    pub fn peek(&mut self, max_events: usize, max_bytes: u64) -> io::Result<Batch> {
        let mut count = 0usize;
        let mut bytes = 0u64;
        for entry in self.entries.iter().take(max_events.max(1)) {
            if count > 0 && bytes + entry.len > max_bytes {
                break;
            }
            bytes += entry.len;
            count += 1;
        }
        let (Some(first), Some(last)) = (
            self.entries.front().copied(),
            self.entries.get(count.saturating_sub(1)).copied(),
        ) else {
            return Ok(Batch::default());
        };
        // The events are contiguous in the file (ack lines may sit between them).
        let mut range = vec![0u8; (last.offset + last.len - first.offset) as usize];
        self.file.seek(SeekFrom::Start(first.offset))?;
        self.file.read_exact(&mut range)?;
        let mut batch = Batch {
            through: last.seq,
            ..Batch::default()
        };
        for line in range.split(|&byte| byte == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(Record::Event { seq, event }) if seq > self.acked && seq <= last.seq => {
                    batch.events.push(event)
                }
                Ok(_) => {}
                Err(_) => batch.unreadable += 1,
            }
        }
        Ok(batch)
    }

    /// Removes every event with `seq <= through`; returns how many were removed.
    /// Acking what is already acked is a no-op, so a flush racing `clear` is harmless.
    pub fn ack_through(&mut self, through: u64) -> io::Result<usize> {
        if through <= self.acked {
            return Ok(0);
        }
        let removed = self
            .entries
            .iter()
            .take_while(|entry| entry.seq <= through)
            .count();
        let mut buffer = Vec::with_capacity(32);
        if self.dirty_tail {
            buffer.push(b'\n');
        }
        encode(&Record::Ack { through }, &mut buffer)?;
        self.write_durably(&buffer)?;
        self.entries.drain(..removed);
        self.acked = through;
        self.maybe_compact()?;
        Ok(removed)
    }

    /// Removes every unsent event; returns how many.
    pub fn clear(&mut self) -> io::Result<usize> {
        let last = self.next_seq - 1;
        self.ack_through(last)
    }

    fn maybe_compact(&mut self) -> io::Result<()> {
        let live_start = self.entries.front().map_or(self.end, |entry| entry.offset);
        let live = self.end - live_start;
        if live_start >= self.compact_min_bytes && live_start >= live {
            self.compact(live_start)?;
        }
        Ok(())
    }

    /// Rewrites the log with only the live records (see the module doc).
    fn compact(&mut self, live_start: u64) -> io::Result<()> {
        let mut live = vec![0u8; (self.end - live_start) as usize];
        self.file.seek(SeekFrom::Start(live_start))?;
        self.file.read_exact(&mut live)?;
        let mut fresh = Vec::with_capacity(live.len() + 32);
        // Keeps the seq floor: without it an emptied log would restart at 1 and
        // an older ack in a stale copy could swallow new events.
        encode(
            &Record::Ack {
                through: self.acked,
            },
            &mut fresh,
        )?;
        let header = fresh.len() as u64;
        fresh.extend_from_slice(&live);
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".compact");
        let temporary = PathBuf::from(temporary);
        let _ = std::fs::remove_file(&temporary);
        let written = write_replacement(&temporary, &self.path, &fresh, self.fsync);
        let file = match written {
            Ok(file) => file,
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(error);
            }
        };
        if self.fsync {
            if let Some(parent) = self.path.parent() {
                sync_dir(parent);
            }
        }
        self.file = file;
        for entry in &mut self.entries {
            entry.offset = entry.offset - live_start + header;
        }
        self.end = header + live.len() as u64;
        self.dirty_tail = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, time: i64) -> TrackedEvent {
        TrackedEvent {
            uuid: uuid::Uuid::new_v4().to_string(),
            event_id: name.into(),
            time,
            ..TrackedEvent::default()
        }
    }

    fn names(batch: &Batch) -> Vec<String> {
        batch.events.iter().map(|e| e.event_id.clone()).collect()
    }

    fn open(path: &Path, capacity: usize) -> (EventQueue, OpenReport) {
        EventQueue::open(path, capacity, true).unwrap()
    }

    #[test]
    fn appends_and_reads_batches_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (mut queue, _) = open(&dir.path().join("q"), 100);
        for index in 0..7 {
            queue.append(&event(&format!("e{index}"), index)).unwrap();
        }
        assert_eq!(queue.len(), 7);
        let batch = queue.peek(3, u64::MAX).unwrap();
        assert_eq!(names(&batch), ["e0", "e1", "e2"]);
        // Peeking does not consume.
        assert_eq!(names(&queue.peek(3, u64::MAX).unwrap()), ["e0", "e1", "e2"]);
        assert_eq!(queue.ack_through(batch.through).unwrap(), 3);
        let rest = queue.peek(10, u64::MAX).unwrap();
        assert_eq!(names(&rest), ["e3", "e4", "e5", "e6"]);
        assert_eq!(queue.ack_through(rest.through).unwrap(), 4);
        assert_eq!(queue.len(), 0);
        assert!(queue.peek(10, u64::MAX).unwrap().events.is_empty());
    }

    #[test]
    fn byte_budget_limits_a_batch_but_never_below_one_event() {
        let dir = tempfile::tempdir().unwrap();
        let (mut queue, _) = open(&dir.path().join("q"), 100);
        for index in 0..5 {
            queue.append(&event(&format!("e{index}"), index)).unwrap();
        }
        assert_eq!(queue.peek(10, 1).unwrap().events.len(), 1);
        let one_line = queue.entries[0].len;
        assert_eq!(queue.peek(10, one_line * 2 + 1).unwrap().events.len(), 2);
    }

    #[test]
    fn unsent_events_survive_a_restart_and_acks_stick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let first_uuid;
        {
            let (mut queue, _) = open(&path, 100);
            for index in 0..5 {
                queue.append(&event(&format!("e{index}"), index)).unwrap();
            }
            let batch = queue.peek(2, u64::MAX).unwrap();
            queue.ack_through(batch.through).unwrap();
            first_uuid = queue.peek(1, u64::MAX).unwrap().events[0].uuid.clone();
        }
        let (mut queue, report) = open(&path, 100);
        assert_eq!(report, OpenReport::default());
        assert_eq!(queue.len(), 3);
        let batch = queue.peek(10, u64::MAX).unwrap();
        assert_eq!(names(&batch), ["e2", "e3", "e4"]);
        // The uuid is the one given at track time: a resend is deduplicated.
        assert_eq!(batch.events[0].uuid, first_uuid);
        // Seqs continue after the restart, so old acks cannot hide new events.
        queue.append(&event("e5", 5)).unwrap();
        drop(queue);
        let (mut queue, _) = open(&path, 100);
        assert_eq!(
            names(&queue.peek(10, u64::MAX).unwrap()),
            ["e2", "e3", "e4", "e5"]
        );
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_queue_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        {
            let (mut queue, _) = open(&path, 100);
            queue.append(&event("a", 1)).unwrap();
            queue.append(&event("b", 2)).unwrap();
        }
        // A crash in the middle of the third write.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"t":"event","seq":3,"event":{"uuid":"#)
            .unwrap();
        drop(file);
        let (mut queue, report) = open(&path, 100);
        assert_eq!(report.corrupt, 1);
        assert_eq!(names(&queue.peek(10, u64::MAX).unwrap()), ["a", "b"]);
        queue.append(&event("c", 3)).unwrap();
        drop(queue);
        let (mut queue, report) = open(&path, 100);
        assert_eq!(report.corrupt, 0, "the torn bytes were removed");
        assert_eq!(names(&queue.peek(10, u64::MAX).unwrap()), ["a", "b", "c"]);
    }

    #[test]
    fn damaged_lines_in_the_middle_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        {
            let (mut queue, _) = open(&path, 100);
            queue.append(&event("a", 1)).unwrap();
        }
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"\0\0\0\0garbage\n\n").unwrap();
        drop(file);
        {
            let (mut queue, report) = open(&path, 100);
            assert_eq!(report.corrupt, 1);
            queue.append(&event("b", 2)).unwrap();
            let batch = queue.peek(10, u64::MAX).unwrap();
            assert_eq!(names(&batch), ["a", "b"]);
            assert_eq!(batch.unreadable, 1);
        }
        // An empty file and a file of garbage open as an empty queue.
        std::fs::write(&path, b"not json at all").unwrap();
        let (queue, _) = open(&path, 100);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        {
            let (mut queue, _) = open(&path, 3);
            for index in 0..3 {
                assert_eq!(
                    queue.append(&event(&format!("e{index}"), index)).unwrap(),
                    0
                );
            }
            assert_eq!(queue.append(&event("e3", 3)).unwrap(), 1);
            assert_eq!(queue.append(&event("e4", 4)).unwrap(), 1);
            assert_eq!(queue.len(), 3);
            assert_eq!(
                names(&queue.peek(10, u64::MAX).unwrap()),
                ["e2", "e3", "e4"]
            );
        }
        // The drops are durable, and a smaller capacity applies on open.
        let (mut queue, report) = open(&path, 2);
        assert_eq!(report.dropped_full, 1);
        assert_eq!(names(&queue.peek(10, u64::MAX).unwrap()), ["e3", "e4"]);
    }

    #[test]
    fn clear_removes_everything_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        {
            let (mut queue, _) = open(&path, 100);
            for index in 0..4 {
                queue.append(&event("x", index)).unwrap();
            }
            assert_eq!(queue.clear().unwrap(), 4);
            assert_eq!(queue.clear().unwrap(), 0);
        }
        let (mut queue, _) = open(&path, 100);
        assert_eq!(queue.len(), 0);
        queue.append(&event("after", 9)).unwrap();
        assert_eq!(names(&queue.peek(10, u64::MAX).unwrap()), ["after"]);
    }

    #[test]
    fn compaction_shrinks_the_file_and_keeps_live_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        {
            let (mut queue, _) = open(&path, 1000);
            queue.set_compact_min_bytes(1024);
            for index in 0..100 {
                queue.append(&event(&format!("e{index}"), index)).unwrap();
            }
            let before = queue.file_len();
            let batch = queue.peek(90, u64::MAX).unwrap();
            queue.ack_through(batch.through).unwrap();
            assert!(
                queue.file_len() < before / 5,
                "{} vs {before}",
                queue.file_len()
            );
            assert_eq!(std::fs::metadata(&path).unwrap().len(), queue.file_len());
            // Reads and appends keep working on the new file.
            let batch = queue.peek(3, u64::MAX).unwrap();
            assert_eq!(names(&batch), ["e90", "e91", "e92"]);
            queue.ack_through(batch.through).unwrap();
            queue.append(&event("new", 100)).unwrap();
            // Emptying it compacts down to the seq floor.
            queue.clear().unwrap();
            queue.append(&event("last", 101)).unwrap();
        }
        let (mut queue, _) = open(&path, 1000);
        assert_eq!(names(&queue.peek(10, u64::MAX).unwrap()), ["last"]);
        assert!(!dir.path().join("q.compact").exists());
        // The seq floor survived: the next seq is past every seq ever used.
        assert!(queue.next_seq > 102);
    }
}
