//! What every session of a server shares: settings, accounts, mail and the observer.

use super::slowest::SlowestCheck;
use crate::auth::secret::random_bytes;
use crate::auth::Authenticator;
use crate::last_login::LastLogins;
use crate::limits::{
    DEFAULT_AUTH_FAILURE_DELAY, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGIN_TIMEOUT, MAX_BAD_COMMANDS,
};
use crate::observer::Observer;
use crate::penalty::Penalty;
use crate::protocol::Workarounds;
use crate::store::MailStore;
use crate::user_name::{self, Case, UserNameError};
use std::sync::Arc;
use std::time::Duration;

/// Settings that shape every session; see the setters of [`Service`] for each one's meaning
/// and default.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) idle_timeout: Duration,
    pub(crate) login_timeout: Duration,
    pub(crate) implementation: Option<String>,
    pub(crate) default_domain: Option<String>,
    pub(crate) case: Case,
    pub(crate) auth_failure_delay: Duration,
    pub(crate) max_bad_commands: u32,
    pub(crate) apop: bool,
    pub(crate) allow_plaintext: bool,
    pub(crate) trust_loopback: bool,
    pub(crate) exempt_loopback: bool,
    pub(crate) hostname: String,
    pub(crate) workarounds: Workarounds,
    pub(crate) login_delay: Duration,
    pub(crate) expire: Option<crate::Expire>,
}

impl Config {
    /// A login name from the client, checked and put in canonical form.
    pub(crate) fn user_name(&self, raw: &str) -> Result<String, UserNameError> {
        user_name::normalize_with(raw, self.default_domain.as_deref(), self.case)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            implementation: None,
            default_domain: None,
            case: Case::Fold,
            auth_failure_delay: DEFAULT_AUTH_FAILURE_DELAY,
            max_bad_commands: MAX_BAD_COMMANDS,
            apop: false,
            allow_plaintext: false,
            trust_loopback: true,
            exempt_loopback: false,
            hostname: "localhost".into(),
            workarounds: Workarounds::default(),
            login_delay: Duration::ZERO,
            expire: None,
        }
    }
}

/// What every session of a server shares: who may log in, where the mail is, the settings,
/// and who hears about what happens.
///
/// Built once, then handed to a [`Server`](crate::Server) or to
/// [`run_session`](crate::run_session); each setter documents its default.
///
/// ```
/// use pop3d::Service;
/// use pop3d::store::memory::MemoryStore;
/// use std::sync::Arc;
/// use std::time::Duration;
/// # struct Nobody;
/// # impl pop3d::Authenticator for Nobody {
/// #     fn authenticate(&self, _: &str, _: &[u8]) -> Result<pop3d::Account, pop3d::AuthError> {
/// #         Err(pop3d::AuthError::rejected("no"))
/// #     }
/// # }
/// let service = Service::new(Arc::new(Nobody), Arc::new(MemoryStore::new()))
///     .idle_timeout(Duration::from_secs(900))
///     .default_domain("example.org");
/// ```
pub struct Service {
    pub(crate) config: Config,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) store: Arc<dyn MailStore>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    /// The costliest password check, which failed logins are padded to.
    pub(crate) slowest_check: SlowestCheck,
    /// The server secret (see [`server_secret`](Self::server_secret)).
    pub(crate) secret: [u8; 32],
    /// Failed logins per client address, shared by all sessions.
    pub(crate) penalty: Penalty,
    /// When each account last logged in, for LOGIN-DELAY.
    pub(crate) last_logins: LastLogins,
}

impl Service {
    /// A service that checks logins with `auth` and opens mailboxes from `store`, with the
    /// default settings.
    pub fn new(auth: Arc<dyn Authenticator>, store: Arc<dyn MailStore>) -> Self {
        Service {
            config: Config::default(),
            auth,
            store,
            observer: None,
            slowest_check: SlowestCheck::default(),
            secret: random_bytes(),
            penalty: Penalty::default(),
            last_logins: LastLogins::default(),
        }
    }

    /// The server secret: the SCRAM-SHA-256 salts of accounts without stored keys (unknown
    /// users among them) and the fingerprints the failure penalty keeps derive from it. Give
    /// every process of one server, and every start, the same 32 random bytes (the daemon
    /// keeps them in a file, see [`server_secret`](crate::auth::server_secret)), or an unknown
    /// user's salt changes from one connection to the next while a real one's does not.
    /// Default: random, made for each `Service`.
    pub fn server_secret(mut self, secret: [u8; 32]) -> Self {
        self.secret = secret;
        self
    }

    /// The least time between two logins of an account (RFC 2449 LOGIN-DELAY), unless the
    /// account says otherwise ([`Account::login_delay`](crate::Account::login_delay)): a login
    /// sooner than that, with the right password, gets `-ERR [LOGIN-DELAY]`. CAPA then
    /// advertises it, with `USER` before login since accounts may differ. Default: none.
    pub fn login_delay(mut self, delay: Duration) -> Self {
        self.config.login_delay = delay;
        self
    }

