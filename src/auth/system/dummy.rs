//! The work spent for a login that is refused before any password check (an unknown user, a
//! locked account, a uid too low): a crypt(3) of the password with the costliest kind of hash
//! (scheme and cost) that the shadow file holds or that the system makes for new passwords, so
//! that a refusal never answers sooner than a wrong password for a real account.
//!
//! Why the costliest rather than the commonest: a host that moved from SHA-512 crypt to
//! yescrypt keeps old hashes next to new ones, and an unknown user answering at SHA-512 speed
//! would stand out against every account made since. Accounts whose hash is cheaper than the
//! costliest answer sooner; the session pads every failure to the costliest check anyway.

use crate::auth::crypt;
use crate::auth::password::DUMMY_HASH;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_ulong, CStr, CString};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shadow file read to learn the schemes in use (readable by root alone).
const SHADOW_FILE: &str = "/etc/shadow";
/// The most a measured cost may be: a hash that takes longer is a misconfiguration, and failed
/// logins must not wait for it without bound.
const COST_MAX: Duration = Duration::from_secs(10);

#[link(name = "crypt")]
extern "C" {
    /// libxcrypt's `crypt_gensalt_rn(3)`: with a NULL prefix, a setting for the scheme and cost
    /// the system uses for new passwords by default.
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;
}

/// What the system's hashes cost: learnt once per process, from the shadow file as it was then.
pub(crate) struct Costs {
    /// A setting of the costliest kind, the crypt setting for refused logins (crypt reads only
    /// its scheme, cost and salt).
    dummy: CString,
    /// What one check of that kind took when measured.
    cost: Duration,
}

/// The process's [`Costs`], learnt at first use (a crypt of each kind of hash: some tens of
/// milliseconds).
pub(crate) fn costs() -> &'static Costs {
    static COSTS: OnceLock<Costs> = OnceLock::new();
    COSTS.get_or_init(|| {
        let shadow = std::fs::read(SHADOW_FILE).unwrap_or_default();
        let mut settings = kinds(&shadow);
        settings.extend(default_setting());
        Costs::costliest_of(settings)
    })
}

impl Costs {
    /// Measures one crypt with each setting and keeps the costliest; the built-in dummy hash
    /// (SHA-512 crypt) when there is none.
    fn costliest_of(settings: Vec<CString>) -> Costs {
        let phrase = phrase(b"a costly check");
        let measured = settings.into_iter().map(|setting| {
            let start = Instant::now();
            let _ = crypt::crypt(&phrase, &setting);
            (start.elapsed(), setting)
        });
        let (cost, dummy) = measured
            .max_by_key(|(cost, _)| *cost)
            .unwrap_or_else(|| (Duration::ZERO, CString::new(DUMMY_HASH).expect("no NUL")));
        Costs { dummy, cost }
    }

    /// Spends the time a password check of the costliest kind takes; the result is dropped.
    pub(crate) fn spend(&self, password: &[u8]) {
        let _ = crypt::crypt(&phrase(password), &self.dummy);
    }

    /// About the costliest check: the costliest kind's measured cost plus a quarter, at most
    /// [`COST_MAX`].
    pub(crate) fn costliest(&self) -> Duration {
        (self.cost + self.cost / 4).min(COST_MAX)
    }
}

/// The system's default setting for new passwords, if libxcrypt gives one.
fn default_setting() -> Option<CString> {
    let mut out = [0 as c_char; 256];
    // SAFETY: a NULL prefix and NULL random bytes ask for the default scheme and fresh salt;
    // the output buffer and its true size.
    let made = unsafe {
        crypt_gensalt_rn(
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
            out.as_mut_ptr(),
            out.len() as c_int,
        )
    };
    if made.is_null() {
        return None;
    }
    // SAFETY: on success the output is a NUL-terminated string in `out`.
    let setting = unsafe { CStr::from_ptr(out.as_ptr()) };
    (!setting.to_bytes().starts_with(b"*")).then(|| setting.to_owned())
}

/// One hash of each kind in a shadow file's text (the first seen).
fn kinds(shadow: &[u8]) -> Vec<CString> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for line in shadow.split(|&b| b == b'\n') {
        let Some(hash) = line.split(|&b| b == b':').nth(1) else {
            continue;
        };
        if let Some(kind) = kind(hash) {
            if seen.insert(kind) {
                found.extend(CString::new(hash).ok());
            }
        }
    }
    found
}

/// The crypt phrase for `password`: itself, or when crypt cannot take it (a NUL, too long) a
/// stand-in of the same cost, so the time spent does not depend on it.
pub(crate) fn phrase(password: &[u8]) -> CString {
    if password.len() < crypt::MAX_PASSPHRASE {
        if let Ok(phrase) = CString::new(password) {
            return phrase;
        }
    }
    CString::new("x").expect("no NUL")
}

/// The kind of a crypt(3) hash: everything but the salt and the hash (`$6$rounds=10000`,
/// `$y$j9T`, `$2b$12`), or `None` for a locked, empty or non-crypt field.
fn kind(hash: &[u8]) -> Option<Vec<u8>> {
    if !hash.starts_with(b"$") {
        // A traditional DES hash is all one kind; `!`, `*` and empty fields are not hashes.
        let des = hash.len() == 13
            && hash
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
        return des.then(|| b"des".to_vec());
    }
    let fields: Vec<&[u8]> = hash.split(|&b| b == b'$').collect();
    // bcrypt keeps salt and hash in one field after the cost; the others have two.
    let kept = if fields.get(1).is_some_and(|id| id.starts_with(b"2")) {
        fields.len().checked_sub(1)?
    } else {
        fields.len().checked_sub(2)?
    };
    (kept >= 2).then(|| fields[..kept].join(&b"$"[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_scheme_and_cost_only() {
        assert_eq!(kind(b"$6$salt$hash").unwrap(), b"$6");
        assert_eq!(
            kind(b"$6$rounds=9000$salt$hash").unwrap(),
            b"$6$rounds=9000"
        );
        assert_eq!(kind(b"$y$j9T$salt$hash").unwrap(), b"$y$j9T");
        assert_eq!(kind(b"$2b$12$saltandhash").unwrap(), b"$2b$12");
        assert_eq!(kind(b"abcdefghijklm").unwrap(), b"des");
        for locked in [&b"!"[..], b"*", b"", b"!$6$salt$hash", b"$6"] {
            assert_eq!(kind(locked), None, "{locked:?}");
        }
    }

    #[test]
    fn one_setting_of_each_kind_and_the_costliest_is_the_dummy() {
        let shadow = b"root:$y$j9T$a$b:1::::::\nbin:*:1::::::\nx:$6$s1$h:1::::::\n\
                       y:$6$s2$h:1::::::\nz:!$6$s3$h:1::::::\n";
        let found = kinds(shadow);
        assert_eq!(found.len(), 2);
        let cheap = CString::new("$6$rounds=1000$salt$").unwrap();
        let costly = CString::new("$6$rounds=200000$salt$").unwrap();
        let costs = Costs::costliest_of(vec![cheap, costly.clone()]);
        assert_eq!(costs.dummy, costly);
        assert!(costs.costliest() > costs.cost);
        let none = Costs::costliest_of(Vec::new());
        assert_eq!(none.dummy.as_bytes(), DUMMY_HASH.as_bytes());
    }
}
