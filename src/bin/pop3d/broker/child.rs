//! A broker child: one request from the front, served as root for a login check, or as the
//! account for a mailbox, which it then holds until the front closes the channel.

use super::channel::Channel;
use super::frame::{Reply, Request, BATCH};
use super::identity::{self, Rules};
use super::process;
use pop3d::{Account, Authenticator, MailStore, Mailbox, StoreError, StoreErrorKind};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a new child waits for its request: the front sends it right after the channel.
const FIRST_REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// Bytes copied from a message to the front's pipe at a time.
const COPY_CHUNK: usize = 256 * 1024;

/// Opens the real account source, in a login check's child.
pub type OpenSource<'a> = Box<dyn Fn() -> Result<Arc<dyn Authenticator>, String> + 'a>;

/// What a child works with, made by the broker once, as root, before any child.
pub struct Powers<'a> {
    /// The real mail store.
    pub store: Arc<dyn MailStore>,
    /// The real account source, when it needs root (otherwise the front checks logins). It is
    /// opened in each login check's child and never in the broker, so that whatever it reads
    /// as root (a shadow file) is never in the memory of a mailbox process, which runs as an
    /// account.
    pub auth: Option<OpenSource<'a>>,
    /// Who a mailbox process may become.
    pub rules: Rules,
    /// `--tls-cert` and `--tls-key`, read again on SIGHUP for a front that can no longer
    /// read a key readable by root alone.
    pub tls_files: Option<(PathBuf, PathBuf)>,
}

/// Serves the request that comes on `channel`; returns the exit status.
pub fn serve(channel: OwnedFd, powers: &Powers) -> i32 {
    let mut channel = match Channel::new(UnixStream::from(channel), Some(FIRST_REQUEST_LIMIT)) {
        Ok(c) => c,
        Err(e) => return failed("channel", e),
    };
    let request = match channel.next_request() {
        Ok(Some((request, _))) => request,
        Ok(None) => return 0,
        Err(e) => return failed("first request", e),
    };
    match request {
        Request::Authenticate { user, password } => {
            process::set_name(c"pop3d-auth");
            authenticate(&mut channel, powers, &user, &password)
        }
        Request::Open(account) => {
            process::set_name(c"pop3d-mailbox");
            match open(&mut channel, powers, &account) {
                Ok(mailbox) => hold(channel, mailbox),
                Err(e) => failed("open", e),
            }
        }
        Request::ReadTls => {
            process::set_name(c"pop3d-tls");
            let reply = match read_tls(powers) {
                Ok((cert, key)) => Reply::TlsFiles { cert, key },
                Err(detail) => Reply::Failed {
                    kind: StoreErrorKind::Temporary,
                    detail,
                },
            };
            match channel.reply(&reply) {
                Ok(()) => 0,
                Err(e) => failed("reply", e),
            }
        }
        other => {
            log::error!("broker child: {other:?} before any mailbox is open");
            1
        }
    }
}

