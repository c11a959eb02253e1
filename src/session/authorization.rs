//! The AUTHORIZATION state: USER/PASS, APOP and STLS, and the rules that decide which ways
//! of logging in a connection may use. AUTH (SASL) is in `sasl.rs`.
//!
//! Every way of failing to log in ends in [`Session::login_failed`]: the same delay from the
//! moment the credentials arrived, and the same reply, whatever the mechanism or the reason.

use super::reply::Reply;
use super::{End, Session, State, TlsState, Transaction};
use crate::account::Account;
use crate::auth::secret::{constant_time_eq, hex, random_bytes, Secret};
use crate::auth::{AuthError, AuthErrorKind};
use crate::limits::MAX_FAILED_LOGINS;
use crate::observer::Event;
use crate::penalty::Penalty;
use crate::store::StoreErrorKind;
use md5::{Digest, Md5};
use std::time::Instant;

/// The reply when a password would cross an unencrypted connection (RFC 3206 [AUTH]; the
/// wording is Dovecot's, which clients and admins already recognise).
pub(super) const PLAINTEXT_REFUSED: &str =
    "[AUTH] Plaintext authentication disallowed on non-secure connection";

impl Session<'_> {
    pub(super) fn user_command(&mut self, name: &str) -> Reply {
        if !self.plaintext_allowed() {
            return self.plaintext_refused("USER");
        }
        let name = self.service.config.user_name(name);
        let (user, reply) = match name {
            Ok(name) => (Some(name), Reply::Ok("Send your password".into())),
            Err(e) => (None, Reply::Bad(format!("[AUTH] Invalid user name: {e}"))),
        };
        self.state = State::Authorization { user };
        reply
    }

    /// PASS, for the name the USER before it gave (taken out of the state: a PASS always
    /// uses up the USER).
    pub(super) fn pass(&mut self, user: Option<String>, password: &[u8]) -> Reply {
        match user {
            None => Reply::Bad("Send USER first".into()),
            Some(_) if !self.plaintext_allowed() => self.plaintext_refused("PASS"),
            Some(name) => {
                self.wait_penalty();
                self.check_password(&name, password, "USER", Instant::now())
            }
        }
    }

    /// A password refused because it would cross the network in clear text: logged, so that an
    /// administrator can see which clients still try.
    pub(super) fn plaintext_refused(&self, command: &str) -> Reply {
        log::info!("plaintext refused: peer={} command={command}", self.peer);
        Reply::Err(PLAINTEXT_REFUSED.into())
    }

    pub(super) fn stls(&self) -> Reply {
        match self.tls {
            TlsState::Offered => Reply::Close("Begin TLS negotiation".into(), End::StartTls),
            TlsState::Active => Reply::Bad("TLS is already active".into()),
            TlsState::Unavailable => Reply::Bad("TLS is not available".into()),
        }
    }

    /// Checks a password with the authenticator: for PASS, and for the SASL mechanisms that
    /// send one. `started` is when the credentials arrived.
    pub(super) fn check_password(
        &mut self,
        user: &str,
        password: &[u8],
        mechanism: &'static str,
        started: Instant,
    ) -> Reply {
        let checked = self.service.auth.authenticate(user, password);
        self.service.slowest_check.record(started.elapsed());
        match checked {
            Ok(account) => self.logged_in(account, mechanism),
            Err(e) => {
                // So the same wrong password retried is not penalised again.
                let tried = Penalty::fingerprint(&self.service.secret, user, password);
                self.login_failed(Some(user), Some(tried), e, mechanism, started)
            }
        }
    }

    /// True if a password may be sent as it is: TLS is not configured, or is active, or the
    /// client is on loopback and loopback is trusted, or the administrator said so.
    pub(super) fn plaintext_allowed(&self) -> bool {
        let config = &self.service.config;
        config.allow_plaintext
            || self.tls != TlsState::Offered
            || (self.loopback && config.trust_loopback)
    }

    /// The client address the failure penalty is kept for: none for exempt loopback.
    fn penalised_ip(&self) -> Option<std::net::IpAddr> {
        let trusted = self.loopback && self.service.config.exempt_loopback;
        self.client_ip.filter(|_| !trusted)
    }

    /// Waits out the failure penalty of this client's address before a login is checked, and
    /// learns the cost of the costliest check, which may take a while the first time: both
    /// before the login's clock starts.
    pub(super) fn wait_penalty(&self) {
        let service = self.service;
        service.slowest_check.report(service.auth.costliest_check());
        if let Some(ip) = self.penalised_ip() {
            let delay = self.service.penalty.delay(ip);
            if !delay.is_zero() {
                log::info!("penalty: peer={} waits {} ms", self.peer, delay.as_millis());
                std::thread::sleep(delay);
            }
        }
    }

    pub(super) fn apop(&mut self, name: &str, digest: &[u8]) -> Reply {
        let Some(timestamp) = self.apop_timestamp.clone() else {
            return Reply::Bad("APOP is not enabled".into());
        };
        self.wait_penalty();
        let started = Instant::now();
        let user = match self.service.config.user_name(name) {
            Ok(user) => user,
            Err(e) => return Reply::Bad(format!("[AUTH] Invalid user name: {e}")),
        };
        let (account, secret) = match self.service.auth.secret(&user) {
            Ok((account, Secret::Plain(secret))) => (Some(account), secret),
            Ok((_, Secret::Scram(_))) | Err(_) => (None, Vec::new()),
        };
        // Computed for every user, so an unknown one answers as slowly as a wrong digest.
        let expected = apop_digest(&timestamp, &secret);
        let matches = constant_time_eq(expected.as_bytes(), &digest.to_ascii_lowercase());
        match (account, matches) {
            (Some(account), true) => self.logged_in(account, "APOP"),
            _ => self.login_failed(
                Some(&user),
                None,
                AuthError::rejected("APOP digest does not match"),
                "APOP",
                started,
            ),
        }
    }

    /// Opens the mailbox of an account that has proved who it is.
    pub(super) fn logged_in(&mut self, account: Account, mechanism: &'static str) -> Reply {
        // LOGIN-DELAY (RFC 2449): checked only now, after the right password, so it says
        // nothing about an account to someone who does not know it.
        let login_delay = account
            .login_delay
            .unwrap_or(self.service.config.login_delay);
        let login_key =
            (!login_delay.is_zero()).then(|| Penalty::user(&self.service.secret, &account.name));
        if let Some(since) = login_key.and_then(|key| self.service.last_logins.since(key)) {
            if since < login_delay {
                log::info!(
                    "login delayed: user={} peer={} mech={mechanism} (last login {} s ago, \
                     minimum {} s)",
                    account.name,
                    self.peer,
                    since.as_secs(),
                    login_delay.as_secs()
                );
                return Reply::Err(format!(
                    "[LOGIN-DELAY] Minimum time between logins is {} seconds",
                    login_delay.as_secs()
                ));
            }
        }
        let mut mailbox = match self.service.store.open(&account) {
            Ok(mailbox) => mailbox,
            Err(e) => {
                // Another session holding the mailbox is the client's business (two clients
                // polling one account); a mailbox that cannot be opened is the administrator's.
                if e.kind() == StoreErrorKind::InUse {
                    log::info!(
                        "mailbox in use: user={} peer={} ({})",
                        account.name,
                        self.peer,
                        e.detail()
                    );
                } else {
                    log::error!(
                        "mailbox error: user={} peer={} ({})",
                        account.name,
                        self.peer,
                        e.detail()
                    );
                }
                return Reply::Err(
                    match e.kind() {
                        StoreErrorKind::InUse => "[IN-USE] Mailbox is in use by another session",
                        StoreErrorKind::Permanent => "[SYS/PERM] Mailbox cannot be opened",
                        _ => "[SYS/TEMP] Mailbox cannot be opened, try again later",
                    }
                    .into(),
                );
            }
        };
        let expire = account.expire.or(self.service.config.expire);
        super::expiry::at_login(mailbox.as_mut(), expire, &account.name);
        if let Some(key) = login_key {
            self.service.last_logins.record(key);
        }
        if let Some(s) = self.supervisor {
            s.logged_in();
        }
        self.failed_logins = 0;
        if let Some(ip) = self.penalised_ip() {
            let user = Penalty::user(&self.service.secret, &account.name);
            self.service.penalty.succeeded(ip, user);
        }
        let count = mailbox.messages().len();
        // Sizes may come from file names (,W=): saturate rather than overflow.
        let size = mailbox
            .messages()
            .iter()
            .fold(0u64, |sum, m| sum.saturating_add(m.size));
        let tls = self.tls == TlsState::Active;
        log::info!(
            "login: user={} peer={} mech={mechanism}{} messages={count}",
            account.name,
            self.peer,
            if tls { " tls" } else { "" }
        );
        self.service.notify(&Event::LoggedIn {
            user: &account.name,
            peer: &self.peer,
            mechanism,
            tls,
            messages: count,
        });
        self.state = State::Transaction(Box::new(Transaction {
            account,
            mechanism,
            login_delay,
            expire,
            deleted: vec![false; count],
            retrieved: vec![false; count],
            mailbox,
        }));
        Reply::Ok(format!(
            "Logged in, {} ({size} octets)",
            super::messages(count)
        ))
    }

    /// An AUTH exchange the client gave up (`*`) or broke: it counts as a failed login, with the
    /// failure delay, since a SCRAM round costs the server a key derivation and a client could
    /// otherwise start and drop them without end.
    pub(super) fn abandoned(&mut self, text: String, started: Instant) -> Reply {
        self.failed_logins += 1;
        if let Some(rest) = self
            .service
            .config
            .auth_failure_delay
            .checked_sub(started.elapsed())
        {
            std::thread::sleep(rest);
        }
        if self.failed_logins >= MAX_FAILED_LOGINS {
            Reply::Close(text, End::TooManyErrors)
        } else {
            Reply::Err(text)
        }
    }

    /// The one answer to every failed login: after the failure delay (counted from when the
    /// credentials arrived), the same text whatever went wrong; the connection closes after
    /// [`MAX_FAILED_LOGINS`].
    /// `tried` fingerprints the credentials, when they can be, so the same wrong password
    /// retried is not penalised again.
    pub(super) fn login_failed(
        &mut self,
        user: Option<&str>,
        tried: Option<[u8; 8]>,
        e: AuthError,
        mechanism: &'static str,
        started: Instant,
    ) -> Reply {
        if let Some(ip) = self.penalised_ip() {
            if e.kind() == AuthErrorKind::Rejected {
                let name = user.map(|u| Penalty::user(&self.service.secret, u));
                self.service.penalty.failed(ip, name, tried);
            }
        }
        // A wrong password is the client's; an account source that cannot answer is the
        // administrator's, under a label of its own that a fail2ban filter does not match.
        match e.kind() {
            AuthErrorKind::Rejected => log::info!(
                "auth failed: user={} peer={} mech={mechanism} ({})",
                user.unwrap_or("-"),
                self.peer,
                e.detail()
            ),
            _ => log::error!(
                "auth unavailable: user={} peer={} mech={mechanism} ({})",
                user.unwrap_or("-"),
                self.peer,
                e.detail()
            ),
        }
        self.failed_logins += 1;
        self.pad(started);
        self.service.notify(&Event::LoginFailed {
            user,
            peer: &self.peer,
            mechanism,
            kind: e.kind(),
        });
        let text = match e.kind() {
            AuthErrorKind::Rejected => "[AUTH] Authentication failed",
            _ => "[SYS/TEMP] Authentication is unavailable, try again later",
        };
        if self.failed_logins >= MAX_FAILED_LOGINS {
            Reply::Close(text.into(), End::TooManyErrors)
        } else {
            Reply::Err(text.into())
        }
    }
}

impl Session<'_> {
    /// Waits until `started` plus the failure delay, or plus the cost of the costliest check if
    /// that is longer: otherwise a wrong password for a user with a costly hash would answer
    /// later than an unknown user.
    pub(super) fn pad(&self, started: Instant) {
        let delay = self
            .service
            .config
            .auth_failure_delay
            .max(self.service.slowest_check.get());
        if let Some(rest) = delay.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// A fresh APOP timestamp, `<pid.random@host>` (RFC 1939 §7: unique per greeting).
pub(super) fn apop_timestamp(host: &str) -> String {
    let random: [u8; 8] = random_bytes();
    format!("<{}.{}@{host}>", std::process::id(), hex(&random))
}

/// The APOP digest: MD5 of the timestamp followed by the secret, in lower-case hex.
fn apop_digest(timestamp: &str, secret: &[u8]) -> String {
    let mut md5 = Md5::new();
    md5.update(timestamp.as_bytes());
    md5.update(secret);
    hex(&md5.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc1939_apop_example() {
        // RFC 1939 §7: timestamp <1896.697170952@dbc.mtview.ca.us>, secret tanstaaf.
        assert_eq!(
            super::apop_digest("<1896.697170952@dbc.mtview.ca.us>", b"tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }
}
