//! Delivering into an mbox spool as an MTA does: under the dot-lock and the `fcntl` lock,
//! appended after a `From MAILER-DAEMON` line with `From ` body lines quoted, then synced; on
//! any failure the spool is cut back to the length it had, so it is as before.

use super::locks::MtaLocks;
use super::quote::Quoter;
use super::scan::{read_full, scan};
use super::{mail_group::with_mail_group, uidl, MboxStore};
use crate::account::Account;
use crate::store::delivery::{Deliver, DeliveryError, DeliveryErrorKind, Quota};
use crate::store::dir::Dir;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Mode of a spool this creates: the owner's alone, as Postfix and Debian's tools make them.
const SPOOL_MODE: libc::mode_t = 0o600;

/// Octets read from the message at a time.
const CHUNK: usize = 64 * 1024;

/// The sender on the `From ` line: the trait is given no envelope sender, and Postfix writes
/// this one for an empty sender.
const SENDER: &str = "MAILER-DAEMON";

impl Deliver for MboxStore {
    fn deliver(&self, account: &Account, message: &mut dyn Read) -> Result<String, DeliveryError> {
        let temporary = |text: String| DeliveryError::new(DeliveryErrorKind::Temporary, text);
        let path = self
            .template
            .expand(account)
            .map_err(|e| temporary(format!("mbox of {}: {e}", account.name)))?;
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) if !p.as_os_str().is_empty() => (p, n),
            _ => {
                return Err(temporary(format!(
                    "{}: not a path to a file",
                    path.display()
                )))
            }
        };
        let shown = path.display();
        let dir = Dir::open_following(parent)
            .map_err(|e| DeliveryError::io(format!("{}: open", parent.display()), e))?;
        let spool = open_spool(&dir, name, &path, account)?;
        let locks = MtaLocks::acquire(&dir, name, &spool, self.lock_wait)
            .map_err(|e| DeliveryError::io(format!("{shown}: lock"), e))?
            .ok_or_else(|| {
                temporary(format!(
                    "{shown}: locked by another program (dot-lock or fcntl) for {:?}",
                    self.lock_wait
                ))
            })?;
        let before = spool
            .metadata()
            .map_err(|e| DeliveryError::io(format!("{shown}: stat"), e))?
            .len();
        let quota = account.quota.or(self.quota);
        let result = append(&spool, before, message, quota, &account.name, &path);
        if result.is_err() {
            // Cut back under the locks, so that no reader ever sees a part of the message.
            if let Err(e) = spool.set_len(before).and_then(|()| spool.sync_all()) {
                log::error!("{shown}: could not cut back to {before} octets: {e}");
            }
        }
        drop(locks);
        result
    }
}

/// Opens (or creates) the spool for appending, refusing a symlink, anything but a regular
/// file, and a spool that is not the account's.
fn open_spool(
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    account: &Account,
) -> Result<File, DeliveryError> {
    let refused = |text: String| DeliveryError::new(DeliveryErrorKind::Temporary, text);
    let flags = libc::O_RDWR | libc::O_APPEND;
    let mut created = false;
    let spool = with_mail_group(|| {
        match dir.open_file(name, flags | libc::O_CREAT | libc::O_EXCL, SPOOL_MODE) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => dir.open_file(name, flags, 0),
            other => {
                created = other.is_ok();
                other
            }
        }
    })
    .map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            refused(format!("{}: is a symlink; refused", path.display()))
        } else {
            DeliveryError::io(format!("{}: open", path.display()), e)
        }
    })?;
    let meta = spool
        .metadata()
        .map_err(|e| DeliveryError::io(format!("{}: stat", path.display()), e))?;
    if !meta.is_file() {
        return Err(refused(format!(
            "{}: not a regular file; refused",
            path.display()
        )));
    }
    // SAFETY: geteuid takes nothing and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if let (true, true, Some(uid)) = (created, root, account.uid) {
        // Created by root: give it to the account, in the `mail` group if there is one.
        let gid = mail_gid().or(account.gid).unwrap_or(meta.gid());
        // SAFETY: fchown reads the descriptor number, which `spool` keeps open, and two ids.
        if unsafe { libc::fchown(spool.as_raw_fd(), uid, gid) } != 0 {
            let e = io::Error::last_os_error();
            return Err(DeliveryError::io(format!("{}: chown", path.display()), e));
        }
        return Ok(spool);
    }
    match account.uid {
        Some(uid) if meta.uid() != uid => Err(refused(format!(
            "{}: owned by uid {}, should be the account's uid {uid}; refused",
            path.display(),
            meta.uid()
        ))),
        _ => Ok(spool),
    }
}

