//! The one-session-per-mailbox lock: `flock(2)` on the mailbox directory or a lock file, plus
//! an in-process registry.
//!
//! `flock` is never stale: the kernel drops it when the last descriptor closes, so a crashed
//! process cannot leave a mailbox locked (no PIDs to check, no dotlocks to expire). Locally it
//! also separates threads, since it belongs to the open file description. On NFS, though, Linux
//! emulates `flock` of a file with `fcntl` locks, which belong to the *process*: two threads
//! would both get the lock, and closing *any* descriptor of the file drops all of the process's
//! locks on it. So a registry of the lock files and mailboxes this process holds is checked
//! first, and a lock file it holds is never opened a second time.
//!
//! The registry's mutex is never held across a file system call: a lock file on a hung NFS
//! mount stalls the logins to that mailbox, not every login in the process.
//!
//! # Which lock guards a mailbox
//!
//! A lock file can be unlinked or replaced by whoever can write in its directory (for a
//! Maildir, its owner), and a lock on a file nobody else will find excludes nobody. So a lock
//! file is locked only once its name is seen to still name the file locked, and a mailbox lock
//! guards the mailbox directory itself: the registry holds its identity, and the descriptor the
//! session keeps open for the mailbox anyway is `flock`ed. A second session is then refused
//! whatever became of the first one's lock file. What else is held depends on how far that
//! directory lock reaches:
//!
//! - On a local file system that pop3d knows (ext2/3/4, XFS, Btrfs, tmpfs, ZFS, F2FS,
//!   bcachefs: the list in `local.rs`), a `flock` is seen by every process of the machine, and no
//!   other machine can mount the file system. The directory lock alone guards the mailbox, and
//!   the session holds one descriptor for it. The lock file is still created and locked for
//!   a moment at every login, then closed: a login is refused while an older pop3d that locks
//!   only the file holds the mailbox, and such a pop3d, which leaves the file in place, finds
//!   it as before. Every pop3d since the directory lock took it first, so two of them, of any
//!   of those versions, exclude each other; one that locks only the file and logs in *after*
//!   us is not refused, so such a version must not serve the same mailboxes at the same time.
//! - Anywhere else, and above all on NFS, the lock file is held for the whole session too: two
//!   descriptors. Linux's NFS client has no `flock` of its own for directories, so there it
//!   locks the directory on this machine alone, while the lock file's `flock` becomes an NFS
//!   byte-range lock that other machines see. Deciding by the answer of `flock` would be
//!   wrong: on NFS it succeeds. An unknown file system gets the safe answer.
//!
//! Every pop3d serving one mailbox must reach it the same way: a pop3d on the NFS server itself
//! takes a local `flock`, which on Linux does not meet the byte-range locks its NFS clients
//! take through the lock manager, whatever the file.

use super::dir::Dir;
use super::{StoreError, StoreErrorKind};
pub(crate) use local::guards_alone;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Identity of a lock file or mailbox: (device, inode). Two paths to one file give one identity.
type FileId = (u64, u64);

/// How many times a lock file that was unlinked or replaced while we locked it is tried
/// again. Once is usual (a delivery agent's cleanup); more in a row is someone at work on it.
const LOCK_ATTEMPTS: usize = 3;

mod local;

/// The lock files of this process: those it holds, and those it is opening and locking.
struct Registry {
    /// Lock file paths being opened and locked: a second attempt on one is refused before it
    /// touches the file system, which may be the part that hangs.
    opening: BTreeSet<PathBuf>,
    /// Lock files and mailbox directories held, or being locked once their identity is known.
    files: BTreeSet<FileId>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    opening: BTreeSet::new(),
    files: BTreeSet::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // The sets are only changed by single insert/remove calls, so they are whole even after a
    // panic.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A lock this thread is taking, marked in the [`Registry`] so that other threads are refused
/// meanwhile; the marks go when it is dropped.
struct Claim<'a> {
    path: &'a Path,
    /// The identities claimed: the mailbox's, and the lock file's before it was opened and
    /// after (the same, unless the path was swapped in between).
    ids: Vec<FileId>,
}

