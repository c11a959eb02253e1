//! The right to create files in `/var/mail`: the `mail` group, taken only when needed.
//!
//! Debian's `/var/mail` is `root:mail`, mode 2775: a user may read and write their own spool
//! but not create the dot-lock `USER.lock` beside it. Debian's own tools get that right from the
//! `mail` group (`dotlockfile` is set-group-id `mail`; Dovecot has `mail_privileged_group`).
//! pop3d does the same with the group it keeps as its *saved* group id: a process started with
//! `mail` as its saved gid (the session process the privilege broker starts) switches its
//! effective gid to it just around creating and removing the dot-lock and the UPDATE journal,
//! and back at once.
//!
//! The effective gid belongs to the whole process (glibc changes it in every thread), so this
//! is meant for a single-threaded process; in a process whose saved and effective gids are the
//! same (any other), it does nothing.

use std::io;

/// Runs `op`; if it fails with `EACCES` and the saved gid differs from the effective one, runs
/// it again with the saved gid as the effective gid, then switches back.
pub(super) fn with_mail_group<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let first = op();
    match &first {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
        _ => return first,
    }
    let (mut real, mut effective, mut saved) = (0, 0, 0);
    // SAFETY: the three pointers are to writable gid_t values.
    if unsafe { libc::getresgid(&mut real, &mut effective, &mut saved) } != 0 || saved == effective
    {
        return first;
    }
    let keep = libc::gid_t::MAX; // -1: leave that id as it is
                                 // SAFETY: setresgid only reads its arguments.
    if unsafe { libc::setresgid(keep, saved, keep) } != 0 {
        return first;
    }
    let again = op();
    // SAFETY: as above; switching back to the effective gid we started with, which is the real
    // gid in the processes this is meant for.
    if unsafe { libc::setresgid(keep, effective, keep) } != 0 {
        log::error!(
            "could not switch the effective gid back to {effective}: {}",
            io::Error::last_os_error()
        );
    }
    again
}
