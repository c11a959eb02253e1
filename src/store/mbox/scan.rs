//! Reading a spool through the [parser](super::parse): large reads, lines found with `memchr`,
//! the same [`Line`]s as [`split_lines`](super::parse::split_lines) gives for the same bytes,
//! except that a body's lines up to its next `From ` line are counted rather than handed over
//! one by one ([`Parser::body_lines`]), with the same result.

use super::parse::{boundary_at, wire_of_lines, Line, Parser, LINE_HEAD};
use memchr::memmem;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Octets read at a time.
const READ_CHUNK: usize = 128 * 1024;

/// How much of the file a Content-Length probe reads: a `From ` line's start is enough.
const PROBE: usize = 512;

/// Parses `file` from `offset`, which must start a line, to its end as it is now. Returns the
/// parser ended at that end, and the end.
pub(super) fn scan(file: &File, offset: u64) -> io::Result<(Parser, u64)> {
    scan_to(file, offset, u64::MAX)
}

/// As [`scan`], stopping at `limit` if the file is longer: the parse of `[offset, limit)`.
pub(super) fn scan_to(file: &File, offset: u64, limit: u64) -> io::Result<(Parser, u64)> {
    let mut parser = Parser::default();
    let mut probe = |at: u64| {
        let mut buf = [0u8; PROBE];
        match read_full(file, &mut buf, at) {
            Ok(n) => boundary_at(&buf[..n]),
            Err(_) => false,
        }
    };
    let span = usize::try_from(limit.saturating_sub(offset)).unwrap_or(usize::MAX);
    // A range that fits in one read (a header checked before RETR) needs no more room.
    let mut buf = vec![
        0u8;
        if span <= READ_CHUNK {
            span
        } else {
            READ_CHUNK + LINE_HEAD
        }
    ];
    // A line this long is kept as its head and a count (see `long`).
    let too_long = (LINE_HEAD + READ_CHUNK / 2).min(buf.len());
    // buf[start..filled] is unparsed; its first octet is at `base` in the file.
    let (mut start, mut filled, mut base) = (0usize, 0usize, offset);
    // A line longer than the buffer: its head, its offset, and its length so far.
    let mut long: Option<(Vec<u8>, u64, u64)> = None;
    let mut last_cr = false;
    loop {
        if start > 0 {
            buf.copy_within(start..filled, 0);
            base += start as u64;
            filled -= start;
            start = 0;
        }
        let at = base + filled as u64;
        let want = (buf.len() - filled).min(usize::try_from(limit - at).unwrap_or(usize::MAX));
        let n = read_full(file, &mut buf[filled..filled + want], at)?;
        let eof = n < want || at + n as u64 == limit;
        filled += n;
        if let Some((head, at, len)) = &mut long {
            let Some(nl) = memchr::memchr(b'\n', &buf[..filled]) else {
                *len += filled as u64;
                if eof {
                    parser.line(line(*at, *len, 0, head), &mut probe);
                    long = None;
                } else {
                    last_cr = filled > 0 && buf[filled - 1] == b'\r';
                }
                start = filled;
                if eof {
                    break;
                }
                continue;
            };
            let cr = if nl > 0 {
                buf[nl - 1] == b'\r'
            } else {
                last_cr
            };
            *len += (nl + 1) as u64;
            parser.line(line(*at, *len, if cr { 2 } else { 1 }, head), &mut probe);
            long = None;
            start = nl + 1;
        }
        let from_line = memmem::Finder::new(b"\nFrom ");
        'lines: loop {
            if parser.in_body() {
                // A body is passed over up to its next `From ` line, found with one search,
                // and its lines only counted: a large message costs little to find.
                let rest = &buf[start..filled];
                let run = if rest.starts_with(b"From ") {
                    0
                } else {
                    match from_line.find(rest) {
                        Some(nl) => nl + 1,
                        None => memchr::memrchr(b'\n', rest).map_or(0, |nl| nl + 1),
                    }
                };
                if run > 0 {
                    let last = memchr::memrchr(b'\n', &rest[..run - 1]).map_or(0, |nl| nl + 1);
                    let len = run - last;
                    let term = if len > 1 && rest[run - 2] == b'\r' {
                        2
                    } else {
                        1
                    };
                    let head = &rest[last..last + len.min(LINE_HEAD)];
                    let at = base + (start + last) as u64;
                    parser.body_lines(
                        wire_of_lines(&rest[..last]),
                        line(at, len as u64, term, head),
                    );
                    start += run;
                    continue;
                }
            }
            // Any other line, one at a time (one search over the buffer, as long as the lines
            // are not a body's).
            let from = start;
            for nl in memchr::memchr_iter(b'\n', &buf[from..filled]) {
                let nl = from + nl;
                let len = nl + 1 - start;
                let cr = nl > start && buf[nl - 1] == b'\r';
                let l = &buf[start..start + len.min(LINE_HEAD)];
                let term = if cr { 2 } else { 1 };
                parser.line(line(base + start as u64, len as u64, term, l), &mut probe);
                start = nl + 1;
                if parser.in_body() {
                    continue 'lines;
                }
            }
            break;
        }
        if eof {
            if filled > start {
                let len = filled - start;
                let l = &buf[start..start + len.min(LINE_HEAD)];
                parser.line(line(base + start as u64, len as u64, 0, l), &mut probe);
            }
            break;
        }
        if filled - start >= too_long {
            // Too long to keep whole: keep its head, count the rest.
            let head = buf[start..start + LINE_HEAD.min(filled - start)].to_vec();
            last_cr = buf[filled - 1] == b'\r';
            long = Some((head, base + start as u64, (filled - start) as u64));
            start = filled;
        }
    }
    let end = base + filled as u64;
    Ok((parser.end(end), end))
}

fn line(offset: u64, len: u64, term: u8, head: &[u8]) -> Line<'_> {
    Line {
        offset,
        len,
        term,
        head,
    }
}

/// Reads into `buf` from `offset` until it is full or the file ends; the count read.
pub(super) fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
