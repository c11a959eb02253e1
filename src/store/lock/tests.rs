//! The lock against real files, threads and other processes.

use super::*;
use crate::test_dir::TestDir;
use std::fs;
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

/// [`MailboxLock::acquire`], opening the lock file with `open`.
fn acquire_opening_with(
    path: &Path,
    open: impl FnMut(&Dir, &OsStr) -> io::Result<File>,
) -> Result<MailboxLock, StoreError> {
    let dir = Dir::open_following(path.parent().unwrap()).unwrap();
    MailboxLock::acquire_in(&dir, path.file_name().unwrap(), path, None, open)
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
    let ids = lock.ids.clone();
    assert_eq!(ids.len(), 1);
    assert!(registry().files.contains(&ids[0]));
    drop(lock);
    assert!(!registry().files.contains(&ids[0]));
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
        acquire_opening_with(&path, |dir, name| {
            started.send(()).expect("report start");
            wait_for_go.recv().expect("wait");
            open_lock_file(dir, name)
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
    let e = acquire_opening_with(&t.path, |_, _| {
        Err(io::Error::from(io::ErrorKind::StorageFull))
    })
    .expect_err("open fails");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
    assert!(!registry().opening.contains(&t.path));
    MailboxLock::acquire(&t.path).expect("free after a failed open");
}

#[test]
fn a_mailbox_stays_locked_when_its_lock_file_is_deleted_or_replaced() {
    let t = TempLock::new();
    let root_path = t.path.parent().unwrap();
    let name = OsStr::new("pop3d.lock");
    let root = Dir::open(root_path).unwrap();
    let lock = MailboxLock::acquire_mailbox(&root, name, &t.path).expect("lock");
    assert_eq!(lock.ids.len(), 2, "the file and the directory");
    // Another process cannot lock the directory, whatever becomes of the file.
    fs::remove_file(&t.path).unwrap();
    assert!(!free_for_other_process(root_path));
    let again = |path: &Path| {
        let root = Dir::open(root_path).unwrap();
        kind(MailboxLock::acquire_mailbox(&root, name, path))
    };
    assert_eq!(again(&t.path), Some(StoreErrorKind::InUse));
    fs::write(&t.path, b"").unwrap();
    assert_eq!(again(&t.path), Some(StoreErrorKind::InUse));
    // By another path to the same directory, too.
    let other_path = root_path.join(".").join("pop3d.lock");
    assert_eq!(again(&other_path), Some(StoreErrorKind::InUse));
    drop(lock);
    assert!(free_for_other_process(root_path));
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while again(&t.path).is_some() {
        assert!(std::time::Instant::now() < deadline, "lock not released");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_lock_file_replaced_while_it_is_locked_is_locked_again() {
    let t = TempLock::new();
    let replaced = std::cell::Cell::new(false);
    let lock = acquire_opening_with(&t.path, |dir, name| {
        let file = open_lock_file(dir, name)?;
        if !replaced.replace(true) {
            // Swapped after our open: the lock we are about to take would guard nothing.
            fs::remove_file(&t.path)?;
            fs::write(&t.path, b"")?;
        }
        Ok(file)
    })
    .expect("lock");
    let meta = fs::metadata(&t.path).unwrap();
    assert_eq!(lock.ids, [(meta.dev(), meta.ino())]);
    assert!(!free_for_other_process(&t.path));
}
