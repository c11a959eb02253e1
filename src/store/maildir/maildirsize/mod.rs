//! The Maildir++ quota file, `maildirsize`, as Courier, maildrop, Exim and Dovecot share it.
//!
//! ```text
//! 1073741824S,10000C
//! 52428800 1200
//! 4117 1
//! -2210 -1
//! ```
//!
//! The first line is the quota: `NNNS` (bytes) and `NNNC` (messages), comma-separated, either
//! left out when there is no such limit. Every later line is `bytes count`, a change to add up;
//! the sum is what the Maildir holds. A delivery appends `size 1`, a deletion `-size -1`, each
//! in one `write(2)` to the file opened with `O_APPEND`, so lines from concurrent writers never
//! mix. Sizes are the file sizes on disk, as the `,S=` of their names gives them.
//!
//! The file is only a cache: it is *recalculated* (every message counted again and the file
//! replaced by the quota line and one total line) under the rules Courier set out, which
//! Dovecot follows:
//! - it does not exist, its quota line differs from the quota configured, a sum is negative
//!   or a line is not two numbers;
//! - it has grown to 5120 bytes;
//! - a delivery would go over quota, and the file holds more than one line of figures or is
//!   older than 15 minutes (a fresh total is trusted; a bounce on a stale sum is not).
//!
//! A recalculation counts `new/` and `cur/` of the Maildir and of each folder (`.Name`), but
//! not `.Trash`, nor messages flagged deleted (`T` in the info part), as Courier counts; it is
//! written in `tmp/` and renamed over the file, and repeated if a directory changed meanwhile
//! (what Courier checks for other programs' deliveries).
//!
//! Among pop3d processes the figures never drift: a delivery (its rename into `new/` and its
//! line) and a session's deletions (the unlinks and their line) hold a shared `flock` on
//! `pop3d.quota.lock`, and a recalculation holds it exclusively, so a recalculation sees each
//! change whole or not at all. On NFS, where Linux turns `flock` into per-process locks, that
//! holds between processes but not between threads of one process.

mod count;
mod format;

pub(super) use self::count::counts;
use self::count::{count, stamps};
use self::format::{parse, quota_line, Contents, RECALCULATE_AT};
use super::open::give_to_owner;
use crate::store::delivery::{Quota, Usage};
use crate::store::dir::Dir;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The quota file, in the Maildir's root.
pub(super) const FILE: &str = "maildirsize";

/// The lock that makes recalculations exact among pop3d processes (see the module doc).
const LOCK_FILE: &str = "pop3d.quota.lock";

/// An over-quota sum older than this is checked by a recalculation before a bounce.
const STALE: Duration = Duration::from_secs(15 * 60);

/// Scans repeated when a directory changed during one (another program delivering).
const SCAN_ATTEMPTS: usize = 3;

/// A `flock` on [`LOCK_FILE`], released when dropped.
pub(super) struct QuotaLock {
    _file: File,
}

