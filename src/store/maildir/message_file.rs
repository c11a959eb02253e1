//! Opening, measuring and unlinking message files through their directories' descriptors,
//! where a file gone since the scan is an expected event and not an error.

use super::maildirsize;
use super::naming::disk_size_hint;
use super::open::MessageDirs;
use super::scan::{self, Stored};
use crate::protocol::message::WireSize;
use crate::store::delivery::Usage;
use crate::store::dir::Dir;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Opens the first file of `stored` that exists, in `dirs` (`cur/`, `new/` of the Maildir
/// `root`, shown as `shown`). `None` if none does. A file that is no longer a regular file (a
/// symlink or a FIFO swapped in since the scan) is skipped, and logged.
pub(super) fn open_first(
    root: &Dir,
    dirs: &mut MessageDirs,
    shown: &Path,
    stored: &Stored,
) -> io::Result<Option<File>> {
    for (dir, name) in stored.locations() {
        match open_regular(dirs.get(root, dir)?, name) {
            Ok(file) => return Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e)
                if e.raw_os_error() == Some(libc::ELOOP)
                    || e.kind() == io::ErrorKind::InvalidData =>
            {
                log::warn!("{}: {e}; skipped", scan::shown(shown, dir, name).display());
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Opens the file `name` in `dir` for reading, refusing anything but a regular file: a symlink
/// must not redirect us (`ELOOP`), nor a FIFO make us wait (`InvalidData`).
pub(super) fn open_regular(dir: &Dir, name: &OsStr) -> io::Result<File> {
    let file = dir.open_file(name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ))
    }
}

/// Unlinks every file of `stored`, in `dirs` of the Maildir `root`; true if any was already
/// gone. Stops at the first other error. With `removed`, adds there what the files unlinked
/// counted for in a Maildir++ quota.
pub(super) fn unlink_all(
    root: &Dir,
    dirs: &mut MessageDirs,
    stored: &Stored,
    mut removed: Option<&mut Usage>,
) -> io::Result<bool> {
    let mut missing = false;
    for (dir, name) in stored.locations() {
        let dir = dirs.get(root, dir)?;
        // Measured before the unlink, and only when it counts and its name does not say.
        let size = match &removed {
            Some(_) if maildirsize::counts(name) => match disk_size_hint(stored.basename()) {
                Some(size) => Some(size),
                None => dir.stat(name).ok().map(|st| st.size),
            },
            _ => None,
        };
        match dir.unlink(name) {
            Ok(()) => {
                if let (Some(total), Some(size)) = (removed.as_deref_mut(), size) {
                    total.bytes += size;
                    total.messages += 1;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing = true,
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}

/// Reads `file` through in chunks and returns its wire size.
pub(super) fn wire_size(file: &mut File, buf: &mut [u8]) -> io::Result<u64> {
    let mut size = WireSize::new();
    loop {
        match file.read(buf) {
            Ok(0) => return Ok(size.total()),
            Ok(n) => size.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
