//! The mbox backend: one file per account (`/var/mail/USER`), to which the MTA appends each
//! message after a `From ` line, as Postfix, Exim and procmail write it on a classic Unix host.
//!
//! A session opens the spool (never through a symlink: it must be a regular file, the
//! account's when the account has a uid), takes the session lock (`locks.rs`), then, under the
//! locks MTAs and mail readers take (`dotlock.rs` and `fcntl`), finishes any UPDATE a crash
//! interrupted (`journal.rs`), reads the whole spool once to find its messages (`parse.rs`) and
//! lets the locks go: deliveries go on during the session. RETR reads a message where the
//! snapshot found it, after checking that its `From ` line and header are still those
//! (`reader.rs`).
//! UPDATE takes the MTA locks again, makes sure the spool is still the snapshot plus what was
//! appended since, and rewrites it in place without the deleted messages (`update.rs`).
//!
//! Delivery (`deliver.rs`) appends as an MTA does, under the same MTA locks, with `From `
//! body lines quoted (`quote.rs`), and cuts the spool back on any failure.
//!
//! A missing spool is an empty mailbox. Everything the manual's MBOX section says about what
//! is served (hidden headers, `>From ` lines, sizes, UIDLs) is in `parse.rs` and `uidl.rs`.

mod deliver;
mod dotlock;
mod from_line;
mod journal;
mod locks;
mod mail_group;
mod parse;
mod quote;
mod reader;
mod scan;
#[cfg(test)]
mod tests;
mod uidl;
mod update;

use self::locks::{lock_session, Claim, MtaLocks};
use self::parse::Parsed;
use self::reader::MessageReader;
use self::scan::{read_full, scan, scan_to};
use super::delivery::Quota;
use super::dir::Dir;
use super::{MailStore, Mailbox, MessageFile, MessageInfo, StoreError, StoreErrorKind};
use crate::account::Account;
use crate::template::{Template, TemplateError};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest pop3d waits for an MTA or a mail reader to let go of the spool's locks, at
/// login and at UPDATE. A delivery holds them for well under a second; a mail reader saving
/// a large mbox for a few seconds. Longer, and the client is told to try again later.
const MTA_LOCK_WAIT: Duration = Duration::from_secs(15);

/// Mailboxes in mbox format, found by a path template such as `/var/mail/%u`.
#[derive(Debug, Clone)]
pub struct MboxStore {
    template: Template,
    lock_wait: Duration,
    /// The quota of accounts that have none of their own, for delivery.
    quota: Option<Quota>,
}

impl MboxStore {
    /// A store whose spools are at `template`, where `%u`, `%n`, `%d` and `%h` stand for the
    /// user name, its local part, its domain and the home directory.
    pub fn new(template: &str) -> Result<MboxStore, TemplateError> {
        Ok(MboxStore {
            template: Template::parse(template, "undh")?,
            lock_wait: MTA_LOCK_WAIT,
            quota: None,
        })
    }

    /// How long to wait for an MTA or a mail reader to let go of a spool's locks at login and
    /// at UPDATE before the client is told to try again later (15 seconds unless set).
    pub fn lock_wait(mut self, wait: Duration) -> MboxStore {
        self.lock_wait = wait;
        self
    }

    /// Delivery refuses a message that would take an account without a quota of its own past
    /// `quota` (the spool's size in bytes, its number of messages).
    pub fn with_quota(mut self, quota: Quota) -> MboxStore {
        self.quota = Some(quota);
        self
    }
}

impl MailStore for MboxStore {
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        let path = super::mailbox_path(&self.template, account, "mbox")?;
        Ok(Box::new(MboxMailbox::open(
            path,
            account.uid,
            self.lock_wait,
        )?))
    }
}

/// One opened spool: the snapshot taken at open, and the session lock.
#[derive(Debug)]
struct MboxMailbox {
    path: PathBuf,
    /// The spool's directory, and the spool's name in it.
    dir: Dir,
    name: OsString,
    /// The spool, `flock`ed for the session; `None` if there was none (an empty mailbox).
    spool: Option<File>,
    _claim: Option<Claim>,
    /// The messages of the snapshot, and their hidden header lines.
    parsed: Vec<Parsed>,
    hidden: Vec<Range<u64>>,
    /// The spool's length at the snapshot.
    len: u64,
    messages: Vec<MessageInfo>,
    /// Set once UPDATE rewrote the spool: the snapshot's offsets are gone.
    rewritten: bool,
    /// How long to wait for the MTA locks.
    lock_wait: Duration,
}

