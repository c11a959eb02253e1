//! Serving one message of the snapshot: its octets read with large `pread(2)`s, the hidden
//! header lines skipped.

use super::scan::read_full;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;

/// Octets read from the spool at a time.
const READ_SIZE: usize = 256 * 1024;

/// The served octets of a message: `range` without the `hidden` ranges (sorted, inside it).
pub(super) struct MessageReader<'a> {
    file: &'a File,
    /// The rest to serve, as ranges of the file.
    parts: Vec<Range<u64>>,
    next: usize,
    buf: Vec<u8>,
    /// buf[at..len] is read but not yet handed out.
    at: usize,
    len: usize,
}

impl<'a> MessageReader<'a> {
    pub(super) fn new(file: &'a File, range: Range<u64>, hidden: &[Range<u64>]) -> Self {
        let parts = served_parts(range, hidden);
        let total: u64 = parts.iter().map(|p| p.end - p.start).sum();
        MessageReader {
            file,
            parts,
            next: 0,
            buf: vec![0; READ_SIZE.min(total as usize)],
            at: 0,
            len: 0,
        }
    }

    /// Fills the buffer from the next part; false at the end of the message.
    fn fill(&mut self) -> io::Result<bool> {
        let got = next_octets(self.file, &mut self.parts, &mut self.next, &mut self.buf)?;
        self.at = 0;
        self.len = got;
        Ok(got > 0)
    }
}

/// The ranges of the file that are served: `range` without the `hidden` ones (sorted, inside
/// it).
pub(super) fn served_parts(range: Range<u64>, hidden: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut parts = Vec::with_capacity(hidden.len() + 1);
    let mut from = range.start;
    for h in hidden {
        if h.start > from {
            parts.push(from..h.start);
        }
        from = from.max(h.end);
    }
    if range.end > from {
        parts.push(from..range.end);
    }
    parts
}

/// Reads the next octets of `parts[*next..]` into `into` (no more than it holds, nor past the
/// part); 0 at the end of the message.
fn next_octets(
    file: &File,
    parts: &mut [Range<u64>],
    next: &mut usize,
    into: &mut [u8],
) -> io::Result<usize> {
    let Some(part) = parts.get_mut(*next) else {
        return Ok(0);
    };
    let want = (part.end - part.start).min(into.len() as u64) as usize;
    let got = read_full(file, &mut into[..want], part.start)?;
    if got < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the mbox is shorter than when the session began (another program rewrote it)",
        ));
    }
    part.start += got as u64;
    if part.start == part.end {
        *next += 1;
    }
    Ok(got)
}

impl Read for MessageReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // A caller that reads as much at a time as the buffer holds (the broker's copy to
        // its pipe) gets the octets straight from the file, without a copy between.
        if self.at == self.len && out.len() >= self.buf.len() && !self.buf.is_empty() {
            return next_octets(self.file, &mut self.parts, &mut self.next, out);
        }
        if self.at == self.len && !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.len - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
