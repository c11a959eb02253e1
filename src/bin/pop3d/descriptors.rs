//! Open-file limits: a standalone server needs two descriptors per session (the client's
//! socket and the mailbox), and many systems start a service with a soft limit of 1,024.

/// Descriptors beyond the sessions': listeners, logs, the passwd file being read, TLS files.
const SPARE: u64 = 64;

/// Raises the soft limit on open files to the hard limit (no privilege needed), and warns when
/// even that is too low for `sessions` sessions at once.
pub fn raise_for(sessions: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: a valid rlimit; raising the soft limit up to the hard one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let needed = 2 * sessions as u64 + SPARE;
    if limit.rlim_cur < needed {
        log::warn!(
            "--max-sessions {sessions} needs about {needed} open files, but the limit is {}: \
             raise it (LimitNOFILE= in a systemd unit, ulimit -n) or lower --max-sessions",
            limit.rlim_cur
        );
    }
}
