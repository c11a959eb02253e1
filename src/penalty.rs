//! The failure penalty: an address that keeps failing to log in waits longer before each try.
//!
//! Modelled on Dovecot's: after the first failure an address waits [`PENALTY_FIRST`] before its
//! next login is checked, doubling per failure up to [`PENALTY_MAX`]. A retry with the same wrong
//! password (a mail client with a stale saved password, polling) does not add to the count.
//! The table is bounded by [`PENALTY_TABLE_MAX`]; entries expire [`PENALTY_EXPIRY`] after the
//! last failure.

use crate::auth::secret::{hmac_sha256, random_bytes};
use crate::limits::{PENALTY_EXPIRY, PENALTY_FIRST, PENALTY_MAX, PENALTY_TABLE_MAX};
use crate::net_range::client_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins per client address (an IPv6 client by its /64, see
/// [`client_key`]).
pub struct Penalty {
    table: Mutex<HashMap<IpAddr, Entry>>,
    /// Keys the password fingerprints, so the table never holds anything a password could be
    /// recovered from, even by guessing.
    key: [u8; 32],
}

struct Entry {
    failures: u32,
    last: Instant,
    /// Keyed digest of the last wrong (user, password), if the mechanism had one.
    last_secret: Option<[u8; 8]>,
}

impl Default for Penalty {
    fn default() -> Self {
        Penalty {
            table: Mutex::default(),
            key: random_bytes(),
        }
    }
}

impl Penalty {
    /// A fingerprint of a failed (user, password), to recognise the same one retried.
    pub fn fingerprint(&self, user: &str, password: &[u8]) -> [u8; 8] {
        // Length-prefixed, so no (user, password) pair can stand for another.
        let mut data = (user.len() as u64).to_be_bytes().to_vec();
        data.extend_from_slice(user.as_bytes());
        data.extend_from_slice(password);
        let mac = hmac_sha256(&self.key, &data);
        let mut out = [0u8; 8];
        out.copy_from_slice(&mac[..8]);
        out
    }

    /// How long `ip` must wait before its next login is checked.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let ip = client_key(ip);
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match table.get(&ip) {
            Some(e) if e.last.elapsed() < PENALTY_EXPIRY => delay_for(e.failures),
            _ => Duration::ZERO,
        }
    }

    /// Records a failed login from `ip`; `secret` is the fingerprint of what was tried, when known.
    pub fn failed(&self, ip: IpAddr, secret: Option<[u8; 8]>) {
        let ip = client_key(ip);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if !table.contains_key(&ip) && table.len() >= PENALTY_TABLE_MAX {
            make_room(&mut table, now);
        }
        let entry = table.entry(ip).or_insert(Entry {
            failures: 0,
            last: now,
            last_secret: None,
        });
        if entry.last.elapsed() >= PENALTY_EXPIRY {
            entry.failures = 0;
        }
        let same_again = secret.is_some() && secret == entry.last_secret && entry.failures > 0;
        if !same_again {
            entry.failures = entry.failures.saturating_add(1);
        }
        entry.last = now;
        entry.last_secret = secret;
    }

    /// Forgets `ip`'s failures after a successful login.
    pub fn succeeded(&self, ip: IpAddr) {
        let ip = client_key(ip);
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// 2 s after one failure, 4 s after two, then 8 s, capped at 15 s.
fn delay_for(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(8);
    (PENALTY_FIRST * 2u32.pow(doublings)).min(PENALTY_MAX)
}

/// Drops expired entries, and if that is not enough, the oldest eighth of the table.
fn make_room(table: &mut HashMap<IpAddr, Entry>, now: Instant) {
    table.retain(|_, e| now.duration_since(e.last) < PENALTY_EXPIRY);
    if table.len() < PENALTY_TABLE_MAX {
        return;
    }
    let mut ages: Vec<Instant> = table.values().map(|e| e.last).collect();
    ages.sort_unstable();
    let cutoff = ages[ages.len() / 8];
    table.retain(|_, e| e.last > cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn doubles_to_the_cap_and_forgets_on_success() {
        let p = Penalty::default();
        let a = ip(1);
        assert_eq!(p.delay(a), Duration::ZERO);
        let want = [2, 4, 8, 15, 15];
        for (i, secs) in want.iter().enumerate() {
            p.failed(
                a,
                Some(p.fingerprint("bob", format!("guess{i}").as_bytes())),
            );
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
        p.succeeded(a);
        assert_eq!(p.delay(a), Duration::ZERO);
    }

    #[test]
    fn the_same_wrong_password_again_is_not_penalised() {
        let p = Penalty::default();
        let a = ip(1);
        let stale = p.fingerprint("bob", b"old password");
        for _ in 0..5 {
            p.failed(a, Some(stale));
        }
        assert_eq!(p.delay(a), PENALTY_FIRST);
        p.failed(a, Some(p.fingerprint("bob", b"another")));
        assert_eq!(p.delay(a), PENALTY_FIRST * 2);
        // Mechanisms without a password to fingerprint always count.
        p.failed(a, None);
        p.failed(a, None);
        assert_eq!(p.delay(a), PENALTY_MAX);
    }

    #[test]
    fn the_table_stays_bounded() {
        let p = Penalty::default();
        for n in 0..(PENALTY_TABLE_MAX as u32 + 5000) {
            p.failed(ip(n), None);
        }
        assert!(p.len() <= PENALTY_TABLE_MAX, "{}", p.len());
        // The newest addresses are still penalised.
        assert_eq!(p.delay(ip(PENALTY_TABLE_MAX as u32 + 4999)), PENALTY_FIRST);
    }

    #[test]
    fn fingerprints_depend_on_user_and_password() {
        let p = Penalty::default();
        assert_eq!(p.fingerprint("a", b"x"), p.fingerprint("a", b"x"));
        assert_ne!(p.fingerprint("a", b"x"), p.fingerprint("b", b"x"));
        assert_ne!(p.fingerprint("a", b"x"), p.fingerprint("a", b"y"));
        assert_ne!(p.fingerprint("a\0", b"x"), p.fingerprint("a", b"\0x"));
    }
}
