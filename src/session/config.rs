//! What every session of a server shares: settings, accounts and mail.

use super::slowest::SlowestCheck;
use crate::auth::Authenticator;
use crate::limits::{
    DEFAULT_AUTH_FAILURE_DELAY, DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGIN_TIMEOUT, MAX_BAD_COMMANDS,
};
use crate::penalty::Penalty;
use crate::store::MailStore;
use std::sync::Arc;
use std::time::Duration;

/// Settings that shape every session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Close a session that sends nothing for this long (RFC 1939 §3: at least 10 minutes).
    pub idle_timeout: Duration,
    /// Close a session not logged in this long after it connected.
    pub login_timeout: Duration,
    /// Text of the CAPA `IMPLEMENTATION` line; not advertised when `None`.
    pub implementation: Option<String>,
    /// Domain appended to a login name that has none.
    pub default_domain: Option<String>,
    /// Least time before a failed login is answered.
    pub auth_failure_delay: Duration,
    /// Consecutive bad commands before the session is closed.
    pub max_bad_commands: u32,
    /// Offer APOP: the greeting then carries a timestamp (RFC 1939 §7).
    pub apop: bool,
    /// Accept USER/PASS and AUTH PLAIN/LOGIN before TLS even where TLS is offered.
    pub allow_plaintext: bool,
    /// Trust loopback connections: count them as secure for the plaintext rule (as Dovecot
    /// does), and exempt them from the failure penalty (a local proxy or webmail would
    /// otherwise be throttled for all its users at once).
    pub trust_loopback: bool,
    /// The server's name in APOP timestamps and SASL challenges.
    pub hostname: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            implementation: None,
            default_domain: None,
            auth_failure_delay: DEFAULT_AUTH_FAILURE_DELAY,
            max_bad_commands: MAX_BAD_COMMANDS,
            apop: false,
            allow_plaintext: false,
            trust_loopback: true,
            hostname: "localhost".into(),
        }
    }
}

/// What every session of a server shares: its settings, accounts and mail.
pub struct Service {
    /// Session settings.
    pub config: SessionConfig,
    /// Checks logins.
    pub auth: Arc<dyn Authenticator>,
    /// Opens mailboxes.
    pub store: Arc<dyn MailStore>,
    /// The slowest password check lately, which failed logins are padded to.
    pub(crate) slowest_check: SlowestCheck,
    /// Failed logins per client address, shared by all sessions.
    pub(crate) penalty: Penalty,
}

impl Service {
    /// A service with default settings.
    pub fn new(auth: Arc<dyn Authenticator>, store: Arc<dyn MailStore>) -> Self {
        Service {
            config: SessionConfig::default(),
            auth,
            store,
            slowest_check: SlowestCheck::default(),
            penalty: Penalty::default(),
        }
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }
}
