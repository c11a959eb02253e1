//! The mbox `From ` line an MTA may put before the message: not part of it in a Maildir.

use std::io::{self, Read};

/// Longest `From ` line skipped; a longer first line is not an envelope line, and is kept.
const MAX_FROM_LINE: usize = 4096;

/// Reads `inner`, leaving out its first line if that starts with `From ` (Postfix's
/// `mailbox_command` and a `pipe` transport with the `F` flag write one, as does Exim's
/// `pipe` with `use_from_line`). Nothing else is changed.
pub struct WithoutFromLine<R> {
    inner: R,
    /// What was read to look at the first line, and how much of it was given out already.
    head: Vec<u8>,
    given: usize,
    looked: bool,
}

impl<R: Read> WithoutFromLine<R> {
    pub fn new(inner: R) -> Self {
        WithoutFromLine {
            inner,
            head: Vec::new(),
            given: 0,
            looked: false,
        }
    }

    /// Reads up to the first LF (or [`MAX_FROM_LINE`] octets, or the end) and drops the line
    /// if it is a `From ` line.
    fn look(&mut self) -> io::Result<()> {
        let mut byte = [0u8; 512];
        while !self.head.contains(&b'\n') && self.head.len() < MAX_FROM_LINE {
            let n = match self.inner.read(&mut byte) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.head.extend_from_slice(&byte[..n]);
            if !b"From ".starts_with(&self.head[..self.head.len().min(5)]) {
                break;
            }
        }
        if self.head.starts_with(b"From ") {
            if let Some(end) = self.head.iter().position(|&b| b == b'\n') {
                self.given = end + 1;
            }
        }
        self.looked = true;
        Ok(())
    }
}

impl<R: Read> Read for WithoutFromLine<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.looked {
            self.look()?;
        }
        if self.given < self.head.len() {
            let n = buf.len().min(self.head.len() - self.given);
            buf[..n].copy_from_slice(&self.head[self.given..self.given + n]);
            self.given += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `input` through the filter, fed `piece` octets at a time.
    fn filtered(input: &[u8], piece: usize) -> Vec<u8> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        WithoutFromLine::new(Trickle(input, piece))
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn only_a_leading_from_line_goes() {
        let cases: [(&[u8], &[u8]); 6] = [
            (
                b"From bob@x Sun Dec  6 11:00:00 2026\nSubject: a\n\nb\n",
                b"Subject: a\n\nb\n",
            ),
            (b"Subject: a\n\nFrom here\n", b"Subject: a\n\nFrom here\n"),
            (b"From: bob\n\nx\n", b"From: bob\n\nx\n"),
            (b"Fro", b"Fro"),
            (b"From x", b"From x"),
            (b"", b""),
        ];
        for (input, want) in cases {
            for piece in [1, 2, 5, 7, 4096] {
                assert_eq!(filtered(input, piece), want, "{input:?} by {piece}");
            }
        }
        let long = [b"From ".as_slice(), &[b'x'; 5000], b"\nbody\n"].concat();
        assert_eq!(
            filtered(&long, 100),
            long,
            "too long for an envelope line: kept"
        );
    }
}
