//! The reply program of the checkpassword interface: `pop3d --checkpassword-reply`, which a
//! checkpassword program runs once it has checked the password and become the account, tells
//! pop3d on descriptor 4 who it now is (as Dovecot's `checkpassword-reply` does).
//!
//! The reply is `uid=N`, `gid=N` and `home=PATH`, each ended by a NUL (a path may hold any
//! other byte). Parsing it is pure: [`Reply::parse`].

use super::lookup;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The descriptor the reply is written to, and read from by pop3d.
pub(crate) const REPLY_FD: i32 = 4;
/// The longest reply read: three short fields and a path.
pub(crate) const REPLY_MAX: usize = 8192;

/// Who the checkpassword program made the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl Reply {
    /// The reply's bytes.
    fn encode(&self) -> Vec<u8> {
        let mut out = format!("uid={}\0gid={}\0home=", self.uid, self.gid).into_bytes();
        out.extend_from_slice(self.home.as_os_str().as_bytes());
        out.push(0);
        out
    }

    /// Parses a reply; every field once, none unknown, the home absolute.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Reply, String> {
        let body = bytes
            .strip_suffix(b"\0")
            .ok_or("the reply does not end with NUL")?;
        let (mut uid, mut gid, mut home) = (None, None, None);
        for field in body.split(|&b| b == 0) {
            let eq = field.iter().position(|&b| b == b'=');
            let (key, value) = match eq {
                Some(at) => (&field[..at], &field[at + 1..]),
                None => return Err(format!("no '=' in {:?}", String::from_utf8_lossy(field))),
            };
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| format!("bad number {:?}", String::from_utf8_lossy(value)))
            };
            let slot_taken = match key {
                b"uid" => uid.replace(number()?).is_some(),
                b"gid" => gid.replace(number()?).is_some(),
                b"home" => home
                    .replace(PathBuf::from(OsStr::from_bytes(value)))
                    .is_some(),
                _ => return Err(format!("unknown field {:?}", String::from_utf8_lossy(key))),
            };
            if slot_taken {
                return Err(format!("{} given twice", String::from_utf8_lossy(key)));
            }
        }
        let home = home.ok_or("no home")?;
        if !home.is_absolute() {
            return Err(format!("home {} is not an absolute path", home.display()));
        }
        Ok(Reply {
            uid: uid.ok_or("no uid")?,
            gid: gid.ok_or("no gid")?,
            home,
        })
    }
}

/// `pop3d --checkpassword-reply`: writes this process's uid, gid and home (`$HOME`, or the
/// passwd database's for the uid) to descriptor 4, for the pop3d that ran the checkpassword
/// program. The binary exits 0 after, or 111 (a temporary failure, in the interface's terms)
/// with the error on standard error.
pub fn checkpassword_reply() -> Result<(), String> {
    // SAFETY: fcntl on a number only asks whether it is an open descriptor.
    if unsafe { libc::fcntl(REPLY_FD, libc::F_GETFD) } < 0 {
        return Err(
            "descriptor 4 is not open: this mode is for a checkpassword program to \
                    run, as pop3d --checkpassword tells it"
                .into(),
        );
    }
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let home = match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => home,
        _ => lookup::passwd_by_uid(uid)
            .map_err(|e| format!("cannot read the passwd database: {e}"))?
            .map(|entry| entry.home)
            .ok_or_else(|| format!("no HOME, and uid {uid} has no passwd entry"))?,
    };
    // SAFETY: descriptor 4 is open (checked above) and nothing else in this process owns it.
    let mut out = unsafe { File::from_raw_fd(REPLY_FD) };
    out.write_all(&Reply { uid, gid, home }.encode())
        .map_err(|e| format!("cannot write to descriptor 4: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_reads_back_and_bad_ones_are_refused() {
        let reply = Reply {
            uid: 1001,
            gid: 100,
            home: PathBuf::from("/home/b ob\n"),
        };
        assert_eq!(Reply::parse(&reply.encode()), Ok(reply));
        for bad in [
            &b"uid=1\0gid=2\0home=/h"[..],
            b"uid=1\0gid=2\0",
            b"uid=1\0gid=2\0home=rel\0",
            b"uid=1\0uid=1\0gid=2\0home=/h\0",
            b"uid=-1\0gid=2\0home=/h\0",
            b"uid=1\0gid=2\0home=/h\0shell=/bin/sh\0",
            b"uid\0gid=2\0home=/h\0",
        ] {
            assert!(
                Reply::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
