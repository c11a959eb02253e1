//! Recent successful logins, so that a client polling every minute does not pay for a password
//! hash each time.
//!
//! A strong hash (SHA512-CRYPT: ~2 ms of CPU, yescrypt or argon2 more) costs far more than the
//! rest of a small POP3 session, and mail clients check every few minutes with the same password.
//! This cache remembers, for a short time, that a given user, password and passwd line went
//! together in a successful login. It never holds the password: an entry is keyed by the SHA-256
//! of a random per-process secret, the user name, the password and the whole stored line, each
//! with its length. So an entry can only be found again with the same password, and a changed
//! line (a new hash, a locked account, another home) matches no entry. Besides, every entry is
//! tied to the identity and modification time of the passwd file it came from: any change to the
//! file drops them all. Failed logins are never cached: a wrong password always costs a full
//! check, and a hit (which needs the right password) tells an attacker nothing new.

use crate::auth::secret::os_random_bytes;
use crate::limits::LOGIN_CACHE_ENTRIES;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What identifies one version of a passwd file: device, inode, size, modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    pub(super) fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The key of one login: a salted digest, never the password.
pub(super) type Key = [u8; 32];

struct Entry {
    expires: Instant,
    stamp: FileStamp,
}

/// Successful logins of the last `ttl`.
pub(super) struct LoginCache {
    ttl: Duration,
    secret: [u8; 32],
    entries: Mutex<HashMap<Key, Entry>>,
}

impl fmt::Debug for LoginCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LoginCache {
    /// A cache whose entries last `ttl`, or `None` if the system gives no random secret.
    pub(super) fn new(ttl: Duration) -> Option<LoginCache> {
        // From the operating system only: a guessable key would let a core dump's entries be
        // checked against password guesses faster than the real hashes allow.
        let Some(secret) = os_random_bytes() else {
            log::warn!("login cache disabled: no random secret from the operating system");
            return None;
        };
        Some(LoginCache {
            ttl,
            secret,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The key for `user` logging in with `password` against the passwd line `line`.
    pub(super) fn key(&self, user: &str, password: &[u8], line: &str) -> Key {
        let mut h = Sha256::new();
        h.update(self.secret);
        for part in [user.as_bytes(), password, line.as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// True if `key` logged in successfully within the TTL, from the file version `stamp`.
    pub(super) fn hit(&self, key: &Key, stamp: FileStamp) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        match entries.get(key) {
            Some(e) if e.stamp == stamp && e.expires > Instant::now() => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers a successful login. When the cache is full, expired entries go first, then
    /// everything (a full cache is a burst of distinct users; a miss costs only one hash).
    pub(super) fn insert(&self, key: Key, stamp: FileStamp) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= LOGIN_CACHE_ENTRIES && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, e| e.expires > now && e.stamp == stamp);
            if entries.len() >= LOGIN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                expires: Instant::now() + self.ttl,
                stamp,
            },
        );
    }

    /// Entries held (expired ones included until they are looked up or swept).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u64) -> FileStamp {
        FileStamp {
            dev: 1,
            ino: 2,
            size: n,
            mtime: (3, 4),
            ctime: (5, 6),
        }
    }

    #[test]
    fn a_key_depends_on_every_part_and_on_the_secret() {
        let cache = LoginCache::new(Duration::from_secs(60)).expect("cache");
        let base = cache.key("bob", b"pw", "bob:{PLAIN}pw");
        assert_eq!(base, cache.key("bob", b"pw", "bob:{PLAIN}pw"));
        for other in [
            cache.key("bo", b"bpw", "bob:{PLAIN}pw"),
            cache.key("bob", b"pw2", "bob:{PLAIN}pw"),
            cache.key("bob", b"pw", "bob:{PLAIN}pw2"),
            cache.key("bob", b"", "pwbob:{PLAIN}pw"),
        ] {
            assert_ne!(base, other);
        }
        let another = LoginCache::new(Duration::from_secs(60)).expect("cache");
        assert_ne!(base, another.key("bob", b"pw", "bob:{PLAIN}pw"));
    }

    #[test]
    fn entries_expire_and_follow_the_file() {
        let cache = LoginCache::new(Duration::from_millis(50)).expect("cache");
        let key = cache.key("bob", b"pw", "line");
        assert!(!cache.hit(&key, stamp(1)));
        cache.insert(key, stamp(1));
        assert!(cache.hit(&key, stamp(1)));
        assert!(!cache.hit(&key, stamp(2)), "another version of the file");
        assert!(!cache.hit(&key, stamp(1)), "dropped when the file changed");
        cache.insert(key, stamp(1));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!cache.hit(&key, stamp(1)), "expired");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = LoginCache::new(Duration::from_secs(60)).expect("cache");
        for i in 0..LOGIN_CACHE_ENTRIES {
            cache.insert(cache.key(&i.to_string(), b"pw", "l"), stamp(1));
        }
        assert_eq!(cache.len(), LOGIN_CACHE_ENTRIES);
        let last = cache.key("last", b"pw", "l");
        cache.insert(last, stamp(1));
        assert!(cache.len() <= LOGIN_CACHE_ENTRIES);
        assert!(cache.hit(&last, stamp(1)));
    }
}
