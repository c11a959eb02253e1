//! The Maildir backend: one file per message in `new/` and `cur/`, as Dovecot, Postfix and
//! qmail write them.
//!
//! A message is known by its *basename*, the file name up to the first `:`. The rest (the info
//! part, `:2,FLAGS`) changes whenever an IMAP server or a mail reader sets a flag or moves the
//! file from `new/` to `cur/`, so paths are only hints: when one is gone, the message is looked
//! up again by basename. Stored message files are never modified, only read and unlinked.
//!
//! Everything below the Maildir's root is reached through directory descriptors, never by
//! path, and no symlink there is followed (see `open.rs`): whatever its owner plants in it, a
//! session reads and deletes only the files of its own mailbox.
//!
//! # The file-name contract
//!
//! What pop3d expects of a Maildir, and what its own delivery ([`Deliver`](crate::store::Deliver)) writes:
//!
//! - **Where it looks.** The Maildir is the expanded template (`%h/Maildir`); `cur/`, `new/`
//!   and `tmp/` are created if missing and must be directories of the account's uid. Messages
//!   are the regular files of `new/` and `cur/` whose names do not start with `.`; symlinks
//!   and anything else are skipped. Folders (`.Name/`) and `tmp/` are never served. pop3d
//!   keeps its own files in the root: `pop3d.lock`, `pop3d.sizes`, `pop3d.quota.lock`, and
//!   the Maildir++ `maildirsize` it shares with Courier, maildrop and Dovecot.
//! - **Names.** A name is `BASENAME` or `BASENAME:INFO`; only the basename (up to the first
//!   `:`) identifies the message, since the info part (`:2,FLAGS`) changes with flags and with
//!   the move from `new/` to `cur/`. The basename is never changed by pop3d, which only reads
//!   and unlinks message files.
//! - **Sizes in the name.** `,S=N` in the basename is the size of the file on disk (what
//!   Maildir++ quotas count); `,W=N` is the size as POP3 sends it, every line end counted as
//!   CRLF (what LIST, STAT and the octet count of RETR report). With `,W=` the file is never
//!   read to answer LIST; without it, the size is counted once and remembered in `pop3d.sizes`.
//!   Either is believed only if the file's size makes it possible (`W` between the file size
//!   and twice it), so a wrong name can make LIST off by at most the CRLF growth.
//! - **UIDLs.** A basename of 1 to 70 printable ASCII characters (0x21 to 0x7E) is the UIDL
//!   itself; any other basename gets the hex of the first 128 bits of its SHA-256 instead.
//!   Either way the UIDL depends on the basename alone, so it survives flag changes and moves,
//!   and two messages never share one as long as their basenames differ, which the Maildir
//!   specification guarantees for names made as it says.
//! - **Delivery.** A message is written in `tmp/` under a unique name (time, `M` and
//!   microseconds, `P` pid, `Q` a per-process counter, `R` random bits, then the host name),
//!   synced, checked against the quota, and hard-linked into `new/` as
//!   `NAME,S=disk,W=wire`, and `new/` is synced before success is reported; then its `tmp/`
//!   name is removed. A crash leaves at most a file in `tmp/`, never part of a message in
//!   `new/`; files in `tmp/` older than 36 hours are removed at the next delivery.

mod deliver;
mod maildirsize;
mod message_file;
mod migrated;
mod naming;
mod open;
mod retrievals;
mod scan;
mod size_cache;
#[cfg(test)]
mod tests;
mod uidl_format;
mod uidl_sources;

use self::maildirsize::{record_removals, QuotaLock};
use self::message_file::{open_first, unlink_all, wire_size};
use self::naming::{believable, size_hint, sizes_agree, uidl};
use self::open::{open_root, open_subdirs, MessageDirs};
use self::scan::{scan, Stored};
use super::lock::{LockedDir, MailboxLock};
use super::{MailStore, Mailbox, MessageInfo, StoreError, StoreErrorKind};
use crate::account::Account;
use crate::limits;
use crate::store::delivery::{Quota, Usage};
use crate::template::{Template, TemplateError};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
pub use uidl_format::{UidlFormat, UnknownUidlFormat};

/// The lock file, in the Maildir's root where no delivery agent or IMAP server looks.
const LOCK_FILE: &str = "pop3d.lock";

