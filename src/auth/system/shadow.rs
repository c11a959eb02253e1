//! [`Shadow`]: passwords from the system's shadow database, checked with crypt(3).

use super::dummy::{self, costs};
use super::lookup::{self, ShadowEntry};
use super::{account, today, uid_refusal, unavailable, DEFAULT_FIRST_UID};
use crate::account::Account;
use crate::auth::crypt;
use crate::auth::secret::constant_time_eq;
use crate::auth::{AuthError, Authenticator};
use std::ffi::CString;
use std::time::Duration;

/// System accounts checked against the passwd and shadow databases (`getpwnam_r(3)`,
/// `getspnam_r(3)`, so NSS answers) with the system's crypt(3).
///
/// Refused, after the same work as a wrong password: an unknown user, a user with no shadow
/// entry, root and uids under [`first_uid`](Self::first_uid), a locked password (`!` or `*`
/// first) or an empty one, an account past its expiry date (`sp_expire`), and a password that
/// ageing has expired: past its maximum age (`sp_lstchg + sp_max`), or marked to be changed at
/// the next login (`sp_lstchg` 0). POP3 has no way to change a password, so such a user must log
/// in once to the host to change it, as `login` would make them; `sp_inact` adds nothing, since
/// an expired password is refused already.
///
/// An unknown user costs one crypt(3) with the costliest scheme and cost of `/etc/shadow` and of
/// the system's default for new passwords, learnt once per process. Reading `/etc/shadow` needs root (see the
/// [module documentation](super)).
#[derive(Debug, Clone)]
pub struct Shadow {
    first_uid: u32,
}

impl Default for Shadow {
    fn default() -> Self {
        Shadow::new()
    }
}

impl Shadow {
    /// The system's accounts from uid [`DEFAULT_FIRST_UID`] up.
    pub fn new() -> Shadow {
        Shadow {
            first_uid: DEFAULT_FIRST_UID,
        }
    }

    /// Refuses accounts whose uid is under `uid` (root is refused whatever it is).
    pub fn first_uid(mut self, uid: u32) -> Shadow {
        self.first_uid = uid;
        self
    }

    /// Checks that the shadow database can be read, for `pop3d --check`; returns what to report.
    pub fn check(&self) -> Result<String, String> {
        match lookup::shadow("root") {
            Ok(_) => Ok("system accounts from the passwd and shadow databases".into()),
            Err(e) => Err(format!(
                "--shadow: cannot read the shadow database: {e} (pop3d must start as root)"
            )),
        }
    }
}

/// Why a shadow entry may not log in today, if it may not.
fn shadow_refusal(entry: &ShadowEntry, today: i64) -> Option<&'static str> {
    match entry.hash.first() {
        None => return Some("has an empty password"),
        Some(b'!' | b'*') => return Some("is locked"),
        _ => {}
    }
    if entry.expire.is_some_and(|day| today >= day) {
        return Some("has expired (shadow expiry date)");
    }
    match (entry.last_change, entry.max_age) {
        (Some(0), _) => Some("must change the password first (shadow last change 0)"),
        (Some(changed), Some(max)) if today > changed.saturating_add(max) => {
            Some("has a password past its maximum age (shadow ageing)")
        }
        _ => None,
    }
}

impl Authenticator for Shadow {
    /// The system account, from the passwd database (for `--deliver`).
    fn lookup(&self, user: &str) -> Result<Account, AuthError> {
        super::look_up(user, self.first_uid)
    }

    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        // Both databases are read whether or not the first knows the user, so that an unknown
        // user costs the same lookups.
        let pw = lookup::passwd(user)
            .map_err(|e| unavailable(format!("cannot read the passwd database: {e}")))?;
        let sp = lookup::shadow(user)
            .map_err(|e| unavailable(format!("cannot read the shadow database: {e}")))?;
        let refusal = match (&pw, &sp) {
            (None, _) => Some(format!("unknown user {user}")),
            (Some(_), None) => Some(format!("{user} has no shadow entry")),
            (Some(pw), Some(sp)) => uid_refusal(user, pw.uid, self.first_uid)
                .or_else(|| shadow_refusal(sp, today()).map(|why| format!("{user} {why}"))),
        };
        let (Some(pw), Some(sp), None) = (pw, sp, &refusal) else {
            costs().spend(password);
            return Err(AuthError::rejected(refusal.unwrap_or_default()));
        };
        let matches = match CString::new(sp.hash.as_slice()) {
            Ok(setting) if password.len() < crypt::MAX_PASSPHRASE && !password.contains(&0) => {
                crypt::crypt(&dummy::phrase(password), &setting)
                    .is_some_and(|computed| constant_time_eq(&computed, &sp.hash))
            }
            _ => {
                costs().spend(password);
                false
            }
        };
        if matches {
            Ok(account(user, &pw))
        } else {
            Err(AuthError::rejected(format!("wrong password for {user}")))
        }
    }

    /// Measured once per process: one crypt(3) of each kind of hash in `/etc/shadow` and of the
    /// system's default, the longest plus a quarter.
    fn costliest_check(&self) -> Duration {
        costliest()
    }
}

/// The measured cost of the costliest crypt of the system, shared by the system sources.
pub(super) fn costliest() -> Duration {
    costs().costliest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hash: &str) -> ShadowEntry {
        ShadowEntry {
            hash: hash.as_bytes().to_vec(),
            last_change: Some(20_000),
            max_age: Some(99_999),
            expire: None,
        }
    }

    #[test]
    fn locked_empty_expired_and_aged_accounts_are_refused() {
        let today = 20_100;
        assert_eq!(shadow_refusal(&entry("$6$s$h"), today), None);
        assert!(shadow_refusal(&entry("!$6$s$h"), today).is_some());
        assert!(shadow_refusal(&entry("*"), today).is_some());
        assert!(shadow_refusal(&entry(""), today).is_some());
        let mut expired = entry("$6$s$h");
        expired.expire = Some(today);
        assert!(shadow_refusal(&expired, today).unwrap().contains("expired"));
        let mut not_yet = entry("$6$s$h");
        not_yet.expire = Some(today + 1);
        assert_eq!(shadow_refusal(&not_yet, today), None);
        let mut aged = entry("$6$s$h");
        aged.max_age = Some(90);
        assert!(shadow_refusal(&aged, today)
            .unwrap()
            .contains("maximum age"));
        let mut must_change = entry("$6$s$h");
        must_change.last_change = Some(0);
        assert!(shadow_refusal(&must_change, today).is_some());
    }
}
