//! The redo journal that makes UPDATE's rewrite of a spool crash-safe.
//!
//! UPDATE rewrites the spool in place: a spool renamed over would leave a writer that opened
//! the old one before locking it appending to an unlinked file. Removing messages means moving
//! every kept octet after the first removed message (at `d0`) down over them, and a crash in
//! the middle of that would leave the spool half old, half new. So the new tail (every kept
//! octet from `d0` on) is first written to a journal beside the spool, and only then copied
//! into place:
//!
//! 1. the journal is written to `.SPOOL.pop3d-journal.new`, synced, renamed to
//!    `.SPOOL.pop3d-journal`, and the directory synced;
//! 2. the tail is written at `d0` and the spool synced;
//! 3. the spool is truncated to `d0` + the tail's length and synced;
//! 4. the journal is removed and the directory synced.
//!
//! What a crash leaves, and what the next open (under the MTA locks) does with it:
//!
//! - during 1: no journal (a `.new` file at most, removed): the spool is untouched, nothing
//!   was deleted;
//! - during 2 or 3, before the truncation: the spool from `d0 + len` to the old end is still
//!   the old octets (their SHA-256 is in the journal): the steps are done again from 2. An MTA
//!   that broke our dot-lock as stale after the crash may have appended to the spool: those
//!   octets are added to the tail of a new journal first (written as in 1), so they are kept;
//! - after the truncation: the spool from `d0` holds the tail (its SHA-256 is in the journal),
//!   maybe with appended mail after it: the journal is removed;
//! - a journal that does not check out (torn by a crash of the disk, not of pop3d, whose
//!   rename is atomic) is removed without touching the spool; a spool that matches neither
//!   case (another program rewrote it meanwhile) is left alone and the journal kept aside
//!   (`.SPOOL.pop3d-journal.TIME.bad`), since it may hold the only copy of kept mail.

use super::mail_group::with_mail_group;
use super::scan::read_full;
use crate::store::dir::Dir;
use sha2::{Digest, Sha256};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

const MAGIC: &[u8; 16] = b"pop3d mbox jnl1\n";
/// Magic, three numbers, two digests, and the digest of all that.
pub(super) const HEADER_LEN: usize = 16 + 3 * 8 + 2 * 32 + 32;
const COPY_CHUNK: usize = 1024 * 1024;

/// What a journal says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    /// Where the tail goes.
    pub(super) d0: u64,
    /// The spool's length when the journal was written.
    pub(super) orig_len: u64,
    pub(super) tail_len: u64,
    pub(super) tail_sha: [u8; 32],
    /// SHA-256 of the spool's octets `d0 + tail_len .. orig_len` when the journal was written.
    pub(super) rest_sha: [u8; 32],
}

impl Header {
    pub(super) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..16].copy_from_slice(MAGIC);
        out[16..24].copy_from_slice(&self.d0.to_le_bytes());
        out[24..32].copy_from_slice(&self.orig_len.to_le_bytes());
        out[32..40].copy_from_slice(&self.tail_len.to_le_bytes());
        out[40..72].copy_from_slice(&self.tail_sha);
        out[72..104].copy_from_slice(&self.rest_sha);
        let sum = Sha256::digest(&out[..104]);
        out[104..].copy_from_slice(&sum);
        out
    }

    /// The header in `bytes`, if it is one and whole.
    pub(super) fn decode(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < HEADER_LEN || &bytes[..16] != MAGIC {
            return None;
        }
        if Sha256::digest(&bytes[..104])[..] != bytes[104..HEADER_LEN] {
            return None;
        }
        let num = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let digest = |at: usize| {
            let mut d = [0u8; 32];
            d.copy_from_slice(&bytes[at..at + 32]);
            d
        };
        let h = Header {
            d0: num(16),
            orig_len: num(24),
            tail_len: num(32),
            tail_sha: digest(40),
            rest_sha: digest(72),
        };
        (h.d0.checked_add(h.tail_len)? <= h.orig_len).then_some(h)
    }
}

/// Where the octets of a new tail come from.
pub(super) enum Source<'a> {
    Spool(Range<u64>),
    /// Part of an older journal's tail (offsets within the tail).
    Journal(&'a File, Range<u64>),
}

/// The steps of a rewrite, after which the tests stop it to act out a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    /// The journal is in place.
    Journaled,
    /// The tail is written at `d0` (not synced).
    TailWritten,
    /// The tail is synced.
    TailSynced,
    /// The spool is truncated and synced.
    Truncated,
}

pub(super) fn journal_name(spool: &OsStr) -> OsString {
    let mut name = OsString::from(".");
    name.push(spool);
    name.push(".pop3d-journal");
    name
}

fn temp_name(spool: &OsStr) -> OsString {
    let mut name = journal_name(spool);
    name.push(".new");
    name
}