impl MboxMailbox {
    fn open(
        path: PathBuf,
        uid: Option<u32>,
        lock_wait: Duration,
    ) -> Result<MboxMailbox, StoreError> {
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) if !p.as_os_str().is_empty() => (p, n.to_os_string()),
            _ => return Err(permanent(&path, "not a path to a file")),
        };
        let dir = Dir::open_following(parent).map_err(|e| StoreError::io(parent.display(), e))?;
        let mut mailbox = MboxMailbox {
            path: path.clone(),
            dir,
            name,
            spool: None,
            _claim: None,
            parsed: Vec::new(),
            hidden: Vec::new(),
            len: 0,
            messages: Vec::new(),
            rewritten: false,
            lock_wait,
        };
        let st = match mailbox.dir.stat(&mailbox.name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(mailbox),
            Err(e) => return Err(StoreError::io(path.display(), e)),
        };
        if !st.is_file() {
            return Err(permanent(&path, "not a regular file (a symlink?); refused"));
        }
        check_owner(&path, st.uid, uid)?;
        // Looked up before opening: opening and closing a spool that another session of this
        // process has fcntl-locked would drop its lock.
        let claim = Claim::new(st.id()).ok_or_else(|| in_use(&path))?;
        let spool = match mailbox.dir.open_file(&mailbox.name, libc::O_RDWR, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(mailbox),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(permanent(&path, "is a symlink; refused"))
            }
            Err(e) => return Err(StoreError::io(path.display(), e)),
        };
        let meta = spool
            .metadata()
            .map_err(|e| StoreError::io(path.display(), e))?;
        if (meta.dev(), meta.ino()) != st.id() || !meta.is_file() {
            return Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!("{}: replaced while being opened", path.display()),
            ));
        }
        check_owner(&path, meta.uid(), uid)?;
        if !lock_session(&spool).map_err(|e| StoreError::io(path.display(), e))? {
            return Err(in_use(&path));
        }
        mailbox._claim = Some(claim);
        let spool = mailbox.spool.insert(spool);
        let (parser, len) = {
            let locks = MtaLocks::acquire(&mailbox.dir, &mailbox.name, spool, lock_wait)
                .map_err(|e| temporary(&path, "lock", e))?
                .ok_or_else(|| locked(&path, lock_wait))?;
            journal::recover(&mailbox.dir, &mailbox.name, spool)
                .map_err(|e| temporary(&path, "finish an interrupted UPDATE", e))?;
            let scanned = scan(spool, 0).map_err(|e| temporary(&path, "read", e))?;
            drop(locks);
            scanned
        };
        if parser.junk > 0 {
            log::warn!(
                "{}: {} octets before the first From line are not a message; left alone",
                path.display(),
                parser.junk
            );
        }
        let uidls = uidl::assign(
            parser
                .messages
                .iter()
                .map(|m| (m.x_uidl.as_deref(), &m.digest)),
        );
        mailbox.messages = parser
            .messages
            .iter()
            .zip(uidls)
            .map(|(m, uidl)| MessageInfo { size: m.size, uidl })
            .collect();
        mailbox.parsed = parser.messages;
        mailbox.hidden = parser.hidden;
        mailbox.len = len;
        Ok(mailbox)
    }

    fn check_index(&self, index: usize) -> Result<(), StoreError> {
        if index < self.parsed.len() {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!(
                    "{}: no message at index {index} (snapshot has {})",
                    self.path.display(),
                    self.parsed.len()
                ),
            ))
        }
    }

    /// True if message `index` still starts as it did at the snapshot (its `From ` line and
    /// header give the same digest, its hidden header lines are where they were) and still
    /// ends where a boundary was. Its body is not read again: a change to it that keeps every
    /// length is not seen.
    fn unchanged(&self, spool: &File, index: usize) -> io::Result<bool> {
        let m = &self.parsed[index];
        let (now, len) = scan_to(spool, m.from, m.body)?;
        // The digest says which lines are served, the hidden ranges where the others are: a
        // served line swapped with a hidden one of the same length changes only the latter.
        let same = |p: &Parsed| {
            p.from == m.from
                && p.body == m.body
                && p.digest == m.digest
                && now.hidden[p.hidden.clone()] == self.hidden[m.hidden.clone()]
        };
        if len != m.body || now.messages.len() != 1 || !same(&now.messages[0]) {
            return Ok(false);
        }
        let dropped = (m.next - m.end) as usize;
        if dropped == 0 {
            return Ok(true);
        }
        let mut after = [0u8; 7];
        let n = read_full(spool, &mut after, m.end)?;
        let after = &after[..n];
        let ends_line = if dropped == 2 { &b"\r\n"[..] } else { b"\n" };
        Ok(after.starts_with(ends_line)
            && (after.len() == dropped || after[dropped..].starts_with(b"From ")))
    }
}

