//! A byte stream with a bounded line reader and one output buffer.
//!
//! Output is flushed only when the reader has to wait for the client: a reply goes out in one
//! write (no Nagle/delayed-ACK stalls between its pieces), and pipelined commands (RFC 2449) are
//! answered in as few writes as possible.

use crate::limits::{LINE_DEADLINE, WRITE_BUFFER};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Bytes read ahead of the parser. Enough for a few pipelined commands at once.
const READ_BUFFER: usize = 1024;

/// One line read from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line, without its LF or CRLF.
    Complete(&'a [u8]),
    /// A line longer than the limit; it was read and thrown away whole.
    TooLong,
}

/// Sets the timeouts of the stream under a connection: the read timeout, and where the stream
/// has one the write timeout too (a socket's SO_RCVTIMEO and SO_SNDTIMEO, say).
pub type TimeoutControl = Box<dyn FnMut(Duration) -> io::Result<()> + Send>;

/// A client connection: any `Read + Write` stream (TCP, TLS, stdin/stdout) with buffers.
pub struct Connection<S> {
    stream: S,
    input: Vec<u8>,
    start: usize,
    end: usize,
    output: Vec<u8>,
    /// A write failed: the stream may hold part of a reply, and must get nothing more.
    broken: bool,
    /// Changes the stream's read timeout, when the stream allows it.
    control: Option<TimeoutControl>,
    /// The read timeout between lines (login or idle timeout).
    timeout: Duration,
    /// The read timeout last set on the stream.
    applied: Duration,
    /// When every line must be complete, however its bytes trickle in (the login deadline).
    deadline: Option<Instant>,
}

/// Which limit a read ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The read timeout between lines (the idle timeout).
    Idle,
    /// [`LINE_DEADLINE`]: a command line not finished in time.
    Line,
    /// The deadline of [`Connection::set_deadline`] (the login deadline).
    Login,
}

/// The error that carries a [`Limit`].
#[derive(Debug)]
struct LimitError(Limit);

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Limit::Idle => "idle timeout",
            Limit::Line => "command line not finished in time",
            Limit::Login => "not logged in in time",
        })
    }
}

impl std::error::Error for LimitError {}

impl Limit {
    fn error(self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, LimitError(self))
    }

    /// The limit that `e` ran into, if it is a timeout: [`Limit::Idle`] for a plain one.
    pub fn of(e: &io::Error) -> Option<Limit> {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<LimitError>())
        {
            Some(LimitError(limit)) => Some(*limit),
            None if is_timeout(e) => Some(Limit::Idle),
            None => None,
        }
    }
}

