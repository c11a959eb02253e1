//! Delivering into a Maildir: written in `tmp/`, synced, checked against the quota, then
//! linked into `new/` under its final name, which carries its sizes.

use super::maildirsize::{self, now_secs, Refusal};
use super::naming::uidl;
use super::open::{give_to_owner, open_root, open_subdirs};
use super::MaildirStore;
use crate::account::Account;
use crate::limits;
use crate::protocol::message::WireSize;
use crate::store::delivery::{Deliver, DeliveryError, DeliveryErrorKind};
use crate::store::dir::Dir;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How old a file in `tmp/` must be before it is taken for a crashed delivery's leftover and
/// removed: the Maildir specification's 36 hours, far longer than any delivery takes.
const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// Mode of a delivered message: the owner's alone, as Dovecot and Postfix write them.
const MESSAGE_MODE: libc::mode_t = 0o600;

/// Deliveries made by this process, for unique names.
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Deliver for MaildirStore {
    fn deliver(&self, account: &Account, message: &mut dyn Read) -> Result<String, DeliveryError> {
        let root_path = self.template.expand(account).map_err(|e| {
            DeliveryError::new(
                DeliveryErrorKind::Temporary,
                format!("maildir of {}: {e}", account.name),
            )
        })?;
        let root = open_root(&root_path, account.uid)?;
        let [_cur, new] = open_subdirs(&root, &root_path, account.uid)?;
        let tmp = root
            .open_dir(OsStr::new("tmp"))
            .map_err(|e| DeliveryError::io(format!("{}/tmp: open", root_path.display()), e))?;
        clean_tmp(&tmp, &root_path);
        let quota = account.quota.or(self.quota);
        let name = unique_name("M");
        let shown = |dir: &str, name: &str| root_path.join(dir).join(name).display().to_string();
        let result = (|| {
            let mut file = tmp
                .open_file(
                    OsStr::new(&name),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    MESSAGE_MODE,
                )
                .map_err(|e| DeliveryError::io(format!("{}: create", shown("tmp", &name)), e))?;
            give_to_owner(&root, &file)
                .map_err(|e| DeliveryError::io(format!("{}: chown", shown("tmp", &name)), e))?;
            let limit = quota.and_then(|q| q.storage_limit());
            let (disk, wire) = copy(message, &mut file, limit)
                .map_err(|e| DeliveryError::io(format!("{}: write", shown("tmp", &name)), e))?
                .ok_or_else(|| too_big(&account.name, limit))?;
            file.sync_all()
                .map_err(|e| DeliveryError::io(format!("{}: fsync", shown("tmp", &name)), e))?;
            drop(file);
            let final_name = format!("{name},S={disk},W={wire}");
            let commit = || -> Result<(), DeliveryError> {
                move_into(&tmp, &name, &new, &final_name).map_err(|e| {
                    DeliveryError::io(format!("{}: link", shown("new", &final_name)), e)
                })?;
                new.sync().map_err(|e| {
                    DeliveryError::io(format!("{}/new: fsync", root_path.display()), e)
                })
            };
            match maildirsize::within_quota(&root, quota, disk, commit) {
                Ok(Ok(())) => Ok(uidl(OsStr::new(&final_name))),
                Ok(Err(refusal)) => Err(refused(&account.name, disk, refusal)),
                Err(e) => Err(e),
            }
        })();
        // Gone from tmp/ whatever happened: linked into new/, or not delivered at all.
        match tmp.unlink(OsStr::new(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}: unlink: {e}", shown("tmp", &name)),
        }
        result
    }
}

/// Gives the file `from` in `tmp` its name `to` in `new`: a hard link, as the Maildir
/// specification says, so that an existing name is never replaced; a rename on a file system
/// without hard links.
fn move_into(tmp: &Dir, from: &str, new: &Dir, to: &str) -> io::Result<()> {
    match tmp.link_into(OsStr::new(from), new, OsStr::new(to)) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            tmp.rename_into(OsStr::new(from), new, OsStr::new(to))
        }
        other => other,
    }
}

/// Copies `message` into `file` in chunks and returns its sizes (on disk, and as sent over
/// POP3); `None` as soon as it is larger than `limit`.
fn copy(
    message: &mut dyn Read,
    file: &mut File,
    limit: Option<u64>,
) -> io::Result<Option<(u64, u64)>> {
    let mut buf = vec![0; limits::MESSAGE_CHUNK.max(64 * 1024)];
    let mut wire = WireSize::new();
    let mut disk = 0u64;
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => return Ok(Some((disk, wire.total()))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        disk += n as u64;
        if limit.is_some_and(|l| disk > l) {
            return Ok(None);
        }
        wire.feed(&buf[..n]);
        file.write_all(&buf[..n])?;
    }
}

fn too_big(user: &str, limit: Option<u64>) -> DeliveryError {
    DeliveryError::new(
        DeliveryErrorKind::TooBig,
        format!(
            "message for {user} is larger than the whole quota of {} bytes",
            limit.unwrap_or(0)
        ),
    )
}

fn refused(user: &str, size: u64, refusal: Refusal) -> DeliveryError {
    match refusal {
        Refusal::TooBig(quota) => too_big(user, quota.storage_limit()),
        Refusal::OverQuota(quota, usage) => DeliveryError::new(
            DeliveryErrorKind::OverQuota,
            format!(
                "{user} is over quota: holds {} bytes in {} messages, quota {quota}, \
                 message of {size} bytes",
                usage.bytes, usage.messages
            ),
        ),
    }
}

/// A name unique among all deliveries to the Maildir, as its specification asks: the time,
/// then `M` and the microseconds, `P` the process id, `Q` a count of this process's
/// deliveries and `R` random bits (the time may step back and pids are reused), then the
/// host's name. `kind` replaces the `M` part's letter for files that are not messages.
pub(super) fn unique_name(kind: &str) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut random = [0u8; 4];
    // Without randomness the counter and microseconds still separate this process's names.
    let _ = getrandom::getrandom(&mut random);
    format!(
        "{}.{kind}{:06}P{}Q{}R{:08x}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u32::from_be_bytes(random),
        host_part()
    )
}

/// The host's name as a Maildir name may hold it: `/` and `:` written `\057` and `\072` as the
/// specification says, and `,` as `\054`, since `,` starts the size fields.
fn host_part() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    let name = match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name,
        _ => "localhost",
    };
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            c if c.is_ascii_graphic() => out.push(c),
            _ => out.push('_'),
        }
    }
    out
}

/// Removes files in `tmp/` older than [`TMP_MAX_AGE`]: deliveries that crashed. Failures
/// cost only space, and are logged.
fn clean_tmp(tmp: &Dir, root: &Path) {
    let Ok(entries) = tmp.entries() else {
        return;
    };
    let now = now_secs() as i64;
    for (name, _) in entries {
        match tmp.stat(&name) {
            Ok(st) if st.is_file() && now - st.mtime.0 > TMP_MAX_AGE.as_secs() as i64 => {
                match tmp.unlink(&name) {
                    Ok(()) => log::info!(
                        "{}: removed, a delivery's leftover older than 36 hours",
                        root.join("tmp").join(&name).display()
                    ),
                    Err(e) => log::warn!("{}: unlink: {e}", root.join("tmp").join(&name).display()),
                }
            }
            _ => {}
        }
    }
}
