//! The privileged broker: a process that stays root so that each session's mail is touched
//! only by a process running as that session's account.
//!
//! Started as root, pop3d forks the broker before it starts any thread or gives root up. The
//! original process (the front, same pid) then drops to `--user` and serves the protocol as
//! before. When a session needs a mailbox that belongs to another uid, the front makes a socket
//! pair and passes one end to the broker over a private control socket; the broker forks a
//! child for it and goes back to waiting. The child reads one request from its end: it opens
//! the mailbox after becoming the account for good (groups, gid, uid; never root, never below
//! `--first-uid`) and serves reads and deletions until the front closes the channel, or it
//! checks one login with an account source that needs root, and ends.
//!
//! The broker itself reads nothing but descriptors from the control socket, never the
//! protocol, and has every other descriptor closed.

mod channel;
mod child;
mod client;
mod fd_passing;
mod frame;
mod identity;
mod process;
mod remote_mailbox;
mod setup;
mod switching;
#[cfg(test)]
mod tests;

pub use child::{OpenSource, Powers};
pub use client::Client;
pub use identity::Rules;
pub use setup::start_for;

use crate::{privileges, syslog};
use pop3d::{Authenticator, MailStore};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// The longest the front waits for any one answer or byte from the broker or a child:
/// opening a mailbox of tens of thousands of messages, a PAM check with its failure delay, or
/// a message on a slow disk take far less; a child stuck longer is taken as failed, so no
/// session hangs on it for ever.
pub const CHANNEL_LIMIT: Duration = Duration::from_secs(120);

/// Signals the broker ignores: it ends with the front (the kernel kills it then), and its
/// children end when the front closes their channels, so a stop signal sent to the whole
/// group (Ctrl-C, systemd) lets the front finish its sessions. SIGCHLD ignored reaps the
/// children. A login check's child restores them before it runs anything.
const IGNORED_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD];

/// The front's mail store and account source.
pub type Serving = (Arc<dyn MailStore>, Arc<dyn Authenticator>);

/// A user and group name that no system has (not valid for useradd).
const NO_SUCH_NAME: &str = "pop3d broker: no such name";

/// Forks the broker, which builds what it serves with `setup` once it has closed every
/// descriptor it was born with (so whatever that opens is its own). Returns the front's handle
/// on it. Call as root, before any thread is started.
pub fn start<'a>(
    inetd: bool,
    setup: impl FnOnce() -> Result<Powers<'a>, String>,
) -> Result<Arc<Client>, String> {
    let failed = |what: &str, e: io::Error| format!("cannot start the broker: {what}: {e}");
    process::ensure_standard_fds().map_err(|e| failed("/dev/null", e))?;
    let (front_end, broker_end) = control_pair().map_err(|e| failed("socketpair", e))?;
    for option in [libc::SO_SNDTIMEO, libc::SO_RCVTIMEO] {
        set_timeout(&front_end, option, CHANNEL_LIMIT).map_err(|e| failed("setsockopt", e))?;
    }
    // SAFETY: getpid takes no arguments and cannot fail.
    let front = unsafe { libc::getpid() };
    match process::fork().map_err(|e| failed("fork", e))? {
        None => {
            drop(front_end);
            run(broker_end, inetd, front, setup)
        }
        Some(pid) => {
            drop(broker_end);
            // The broker says when it is ready, so that its set-up failing fails the start.
            match fd_passing::receive(front_end.as_fd(), &mut [0u8]) {
                Ok((1, _)) => Ok(Arc::new(Client::new(front_end, pid))),
                Ok(_) => Err("the broker could not start (its log line says why)".into()),
                Err(e) => Err(failed("waiting for it", e)),
            }
        }
    }
}

/// The front's store and account source: `store` and `auth` where no other uid is needed, the
/// broker where it is (and for every login when the source needs root).
pub fn wrap(
    store: Arc<dyn MailStore>,
    auth: Arc<dyn Authenticator>,
    auth_needs_root: bool,
    broker: Arc<Client>,
) -> Serving {
    let auth: Arc<dyn Authenticator> = if auth_needs_root {
        Arc::new(switching::ForwardingAuthenticator {
            local: auth,
            broker: broker.clone(),
        })
    } else {
        auth
    };
    let store = Arc::new(switching::SwitchingStore {
        local: store,
        broker,
    });
    (store, auth)
}

/// The broker: waits for channels from the front and forks a child for each.
fn run<'a>(
    control: OwnedFd,
    inetd: bool,
    front: libc::pid_t,
    setup: impl FnOnce() -> Result<Powers<'a>, String>,
) -> ! {
    process::die_with_parent(front);
    process::set_name(c"pop3d-broker");
    process::unblock_signals();
    process::set_signals(&IGNORED_SIGNALS, true);
    // Under inetd, descriptors 0 to 2 are the client's socket; the log goes to syslog (also
    // standalone with --syslog), whose socket must not be closed behind its back.
    syslog::disconnect();
    let closed = process::close_all_but(control.as_raw_fd(), inetd);
    syslog::connect();
    if let Err(e) = closed {
        log::error!("broker: cannot close inherited descriptors: {e}");
        process::exit(1);
    }
    let powers = match setup() {
        Ok(p) => p,
        Err(e) => {
            log::error!("broker: {e}");
            process::exit(1);
        }
    };
    // Loads every name-service module here, once, rather than in every child (each child
    // loading libnss_systemd for its own lookup cost a tenth of its time). A name that exists
    // nowhere goes through all of them.
    let _ = privileges::system_account(NO_SUCH_NAME);
    let _ = privileges::group_id(NO_SUCH_NAME, "");
    if let Err(e) = fd_passing::send(control.as_fd(), &[1], None) {
        log::error!("broker: control socket: {e}");
        process::exit(1);
    }
    loop {
        let mut byte = [0u8; 1];
        match fd_passing::receive(control.as_fd(), &mut byte) {
            // The front is gone.
            Ok((0, _)) => process::exit(0),
            Ok((_, fds)) => {
                if let Some(channel) = fds.into_iter().next() {
                    spawn(channel, &control, &powers);
                }
            }
            Err(e) => {
                log::error!("broker: control socket: {e}");
                process::exit(1);
            }
        }
    }
}

/// Forks a child to serve `channel`; the broker keeps no copy of it.
fn spawn(channel: OwnedFd, control: &OwnedFd, powers: &Powers) {
    match process::fork() {
        Ok(None) => {
            // A child must never see the broker's requests: they are other accounts'.
            // SAFETY: the child closes its copy of the control socket and never uses it again
            // (it ends through process::exit, without dropping `control`).
            unsafe { libc::close(control.as_raw_fd()) };
            process::exit(child::serve(channel, powers))
        }
        Ok(Some(_)) => drop(channel),
        // Dropping the channel tells the front.
        Err(e) => log::error!("broker: cannot fork a child: {e}"),
    }
}

/// A connected pair of sequenced-packet sockets: each descriptor sent is one message.
fn control_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two descriptors to fill.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair just opened both; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Bounds how long a send (`SO_SNDTIMEO`) or a receive (`SO_RCVTIMEO`) on `socket` may wait:
/// a broker that stopped reading, or never got ready.
fn set_timeout(socket: &OwnedFd, option: libc::c_int, limit: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: a valid timeval and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