impl<S: Read + Write> Connection<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Connection {
            stream,
            input: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            output: Vec::with_capacity(512),
            broken: false,
            control: None,
            timeout: Duration::MAX,
            applied: Duration::MAX,
            deadline: None,
        }
    }

    /// Lets the connection change the stream's read timeout through `control`: for the login
    /// and idle timeouts, and to hold each command line to [`LINE_DEADLINE`].
    pub fn with_timeout_control(mut self, control: TimeoutControl) -> Self {
        self.control = Some(control);
        self
    }

    /// Takes the timeout control back out (to hand it to the connection that replaces this
    /// one after a TLS handshake).
    pub fn take_timeout_control(&mut self) -> Option<TimeoutControl> {
        self.control.take()
    }

    /// Sets the read timeout between lines (takes effect only with
    /// [`with_timeout_control`](Self::with_timeout_control)).
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = timeout;
        self.apply(timeout)
    }

    /// Sets a time by which every line read must be complete (`None`: no such time): a client
    /// that trickles a byte now and then cannot stretch it, as it can the read timeout, which
    /// each byte restarts. Reads past it fail with an error that [`Limit::of`] calls
    /// [`Limit::Login`]. Takes effect only with [`with_timeout_control`](Self::with_timeout_control).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn apply(&mut self, timeout: Duration) -> io::Result<()> {
        if let Some(control) = self.control.as_mut() {
            if timeout != self.applied {
                control(timeout.max(Duration::from_millis(1)))?;
                self.applied = timeout;
            }
        }
        Ok(())
    }

    /// Reads the next line of at most `max` octets, line end included. `Ok(None)` means the
    /// client closed the connection (a partial last line is dropped).
    ///
    /// Pending output is flushed before the read blocks.
    pub fn read_line(&mut self, max: usize) -> io::Result<Option<Line<'_>>> {
        if self.input.len() < max + 1 {
            self.input.resize(max + 1, 0);
        }
        let mut too_long = false;
        let mut scanned = self.start;
        // When the first byte of a partial line was seen: the whole line must follow within
        // LINE_DEADLINE, however slowly its bytes trickle in.
        let mut line_began: Option<Instant> = None;
        loop {
            if let Some(i) = self.input[scanned..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                if line_began.is_some() {
                    self.apply(self.timeout)?;
                }
                let lf = scanned + i;
                let line_start = self.start;
                self.start = lf + 1;
                if too_long || lf + 1 - line_start > max {
                    return Ok(Some(Line::TooLong));
                }
                let line = &self.input[line_start..lf];
                return Ok(Some(Line::Complete(
                    line.strip_suffix(b"\r").unwrap_or(line),
                )));
            }
            if self.end - self.start >= max {
                // Over the limit with no line end yet: drop what we have, keep reading to the LF.
                too_long = true;
                self.start = self.end;
            }
            if self.start > 0 {
                self.input.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            scanned = self.end;
            // The read waits for the nearest of three limits; a timeout says which one ran out.
            let mut wait = self.timeout;
            let mut limit = Limit::Idle;
            if self.start < self.end || too_long {
                let began = *line_began.get_or_insert_with(Instant::now);
                let left = LINE_DEADLINE.saturating_sub(began.elapsed());
                if left.is_zero() {
                    return Err(Limit::Line.error());
                }
                if left < wait {
                    (wait, limit) = (left, Limit::Line);
                }
            }
            if let Some(deadline) = self.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Limit::Login.error());
                }
                if left <= wait {
                    (wait, limit) = (left, Limit::Login);
                }
            }
            self.apply(wait)?;
            self.flush()?;
            let n = loop {
                match self.stream.read(&mut self.input[self.end..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if is_timeout(&e) && limit != Limit::Idle => return Err(limit.error()),
                    r => break r?,
                }
            };
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }

    /// True if the client has sent bytes that have not been read as lines yet.
    pub fn has_buffered_input(&self) -> bool {
        self.start < self.end
    }

    /// Queues `bytes` for the client, writing out when the buffer is full.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.broken {
            self.output.extend_from_slice(bytes);
        }
        self.flush_if_full()
    }

    /// The output buffer, for encoders that append to it directly; call
    /// [`flush_if_full`](Self::flush_if_full) after.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Writes the output out if it has grown past the buffer size.
    pub fn flush_if_full(&mut self) -> io::Result<()> {
        if self.output.len() >= WRITE_BUFFER || self.broken {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes all queued output.
    ///
    /// After a failed write nothing more is ever written: part of the buffer may have gone out,
    /// and sending the rest, or anything else, after the gap could put together bytes that read
    /// as a whole reply (a message cut short by a stray `.` line, say). The client sees the
    /// connection end mid-reply instead, which it cannot mistake for a complete one.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.broken {
            self.output.clear();
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "an earlier write failed; nothing more is sent",
            ));
        }
        if !self.output.is_empty() {
            match self.write_out() {
                Ok(()) => {}
                // The login deadline passed before a byte of this went out: nothing is cut in
                // two, so the reply may still go, followed by the session's last word.
                Err((0, e)) if Limit::of(&e) == Some(Limit::Login) => return Err(e),
                Err((_, e)) => {
                    self.broken = true;
                    self.output.clear();
                    return Err(e);
                }
            }
            self.output.clear();
            // A long message grew the buffer; do not keep that memory for an idle session.
            if self.output.capacity() > 4 * WRITE_BUFFER {
                self.output.shrink_to(512);
            }
        }
        self.stream.flush()
    }

    /// Writes the whole output. Under a deadline (before login) every write waits at most what
    /// is left of it: a client that pipelines commands and reads the replies a byte now and
    /// then would otherwise hold the session past the login timeout.
    /// On error, says how much of the output had gone out.
    fn write_out(&mut self) -> Result<(), (usize, io::Error)> {
        let mut written = 0;
        while written < self.output.len() {
            let mut limit = Limit::Idle;
            if let Some(deadline) = self.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err((written, Limit::Login.error()));
                }
                if left < self.timeout {
                    self.apply(left).map_err(|e| (written, e))?;
                    limit = Limit::Login;
                }
            }
            match self.stream.write(&self.output[written..]) {
                Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) && limit == Limit::Login => {
                    return Err((written, limit.error()))
                }
                Err(e) => return Err((written, e)),
            }
        }
        Ok(())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives back the stream (after flushing); unread input is lost.
    pub fn into_inner(mut self) -> io::Result<S> {
        self.flush()?;
        Ok(self.stream)
    }
}

