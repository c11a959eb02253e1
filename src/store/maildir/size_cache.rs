//! The sizes of messages whose names carry no `,W=`, remembered between sessions.
//!
//! Without `,W=` (Postfix and maildrop deliveries, for instance) a message's size as sent can only
//! be had by reading it: every login would read the whole mailbox. But a Maildir message never
//! changes once delivered, and its base name is unique, so base name → size holds for as long as
//! the message exists. This file keeps those pairs, in the Maildir root beside the lock:
//!
//! ```text
//! pop3d sizes 1
//! 4117 1700004037.M000001P4.host,S=4089
//! 2210 1700004074.M000002P4.host,S=2181
//! ```
//!
//! Lines are sorted by base name, the order the scan sorts messages in, so the file is read in
//! step with the scan: one line at a time, whatever the size of the mailbox. It is checked
//! against the directory at every login: an entry is used only for a name the scan has just
//! found, the messages the file does not know are read, and when there were any, or entries for
//! messages since removed, the file is written again — to a temporary file renamed over the old
//! one, so a reader never sees half of it. Anything unexpected in it (a bad line, names out of
//! order) ends its use for that login, and it is rewritten. It is only a cache: when it cannot be
//! read or written, sizes are counted as before.
//!
//! Only pop3d writes it, and only while holding the mailbox lock; but whoever owns the Maildir
//! can write it too, so a size from it is believed only near the file's own size (see
//! [`believable`](super::naming::believable)).

use crate::store::dir::Dir;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The cache, in the Maildir root.
pub(super) const FILE: &str = "pop3d.sizes";

/// Where a new cache is written before it is renamed over [`FILE`].
const TEMPORARY: &str = "pop3d.sizes.new";

/// The first line: the format and its version.
const HEADER: &[u8] = b"pop3d sizes 1\n";

/// A file of this format: `<number> <base name>` lines sorted by base name, after a header.
/// The size cache is one; the [retrieval record](super::retrievals) is another.
pub(super) struct Layout {
    /// The file, in the Maildir root.
    pub(super) file: &'static str,
    /// Where a new file is written before it is renamed over `file`.
    pub(super) temporary: &'static str,
    /// The first line, LF included: what the file is, and the version of its format.
    pub(super) header: &'static [u8],
}

/// The size cache's own layout.
const SIZES: Layout = Layout {
    file: FILE,
    temporary: TEMPORARY,
    header: HEADER,
};

/// Longest line accepted: a size, a space, and a base name (at most 255 octets on every file
/// system a Maildir lives on).
const MAX_LINE: usize = 20 + 1 + 255 + 1;

/// Reads the cache in step with a sorted scan.
pub(super) struct Reader {
    /// `None` when there is no cache, or once it turned out to be unusable.
    lines: Option<BufReader<File>>,
    line: Vec<u8>,
    /// The entry read but not yet matched: (name, size).
    pending: Option<(Vec<u8>, u64)>,
    /// The last name read, to check the order.
    last: Vec<u8>,
    /// Entries used, entries for names the scan did not find.
    used: usize,
    stale: usize,
    /// Something in the file was wrong: it must be rewritten.
    damaged: bool,
}

impl Reader {
    /// Opens the cache of the Maildir `root` (shown as `shown`). A missing or unreadable file
    /// is an empty cache.
    pub(super) fn open(root: &Dir, shown: &Path) -> Reader {
        Reader::open_layout(root, shown, &SIZES)
    }

