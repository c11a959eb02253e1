//! The system's account databases through the C library: `getpwnam_r(3)` and `getspnam_r(3)`,
//! so that NSS (files, LDAP, systemd's users) answers as it does for `login`.

use std::ffi::{c_char, c_int, CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The first buffer size for the reentrant calls; doubled on `ERANGE` up to [`MAX_BUFFER`].
const FIRST_BUFFER: usize = 1024;
/// No passwd or shadow line is anywhere near this long; a bound so a broken NSS module that
/// keeps answering `ERANGE` cannot make us allocate without end.
const MAX_BUFFER: usize = 1 << 20;

/// A user's entry in the passwd database.
#[derive(Debug, Clone)]
pub(crate) struct PasswdEntry {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// What `pop3d` needs from a user's shadow entry. Dates are days since 1970-01-01; `None` where
/// the field is empty (-1 in `struct spwd`).
pub(crate) struct ShadowEntry {
    /// The crypt(3) hash, or `!`/`*`-prefixed for a locked account. Zeroed on drop.
    pub hash: Vec<u8>,
    pub last_change: Option<i64>,
    pub max_age: Option<i64>,
    pub expire: Option<i64>,
}

impl Drop for ShadowEntry {
    fn drop(&mut self) {
        self.hash.fill(0);
        std::hint::black_box(&self.hash);
    }
}

/// Looks `name` up in the passwd database. `Ok(None)` for no such user (a name with a NUL
/// included); `Err` when the database cannot be read.
pub(crate) fn passwd(name: &str) -> io::Result<Option<PasswdEntry>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    // SAFETY: an all-zero passwd is a valid value for the out-parameter.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    reentrant(
        |buf, result: &mut *mut libc::passwd| {
            // SAFETY: valid name, entry, buffer (with its true length) and result pointers.
            unsafe {
                libc::getpwnam_r(
                    c_name.as_ptr(),
                    &mut entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    result,
                )
            }
        },
        read_passwd,
    )
}

/// Reads a found passwd entry.
fn read_passwd(found: *mut libc::passwd) -> PasswdEntry {
    // SAFETY: the get*_r call succeeded: `found` points to its entry, whose strings are in the
    // buffer that is still alive inside `reentrant`.
    let found = unsafe { &*found };
    let home = if found.pw_dir.is_null() {
        PathBuf::new()
    } else {
        // SAFETY: a non-NULL pw_dir is a NUL-terminated string in the buffer.
        let dir = unsafe { CStr::from_ptr(found.pw_dir) };
        PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
    };
    PasswdEntry {
        uid: found.pw_uid,
        gid: found.pw_gid,
        home,
    }
}

/// Looks `name` up in the shadow database. `Ok(None)` for no entry; `Err` when it cannot be
/// read (`EACCES` when not root).
pub(crate) fn shadow(name: &str) -> io::Result<Option<ShadowEntry>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    // SAFETY: an all-zero spwd is a valid value for the out-parameter.
    let mut entry: libc::spwd = unsafe { std::mem::zeroed() };
    let day = |value: libc::c_long| (value >= 0).then_some(value);
    reentrant(
        |buf, result: &mut *mut libc::spwd| {
            // SAFETY: valid name, entry, buffer (with its true length) and result pointers.
            unsafe {
                libc::getspnam_r(
                    c_name.as_ptr(),
                    &mut entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    result,
                )
            }
        },
        |found| {
            // SAFETY: as in `passwd`: `found` points into `entry`, its strings into the live buffer.
            let found = unsafe { &*found };
            let hash = if found.sp_pwdp.is_null() {
                Vec::new()
            } else {
                // SAFETY: a non-NULL sp_pwdp is a NUL-terminated string in the buffer.
                unsafe { CStr::from_ptr(found.sp_pwdp) }.to_bytes().to_vec()
            };
            ShadowEntry {
                hash,
                last_change: day(found.sp_lstchg),
                max_age: day(found.sp_max),
                expire: day(found.sp_expire),
            }
        },
    )
}

/// Runs a `get*_r` call with a growing buffer, and reads what it found with `read` while the
/// buffer still lives; the buffer is zeroed after (it may hold a password hash).
fn reentrant<E, R>(
    mut call: impl FnMut(&mut [c_char], &mut *mut E) -> c_int,
    read: impl FnOnce(*mut E) -> R,
) -> io::Result<Option<R>> {
    let mut size = FIRST_BUFFER;
    let (mut buf, rc, result) = loop {
        let mut buf = vec![0 as c_char; size];
        let mut result: *mut E = std::ptr::null_mut();
        let rc = call(&mut buf, &mut result);
        if rc == libc::ERANGE && size < MAX_BUFFER {
            size *= 2;
            continue;
        }
        break (buf, rc, result);
    };
    let outcome = match rc {
        0 if result.is_null() => Ok(None),
        0 => Ok(Some(read(result))),
        // glibc's files backend says ENOENT for no such entry on some paths.
        libc::ENOENT => Ok(None),
        code => Err(io::Error::from_raw_os_error(code)),
    };
    buf.fill(0);
    std::hint::black_box(&buf);
    outcome
}

/// Looks the user with `uid` up in the passwd database; `Ok(None)` when there is none.
pub(crate) fn passwd_by_uid(uid: u32) -> io::Result<Option<PasswdEntry>> {
    // SAFETY: an all-zero passwd is a valid value for the out-parameter.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    reentrant(
        |buf, result: &mut *mut libc::passwd| {
            // SAFETY: valid entry, buffer (with its true length) and result pointers.
            unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), result) }
        },
        read_passwd,
    )
}