/// Writes the journal of a rewrite that puts `sources` at `d0` in `spool` (now `orig_len`
/// long), as step 1 says. Returns its header and the journal, open.
pub(super) fn write(
    dir: &Dir,
    name: &OsStr,
    spool: &File,
    d0: u64,
    orig_len: u64,
    sources: &[Source],
) -> io::Result<(Header, File)> {
    let tmp = temp_name(name);
    let journal = with_mail_group(|| {
        dir.open_file(&tmp, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, 0o600)
    })?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut sha = Sha256::new();
    let mut at = HEADER_LEN as u64;
    for source in sources {
        let (file, range, base) = match source {
            Source::Spool(r) => (spool, r.clone(), 0),
            Source::Journal(f, r) => (*f, r.clone(), HEADER_LEN as u64),
        };
        let mut pos = range.start;
        while pos < range.end {
            let want = (range.end - pos).min(COPY_CHUNK as u64) as usize;
            let got = read_full(file, &mut buf[..want], base + pos)?;
            if got < want {
                return Err(short("a source of the journal"));
            }
            sha.update(&buf[..got]);
            journal.write_all_at(&buf[..got], at)?;
            at += got as u64;
            pos += got as u64;
        }
    }
    let tail_len = at - HEADER_LEN as u64;
    let rest_sha = digest_of(spool, d0 + tail_len..orig_len, &mut buf)?;
    let header = Header {
        d0,
        orig_len,
        tail_len,
        tail_sha: sha.finalize().into(),
        rest_sha,
    };
    journal.write_all_at(&header.encode(), 0)?;
    journal.sync_all()?;
    with_mail_group(|| dir.rename(&tmp, &journal_name(name)))?;
    dir.sync()?;
    Ok((header, journal))
}

/// Steps 2 to 4: puts the journal's tail in place and removes the journal. Stops after `stop`
/// (the tests' crash).
pub(super) fn apply(
    dir: &Dir,
    name: &OsStr,
    spool: &File,
    journal: &File,
    h: &Header,
    stop: Option<Step>,
) -> io::Result<()> {
    if stop == Some(Step::Journaled) {
        return Ok(());
    }
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut pos = 0;
    while pos < h.tail_len {
        let want = (h.tail_len - pos).min(COPY_CHUNK as u64) as usize;
        let got = read_full(journal, &mut buf[..want], HEADER_LEN as u64 + pos)?;
        if got < want {
            return Err(short("the journal"));
        }
        spool.write_all_at(&buf[..got], h.d0 + pos)?;
        pos += got as u64;
    }
    if stop == Some(Step::TailWritten) {
        return Ok(());
    }
    spool.sync_all()?;
    if stop == Some(Step::TailSynced) {
        return Ok(());
    }
    spool.set_len(h.d0 + h.tail_len)?;
    spool.sync_all()?;
    if stop == Some(Step::Truncated) {
        return Ok(());
    }
    with_mail_group(|| dir.unlink(&journal_name(name)))?;
    dir.sync()
}

/// Finishes or undoes a rewrite that a crash interrupted, as the module documentation says.
/// True if the spool was changed.
pub(super) fn recover(dir: &Dir, name: &OsStr, spool: &File) -> io::Result<bool> {
    let _ = with_mail_group(|| dir.unlink(&temp_name(name)));
    let jname = journal_name(name);
    let journal = match dir.open_file(&jname, libc::O_RDONLY, 0) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(&journal, &mut head, 0)?;
    let header = Header::decode(&head[..got]).filter(|h| {
        journal.metadata().map(|m| m.len()).ok() == Some(HEADER_LEN as u64 + h.tail_len)
            && digest_at(
                &journal,
                HEADER_LEN as u64..HEADER_LEN as u64 + h.tail_len,
                &mut buf,
            )
            .is_ok_and(|d| d == h.tail_sha)
    });
    let Some(h) = header else {
        log::warn!(
            "{}: removing an incomplete journal",
            jname.to_string_lossy()
        );
        with_mail_group(|| dir.unlink(&jname))?;
        dir.sync()?;
        return Ok(false);
    };
    let now = spool.metadata()?.len();
    let rest = h.d0 + h.tail_len..h.orig_len;
    if now >= h.orig_len && digest_of(spool, rest, &mut buf)? == h.rest_sha {
        log::warn!(
            "{}: finishing an interrupted UPDATE",
            jname.to_string_lossy()
        );
        if now > h.orig_len {
            // Mail appended since the crash: kept, by a new journal that holds it too.
            let sources = [
                Source::Journal(&journal, 0..h.tail_len),
                Source::Spool(h.orig_len..now),
            ];
            let (h2, j2) = write(dir, name, spool, h.d0, now, &sources)?;
            apply(dir, name, spool, &j2, &h2, None)?;
        } else {
            apply(dir, name, spool, &journal, &h, None)?;
        }
        return Ok(true);
    }
    let tail = h.d0..h.d0 + h.tail_len;
    if now >= tail.end && digest_of(spool, tail, &mut buf)? == h.tail_sha {
        with_mail_group(|| dir.unlink(&jname))?;
        dir.sync()?;
        return Ok(false);
    }
    let mut aside = jname.clone();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    aside.push(format!(".{secs}.bad"));
    log::error!(
        "{}: the spool was changed by another program since an interrupted UPDATE; its \
         journal is kept as {} and the spool left as it is",
        jname.to_string_lossy(),
        aside.to_string_lossy()
    );
    with_mail_group(|| dir.rename(&jname, &aside))?;
    dir.sync()?;
    Ok(false)
}

/// SHA-256 of `range` of the spool; that of nothing if the spool is shorter.
fn digest_of(file: &File, range: Range<u64>, buf: &mut [u8]) -> io::Result<[u8; 32]> {
    digest_at(file, range, buf)
}

fn digest_at(file: &File, range: Range<u64>, buf: &mut [u8]) -> io::Result<[u8; 32]> {
    let mut sha = Sha256::new();
    let mut pos = range.start;
    while pos < range.end {
        let want = (range.end - pos).min(buf.len() as u64) as usize;
        let got = read_full(file, &mut buf[..want], pos)?;
        if got == 0 {
            break;
        }
        sha.update(&buf[..got]);
        pos += got as u64;
    }
    Ok(sha.finalize().into())
}

fn short(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{what} is shorter than expected"),
    )
}
