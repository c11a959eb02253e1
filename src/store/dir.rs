//! A directory opened once and worked in through its descriptor: every name below it is looked
//! up with `openat(2)` and friends, relative to the descriptor, never following a symlink.
//!
//! This is what keeps a session inside its mailbox. A path (`/home/alice/Maildir/cur/x`) is
//! looked up again at every use, and whoever can write in the mailbox can swap any component
//! for a symlink to somewhere else. A descriptor names the directory itself: what is below it
//! can only be reached through names in it, and with `O_NOFOLLOW` / `AT_SYMLINK_NOFOLLOW` a
//! symlink there is refused (`ELOOP`) or seen for what it is.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// An open directory.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
}

/// What `fstatat(2)` tells about a name, without following a symlink.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
    pub(crate) size: u64,
    /// Last modification: seconds and nanoseconds since the epoch.
    pub(crate) mtime: (i64, i64),
}

impl Stat {
    pub(crate) fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub(crate) fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    /// (device, inode): the identity of the file.
    pub(crate) fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// The kind of a directory entry, as far as `readdir(3)` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Symlink,
    /// A directory, device, FIFO or socket.
    Other,
    /// The file system did not say: [`Dir::stat`] tells.
    Unknown,
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Retries `f` while it fails with EINTR; the result as an `io::Result`.
fn cvt(mut f: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Dir {
    /// Opens the directory at `path`. Components before the last are followed (an
    /// administrator's symlinks); the last one must be the directory itself, not a symlink
    /// (that fails with `ELOOP`).
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        Self::open_with(path, libc::O_NOFOLLOW)
    }

    /// Opens the directory at `path`, following symlinks all the way.
    pub(crate) fn open_following(path: &Path) -> io::Result<Dir> {
        Self::open_with(path, 0)
    }

    fn open_with(path: &Path, extra: libc::c_int) -> io::Result<Dir> {
        let path = c_name(path.as_os_str())?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | extra;
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        let fd = cvt(|| unsafe { libc::open(path.as_ptr(), flags) })?;
        // SAFETY: open returned a new descriptor that nothing else owns.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn open_at(&self, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: `name` is NUL-terminated and our descriptor is open for the whole call;
        // the mode is passed as the variadic argument openat expects with O_CREAT.
        let fd = cvt(|| unsafe {
            libc::openat(self.raw(), name.as_ptr(), flags, libc::c_uint::from(mode))
        })?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Opens the subdirectory `name`; a symlink is refused (`ELOOP`).
    pub(crate) fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let fd = self.open_at(&c_name(name)?, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        Ok(Dir { fd })
    }

    /// Opens the file `name` with `flags` (and `mode`, if it is created); a symlink is refused
    /// (`ELOOP`).
    pub(crate) fn open_file(
        &self,
        name: &OsStr,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<File> {
        Ok(File::from(self.open_at(&c_name(name)?, flags, mode)?))
    }

    /// Creates the subdirectory `name`; false if something by that name is already there.
    pub(crate) fn make_dir(&self, name: &OsStr, mode: libc::mode_t) -> io::Result<bool> {
        let name = c_name(name)?;
        // SAFETY: `name` is NUL-terminated and our descriptor is open for the whole call.
        match cvt(|| unsafe { libc::mkdirat(self.raw(), name.as_ptr(), mode) }) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// What is at `name`, without following a symlink.
    pub(crate) fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        let name = c_name(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `name` is NUL-terminated, `st` is writable memory for one stat structure,
        // and our descriptor is open for the whole call.
        cvt(|| unsafe {
            libc::fstatat(
                self.raw(),
                name.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        // SAFETY: fstatat succeeded, so it filled in the structure.
        Ok(to_stat(unsafe { &st.assume_init() }))
    }

    /// What the directory itself is.
    pub(crate) fn stat_self(&self) -> io::Result<Stat> {
        self.stat(OsStr::new("."))
    }

    /// Removes the file `name` (never a directory).
    pub(crate) fn unlink(&self, name: &OsStr) -> io::Result<()> {
        let name = c_name(name)?;
        // SAFETY: `name` is NUL-terminated and our descriptor is open for the whole call.
        cvt(|| unsafe { libc::unlinkat(self.raw(), name.as_ptr(), 0) }).map(drop)
    }

    /// Renames `from` to `to`, both in this directory.
    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        // SAFETY: both names are NUL-terminated and our descriptor is open for the whole call.
        cvt(|| unsafe { libc::renameat(self.raw(), from.as_ptr(), self.raw(), to.as_ptr()) })
            .map(drop)
    }

    /// Makes `to` in `to_dir` a second name of the file `from` here; fails if `to` exists.
    pub(crate) fn link_into(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        // SAFETY: both names are NUL-terminated and both descriptors are open for the call;
        // flags 0: a symlink at `from` is linked as itself, never followed.
        cvt(|| unsafe { libc::linkat(self.raw(), from.as_ptr(), to_dir.raw(), to.as_ptr(), 0) })
            .map(drop)
    }

    /// Renames `from` here to `to` in `to_dir`, replacing what `to` named.
    pub(crate) fn rename_into(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        // SAFETY: both names are NUL-terminated and both descriptors are open for the call.
        cvt(|| unsafe { libc::renameat(self.raw(), from.as_ptr(), to_dir.raw(), to.as_ptr()) })
            .map(drop)
    }

    /// Makes the directory's entries durable (after unlinks and renames).
    pub(crate) fn sync(&self) -> io::Result<()> {
        // SAFETY: our descriptor is open for the whole call.
        cvt(|| unsafe { libc::fsync(self.raw()) }).map(drop)
    }

    /// Takes an exclusive `flock(2)` on the directory without waiting: `Ok(false)` if another
    /// open file holds it.
    pub(crate) fn try_lock(&self) -> io::Result<bool> {
        // SAFETY: flock only reads the descriptor number, which we keep open.
        match cvt(|| unsafe { libc::flock(self.raw(), libc::LOCK_EX | libc::LOCK_NB) }) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases a lock [`try_lock`](Dir::try_lock) took.
    pub(crate) fn unlock(&self) -> io::Result<()> {
        // SAFETY: flock only reads the descriptor number, which we keep open.
        cvt(|| unsafe { libc::flock(self.raw(), libc::LOCK_UN) }).map(drop)
    }

    /// The type of the file system the directory is on: the magic number `fstatfs(2)` gives
    /// in `f_type` (`0xEF53` for ext4, `0x6969` for NFS, ...). They all fit in 32 bits.
    pub(crate) fn fs_type(&self) -> io::Result<u32> {
        let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: `st` is writable memory for one statfs structure, and our descriptor is
        // open for the whole call.
        cvt(|| unsafe { libc::fstatfs(self.raw(), st.as_mut_ptr()) })?;
        // SAFETY: fstatfs succeeded, so it filled in the structure.
        let f_type = unsafe { st.assume_init() }.f_type;
        // The type of f_type differs between C libraries and word sizes; the magic numbers
        // are 32-bit values, kept whole by the truncation.
        Ok(f_type as u32)
    }

    /// The names in the directory, `.` and `..` left out, with their kinds.
    pub(crate) fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        // A descriptor of our own, which closedir closes: the offset of `self` is not touched.
        let fd = self.open_at(c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let raw = std::os::unix::io::IntoRawFd::into_raw_fd(fd);
        // SAFETY: `raw` is an open directory descriptor we own; fdopendir takes it over.
        let stream = unsafe { libc::fdopendir(raw) };
        if stream.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `raw` is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        }
        let mut out = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; clearing it tells the end from an error below.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `stream` is an open directory stream, used by this thread alone.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            // SAFETY: readdir returned an entry that stays valid until the next readdir call;
            // d_name is NUL-terminated.
            let (name, d_type) = unsafe {
                let entry = &*entry;
                (CStr::from_ptr(entry.d_name.as_ptr()), entry.d_type)
            };
            let name = name.to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match d_type {
                libc::DT_REG => Kind::File,
                libc::DT_LNK => Kind::Symlink,
                libc::DT_UNKNOWN => Kind::Unknown,
                _ => Kind::Other,
            };
            out.push((OsString::from_vec(name.to_vec()), kind));
        };
        // SAFETY: `stream` is open and not used after this; closedir closes `raw` too.
        unsafe { libc::closedir(stream) };
        result.map(|()| out)
    }
}

fn to_stat(st: &libc::stat) -> Stat {
    Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: (st.st_mtime, st.st_mtime_nsec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn nothing_below_the_directory_is_followed() {
        let t = TestDir::new("dir");
        let root = t.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(t.path().join("outside"), b"secret").unwrap();
        symlink(t.path().join("outside"), root.join("link")).unwrap();
        symlink(t.path(), root.join("dirlink")).unwrap();
        fs::write(root.join("file"), b"x").unwrap();

        let dir = Dir::open(&root).unwrap();
        // A symlink opened as a file fails with ELOOP; as a directory, Linux says ENOTDIR.
        let loops = |r: io::Result<()>| r.unwrap_err().raw_os_error() == Some(libc::ELOOP);
        let not_dir = |r: io::Result<()>| r.unwrap_err().raw_os_error() == Some(libc::ENOTDIR);
        assert!(loops(
            dir.open_file(OsStr::new("link"), libc::O_RDONLY, 0)
                .map(drop)
        ));
        assert!(not_dir(dir.open_dir(OsStr::new("dirlink")).map(drop)));
        assert!(dir.stat(OsStr::new("link")).unwrap().is_symlink());
        assert!(dir.stat(OsStr::new("sub")).unwrap().is_dir());
        assert!(dir.stat(OsStr::new("file")).unwrap().is_file());
        assert_eq!(dir.stat(OsStr::new("file")).unwrap().size, 1);
        let mut names = dir.entries().unwrap();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let kinds: Vec<(&str, Kind)> = names
            .iter()
            .map(|(n, k)| (n.to_str().unwrap(), *k))
            .collect();
        assert_eq!(
            kinds,
            [
                ("dirlink", Kind::Symlink),
                ("file", Kind::File),
                ("link", Kind::Symlink),
                ("sub", Kind::Other),
            ]
        );
        // Twice: the listing has its own descriptor and starts at the beginning each time.
        assert_eq!(dir.entries().unwrap().len(), 4);

        // The directory itself may not be a symlink; the components above it may.
        symlink(&root, t.path().join("root-link")).unwrap();
        assert!(not_dir(Dir::open(&t.path().join("root-link")).map(drop)));
        let above = t.path().join("above");
        symlink(t.path(), &above).unwrap();
        Dir::open(&above.join("root")).unwrap();

        assert!(!dir.make_dir(OsStr::new("sub"), 0o700).unwrap());
        assert!(dir.make_dir(OsStr::new("new"), 0o700).unwrap());
        dir.rename(OsStr::new("file"), OsStr::new("moved")).unwrap();
        dir.unlink(OsStr::new("moved")).unwrap();
        dir.unlink(OsStr::new("link")).unwrap();
        assert_eq!(fs::read(t.path().join("outside")).unwrap(), b"secret");
        dir.sync().unwrap();
    }

    #[test]
    fn a_directory_lock_is_taken_released_and_knows_its_file_system() {
        let t = TestDir::new("dir-lock");
        let (one, two) = (Dir::open(t.path()).unwrap(), Dir::open(t.path()).unwrap());
        assert!(one.try_lock().unwrap());
        assert!(
            !two.try_lock().unwrap(),
            "another open of the directory is refused"
        );
        one.unlock().unwrap();
        assert!(two.try_lock().unwrap());
        // What statfs(1) says, in hexadecimal.
        let out = std::process::Command::new("stat")
            .args(["-f", "-c", "%t"])
            .arg(t.path())
            .output()
            .expect("run stat(1)");
        let said = String::from_utf8(out.stdout).unwrap();
        let said = u32::from_str_radix(said.trim(), 16).expect("a hexadecimal type");
        assert_eq!(one.fs_type().unwrap(), said);
    }
}
