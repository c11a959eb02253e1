//! The lock against real files, threads and other processes.

use super::*;
use crate::test_dir::TestDir;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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

/// A process holding the mailbox lock with util-linux flock(1), killed when dropped.
///
/// The shell opens the lock file on fd 9, `flock -n 9` locks it and exits, then the shell
/// becomes `sleep`: one process holds the lock and no grandchild inherits it, so killing
/// and reaping our child releases the lock for sure.
pub(crate) struct OtherProcess(Child);

impl OtherProcess {
    pub(crate) fn lock(path: &Path) -> OtherProcess {
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

    pub(crate) fn kill(mut self) {
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

/// [`MailboxLock::acquire`], opening the lock file with `open`.
fn acquire_opening_with(
    path: &Path,
    open: impl FnMut(&Dir, &OsStr) -> io::Result<File>,
) -> Result<MailboxLock, StoreError> {
    let dir = Dir::open_following(path.parent().unwrap()).unwrap();
    MailboxLock::acquire_in(&dir, path.file_name().unwrap(), path, None, open)
}

fn kind<T>(r: Result<T, StoreError>) -> Option<StoreErrorKind> {
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

/// Locks the mailbox directory `root_path` as a session does; `alone` says whether the
/// directory lock may guard it alone, as on a local file system, or not, as on NFS.
fn lock_mailbox(root_path: &Path, alone: bool) -> Result<LockedDir, StoreError> {
    let root = Dir::open(root_path).unwrap();
    let path = root_path.join("pop3d.lock");
    let guard = Guard { dir: &root, alone };
    let lock = MailboxLock::acquire_in(
        &root,
        OsStr::new("pop3d.lock"),
        &path,
        Some(guard),
        open_lock_file,
    )?;
    Ok(LockedDir {
        dir: root,
        _lock: lock,
    })
}

/// Waits for a mailbox just released to be free for a new session in this process.
fn relock_after_release(root_path: &Path, alone: bool) -> LockedDir {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match lock_mailbox(root_path, alone) {
            Ok(lock) => return lock,
            Err(e) if e.kind() == StoreErrorKind::InUse => {
                assert!(std::time::Instant::now() < deadline, "lock not released");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_mailbox_stays_locked_when_its_lock_file_is_deleted_or_replaced() {
    for alone in [true, false] {
        let t = TempLock::new();
        let root_path = t.path.parent().unwrap();
        let locked = lock_mailbox(root_path, alone).expect("lock");
        // The directory always; the lock file only where the directory lock is not enough.
        assert_eq!(locked.lock().ids.len(), if alone { 1 } else { 2 });
        assert_eq!(locked.lock().file.is_some(), !alone);
        assert_eq!(free_for_other_process(&t.path), alone);
        // Another process cannot lock the directory, whatever becomes of the file.
        fs::remove_file(&t.path).unwrap();
        assert!(!free_for_other_process(root_path));
        let again = |path: &Path| {
            let root = Dir::open(root_path).unwrap();
            kind(MailboxLock::acquire_mailbox(root, OsStr::new("pop3d.lock"), path).map(drop))
        };
        assert_eq!(again(&t.path), Some(StoreErrorKind::InUse));
        fs::write(&t.path, b"").unwrap();
        assert_eq!(again(&t.path), Some(StoreErrorKind::InUse));
        // By another path to the same directory, too.
        let other_path = root_path.join(".").join("pop3d.lock");
        assert_eq!(again(&other_path), Some(StoreErrorKind::InUse));
        drop(locked);
        assert!(free_for_other_process(root_path));
        drop(relock_after_release(root_path, alone));
    }
}

#[test]
fn a_mailbox_whose_lock_file_another_process_holds_is_in_use() {
    // What an older pop3d that locks only the file does: refused even where the directory
    // lock guards alone, and the directory is left unlocked.
    let t = TempLock::new();
    let root_path = t.path.parent().unwrap();
    let holder = OtherProcess::lock(&t.path);
    for alone in [true, false] {
        assert_eq!(
            kind(lock_mailbox(root_path, alone).map(drop)),
            Some(StoreErrorKind::InUse)
        );
        assert!(
            free_for_other_process(root_path),
            "the directory was left locked"
        );
    }
    holder.kill();
    drop(relock_after_release(root_path, true));
}

#[test]
fn a_mailbox_lock_holds_one_descriptor_where_the_directory_lock_guards_alone() {
    // The descriptor the session has for the mailbox anyway is the one locked.
    let t = TempLock::new();
    let root_path = t.path.parent().unwrap();
    let root = Dir::open(root_path).unwrap();
    if !guards_alone(&root, root_path) {
        eprintln!("SKIPPED: the test directory is not on a local file system pop3d knows");
        return;
    }
    let locked = MailboxLock::acquire_mailbox(root, OsStr::new("pop3d.lock"), &t.path).unwrap();
    assert!(locked.lock().file.is_none());
    assert!(
        t.path.exists(),
        "the lock file is still made, for older versions to find"
    );
    assert!(free_for_other_process(&t.path));
    assert!(!free_for_other_process(root_path));
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
