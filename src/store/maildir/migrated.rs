//! The UIDLs another server showed for a Maildir's messages, read from that server's own file
//! in the Maildir's root: `dovecot-uidlist` (Dovecot) or `courierpop3dsizelist` (Courier).
//!
//! These files are written by another program, perhaps still running, perhaps by the
//! mailbox's owner: they are read with bounded sizes (a line of at most [`MAX_LINE`] octets,
//! at most [`MAX_FILE`] in all), a line that does not parse is skipped, and a file whose
//! header does not parse is not used at all. Either way the messages keep the Maildir UIDL, so
//! nothing in the file can do worse than make a client download a message again. The parsing
//! is pure (a line in, a typed entry out); only [`read`] touches the file.

use super::message_file::open_regular;
use super::uidl_format::UidlFormat;
use crate::store::dir::Dir;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Dovecot's UID ↔ file name list, in the Maildir's root (its default control directory).
pub(super) const DOVECOT_UIDLIST: &str = "dovecot-uidlist";

/// Courier pop3d's list of sizes and POP3 numbers, in the Maildir's root.
pub(super) const COURIER_SIZELIST: &str = "courierpop3dsizelist";

/// Longest line read: a UID, a few extension fields (a 70-octet stored UIDL, a 32-digit GUID,
/// sizes) and a file name of at most 255 octets fit with room to spare. A longer line is
/// skipped.
const MAX_LINE: usize = 4096;

/// Most octets read from one file: about 100 octets a message, so half a million messages;
/// the rest of a larger file is not read (those messages keep the Maildir UIDL).
const MAX_FILE: u64 = 64 << 20;

/// Longest UIDL (RFC 1939 §7).
const MAX_UIDL: usize = 70;

/// One message the other server knew: its base name and the UIDL it showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry<'a> {
    pub(super) basename: &'a [u8],
    pub(super) uidl: String,
}

/// What a file's header line says: which format its entries are in, and the mailbox's
/// validity number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Header {
    /// Dovecot version 1 (`1 <uidvalidity> <nextuid>`), also Courier IMAP's layout.
    DovecotV1 { uid_validity: u32 },
    /// Dovecot version 3 (`3 V<uidvalidity> N<nextuid> G<guid> ...`).
    DovecotV3 { uid_validity: u32 },
    /// Courier pop3d (`/<version> <nextuid> <uidvalidity>`, versions 2 and 3).
    Courier,
}

/// Calls `found` with each entry of `format`'s file in the Maildir `root` (shown as `shown`).
/// A missing file is no entry; any other problem is logged and ends the reading.
pub(super) fn read(root: &Dir, shown: &Path, format: UidlFormat, mut found: impl FnMut(Entry<'_>)) {
    let name = match format {
        UidlFormat::Maildir | UidlFormat::XUidl => return,
        UidlFormat::Dovecot => DOVECOT_UIDLIST,
        UidlFormat::Courier => COURIER_SIZELIST,
    };
    let warn = |what: &dyn std::fmt::Display| {
        log::warn!(
            "{}/{name}: {what}; messages not found there keep the maildir UIDL",
            shown.display()
        )
    };
    let file = match open_regular(root, OsStr::new(name)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            log::info!(
                "{}/{name}: none; every message keeps the maildir UIDL",
                shown.display()
            );
            return;
        }
        Err(e) => return warn(&e),
    };
    let mut lines = BufReader::new(file.take(MAX_FILE));
    let mut line = Vec::with_capacity(MAX_LINE);
    let header = match next_line(&mut lines, &mut line) {
        Ok(true) => match header(format, &line) {
            Some(header) => header,
            None => return warn(&"header not understood; file not used"),
        },
        Ok(false) => return warn(&"empty"),
        Err(e) => return warn(&e),
    };
    let mut skipped = 0u64;
    loop {
        match next_line(&mut lines, &mut line) {
            Ok(true) => match entry(header, &line) {
                Some(e) => found(e),
                None => skipped += 1,
            },
            Ok(false) => break,
            Err(e) => {
                warn(&e);
                break;
            }
        }
    }
    if skipped > 0 {
        log::info!(
            "{}/{name}: {skipped} lines not understood, skipped",
            shown.display()
        );
    }
}

/// Reads the next line (without its line end) into `line`; false at the end. A line longer
/// than [`MAX_LINE`] comes back empty (so it parses as nothing) after the rest of it is
/// passed over.
fn next_line<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let n = Read::take(&mut *reader, MAX_LINE as u64).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if n == MAX_LINE {
        line.clear();
        skip_line(reader)?;
    }
    Ok(true)
}

