//! A mailbox held by a child of the broker, running as its account: the front's
//! [`Mailbox`], which asks the child for each message and each deletion.

use super::channel::Channel;
use super::client::unexpected;
use super::frame::{Reply, Request};
use super::CHANNEL_LIMIT;
use pop3d::{Mailbox, MessageInfo, StoreError, StoreErrorKind};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The most messages a mailbox process may announce: far above any real mailbox, low enough
/// that a broken child cannot make the front collect entries for ever.
const MAX_MESSAGES: u64 = 50_000_000;

/// The front's handle on a mailbox open in a child.
pub struct RemoteMailbox {
    channel: Channel,
    messages: Vec<MessageInfo>,
    /// A read whose final reply is still to come (the session stopped reading early).
    pending: bool,
    /// Set after any failure of the conversation: the child may be gone or out of step, so
    /// nothing more is asked of it.
    broken: bool,
}

impl RemoteMailbox {
    /// Takes the `count` message entries that follow an `Opened` reply.
    pub(super) fn receive(mut channel: Channel, count: u64) -> io::Result<RemoteMailbox> {
        let messages = receive_list(&mut channel, count)?;
        Ok(RemoteMailbox {
            channel,
            messages,
            pending: false,
            broken: false,
        })
    }

    /// Takes a new message list (`Opened`, then the entries) after EXPIRE removed some.
    fn receive_again(&mut self) -> Result<(), StoreError> {
        let received = match self.channel.next_reply() {
            Ok(Reply::Opened { count }) => receive_list(&mut self.channel, count),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(e),
        };
        match received {
            Ok(messages) => {
                self.messages = messages;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Takes the final reply of an earlier read, if still due, so that the next reply read is
    /// the next request's.
    fn settle(&mut self) -> Result<(), StoreError> {
        if self.broken {
            return Err(StoreError::new(
                StoreErrorKind::Temporary,
                "the mailbox process failed earlier in this session",
            ));
        }
        if self.pending {
            self.pending = false;
            match self.channel.next_reply() {
                Ok(Reply::Sent { .. } | Reply::Failed { .. }) => {}
                Ok(other) => return Err(self.fail(unexpected(&other))),
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    /// Marks the conversation broken; the error for the session.
    fn fail(&mut self, e: io::Error) -> StoreError {
        self.broken = true;
        StoreError::with_source(
            StoreErrorKind::Temporary,
            format!("mailbox process: {e}"),
            e,
        )
    }

    /// Sends `request` (with `fd`) and returns the reply.
    fn ask(&mut self, request: &Request, fd: Option<OwnedFd>) -> Result<Reply, StoreError> {
        self.ask_for_file(request, fd).map(|(reply, _)| reply)
    }

    /// As [`ask`](Self::ask), with the file a [`Reply::File`] brings.
    fn ask_for_file(
        &mut self,
        request: &Request,
        fd: Option<OwnedFd>,
    ) -> Result<(Reply, Option<OwnedFd>), StoreError> {
        self.settle()?;
        let sent = self
            .channel
            .request(request, fd.as_ref().map(|f| f.as_fd()));
        // Our copy of a descriptor passed along goes now: the child has its own.
        drop(fd);
        match sent.and_then(|()| self.channel.next_reply_with_file()) {
            Ok(reply) => Ok(reply),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Mailbox for RemoteMailbox {
    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn read(&mut self, index: usize) -> Result<Box<dyn Read + '_>, StoreError> {
        let (pipe, write_end) = pipe().map_err(|e| StoreError::io("pipe", e))?;
        let request = Request::Read {
            index: index as u64,
        };
        match self.ask_for_file(&request, Some(write_end))? {
            (Reply::File { ranges }, Some(fd)) => {
                let file = checked_file(fd).map_err(|e| self.fail(e))?;
                Ok(Box::new(FileRanges::new(file, ranges)))
            }
            (Reply::File { .. }, None) => Err(self.fail(io::Error::new(
                io::ErrorKind::InvalidData,
                "a file reply without its file",
            ))),
            (Reply::Reading, _) => {
                self.pending = true;
                Ok(Box::new(RemoteMessage {
                    pipe: Some(pipe),
                    octets: 0,
                    buffer: vec![0; PIPE_READ],
                    filled: 0..0,
                    mailbox: self,
                }))
            }
            (Reply::Failed { kind, detail }, _) => Err(StoreError::new(kind, detail)),
            (other, _) => Err(self.fail(unexpected(&other))),
        }
    }

    fn delete(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        let request = Request::Delete {
            indices: indices.iter().map(|&i| i as u64).collect(),
        };
        match self.ask(&request, None)? {
            Reply::Deleted => Ok(()),
            Reply::Failed { kind, detail } => Err(StoreError::new(kind, detail)),
            other => Err(self.fail(unexpected(&other))),
        }
    }

    fn expire(&mut self, age: Duration) -> Result<Option<usize>, StoreError> {
        let request = Request::Expire {
            age_secs: age.as_secs(),
        };
        // Either way the child sends the list it now holds.
        let outcome = match self.ask(&request, None)? {
            Reply::Expired { removed } => Ok(removed.map(|n| n as usize)),
            Reply::Failed { kind, detail } => Err(StoreError::new(kind, detail)),
            other => return Err(self.fail(unexpected(&other))),
        };
        self.receive_again()?;
        outcome
    }

    fn retrieved(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        let request = Request::Retrieved {
            indices: indices.iter().map(|&i| i as u64).collect(),
        };
        match self.ask(&request, None)? {
            Reply::Recorded => Ok(()),
            Reply::Failed { kind, detail } => Err(StoreError::new(kind, detail)),
            other => Err(self.fail(unexpected(&other))),
        }
    }
}

/// The `count` message entries that follow an `Opened` reply.
fn receive_list(channel: &mut Channel, count: u64) -> io::Result<Vec<MessageInfo>> {
    if count > MAX_MESSAGES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{count} messages announced"),
        ));
    }
    let mut messages = Vec::new();
    while (messages.len() as u64) < count {
        match channel.next_reply()? {
            Reply::Messages(batch) if messages.len() as u64 + batch.len() as u64 <= count => {
                messages.extend(batch)
            }
            other => return Err(unexpected(&other)),
        }
    }
    Ok(messages)
}

impl Drop for RemoteMailbox {
    /// Closes the channel and waits for the child to end, so that the mailbox is unlocked when
    /// this returns, as [`pop3d::MailStore::open`] promises.
    fn drop(&mut self) {
        if let Err(e) = self.channel.finish(CHANNEL_LIMIT) {
            log::warn!("mailbox process did not end cleanly: {e}");
        }
    }
}

/// One message coming through a pipe from the child. Dropped before its end (TOP has its
/// lines), it closes the pipe, which stops the child; [`RemoteMailbox::settle`] then takes the
/// child's final reply before the next request.
struct RemoteMessage<'a> {
    pipe: Option<File>,
    octets: u64,
    /// What one read of the pipe brought, and the part not yet handed on: a read takes all the
    /// pipe holds, so a message costs a read per pipe-full rather than per session chunk.
    buffer: Vec<u8>,
    filled: std::ops::Range<usize>,
    mailbox: &'a mut RemoteMailbox,
}

/// The most one read of a message pipe takes: as much as the pipe holds ([`PIPE_SIZE`]).
const PIPE_READ: usize = 256 * 1024;

/// The capacity asked for the message pipe (Linux's default is 64 KiB): fewer switches between
/// the child that writes and the front that reads. Best effort: a smaller one still works.
const PIPE_SIZE: libc::c_int = 256 * 1024;

impl Read for RemoteMessage<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.filled.is_empty() {
            let n = buf.len().min(self.filled.len());
            buf[..n].copy_from_slice(&self.buffer[self.filled.start..self.filled.start + n]);
            self.filled.start += n;
            return Ok(n);
        }
        let Some(pipe) = &mut self.pipe else {
            return Ok(0);
        };
        // The pipe is non-blocking: wait only when it is empty.
        let n = loop {
            match pipe.read(&mut self.buffer) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(pipe)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n > 0 {
            self.octets += n as u64;
            self.filled = 0..n;
            return self.read(buf);
        }
        // The end of the pipe: only the child's final reply says whether it is the end of the
        // message or a child that died half-way.
        self.pipe = None;
        self.mailbox.pending = false;
        match self.mailbox.channel.next_reply() {
            Ok(Reply::Sent { octets }) if octets == self.octets => Ok(0),
            Ok(Reply::Sent { octets }) => {
                Err(self.cut(format!("{} of {octets} bytes came through", self.octets)))
            }
            Ok(Reply::Failed { detail, .. }) => Err(self.cut(detail)),
            Ok(other) => Err(self.cut(unexpected(&other).to_string())),
            Err(e) => Err(self.cut(e.to_string())),
        }
    }
}

impl RemoteMessage<'_> {
    fn cut(&mut self, why: String) -> io::Error {
        self.mailbox.broken = true;
        io::Error::other(format!("message cut short: {why}"))
    }
}

/// The file a child sent, if it is what one may be: a regular file, open for reading only. A
/// child runs as the account and could send any file the account can read, which is what it
/// could send through the pipe anyway; anything else (a socket, a pipe, a device, a file it
/// could write) is refused.
fn checked_file(fd: OwnedFd) -> io::Result<File> {
    let file = File::from(fd);
    let regular = file.metadata()?.file_type().is_file();
    // SAFETY: F_GETFL on a descriptor we own, no other argument.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if !regular || flags < 0 || flags & libc::O_ACCMODE != libc::O_RDONLY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the mailbox process sent a descriptor that is not a regular file open for reading",
        ));
    }
    Ok(file)
}

