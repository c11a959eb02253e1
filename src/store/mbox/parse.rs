//! Splitting an mbox into messages, line by line: pure, bytes in, [`Parsed`] messages out.
//!
//! The rules are Dovecot's, so that both serve the same bytes for the same mbox:
//!
//! - A message starts after its `From ` line. A `From ` line is one at the start of the file, or
//!   at the start of a later line when it has a sender and a date ([`is_separator`]).
//! - A message ends just before the line end that precedes the next `From ` line (at the end of
//!   the file, before the file's last line end): the empty line an MTA writes between messages
//!   is not part of either. A body line `From ...` that the MTA escaped as `>From ...` is served
//!   as it is, `>` included (Dovecot does not undo the escape either).
//! - A valid `Content-Length` header whose end lands exactly on such a boundary is trusted:
//!   `From ` lines inside that body do not split it.
//! - The mbox bookkeeping headers that mail readers and IMAP servers rewrite ([`HIDDEN`]) are
//!   not served, continuation lines included; nor are they part of the UIDL digest, so a
//!   reader marking a message read does not change its UIDL.
//!
//! Sizes are counted as sent: each line end as CRLF, a final CRLF added to a message that
//! lacks one, exactly what [`crate::wire_size`] gives for the served bytes.

use super::from_line::is_separator;
use sha2::{Digest, Sha256};
use std::ops::Range;

/// The headers not served, lower case: Dovecot's list (`mbox_hide_headers`).
pub(super) const HIDDEN: [&[u8]; 7] = [
    b"content-length",
    b"status",
    b"x-imap",
    b"x-imapbase",
    b"x-keywords",
    b"x-status",
    b"x-uid",
];

/// The most of a line the parser looks at: the start of a longer line is enough to tell a
/// `From ` line or a header's name, and keeps the memory of a scan bounded by it.
pub(super) const LINE_HEAD: usize = 64 * 1024;

/// One line of the mbox, as the scanner hands it over.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    /// Where the line starts in the file.
    pub(super) offset: u64,
    /// Its whole length, line end included.
    pub(super) len: u64,
    /// The length of its line end: 1 for LF, 2 for CRLF, 0 for a last line without one.
    pub(super) term: u8,
    /// Its first `min(len, LINE_HEAD)` octets.
    pub(super) head: &'a [u8],
}

impl Line<'_> {
    fn content(&self) -> u64 {
        self.len - u64::from(self.term)
    }

    /// What the line adds to a message's size as sent.
    fn wire(&self) -> u64 {
        if self.term > 0 || self.content() > 0 {
            self.content() + 2
        } else {
            0
        }
    }
}

/// One message found in the mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parsed {
    /// Where its `From ` line starts.
    pub(super) from: u64,
    /// Its first octet, just after the `From ` line.
    pub(super) start: u64,
    /// Just after its last served octet.
    pub(super) end: u64,
    /// Where the next message's `From ` line starts, or the end of the file: `[from, next)` is
    /// what removing the message removes.
    pub(super) next: u64,
    /// Size as sent.
    pub(super) size: u64,
    /// Its hidden header lines: indices into [`Parser::hidden`].
    pub(super) hidden: Range<usize>,
    /// SHA-256 of its `From ` line and served header lines, cut to 128 bits.
    pub(super) digest: [u8; 16],
    /// Its `X-UIDL` header, when it holds a valid UIDL.
    pub(super) x_uidl: Option<Box<str>>,
    /// Just after its header's empty line (or `next`, for a message that has none):
    /// `[from, body)` is what [`digest`](Parsed::digest) covers, checked again before the
    /// message is served (another program that rewrote the mbox is caught, not served).
    pub(super) body: u64,
}

#[derive(Debug)]
enum Part {
    /// In the header; true while in a hidden field (its continuation lines are hidden too).
    Header {
        hiding: bool,
    },
    Body,
}

#[derive(Debug)]
struct Current {
    from: u64,
    start: u64,
    size: u64,
    part: Part,
    hidden_from: usize,
    sha: Sha256,
    x_uidl: Option<Box<str>>,
    content_length: Option<u64>,
    /// A trusted Content-Length: `From ` lines before this boundary do not split.
    fixed_end: Option<u64>,
    body: Option<u64>,
    /// The last line seen: its line end is dropped if a `From ` line or the end follows.
    last: Option<(u8, bool, u64)>,
}

/// The message splitter, fed one [`Line`] at a time.
#[derive(Debug, Default)]
pub(super) struct Parser {
    pub(super) messages: Vec<Parsed>,
    /// Hidden header lines of every message, in file order.
    pub(super) hidden: Vec<Range<u64>>,
    /// Octets before the first `From ` line: not a message, left alone.
    pub(super) junk: u64,
    cur: Option<Current>,
}

