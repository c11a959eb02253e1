//! Who may log in: the [`Authenticator`] trait and the backends that ship with pop3d.

mod crypt;
mod error;
pub mod passwd_file;
pub mod password;
pub mod secret;
pub mod server_secret;
pub mod system;

pub use error::{AuthError, AuthErrorKind};
pub use passwd_file::PasswdFile;
pub use secret::{ScramKeys, Secret, SecretKinds};

use crate::account::Account;
use std::time::Duration;

/// A source of accounts: implement this to check logins against your own user database.
///
/// `user` has already passed [`crate::user_name::normalize`]: it cannot contain `/`, `..`,
/// control characters or NUL, and a default domain has been applied.
pub trait Authenticator: Send + Sync {
    /// Checks `password` (raw bytes as the client sent them) for `user`.
    ///
    /// Return an error of kind [`AuthErrorKind::Rejected`] both for an unknown user and for a
    /// wrong password, and take the same time for both; the session adds the failure delay.
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError>;

    /// The account of `user`, without a password: for delivering mail to it (see
    /// [`deliver_to`](crate::store::delivery::deliver_to)).
    ///
    /// Return [`AuthErrorKind::Rejected`] for an unknown user, and
    /// [`AuthErrorKind::Unavailable`] when the accounts cannot be read. The default cannot look
    /// accounts up, and says so as `Unavailable` (mail then waits in the sender's queue).
    fn lookup(&self, user: &str) -> Result<Account, AuthError> {
        Err(AuthError::new(
            AuthErrorKind::Unavailable,
            format!("this account source cannot look up {user} without a password"),
        ))
    }

    /// The secret stored for `user`, for challenge-response logins (APOP, CRAM-MD5, SCRAM).
    ///
    /// Return [`AuthErrorKind::Rejected`] for an unknown user. The default holds no secrets, so
    /// only USER/PASS and AUTH PLAIN/LOGIN work.
    fn secret(&self, user: &str) -> Result<(Account, Secret), AuthError> {
        Err(AuthError::rejected(format!(
            "no challenge-response secret for {user}"
        )))
    }

    /// Which challenge-response mechanisms [`secret`](Self::secret) serves for every account
    /// (see [`SecretKinds`]): CAPA offers CRAM-MD5 and SCRAM-SHA-256 only then. The default
    /// is none.
    fn secret_kinds(&self) -> SecretKinds {
        SecretKinds::default()
    }

    /// The PBKDF2 iteration count SCRAM-SHA-256 shows for an account without stored keys (a
    /// `{PLAIN}` one, or an unknown user): the count most stored keys use, so that it does not
    /// stand out. The default is 4096, the least RFC 7677 allows.
    fn scram_iterations(&self) -> u32 {
        secret::SCRAM_MIN_ITERATIONS
    }

    /// About how long the costliest password check of any account takes, an unknown user's
    /// included. Every failed login is answered no sooner than that, so that a wrong password
    /// for an account with a costly hash is not answered later than an unknown user. May be
    /// slow the first time (it may measure); it is asked before a login's clock starts. The
    /// default is zero: the session then relies on the checks it has seen.
    fn costliest_check(&self) -> Duration {
        Duration::ZERO
    }
}
