//! System accounts: the people who log in to the host itself, checked the way the host checks
//! them.
//!
//! Three sources, one per run:
//! - [`Pam`]: a PAM service (`/etc/pam.d/pop3d`), the way a Debian host checks passwords,
//!   LDAP and Kerberos included; libpam is loaded when first needed, not linked.
//! - [`Shadow`]: the system's passwd and shadow databases (`getpwnam_r(3)`, `getspnam_r(3)`)
//!   and crypt(3).
//! - [`CheckPassword`]: qmail's checkpassword interface, an external program that checks the
//!   password and, as the account, runs `pop3d --checkpassword-reply` to report the ids
//!   ([`checkpassword_reply`]).
//!
//! All three give an [`Account`] with the home, uid and gid of the system account, refuse
//! uid 0 always and uids under a first uid ([`DEFAULT_FIRST_UID`] unless set), and take the
//! same time for an unknown user as for a wrong password as far as they can (each type says
//! how). Login names are compared as the system compares them, with case: a [`Service`] using
//! these sources should be set to [`fold_case(false)`](crate::Service::fold_case).
//!
//! All three need root to check another user's password (the shadow file is readable by root
//! alone, `unix_chkpwd` checks only the caller's own password, and a checkpassword program
//! switches to the account). The pop3d binary runs them in a privileged helper process; a
//! library user must give them a process that has those rights.
//!
//! [`Service`]: crate::Service

mod checkpassword;
mod dummy;
mod lookup;
mod pam;
mod pam_ffi;
mod reply;
mod shadow;

pub use checkpassword::CheckPassword;
pub use pam::Pam;
pub use reply::checkpassword_reply;
pub use shadow::Shadow;

use super::{AuthError, AuthErrorKind};
use crate::account::Account;
use lookup::PasswdEntry;

/// The lowest uid served unless set otherwise: Debian's `FIRST_UID` for people's accounts, so
/// that system and service accounts (`daemon`, `mail`, `www-data`) cannot log in.
pub const DEFAULT_FIRST_UID: u32 = 1000;

/// Why the system account `entry` may not log in, if it may not: root never, nor any uid under
/// `first_uid`.
fn uid_refusal(user: &str, uid: u32, first_uid: u32) -> Option<String> {
    if uid == 0 {
        Some(format!("{user} has uid 0: root never logs in to pop3d"))
    } else if uid < first_uid {
        Some(format!(
            "{user} has uid {uid}, under the first uid {first_uid}"
        ))
    } else {
        None
    }
}

/// The account `user` logs in as, from its passwd entry.
fn account(user: &str, entry: &PasswdEntry) -> Account {
    Account::new(user)
        .with_home(entry.home.clone())
        .with_ids(entry.uid, entry.gid)
}

/// The system account `user` without a password, for delivery ([`Authenticator::lookup`]):
/// what the passwd database says, with the same uid rule as a login.
///
/// [`Authenticator::lookup`]: crate::Authenticator::lookup
fn look_up(user: &str, first_uid: u32) -> Result<Account, AuthError> {
    let entry = lookup::passwd(user)
        .map_err(|e| unavailable(format!("cannot read the passwd database: {e}")))?
        .ok_or_else(|| AuthError::rejected(format!("unknown user {user}")))?;
    match uid_refusal(user, entry.uid, first_uid) {
        Some(why) => Err(AuthError::rejected(why)),
        None => Ok(account(user, &entry)),
    }
}

/// An [`AuthErrorKind::Unavailable`] error.
fn unavailable(detail: impl Into<String>) -> AuthError {
    AuthError::new(AuthErrorKind::Unavailable, detail)
}

/// Today as shadow(5) counts dates: days since 1970-01-01, UTC.
fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}