/// Passes over the rest of a line, a buffer at a time.
fn skip_line<R: BufRead>(reader: &mut R) -> io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// The header line of `format`'s file, if it is one this module reads.
pub(super) fn header(format: UidlFormat, line: &[u8]) -> Option<Header> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split(' ');
    match format {
        UidlFormat::Maildir | UidlFormat::XUidl => None,
        UidlFormat::Dovecot => match fields.next()? {
            "1" => Some(Header::DovecotV1 {
                uid_validity: number(fields.next()?)?,
            }),
            "3" => {
                let v = fields.find_map(|f| f.strip_prefix('V'))?;
                Some(Header::DovecotV3 {
                    uid_validity: number(v)?,
                })
            }
            _ => None,
        },
        UidlFormat::Courier => match fields.next()? {
            "/2" | "/3" => Some(Header::Courier),
            _ => None,
        },
    }
}

/// One entry line of a file whose header is `header`; `None` if it does not parse.
pub(super) fn entry(header: Header, line: &[u8]) -> Option<Entry<'_>> {
    match header {
        Header::DovecotV1 { uid_validity } => {
            // `<uid> <filename>`
            let (uid, name) = split_once(line, b' ')?;
            dovecot(uid, None, name, uid_validity)
        }
        Header::DovecotV3 { uid_validity } => {
            // `<uid> [<key><value> ...] :<filename>`: the first field that starts with `:`
            // begins the file name, which runs to the end of the line.
            let (uid, mut rest) = split_once(line, b' ')?;
            let mut stored = None;
            loop {
                if let Some(name) = rest.strip_prefix(b":") {
                    return dovecot(uid, stored, name, uid_validity);
                }
                let (field, more) = split_once(rest, b' ')?;
                if let Some(value) = field.strip_prefix(b"P") {
                    stored.get_or_insert(value);
                }
                rest = more;
            }
        }
        Header::Courier => {
            // `<filename> <size> <uid>:<uidvalidity>[:<utf8>]`, split at the last two spaces
            // as Courier does.
            let (rest, numbers) = rsplit_once(line, b' ')?;
            let (name, size) = rsplit_once(rest, b' ')?;
            number::<u64>(std::str::from_utf8(size).ok()?)?;
            let mut parts = std::str::from_utf8(numbers).ok()?.split(':');
            let uid: u64 = number(parts.next()?)?;
            let validity: u64 = number(parts.next()?)?;
            let basename = basename(name)?;
            let uidl = match (uid, validity) {
                (0, _) => courier_name_uidl(basename),
                (n, 0) => format!("UID{n}"),
                (n, v) => format!("UID{n}-{v}"),
            };
            valid_uidl(&uidl).then_some(Entry { basename, uidl })
        }
    }
}

/// A Dovecot entry: the stored POP3 UIDL if it is a valid one, else `%08Xu%08Xv` (which
/// Dovecot 2.3 writes in lower-case hex digits, despite the capital X).
fn dovecot<'a>(
    uid: &[u8],
    stored: Option<&[u8]>,
    name: &'a [u8],
    uid_validity: u32,
) -> Option<Entry<'a>> {
    let uid: u32 = number(std::str::from_utf8(uid).ok()?)?;
    if uid == 0 {
        return None;
    }
    let basename = basename(name)?;
    let stored = stored
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| valid_uidl(s));
    let uidl = match stored {
        Some(s) => s.to_owned(),
        None => format!("{uid:08x}{uid_validity:08x}"),
    };
    Some(Entry { basename, uidl })
}

