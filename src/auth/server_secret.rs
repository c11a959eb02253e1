//! The server secret: 32 random bytes kept in a file, so that what pop3d derives from it is the
//! same in every process and after every restart.
//!
//! SCRAM-SHA-256 shows a salt and an iteration count before it checks anything; for a user with
//! no stored salt (an unknown user, or one with a `{PLAIN}` password) the salt is derived from
//! this secret and the user name. Were the secret new in every process, as it would be under
//! inetd, an unknown user's salt would change from one connection to the next while a real
//! one's does not, and that would tell which users exist.
//!
//! The file holds the secret in hexadecimal, on one line. It is created once, with mode 0600,
//! written beside its final name and then linked into place, so that two processes starting at
//! once both end up with the one that was linked first.

use super::secret::{hex, os_random_bytes};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The name of the secret file in the state directory.
pub const SECRET_FILE: &str = "secret";

/// Reads the secret in `path`, or creates it (mode 0600) if there is none.
///
/// Refuses a file that others than its owner may read, or that is not 32 bytes of hexadecimal.
pub fn load_or_create(path: &Path) -> io::Result<[u8; 32]> {
    match load(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let secret: [u8; 32] = os_random_bytes()
        .ok_or_else(|| io::Error::other("no random bytes from the operating system"))?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{}\n", hex(&secret)).as_bytes())?;
            f.sync_all()
        });
    // link(2) never replaces a file: whoever linked first wins, and everyone reads that one.
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(e),
    }
}

/// Reads the secret in `path`; `NotFound` if there is none yet.
pub fn load(path: &Path) -> io::Result<[u8; 32]> {
    let meta = fs::symlink_metadata(path)?;
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "mode {:o}: others than its owner may read it (chmod 600)",
            meta.mode() & 0o777
        )));
    }
    let text = fs::read_to_string(path)?;
    parse(text.trim_end()).ok_or_else(|| bad("not 64 hexadecimal digits".into()))
}

fn parse(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_mode_0600_then_read_back() {
        let dir = TestDir::new("secret");
        let path = dir.path().join(SECRET_FILE);
        let first = load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first);
        assert_eq!(load(&path).unwrap(), first);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).is_err(), "a readable secret is refused");
        fs::write(&path, "short\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            load_or_create(&path).is_err(),
            "a damaged file is not replaced"
        );
    }
}
