//! The failure penalty: an address that keeps failing to log in waits longer before each try.
//!
//! Modelled on Dovecot's: after the first failure an address waits [`PENALTY_FIRST`] before its
//! next login is checked, doubling per failure up to [`PENALTY_MAX`]. A retry with the same wrong
//! password (a mail client with a stale saved password, polling) does not add to the count.
//! A successful login clears the failures of its own user name only: it proves that user's
//! password and nothing else, so an attacker cannot clear the penalty of guesses at others by
//! logging into an account of their own. The table is bounded by [`PENALTY_TABLE_MAX`]
//! addresses of [`PENALTY_USERS_PER_ADDRESS`] user names each; entries expire
//! [`PENALTY_EXPIRY`] after the last failure.
//!
//! A server keeps the table in memory. Processes that serve one connection each (inetd) share
//! it through a file instead, locked while it is read and rewritten (see `file.rs`).

mod file;

use crate::auth::secret::hmac_sha256;
use crate::limits::{
    PENALTY_EXPIRY, PENALTY_FILE_MAX, PENALTY_FIRST, PENALTY_MAX, PENALTY_TABLE_MAX,
    PENALTY_USERS_PER_ADDRESS,
};
use crate::net_range::client_key;
use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A keyed digest that stands for a user name, or a (user, password), in the table: it never
/// holds anything a name or a password could be recovered from, even by guessing.
pub type Fingerprint = [u8; 8];

/// Failed logins per client address (an IPv6 client by its /64, see [`client_key`]).
#[derive(Default)]
pub struct Penalty {
    table: Mutex<Table>,
    /// The file the table lives in, shared with other processes; `None`: memory only.
    file: Option<File>,
}

type Table = HashMap<IpAddr, Entry>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    failures: u32,
    /// When the last failure was, in milliseconds since the epoch (the file outlives a process,
    /// so not an `Instant`).
    last: u64,
    /// Keyed digest of the last wrong (user, password), if the mechanism had one.
    last_secret: Option<Fingerprint>,
    /// Failures per user name, for the first [`PENALTY_USERS_PER_ADDRESS`] names.
    users: Vec<(Fingerprint, u32)>,
}

impl Penalty {
    /// A penalty kept in `file`, which other processes may share: each use locks it with
    /// flock(2), reads it, and rewrites it if anything changed. A file that is not a penalty
    /// table (empty, damaged) counts as an empty table and is rewritten.
    pub fn shared(file: File) -> Penalty {
        Penalty {
            table: Mutex::default(),
            file: Some(file),
        }
    }

    /// A fingerprint of a user name under `key`, to clear that user's failures.
    pub fn user(key: &[u8; 32], user: &str) -> Fingerprint {
        digest(key, &[b"user", user.as_bytes()])
    }

    /// A fingerprint of a failed (user, password) under `key`, to recognise the same one
    /// retried.
    pub fn fingerprint(key: &[u8; 32], user: &str, password: &[u8]) -> Fingerprint {
        digest(key, &[b"password", user.as_bytes(), password])
    }

    /// How long `ip` must wait before its next login is checked.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let ip = client_key(ip);
        self.with_table(|table| match table.get(&ip) {
            Some(e) if !expired(e, now()) => delay_for(e.failures),
            _ => Duration::ZERO,
        })
    }

    /// Records a failed login from `ip`, for `user` when known; `secret` is the fingerprint of
    /// what was tried, when known.
    pub fn failed(&self, ip: IpAddr, user: Option<Fingerprint>, secret: Option<Fingerprint>) {
        let ip = client_key(ip);
        let now = now();
        self.with_table(|table| {
            if !table.contains_key(&ip) && table.len() >= PENALTY_TABLE_MAX {
                make_room(table, now, PENALTY_TABLE_MAX);
            }
            let entry = table.entry(ip).or_insert(Entry {
                failures: 0,
                last: now,
                last_secret: None,
                users: Vec::new(),
            });
            if expired(entry, now) {
                entry.failures = 0;
                entry.users.clear();
            }
            let same_again = secret.is_some() && secret == entry.last_secret && entry.failures > 0;
            if !same_again {
                entry.failures = entry.failures.saturating_add(1);
                if let Some(user) = user {
                    match entry.users.iter().position(|(u, _)| *u == user) {
                        Some(i) => entry.users[i].1 = entry.users[i].1.saturating_add(1),
                        None if entry.users.len() < PENALTY_USERS_PER_ADDRESS => {
                            entry.users.push((user, 1))
                        }
                        None => {}
                    }
                }
            }
            entry.last = now;
            entry.last_secret = secret;
        });
    }

    /// Forgets the failures of `user` from `ip` after `user` logged in: the login proves that
    /// user's password, and nothing about the other names the address tried.
    pub fn succeeded(&self, ip: IpAddr, user: Fingerprint) {
        let ip = client_key(ip);
        self.with_table(|table| {
            let Some(entry) = table.get_mut(&ip) else {
                return;
            };
            if let Some(i) = entry.users.iter().position(|(u, _)| *u == user) {
                let (_, n) = entry.users.remove(i);
                entry.failures = entry.failures.saturating_sub(n);
            }
            if entry.failures == 0 {
                table.remove(&ip);
            }
        });
    }

    /// Runs `f` on the table: in memory, or read from the shared file under its lock and
    /// written back if `f` changed it.
    fn with_table<T>(&self, f: impl FnOnce(&mut Table) -> T) -> T {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = &self.file else {
            return f(&mut table);
        };
        let lock = file::Lock::exclusive(file);
        let before = file::load(file);
        let mut shared = before.clone();
        let out = f(&mut shared);
        if shared != before {
            if shared.len() > PENALTY_FILE_MAX {
                make_room(&mut shared, now(), PENALTY_FILE_MAX);
            }
            if let Err(e) = file::save(file, &shared) {
                log::warn!("cannot write the failure penalty file: {e}");
            }
        }
        drop(lock);
        out
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.with_table(|t| t.len())
    }
}