impl QuotaLock {
    fn take(root: &Dir, exclusive: bool) -> io::Result<QuotaLock> {
        // Read-only and readable by all who may enter the Maildir: whoever created it, the
        // owner's delivery agent and the server (even as root) can both lock it.
        let flags = libc::O_RDONLY | libc::O_CREAT | libc::O_NONBLOCK;
        let file = root.open_file(OsStr::new(LOCK_FILE), flags, 0o644)?;
        give_to_owner(root, &file)?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        loop {
            // SAFETY: flock only reads the descriptor number, which `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(QuotaLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// The shared lock for a session's deletions, if the Maildir keeps a `maildirsize`.
    pub(super) fn for_removals(root: &Dir) -> io::Result<Option<QuotaLock>> {
        if !exists(root) {
            return Ok(None);
        }
        QuotaLock::take(root, false).map(Some)
    }
}

fn exists(root: &Dir) -> bool {
    root.stat(OsStr::new(FILE)).is_ok_and(|st| st.is_file())
}

/// Reads the file; `None` if there is none, or it cannot be made sense of at all.
fn read(root: &Dir) -> io::Result<Option<Contents>> {
    let file = match super::message_file::open_regular(root, OsStr::new(FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let modified = file.metadata()?.modified()?;
    let mut bytes = Vec::with_capacity(512);
    // One byte past the threshold tells a file that reached it.
    file.take(RECALCULATE_AT as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(parse(&bytes, modified))
}

/// Appends one line of figures in one write. No file: nothing to keep up to date.
fn append(root: &Dir, bytes: i64, count: i64) -> io::Result<()> {
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_NONBLOCK;
    let mut file = match root.open_file(OsStr::new(FILE), flags, 0) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let line = format!("{bytes} {count}\n");
    match file.write(line.as_bytes())? {
        n if n == line.len() => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
    }
}

/// Records a session's deletions, under the lock [`QuotaLock::for_removals`] gave.
pub(super) fn record_removals(root: &Dir, _lock: &QuotaLock, usage: Usage) -> io::Result<()> {
    if usage.messages == 0 {
        return Ok(());
    }
    append(root, -(usage.bytes as i64), -(usage.messages as i64))
}

/// Counts the Maildir again and replaces the file with `quota` and the total, through a file
/// in `tmp/`. Call with the lock held exclusively.
fn recalculate(root: &Dir, quota: &Quota) -> io::Result<Usage> {
    let mut usage = Usage::default();
    for attempt in 1..=SCAN_ATTEMPTS {
        let (counted, before) = count(root)?;
        usage = counted;
        let after = stamps(root)?;
        if before == after {
            break;
        }
        log::debug!("maildirsize: a directory changed while counting (attempt {attempt})");
    }
    let tmp = root.open_dir(OsStr::new("tmp"))?;
    let name = super::deliver::unique_name("maildirsize");
    let text = format!(
        "{}\n{} {}\n",
        quota_line(quota),
        usage.bytes,
        usage.messages
    );
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    let result = (|| {
        let mut file = tmp.open_file(OsStr::new(&name), flags, 0o600)?;
        give_to_owner(root, &file)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        tmp.rename_into(OsStr::new(&name), root, OsStr::new(FILE))
    })();
    if result.is_err() {
        let _ = tmp.unlink(OsStr::new(&name));
    }
    result.map(|()| usage)
}

/// Two quotas that say the same (`Some(0)` is no limit, as `None`).
fn same(a: &Quota, b: &Quota) -> bool {
    (a.storage_limit(), a.message_limit()) == (b.storage_limit(), b.message_limit())
}

/// Why [`within_quota`] refused a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Over the quota (which is given).
    OverQuota(Quota, Usage),
    /// Larger than the storage quota on its own.
    TooBig(Quota),
}

/// Adds one message of `bytes` (its `,S=`) to the Maildir at `root` if the quota allows:
/// checks, runs `commit` (which makes the message visible), then appends its line.
///
/// The quota is `configured` (the account's or the store's), else the one in the file; with
/// neither, `commit` just runs. `commit`'s error is returned as it is, and then the file is
/// untouched.
pub(super) fn within_quota<E: From<io::Error>>(
    root: &Dir,
    configured: Option<Quota>,
    bytes: u64,
    commit: impl FnOnce() -> Result<(), E>,
) -> Result<Result<(), Refusal>, E> {
    let configured = configured.filter(|q| !q.is_unlimited());
    if configured.is_none() && !exists(root) {
        return commit().map(Ok);
    }
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{FILE}: {e}"));
    checked(root, configured, bytes, commit, context)
}

/// [`within_quota`] once there is a quota to keep.
fn checked<E: From<io::Error>>(
    root: &Dir,
    configured: Option<Quota>,
    bytes: u64,
    commit: impl FnOnce() -> Result<(), E>,
    context: impl Fn(io::Error) -> io::Error,
) -> Result<Result<(), Refusal>, E> {
    let mut lock = QuotaLock::take(root, false).map_err(&context)?;
    let mut exclusive = false;
    let usable = |c: Option<Contents>| match c {
        Some(c) if !c.damaged && configured.is_none_or(|q| same(&q, &c.quota)) => Ok(c),
        other => Err(other),
    };
    let contents = match usable(read(root).map_err(&context)?) {
        Ok(c) => Ok(c),
        Err(_) => {
            // Recalculation needs the lock to itself; whoever had it may have done it.
            drop(lock);
            lock = QuotaLock::take(root, true).map_err(&context)?;
            exclusive = true;
            usable(read(root).map_err(&context)?)
        }
    };
    let (quota, mut usage, trusted) = match contents {
        Ok(c) => {
            let young = c.modified.elapsed().is_ok_and(|age| age < STALE);
            (c.quota, c.usage, c.lines == 1 && young)
        }
        Err(unusable) => {
            let quota = configured.or(unusable.map(|c| c.quota)).unwrap_or_default();
            (quota, recalculate(root, &quota).map_err(&context)?, true)
        }
    };
    if quota.too_big(bytes) {
        return Ok(Err(Refusal::TooBig(quota)));
    }
    if quota.exceeded_by(usage, bytes) && !trusted {
        if !exclusive {
            drop(lock);
            lock = QuotaLock::take(root, true).map_err(&context)?;
        }
        usage = recalculate(root, &quota).map_err(&context)?;
    }
    if quota.exceeded_by(usage, bytes) {
        return Ok(Err(Refusal::OverQuota(quota, usage)));
    }
    commit()?;
    // The message is in: a failure now costs the figures' accuracy (until the next
    // recalculation), never the message.
    if let Err(e) = append(root, bytes as i64, 1) {
        log::warn!("maildirsize: could not record a delivery of {bytes} bytes: {e}");
    }
    drop(lock);
    Ok(Ok(()))
}

/// Seconds since the epoch, for names.
pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The figures the file gives now, and what a fresh count gives: for tests and checks.
#[cfg(test)]
pub(super) fn sum_and_count(root: &Dir) -> (Option<Usage>, Usage) {
    let sum = read(root).unwrap().map(|c| c.usage);
    (sum, count(root).unwrap().0)
}
