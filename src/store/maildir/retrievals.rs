//! When each message was retrieved, for EXPIRE (RFC 2449 §6.7): `pop3d.retrieved` in the
//! Maildir root, in the size cache's layout ([`Layout`]):
//!
//! ```text
//! pop3d retrieved 1
//! 1700090000 1700004037.M000001P4.host,S=4089
//! ```
//!
//! one line a message retrieved in a session that ended with `QUIT` and still kept: the Unix
//! time of the first such session's end, then the base name, sorted by base name.
//!
//! Why a file of pop3d's own rather than the message files' times: a message file's mtime is
//! its IMAP INTERNALDATE for Dovecot and Courier, which must never change; its ctime changes
//! whenever any program renames it (every flag an IMAP client sets) and cannot be set back, so
//! it could neither be trusted nor tested; atime is off on many mounts. Moving retrieved
//! messages to `cur/` with the `S` flag would change what other readers of the Maildir see,
//! which pop3d never does. A file of its own changes nothing for other programs, is written
//! only by pop3d under the mailbox lock (whole, then renamed), and survives any rename, since
//! base names do not change.
//!
//! Only messages named in it can expire, so anything wrong with it errs on the side of keeping
//! mail: a line that does not parse ends its reading (later entries are kept longer), a lost
//! file means nothing expires until the messages are retrieved again, and a time in the future
//! is not yet due. Entries for messages no longer in the Maildir are dropped whenever it is
//! written again.

use super::scan::Stored;
use super::size_cache::{write_layout, Layout, Reader};
use super::MaildirMailbox;
use crate::store::dir::Dir;
use crate::store::{Mailbox, StoreError};
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The record's layout.
pub(super) const RECORD: Layout = Layout {
    file: "pop3d.retrieved",
    temporary: "pop3d.retrieved.new",
    header: b"pop3d retrieved 1\n",
};

/// When each of `files` (sorted by base name, as the scan leaves them) was recorded retrieved,
/// in Unix seconds; and whether the record holds entries it should not (gone messages, damage).
pub(super) fn times(root: &Dir, shown: &Path, files: &[Stored]) -> (Vec<Option<u64>>, bool) {
    let mut reader = Reader::open_layout(root, shown, &RECORD);
    let times = files
        .iter()
        .map(|stored| match stored.gone {
            true => None,
            false => reader.value_of(stored.basename()),
        })
        .collect();
    (times, reader.needs_rewrite())
}

/// Replaces the record with the `times` of the `files` still there; removes it when none is
/// left.
pub(super) fn write(root: &Dir, files: &[Stored], times: &[Option<u64>]) -> io::Result<()> {
    let mut entries = files
        .iter()
        .zip(times)
        .filter_map(|(stored, time)| Some((stored.basename(), (*time)?)).filter(|_| !stored.gone))
        .peekable();
    if entries.peek().is_none() {
        return match root.unlink(OsStr::new(RECORD.file)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    write_layout(root, &RECORD, entries)
}

/// Now, in Unix seconds (0 for a clock before 1970, when nothing is due).
pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl MaildirMailbox {
    /// EXPIRE at login ([`Mailbox::expire`]): removes the messages recorded retrieved at
    /// least `age` ago, then drops whatever is gone from the snapshot and from the record.
    pub(super) fn expire_retrieved(
        &mut self,
        age: std::time::Duration,
    ) -> Result<usize, StoreError> {
        let (mut times, stale) = times(self.locked.dir(), &self.root, &self.files);
        let now = now();
        let due: Vec<usize> = (0..times.len())
            .filter(|&i| times[i].is_some_and(|t| t.saturating_add(age.as_secs()) <= now))
            .collect();
        // Through `delete`, as UPDATE removes: maildirsize is updated, the unlinks synced.
        let deleted = match due.is_empty() {
            true => Ok(()),
            false => self.delete(&due),
        };
        let before = self.files.len();
        let gone: Vec<bool> = self.files.iter().map(|stored| stored.gone).collect();
        let (mut t, mut m) = (gone.iter(), gone.iter());
        times.retain(|_| t.next() == Some(&false));
        self.messages.retain(|_| m.next() == Some(&false));
        self.files.retain(|stored| !stored.gone);
        let removed = before - self.files.len();
        if removed > 0 || stale {
            if let Err(e) = write(self.locked.dir(), &self.files, &times) {
                log::warn!("{}: retrieval record not written: {e}", self.root.display());
            }
        }
        if removed > 0 {
            self.write_size_cache();
        }
        deleted.map(|()| removed)
    }

    /// Records the retrieval of `indices` now ([`Mailbox::retrieved`]), keeping earlier
    /// times.
    pub(super) fn record_retrieved(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        for &index in indices {
            self.check_index(index)?;
        }
        let (mut times, _) = times(self.locked.dir(), &self.root, &self.files);
        let now = now();
        for &index in indices {
            times[index].get_or_insert(now);
        }
        write(self.locked.dir(), &self.files, &times)
            .map_err(|e| super::temporary(&self.root, "record retrievals", e))
    }
}