/// Milliseconds since the epoch.
fn now() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis() as u64)
}

fn expired(e: &Entry, now: u64) -> bool {
    now.saturating_sub(e.last) >= PENALTY_EXPIRY.as_millis() as u64
}

/// The first 8 bytes of an HMAC of `parts`, each length-prefixed so that no parts can stand
/// for others.
fn digest(key: &[u8; 32], parts: &[&[u8]]) -> Fingerprint {
    let mut data = Vec::new();
    for part in parts {
        data.extend_from_slice(&(part.len() as u64).to_be_bytes());
        data.extend_from_slice(part);
    }
    let mac = hmac_sha256(key, &data);
    let mut out = [0u8; 8];
    out.copy_from_slice(&mac[..8]);
    out
}

/// 2 s after one failure, 4 s after two, then 8 s, capped at 15 s.
fn delay_for(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(8);
    (PENALTY_FIRST * 2u32.pow(doublings)).min(PENALTY_MAX)
}

/// Drops expired entries, and if the table still holds `max` or more, its oldest eighth.
fn make_room(table: &mut Table, now: u64, max: usize) {
    table.retain(|_, e| !expired(e, now));
    if table.len() < max {
        return;
    }
    let mut ages: Vec<(u64, IpAddr)> = table.iter().map(|(ip, e)| (e.last, *ip)).collect();
    ages.sort_unstable();
    let drop = (table.len() - max + 1).max(table.len() / 8);
    for (_, ip) in &ages[..drop] {
        table.remove(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    const KEY: [u8; 32] = [3; 32];

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    fn bob() -> Option<Fingerprint> {
        Some(Penalty::user(&KEY, "bob"))
    }

    #[test]
    fn doubles_to_the_cap_and_forgets_on_success() {
        let p = Penalty::default();
        let a = ip(1);
        assert_eq!(p.delay(a), Duration::ZERO);
        let want = [2, 4, 8, 15, 15];
        for (i, secs) in want.iter().enumerate() {
            let tried = Penalty::fingerprint(&KEY, "bob", format!("guess{i}").as_bytes());
            p.failed(a, bob(), Some(tried));
            assert_eq!(
                p.delay(a),
                Duration::from_secs(*secs),
                "after {} failures",
                i + 1
            );
        }
        assert_eq!(
            p.delay(ip(2)),
            Duration::ZERO,
            "other addresses are not affected"
        );
        p.succeeded(a, Penalty::user(&KEY, "bob"));
        assert_eq!(p.delay(a), Duration::ZERO);
    }

    #[test]
    fn a_login_clears_its_own_users_failures_only() {
        let p = Penalty::default();
        let a = ip(1);
        p.failed(a, bob(), None);
        p.failed(a, bob(), None);
        p.failed(a, Some(Penalty::user(&KEY, "eve")), None);
        assert_eq!(p.delay(a), PENALTY_FIRST * 4);
        // The attacker's own account: nothing of bob's is cleared.
        p.succeeded(a, Penalty::user(&KEY, "mallory"));
        assert_eq!(p.delay(a), PENALTY_FIRST * 4);
        // bob's login clears bob's two failures, not eve's.
        p.succeeded(a, Penalty::user(&KEY, "bob"));
        assert_eq!(p.delay(a), PENALTY_FIRST);
        // Failures without a user name, or beyond the names remembered, are never cleared.
        let b = ip(2);
        p.failed(b, None, None);
        for n in 0..=PENALTY_USERS_PER_ADDRESS {
            p.failed(b, Some(Penalty::user(&KEY, &format!("u{n}"))), None);
        }
        for n in 0..=PENALTY_USERS_PER_ADDRESS {
            p.succeeded(b, Penalty::user(&KEY, &format!("u{n}")));
        }
        assert_eq!(p.delay(b), PENALTY_FIRST * 2);
    }

    #[test]
    fn the_same_wrong_password_again_is_not_penalised() {
        let p = Penalty::default();
        let a = ip(1);
        let stale = Penalty::fingerprint(&KEY, "bob", b"old password");
        for _ in 0..5 {
            p.failed(a, bob(), Some(stale));
        }
        assert_eq!(p.delay(a), PENALTY_FIRST);
        p.failed(
            a,
            bob(),
            Some(Penalty::fingerprint(&KEY, "bob", b"another")),
        );
        assert_eq!(p.delay(a), PENALTY_FIRST * 2);
        // Mechanisms without a password to fingerprint always count.
        p.failed(a, bob(), None);
        p.failed(a, bob(), None);
        assert_eq!(p.delay(a), PENALTY_MAX);
    }

    #[test]
    fn the_table_stays_bounded() {
        let p = Penalty::default();
        for n in 0..(PENALTY_TABLE_MAX as u32 + 5000) {
            p.failed(ip(n), None, None);
        }
        assert!(p.len() <= PENALTY_TABLE_MAX, "{}", p.len());
        // The newest addresses are still penalised.
        assert_eq!(p.delay(ip(PENALTY_TABLE_MAX as u32 + 4999)), PENALTY_FIRST);
    }

    #[test]
    fn processes_sharing_a_file_share_the_penalty() {
        let dir = TestDir::new("penalty-file");
        let path = dir.path().join("penalty");
        let open = || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap();
            Penalty::shared(file)
        };
        let (one, two) = (open(), open());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        one.failed(a, bob(), None);
        assert_eq!(two.delay(a), PENALTY_FIRST);
        two.failed(ip(7), bob(), None);
        two.failed(a, Some(Penalty::user(&KEY, "eve")), None);
        assert_eq!(one.delay(a), PENALTY_FIRST * 2);
        assert_eq!(open().delay(ip(7)), PENALTY_FIRST);
        one.succeeded(a, Penalty::user(&KEY, "bob"));
        assert_eq!(two.delay(a), PENALTY_FIRST);
        // A damaged file is an empty table, and is rewritten.
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(one.delay(a), Duration::ZERO);
        one.failed(a, None, None);
        assert_eq!(two.delay(a), PENALTY_FIRST);
    }

    #[test]
    fn the_shared_file_stays_bounded() {
        let dir = TestDir::new("penalty-file-max");
        let path = dir.path().join("penalty");
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        // A full file (as another process may have left it), then one more address.
        let mut table = Table::new();
        for n in 0..(PENALTY_FILE_MAX as u32 + 100) {
            let entry = Entry {
                failures: 1,
                last: now() - u64::from(n),
                last_secret: None,
                users: vec![([1; 8], 1)],
            };
            table.insert(ip(n), entry);
        }
        file::save(&file, &table).unwrap();
        let p = Penalty::shared(file);
        assert_eq!(p.len(), PENALTY_FILE_MAX + 100, "read back whole");
        p.failed(ip(u32::MAX), bob(), None);
        assert!(p.len() <= PENALTY_FILE_MAX, "{}", p.len());
        assert_eq!(p.delay(ip(u32::MAX)), PENALTY_FIRST);
        assert_eq!(p.delay(ip(0)), PENALTY_FIRST, "the newest are kept");
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= file::size_of(PENALTY_FILE_MAX) as u64, "{size}");
    }

    #[test]
    fn fingerprints_depend_on_user_and_password() {
        let f = |u, p| Penalty::fingerprint(&KEY, u, p);
        assert_eq!(f("a", b"x"), f("a", b"x"));
        assert_ne!(f("a", b"x"), f("b", b"x"));
        assert_ne!(f("a", b"x"), f("a", b"y"));
        assert_ne!(f("a\0", b"x"), f("a", b"\0x"));
        assert_ne!(Penalty::user(&KEY, "a"), Penalty::user(&[4; 32], "a"));
    }
}