/// Courier's UIDL for an entry it has not numbered: the base name, each octet outside 0x21 to
/// 0x7E, and `'`, `"` and `+`, written as `+` and two upper-case hex digits.
fn courier_name_uidl(basename: &[u8]) -> String {
    let mut out = String::with_capacity(basename.len());
    for &b in basename {
        if (0x21..=0x7e).contains(&b) && !matches!(b, b'\'' | b'"' | b'+') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The file name up to its first `:`, if it can be a Maildir message's: not empty, no `/`.
fn basename(name: &[u8]) -> Option<&[u8]> {
    let end = name.iter().position(|&b| b == b':').unwrap_or(name.len());
    let base = &name[..end];
    (!base.is_empty() && !base.contains(&b'/') && base.len() <= 255).then_some(base)
}

/// 1 to 70 characters from 0x21 to 0x7E (RFC 1939 §7).
pub(super) fn valid_uidl(s: &str) -> bool {
    (1..=MAX_UIDL).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Decimal digits alone (no sign, no space) as a number that fits.
fn number<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

use std::str::FromStr;

fn split_once(s: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == at)?;
    Some((&s[..i], &s[i + 1..]))
}

fn rsplit_once(s: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().rposition(|&b| b == at)?;
    Some((&s[..i], &s[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dovecot_entries(file: &str) -> Vec<(String, String)> {
        let mut lines = file.split('\n');
        let Some(h) = header(UidlFormat::Dovecot, lines.next().unwrap().as_bytes()) else {
            return Vec::new();
        };
        lines
            .filter_map(|l| entry(h, l.as_bytes()))
            .map(|e| (String::from_utf8(e.basename.to_vec()).unwrap(), e.uidl))
            .collect()
    }

    #[test]
    fn dovecot_version_3() {
        let file = "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n\
                    25006 :1276528487.M364837P9451.kurkku,S=1355,W=1394:2,\n\
                    25017 W2481 :1276533073.M242911P3632.kurkku:2,F\n\
                    25018 W10 Pold-uidl-1 G00ff :1276533074.M1P1.kurkku\n\
                    7 :with space.name";
        assert_eq!(
            dovecot_entries(file),
            [
                (
                    "1276528487.M364837P9451.kurkku,S=1355,W=1394",
                    "000061ae4c0907b0"
                ),
                ("1276533073.M242911P3632.kurkku", "000061b94c0907b0"),
                ("1276533074.M1P1.kurkku", "old-uidl-1"),
                ("with space.name", "000000074c0907b0"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn dovecot_version_1() {
        let file = "1 1700000000 3\n1 1700000000.M1P1.h:2,S\n2 1700000001.M2P1.h";
        assert_eq!(
            dovecot_entries(file),
            [
                ("1700000000.M1P1.h", "000000016553f100"),
                ("1700000001.M2P1.h", "000000026553f100"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn malformed_dovecot_lines_are_skipped() {
        let file = "3 V1 N2\n\
                    x :name1\n\
                    0 :name2\n\
                    4294967296 :name3\n\
                    5 W1\n\
                    6 :\n\
                    7 :a/b\n\
                    8 P :name8\n\
                    9 P\u{7f}bad :name9\n\
                    -1 :name10\n\
                    10 :name11";
        assert_eq!(
            dovecot_entries(file),
            [
                ("name8", "0000000800000001"),
                ("name9", "0000000900000001"),
                ("name11", "0000000a00000001"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(
            dovecot_entries("2 V1\n1 :a").is_empty(),
            "version 2 not read"
        );
        assert!(dovecot_entries("3 N1\n1 :a").is_empty(), "no UIDVALIDITY");
        assert!(dovecot_entries("\n1 :a").is_empty());
    }

    #[test]
    fn courier_lists() {
        let h = header(UidlFormat::Courier, b"/3 7 1700000000").unwrap();
        let e = |l: &str| entry(h, l.as_bytes()).map(|e| (e.basename.to_vec(), e.uidl));
        assert_eq!(
            e("1700.M1P1.h:2,S 120 5:1700000000:0"),
            Some((b"1700.M1P1.h".to_vec(), "UID5-1700000000".into()))
        );
        assert_eq!(
            e("1700.M2P1.h 120 6:0"),
            Some((b"1700.M2P1.h".to_vec(), "UID6".into()))
        );
        assert_eq!(
            e("17+0 \"x\" 12 0:0"),
            Some((b"17+0 \"x\"".to_vec(), "17+2B0+20+22x+22".into()))
        );
        assert_eq!(e("name 12 x:1"), None);
        assert_eq!(e("name 1x 1:1"), None);
        assert_eq!(e("name"), None);
        assert_eq!(header(UidlFormat::Courier, b"/1 7 1"), None);
        assert_eq!(header(UidlFormat::Courier, b"3 V1"), None);
    }

    #[test]
    fn long_lines_are_passed_over() {
        let mut text = b"short\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE * 3));
        text.extend(b"\nnext\nlast");
        let mut reader = io::Cursor::new(text);
        let mut line = Vec::new();
        let mut got = Vec::new();
        while next_line(&mut reader, &mut line).unwrap() {
            got.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(got, ["short", "", "next", "last"]);
    }
}
