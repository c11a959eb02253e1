//! Giving up root: after the listeners are bound (and the TLS key read), the daemon becomes an
//! ordinary user, optionally inside a chroot.

use std::ffi::{CStr, CString};
use std::path::Path;

/// The account to become.
pub struct Target {
    name: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

/// Looks up `user` (a name or a number) and, if given, `group`, whose gid then replaces the
/// user's primary group.
pub fn lookup(user: &str, group: Option<&str>) -> Result<Target, String> {
    let (name, uid, mut gid) = passwd_entry(user)?;
    if uid == 0 {
        return Err(format!(
            "--user {user} is root; name an unprivileged account"
        ));
    }
    if let Some(group) = group {
        gid = group_id(group, "--group")?;
    }
    Ok(Target { name, uid, gid })
}

/// Becomes `target`: supplementary groups first (initgroups reads the group database, which a
/// chroot would hide), then the chroot (while still allowed), the group and last the user, so
/// that no step runs with less privilege than it needs. Checks the result: a process that could
/// regain root is refused.
pub fn drop_to(target: &Target, chroot: Option<&Path>) -> Result<(), String> {
    // SAFETY: `name` is a NUL-terminated string that outlives the call, which only reads it.
    if unsafe { libc::initgroups(target.name.as_ptr(), target.gid) } != 0 {
        return Err(format!("initgroups: {}", std::io::Error::last_os_error()));
    }
    if let Some(dir) = chroot {
        enter_chroot(dir)?;
    }
    // SAFETY: these calls take and return plain integers and touch no memory of ours.
    unsafe {
        if libc::setgid(target.gid) != 0 {
            return Err(format!(
                "setgid {}: {}",
                target.gid,
                std::io::Error::last_os_error()
            ));
        }
        if libc::setuid(target.uid) != 0 {
            return Err(format!(
                "setuid {}: {}",
                target.uid,
                std::io::Error::last_os_error()
            ));
        }
        if libc::getuid() != target.uid
            || libc::geteuid() != target.uid
            || libc::getgid() != target.gid
            || libc::setuid(0) == 0
        {
            return Err("could not give up root for good".into());
        }
    }
    Ok(())
}

/// Makes `dir` the root directory, and the working directory too.
pub fn enter_chroot(dir: &Path) -> Result<(), String> {
    let c = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("--chroot {}: contains NUL", dir.display()))?;
    // SAFETY: both are NUL-terminated strings that outlive the calls, which only read them.
    if unsafe { libc::chroot(c.as_ptr()) } != 0 || unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return Err(format!(
            "chroot {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// True if the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The system account `name` (or uid, given as a number): its name, uid and primary gid.
pub fn system_account(name: &str) -> Option<(CString, libc::uid_t, libc::gid_t)> {
    passwd_entry(name).ok()
}

fn passwd_entry(user: &str) -> Result<(CString, libc::uid_t, libc::gid_t), String> {
    let c = CString::new(user).map_err(|_| format!("--user {user:?}: contains NUL"))?;
    // SAFETY: `passwd` is a C struct of integers and pointers, for which all zeroes (0 and null)
    // is a valid value; getpwnam_r overwrites it before anything reads it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of pw's strings.
    let mut rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if result.is_null() {
        if let Ok(uid) = user.parse::<libc::uid_t>() {
            // SAFETY: as above.
            rc = unsafe {
                libc::getpwuid_r(
                    uid,
                    &mut pw,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut result,
                )
            };
        }
    }
    if result.is_null() {
        return Err(match rc {
            0 => format!("--user {user}: no such user"),
            e => format!("--user {user}: {}", std::io::Error::from_raw_os_error(e)),
        });
    }
    // SAFETY: `result` is not null, so getpwnam_r or getpwuid_r filled pw, and pw_name points to
    // a NUL-terminated string in buf, which is still alive.
    let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_owned();
    Ok((name, pw.pw_uid, pw.pw_gid))
}

/// The gid of `group` (a name or a number), which `option` gave.
pub fn group_id(group: &str, option: &str) -> Result<libc::gid_t, String> {
    let c = CString::new(group).map_err(|_| format!("{option} {group:?}: contains NUL"))?;
    // SAFETY: `group` is a C struct of integers and pointers, for which all zeroes (0 and null)
    // is a valid value; getgrnam_r overwrites it before anything reads it.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut gr,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if !result.is_null() {
        return Ok(gr.gr_gid);
    }
    match group.parse::<libc::gid_t>() {
        Ok(gid) if rc == 0 => Ok(gid),
        _ => Err(format!("{option} {group}: no such group")),
    }
}
