//! Opening a Maildir so that the session stays inside it: the root opened once (refused if it is
//! itself a symlink), `cur/`, `new/` and `tmp/` looked up through it without following symlinks,
//! and each checked to belong to the account when the account has a uid.
//!
//! The session keeps only the root open. `cur/` and `new/` are opened again from it for each
//! piece of work (the scan at login, a message read, the removals after QUIT) and closed when it
//! is done, checked each time as at login: an idle session then holds one descriptor for its
//! mailbox instead of three, and a directory swapped for a symlink meanwhile is refused.
//!
//! Symlinks *above* the root (`/home/alice -> /disk2/alice`, or a whole mail root elsewhere)
//! are the administrator's and are followed: only the last component of the expanded template,
//! and what is below it, can be the tenant's.

use super::scan::MESSAGE_DIRS;
use crate::store::dir::{Dir, Stat};
use crate::store::{StoreError, StoreErrorKind};
use std::ffi::OsStr;
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Mode of the directories pop3d creates, as Dovecot does: the owner's alone.
const DIR_MODE: u32 = 0o700;

/// Opens the Maildir at `root`, creating it if missing, and checks that it belongs to `uid`.
pub(super) fn open_root(root: &Path, uid: Option<u32>) -> Result<Dir, StoreError> {
    let dir = match Dir::open(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(root)
                .map_err(|e| StoreError::io(format!("{}: create maildir", root.display()), e))?;
            log::info!("created {}", root.display());
            Dir::open(root)
        }
        opened => opened,
    }
    .map_err(|e| refused(root, e))?;
    let st = dir.stat_self().map_err(|e| refused(root, e))?;
    check_owner(root, &st, uid)?;
    Ok(dir)
}

/// Makes sure `cur/`, `new/` and `tmp/` are directories of `uid` in `root` (creating the
/// missing ones), and opens the two that hold messages, in [`MESSAGE_DIRS`] order.
pub(super) fn open_subdirs(
    root: &Dir,
    shown: &Path,
    uid: Option<u32>,
) -> Result<[Dir; 2], StoreError> {
    let [cur, new] = MESSAGE_DIRS;
    let dirs = [
        message_dir(root, shown, cur, uid)?,
        message_dir(root, shown, new, uid)?,
    ];
    // tmp/ is only checked: pop3d never writes there.
    let path = shown.join("tmp");
    make(root, &path, "tmp")?;
    let st = root
        .stat(OsStr::new("tmp"))
        .map_err(|e| refused(&path, e))?;
    if st.is_symlink() {
        return Err(symlink(&path));
    }
    if !st.is_dir() {
        return Err(permanent(&path, "not a directory"));
    }
    check_owner(&path, &st, uid)?;
    Ok(dirs)
}

/// Opens the message directory `sub` of `root`, checked as [`open_subdirs`] says.
fn message_dir(root: &Dir, shown: &Path, sub: &str, uid: Option<u32>) -> Result<Dir, StoreError> {
    let path = shown.join(sub);
    make(root, &path, sub)?;
    let dir = root
        .open_dir(OsStr::new(sub))
        .map_err(|e| refused(&path, e))?;
    let st = dir.stat_self().map_err(|e| refused(&path, e))?;
    check_owner(&path, &st, uid)?;
    Ok(dir)
}

/// `cur/` and `new/` for one piece of work in a session: each opened from the root when first
/// needed, checked as at login, and closed when this is dropped.
#[derive(Debug)]
pub(super) struct MessageDirs {
    uid: Option<u32>,
    /// In [`MESSAGE_DIRS`] order.
    open: [Option<Dir>; 2],
}

impl MessageDirs {
    /// None open yet; each will be checked to belong to `uid`.
    pub(super) fn new(uid: Option<u32>) -> MessageDirs {
        MessageDirs {
            uid,
            open: [None, None],
        }
    }

    /// The directories [`open_subdirs`] just opened and checked.
    pub(super) fn opened(dirs: [Dir; 2], uid: Option<u32>) -> MessageDirs {
        let [cur, new] = dirs;
        MessageDirs {
            uid,
            open: [Some(cur), Some(new)],
        }
    }