impl Parser {
    /// Feeds the next line. `probe(offset)` says whether the mbox has a message boundary at
    /// `offset` (see [`boundary_at`]); it is asked only for Content-Length headers.
    pub(super) fn line(&mut self, line: Line, probe: &mut dyn FnMut(u64) -> bool) {
        let starts_message = match &self.cur {
            None => {
                (line.offset == 0 && line.head.starts_with(b"From ")) || is_separator(line.head)
            }
            Some(cur) => {
                cur.last.is_some()
                    && is_separator(line.head)
                    && cur
                        .fixed_end
                        .is_none_or(|end| boundary(cur, line.offset) >= end)
            }
        };
        if starts_message {
            self.finish(line.offset);
            let mut sha = Sha256::new();
            sha.update(line.head);
            let cur = Current {
                from: line.offset,
                start: line.offset + line.len,
                size: 0,
                part: Part::Header { hiding: false },
                hidden_from: self.hidden.len(),
                sha,
                x_uidl: None,
                content_length: None,
                fixed_end: None,
                body: None,
                last: None,
            };
            self.cur = Some(cur);
            return;
        }
        let Some(cur) = &mut self.cur else {
            self.junk += line.len;
            return;
        };
        let mut served = true;
        match cur.part {
            Part::Body => {}
            Part::Header { .. } if line.content() == 0 => {
                cur.part = Part::Body;
                cur.body = Some(line.offset + line.len);
                if let Some(len) = cur.content_length {
                    let end = (line.offset + line.len).saturating_add(len);
                    if probe(end) {
                        cur.fixed_end = Some(end);
                    }
                }
            }
            Part::Header { hiding } if matches!(line.head[0], b' ' | b'\t') => {
                served = !hiding;
            }
            Part::Header { .. } => {
                let (name, value) = field(line.head);
                let hide = HIDDEN.iter().any(|h| name.eq_ignore_ascii_case(h));
                if hide && name.eq_ignore_ascii_case(b"content-length") {
                    cur.content_length =
                        std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                } else if name.eq_ignore_ascii_case(b"x-uidl") && cur.x_uidl.is_none() {
                    cur.x_uidl = valid_uidl(value);
                }
                cur.part = Part::Header { hiding: hide };
                served = !hide;
            }
        }
        if matches!(cur.part, Part::Header { .. }) && served {
            cur.sha.update(line.head);
        }
        if served {
            cur.size += line.wire();
        } else {
            let range = line.offset..line.offset + line.len;
            let ours = self.hidden.len() > cur.hidden_from;
            match self.hidden.last_mut() {
                Some(prev) if ours && prev.end == range.start => prev.end = range.end,
                _ => self.hidden.push(range),
            }
        }
        cur.last = Some((line.term, served, line.content()));
    }

    /// True while the current message's body is being read, where whole lines that do not
    /// start with `From ` may be given at once ([`body_lines`](Self::body_lines)).
    pub(super) fn in_body(&self) -> bool {
        matches!(
            self.cur,
            Some(Current {
                part: Part::Body,
                ..
            })
        )
    }

    /// Feeds body lines at once, as [`line`](Self::line) would one by one: lines whose size
    /// as sent is `wire` ([`wire_of_lines`]), then `last`. None of them may start with
    /// `From `, and the parser must be [`in_body`](Self::in_body): such lines then only add to
    /// the message's size, which is what makes a large body quick to pass over.
    pub(super) fn body_lines(&mut self, wire: u64, last: Line) {
        debug_assert!(self.in_body() && !last.head.starts_with(b"From "));
        if let Some(cur) = &mut self.cur {
            cur.size += wire + last.wire();
            cur.last = Some((last.term, true, last.content()));
        }
    }

    /// Ends the parse at the end of the file, `len`.
    pub(super) fn end(mut self, len: u64) -> Parser {
        self.finish(len);
        self
    }

    /// Ends the current message, whose successor (or the end of file) starts at `next`.
    fn finish(&mut self, next: u64) {
        let Some(cur) = self.cur.take() else { return };
        let end = boundary(&cur, next);
        let mut size = cur.size;
        if let Some((term, true, 0)) = cur.last {
            // An empty last line loses its line end and with it all it was.
            if term > 0 {
                size -= 2;
            }
        }
        // A hidden last line reaches past the end only by the dropped line end.
        for range in &mut self.hidden[cur.hidden_from..] {
            range.end = range.end.min(end);
        }
        self.hidden.retain(|r| r.start < r.end);
        let digest = cur.sha.finalize();
        let mut short = [0; 16];
        short.copy_from_slice(&digest[..16]);
        self.messages.push(Parsed {
            from: cur.from,
            start: cur.start,
            end,
            next,
            size,
            hidden: cur.hidden_from..self.hidden.len(),
            digest: short,
            x_uidl: cur.x_uidl,
            body: cur.body.unwrap_or(next),
        });
    }
}

