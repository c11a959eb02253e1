//! The Maildir backend: one file per message in `new/` and `cur/`, as Dovecot, Postfix and
//! qmail write them.
//!
//! A message is known by its *basename*, the file name up to the first `:`. The rest (the info
//! part, `:2,FLAGS`) changes whenever an IMAP server or a mail reader sets a flag or moves the
//! file from `new/` to `cur/`, so paths are only hints: when one is gone, the message is looked
//! up again by basename. Stored message files are never modified, only read and unlinked.

mod size_cache;

use super::lock::MailboxLock;
use super::{MailStore, Mailbox, MessageInfo, StoreError, StoreErrorKind};
use crate::account::Account;
use crate::auth::secret::hex;
use crate::limits;
use crate::protocol::message::WireSize;
use crate::template::{Template, TemplateError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The subdirectories holding messages. `cur/` first, so that when a message is in both, the
/// copy in `cur/` (the one a reader has seen) is the one read.
const MESSAGE_DIRS: [&str; 2] = ["cur", "new"];

/// The lock file, in the Maildir's root where no delivery agent or IMAP server looks.
const LOCK_FILE: &str = "pop3d.lock";

/// Longest UIDL (RFC 1939 §7).
const MAX_UIDL: usize = 70;

/// Hex digits of SHA-256 kept for a digest UIDL: 128 bits, plenty against collisions.
const DIGEST_UIDL_LEN: usize = 32;

/// Mailboxes in Maildir format, found by a path template such as `%h/Maildir`.
#[derive(Debug, Clone)]
pub struct MaildirStore {
    template: Template,
}

impl MaildirStore {
    /// A store whose Maildirs are at `template`, where `%u`, `%n`, `%d` and `%h` stand for the
    /// user name, its local part, its domain and the home directory.
    pub fn new(template: &str) -> Result<MaildirStore, TemplateError> {
        Ok(MaildirStore {
            template: Template::parse(template, "undh")?,
        })
    }
}

impl MailStore for MaildirStore {
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        let root = self.template.expand(account).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Permanent,
                format!("maildir of {}: {e}", account.name),
            )
        })?;
        create_missing(&root).map_err(|e| temporary(&root, "create maildir", e))?;
        // A second session is told [IN-USE] at once; the session ending with QUIT lets its
        // lock go before it answers, so a client that logs in again straight after finds it free.
        let lock = MailboxLock::acquire(&root.join(LOCK_FILE))?;
        let files = scan(&root).map_err(|e| temporary(&root, "scan", e))?;
        let mut mailbox = MaildirMailbox {
            root,
            files,
            messages: Vec::new(),
            _lock: lock,
        };
        mailbox.measure()?;
        Ok(Box::new(mailbox))
    }
}

/// One opened Maildir: the snapshot taken at open, and the lock that keeps it ours.
#[derive(Debug)]
struct MaildirMailbox {
    root: PathBuf,
    /// Where each message of the snapshot is, in the same order as `messages`.
    files: Vec<Stored>,
    messages: Vec<MessageInfo>,
    /// Held for the mailbox's lifetime; released when the session drops the mailbox.
    _lock: MailboxLock,
}

/// A message on disk, as the scan found it.
///
/// Kept small, as a session holds one per message for its whole length: the file name alone
/// (the path is made again when the file is opened), and no allocation beyond it in the usual
/// case of one file per message.
#[derive(Debug)]
struct Stored {
    /// The file's name: the base name, then the info part if any.
    name: Box<OsStr>,
    /// Length of the base name at the start of `name`.
    base_len: u32,
    /// Where the file is: an index into [`MESSAGE_DIRS`].
    dir: u8,
    /// Other files with the same base name, after this one (rare: a copy in both `cur/` and
    /// `new/`, or two info parts while another program renames).
    more: Vec<(u8, Box<OsStr>)>,
    /// Known to be gone from the disk.
    gone: bool,
}

impl Stored {
    fn new(dir: u8, name: Box<OsStr>) -> Stored {
        Stored {
            base_len: basename(&name).len() as u32,
            name,
            dir,
            more: Vec::new(),
            gone: false,
        }
    }

    fn basename(&self) -> &OsStr {
        OsStr::from_bytes(&self.name.as_bytes()[..self.base_len as usize])
    }

