//! The dot-lock `SPOOL.lock`, made and broken the way liblockfile (`lockfile_create(3)`, which
//! Debian's mail tools use) makes and breaks it, so that each side sees the other's.
//!
//! Made NFS-safe: a file of our own with a unique name (`.lkPID` + a hex digit of the time +
//! the host name) is written with our PID, linked to the lock name, and the lock is ours if the
//! lock name then names our file (`link(2)`'s answer cannot be trusted over NFS). A lock that is
//! not ours is *stale*, and removed, if it holds the PID of a process that no longer exists
//! (`kill(pid, 0)` fails with `ESRCH`), or, holding no PID, if it is 5 minutes old or more.

use super::mail_group::with_mail_group;
use crate::store::dir::Dir;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A lock without a PID is stale at this age: liblockfile's 5 minutes.
const STALE_AGE: u64 = 300;

/// A dot-lock we hold, removed when dropped.
#[derive(Debug)]
pub(super) struct DotLock<'a> {
    dir: &'a Dir,
    name: OsString,
    ino: u64,
}

/// `<spool name>.lock`.
pub(super) fn lock_name(spool: &OsStr) -> OsString {
    let mut name = spool.to_os_string();
    name.push(".lock");
    name
}

impl<'a> DotLock<'a> {
    /// Takes the dot-lock of the spool `spool` in `dir`, waiting (polling) until `deadline`.
    /// `Ok(None)` if another program held it all that time.
    pub(super) fn acquire(
        dir: &'a Dir,
        spool: &OsStr,
        deadline: Instant,
    ) -> io::Result<Option<DotLock<'a>>> {
        let name = lock_name(spool);
        let tmp = temp_name();
        with_mail_group(|| {
            let mut f =
                dir.open_file(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o644)?;
            f.write_all(format!("{}\n", std::process::id()).as_bytes())
        })?;
        let result = Self::link_until(dir, &tmp, &name, deadline);
        let _ = with_mail_group(|| dir.unlink(&tmp));
        result
    }

    fn link_until(
        dir: &'a Dir,
        tmp: &OsStr,
        name: &OsStr,
        deadline: Instant,
    ) -> io::Result<Option<DotLock<'a>>> {
        let mine = dir.stat(tmp)?.ino;
        let mut pause = Duration::from_millis(10);
        loop {
            // Its answer is not trusted (NFS): the identity of what the name names tells.
            let _ = with_mail_group(|| dir.link_into(tmp, dir, name));
            match dir.stat(name) {
                Ok(st) if st.ino == mine => {
                    return Ok(Some(DotLock {
                        dir,
                        name: name.to_os_string(),
                        ino: mine,
                    }))
                }
                Ok(_) => {
                    if stale(dir, name) {
                        log::info!("removing the stale dot-lock {}", name.to_string_lossy());
                        let _ = with_mail_group(|| dir.unlink(name));
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

impl Drop for DotLock<'_> {
    fn drop(&mut self) {
        // Only our own: a lock broken as stale and taken by another is theirs now.
        if matches!(self.dir.stat(&self.name), Ok(st) if st.ino == self.ino) {
            if let Err(e) = with_mail_group(|| self.dir.unlink(&self.name)) {
                log::error!("removing the dot-lock {}: {e}", self.name.to_string_lossy());
            }
        }
    }
}

/// liblockfile's temporary name: `.lk` + PID (5 digits at least) + the time's last hex digit
/// + the host name up to its first dot.
fn temp_name() -> OsString {
    let mut host = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is passed.
    let ok = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) } == 0;
    let host = if ok {
        let end = host.iter().position(|&b| b == 0 || b == b'.').unwrap_or(0);
        host[..end].to_vec()
    } else {
        Vec::new()
    };
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = format!(".lk{:05}{:x}", std::process::id(), time & 15).into_bytes();
    name.extend(host.iter().filter(|&&b| b != b'/'));
    OsStr::from_bytes(&name).to_os_string()
}

/// liblockfile's `lockfile_check`: true if the lock `name` may be removed.
fn stale(dir: &Dir, name: &OsStr) -> bool {
    let Ok(mut f) = dir.open_file(name, libc::O_RDONLY, 0) else {
        // Gone already, or not ours to read: not stale to us.
        return false;
    };
    let mut buf = [0u8; 16];
    let len = f.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..len]);
    let pid: i32 = text
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    if pid > 0 {
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        let errno = io::Error::last_os_error().raw_os_error();
        if r == 0 || errno == Some(libc::EPERM) {
            return false;
        }
        if errno == Some(libc::ESRCH) {
            return true;
        }
    }
    let Ok(meta) = f.metadata() else { return false };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now >= (meta.mtime().max(0) as u64) + STALE_AGE
}