    /// How long retrieved messages are kept (RFC 2449 EXPIRE), unless the account says
    /// otherwise ([`Account::expire`](crate::Account::expire)). With a number of days, the
    /// messages a session retrieved are removed at the first login that many days after it
    /// ended with `QUIT` (at the end of that session itself for 0), where the store keeps a
    /// record of retrievals ([`Mailbox::expire`](crate::Mailbox::expire)); messages never
    /// retrieved are never removed. CAPA then advertises it, with `USER` before login since
    /// accounts may differ. Default: none, and nothing is advertised.
    pub fn expire(mut self, expire: crate::Expire) -> Self {
        self.config.expire = Some(expire);
        self
    }

    /// Keeps the time of each account's last login in `file` (opened for reading and
    /// writing), so that processes serving one connection each (inetd) and a restarted server
    /// all see it. Without it, the times are kept in memory, for this process alone.
    pub fn shared_login_times(mut self, file: std::fs::File) -> Self {
        self.last_logins = LastLogins::shared(file);
        self
    }

    /// Keeps the failure penalty in `file` (open for reading and writing) instead of this
    /// service's memory, so that processes that serve one connection each (inetd) share it:
    /// each use locks the file with flock(2), reads it, and rewrites it if anything changed.
    /// It holds at most 4096 addresses. Default: in memory.
    pub fn shared_penalty(mut self, file: std::fs::File) -> Self {
        self.penalty = Penalty::shared(file);
        self
    }

    /// Closes a session that sends nothing for this long. Default 10 minutes, the least
    /// RFC 1939 §3 allows.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Closes a connection not logged in this long after it connected (PROXY header and TLS
    /// handshake included). Default 60 seconds.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.config.login_timeout = timeout;
        self
    }

    /// The text of CAPA's `IMPLEMENTATION` line. Default: no such line.
    pub fn implementation(mut self, text: impl Into<String>) -> Self {
        self.config.implementation = Some(text.into());
        self
    }

    /// The domain added to a login name that has none. Default: none, bare names stay bare.
    pub fn default_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.default_domain = Some(domain.into());
        self
    }

    /// Changes to the messages sent, for old clients that break on valid mail (see
    /// [`Workarounds`]). Default: none.
    pub fn workarounds(mut self, workarounds: Workarounds) -> Self {
        self.config.workarounds = workarounds;
        self
    }

    /// Whether login names are folded to lower case before the authenticator sees them
    /// (default: yes, as mail addresses are compared). Turn it off for Unix accounts, whose
    /// names are case-sensitive.
    pub fn fold_case(mut self, fold: bool) -> Self {
        self.config.case = if fold { Case::Fold } else { Case::Keep };
        self
    }

    /// The least time before a failed login is answered. Default 1 second.
    pub fn auth_failure_delay(mut self, delay: Duration) -> Self {
        self.config.auth_failure_delay = delay;
        self
    }

    /// Consecutive bad commands before a session is closed. Default 10.
    pub fn max_bad_commands(mut self, n: u32) -> Self {
        self.config.max_bad_commands = n.max(1);
        self
    }

    /// Offers APOP (RFC 1939 §7): the greeting then carries a timestamp. Default off. It is
    /// offered only while every account has a plaintext secret
    /// ([`SecretKinds::plain`](crate::auth::SecretKinds)).
    pub fn apop(mut self, on: bool) -> Self {
        self.config.apop = on;
        self
    }

    /// Accepts USER/PASS and AUTH PLAIN/LOGIN before TLS even where TLS is offered. Default
    /// off: passwords wait for STLS.
    pub fn allow_plaintext(mut self, on: bool) -> Self {
        self.config.allow_plaintext = on;
        self
    }

    /// Counts loopback clients as a secure channel for the plaintext rule, as Dovecot does.
    /// Default on. A stream with no address (a pipe under inetd) is not loopback.
    pub fn trust_loopback(mut self, on: bool) -> Self {
        self.config.trust_loopback = on;
        self
    }

    /// Exempts loopback clients from the failure penalty and the per-address session limit,
    /// for a local webmail that logs in for many users at once. Default off: behind a TLS
    /// terminator on the same host every client is 127.0.0.1, and an exemption would leave
    /// password guessing unchecked.
    pub fn exempt_loopback(mut self, on: bool) -> Self {
        self.config.exempt_loopback = on;
        self
    }

    /// The server's name in APOP timestamps and SASL challenges. Default `localhost`.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.config.hostname = name.into();
        self
    }

    /// Tells `observer` what happens in every session (logins, retrievals, how sessions end),
    /// for a host program's metrics. Default: nobody.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub(crate) fn notify(&self, event: &crate::observer::Event<'_>) {
        if let Some(observer) = &self.observer {
            observer.event(event);
        }
    }
}
