//! A byte stream with a bounded line reader and one output buffer.
//!
//! Output is flushed only when the reader has to wait for the client: a reply goes out in one
//! write (no Nagle/delayed-ACK stalls between its pieces), and pipelined commands (RFC 2449) are
//! answered in as few writes as possible. Time limits belong to the stream underneath (see
//! [`crate::timeouts`]); the connection only tells it when a command line begins and ends.

use crate::limits::WRITE_BUFFER;
use crate::timeouts::{HasTimeouts, Limit};
use std::io::{self, Read, Write};

/// Bytes read ahead of the parser. Enough for a few pipelined commands at once.
const READ_BUFFER: usize = 1024;

/// One line read from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A line, without its LF or CRLF.
    Complete(&'a [u8]),
    /// A line longer than the limit; it was read and thrown away whole.
    TooLong,
}

/// A client connection: a stream (TCP, TLS, stdin/stdout) with buffers.
pub(crate) struct Connection<S> {
    stream: S,
    input: Vec<u8>,
    start: usize,
    end: usize,
    output: Vec<u8>,
    /// A write failed: the stream may hold part of a reply, and must get nothing more.
    broken: bool,
}

impl<S: Read + Write + HasTimeouts> Connection<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Connection {
            stream,
            input: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            output: Vec::with_capacity(512),
            broken: false,
        }
    }

    /// The time limits of the stream underneath.
    pub(crate) fn timeouts(&mut self) -> &mut crate::timeouts::Timeouts {
        self.stream.timeouts()
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
        loop {
            if let Some(i) = self.input[scanned..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                self.stream.timeouts().line_done();
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
            if self.start < self.end || too_long {
                // Part of a line is here: the rest must follow in time, however slowly its
                // bytes trickle in (each byte would restart the idle timeout).
                self.stream.timeouts().line_begun();
            }
            self.flush()?;
            let n = loop {
                match self.stream.read(&mut self.input[self.end..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
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
                Err((0, e)) if self.stream.timeouts().expired() == Some(Limit::Login) => {
                    return Err(e)
                }
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

    /// Writes the whole output; on error, says how much of it had gone out.
    fn write_out(&mut self) -> Result<(), (usize, io::Error)> {
        let mut written = 0;
        while written < self.output.len() {
            match self.stream.write(&self.output[written..]) {
                Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((written, e)),
            }
        }
        Ok(())
    }

    /// Gives back the stream (after flushing); unread input is lost.
    pub fn into_inner(mut self) -> io::Result<S> {
        self.flush()?;
        Ok(self.stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeouts::Timed;

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

    impl crate::stream::Stream for Trickle {}

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn connection(t: Trickle) -> Connection<Timed<Trickle>> {
        Connection::new(Timed::new(t, std::time::Duration::from_secs(60), None))
    }

    fn lines(input: &[u8], step: usize, max: usize) -> Vec<Option<Vec<u8>>> {
        let mut c = connection(Trickle {
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
        let mut c = connection(Trickle {
            input: b"A\r\nB\r\n".to_vec(),
            pos: 0,
            step: 100,
            written: Vec::new(),
        });
        c.send(b"+OK hi\r\n").unwrap();
        assert!(c.stream.get_ref().written.is_empty());
        assert!(matches!(
            c.read_line(255).unwrap(),
            Some(Line::Complete(b"A"))
        ));
        assert_eq!(c.stream.get_ref().written, b"+OK hi\r\n");
        c.send(b"+OK a\r\n").unwrap();
        assert!(c.start < c.end, "B is buffered");
        assert!(matches!(
            c.read_line(255).unwrap(),
            Some(Line::Complete(b"B"))
        ));
        // B was already buffered: no flush needed to get it.
        assert_eq!(c.stream.get_ref().written, b"+OK hi\r\n");
        assert!(c.read_line(255).unwrap().is_none());
        assert_eq!(c.stream.get_ref().written, b"+OK hi\r\n+OK a\r\n");
    }
}
