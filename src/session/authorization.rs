//! The AUTHORIZATION state: USER/PASS, APOP, AUTH (SASL) and STLS, and the rules that decide
//! which of them a connection may use.
//!
//! Every way of failing to log in ends in [`Session::login_failed`]: the same delay from the
//! moment the credentials arrived, and the same reply, whatever the mechanism or the reason.

use super::{Reply, Session, State, Tls, Transaction};
use crate::account::Account;
use crate::auth::secret::{constant_time_eq, hex, random_bytes, Secret};
use crate::auth::{AuthError, AuthErrorKind};
use crate::limits::MAX_FAILED_LOGINS;
use crate::protocol::Command;
use crate::sasl::{Context, Exchange, Mechanism, Outcome, Step};
use crate::store::StoreErrorKind;
use crate::user_name;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};
use std::cell::Cell;
use std::time::Instant;

/// The reply when a password would cross an unencrypted connection (RFC 3206 [AUTH]; the
/// wording is Dovecot's, which clients and admins already recognise).
const PLAINTEXT_REFUSED: &str =
    "[AUTH] Plaintext authentication disallowed on non-secure connection";

impl Session<'_> {
    pub(super) fn authorization(&mut self, cmd: Command<'_>) -> Reply {
        match cmd {
            Command::User(name) => {
                if !self.plaintext_allowed() {
                    return Reply::Err(PLAINTEXT_REFUSED.into());
                }
                let name =
                    user_name::normalize(name, self.service.config.default_domain.as_deref());
                let State::Authorization { user } = &mut self.state else {
                    unreachable!("authorization() runs in the AUTHORIZATION state");
                };
                match name {
                    Ok(name) => {
                        *user = Some(name);
                        Reply::Ok("Send your password".into())
                    }
                    Err(e) => {
                        *user = None;
                        Reply::Bad(format!("[AUTH] Invalid user name: {e}"))
                    }
                }
            }
            Command::Pass(password) => {
                let State::Authorization { user } = &mut self.state else {
                    unreachable!("authorization() runs in the AUTHORIZATION state");
                };
                match user.take() {
                    None => Reply::Bad("Send USER first".into()),
                    Some(_) if !self.plaintext_allowed() => Reply::Err(PLAINTEXT_REFUSED.into()),
                    Some(name) => {
                        self.wait_penalty();
                        let started = Instant::now();
                        let checked = self.service.auth.authenticate(&name, password);
                        self.service.slowest_check.record(started.elapsed());
                        match checked {
                            Ok(account) => self.logged_in(account),
                            Err(e) => {
                                let tried = self.service.penalty.fingerprint(&name, password);
                                self.login_failed(Some(&name), Some(tried), e, started)
                            }
                        }
                    }
                }
            }
            Command::Apop(name, digest) => self.apop(name, digest),
            Command::Auth(None) => Reply::Mechanisms,
            Command::Auth(Some((name, initial))) => self.auth(name, initial),
            Command::Stls => match self.tls {
                Tls::Offered => Reply::Close("Begin TLS negotiation".into(), super::End::StartTls),
                Tls::Active => Reply::Bad("TLS is already active".into()),
                Tls::Unavailable => Reply::Bad("TLS is not available".into()),
            },
            _ => Reply::Bad("Not allowed before login".into()),
        }
    }

    /// True if a password may be sent as it is: TLS is not configured, or is active, or the
    /// client is on loopback and loopback is trusted, or the administrator said so.
    pub(super) fn plaintext_allowed(&self) -> bool {
        let config = &self.service.config;
        config.allow_plaintext
            || self.tls != Tls::Offered
            || (self.loopback && config.trust_loopback)
    }

    /// The client address the failure penalty is kept for: none for trusted loopback.
    fn penalised_ip(&self) -> Option<std::net::IpAddr> {
        let trusted = self.loopback && self.service.config.trust_loopback;
        self.client_ip.filter(|_| !trusted)
    }

    /// Waits out the failure penalty of this client's address before a login is checked.
    fn wait_penalty(&self) {
        if let Some(ip) = self.penalised_ip() {
            let delay = self.service.penalty.delay(ip);
            if !delay.is_zero() {
                log::info!("penalty: peer={} waits {} ms", self.peer, delay.as_millis());
                std::thread::sleep(delay);
            }
        }
    }

    /// The SASL mechanisms this connection may use now.
    pub(super) fn mechanisms(&self) -> Vec<Mechanism> {
        let kinds = self.service.auth.secret_kinds();
        Mechanism::ALL
            .into_iter()
            .filter(|m| match m {
                Mechanism::Plain | Mechanism::Login => self.plaintext_allowed(),
                Mechanism::CramMd5 => kinds.plain,
                Mechanism::ScramSha256 => kinds.scram,
            })
            .collect()
    }

    /// Runs one step of a SASL exchange; returns the step and the fingerprint of the password
    /// it tried, if it tried one.
    fn sasl_step(
        &self,
        run: impl FnOnce(&Context<'_>) -> Step,
        started: Instant,
    ) -> (Step, Option<[u8; 8]>) {
        let penalty = &self.service.penalty;
        let fingerprint = |user: &str, password: &[u8]| penalty.fingerprint(user, password);
        let context = Context {
            auth: &*self.service.auth,
            default_domain: self.service.config.default_domain.as_deref(),
            host: &self.service.config.hostname,
            fingerprint: &fingerprint,
            tried: Cell::new(None),
        };
        let step = run(&context);
        if matches!(step, Step::Done(_)) {
            self.service.slowest_check.record(started.elapsed());
        }
        (step, context.tried.get())
    }

    fn auth(&mut self, name: &[u8], initial: Option<&[u8]>) -> Reply {
        let Some(mechanism) = Mechanism::from_name(name) else {
            return Reply::Bad("Unsupported authentication mechanism".into());
        };
        if !self.mechanisms().contains(&mechanism) {
            if mechanism.sends_password() {
                return Reply::Err(PLAINTEXT_REFUSED.into());
            }
            return Reply::Bad("Unsupported authentication mechanism".into());
        }
        let initial = match initial {
            None => None,
            // RFC 5034 §4: "=" is an initial response of zero length.
            Some(b"=") => Some(Vec::new()),
            Some(text) => match B64.decode(text) {
                Ok(bytes) => Some(bytes),
                Err(_) => return Reply::Bad("Invalid base64 data".into()),
            },
        };
        self.wait_penalty();
        let started = Instant::now();
        let mut exchange = None;
        let (step, tried) = self.sasl_step(
            |context| {
                let (started_exchange, step) =
                    Exchange::start(mechanism, initial.as_deref(), context);
                exchange = Some(started_exchange);
                step
            },
            started,
        );
        let exchange = exchange.expect("sasl_step runs the closure");
        self.after_step(mechanism, exchange, step, tried, started)
    }

    /// Handles a line sent in answer to a SASL challenge.
    pub(super) fn sasl_response(&mut self, line: &[u8]) -> Reply {
        let Some((mechanism, mut exchange)) = self.sasl.take() else {
            return Reply::Bad("No authentication in progress".into());
        };
        let started = Instant::now();
        if line == b"*" {
            return self.abandoned("Authentication cancelled".into(), started);
        }
        let Ok(response) = B64.decode(line) else {
            return self.abandoned("Invalid base64 data".into(), started);
        };
        let (step, tried) = self.sasl_step(|context| exchange.step(&response, context), started);
        self.after_step(mechanism, exchange, step, tried, started)
    }

    fn after_step(
        &mut self,
        mechanism: Mechanism,
        exchange: Exchange,
        step: Step,
        tried: Option<[u8; 8]>,
        started: Instant,
    ) -> Reply {
        match step {
            Step::Challenge(bytes) => {
                self.sasl = Some((mechanism, exchange));
                Reply::Challenge(bytes)
            }
            Step::Done(Outcome::LoggedIn(account)) => self.logged_in(account),
            // Only the mechanism knew the user name; the detail carries it.
            Step::Done(Outcome::Failed(e)) => self.login_failed(None, tried, e, started),
            Step::Done(Outcome::Malformed(why)) => {
                log::info!(
                    "bad {} message: peer={} ({why})",
                    mechanism.name(),
                    self.peer
                );
                self.abandoned(format!("Malformed {} response", mechanism.name()), started)
            }
        }
    }

    fn apop(&mut self, name: &str, digest: &[u8]) -> Reply {
        let Some(timestamp) = self.apop_timestamp.clone() else {
            return Reply::Bad("APOP is not enabled".into());
        };
        self.wait_penalty();
        let started = Instant::now();
        let user = match user_name::normalize(name, self.service.config.default_domain.as_deref()) {
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
            (Some(account), true) => self.logged_in(account),
            _ => self.login_failed(
                Some(&user),
                None,
                AuthError::rejected("APOP digest does not match"),
                started,
            ),
        }
    }

    /// Opens the mailbox of an account that has proved who it is.
    fn logged_in(&mut self, account: Account) -> Reply {
        let mailbox = match self.service.store.open(&account) {
            Ok(mailbox) => mailbox,
            Err(e) => {
                log::warn!(
                    "cannot open mailbox: user={} peer={} ({})",
                    account.name,
                    self.peer,
                    e.detail()
                );
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
        self.failed_logins = 0;
        if let Some(ip) = self.penalised_ip() {
            self.service.penalty.succeeded(ip);
        }
        let count = mailbox.messages().len();
        // Sizes may come from file names (,W=): saturate rather than overflow.
        let size = mailbox
            .messages()
            .iter()
            .fold(0u64, |sum, m| sum.saturating_add(m.size));
        let tls = if self.tls == Tls::Active { " tls" } else { "" };
        log::info!(
            "login: user={} peer={}{tls} messages={count}",
            account.name,
            self.peer
        );
        self.state = State::Transaction(Box::new(Transaction {
            account,
            deleted: vec![false; count],
            mailbox,
        }));
        Reply::Ok(format!(
            "Logged in, {} ({size} octets)",
            super::messages(count)
        ))
    }

    /// The one answer to every failed login: after the failure delay (counted from when the
    /// credentials arrived), the same text whatever went wrong; the connection closes after
    /// [`MAX_FAILED_LOGINS`].
    /// An AUTH exchange the client gave up (`*`) or broke: it counts as a failed login, with the
    /// failure delay, since a SCRAM round costs the server a key derivation and a client could
    /// otherwise start and drop them without end.
    fn abandoned(&mut self, text: String, started: Instant) -> Reply {
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
            Reply::Close(text, super::End::TooManyErrors)
        } else {
            Reply::Err(text)
        }
    }

    /// `tried` fingerprints the credentials, when they can be, so the same wrong password
    /// retried is not penalised again.
    fn login_failed(
        &mut self,
        user: Option<&str>,
        tried: Option<[u8; 8]>,
        e: AuthError,
        started: Instant,
    ) -> Reply {
        if let Some(ip) = self.penalised_ip() {
            if e.kind() == AuthErrorKind::Rejected {
                self.service.penalty.failed(ip, tried);
            }
        }
        log::info!(
            "login failed: user={} peer={} ({})",
            user.unwrap_or("-"),
            self.peer,
            e.detail()
        );
        self.failed_logins += 1;
        // The failure delay, or the slowest check seen lately if that is longer: otherwise a
        // wrong password for a user with a costly hash would answer later than an unknown user.
        let delay = self
            .service
            .config
            .auth_failure_delay
            .max(self.service.slowest_check.get());
        if let Some(rest) = delay.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
        let text = match e.kind() {
            AuthErrorKind::Rejected => "[AUTH] Authentication failed",
            _ => "[SYS/TEMP] Authentication is unavailable, try again later",
        };
        if self.failed_logins >= MAX_FAILED_LOGINS {
            Reply::Close(text.into(), super::End::TooManyErrors)
        } else {
            Reply::Err(text.into())
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
