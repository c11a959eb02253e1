//! One front-to-child conversation: length-prefixed frames over a Unix stream socket, a
//! descriptor riding along with a frame when needed, every wait bounded on the front's side.

use super::fd_passing;
use super::frame::{self, Reply, Request};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A framed socket, and the descriptors that came with the last frame received.
pub struct Channel {
    stream: UnixStream,
    fds: Vec<OwnedFd>,
}

impl Channel {
    /// A channel whose reads and writes never wait longer than `limit` (`None`: no bound).
    pub fn new(stream: UnixStream, limit: Option<Duration>) -> io::Result<Channel> {
        let mut channel = Channel {
            stream,
            fds: Vec::new(),
        };
        channel.set_limit(limit)?;
        Ok(channel)
    }

    /// Changes the bound on each read and write.
    pub fn set_limit(&mut self, limit: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(limit)?;
        self.stream.set_write_timeout(limit)
    }

    /// Sends a request, with `fd` attached.
    pub fn request(&mut self, request: &Request, fd: Option<BorrowedFd>) -> io::Result<()> {
        self.send(&request.encode(), fd)
    }

    /// Sends a reply.
    pub fn reply(&mut self, reply: &Reply) -> io::Result<()> {
        self.send(&reply.encode(), None)
    }

    /// Sends a reply with `fd` attached ([`Reply::File`]).
    pub fn reply_with(&mut self, reply: &Reply, fd: BorrowedFd) -> io::Result<()> {
        self.send(&reply.encode(), Some(fd))
    }

    /// The next request, and the descriptor that came with it; `None` when the peer closed the
    /// channel between frames.
    pub fn next_request(&mut self) -> io::Result<Option<(Request, Option<OwnedFd>)>> {
        let Some(body) = self.receive()? else {
            return Ok(None);
        };
        let request = Request::decode(&body).map_err(invalid)?;
        // One descriptor at most is meant; extras are closed here.
        let fd = self.fds.drain(..).next();
        self.fds.clear();
        Ok(Some((request, fd)))
    }

    /// The next reply; the end of the channel is an error (the child is gone).
    pub fn next_reply(&mut self) -> io::Result<Reply> {
        self.next_reply_with_file().map(|(reply, _)| reply)
    }

    /// The next reply, and the descriptor that came with it if it is a [`Reply::File`]: the
    /// only descriptor the front takes from a child (see `RemoteMailbox::read`).
    pub fn next_reply_with_file(&mut self) -> io::Result<(Reply, Option<OwnedFd>)> {
        match self.receive()? {
            Some(body) => {
                let reply = Reply::decode(&body).map_err(invalid)?;
                let fd = match reply {
                    Reply::File { .. } => self.fds.drain(..).next(),
                    _ => None,
                };
                self.fds.clear();
                Ok((reply, fd))
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the mailbox process ended",
            )),
        }
    }

    /// Tells the peer that no more requests come, and waits until it has closed its end (so
    /// that what it held, a mailbox lock, is released), for at most `limit`.
    pub fn finish(&mut self, limit: Duration) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)?;
        let deadline = std::time::Instant::now() + limit;
        let mut buf = [0u8; 512];
        while std::time::Instant::now() < deadline {
            let (n, _) = fd_passing::receive(self.stream.as_fd(), &mut buf).map_err(timed_out)?;
            if n == 0 {
                return Ok(());
            }
        }
        Err(timed_out(io::ErrorKind::WouldBlock.into()))
    }

    fn send(&mut self, frame: &[u8], fd: Option<BorrowedFd>) -> io::Result<()> {
        let mut sent = fd_passing::send(self.stream.as_fd(), frame, fd).map_err(timed_out)?;
        while sent < frame.len() {
            match fd_passing::send(self.stream.as_fd(), &frame[sent..], None).map_err(timed_out)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => sent += n,
            }
        }
        Ok(())
    }

    /// A frame's body; `None` at a clean end of stream before it.
    fn receive(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fds.clear();
        let mut prefix = [0u8; 4];
        if !self.fill(&mut prefix, true)? {
            return Ok(None);
        }
        let mut body = vec![0u8; frame::body_length(prefix).map_err(invalid)?];
        self.fill(&mut body, false)?;
        Ok(Some(body))
    }

    /// Fills `buf`; false if the stream ended before its first byte and `may_end`.
    fn fill(&mut self, buf: &mut [u8], may_end: bool) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let (n, fds) =
                fd_passing::receive(self.stream.as_fd(), &mut buf[got..]).map_err(timed_out)?;
            self.fds.extend(fds);
            if n == 0 {
                if got == 0 && may_end {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the channel ended inside a frame",
                ));
            }
            got += n;
        }
        Ok(true)
    }
}

fn invalid(e: frame::FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A socket timeout shows as `EAGAIN`: say what it is.
fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock => io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer from the mailbox process in time",
        ),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pop3d::Account;
    use std::io::Write;

    fn pair() -> (Channel, Channel) {
        let (a, b) = UnixStream::pair().unwrap();
        let limit = Some(Duration::from_millis(200));
        (
            Channel::new(a, limit).unwrap(),
            Channel::new(b, limit).unwrap(),
        )
    }

    #[test]
    fn requests_and_replies_cross_in_order() {
        let (mut front, mut child) = pair();
        front
            .request(&Request::Open(Account::new("a")), None)
            .unwrap();
        let some_fd = std::fs::File::open("/dev/null").unwrap();
        front
            .request(&Request::Read { index: 2 }, Some(some_fd.as_fd()))
            .unwrap();
        let (r, fd) = child.next_request().unwrap().unwrap();
        assert_eq!((r, fd.is_none()), (Request::Open(Account::new("a")), true));
        let (r, fd) = child.next_request().unwrap().unwrap();
        assert_eq!((r, fd.is_some()), (Request::Read { index: 2 }, true));
        child.reply(&Reply::Deleted).unwrap();
        assert_eq!(front.next_reply().unwrap(), Reply::Deleted);
        drop(front);
        assert!(child.next_request().unwrap().is_none());
    }

    #[test]
    fn silence_cut_frames_and_garbage_are_errors() {
        let (mut front, child) = pair();
        let e = front.next_reply().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        // Half a frame, then the end.
        let mut raw = child.stream.try_clone().unwrap();
        raw.write_all(&[0, 0, 0, 9, 1]).unwrap();
        drop((raw, child));
        assert_eq!(
            front.next_reply().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        // A frame too long, and an undecodable one.
        for bytes in [&[0xff, 0xff, 0xff, 0xff][..], &[0, 0, 0, 1, 42][..]] {
            let (mut front, child) = pair();
            let mut raw = child.stream.try_clone().unwrap();
            raw.write_all(bytes).unwrap();
            let e = front.next_reply().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        }
        // A closed child is an error to the front.
        let (mut front, child) = pair();
        drop(child);
        assert!(front.next_reply().is_err());
    }
}
