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

use super::naming::disk_size_hint;
use super::open::give_to_owner;
use crate::store::delivery::{Quota, Usage};
use crate::store::dir::{Dir, Kind};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The quota file, in the Maildir's root.
pub(super) const FILE: &str = "maildirsize";

/// The mtimes of the directories a count looked at (`None` for one that is missing).
type Stamps = Vec<Option<(i64, i64)>>;

/// The lock that makes recalculations exact among pop3d processes (see the module doc).
const LOCK_FILE: &str = "pop3d.quota.lock";

/// A file this large is recalculated (Courier's and Dovecot's threshold).
const RECALCULATE_AT: usize = 5120;

/// An over-quota sum older than this is checked by a recalculation before a bounce.
const STALE: Duration = Duration::from_secs(15 * 60);

/// Scans repeated when a directory changed during one (another program delivering).
const SCAN_ATTEMPTS: usize = 3;

/// The Trash folder, left out of the count as Courier leaves it out.
const TRASH: &[u8] = b".Trash";

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

/// What the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    quota: Quota,
    usage: Usage,
    /// Lines of figures after the quota line.
    lines: usize,
    /// The sums cannot be used: the file must be recalculated.
    damaged: bool,
    modified: SystemTime,
}

/// Reads the quota line: `NNNS` and `NNNC` in any order, comma-separated; `0` is no limit.
fn parse_quota(line: &[u8]) -> Option<Quota> {
    let mut quota = Quota::default();
    for part in line.split(|&b| b == b',').filter(|p| !p.is_empty()) {
        let (&unit, digits) = part.split_last()?;
        let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let n = (n > 0).then_some(n);
        match unit {
            b'S' => quota.storage = n,
            b'C' => quota.messages = n,
            _ => return None,
        }
    }
    Some(quota)
}

/// The quota line (without its LF). No limit at all is written `0S`, as Dovecot writes it, so
/// that the line is never empty.
fn quota_line(quota: &Quota) -> String {
    let mut parts = Vec::new();
    if quota.storage_limit().is_some() || quota.message_limit().is_none() {
        parts.push(format!("{}S", quota.storage_limit().unwrap_or(0)));
    }
    if let Some(m) = quota.message_limit() {
        parts.push(format!("{m}C"));
    }
    parts.join(",")
}

