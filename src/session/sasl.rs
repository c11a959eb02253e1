//! AUTH (RFC 5034): the session's side of a SASL exchange. The mechanism says what it needs
//! (a challenge sent, a password checked, a secret looked up); this file does it.

use super::reply::Reply;
use super::Session;
use crate::sasl::{Exchange, Mechanism, Names, Outcome, Step};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::time::Instant;

impl Session<'_> {
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

    /// `AUTH mechanism [initial-response]`.
    pub(super) fn auth(&mut self, name: &[u8], initial: Option<&[u8]>) -> Reply {
        let Some(mechanism) = Mechanism::from_name(name) else {
            return Reply::Bad("Unsupported authentication mechanism".into());
        };
        if !self.mechanisms().contains(&mechanism) {
            if mechanism.sends_password() {
                return self.plaintext_refused(mechanism.name());
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
        let (exchange, step) = Exchange::start(mechanism, initial.as_deref(), self.names());
        self.follow(mechanism, exchange, step, started)
    }

    /// A line sent in answer to a SASL challenge.
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
        let step = exchange.step(&response, self.names());
        self.follow(mechanism, exchange, step, started)
    }

    fn names(&self) -> Names<'_> {
        Names {
            default_domain: self.service.config.default_domain.as_deref(),
            case: self.service.config.case,
            host: &self.service.config.hostname,
            secret: &self.service.secret,
            scram_iterations: self.service.auth.scram_iterations(),
        }
    }

    /// Does what the exchange asked for, until it waits for the client or is over.
    fn follow(
        &mut self,
        mechanism: Mechanism,
        mut exchange: Exchange,
        mut step: Step,
        started: Instant,
    ) -> Reply {
        // The user a secret was looked up for, for the log of a failure.
        let mut user = None;
        loop {
            step = match step {
                Step::Challenge(bytes) => {
                    self.sasl = Some((mechanism, exchange));
                    return Reply::Challenge(bytes);
                }
                Step::NeedSecret(name) => {
                    let found = self.service.auth.secret(&name);
                    user = Some(name);
                    let next = exchange.secret(found, self.names());
                    // SCRAM's server-first message shows the salt before anything is checked:
                    // it goes out as late as a failed login would, so that how long it took
                    // (the lookup, a key derivation) tells nothing about the account.
                    if mechanism == Mechanism::ScramSha256 {
                        self.pad(started);
                    }
                    next
                }
                Step::CheckPassword { user, password } => {
                    return self.check_password(&user, &password, mechanism.name(), started)
                }
                Step::Done(outcome) => break self.finish(mechanism, outcome, user, started),
            };
        }
    }

    fn finish(
        &mut self,
        mechanism: Mechanism,
        outcome: Outcome,
        user: Option<String>,
        started: Instant,
    ) -> Reply {
        match outcome {
            Outcome::LoggedIn(account) => {
                self.service.slowest_check.record(started.elapsed());
                self.logged_in(account, mechanism.name())
            }
            Outcome::Failed(e) => {
                self.service.slowest_check.record(started.elapsed());
                self.login_failed(user.as_deref(), None, e, mechanism.name(), started)
            }
            Outcome::Malformed(why) => {
                log::info!(
                    "auth malformed: peer={} mech={} ({why})",
                    self.peer,
                    mechanism.name()
                );
                self.abandoned(format!("Malformed {} response", mechanism.name()), started)
            }
        }
    }
}