impl<'a> Claim<'a> {
    /// Marks `path` as being opened; `None` if it already is.
    fn new(path: &'a Path) -> Option<Claim<'a>> {
        registry()
            .opening
            .insert(path.to_path_buf())
            .then(|| Claim {
                path,
                ids: Vec::new(),
            })
    }

    /// Claims `id` too; false if this process holds or is locking it already.
    fn add(&mut self, id: FileId) -> bool {
        if self.ids.contains(&id) {
            return true;
        }
        if !registry().files.insert(id) {
            return false;
        }
        self.ids.push(id);
        true
    }

    /// Hands `kept` over to the lock just taken; the other marks go with the claim.
    fn keep(mut self, kept: &[FileId]) {
        self.ids.retain(|id| !kept.contains(id));
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut registry = registry();
        registry.opening.remove(self.path);
        for id in &self.ids {
            registry.files.remove(id);
        }
    }
}

/// An exclusive, non-blocking lock on a mailbox, held until dropped.
///
/// It excludes other threads of this process and other processes alike, and vanishes with the
/// process that holds it.
#[derive(Debug)]
pub struct MailboxLock {
    /// The lock file, held until dropped; an `Option` so that `Drop` can close it before the
    /// registry entries go. `None` for a mailbox whose directory lock [guards
    /// alone](guards_alone).
    file: Option<File>,
    /// The identities in the registry: the mailbox directory's and the lock file's, each if
    /// held.
    ids: Vec<FileId>,
}

/// A locked mailbox directory: what a session keeps open for its mailbox.
#[derive(Debug)]
pub(crate) struct LockedDir {
    /// The directory, `flock`ed where its file system allows. Declared first, so closed first:
    /// the `flock` goes before the registry entries of `_lock` do.
    dir: Dir,
    /// Held for its `Drop`: the lock file, if any, and the registry entries.
    _lock: MailboxLock,
}

impl LockedDir {
    /// The mailbox directory.
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The lock; its file is held only where the directory lock does not [guard
    /// alone](guards_alone).
    #[cfg(test)]
    pub(crate) fn lock(&self) -> &MailboxLock {
        &self._lock
    }
}

/// The mailbox directory a lock guards, and whether its `flock` alone may guard it.
struct Guard<'a> {
    dir: &'a Dir,
    alone: bool,
}

impl MailboxLock {
    /// Takes the lock on the lock file `path`, creating it (mode 0600) if needed.
    ///
    /// Never waits for another session: if one holds the lock, fails at once with
    /// [`StoreErrorKind::InUse`]. Other failures are classed as for any I/O error (see
    /// [`StoreError::io`]): a lock file that may not be opened is permanent, a full disk
    /// temporary. The last component of `path` may not be a symlink. (Sessions lock their
    /// mailbox through [`LockedDir`]; this serves the tests.)
    #[cfg(test)]
    pub fn acquire(path: &Path) -> Result<MailboxLock, StoreError> {
        let failed = |e: io::Error| StoreError::io(format!("lock {}", path.display()), e);
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        let dir = Dir::open_following(parent).map_err(failed)?;
        Self::acquire_in(&dir, name, path, None, open_lock_file)
    }

    /// Locks the mailbox whose directory is `root`, with its lock file `name` (shown as
    /// `path`), as the [module documentation](self) says: the directory itself in the registry
    /// and, where the file system allows, with a `flock` of `root`, so that a second session is
    /// refused even if the lock file is unlinked or replaced while the first one holds it; the
    /// lock file too unless that `flock` [guards alone](guards_alone).
    pub(crate) fn acquire_mailbox(
        root: Dir,
        name: &OsStr,
        path: &Path,
    ) -> Result<LockedDir, StoreError> {
        let guard = Guard {
            dir: &root,
            alone: guards_alone(&root, path),
        };
        let lock = Self::acquire_in(&root, name, path, Some(guard), open_lock_file)?;
        Ok(LockedDir {
            dir: root,
            _lock: lock,
        })
    }