/// Parses the whole file. A last line without its LF is being written: left out.
fn parse(bytes: &[u8], modified: SystemTime) -> Option<Contents> {
    let end = bytes.iter().rposition(|&b| b == b'\n')?;
    let mut lines = bytes[..end].split(|&b| b == b'\n');
    let quota = parse_quota(lines.next()?)?;
    let (mut sum_bytes, mut sum_count, mut n, mut damaged) = (0i64, 0i64, 0, false);
    for line in lines {
        let text = std::str::from_utf8(line).unwrap_or("");
        let mut figures = text.split_ascii_whitespace().map(str::parse::<i64>);
        match (figures.next(), figures.next(), figures.next()) {
            (Some(Ok(b)), Some(Ok(c)), None) => {
                sum_bytes = sum_bytes.saturating_add(b);
                sum_count = sum_count.saturating_add(c);
            }
            _ => damaged = true,
        }
        n += 1;
    }
    damaged |= sum_bytes < 0 || sum_count < 0 || bytes.len() >= RECALCULATE_AT;
    Some(Contents {
        quota,
        usage: Usage {
            bytes: sum_bytes.max(0) as u64,
            messages: sum_count.max(0) as u64,
        },
        lines: n,
        damaged,
        modified,
    })
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

/// The size a quota counts for the file `name` of `file_size` octets: its `,S=`, else its size.
pub(super) fn counted_size(name: &OsStr, file_size: u64) -> u64 {
    disk_size_hint(super::naming::basename(name)).unwrap_or(file_size)
}

/// Whether a message file counts at all: not when flagged deleted (`T` after `:2,`).
pub(super) fn counts(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    match bytes.windows(3).position(|w| w == b":2,") {
        Some(at) => !bytes[at + 3..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .any(|&b| b == b'T'),
        None => true,
    }
}

/// Counts one message directory; returns its mtime. A missing directory counts nothing.
fn count_dir(parent: &Dir, sub: &OsStr, usage: &mut Usage) -> io::Result<Option<(i64, i64)>> {
    let dir = match parent.open_dir(sub) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mtime = dir.stat_self()?.mtime;
    for (name, kind) in dir.entries()? {
        if name.as_bytes().first() == Some(&b'.') || !counts(&name) {
            continue;
        }
        let size = match (kind, disk_size_hint(super::naming::basename(&name))) {
            (Kind::File, Some(size)) => size,
            (Kind::File | Kind::Unknown, _) => match dir.stat(&name) {
                Ok(st) if st.is_file() => counted_size(&name, st.size),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            },
            _ => continue,
        };
        usage.bytes = usage.bytes.saturating_add(size);
        usage.messages += 1;
    }
    Ok(Some(mtime))
}

/// The folders of the Maildir that count: every `.Name` directory but Trash, opened.
fn folders(root: &Dir) -> io::Result<Vec<Dir>> {
    let mut folders = Vec::new();
    for (name, kind) in root.entries()? {
        let bytes = name.as_bytes();
        if bytes.first() != Some(&b'.')
            || bytes == TRASH
            || !matches!(kind, Kind::Other | Kind::Unknown)
        {
            continue;
        }
        // Not a directory, a symlink, or gone: not a folder to count.
        if let Ok(dir) = root.open_dir(&name) {
            folders.push(dir);
        }
    }
    Ok(folders)
}

/// Counts the whole Maildir: the inbox and every folder but Trash. Returns the figures and the
/// mtimes of the directories counted, to tell whether one changed meanwhile.
fn count(root: &Dir) -> io::Result<(Usage, Stamps)> {
    let mut usage = Usage::default();
    let mut stamps = Vec::new();
    for dir in std::iter::once(root).chain(&folders(root)?) {
        for sub in ["new", "cur"] {
            stamps.push(count_dir(dir, OsStr::new(sub), &mut usage)?);
        }
    }
    Ok((usage, stamps))
}

/// The mtimes of the directories [`count`] looks at, in the same order.
fn stamps(root: &Dir) -> io::Result<Stamps> {
    let mut stamps = Vec::new();
    for dir in std::iter::once(root).chain(&folders(root)?) {
        for sub in ["new", "cur"] {
            stamps.push(dir.stat(OsStr::new(sub)).ok().map(|st| st.mtime));
        }
    }
    Ok(stamps)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_lines() {
        let q = |s: &str| parse_quota(s.as_bytes());
        assert_eq!(
            q("1000S,20C"),
            Some(Quota {
                storage: Some(1000),
                messages: Some(20)
            })
        );
        assert_eq!(q("20C").unwrap().storage, None);
        assert_eq!(q("0S").unwrap(), Quota::default());
        assert_eq!(q("10X"), None);
        for quota in [q("1000S,20C"), q("20C"), q("0S"), q("5S")] {
            let quota = quota.unwrap();
            assert_eq!(parse_quota(quota_line(&quota).as_bytes()), Some(quota));
        }
        assert_eq!(quota_line(&Quota::default()), "0S");
    }

    #[test]
    fn figures_add_up_as_courier_and_dovecot_write_them() {
        let t = UNIX_EPOCH;
        let c = parse(b"1000S,20C\n  300   3\n12 1\n-12 -1\n5 1", t).unwrap();
        assert_eq!((c.usage.bytes, c.usage.messages, c.lines), (300, 3, 3));
        assert!(!c.damaged, "the unfinished last line is left out");
        assert!(parse(b"1000S\n5 1\n-10 -2\n", t).unwrap().damaged);
        assert!(parse(b"1000S\nfive 1\n", t).unwrap().damaged);
        let mut big = b"1000S\n".to_vec();
        while big.len() < RECALCULATE_AT {
            big.extend_from_slice(b"1 1\n");
        }
        assert!(parse(&big, t).unwrap().damaged);
        assert_eq!(parse(b"", t), None);
    }

    #[test]
    fn deleted_messages_do_not_count() {
        assert!(counts(OsStr::new("1.M1.h,S=5:2,S")));
        assert!(!counts(OsStr::new("1.M1.h,S=5:2,ST")));
        assert!(counts(OsStr::new("1.M1.h,S=5")));
        assert_eq!(counted_size(OsStr::new("1.h,S=5:2,"), 9), 5);
        assert_eq!(counted_size(OsStr::new("1.h"), 9), 9);
    }
}