    /// Opens the file of `layout` in the Maildir `root` (shown as `shown`), as [`open`](Self::open)
    /// does the cache.
    pub(super) fn open_layout(root: &Dir, shown: &Path, layout: &Layout) -> Reader {
        let mut reader = Reader {
            lines: None,
            line: Vec::with_capacity(MAX_LINE),
            pending: None,
            last: Vec::new(),
            used: 0,
            stale: 0,
            damaged: false,
        };
        // Anything but a regular file (a symlink, a FIFO) is refused.
        let file = match super::message_file::open_regular(root, OsStr::new(layout.file)) {
            Ok(file) => file,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    log::debug!("{}/{}: not read: {e}", shown.display(), layout.file);
                    reader.damaged = true;
                }
                return reader;
            }
        };
        let mut lines = BufReader::new(file);
        if read_line(&mut lines, &mut reader.line).is_ok() && reader.line == layout.header {
            reader.lines = Some(lines);
        } else {
            reader.damaged = true;
        }
        reader
    }

    /// The number remembered for the message with base name `name` (its size, in the cache). Names
    /// must be asked for in ascending order (the order of [`super::scan`]).
    pub(super) fn value_of(&mut self, name: &OsStr) -> Option<u64> {
        let name = name.as_bytes();
        loop {
            if self.pending.is_none() {
                self.pending = self.next_entry();
            }
            let (entry, size) = self.pending.as_ref()?;
            match entry.as_slice().cmp(name) {
                std::cmp::Ordering::Less => {
                    self.stale += 1;
                    self.pending = None;
                }
                std::cmp::Ordering::Equal => {
                    let size = *size;
                    self.used += 1;
                    self.pending = None;
                    return Some(size);
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
    }

    /// True if the file should be written again: it held entries for messages that are gone,
    /// or something in it was wrong. Reads what is left of it to know.
    pub(super) fn needs_rewrite(&mut self) -> bool {
        if self.pending.take().is_some() {
            self.stale += 1;
        }
        while self.next_entry().is_some() {
            self.stale += 1;
        }
        self.stale > 0 || self.damaged
    }

    /// The next well-formed entry, in order; `None` at the end or at the first fault.
    fn next_entry(&mut self) -> Option<(Vec<u8>, u64)> {
        let lines = self.lines.as_mut()?;
        match read_line(lines, &mut self.line) {
            Ok(0) => {
                self.lines = None;
                return None;
            }
            Ok(_) => {}
            Err(_) => return self.give_up(),
        }
        let Some(entry) = parse(&self.line) else {
            return self.give_up();
        };
        // Names are never empty, so the first entry is always past the initial empty `last`.
        if entry.0.as_slice() <= self.last.as_slice() {
            return self.give_up();
        }
        self.last.clear();
        self.last.extend_from_slice(&entry.0);
        Some(entry)
    }

    fn give_up(&mut self) -> Option<(Vec<u8>, u64)> {
        self.lines = None;
        self.damaged = true;
        None
    }
}

/// Reads one line, LF included, of at most [`MAX_LINE`] octets. `Ok(0)` at the end of the file;
/// an error for a longer line.
fn read_line<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> io::Result<usize> {
    line.clear();
    let n = Read::take(reader, MAX_LINE as u64).read_until(b'\n', line)?;
    if n > 0 && line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "line too long or unterminated",
        ));
    }
    Ok(n)
}

/// `<digits> <name>\n` → (name, size).
fn parse(line: &[u8]) -> Option<(Vec<u8>, u64)> {
    let line = line.strip_suffix(b"\n")?;
    let space = line.iter().position(|&b| b == b' ')?;
    let (digits, name) = (&line[..space], &line[space + 1..]);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !cacheable(name) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((name.to_vec(), size))
}

/// Names the file can hold: not empty, no LF, no `/` or NUL (no file name has those anyway).
fn cacheable(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.iter().any(|&b| matches!(b, b'\n' | b'/' | 0))
}

/// Writes the cache of the Maildir `root`: `entries` in ascending order of name. Names the
/// format cannot hold are left out (their messages are counted at each login).
pub(super) fn write<'a>(
    root: &Dir,
    entries: impl Iterator<Item = (&'a OsStr, u64)>,
) -> io::Result<()> {
    write_layout(root, &SIZES, entries)
}

