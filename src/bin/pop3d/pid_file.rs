//! `--pid-file`: the standalone daemon's process id, for init scripts that want one.
//!
//! The file stays open and locked (flock) while pop3d runs: a second pop3d given the same file
//! finds it locked and refuses to start, while a file left by a pop3d that died (not locked
//! by anyone) is simply taken over. Written after the listeners are bound and before root is
//! given up; at a clean exit it is removed, or emptied through the descriptor kept open when
//! the directory is no longer writable (after `--user`, or outside `--chroot`).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The pid file this process holds.
pub struct PidFile {
    path: PathBuf,
    file: File,
}

impl PidFile {
    /// Creates or takes over `path`, locks it and writes this process's id in it.
    pub fn write(path: &Path) -> Result<PidFile, String> {
        let failed = |e: std::io::Error| format!("--pid-file {}: {e}", path.display());
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(failed)?;
        // SAFETY: flock on a descriptor we own, with integer flags.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(format!(
                "--pid-file {}: locked by a running pop3d (pid {}); stop it first",
                path.display(),
                holder.trim()
            ));
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(PidFile {
            path: path.to_owned(),
            file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own file: after --chroot the same path may name another one.
        let ours = match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(there), Ok(held)) => there.dev() == held.dev() && there.ino() == held.ino(),
            _ => false,
        };
        if !ours || std::fs::remove_file(&self.path).is_err() {
            // No longer allowed to remove it: empty it, so nobody takes a stale pid for ours.
            let _ = self.file.set_len(0);
        }
    }
}