    /// Takes the lock file `name` in `dir` (shown as `path`), opening it with `open`: the
    /// tests hold an open in progress with it. With `guard`, the mailbox directory is locked
    /// too, and the lock file is only locked for a moment if the directory lock guards alone.
    fn acquire_in(
        dir: &Dir,
        name: &OsStr,
        path: &Path,
        guard: Option<Guard>,
        mut open: impl FnMut(&Dir, &OsStr) -> io::Result<File>,
    ) -> Result<MailboxLock, StoreError> {
        let failed = |e: io::Error| StoreError::io(format!("lock {}", path.display()), e);
        let in_use = || {
            StoreError::new(
                StoreErrorKind::InUse,
                format!("lock {}: held by another session", path.display()),
            )
        };

        // Made before `file`, so dropped after it: on a failure our descriptor is closed while
        // other threads are still kept off the file (on NFS our close would drop their lock).
        let mut claim = Claim::new(path).ok_or_else(in_use)?;
        let mut kept = Vec::new();
        // Made after `claim`, so dropped before it: a failure unlocks the directory before
        // other threads may try it.
        let mut dir_lock = None;
        let mut alone = false;
        if let Some(guard) = guard {
            let id = guard.dir.stat_self().map_err(failed)?.id();
            if !claim.add(id) {
                return Err(in_use());
            }
            kept.push(id);
            dir_lock = lock_dir(guard.dir, path)?;
            alone = dir_lock.is_some() && guard.alone;
        }
        for _ in 0..LOCK_ATTEMPTS {
            // Look before opening: opening and closing a file this process has locked (by
            // another path) would drop the lock on NFS.
            match dir.stat(name) {
                Ok(st) if !claim.add(st.id()) => return Err(in_use()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(failed(e)),
            }
            let file = open(dir, name).map_err(failed)?;
            let meta = file.metadata().map_err(failed)?;
            let id = (meta.dev(), meta.ino());
            if !claim.add(id) {
                // The path was swapped for a lock file we hold between the two looks.
                return Err(in_use());
            }
            if !flock(&file).map_err(failed)? {
                return Err(in_use());
            }
            // The name may have been unlinked or replaced while we locked: a lock on a file
            // nobody else will find excludes nobody. Then start again with what is there now.
            match dir.stat(name) {
                Ok(st) if st.id() == id => {
                    // No other session holds the file. Where the directory lock guards alone,
                    // that is all we wanted to know: closed at once, before its mark goes.
                    let file = if alone {
                        drop(file);
                        None
                    } else {
                        kept.push(id);
                        Some(file)
                    };
                    if let Some(held) = dir_lock.take() {
                        held.keep();
                    }
                    claim.keep(&kept);
                    return Ok(MailboxLock { file, ids: kept });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(failed(e)),
            }
            log::info!(
                "lock {}: the lock file changed while it was being locked; trying again",
                path.display()
            );
        }
        Err(StoreError::new(
            StoreErrorKind::Temporary,
            format!(
                "lock {}: the lock file changed {LOCK_ATTEMPTS} times while it was being \
                 locked",
                path.display()
            ),
        ))
    }
}

/// A `flock` of a mailbox directory being taken: released when dropped, unless kept.
struct DirLock<'a>(Option<&'a Dir>);

impl DirLock<'_> {
    /// Leaves the directory locked: the `flock` goes when its descriptor is closed.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for DirLock<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            if let Err(e) = dir.unlock() {
                log::warn!("unlocking a mailbox directory: {e}");
            }
        }
    }
}

/// `flock`s the mailbox directory `root` through its own descriptor, which the session keeps.
/// `None` where the file system refuses; the lock file then guards alone.
fn lock_dir<'a>(root: &'a Dir, path: &Path) -> Result<Option<DirLock<'a>>, StoreError> {
    match root.try_lock() {
        Ok(true) => Ok(Some(DirLock(Some(root)))),
        Ok(false) => Err(StoreError::new(
            StoreErrorKind::InUse,
            format!("lock {}: mailbox held by another session", path.display()),
        )),
        Err(e) => {
            log::debug!(
                "{}: directory not locked ({e}); the lock file guards alone",
                path.display()
            );
            Ok(None)
        }
    }
}

/// Takes an exclusive `flock` on `file` without waiting; false if another session holds it.
fn flock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock only reads the descriptor number, which `file` keeps open.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Opens (creating) the lock file `name` in `dir`.
fn open_lock_file(dir: &Dir, name: &OsStr) -> io::Result<File> {
    // Read-write: NFS's emulation of an exclusive flock needs a descriptor open for writing.
    // The directory's open_file never follows a symlink: one planted in the mailbox must not
    // make us create files elsewhere.
    dir.open_file(name, libc::O_RDWR | libc::O_CREAT, 0o600)
}

impl Drop for MailboxLock {
    fn drop(&mut self) {
        // Close (which releases the flock) before the entries go: until then other threads
        // are refused, rather than opening a file we still have open. Not under the mutex, as
        // a close on NFS may wait for the server.
        drop(self.file.take());
        let mut registry = registry();
        for id in &self.ids {
            registry.files.remove(id);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
