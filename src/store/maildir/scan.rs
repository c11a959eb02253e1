//! Finding a Maildir's messages: the files of `cur/` and `new/`, one entry per basename.

use super::naming::basename;
use super::open::MessageDirs;
use crate::store::dir::{Dir, Kind};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The subdirectories holding messages. `cur/` first, so that when a message is in both, the
/// copy in `cur/` (the one a reader has seen) is the one read.
pub(super) const MESSAGE_DIRS: [&str; 2] = ["cur", "new"];

/// A message on disk, as the scan found it.
///
/// Kept small, as a session holds one per message for its whole length: the file name alone
/// (the path is made again when the file is opened), and no allocation beyond it in the usual
/// case of one file per message.
#[derive(Debug)]
pub(super) struct Stored {
    /// The file's name: the base name, then the info part if any.
    name: Box<OsStr>,
    /// Length of the base name at the start of `name`.
    base_len: u32,
    /// Where the file is: an index into [`MESSAGE_DIRS`].
    dir: u8,
    /// Other files with the same base name, after this one (rare: a copy in both `cur/` and
    /// `new/`, or two info parts while another program renames).
    more: Vec<(u8, Box<OsStr>)>,
    /// Known to be gone from the disk.
    pub(super) gone: bool,
}

impl Stored {
    pub(super) fn new(dir: u8, name: Box<OsStr>) -> Stored {
        Stored {
            base_len: basename(&name).len() as u32,
            name,
            dir,
            more: Vec::new(),
            gone: false,
        }
    }

    pub(super) fn basename(&self) -> &OsStr {
        OsStr::from_bytes(&self.name.as_bytes()[..self.base_len as usize])
    }

    /// Every file of the message, the first one found first, as (index into
    /// [`MESSAGE_DIRS`], file name); none once it is gone.
    pub(super) fn locations(&self) -> Vec<(usize, &OsStr)> {
        if self.gone {
            return Vec::new();
        }
        std::iter::once((self.dir, &self.name))
            .chain(self.more.iter().map(|(dir, name)| (*dir, name)))
            .map(|(dir, name)| (usize::from(dir), &**name))
            .collect()
    }

    pub(super) fn mark_gone(&mut self) {
        self.gone = true;
        self.more = Vec::new();
    }
}

/// Where a message file is, for the log.
pub(super) fn shown(root: &Path, dir: usize, name: &OsStr) -> PathBuf {
    root.join(MESSAGE_DIRS[dir]).join(name)
}

/// Lists the messages in `cur/` and `new/` of the Maildir `root` (shown as `shown`), sorted by
/// basename (delivery order, since Maildir names begin with the delivery time), one entry per
/// basename.
pub(super) fn scan(root: &Dir, dirs: &mut MessageDirs, shown: &Path) -> io::Result<Vec<Stored>> {
    let mut found = Vec::new();
    for index in 0..MESSAGE_DIRS.len() {
        scan_dir(dirs.get(root, index)?, shown, index, &mut found)?;
    }
    // Ties broken by directory (`cur/` first) and then name, so that the order never depends on
    // the order of the directory entries; unstable sorting needs no scratch buffer.
    found.sort_unstable_by(|a, b| {
        (a.basename().cmp(b.basename()))
            .then(a.dir.cmp(&b.dir))
            .then_with(|| a.name.cmp(&b.name))
    });
    // One entry per base name: later files of the same message join the first.
    found.dedup_by(|later, kept| {
        if later.basename() != kept.basename() {
            return false;
        }
        kept.more.push((later.dir, std::mem::take(&mut later.name)));
        true
    });
    Ok(found)
}

/// Adds the regular, non-hidden files of `dir` (`MESSAGE_DIRS[index]`) to `found`.
///
/// A symlink is never a message: it could point at another mailbox or any file the server can
/// read. It is skipped, and logged, since only someone with access to the mailbox can have put
/// it there.
fn scan_dir(dir: &Dir, root: &Path, index: usize, found: &mut Vec<Stored>) -> io::Result<()> {
    for (name, kind) in dir.entries()? {
        if name.as_bytes().first() == Some(&b'.') {
            continue;
        }
        // The kind comes from the directory entry; the file is looked at only when the file
        // system does not say.
        let kind = match kind {
            Kind::Unknown => match dir.stat(&name) {
                Ok(st) if st.is_file() => Kind::File,
                Ok(st) if st.is_symlink() => Kind::Symlink,
                Ok(_) => Kind::Other,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            },
            kind => kind,
        };
        match kind {
            Kind::File => found.push(Stored::new(index as u8, name.into_boxed_os_str())),
            Kind::Symlink => log::warn!(
                "{}: a symlink, not a message; skipped",
                shown(root, index, &name).display()
            ),
            _ => {}
        }
    }
    Ok(())
}