/// Mailboxes in Maildir format, found by a path template such as `%h/Maildir`.
#[derive(Debug, Clone)]
pub struct MaildirStore {
    template: Template,
    /// The quota of accounts without one of their own.
    quota: Option<Quota>,
    /// Whose UIDLs the messages get.
    uidl_format: UidlFormat,
}

impl MaildirStore {
    /// A store whose Maildirs are at `template`, where `%u`, `%n`, `%d` and `%h` stand for the
    /// user name, its local part, its domain and the home directory.
    pub fn new(template: &str) -> Result<MaildirStore, TemplateError> {
        Ok(MaildirStore {
            template: Template::parse(template, "undh")?,
            quota: None,
            uidl_format: UidlFormat::default(),
        })
    }

    /// Gives messages the UIDLs another server showed for them ([`UidlFormat`]), so that
    /// clients that leave mail on the server download nothing again after a move to pop3d.
    /// Default: [`UidlFormat::Maildir`], the base name.
    ///
    /// With `dovecot` or `courier`, each login reads that server's file in the Maildir's root
    /// (about 100 octets a message, never the messages themselves); with `x-uidl`, the header
    /// of every message.
    pub fn with_uidl_format(mut self, format: UidlFormat) -> MaildirStore {
        self.uidl_format = format;
        self
    }

    /// Sets the quota [`deliver`](crate::store::Deliver::deliver) applies to accounts without one of their
    /// own ([`Account::quota`]). Without either, a Maildir's `maildirsize` (if it has one)
    /// gives the quota, as Courier and Dovecot take it from there.
    pub fn with_quota(mut self, quota: Quota) -> MaildirStore {
        self.quota = Some(quota);
        self
    }
}

impl MailStore for MaildirStore {
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        let root = super::mailbox_path(&self.template, account, "maildir")?;
        let dir = open_root(&root, account.uid)?;
        // Used for the scan and the sizes, and closed once the mailbox is open.
        let mut dirs = MessageDirs::opened(open_subdirs(&dir, &root, account.uid)?, account.uid);
        // A second session is told [IN-USE] at once; the session ending with QUIT lets its
        // lock go before it answers, so a client that logs in again straight after finds it free.
        let locked =
            MailboxLock::acquire_mailbox(dir, OsStr::new(LOCK_FILE), &root.join(LOCK_FILE))?;
        let files = scan(locked.dir(), &mut dirs, &root).map_err(|e| opening(&root, "scan", e))?;
        let mut mailbox = MaildirMailbox {
            root,
            locked,
            uid: account.uid,
            files,
            messages: Vec::new(),
        };
        mailbox.measure(&mut dirs)?;
        mailbox.migrate_uidls(self.uidl_format, &mut dirs);
        Ok(Box::new(mailbox))
    }
}

/// One opened Maildir: the snapshot taken at open, and the lock that keeps it ours.
#[derive(Debug)]
struct MaildirMailbox {
    /// The Maildir's path, for the log only: files are reached through `locked`.
    root: PathBuf,
    /// The Maildir, opened once at login and locked until the session drops the mailbox:
    /// where the file system allows, its descriptor is all an idle session holds for the
    /// mailbox. `cur/` and `new/` are opened again through it for each piece of work
    /// ([`MessageDirs`]).
    locked: LockedDir,
    /// The account's uid, which `cur/` and `new/` must still belong to when they are opened.
    uid: Option<u32>,
    /// Where each message of the snapshot is, in the same order as `messages`.
    files: Vec<Stored>,
    messages: Vec<MessageInfo>,
}