impl Mailbox for MboxMailbox {
    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn read(&mut self, index: usize) -> Result<Box<dyn Read + '_>, StoreError> {
        let (spool, range, hidden) = self.served(index)?;
        Ok(Box::new(MessageReader::new(spool, range, hidden)))
    }

    fn file_ranges(&mut self, index: usize) -> Result<Option<MessageFile>, StoreError> {
        let (spool, range, hidden) = self.served(index)?;
        let ranges = reader::served_parts(range, hidden);
        // A descriptor of its own, for reading only, whatever this one allows.
        let own = std::fs::OpenOptions::new()
            .read(true)
            .open(format!("/proc/self/fd/{}", spool.as_raw_fd()))
            .map_err(|e| temporary(&self.path, "reopen for reading", e))?;
        Ok(Some(MessageFile { file: own, ranges }))
    }

    fn delete(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        self.update(indices, None)
    }
}

/// The spool, a message's range in it and the hidden header lines inside that range.
type Served<'a> = (&'a File, Range<u64>, &'a [Range<u64>]);

impl MboxMailbox {
    /// The spool, message `index`'s range and its hidden header lines, once the message is
    /// checked to be where the snapshot found it.
    fn served(&self, index: usize) -> Result<Served<'_>, StoreError> {
        self.check_index(index)?;
        let changed = || {
            StoreError::new(
                StoreErrorKind::Temporary,
                format!(
                    "{}: message {} is no longer where it was (another program rewrote the \
                     mbox); not served",
                    self.path.display(),
                    index + 1
                ),
            )
        };
        let spool = match &self.spool {
            Some(spool) if !self.rewritten => spool,
            _ => return Err(changed()),
        };
        if !self
            .unchanged(spool, index)
            .map_err(|e| temporary(&self.path, "read", e))?
        {
            return Err(changed());
        }
        let m = &self.parsed[index];
        Ok((spool, m.start..m.end, &self.hidden[m.hidden.clone()]))
    }
}

fn check_owner(path: &Path, owner: u32, uid: Option<u32>) -> Result<(), StoreError> {
    match uid {
        Some(uid) if owner != uid => Err(permanent(
            path,
            &format!("owned by uid {owner}, should be the account's uid {uid}; refused"),
        )),
        _ => Ok(()),
    }
}

fn in_use(path: &Path) -> StoreError {
    StoreError::new(
        StoreErrorKind::InUse,
        format!("{}: held by another session", path.display()),
    )
}

fn locked(path: &Path, wait: Duration) -> StoreError {
    StoreError::new(
        StoreErrorKind::Temporary,
        format!(
            "{}: locked by another program (dot-lock or fcntl) for {:?}",
            path.display(),
            wait
        ),
    )
}

fn permanent(path: &Path, what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Permanent,
        format!("{}: {what}", path.display()),
    )
}

fn temporary(path: &Path, what: &str, e: io::Error) -> StoreError {
    let detail = format!("{}: {what}: {e}", path.display());
    StoreError::with_source(StoreErrorKind::Temporary, detail, e)
}
