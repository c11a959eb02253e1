//! The front's store and account source when a broker runs: what needs no other uid stays in
//! the front, exactly as without a broker; the rest goes through the broker.

use super::client::Client;
use pop3d::auth::{Secret, SecretKinds};
use pop3d::{Account, AuthError, Authenticator, MailStore, Mailbox, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// A store that opens a mailbox in the front when the account runs as the front's own uid (or
/// has no uid), and in a broker child running as the account otherwise.
pub struct SwitchingStore {
    pub(super) local: Arc<dyn MailStore>,
    pub(super) broker: Arc<Client>,
}

impl MailStore for SwitchingStore {
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        // SAFETY: geteuid takes no arguments and cannot fail.
        let own = unsafe { libc::geteuid() };
        match account.uid {
            // Root is never an account's uid, even for a front that stayed root.
            Some(uid) if uid != own || uid == 0 => self.broker.open(account),
            _ => self.local.open(account),
        }
    }
}

/// An account source that needs root (the system's passwords): logins are checked in a broker
/// child; everything else is answered by the front's own copy, set up while it was root.
pub struct ForwardingAuthenticator {
    pub(super) local: Arc<dyn Authenticator>,
    pub(super) broker: Arc<Client>,
}

impl Authenticator for ForwardingAuthenticator {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        self.broker.authenticate(user, password)
    }

    fn secret(&self, user: &str) -> Result<(Account, Secret), AuthError> {
        self.local.secret(user)
    }

    fn secret_kinds(&self) -> SecretKinds {
        self.local.secret_kinds()
    }

    fn scram_iterations(&self) -> u32 {
        self.local.scram_iterations()
    }

    fn costliest_check(&self) -> Duration {
        self.local.costliest_check()
    }
}