impl Mailbox for MaildirMailbox {
    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn read(&mut self, index: usize) -> Result<Box<dyn Read + '_>, StoreError> {
        self.check_index(index)?;
        // Closed on return: the message file stays open for reading, its directory does not.
        let mut dirs = MessageDirs::new(self.uid);
        match self.open_message(&mut dirs, index) {
            Ok(Some(file)) => Ok(Box::new(file)),
            Ok(None) => Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!(
                    "{}: message {:?} is gone",
                    self.root.display(),
                    self.files[index].basename()
                ),
            )),
            Err(e) => Err(temporary(&self.root, "read message", e)),
        }
    }

    fn delete(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        // An out-of-range index is a caller's bug: refuse before removing anything.
        for &index in indices {
            self.check_index(index)?;
        }
        let mut indices = indices.to_vec();
        indices.sort_unstable();
        indices.dedup();

        let mut dirs = MessageDirs::new(self.uid);
        let mut failed = 0;
        let mut first_error = None;
        // With a Maildir++ quota, the unlinks and their line in maildirsize go together.
        let quota = QuotaLock::for_removals(self.locked.dir())
            .map_err(|e| temporary(&self.root, "lock the quota", e))?;
        let mut removed = Usage::default();
        for &index in &indices {
            let count = quota.as_ref().map(|_| &mut removed);
            if let Err(e) = self.remove_message(&mut dirs, index, count) {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        // The unlinks are durable only once the directories are synced; the caller says +OK
        // right after we return.
        let synced = dirs.sync();
        if let Some(lock) = &quota {
            if let Err(e) = record_removals(self.locked.dir(), lock, removed) {
                log::warn!("{}: maildirsize not updated: {e}", self.root.display());
            }
        }
        if let Err((name, e)) = synced {
            return Err(temporary(&self.root, &format!("sync {name}/"), e));
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!(
                    "{}: could not delete {failed} of {} messages; first error: {e}",
                    self.root.display(),
                    indices.len()
                ),
            )),
        }
    }

    fn expire(&mut self, age: std::time::Duration) -> Result<Option<usize>, StoreError> {
        self.expire_retrieved(age).map(Some)
    }

    fn retrieved(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        self.record_retrieved(indices)
    }
}