/// The certificate and key files named at start, as root.
fn read_tls(powers: &Powers) -> Result<(Vec<u8>, Vec<u8>), String> {
    let Some((cert, key)) = &powers.tls_files else {
        return Err("no --tls-cert and --tls-key".into());
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    Ok((read(cert)?, read(key)?))
}

fn failed(what: &str, e: io::Error) -> i32 {
    log::error!("broker child: {what}: {e}");
    1
}

/// Checks a login with the real account source, as root.
pub(super) fn authenticate(
    channel: &mut Channel,
    powers: &Powers,
    user: &str,
    password: &[u8],
) -> i32 {
    // A checkpassword program run from here must not inherit the broker's ignored signals.
    process::set_signals(&super::IGNORED_SIGNALS, false);
    let reply = match powers.auth.as_ref().map(|open| open()) {
        Some(Ok(auth)) => match auth.authenticate(user, password) {
            Ok(account) => Reply::Account(account),
            Err(e) => Reply::AuthFailed {
                kind: e.kind(),
                detail: e.detail().to_owned(),
            },
        },
        Some(Err(e)) => Reply::AuthFailed {
            kind: pop3d::AuthErrorKind::Unavailable,
            detail: e,
        },
        None => Reply::AuthFailed {
            kind: pop3d::AuthErrorKind::Unavailable,
            detail: "the broker checks no logins for this account source".into(),
        },
    };
    match channel.reply(&reply) {
        Ok(()) => 0,
        Err(e) => failed("reply", e),
    }
}

/// Becomes the account and opens its mailbox; the front hears how it went, and the message
/// list when it is open.
fn open(
    channel: &mut Channel,
    powers: &Powers,
    account: &Account,
) -> io::Result<Option<Box<dyn Mailbox>>> {
    let opened = identity::become_account(account, &powers.rules)
        .map_err(|why| StoreError::new(StoreErrorKind::Permanent, why))
        .and_then(|()| powers.store.open(account));
    let mailbox = match opened {
        Ok(m) => m,
        Err(e) => {
            channel.reply(&failure(&e))?;
            return Ok(None);
        }
    };
    send_list(channel, mailbox.as_ref())?;
    Ok(Some(mailbox))
}

/// Tells the front the mailbox is open, and its message list.
pub(super) fn send_list(channel: &mut Channel, mailbox: &dyn Mailbox) -> io::Result<()> {
    let messages = mailbox.messages();
    channel.reply(&Reply::Opened {
        count: messages.len() as u64,
    })?;
    for batch in messages.chunks(BATCH) {
        channel.reply(&Reply::Messages(batch.to_vec()))?;
    }
    Ok(())
}

/// Serves reads and deletions until the front closes the channel, then drops the mailbox
/// (which unlocks it) and exits.
pub(super) fn hold(mut channel: Channel, mailbox: Option<Box<dyn Mailbox>>) -> i32 {
    let Some(mut mailbox) = mailbox else {
        return 0;
    };
    // The front may leave a session idle for as long as its own timeout allows.
    if let Err(e) = channel.set_limit(None) {
        return failed("channel", e);
    }
    let mut count = mailbox.messages().len();
    loop {
        let served = match channel.next_request() {
            Ok(None) => break,
            Ok(Some((Request::Read { index }, Some(pipe)))) => match checked(index, count) {
                Ok(i) => read(&mut channel, mailbox.as_mut(), i, pipe),
                Err(e) => channel.reply(&failure(&e)),
            },
            Ok(Some((Request::Delete { indices }, _))) => {
                let done = on_messages(&indices, count, |i| mailbox.delete(i));
                channel.reply(&done.map_or_else(|e| failure(&e), |()| Reply::Deleted))
            }
            Ok(Some((Request::Expire { age_secs }, _))) => {
                let reply = match mailbox.expire(Duration::from_secs(age_secs)) {
                    Ok(removed) => Reply::Expired {
                        removed: removed.map(|n| n as u64),
                    },
                    Err(e) => failure(&e),
                };
                count = mailbox.messages().len();
                channel
                    .reply(&reply)
                    .and_then(|()| send_list(&mut channel, mailbox.as_ref()))
            }
            Ok(Some((Request::Retrieved { indices }, _))) => {
                let done = on_messages(&indices, count, |i| mailbox.retrieved(i));
                channel.reply(&done.map_or_else(|e| failure(&e), |()| Reply::Recorded))
            }
            Ok(Some((other, _))) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected request {other:?}"),
            )),
            Err(e) => Err(e),
        };
        if let Err(e) = served {
            return failed("request", e);
        }
    }
    drop(mailbox);
    0
}

/// Writes message `index` into `pipe`; the front hears first whether it opened, and after
/// the pipe is closed how many bytes went.
fn read(
    channel: &mut Channel,
    mailbox: &mut dyn Mailbox,
    index: usize,
    pipe: OwnedFd,
) -> io::Result<()> {
    // A message that is ranges of a file goes as the file, for the front to read: a pipe
    // would cost every octet two more copies. The pipe is closed unused.
    match mailbox.file_ranges(index) {
        Ok(Some(message)) => {
            drop(pipe);
            let reply = Reply::File {
                ranges: message.ranges,
            };
            return channel.reply_with(&reply, message.file.as_fd());
        }
        Ok(None) => {}
        Err(e) => return channel.reply(&failure(&e)),
    }
    let mut message = match mailbox.read(index) {
        Ok(r) => r,
        Err(e) => return channel.reply(&failure(&e)),
    };
    channel.reply(&Reply::Reading)?;
    let mut pipe = File::from(pipe);
    let mut chunk = vec![0u8; COPY_CHUNK];
    let mut octets = 0u64;
    let outcome = loop {
        let n = match message.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(StoreError::io(format!("message {}", index + 1), e)),
        };
        match pipe.write_all(&chunk[..n]) {
            Ok(()) => octets += n as u64,
            // The front stopped reading (TOP has its lines): not an error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break Ok(()),
            Err(e) => break Err(StoreError::io("pipe to the front", e)),
        }
    };
    // The front reads the pipe to its end before it reads the reply.
    drop(pipe);
    channel.reply(&match outcome {
        Ok(()) => Reply::Sent { octets },
        Err(e) => failure(&e),
    })
}

/// Runs `op` on the messages at `indices`, once each is checked to be one of the `count`.
fn on_messages(
    indices: &[u64],
    count: usize,
    op: impl FnOnce(&[usize]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let indices = indices
        .iter()
        .map(|&i| checked(i, count))
        .collect::<Result<Vec<_>, _>>()?;
    op(&indices)
}

fn checked(index: u64, count: usize) -> Result<usize, StoreError> {
    match usize::try_from(index) {
        Ok(i) if i < count => Ok(i),
        _ => Err(StoreError::new(
            StoreErrorKind::Permanent,
            format!("no message {index} in a mailbox of {count}"),
        )),
    }
}

fn failure(e: &StoreError) -> Reply {
    Reply::Failed {
        kind: e.kind(),
        detail: e.detail().to_owned(),
    }
}
