//! UPDATE: removing the deleted messages from the spool, keeping every octet appended since
//! the snapshot, through the [journal](super::journal).

use super::journal::{self, Source, Step};
use super::locks::MtaLocks;
use super::parse::Parsed;
use super::scan::scan;
use super::{locked, temporary, MboxMailbox};
use crate::store::{StoreError, StoreErrorKind};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;

impl MboxMailbox {
    /// Removes messages `indices`; with `stop`, stops after that step as a crash would (the
    /// tests).
    pub(super) fn update(
        &mut self,
        indices: &[usize],
        stop: Option<Step>,
    ) -> Result<(), StoreError> {
        for &index in indices {
            self.check_index(index)?;
        }
        let mut deleted = indices.to_vec();
        deleted.sort_unstable();
        deleted.dedup();
        let (Some(&first), Some(spool)) = (deleted.first(), &self.spool) else {
            return Ok(());
        };
        if self.rewritten {
            return Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!("{}: already rewritten in this session", self.path.display()),
            ));
        }
        let path = &self.path;
        let _locks = MtaLocks::acquire(&self.dir, &self.name, spool, self.lock_wait)
            .map_err(|e| temporary(path, "lock", e))?
            .ok_or_else(|| locked(path, self.lock_wait))?;
        // A mail reader that saved the mbox as a new file renamed over ours: deleting from the
        // old one would delete nothing.
        let ours = spool.metadata().map_err(|e| temporary(path, "stat", e))?;
        match self.dir.stat(&self.name) {
            Ok(st) if st.id() == (ours.dev(), ours.ino()) => {}
            _ => {
                return Err(StoreError::new(
                    StoreErrorKind::Temporary,
                    format!(
                        "{}: replaced by another program during the session; nothing deleted",
                        path.display()
                    ),
                ))
            }
        }
        journal::recover(&self.dir, &self.name, spool)
            .map_err(|e| temporary(path, "finish an interrupted UPDATE", e))?;
        let d0 = self.parsed[first].from;
        let (now, now_len) = scan(spool, d0).map_err(|e| temporary(path, "read", e))?;
        if now_len < self.len || !same(&self.parsed[first..], &now.messages) {
            return Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!(
                    "{}: changed by another program during the session (not only appended \
                     to); nothing deleted",
                    path.display()
                ),
            ));
        }
        let sources: Vec<Source> = kept(&self.parsed, &deleted, now_len)
            .into_iter()
            .map(Source::Spool)
            .collect();
        let (header, journal) = journal::write(&self.dir, &self.name, spool, d0, now_len, &sources)
            .map_err(|e| temporary(path, "write the UPDATE journal", e))?;
        self.rewritten = true;
        journal::apply(&self.dir, &self.name, spool, &journal, &header, stop)
            .map_err(|e| temporary(path, "rewrite", e))
    }
}

/// True if a scan of the spool from the first deleted message on still finds the snapshot's
/// messages from there: same places, same `From ` lines and headers. The last one may have
/// grown if something without a `From ` line was appended.
fn same(snapshot: &[Parsed], now: &[Parsed]) -> bool {
    now.len() >= snapshot.len()
        && snapshot.iter().zip(now).enumerate().all(|(i, (a, b))| {
            a.from == b.from
                && a.start == b.start
                && a.digest == b.digest
                && a.body == b.body
                && (i + 1 == snapshot.len() || (a.end == b.end && a.next == b.next))
        })
}

/// The ranges of the spool (now `len` long) from the first deleted message on that are kept:
/// all but `[from, next)` of each deleted message, as the snapshot saw it.
fn kept(parsed: &[Parsed], deleted: &[usize], len: u64) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    let mut at = parsed[deleted[0]].from;
    for &i in deleted {
        let m = &parsed[i];
        if m.from > at {
            out.push(at..m.from);
        }
        at = m.next;
    }
    if len > at {
        out.push(at..len);
    }
    out
}
