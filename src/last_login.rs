//! When each account last logged in, for LOGIN-DELAY (RFC 2449 §6.8): in memory for one
//! process, or in a file shared by processes (inetd) that also outlives restarts.
//!
//! The file is a fixed table of 16-octet slots (an 8-octet fingerprint of the account name
//! under the server secret, then the time in seconds since the epoch), found by the
//! fingerprint and a short probe, read and written with pread/pwrite under an exclusive
//! flock(2). A full probe reuses its oldest slot: an account forgotten that way may log in
//! early, never late. Names never appear in the file.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Slots in the file: 256 KiB, room for more accounts than a delay is ever set for.
const SLOTS: u64 = 16_384;
const SLOT: u64 = 16;
/// Slots looked at from an account's own before the oldest of them is reused.
const PROBE: u64 = 8;
/// Accounts remembered in memory before the oldest half is forgotten.
const MEMORY_LIMIT: usize = 100_000;

/// The last login of each account.
pub(crate) enum LastLogins {
    Memory(Mutex<HashMap<[u8; 8], u64>>),
    File(File),
}

impl Default for LastLogins {
    fn default() -> Self {
        LastLogins::Memory(Mutex::default())
    }
}

impl LastLogins {
    /// The table in `file`, shared with every process that opens the same one.
    pub(crate) fn shared(file: File) -> Self {
        LastLogins::File(file)
    }

    /// How long ago the account with fingerprint `key` last logged in, if it is known.
    pub(crate) fn since(&self, key: [u8; 8]) -> Option<Duration> {
        let at = match self {
            LastLogins::Memory(map) => map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .copied(),
            LastLogins::File(file) => {
                let _lock = Flock::exclusive(file);
                find(file, key).and_then(|(_, at)| at)
            }
        }?;
        Some(Duration::from_secs(now().saturating_sub(at)))
    }

    /// Notes a login of the account with fingerprint `key`, now.
    pub(crate) fn record(&self, key: [u8; 8]) {
        let now = now();
        match self {
            LastLogins::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                if map.len() >= MEMORY_LIMIT {
                    let mut times: Vec<u64> = map.values().copied().collect();
                    times.sort_unstable();
                    let cut = times[times.len() / 2];
                    map.retain(|_, at| *at > cut);
                }
                map.insert(key, now);
            }
            LastLogins::File(file) => {
                let _lock = Flock::exclusive(file);
                let slot = find(file, key).map_or_else(|| oldest(file, key), |(slot, _)| slot);
                let mut record = [0u8; SLOT as usize];
                record[..8].copy_from_slice(&key);
                record[8..].copy_from_slice(&now.to_le_bytes());
                if let Err(e) = file.write_all_at(&record, slot * SLOT) {
                    log::warn!("cannot record a login time: {e}");
                }
            }
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn home(key: [u8; 8]) -> u64 {
    u64::from_le_bytes(key) % SLOTS
}

/// The slot at `slot` (key, time); all zeroes for an empty or unreadable one.
fn read(file: &File, slot: u64) -> ([u8; 8], u64) {
    let mut record = [0u8; SLOT as usize];
    if file.read_exact_at(&mut record, slot * SLOT).is_err() {
        return ([0; 8], 0);
    }
    let mut key = [0u8; 8];
    key.copy_from_slice(&record[..8]);
    (
        key,
        u64::from_le_bytes(record[8..].try_into().expect("8 octets")),
    )
}

/// The slot holding `key` and its time, if the probe finds it.
fn find(file: &File, key: [u8; 8]) -> Option<(u64, Option<u64>)> {
    (0..PROBE)
        .map(|i| (home(key) + i) % SLOTS)
        .find_map(|slot| {
            let (k, at) = read(file, slot);
            (k == key).then_some((slot, Some(at)))
        })
}

/// The slot to put `key` in: an empty one of its probe, or the oldest.
fn oldest(file: &File, key: [u8; 8]) -> u64 {
    (0..PROBE)
        .map(|i| (home(key) + i) % SLOTS)
        .min_by_key(|&slot| read(file, slot).1)
        .expect("a probe of one slot or more")
}

/// An exclusive flock(2), released on drop. If it cannot be had (it can on a local file), the
/// table is used unlocked: a lost update costs one remembered login.
struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a File) -> Self {
        // SAFETY: flock on a descriptor the File keeps open.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        Flock(file)
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(table: &LastLogins) {
        let (a, b) = ([1u8; 8], [2u8; 8]);
        assert_eq!(table.since(a), None);
        table.record(a);
        assert!(table.since(a).unwrap() < Duration::from_secs(2));
        assert_eq!(table.since(b), None);
    }

    #[test]
    fn remembers_in_memory_and_in_a_file_others_share() {
        check(&LastLogins::default());
        let dir = crate::test_dir::TestDir::new("last-login");
        let path = dir.path().join("logins");
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        check(&LastLogins::shared(open()));
        // Another process's view: the same file opened again.
        assert!(LastLogins::shared(open()).since([1u8; 8]).is_some());
        // Keys that collide on their home slot still each keep their own time.
        let base = 7u64;
        let colliding: Vec<[u8; 8]> = (0..PROBE + 2)
            .map(|i| (base + i * SLOTS).to_le_bytes())
            .collect();
        let table = LastLogins::shared(open());
        for key in &colliding {
            table.record(*key);
        }
        let known = colliding
            .iter()
            .filter(|k| table.since(**k).is_some())
            .count();
        assert_eq!(known as u64, PROBE, "a full probe keeps {PROBE} of them");
    }
}