/// A message read from ranges of a file with `pread(2)`s straight into the reader's buffer,
/// as a store in this process would read it.
struct FileRanges {
    file: File,
    ranges: Vec<std::ops::Range<u64>>,
    next: usize,
}

impl FileRanges {
    fn new(file: File, ranges: Vec<std::ops::Range<u64>>) -> Self {
        FileRanges {
            file,
            ranges,
            next: 0,
        }
    }
}

impl Read for FileRanges {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        loop {
            let Some(range) = self.ranges.get_mut(self.next) else {
                return Ok(0);
            };
            if range.is_empty() {
                self.next += 1;
                continue;
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let want = (range.end - range.start).min(buf.len() as u64) as usize;
            let got = self.file.read_at(&mut buf[..want], range.start)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "message cut short: the mailbox file is shorter than its ranges",
                ));
            }
            range.start += got as u64;
            return Ok(got);
        }
    }
}

/// Waits until `pipe` has data or its end, for at most [`CHANNEL_LIMIT`].
fn wait_readable(pipe: &File) -> io::Result<()> {
    let mut poll = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = CHANNEL_LIMIT.as_millis() as libc::c_int;
    loop {
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut poll, 1, ms) } {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the mailbox process sent nothing in time",
                ))
            }
            _ => return Ok(()),
        }
    }
}