/// The `mail` group's id, if the host has one.
fn mail_gid() -> Option<u32> {
    // SAFETY: an all-zero group structure is valid; getgrnam_r fills it.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::group = std::ptr::null_mut();
    let name: &CStr = c"mail";
    // SAFETY: every pointer is to a live value of the right type; `buf` outlives the call.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some(group.gr_gid)
}

/// Writes the separator, the quoted message and its blank line at the end of `spool` (which
/// is `before` octets long), checks the quota, syncs, and returns the new message's UIDL.
fn append(
    spool: &File,
    before: u64,
    message: &mut dyn Read,
    quota: Option<Quota>,
    user: &str,
    path: &Path,
) -> Result<String, DeliveryError> {
    let shown = path.display();
    let write_err = |e| DeliveryError::io(format!("{shown}: write"), e);
    let mut out = Vec::with_capacity(2 * CHUNK);
    out.extend_from_slice(padding(spool, before).map_err(write_err)?);
    let start = before + out.len() as u64;
    out.extend_from_slice(format!("From {SENDER}  {}\n", ctime_now()).as_bytes());
    let limit = quota.and_then(|q| q.storage_limit());
    let mut written = before;
    let mut quoter = Quoter::default();
    let mut buf = vec![0u8; CHUNK];
    let mut writer = spool;
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(DeliveryError::io(
                    format!("reading the message for {user}"),
                    e,
                ))
            }
        };
        quoter.feed(&buf[..n], &mut out);
        written += out.len() as u64;
        over_storage(limit, before, written, user)?;
        writer.write_all(&out).map_err(write_err)?;
        out.clear();
    }
    if !quoter.finish(&mut out) {
        out.push(b'\n');
    }
    out.push(b'\n');
    written += out.len() as u64;
    over_storage(limit, before, written, user)?;
    writer.write_all(&out).map_err(write_err)?;
    spool
        .sync_all()
        .map_err(|e| DeliveryError::io(format!("{shown}: fsync"), e))?;
    let (parser, _) = scan(spool, 0).map_err(|e| DeliveryError::io(format!("{shown}: read"), e))?;
    let count = parser.messages.len() as u64;
    if let Some(most) = quota.and_then(|q| q.message_limit()) {
        if count > most {
            return Err(DeliveryError::new(
                DeliveryErrorKind::OverQuota,
                format!(
                    "{user} is over quota: holds {} messages, quota {most}",
                    count - 1
                ),
            ));
        }
    }
    let uidls = uidl::assign(
        parser
            .messages
            .iter()
            .map(|m| (m.x_uidl.as_deref(), &m.digest)),
    );
    match parser.messages.iter().position(|m| m.from == start) {
        Some(i) => Ok(uidls[i].clone()),
        None => Err(DeliveryError::new(
            DeliveryErrorKind::Temporary,
            format!("{shown}: the message written at {start} is not found there; cut back"),
        )),
    }
}

/// Refuses once the spool would grow past the storage limit: too big if the message alone
/// would not fit in an empty spool.
fn over_storage(
    limit: Option<u64>,
    before: u64,
    total: u64,
    user: &str,
) -> Result<(), DeliveryError> {
    match limit {
        Some(limit) if total > limit => {
            let (kind, what) = if total - before > limit {
                (DeliveryErrorKind::TooBig, "larger than the whole quota")
            } else {
                (DeliveryErrorKind::OverQuota, "over quota")
            };
            Err(DeliveryError::new(
                kind,
                format!("{user}: message {what}: spool would pass {limit} bytes"),
            ))
        }
        _ => Ok(()),
    }
}

/// What must come before a new `From ` line so that the last message ends with an empty
/// line: nothing for an empty spool, else the `\n`s missing from the end.
fn padding(spool: &File, len: u64) -> io::Result<&'static [u8]> {
    if len == 0 {
        return Ok(b"");
    }
    let mut tail = [0u8; 2];
    let at = len.saturating_sub(2);
    let n = read_full(spool, &mut tail[..(len - at) as usize], at)?;
    Ok(match &tail[..n] {
        [.., b'\n', b'\n'] => b"",
        [.., b'\n'] => b"\n",
        _ => b"\n\n",
    })
}

/// The time now as `asctime(3)` writes it in local time, as MTAs put it on the `From ` line.
fn ctime_now() -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: time accepts a null pointer; localtime_r writes only into `tm`.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday.clamp(0, 6) as usize],
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}
