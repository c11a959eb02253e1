//! The file systems where a `flock` of a mailbox directory guards the mailbox alone.

use crate::store::dir::Dir;
use std::path::Path;

/// Local file systems, by the magic number `fstatfs(2)` gives: each is mounted by one machine
/// at a time and keeps `flock`s itself, so every process that can reach the directory sees its
/// lock. Any other file system (NFS, SMB, FUSE, a cluster file system, one unknown here) keeps
/// the lock file held as well.
const LOCAL: [(u32, &str); 7] = [
    (0xEF53, "ext2/ext3/ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
    (0xCA45_1A4E, "bcachefs"),
];

/// True if a `flock` of the mailbox directory `root` (shown as `path`) guards the mailbox alone,
/// with no lock file held: see the [lock module](super).
pub(crate) fn guards_alone(root: &Dir, path: &Path) -> bool {
    match root.fs_type() {
        Ok(magic) if LOCAL.iter().any(|&(known, _)| known == magic) => true,
        Ok(magic) => {
            log::debug!(
                "{}: file system type {magic:#x} is not one whose directory lock guards alone; \
                 the lock file is held too",
                path.display()
            );
            false
        }
        Err(e) => {
            log::debug!(
                "{}: file system type unknown ({e}); the lock file is held too",
                path.display()
            );
            false
        }
    }
}
