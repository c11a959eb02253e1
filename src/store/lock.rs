//! The one-session-per-mailbox lock: `flock(2)` on a lock file, plus an in-process registry.
//!
//! `flock` is never stale: the kernel drops it when the last descriptor closes, so a crashed
//! process cannot leave a mailbox locked (no PIDs to check, no dotlocks to expire). Locally it
//! also separates threads, since it belongs to the open file description. On NFS, though, Linux
//! emulates `flock` with `fcntl` locks, which belong to the *process*: two threads would both
//! get the lock, and closing *any* descriptor of the file drops all of the process's locks on
//! it. So a registry of the lock files this process holds is checked first, and a file it
//! holds is never opened a second time.
//!
//! The registry's mutex is never held across a file system call: a lock file on a hung NFS
//! mount stalls the logins to that mailbox, not every login in the process.

use super::{StoreError, StoreErrorKind};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Identity of a lock file: (device, inode). Two paths to one file give one identity.
type FileId = (u64, u64);

/// The lock files of this process: those it holds, and those it is opening and locking.
struct Registry {
    /// Lock file paths being opened and locked: a second attempt on one is refused before it
    /// touches the file system, which may be the part that hangs.
    opening: BTreeSet<PathBuf>,
    /// Lock files held, or being locked once their identity is known.
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

/// A lock file this thread is opening and locking, marked in the [`Registry`] so that other
/// threads are refused meanwhile; the marks go when it is dropped.
struct Claim<'a> {
    path: &'a Path,
    /// The identities claimed: the file's before it was opened and after (the same, unless
    /// the path was swapped in between).
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

    /// Claims the lock file `id` too; false if this process holds or is locking it already.
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

    /// Hands `id` over to the lock just taken; the other marks go with the claim.
    fn keep(mut self, id: FileId) {
        self.ids.retain(|&other| other != id);
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
    /// Always `Some` until dropped; an `Option` so that `Drop` can close it before the registry
    /// entry goes.
    file: Option<File>,
    id: FileId,
    path: PathBuf,
}

impl MailboxLock {
    /// Takes the lock on the lock file `path`, creating it (mode 0600) if needed.
    ///
    /// Never waits for another session: if one holds the lock, fails at once with
    /// [`StoreErrorKind::InUse`]. Other failures are classed as for any I/O error (see
    /// [`StoreError::io`]): a lock file that may not be opened is permanent, a full disk
    /// temporary.
    pub fn acquire(path: &Path) -> Result<MailboxLock, StoreError> {
        Self::acquire_opening_with(path, open_lock_file)
    }

