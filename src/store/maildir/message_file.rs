//! Opening, measuring and unlinking message files, where a file gone since the scan is an
//! expected event and not an error.

use crate::protocol::message::WireSize;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Opens the first of `paths` that exists. `None` if none does.
pub(super) fn open_first(paths: &[PathBuf]) -> io::Result<Option<File>> {
    for path in paths {
        match open_regular(path) {
            Ok(file) => return Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Opens a message file for reading, refusing anything but a regular file: a symlink or a FIFO
/// swapped in since the scan must neither redirect us nor make us wait.
pub(super) fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ))
    }
}

/// Unlinks every path; true if any was already gone. Stops at the first other error.
pub(super) fn unlink_all(paths: &[PathBuf]) -> io::Result<bool> {
    let mut missing = false;
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
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