    /// `MESSAGE_DIRS[index]` of the Maildir `root`, opened now if it is not yet.
    ///
    /// It must still be a directory, not a symlink, and still the account's: someone with
    /// access to the Maildir may have swapped it since the login.
    pub(super) fn get(&mut self, root: &Dir, index: usize) -> io::Result<&Dir> {
        let dir = match self.open[index].take() {
            Some(dir) => dir,
            None => reopen(root, MESSAGE_DIRS[index], self.uid)?,
        };
        Ok(self.open[index].insert(dir))
    }

    /// Syncs every directory opened: the unlinks made through them become durable.
    pub(super) fn sync(&self) -> Result<(), (&'static str, io::Error)> {
        for (dir, name) in self.open.iter().zip(MESSAGE_DIRS) {
            if let Some(dir) = dir {
                dir.sync().map_err(|e| (name, e))?;
            }
        }
        Ok(())
    }
}

/// Opens the message directory `sub` of `root` again in a session; an error names what was
/// refused.
fn reopen(root: &Dir, sub: &str, uid: Option<u32>) -> io::Result<Dir> {
    let dir = root
        .open_dir(OsStr::new(sub))
        .map_err(|e| match e.raw_os_error() {
            // What Linux says for a symlink opened with O_DIRECTORY | O_NOFOLLOW, or a file.
            Some(libc::ELOOP | libc::ENOTDIR) => io::Error::new(
                e.kind(),
                format!("{sub}/ is no longer a directory (a symlink?); refused"),
            ),
            _ => e,
        })?;
    let st = dir.stat_self()?;
    match uid {
        Some(uid) if st.uid != uid => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{sub}/ is now owned by uid {}, not the account's uid {uid}; refused",
                st.uid
            ),
        )),
        _ => Ok(dir),
    }
}

/// Creates the subdirectory `sub` (shown as `path`) of `root` if nothing has its name.
fn make(root: &Dir, path: &Path, sub: &str) -> Result<(), StoreError> {
    let created = root
        .make_dir(OsStr::new(sub), DIR_MODE)
        .map_err(|e| StoreError::io(format!("{}: create", path.display()), e))?;
    if created {
        log::info!("created {}", path.display());
    }
    Ok(())
}

/// Gives `file`, just created in the Maildir `root`, to the Maildir's owner when we run as
/// root (a host program or an agent that did not change user): a file of root's in a user's
/// Maildir could not be read or removed by that user's sessions and delivery agents.
pub(super) fn give_to_owner(root: &Dir, file: &std::fs::File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let st = root.stat_self()?;
    // SAFETY: fchown reads the descriptor number, which `file` keeps open, and two integers.
    if unsafe { libc::fchown(file.as_raw_fd(), st.uid, st.gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Refuses a directory that does not belong to the account: it could be another user's
/// mailbox reached by a path the tenant arranged, or one the administrator set up wrong.
fn check_owner(path: &Path, st: &Stat, uid: Option<u32>) -> Result<(), StoreError> {
    match uid {
        Some(uid) if st.uid != uid => Err(permanent(
            path,
            &format!(
                "owned by uid {}, should be uid {uid} (the account's uid in the passwd file); refused",
                st.uid
            ),
        )),
        _ => Ok(()),
    }
}

/// An error opening a directory of the Maildir: a symlink where the directory should be, or
/// something else at its name, is permanent; other errors are classed as usual.
///
/// Linux refuses a symlink opened with `O_DIRECTORY | O_NOFOLLOW` with `ENOTDIR`, not `ELOOP`:
/// the log says which it was, from an `lstat` of the path made for that alone.
fn refused(path: &Path, e: io::Error) -> StoreError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => symlink(path),
        Some(libc::ENOTDIR) if path.is_symlink() => symlink(path),
        Some(libc::ENOTDIR) => permanent(path, "not a directory"),
        _ => StoreError::io(format!("{}: open", path.display()), e),
    }
}

fn symlink(path: &Path) -> StoreError {
    permanent(
        path,
        "is a symlink; refused (a Maildir and its cur, new and tmp must be real directories)",
    )
}

fn permanent(path: &Path, what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Permanent,
        format!("{}: {what}", path.display()),
    )
}