    /// [`acquire`](Self::acquire), opening the lock file with `open`: the tests hold an open in
    /// progress with it.
    fn acquire_opening_with(
        path: &Path,
        open: impl FnOnce(&Path) -> io::Result<File>,
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
        // Look before opening: opening and closing a file this process has locked (by another
        // path) would drop the lock on NFS.
        match fs::symlink_metadata(path) {
            Ok(m) if !claim.add((m.dev(), m.ino())) => return Err(in_use()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        let file = open(path).map_err(failed)?;
        let meta = file.metadata().map_err(failed)?;
        let id = (meta.dev(), meta.ino());
        if !claim.add(id) {
            // The path was swapped for a lock file we hold between the two looks.
            return Err(in_use());
        }
        loop {
            // SAFETY: flock only reads the descriptor number, which `file` keeps open.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Err(in_use()),
                _ => return Err(failed(e)),
            }
        }
        claim.keep(id);
        Ok(MailboxLock {
            file: Some(file),
            id,
            path: path.to_path_buf(),
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens (creating) the lock file at `path`.
fn open_lock_file(path: &Path) -> io::Result<File> {
    // Read-write: NFS's emulation of an exclusive flock needs a descriptor open for writing.
    // O_NOFOLLOW: a symlink planted in the mailbox must not make us create files elsewhere.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

impl Drop for MailboxLock {
    fn drop(&mut self) {
        // Close (which releases the flock) before the entry goes: until then other threads are
        // refused, rather than opening a file we still have open. Not under the mutex, as a
        // close on NFS may wait for the server.
        drop(self.file.take());
        registry().files.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::process::Command;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A lock file path in a fresh directory, removed with it when dropped.
    struct TempLock {
        _dir: TestDir,
        path: PathBuf,
    }

    impl TempLock {
        fn new() -> TempLock {
            let dir = TestDir::new("lock");
            let path = dir.path().join("pop3d.lock");
            TempLock { _dir: dir, path }
        }
    }

    /// True if another process (util-linux `flock -n`) can take the lock right now.
    fn free_for_other_process(path: &Path) -> bool {
        let status = Command::new("flock")
            .arg("-n")
            .arg(path)
            .arg("true")
            .status()
            .expect("run flock(1)");
        status.success()
    }

    /// Acquires a lock just released. Other tests in this process spawn children; a fork
    /// shares our open lock file until the child's exec closes it, so the lock can outlive
    /// our drop by a moment. The server itself never forks.
    pub(crate) fn acquire_after_release(path: &Path) -> MailboxLock {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match MailboxLock::acquire(path) {
                Ok(lock) => return lock,
                Err(e) if e.kind() == StoreErrorKind::InUse => {
                    assert!(std::time::Instant::now() < deadline, "lock not released");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn kind(r: Result<MailboxLock, StoreError>) -> Option<StoreErrorKind> {
        r.err().map(|e| e.kind())
    }

    #[test]
    fn second_acquire_in_the_process_is_in_use_until_dropped() {
        let t = TempLock::new();
        let first = MailboxLock::acquire(&t.path).expect("first lock");
        assert_eq!(
            kind(MailboxLock::acquire(&t.path)),
            Some(StoreErrorKind::InUse)
        );
        // Another thread is refused as well (the registry, not only flock, says so).
        let path = t.path.clone();
        let other = std::thread::spawn(move || kind(MailboxLock::acquire(&path)));
        assert_eq!(other.join().expect("thread"), Some(StoreErrorKind::InUse));
        drop(first);
        acquire_after_release(&t.path);
    }

    #[test]
    fn registry_holds_the_file_while_locked() {
        // On a local file system flock alone already excludes threads; this checks the part
        // that matters on NFS, where it does not.
        let t = TempLock::new();
        let lock = MailboxLock::acquire(&t.path).expect("lock");
        let id = lock.id;
        assert!(registry().files.contains(&id));
        drop(lock);
        assert!(!registry().files.contains(&id));
    }

    #[test]
    fn lock_is_seen_by_other_processes_and_released_on_drop() {
        let t = TempLock::new();
        let lock = MailboxLock::acquire(&t.path).expect("lock");
        assert_eq!(lock.path(), t.path.as_path());
        assert!(!free_for_other_process(&t.path));
        // A refused second attempt must not release the lock we hold.
        assert!(MailboxLock::acquire(&t.path).is_err());
        assert!(!free_for_other_process(&t.path));
        drop(lock);
        assert!(free_for_other_process(&t.path));
    }

    #[test]
    fn lock_file_is_private() {
        let t = TempLock::new();
        let _lock = MailboxLock::acquire(&t.path).expect("lock");
        let mode = fs::metadata(&t.path).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn symlinked_lock_file_is_refused() {
        let t = TempLock::new();
        let target = TempLock::new();
        std::os::unix::fs::symlink(&target.path, &t.path).expect("symlink");
        let e = MailboxLock::acquire(&t.path).expect_err("symlink must not be followed");
        assert_eq!(e.kind(), StoreErrorKind::Temporary);
        assert!(!target.path.exists());
    }

    #[test]
    fn a_hung_open_holds_up_only_its_own_mailbox() {
        let slow = TempLock::new();
        let other = TempLock::new();
        let (started, has_started) = mpsc::channel();
        let (go, wait_for_go) = mpsc::channel::<()>();
        let path = slow.path.clone();
        // An open that hangs, as on a dead NFS server, until told to go on.
        let hung = std::thread::spawn(move || {
            MailboxLock::acquire_opening_with(&path, |p| {
                started.send(()).expect("report start");
                wait_for_go.recv().expect("wait");
                open_lock_file(p)
            })
        });
        has_started.recv().expect("open started");

        // Another mailbox locks meanwhile. In a thread, so that a regression fails the test
        // instead of hanging it.
        let (done, result) = mpsc::channel();
        let other_path = other.path.clone();
        std::thread::spawn(move || {
            let r = MailboxLock::acquire(&other_path).map_err(|e| e.kind());
            let _ = done.send(r.map(drop));
        });
        assert_eq!(
            result.recv_timeout(Duration::from_secs(5)),
            Ok(Ok(())),
            "another mailbox waited for a hung open"
        );
        // A second session of the mailbox being opened is told at once.
        assert_eq!(
            kind(MailboxLock::acquire(&slow.path)),
            Some(StoreErrorKind::InUse)
        );

        go.send(()).expect("let the open go on");
        let lock = hung
            .join()
            .expect("thread")
            .expect("the hung open ends locked");
        assert_eq!(
            kind(MailboxLock::acquire(&slow.path)),
            Some(StoreErrorKind::InUse)
        );
        drop(lock);
        acquire_after_release(&slow.path);
    }

    #[test]
    fn a_failed_open_withdraws_its_mark() {
        let t = TempLock::new();
        let e = MailboxLock::acquire_opening_with(&t.path, |_| {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        })
        .expect_err("open fails");
        assert_eq!(e.kind(), StoreErrorKind::Temporary);
        assert!(!registry().opening.contains(&t.path));
        MailboxLock::acquire(&t.path).expect("free after a failed open");
    }
}
