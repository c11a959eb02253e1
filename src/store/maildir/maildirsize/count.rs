//! Counting a Maildir as a Maildir++ recalculation counts it.

use super::super::naming::{basename, disk_size_hint};
use crate::store::delivery::Usage;
use crate::store::dir::{Dir, Kind};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

/// The mtimes of the directories a count looked at (`None` for one that is missing).
pub(super) type Stamps = Vec<Option<(i64, i64)>>;

/// The Trash folder, left out of the count as Courier leaves it out.
const TRASH: &[u8] = b".Trash";

/// The size a quota counts for the file `name` of `file_size` octets: its `,S=`, else its size.
fn counted_size(name: &OsStr, file_size: u64) -> u64 {
    disk_size_hint(basename(name)).unwrap_or(file_size)
}

/// Whether a message file counts at all: not when flagged deleted (`T` after `:2,`).
pub(in crate::store::maildir) fn counts(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    match bytes.windows(3).position(|w| w == b":2,") {
        Some(at) => !bytes[at + 3..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .any(|&b| b == b'T'),
        None => true,
    }
}

/// Counts one message directory; returns its mtime. A missing directory counts nothing.
fn count_dir(parent: &Dir, sub: &OsStr, usage: &mut Usage) -> io::Result<Option<(i64, i64)>> {
    let dir = match parent.open_dir(sub) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mtime = dir.stat_self()?.mtime;
    for (name, kind) in dir.entries()? {
        if name.as_bytes().first() == Some(&b'.') || !counts(&name) {
            continue;
        }
        let size = match (kind, disk_size_hint(basename(&name))) {
            (Kind::File, Some(size)) => size,
            (Kind::File | Kind::Unknown, _) => match dir.stat(&name) {
                Ok(st) if st.is_file() => counted_size(&name, st.size),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            },
            _ => continue,
        };
        usage.bytes = usage.bytes.saturating_add(size);
        usage.messages += 1;
    }
    Ok(Some(mtime))
}

/// The folders of the Maildir that count: every `.Name` directory but Trash, opened.
fn folders(root: &Dir) -> io::Result<Vec<Dir>> {
    let mut folders = Vec::new();
    for (name, kind) in root.entries()? {
        let bytes = name.as_bytes();
        if bytes.first() != Some(&b'.')
            || bytes == TRASH
            || !matches!(kind, Kind::Other | Kind::Unknown)
        {
            continue;
        }
        // Not a directory, a symlink, or gone: not a folder to count.
        if let Ok(dir) = root.open_dir(&name) {
            folders.push(dir);
        }
    }
    Ok(folders)
}

/// Counts the whole Maildir: the inbox and every folder but Trash. Returns the figures and the
/// mtimes of the directories counted, to tell whether one changed meanwhile.
pub(super) fn count(root: &Dir) -> io::Result<(Usage, Stamps)> {
    let mut usage = Usage::default();
    let mut stamps = Vec::new();
    for dir in std::iter::once(root).chain(&folders(root)?) {
        for sub in ["new", "cur"] {
            stamps.push(count_dir(dir, OsStr::new(sub), &mut usage)?);
        }
    }
    Ok((usage, stamps))
}

/// The mtimes of the directories [`count`] looks at, in the same order.
pub(super) fn stamps(root: &Dir) -> io::Result<Stamps> {
    let mut stamps = Vec::new();
    for dir in std::iter::once(root).chain(&folders(root)?) {
        for sub in ["new", "cur"] {
            stamps.push(dir.stat(OsStr::new(sub)).ok().map(|st| st.mtime));
        }
    }
    Ok(stamps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_messages_do_not_count() {
        assert!(counts(OsStr::new("1.M1.h,S=5:2,S")));
        assert!(!counts(OsStr::new("1.M1.h,S=5:2,ST")));
        assert!(counts(OsStr::new("1.M1.h,S=5")));
        assert_eq!(counted_size(OsStr::new("1.h,S=5:2,"), 9), 5);
        assert_eq!(counted_size(OsStr::new("1.h"), 9), 9);
    }
}