impl MaildirMailbox {
    fn check_index(&self, index: usize) -> Result<(), StoreError> {
        if index < self.files.len() {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!(
                    "{}: no message at index {index} (snapshot has {})",
                    self.root.display(),
                    self.files.len()
                ),
            ))
        }
    }

    /// Fills `messages` with each file's size and UIDL, dropping files that vanished since the
    /// scan (another program deleted them).
    ///
    /// A size comes from the name's `,W=`, else from the [size cache](size_cache) in `root`,
    /// else from reading the message; a size from the name or the cache is used only if it is
    /// [believable](believable) for the file. The cache is written again when it missed or held
    /// stale entries.
    fn measure(&mut self, dirs: &mut MessageDirs) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        let mut sizes = Vec::with_capacity(self.files.len());
        let mut cache: Option<size_cache::Reader> = None;
        let mut counted = 0;
        for index in 0..self.files.len() {
            let basename = self.files[index].basename();
            let claimed = match size_hint(basename) {
                Some(size) => Some((size, true)),
                None => cache
                    .get_or_insert_with(|| size_cache::Reader::open(self.locked.dir(), &self.root))
                    .value_of(basename)
                    .map(|size| (size, false)),
            };
            let size = match claimed {
                Some((size, from_name)) if self.believed(dirs, index, size, from_name) => {
                    Some(size)
                }
                _ => {
                    if size_hint(basename).is_none() {
                        counted += 1;
                    }
                    self.count_size(dirs, index, &mut buf)?
                }
            };
            sizes.push(size);
        }
        let mut sizes = sizes.into_iter();
        let messages = &mut self.messages;
        messages.reserve_exact(self.files.len());
        // `retain` visits each file once, in order: the message of each kept file is pushed.
        self.files.retain(|stored| match sizes.next().flatten() {
            Some(size) => {
                messages.push(MessageInfo {
                    size,
                    uidl: uidl(stored.basename()),
                });
                true
            }
            None => false,
        });
        self.files.shrink_to_fit();
        if let Some(mut cache) = cache {
            if counted > 0 || cache.needs_rewrite() {
                self.write_size_cache();
            }
        }
        Ok(())
    }

    /// True if `claimed` may be taken as the size of message `index` without reading it: its
    /// file is a regular file whose size makes the claim [believable].
    fn believed(
        &self,
        dirs: &mut MessageDirs,
        index: usize,
        claimed: u64,
        from_name: bool,
    ) -> bool {
        let stored = &self.files[index];
        if from_name && sizes_agree(stored.basename()) {
            return true;
        }
        let Some(&(dir, name)) = stored.locations().first() else {
            return false;
        };
        match dirs.get(self.locked.dir(), dir).and_then(|d| d.stat(name)) {
            Ok(st) if st.is_file() => {
                let ok = believable(stored.basename(), claimed, st.size, from_name);
                if !ok {
                    log::info!(
                        "{}: claimed size {claimed} is not believable for a file of {} octets; \
                         counted",
                        scan::shown(&self.root, dir, name).display(),
                        st.size
                    );
                }
                ok
            }
            // Gone, moved or replaced: counting finds out.
            _ => false,
        }
    }

    /// Reads message `index` through to count its size; `None` if it is gone.
    fn count_size(
        &mut self,
        dirs: &mut MessageDirs,
        index: usize,
        buf: &mut Vec<u8>,
    ) -> Result<Option<u64>, StoreError> {
        if buf.is_empty() {
            buf.resize(limits::MESSAGE_CHUNK, 0);
        }
        match self.open_message(dirs, index) {
            Ok(Some(mut file)) => wire_size(&mut file, buf)
                .map(Some)
                .map_err(|e| opening(&self.root, "count message size", e)),
            Ok(None) => Ok(None),
            Err(e) => Err(opening(&self.root, "count message size", e)),
        }
    }

    /// Remembers the sizes of the messages without `,W=`. A failure costs only speed.
    fn write_size_cache(&self) {
        let entries = self
            .files
            .iter()
            .zip(&self.messages)
            .filter(|(stored, _)| size_hint(stored.basename()).is_none())
            .map(|(stored, info)| (stored.basename(), info.size));
        if let Err(e) = size_cache::write(self.locked.dir(), entries) {
            log::debug!("{}: size cache not written: {e}", self.root.display());
        }
    }

    /// Opens message `index`, following it if it was moved. `None` if it no longer exists.
    fn open_message(&mut self, dirs: &mut MessageDirs, index: usize) -> io::Result<Option<File>> {
        if self.files[index].gone {
            return Ok(None);
        }
        if let Some(file) = open_first(self.locked.dir(), dirs, &self.root, &self.files[index])? {
            return Ok(Some(file));
        }
        self.relocate(dirs)?;
        open_first(self.locked.dir(), dirs, &self.root, &self.files[index])
    }

    /// Unlinks every copy of message `index`. A message already gone counts as removed.
    /// With `removed`, adds there what the files unlinked counted for in the quota.
    fn remove_message(
        &mut self,
        dirs: &mut MessageDirs,
        index: usize,
        mut removed: Option<&mut Usage>,
    ) -> io::Result<()> {
        if unlink_all(
            self.locked.dir(),
            dirs,
            &self.files[index],
            removed.as_deref_mut(),
        )? {
            // A copy was not where we saw it: it may have moved, so look for it by name.
            self.relocate(dirs)?;
            unlink_all(self.locked.dir(), dirs, &self.files[index], removed)?;
        }
        self.files[index].mark_gone();
        Ok(())
    }

    /// Rescans `new/` and `cur/` and updates every message's paths at once: when a program
    /// moves one file it usually moves many, so one rescan serves them all.
    fn relocate(&mut self, dirs: &mut MessageDirs) -> io::Result<()> {
        let mut now: HashMap<OsString, Stored> = scan(self.locked.dir(), dirs, &self.root)?
            .into_iter()
            .map(|s| (s.basename().to_os_string(), s))
            .collect();
        for stored in &mut self.files {
            match now.remove(stored.basename()) {
                Some(found) => *stored = found,
                None => stored.mark_gone(),
            }
        }
        Ok(())
    }
}

/// A failure while opening the Maildir, after [`open_subdirs`]: a file or directory that may
/// not be read is [`Permanent`](StoreErrorKind::Permanent), as for any I/O error, but one that
/// is missing was removed since we made sure of it, and the next open makes it again.
fn opening(root: &Path, what: &str, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        temporary(root, what, e)
    } else {
        StoreError::io(format!("{}: {what}", root.display()), e)
    }
}

/// A failure in an open mailbox: whatever it is, the mailbox was fine a moment ago.
fn temporary(root: &Path, what: &str, e: io::Error) -> StoreError {
    let detail = format!("{}: {what}: {e}", root.display());
    StoreError::with_source(StoreErrorKind::Temporary, detail, e)
}
