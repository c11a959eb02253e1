//! An authenticated account: what the authenticator tells the mail store.

use crate::expire::Expire;
use crate::store::delivery::Quota;
use std::path::PathBuf;
use std::time::Duration;

/// A user who has logged in, with what a [`MailStore`](crate::MailStore) needs to find the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The canonical login name (`user@domain`, or a bare name when no domain applies).
    pub name: String,
    /// The home directory from the account database, if it has one (`%h` in templates).
    pub home: Option<PathBuf>,
    /// The numeric user id from the account database, if it has one.
    pub uid: Option<u32>,
    /// The numeric group id from the account database, if it has one.
    pub gid: Option<u32>,
    /// The account's own quota, if the account database gives one (Dovecot's `quota_rule`
    /// extra field in a passwd-file); a store's default applies otherwise.
    pub quota: Option<Quota>,
    /// The least time between two logins of the account (RFC 2449 LOGIN-DELAY), if the
    /// account database sets one; the service's default applies otherwise.
    pub login_delay: Option<Duration>,
    /// How long the account's retrieved messages are kept (RFC 2449 EXPIRE), if the account
    /// database sets it; the service's default applies otherwise.
    pub expire: Option<Expire>,
}

impl Account {
    /// An account with only a name.
    pub fn new(name: impl Into<String>) -> Self {
        Account {
            name: name.into(),
            home: None,
            uid: None,
            gid: None,
            quota: None,
            login_delay: None,
            expire: None,
        }
    }

    /// Sets the home directory.
    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.home = Some(home.into());
        self
    }

    /// Sets the numeric user and group ids (a Maildir store then checks the mailbox belongs
    /// to `uid`).
    pub fn with_ids(mut self, uid: u32, gid: u32) -> Self {
        self.uid = Some(uid);
        self.gid = Some(gid);
        self
    }

    /// Sets the account's own quota.
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Sets the least time between two logins of the account.
    pub fn with_login_delay(mut self, delay: Duration) -> Self {
        self.login_delay = Some(delay);
        self
    }

    /// Sets how long the account's retrieved messages are kept.
    pub fn with_expire(mut self, expire: Expire) -> Self {
        self.expire = Some(expire);
        self
    }

    /// The part of the name before the last `@` (all of it when there is none).
    pub fn local_part(&self) -> &str {
        self.name.rsplit_once('@').map_or(&self.name, |(l, _)| l)
    }

    /// The part of the name after the last `@`, if any.
    pub fn domain(&self) -> Option<&str> {
        self.name.rsplit_once('@').map(|(_, d)| d)
    }
}