    /// Every file of the message, the first one found first; none once it is gone.
    fn paths(&self, root: &Path) -> Vec<PathBuf> {
        if self.gone {
            return Vec::new();
        }
        std::iter::once((self.dir, &self.name))
            .chain(self.more.iter().map(|(dir, name)| (*dir, name)))
            .map(|(dir, name)| root.join(MESSAGE_DIRS[usize::from(dir)]).join(&**name))
            .collect()
    }

    fn mark_gone(&mut self) {
        self.gone = true;
        self.more = Vec::new();
    }
}

impl Mailbox for MaildirMailbox {
    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn read(&mut self, index: usize) -> Result<Box<dyn Read + '_>, StoreError> {
        self.check_index(index)?;
        match self.open_message(index) {
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

        let mut failed = 0;
        let mut first_error = None;
        for &index in &indices {
            if let Err(e) = self.remove_message(index) {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        // The unlinks are durable only once the directories are synced; the caller says +OK
        // right after we return.
        if !indices.is_empty() {
            for dir in MESSAGE_DIRS {
                if let Err(e) = File::open(self.root.join(dir)).and_then(|d| d.sync_all()) {
                    return Err(temporary(&self.root, &format!("sync {dir}/"), e));
                }
            }
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
    /// A size comes from the name's `,W=`, else from the [size cache](size_cache), else from
    /// reading the message; the cache is written again when it missed or held stale entries.
    fn measure(&mut self) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        let mut sizes = Vec::with_capacity(self.files.len());
        let mut cache: Option<size_cache::Reader> = None;
        let mut counted = 0;
        for index in 0..self.files.len() {
            let basename = self.files[index].basename();
            let size = match size_hint(basename) {
                Some(size) => Some(size),
                None => {
                    let cache = cache.get_or_insert_with(|| size_cache::Reader::open(&self.root));
                    match cache.size_of(basename) {
                        Some(size) => Some(size),
                        None => {
                            counted += 1;
                            self.count_size(index, &mut buf)?
                        }
                    }
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

    /// Reads message `index` through to count its size; `None` if it is gone.
    fn count_size(&mut self, index: usize, buf: &mut Vec<u8>) -> Result<Option<u64>, StoreError> {
        if buf.is_empty() {
            buf.resize(limits::MESSAGE_CHUNK, 0);
        }
        match self.open_message(index) {
            Ok(Some(mut file)) => wire_size(&mut file, buf)
                .map(Some)
                .map_err(|e| temporary(&self.root, "read message", e)),
            Ok(None) => Ok(None),
            Err(e) => Err(temporary(&self.root, "read message", e)),
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
        if let Err(e) = size_cache::write(&self.root, entries) {
            log::debug!("{}: size cache not written: {e}", self.root.display());
        }
    }

    /// Opens message `index`, following it if it was moved. `None` if it no longer exists.
    fn open_message(&mut self, index: usize) -> io::Result<Option<File>> {
        if self.files[index].gone {
            return Ok(None);
        }
        if let Some(file) = open_first(&self.files[index].paths(&self.root))? {
            return Ok(Some(file));
        }
        self.relocate()?;
        open_first(&self.files[index].paths(&self.root))
    }

    /// Unlinks every copy of message `index`. A message already gone counts as removed.
    fn remove_message(&mut self, index: usize) -> io::Result<()> {
        if unlink_all(&self.files[index].paths(&self.root))? {
            // A copy was not where we saw it: it may have moved, so look for it by name.
            self.relocate()?;
            unlink_all(&self.files[index].paths(&self.root))?;
        }
        self.files[index].mark_gone();
        Ok(())
    }

    /// Rescans `new/` and `cur/` and updates every message's paths at once: when a program
    /// moves one file it usually moves many, so one rescan serves them all.
    fn relocate(&mut self) -> io::Result<()> {
        let mut now: HashMap<OsString, Stored> = scan(&self.root)?
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

/// Creates the Maildir and its `new/`, `cur/` and `tmp/` where missing (mode 0700), as
/// Dovecot does the first time an account logs in.
fn create_missing(root: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for sub in ["new", "cur", "tmp"] {
        let dir = root.join(sub);
        if !dir.is_dir() {
            builder.create(&dir)?;
            log::info!("created {}", dir.display());
        }
    }
    Ok(())
}

/// Lists the messages in `new/` and `cur/`, sorted by basename (delivery order, since Maildir
/// names begin with the delivery time), one entry per basename.
fn scan(root: &Path) -> io::Result<Vec<Stored>> {
    let mut found = Vec::new();
    for (dir, sub) in MESSAGE_DIRS.iter().enumerate() {
        scan_dir(&root.join(sub), dir as u8, &mut found)?;
    }
    // Ties broken by directory (`cur/` first) and then name, so that the order never depends on
    // the order of the directory entries; unstable sorting needs no scratch buffer.
    found.sort_unstable_by(|a, b| {
        (a.basename().cmp(b.basename()))
            .then(a.dir.cmp(&b.dir))
            .then_with(|| a.name.cmp(&b.name))
    });
    // One entry per base name: later files of the same message join the first.
    found.dedup_by(|later, kept| {
        if later.basename() != kept.basename() {
            return false;
        }
        kept.more.push((later.dir, std::mem::take(&mut later.name)));
        true
    });
    Ok(found)
}

/// Adds the regular, non-hidden files of `MESSAGE_DIRS[dir]`, found at `path`, to `found`.
fn scan_dir(path: &Path, dir: u8, found: &mut Vec<Stored>) -> io::Result<()> {
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_bytes().first() == Some(&b'.') {
            continue;
        }
        // std takes the type from the directory entry and stats only when the file system
        // does not say. Symlinks are skipped too: a message is a regular file.
        match entry.file_type() {
            Ok(t) if t.is_file() => {}
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        found.push(Stored::new(dir, name.into_boxed_os_str()));
    }
    Ok(())
}

/// The file name up to the first `:`.
fn basename(name: &OsStr) -> &OsStr {
    let bytes = name.as_bytes();
    let end = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
    OsStr::from_bytes(&bytes[..end])
}

/// The wire size a delivery agent recorded in the name as `,W=<digits>`, if any.
///
/// (`,S=` is the size on disk, with LF line ends: not what LIST reports.)
fn size_hint(basename: &OsStr) -> Option<u64> {
    basename
        .as_bytes()
        .split(|&b| b == b',')
        .skip(1)
        .find_map(|field| {
            let digits = field.strip_prefix(b"W=")?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        })
}

/// The UIDL of a message: its basename when that is a valid UIDL, else a digest of it. Either
/// way it depends on the basename alone, so it survives moves and flag changes.
fn uidl(basename: &OsStr) -> String {
    let bytes = basename.as_bytes();
    if (1..=MAX_UIDL).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        // All printable ASCII, so valid UTF-8: copied as it is.
        if let Ok(text) = std::str::from_utf8(bytes) {
            return text.to_owned();
        }
    }
    hex(&Sha256::digest(bytes)[..DIGEST_UIDL_LEN / 2])
}

/// Opens the first of `paths` that exists. `None` if none does.
fn open_first(paths: &[PathBuf]) -> io::Result<Option<File>> {
    for path in paths {
        match open_regular(path) {
            Ok(file) => return Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Opens a message file for reading, refusing anything but a regular file: a symlink or a FIFO
/// swapped in since the scan must neither redirect us nor make us wait.
/// Opens `path` for reading if it is a regular file, never through a symbolic link.
fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ))
    }
}

/// Unlinks every path; true if any was already gone. Stops at the first other error.
fn unlink_all(paths: &[PathBuf]) -> io::Result<bool> {
    let mut missing = false;
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing = true,
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}

/// Reads `file` through in chunks and returns its wire size.
fn wire_size(file: &mut File, buf: &mut [u8]) -> io::Result<u64> {
    let mut size = WireSize::new();
    loop {
        match file.read(buf) {
            Ok(0) => return Ok(size.total()),
            Ok(n) => size.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn temporary(root: &Path, what: &str, e: io::Error) -> StoreError {
    StoreError::new(
        StoreErrorKind::Temporary,
        format!("{}: {what}: {e}", root.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::wire_size as wire_size_of;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A home directory for one test, removed when dropped. Its Maildir is `<home>/Maildir`.
    struct Home(PathBuf);

    impl Home {
        fn new() -> Home {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("pop3d-maildir-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create test home");
            Home(dir)
        }

        fn maildir(&self) -> PathBuf {
            self.0.join("Maildir")
        }

        /// Creates the Maildir with its three subdirectories.
        fn with_maildir() -> Home {
            let home = Home::new();
            for sub in ["new", "cur", "tmp"] {
                fs::create_dir_all(home.maildir().join(sub)).expect("create maildir");
            }
            home
        }

        /// Writes a message file `<Maildir>/<sub>/<name>`.
        fn deliver(&self, sub: &str, name: impl AsRef<OsStr>, content: &[u8]) -> PathBuf {
            let path = self.maildir().join(sub).join(name.as_ref());
            fs::write(&path, content).expect("deliver");
            path
        }

        fn open(&self) -> Result<Box<dyn Mailbox>, StoreError> {
            let store = MaildirStore::new("%h/Maildir").expect("template");
            store.open(&Account::new("bob").with_home(&self.0))
        }

        /// Opens, waiting a moment if a lock just released is still held: other tests fork
        /// children, which share our open lock file until their exec (see lock.rs tests).
        fn open_ok(&self) -> Box<dyn Mailbox> {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                match self.open() {
                    Err(e) if e.kind() == StoreErrorKind::InUse => {
                        assert!(std::time::Instant::now() < deadline, "lock not released");
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    r => return r.expect("open maildir"),
                }
            }
        }
    }

    impl Drop for Home {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn uidls(mailbox: &dyn Mailbox) -> Vec<String> {
        mailbox.messages().iter().map(|m| m.uidl.clone()).collect()
    }

    fn read_all(mailbox: &mut dyn Mailbox, index: usize) -> Vec<u8> {
        let mut out = Vec::new();
        mailbox
            .read(index)
            .expect("read")
            .read_to_end(&mut out)
            .expect("read to end");
        out
    }

    fn open_kind(home: &Home) -> Option<StoreErrorKind> {
        home.open().err().map(|e| e.kind())
    }

    #[test]
    fn w_hint_is_used_without_reading() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.M1P1.host,S=5,W=999", b"hello");
        home.deliver("cur", "1001.M1P1.host,W=7:2,S", b"x");
        let mb = home.open_ok();
        let sizes: Vec<u64> = mb.messages().iter().map(|m| m.size).collect();
        assert_eq!(sizes, [999, 7]);
    }

    #[test]
    fn size_without_hint_is_the_wire_size() {
        let home = Home::with_maildir();
        // More than one chunk, with a line end right at the chunk boundary.
        let mut big = vec![b'x'; limits::MESSAGE_CHUNK - 1];
        big.push(b'\n');
        big.extend_from_slice(b"\nmore\nlines\n".repeat(3000).as_slice());
        let cases: [(&str, &[u8], u64); 5] = [
            ("1000.lf,S=8", b"a\nbc\n\nd\n", 12),
            ("1001.crlf", b"a\r\nbc\r\n\r\nd\r\n", 12),
            ("1002.unterminated", b"a\nbc", 7),
            ("1003.empty", b"", 0),
            ("1004.big", &big, wire_size_of(&big)),
        ];
        for (name, content, _) in &cases {
            home.deliver("new", name, content);
        }
        let mb = home.open_ok();
        let sizes: Vec<u64> = mb.messages().iter().map(|m| m.size).collect();
        let want: Vec<u64> = cases.iter().map(|c| c.2).collect();
        assert_eq!(sizes, want);
        for (name, content, size) in &cases {
            assert_eq!(wire_size_of(content), *size, "{name}");
        }
        assert!(
            want[4] > big.len() as u64,
            "the big case must have LFs to count"
        );
    }

    #[test]
    fn counted_sizes_are_cached_and_the_cache_follows_the_directory() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.a,S=2", b"a\n");
        home.deliver("new", "2000.b,W=9", b"bb\n");
        home.deliver("cur", "3000.c:2,S", b"c\nc\n");
        let cache = home.maildir().join(size_cache::FILE);
        let sizes = |mb: &dyn Mailbox| mb.messages().iter().map(|m| m.size).collect::<Vec<_>>();
        assert_eq!(sizes(&*home.open_ok()), [3, 9, 6]);
        // Only the names without ,W= are kept, in scan order.
        assert_eq!(
            fs::read(&cache).expect("cache written"),
            b"pop3d sizes 1\n3 1000.a,S=2\n6 3000.c\n"
        );
        // The next login takes the sizes from the cache, not from the files.
        fs::write(&cache, b"pop3d sizes 1\n30 1000.a,S=2\n60 3000.c\n").expect("edit");
        assert_eq!(sizes(&*home.open_ok()), [30, 9, 60]);
        assert_eq!(
            fs::read(&cache).expect("cache"),
            b"pop3d sizes 1\n30 1000.a,S=2\n60 3000.c\n",
            "a cache that matched is not rewritten"
        );
        // A removed message leaves the cache, a new one is counted and joins it.
        fs::remove_file(home.maildir().join("cur/3000.c:2,S")).expect("rm");
        home.deliver("new", "4000.d", b"dddd");
        assert_eq!(sizes(&*home.open_ok()), [30, 9, 6]);
        assert_eq!(
            fs::read(&cache).expect("cache"),
            b"pop3d sizes 1\n30 1000.a,S=2\n6 4000.d\n"
        );
        // A damaged cache is ignored and replaced.
        fs::write(&cache, b"garbage").expect("damage");
        assert_eq!(sizes(&*home.open_ok()), [3, 9, 6]);
        assert_eq!(
            fs::read(&cache).expect("cache"),
            b"pop3d sizes 1\n3 1000.a,S=2\n6 4000.d\n"
        );
    }

    #[test]
    fn uidl_is_the_basename_when_it_is_a_valid_uidl() {
        let home = Home::with_maildir();
        let name70 = format!("1000.{}", "a".repeat(65));
        home.deliver("cur", "1000.M1P1.host,S=5:2,S", b"x\n");
        home.deliver("new", &name70, b"x\n");
        let mb = home.open_ok();
        assert_eq!(uidls(&*mb), ["1000.M1P1.host,S=5", name70.as_str()]);
    }

    #[test]
    fn uidl_is_a_digest_for_long_or_odd_names() {
        let home = Home::with_maildir();
        let name71 = format!("1000.{}", "a".repeat(66));
        home.deliver("new", &name71, b"x\n");
        home.deliver("new", "a b", b"x\n");
        home.deliver("new", OsStr::from_bytes(b"b\xff:2,S"), b"x\n");
        home.deliver("new", "b\x7f", b"x\n");
        let mb = home.open_ok();
        let got = uidls(&*mb);
        // Sorted by basename: "1000.aaa…", "a b", "b\x7f", "b\xff".
        assert_eq!(got.len(), 4);
        // SHA-256("a b") = c8687a08aa5d6ed2044328fa6a697ab8e96dc342…
        assert_eq!(got[1], "c8687a08aa5d6ed2044328fa6a697ab8");
        for u in &got {
            assert_eq!(u.len(), 32, "{u}");
            assert!(u.bytes().all(|b| b.is_ascii_hexdigit()), "{u}");
        }
        assert_ne!(got[0], name71);
        let distinct: std::collections::HashSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), 4);
    }

    #[test]
    fn uidl_is_stable_across_sessions_and_moves() {
        let home = Home::with_maildir();
        let long = format!("1000.{}", "L".repeat(80));
        home.deliver("new", &long, b"x\n");
        home.deliver("new", "1001.M2P2.host", b"y\n");
        let before = uidls(&*home.open_ok());
        assert_eq!(before, uidls(&*home.open_ok()));
        let new = home.maildir().join("new");
        let cur = home.maildir().join("cur");
        fs::rename(new.join(&long), cur.join(format!("{long}:2,S"))).expect("move");
        fs::rename(new.join("1001.M2P2.host"), cur.join("1001.M2P2.host:2,RS")).expect("move");
        assert_eq!(before, uidls(&*home.open_ok()));
        assert_eq!(before[1], "1001.M2P2.host");
    }

    #[test]
    fn order_is_by_basename_listed_once_and_only_messages() {
        let home = Home::with_maildir();
        home.deliver("new", "3000.c", b"3\n");
        home.deliver("cur", "1000.a:2,S", b"1\n");
        home.deliver("new", "2000.b", b"2\n");
        home.deliver("cur", "2000.b:2,S", b"2\n");
        home.deliver("new", ".hidden", b"h\n");
        home.deliver("cur", ".0000.dot:2,", b"h\n");
        fs::create_dir(home.maildir().join("cur/0000.subdir")).expect("mkdir");
        std::os::unix::fs::symlink(
            home.maildir().join("new/3000.c"),
            home.maildir().join("new/0001.link"),
        )
        .expect("symlink");
        home.deliver("tmp", "0002.in-delivery", b"t\n");
        let mb = home.open_ok();
        assert!(home.maildir().join(LOCK_FILE).is_file());
        assert_eq!(uidls(&*mb), ["1000.a", "2000.b", "3000.c"]);
    }

    #[test]
    fn missing_maildir_is_created_and_opens_empty() {
        let home = Home::new();
        let mb = home.open_ok();
        assert!(mb.messages().is_empty());
        for sub in ["", "new", "cur", "tmp"] {
            let meta = fs::metadata(home.maildir().join(sub)).expect("created");
            assert!(meta.is_dir());
            assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{sub}");
        }
    }

    #[test]
    fn unexpandable_template_is_permanent() {
        let store = MaildirStore::new("%h/Maildir").expect("template");
        let e = store.open(&Account::new("bob")).err().expect("no home");
        assert_eq!(e.kind(), StoreErrorKind::Permanent);
        assert!(MaildirStore::new("/var/mail/%q").is_err());
    }

    #[test]
    fn second_open_in_the_process_is_in_use() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.a", b"x\n");
        let first = home.open_ok();
        assert_eq!(open_kind(&home), Some(StoreErrorKind::InUse));
        drop(first);
        assert_eq!(home.open_ok().messages().len(), 1);
    }

    /// A process holding the mailbox lock with util-linux flock(1), killed when dropped.
    ///
    /// The shell opens the lock file on fd 9, `flock -n 9` locks it and exits, then the shell
    /// becomes `sleep`: one process holds the lock and no grandchild inherits it, so killing
    /// and reaping our child releases the lock for sure.
    struct OtherProcess(Child);

    impl OtherProcess {
        fn lock(path: &Path) -> OtherProcess {
            let child = Command::new("sh")
                .arg("-c")
                .arg(r#"exec 9>>"$1" && flock -n 9 && echo locked && exec sleep 10"#)
                .arg("sh")
                .arg(path)
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn sh");
            let mut holder = OtherProcess(child);
            let out = holder.0.stdout.take().expect("child stdout");
            let mut line = String::new();
            // Returns once the lock is held, or at EOF if flock failed.
            BufReader::new(out)
                .read_line(&mut line)
                .expect("read child");
            assert_eq!(line, "locked\n", "flock(1) did not get the lock");
            holder
        }

        fn kill(mut self) {
            self.0.kill().expect("kill lock holder");
            self.0.wait().expect("reap lock holder");
        }
    }

    impl Drop for OtherProcess {
        fn drop(&mut self) {
            // Already reaped if kill() ran; otherwise (a failed assertion) don't leave it behind.
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn lock_held_by_another_process_is_in_use_until_it_dies() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.a", b"x\n");
        let other = OtherProcess::lock(&home.maildir().join(LOCK_FILE));
        assert_eq!(open_kind(&home), Some(StoreErrorKind::InUse));
        other.kill();
        assert_eq!(home.open_ok().messages().len(), 1);
    }

    #[test]
    fn read_follows_a_message_moved_to_cur() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.a", b"first\n");
        home.deliver("new", "2000.b", b"second\n");
        let mut mb = home.open_ok();
        let maildir = home.maildir();
        fs::rename(maildir.join("new/1000.a"), maildir.join("cur/1000.a:2,S")).expect("mv");
        fs::rename(maildir.join("new/2000.b"), maildir.join("cur/2000.b:2,")).expect("mv");
        fs::rename(
            maildir.join("cur/2000.b:2,"),
            maildir.join("cur/2000.b:2,RS"),
        )
        .expect("mv");
        assert_eq!(read_all(&mut *mb, 0), b"first\n");
        assert_eq!(read_all(&mut *mb, 1), b"second\n");
        // Messages are never rewritten or renamed by reading.
        assert!(maildir.join("cur/1000.a:2,S").is_file());
    }

    #[test]
    fn read_of_a_message_removed_by_another_program_is_temporary() {
        let home = Home::with_maildir();
        let path = home.deliver("new", "1000.a", b"x\n");
        let mut mb = home.open_ok();
        fs::remove_file(path).expect("rm");
        let e = mb.read(0).err().expect("gone");
        assert_eq!(e.kind(), StoreErrorKind::Temporary);
    }

    #[test]
    fn delete_follows_a_moved_message() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.a", b"x\n");
        let mut mb = home.open_ok();
        let maildir = home.maildir();
        fs::rename(maildir.join("new/1000.a"), maildir.join("cur/1000.a:2,S")).expect("mv");
        mb.delete(&[0]).expect("delete");
        drop(mb);
        assert!(home.open_ok().messages().is_empty());
    }

    #[test]
    fn delete_removes_every_copy_of_a_duplicate() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.a", b"x\n");
        home.deliver("cur", "1000.a:2,S", b"x\n");
        let mut mb = home.open_ok();
        assert_eq!(mb.messages().len(), 1);
        mb.delete(&[0]).expect("delete");
        drop(mb);
        assert!(home.open_ok().messages().is_empty());
    }

    #[test]
    fn delete_of_an_already_removed_message_is_ok() {
        let home = Home::with_maildir();
        let path = home.deliver("new", "1000.a", b"x\n");
        let mut mb = home.open_ok();
        fs::remove_file(path).expect("rm");
        mb.delete(&[0]).expect("already gone counts as deleted");
    }

    #[test]
    fn delete_removes_exactly_the_given_messages() {
        let home = Home::with_maildir();
        let contents: [&[u8]; 4] = [b"zero\n", b"one\r\n", b"two", b".three\n\n"];
        let mut paths = Vec::new();
        for (i, content) in contents.iter().enumerate() {
            paths.push(home.deliver("new", format!("100{i}.m"), content));
        }
        let mut mb = home.open_ok();
        mb.delete(&[3, 1, 3]).expect("delete");
        drop(mb);
        for (i, path) in paths.iter().enumerate() {
            if i % 2 == 1 {
                assert!(!path.exists(), "{i} should be deleted");
            } else {
                assert_eq!(fs::read(path).expect("kept"), contents[i], "{i}");
            }
        }
        assert_eq!(uidls(&*home.open_ok()), ["1000.m", "1002.m"]);
    }

    #[test]
    fn index_out_of_range_is_temporary_and_deletes_nothing() {
        let home = Home::with_maildir();
        let path = home.deliver("new", "1000.a", b"x\n");
        let mut mb = home.open_ok();
        let e = mb.read(1).err().expect("out of range");
        assert_eq!(e.kind(), StoreErrorKind::Temporary);
        let e = mb.delete(&[0, 1]).expect_err("out of range");
        assert_eq!(e.kind(), StoreErrorKind::Temporary);
        assert!(path.exists());
    }

    #[test]
    fn delete_failure_is_reported_and_leaves_the_message() {
        let home = Home::with_maildir();
        let kept = home.deliver("new", "1000.a", b"x\n");
        home.deliver("new", "2000.b", b"y\n");
        let mut mb = home.open_ok();
        // A directory where the file was: unlink fails with EISDIR, which is not "gone".
        fs::remove_file(&kept).expect("rm");
        fs::create_dir(&kept).expect("mkdir");
        let e = mb.delete(&[0, 1]).expect_err("one delete fails");
        assert_eq!(e.kind(), StoreErrorKind::Temporary);
        assert!(e.detail().contains("1 of 2"), "{}", e.detail());
        assert!(kept.is_dir());
        assert!(!home.maildir().join("new/2000.b").exists());
    }

    #[test]
    fn mail_delivered_after_open_waits_for_the_next_session() {
        let home = Home::with_maildir();
        home.deliver("new", "1000.a", b"a\n");
        home.deliver("cur", "2000.b:2,S", b"b\n");
        let mut mb = home.open_ok();
        let late = home.deliver("new", "3000.late", b"late\n");
        assert_eq!(uidls(&*mb), ["1000.a", "2000.b"]);
        mb.delete(&[0, 1]).expect("delete");
        drop(mb);
        assert_eq!(fs::read(&late).expect("late mail kept"), b"late\n");
        assert_eq!(uidls(&*home.open_ok()), ["3000.late"]);
    }

    #[test]
    fn size_hint_parsing() {
        let hint = |s: &str| size_hint(OsStr::new(s));
        assert_eq!(hint("1.M1.host,S=10,W=12"), Some(12));
        assert_eq!(hint("1.M1.host,W=12,S=10"), Some(12));
        assert_eq!(hint("1.M1.host,S=10"), None);
        assert_eq!(hint("W=12.M1.host"), None);
        assert_eq!(hint("1.M1.host,W="), None);
        assert_eq!(hint("1.M1.host,W=1x"), None);
        assert_eq!(hint("1.M1.host,W=99999999999999999999999"), None);
    }
}