/// True if `e` is a read or write that timed out (a socket timeout shows as `WouldBlock`).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out its input a few bytes at a time and records output.
    struct Trickle {
        input: Vec<u8>,
        pos: usize,
        step: usize,
        written: Vec<u8>,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.input.len() - self.pos);
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(input: &[u8], step: usize, max: usize) -> Vec<Option<Vec<u8>>> {
        let mut c = Connection::new(Trickle {
            input: input.to_vec(),
            pos: 0,
            step,
            written: Vec::new(),
        });
        let mut out = Vec::new();
        while let Some(line) = c.read_line(max).unwrap() {
            out.push(match line {
                Line::Complete(l) => Some(l.to_vec()),
                Line::TooLong => None,
            });
        }
        out
    }

    #[test]
    fn splits_lines_whatever_the_read_size() {
        let long = [b'x'; 300];
        let mut input = b"STAT\r\nLIST 1\nPASS a b \r\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\r\nNOOP\r\n\r\npartial");
        let want = vec![
            Some(b"STAT".to_vec()),
            Some(b"LIST 1".to_vec()),
            Some(b"PASS a b ".to_vec()),
            None,
            Some(b"NOOP".to_vec()),
            Some(b"".to_vec()),
        ];
        for step in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(lines(&input, step, 255), want, "step {step}");
        }
    }

    #[test]
    fn limit_counts_the_line_end() {
        let mut exact = vec![b'a'; 253];
        exact.extend_from_slice(b"\r\n");
        assert_eq!(lines(&exact, 1, 255), vec![Some(vec![b'a'; 253])]);
        let mut over = vec![b'a'; 254];
        over.extend_from_slice(b"\r\n");
        assert_eq!(lines(&over, 1, 255), vec![None]);
        assert_eq!(lines(&over, 4096, 255), vec![None]);
    }

    #[test]
    fn flushes_before_waiting_for_input() {
        let mut c = Connection::new(Trickle {
            input: b"A\r\nB\r\n".to_vec(),
            pos: 0,
            step: 100,
            written: Vec::new(),
        });
        c.send(b"+OK hi\r\n").unwrap();
        assert!(c.get_ref().written.is_empty());
        assert!(matches!(
            c.read_line(255).unwrap(),
            Some(Line::Complete(b"A"))
        ));
        assert_eq!(c.get_ref().written, b"+OK hi\r\n");
        c.send(b"+OK a\r\n").unwrap();
        assert!(c.has_buffered_input());
        assert!(matches!(
            c.read_line(255).unwrap(),
            Some(Line::Complete(b"B"))
        ));
        // B was already buffered: no flush needed to get it.
        assert_eq!(c.get_ref().written, b"+OK hi\r\n");
        assert!(c.read_line(255).unwrap().is_none());
        assert_eq!(c.get_ref().written, b"+OK hi\r\n+OK a\r\n");
    }
}