/// Writes the file of `layout` in the Maildir `root`, as [`write`] does the cache.
pub(super) fn write_layout<'a>(
    root: &Dir,
    layout: &Layout,
    entries: impl Iterator<Item = (&'a OsStr, u64)>,
) -> io::Result<()> {
    let temporary = OsStr::new(layout.temporary);
    // A fresh file: an old one could be a hard link, planted by whoever can write in the
    // Maildir, to a file of ours that truncating would destroy.
    match root.unlink(temporary) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = root.open_file(
        temporary,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        0o600,
    )?;
    let mut out = BufWriter::new(file);
    out.write_all(layout.header)?;
    for (name, size) in entries {
        let name = name.as_bytes();
        if cacheable(name) {
            write!(out, "{size} ")?;
            out.write_all(name)?;
            out.write_all(b"\n")?;
        }
    }
    out.into_inner().map_err(|e| e.into_error())?;
    root.rename(temporary, OsStr::new(layout.file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::fs;

    /// The test directory, opened as a Maildir root is.
    fn root(dir: &TestDir) -> Dir {
        Dir::open(dir.path()).expect("open")
    }

    fn read(dir: &TestDir) -> Reader {
        Reader::open(&root(dir), dir.path())
    }

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn written_sizes_are_read_back_in_step_with_the_scan() {
        let dir = TestDir::new("size-cache");
        let entries = [(os("1000.a"), 12), (os("1001.b"), 0), (os("2000.c,S=5"), 7)];
        write(&root(&dir), entries.iter().copied()).expect("write");
        assert!(!dir.path().join(TEMPORARY).exists());
        let mut r = read(&dir);
        assert_eq!(r.value_of(os("0999.new")), None);
        assert_eq!(r.value_of(os("1000.a")), Some(12));
        assert_eq!(r.value_of(os("1001.b")), Some(0));
        assert_eq!(r.value_of(os("1500.new")), None);
        assert_eq!(r.value_of(os("2000.c,S=5")), Some(7));
        assert_eq!(r.value_of(os("3000.new")), None);
        assert!(!r.needs_rewrite());
    }

    #[test]
    fn entries_of_removed_messages_call_for_a_rewrite() {
        let dir = TestDir::new("size-cache");
        let entries = [(os("1000.a"), 1), (os("2000.b"), 2), (os("3000.c"), 3)];
        write(&root(&dir), entries.iter().copied()).expect("write");
        let mut r = read(&dir);
        assert_eq!(r.value_of(os("2000.b")), Some(2));
        assert!(r.needs_rewrite());
        // The last one alone, unasked for, is stale too.
        let mut r = read(&dir);
        assert_eq!(r.value_of(os("1000.a")), Some(1));
        assert_eq!(r.value_of(os("2000.b")), Some(2));
        assert!(r.needs_rewrite());
    }

    #[test]
    fn no_cache_is_an_empty_one() {
        let dir = TestDir::new("size-cache");
        let mut r = read(&dir);
        assert_eq!(r.value_of(os("1000.a")), None);
        assert!(!r.needs_rewrite());
    }

    #[test]
    fn a_damaged_cache_is_used_up_to_the_fault_then_rewritten() {
        let dir = TestDir::new("size-cache");
        let cases: [&[u8]; 7] = [
            b"pop3d sizes 2\n1 a\n",
            b"1 a\n",
            b"pop3d sizes 1\n1 a\nx b\n",
            b"pop3d sizes 1\n1 a\n2 c\n3 b\n",
            b"pop3d sizes 1\n1 a\n2 \n",
            b"pop3d sizes 1\n1 a\n2 b",
            b"pop3d sizes 1\n1 a\n\0\0\0\0\0\0",
        ];
        for (i, contents) in cases.iter().enumerate() {
            fs::write(dir.path().join(FILE), contents).expect("write");
            let mut r = read(&dir);
            let first = r.value_of(os("a"));
            assert_eq!(first, if i < 2 { None } else { Some(1) }, "case {i}");
            assert_eq!(r.value_of(os("b")), None, "case {i}");
            assert!(r.needs_rewrite(), "case {i}");
        }
        let long = format!("pop3d sizes 1\n1 {}\n", "x".repeat(300));
        fs::write(dir.path().join(FILE), long).expect("write");
        assert!(read(&dir).needs_rewrite());
    }

    #[test]
    fn names_the_format_cannot_hold_are_left_out() {
        let dir = TestDir::new("size-cache");
        let odd = OsStr::from_bytes(b"2000.line\nbreak");
        let entries = [(os("1000.a"), 1), (odd, 2), (os("3000.c"), 3)];
        write(&root(&dir), entries.iter().copied()).expect("write");
        let mut r = read(&dir);
        assert_eq!(r.value_of(os("1000.a")), Some(1));
        assert_eq!(r.value_of(odd), None);
        assert_eq!(r.value_of(os("3000.c")), Some(3));
        assert!(!r.needs_rewrite());
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = TestDir::new("size-cache");
        let target = dir.path().join("elsewhere");
        fs::write(&target, b"pop3d sizes 1\n1 a\n").expect("write");
        std::os::unix::fs::symlink(&target, dir.path().join(FILE)).expect("symlink");
        let mut r = read(&dir);
        assert_eq!(r.value_of(os("a")), None);
        // A link planted at the temporary name is replaced, never written through.
        std::os::unix::fs::symlink(&target, dir.path().join(TEMPORARY)).expect("symlink");
        write(&root(&dir), [(os("b"), 2)].into_iter()).expect("write beside the link");
        assert_eq!(fs::read(&target).expect("read"), b"pop3d sizes 1\n1 a\n");
    }

    #[test]
    fn a_hard_link_at_the_temporary_name_is_not_written_through() {
        let dir = TestDir::new("size-cache");
        let target = dir.path().join("precious");
        fs::write(&target, b"keep me\n").expect("write");
        fs::hard_link(&target, dir.path().join(TEMPORARY)).expect("hard link");
        write(&root(&dir), [(os("b"), 2)].into_iter()).expect("write");
        assert_eq!(fs::read(&target).expect("read"), b"keep me\n");
        assert_eq!(read(&dir).value_of(os("b")), Some(2));
    }
}
