//! The one-session-per-mailbox lock: `flock(2)` on a lock file, plus an in-process registry.
//!
//! `flock` is never stale: the kernel drops it when the last descriptor closes, so a crashed
//! process cannot leave a mailbox locked (no PIDs to check, no dotlocks to expire). Locally it
//! also separates threads, since it belongs to the open file description. On NFS, though, Linux
//! emulates `flock` with `fcntl` locks, which belong to the *process*: two threads would both
//! get the lock, and closing *any* descriptor of the file drops all of the process's locks on
//! it. So a registry of the lock files this process holds is checked first, and a file it
//! holds is never opened a second time.

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

/// The lock files held by this process. Its mutex is also held while a lock file is opened,
/// locked or closed, so no thread ever closes a descriptor of a file another thread holds.
static HELD: Mutex<BTreeSet<FileId>> = Mutex::new(BTreeSet::new());

fn held() -> MutexGuard<'static, BTreeSet<FileId>> {
    // The set is only changed by single insert/remove calls, so it is whole even after a panic.
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An exclusive, non-blocking lock on a mailbox, held until dropped.
///
/// It excludes other threads of this process and other processes alike, and vanishes with the
/// process that holds it.
#[derive(Debug)]
pub struct MailboxLock {
    /// Always `Some` until dropped; an `Option` so that `Drop` can close it under the registry
    /// mutex.
    file: Option<File>,
    id: FileId,
    path: PathBuf,
}

impl MailboxLock {
    /// Takes the lock on the lock file `path`, creating it (mode 0600) if needed.
    ///
    /// Never waits: if another session holds the lock, fails at once with
    /// [`StoreErrorKind::InUse`]. Other failures are classed as for any I/O error (see
    /// [`StoreError::io`]): a lock file that may not be opened is permanent, a full disk
    /// temporary.
    pub fn acquire(path: &Path) -> Result<MailboxLock, StoreError> {
        let failed = |e: io::Error| StoreError::io(format!("lock {}", path.display()), e);
        let in_use = || {
            StoreError::new(
                StoreErrorKind::InUse,
                format!("lock {}: held by another session", path.display()),
            )
        };

        let mut held = held();
        // Look before opening: opening and closing a file this process has locked would drop
        // the lock on NFS.
        match fs::symlink_metadata(path) {
            Ok(m) if held.contains(&(m.dev(), m.ino())) => return Err(in_use()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        // Read-write: NFS's emulation of an exclusive flock needs a descriptor open for writing.
        // O_NOFOLLOW: a symlink planted in the mailbox must not make us create files elsewhere.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(failed)?;
        let meta = file.metadata().map_err(failed)?;
        let id = (meta.dev(), meta.ino());
        if held.contains(&id) {
            // The path was swapped for a lock file we hold between the two calls above.
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
        held.insert(id);
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

impl Drop for MailboxLock {
    fn drop(&mut self) {
        let mut held = held();
        // Close (which releases the flock) before the entry goes, both under the mutex, so no
        // other thread opens the file while we still hold it.
        drop(self.file.take());
        held.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::process::Command;

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
        assert!(held().contains(&id));
        drop(lock);
        assert!(!held().contains(&id));
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
}
