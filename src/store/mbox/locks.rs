//! The locks of an mbox spool.
//!
//! - The *session* lock: one POP3 session per mailbox. A `flock(2)` on the spool, held for the
//!   whole session, which no Debian MTA or mail reader takes by default (Postfix's
//!   `mailbox_delivery_lock` is `fcntl, dotlock`; Exim, procmail, mutt and Dovecot use `fcntl`
//!   and dot-locks too), so deliveries go on while a session is open. Threads of this process
//!   are kept apart by a registry checked before the spool is opened: opening and closing a
//!   second descriptor of a spool another thread has `fcntl`-locked would drop that lock.
//! - The *MTA* locks, held only while the snapshot is read and while UPDATE rewrites the spool:
//!   the [dot-lock](super::dotlock) and an `fcntl` write lock on the whole file (an open file
//!   description lock, `F_OFD_SETLK`, which conflicts with the POSIX locks MTAs take but
//!   belongs to our descriptor alone, not to every thread of the process).

use super::dotlock::DotLock;
use crate::store::dir::Dir;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Spools (device, inode) that a session of this process holds or is opening.
static HELD: Mutex<BTreeSet<(u64, u64)>> = Mutex::new(BTreeSet::new());

/// A spool's place in the registry, given back when dropped.
#[derive(Debug)]
pub(super) struct Claim((u64, u64));

impl Claim {
    /// Claims the spool `id`; `None` if a session of this process has it.
    pub(super) fn new(id: (u64, u64)) -> Option<Claim> {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        held.insert(id).then(|| Claim(id))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// Takes the session lock on `spool` without waiting: false if another session holds it.
pub(super) fn lock_session(spool: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock only reads the descriptor number, which `spool` keeps open.
        if unsafe { libc::flock(spool.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// The dot-lock and the `fcntl` lock of a spool, released when dropped.
#[derive(Debug)]
pub(super) struct MtaLocks<'a> {
    spool: &'a File,
    _dot: DotLock<'a>,
}

impl<'a> MtaLocks<'a> {
    /// Takes both locks, waiting up to `wait` for the programs that hold them; `Ok(None)` if
    /// they were not free in that time.
    pub(super) fn acquire(
        dir: &'a Dir,
        name: &OsStr,
        spool: &'a File,
        wait: Duration,
    ) -> io::Result<Option<MtaLocks<'a>>> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            let Some(dot) = DotLock::acquire(dir, name, deadline)? else {
                return Ok(None);
            };
            if fcntl(spool, libc::F_WRLCK)? {
                return Ok(Some(MtaLocks { spool, _dot: dot }));
            }
            // A writer that took the fcntl lock first: let it finish, holding nothing.
            drop(dot);
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

impl Drop for MtaLocks<'_> {
    fn drop(&mut self) {
        if let Err(e) = fcntl(self.spool, libc::F_UNLCK) {
            log::error!("releasing the fcntl lock of a spool: {e}");
        }
    }
}

/// Sets an open file description lock of `kind` on the whole of `file` without waiting: false
/// if another holds a conflicting lock.
fn fcntl(file: &File, kind: libc::c_int) -> io::Result<bool> {
    // SAFETY: an all-zero flock structure is valid; the fields that matter are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // to the end of the file, however far it grows
    loop {
        // SAFETY: `fl` is a valid flock structure for the whole call; the descriptor is open.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN | libc::EACCES) => return Ok(false),
            _ => return Err(e),
        }
    }
}