/// Where the current message would end if its successor started at `next`: before the line
/// end of its last line.
fn boundary(cur: &Current, next: u64) -> u64 {
    next - cur.last.map_or(0, |(term, _, _)| u64::from(term))
}

/// The size as sent of `lines`, whole lines each ending with a LF: every line end counts as
/// CRLF, so each LF without a CR before it adds one octet.
pub(super) fn wire_of_lines(lines: &[u8]) -> u64 {
    // memchr counts octets with wide compares; CRs are rare in a Unix spool, and looked at
    // one by one only where there are some.
    let lfs = memchr::memchr_iter(b'\n', lines).count();
    let crlfs = memchr::memchr_iter(b'\r', lines)
        .filter(|&cr| lines.get(cr + 1) == Some(&b'\n'))
        .count();
    (lines.len() + lfs - crlfs) as u64
}

/// A header line's name (trailing blanks cut) and value (blanks and line end cut).
fn field(line: &[u8]) -> (&[u8], &[u8]) {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let (name, value) = match line.iter().position(|&b| b == b':') {
        Some(colon) => (&line[..colon], &line[colon + 1..]),
        None => (line, &line[line.len()..]),
    };
    let name_end = name.iter().rposition(|b| !blank(b)).map_or(0, |i| i + 1);
    let first = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let last = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(first, |i| i + 1);
    (&name[..name_end], &value[first..last])
}

/// An `X-UIDL` value usable as a UIDL: 1 to 70 octets in 0x21..=0x7E (RFC 1939 §7).
fn valid_uidl(value: &[u8]) -> Option<Box<str>> {
    let ok = (1..=70).contains(&value.len()) && value.iter().all(|b| (0x21..=0x7E).contains(b));
    // All ASCII, so valid UTF-8.
    ok.then(|| String::from_utf8_lossy(value).into())
}

/// True if `rest`, the mbox from some offset on, starts with a message boundary as a
/// Content-Length must end at: the file's last line end, or a line end and a `From ` line.
pub(super) fn boundary_at(rest: &[u8]) -> bool {
    let after = if let Some(r) = rest.strip_prefix(b"\r\n") {
        r
    } else if let Some(r) = rest.strip_prefix(b"\n") {
        r
    } else {
        return false;
    };
    after.is_empty() || is_separator(after)
}

/// Calls `f` with each line of `bytes`, which start at `offset` in the file.
#[cfg(test)]
pub(super) fn split_lines(bytes: &[u8], offset: u64, mut f: impl FnMut(Line)) {
    let mut at = 0;
    while at < bytes.len() {
        let (len, term) = match memchr::memchr(b'\n', &bytes[at..]) {
            Some(i) => {
                let cr = i > 0 && bytes[at + i - 1] == b'\r';
                (i + 1, if cr { 2 } else { 1 })
            }
            None => (bytes.len() - at, 0),
        };
        f(Line {
            offset: offset + at as u64,
            len: len as u64,
            term,
            head: &bytes[at..at + len.min(LINE_HEAD)],
        });
        at += len;
    }
}

/// Parses a whole mbox held in memory (the tests' way; the store streams the file).
#[cfg(test)]
pub(super) fn parse(bytes: &[u8]) -> Parser {
    let mut parser = Parser::default();
    split_lines(bytes, 0, |line| {
        parser.line(line, &mut |at| {
            usize::try_from(at)
                .ok()
                .and_then(|at| bytes.get(at..))
                .is_some_and(boundary_at)
        })
    });
    parser.end(bytes.len() as u64)
}

/// The served octets of message `m` of a parse of `bytes` (the tests' way).
#[cfg(test)]
pub(super) fn served(bytes: &[u8], parser: &Parser, m: usize) -> Vec<u8> {
    let msg = &parser.messages[m];
    let mut out = Vec::new();
    let mut at = msg.start;
    for h in &parser.hidden[msg.hidden.clone()] {
        out.extend_from_slice(&bytes[at as usize..h.start as usize]);
        at = h.end;
    }
    out.extend_from_slice(&bytes[at as usize..msg.end as usize]);
    out
}