/// A pipe: the read end, and the write end for the child.
fn pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two descriptors to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl on the descriptors just made, with integer arguments. The read end alone
    // is non-blocking (the child writes to a blocking one); a refused size keeps the default.
    unsafe {
        libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_SIZE);
        let flags = libc::fcntl(fds[0], libc::F_GETFL);
        if flags < 0 || libc::fcntl(fds[0], libc::F_SETFL, flags | libc::O_NONBLOCK) != 0 {
            let e = io::Error::last_os_error();
            libc::close(fds[0]);
            libc::close(fds[1]);
            return Err(e);
        }
    }
    // SAFETY: pipe2 just opened both; nothing else owns them.
    Ok(unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_open_for_reading_is_taken_from_a_child() {
        let dir = std::env::temp_dir().join(format!("pop3d-test-rm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool");
        std::fs::write(&path, b"0123456789").unwrap();
        let read_only = File::open(&path).unwrap();
        let mut ranges = FileRanges::new(
            checked_file(read_only.into()).expect("a file open for reading"),
            vec![1..3, 5..5, 7..10],
        );
        let mut got = Vec::new();
        ranges.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"12789");

        let writable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(checked_file(writable.into()).is_err());
        let (read_end, _write_end) = pipe().unwrap();
        assert!(checked_file(read_end.into()).is_err());
        let dir_fd = File::open(&dir).unwrap();
        assert!(checked_file(dir_fd.into()).is_err());
        // Ranges past the end of the file: an error, never a short message taken as whole.
        let short = File::open(&path).unwrap();
        let mut past = FileRanges::new(checked_file(short.into()).unwrap(), vec![2..4, 8..20]);
        let mut got = Vec::new();
        assert!(past.read_to_end(&mut got).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
