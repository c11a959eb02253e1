//! The front's side of the broker: each request gets a fresh socket pair, one end handed to
//! the broker (which forks a child for it), the other kept for the conversation.

use super::channel::Channel;
use super::fd_passing;
use super::frame::{Reply, Request};
use super::remote_mailbox::RemoteMailbox;
use super::CHANNEL_LIMIT;
use pop3d::{Account, AuthError, AuthErrorKind, Mailbox, StoreError, StoreErrorKind};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// The broker as the front sees it: the control socket and the broker's pid.
pub struct Client {
    control: OwnedFd,
    pid: libc::pid_t,
    /// Set once the broker is seen gone, so that it is logged once and reaped.
    gone: AtomicBool,
}

impl Client {
    pub(super) fn new(control: OwnedFd, pid: libc::pid_t) -> Client {
        Client {
            control,
            pid,
            gone: AtomicBool::new(false),
        }
    }

    /// Opens `account`'s mailbox in a child of the broker that runs as the account.
    pub fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        let temporary = |e: io::Error| {
            StoreError::with_source(
                StoreErrorKind::Temporary,
                format!("mailbox process: {e}"),
                e,
            )
        };
        let mut channel = self.channel().map_err(temporary)?;
        channel
            .request(&Request::Open(account.clone()), None)
            .map_err(temporary)?;
        match channel.next_reply().map_err(temporary)? {
            Reply::Opened { count } => {
                let mailbox = RemoteMailbox::receive(channel, count).map_err(temporary)?;
                Ok(Box::new(mailbox))
            }
            Reply::Failed { kind, detail } => Err(StoreError::new(kind, detail)),
            other => Err(temporary(unexpected(&other))),
        }
    }

    /// Checks a login in a child of the broker, as root.
    pub fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        let unavailable =
            |e: io::Error| AuthError::new(AuthErrorKind::Unavailable, format!("broker: {e}"));
        let mut channel = self.channel().map_err(unavailable)?;
        let request = Request::Authenticate {
            user: user.to_owned(),
            password: password.to_vec(),
        };
        channel.request(&request, None).map_err(unavailable)?;
        match channel.next_reply().map_err(unavailable)? {
            Reply::Account(account) => Ok(account),
            Reply::AuthFailed { kind, detail } => Err(AuthError::new(kind, detail)),
            other => Err(unavailable(unexpected(&other))),
        }
    }

    /// The `--tls-cert` and `--tls-key` files, read by a child of the broker as root.
    pub fn read_tls(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        let failed = |e: io::Error| format!("broker: {e}");
        let mut channel = self.channel().map_err(failed)?;
        channel.request(&Request::ReadTls, None).map_err(failed)?;
        match channel.next_reply().map_err(failed)? {
            Reply::TlsFiles { cert, key } => Ok((cert, key)),
            Reply::Failed { detail, .. } => Err(detail),
            other => Err(failed(unexpected(&other))),
        }
    }

    /// A new channel to a new child of the broker.
    fn channel(&self) -> io::Result<Channel> {
        let (ours, theirs) = UnixStream::pair()?;
        if let Err(e) = fd_passing::send(self.control.as_fd(), &[0], Some(theirs.as_fd())) {
            self.broker_gone(&e);
            return Err(io::Error::new(
                e.kind(),
                format!("the privileged broker is gone ({e})"),
            ));
        }
        drop(theirs);
        Channel::new(ours, Some(CHANNEL_LIMIT))
    }

    /// Logs, once, that the broker is gone, and reaps it.
    fn broker_gone(&self, e: &io::Error) {
        if self.gone.swap(true, Ordering::SeqCst) {
            return;
        }
        log::error!(
            "the privileged broker (pid {}) is gone ({e}): logins that need another uid fail \
             until pop3d is restarted",
            self.pid
        );
        // SAFETY: waitpid with a null status pointer only reaps our own child, if it ended.
        unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

/// A reply that has no place where it came.
pub(super) fn unexpected(reply: &Reply) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply {reply:?}"),
    )
}
