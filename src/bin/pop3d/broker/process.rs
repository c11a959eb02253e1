//! The process plumbing of the broker and its children: forking, names, descriptors, signals.

use std::io;
use std::os::fd::RawFd;

/// Forks; `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// Only called from a process with one thread (the front before it starts any, the broker
/// always), so the child may allocate and lock as usual.
pub fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the calling process has a single thread (see above), so no lock can be held by a
    // thread that does not exist in the child.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Ends this process at once, without running destructors or exit handlers that belong to
/// the process it was forked from.
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Names the process as `ps` and /proc show it (at most 15 bytes).
pub fn set_name(name: &std::ffi::CStr) {
    // SAFETY: a NUL-terminated string the kernel copies.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

/// Makes the kernel kill this process when its parent (the thread that forked it) ends, and
/// ends it now if the parent `parent` already has.
pub fn die_with_parent(parent: libc::pid_t) {
    // SAFETY: plain integer arguments; getppid cannot fail.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
}

/// Sets how `signals` are handled: `ignore` or the default action.
pub fn set_signals(signals: &[libc::c_int], ignore: bool) {
    let action = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    for &sig in signals {
        // SAFETY: SIG_IGN and SIG_DFL are valid dispositions for these signals.
        unsafe { libc::signal(sig, action) };
    }
}

/// Unblocks every signal (the broker forks before the front blocks its stop signals, but a
/// host may have started pop3d with some blocked).
pub fn unblock_signals() {
    // SAFETY: sigemptyset initialises the set before it is used.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if they were not), so that no
/// socket of ours ever lands on them and is taken for standard input or output.
pub fn ensure_standard_fds() -> io::Result<()> {
    loop {
        let fd = open_dev_null()?;
        if fd > 2 {
            // SAFETY: fd was just opened here and is owned by no one else.
            unsafe { libc::close(fd) };
            return Ok(());
        }
    }
}

/// Points descriptors 0 and 1, and 2 too if `stderr`, at /dev/null, then closes every
/// descriptor from 3 up except `keep`.
pub fn close_all_but(keep: RawFd, stderr: bool) -> io::Result<()> {
    let null = open_dev_null()?;
    let last = if stderr { 2 } else { 1 };
    for fd in 0..=last {
        // SAFETY: dup2 of an open descriptor onto a standard one.
        if unsafe { libc::dup2(null, fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: close_range closes descriptors by number; nothing of ours uses them afterwards
    // (the caller reopens what it needs, and `keep` is spared).
    unsafe {
        if keep > 3 {
            libc::close_range(3, keep as u32 - 1, 0);
        }
        libc::close_range(keep.max(2) as u32 + 1, u32::MAX, 0);
    }
    Ok(())
}

fn open_dev_null() -> io::Result<RawFd> {
    // SAFETY: a NUL-terminated path; the descriptor returned is ours.
    match unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } {
        -1 => Err(io::Error::last_os_error()),
        fd => Ok(fd),
    }
}
