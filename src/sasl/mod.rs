//! SASL (RFC 4422) mechanisms for POP3's AUTH command (RFC 5034): PLAIN, LOGIN, CRAM-MD5 and
//! SCRAM-SHA-256, as pure state machines. The session decodes the client's base64 lines, feeds
//! the bytes to an [`Exchange`] and sends back what each [`Step`] says.

mod cram_md5;
mod plain;
mod scram;

use crate::account::Account;
use crate::auth::{AuthError, Authenticator};
use crate::user_name;

/// A SASL mechanism pop3d offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616: authzid, authcid and password in one message.
    Plain,
    /// The de-facto LOGIN mechanism: user name, then password, each asked for.
    Login,
    /// RFC 2195: an HMAC-MD5 of a challenge, keyed with the password.
    CramMd5,
    /// RFC 5802 and 7677: salted challenge-response with SHA-256.
    ScramSha256,
}

impl Mechanism {
    /// Every mechanism, in the order CAPA lists them.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha256,
    ];

    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// The mechanism called `name`, in any case.
    pub fn from_name(name: &[u8]) -> Option<Mechanism> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// True if the password crosses the wire as it is (only base64-encoded).
    pub fn sends_password(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

/// What the session needs to run an exchange.
pub struct Context<'a> {
    /// Checks passwords and hands out challenge-response secrets.
    pub auth: &'a dyn Authenticator,
    /// Completes login names without a domain.
    pub default_domain: Option<&'a str>,
    /// The server's name, for challenges.
    pub host: &'a str,
    /// Fingerprints a (user, password) tried, for the failure penalty (see
    /// [`Penalty::fingerprint`](crate::penalty::Penalty::fingerprint)).
    pub fingerprint: &'a dyn Fn(&str, &[u8]) -> [u8; 8],
    /// Where a mechanism that sends a password leaves the fingerprint of the one it tried, so
    /// a stale saved password retried is not penalised again.
    pub tried: std::cell::Cell<Option<[u8; 8]>>,
}

impl Context<'_> {
    /// A login name from the client, checked and completed as for USER.
    fn user(&self, raw: &[u8]) -> Result<String, Outcome> {
        let raw =
            std::str::from_utf8(raw).map_err(|_| Outcome::Malformed("user name is not UTF-8"))?;
        user_name::normalize(raw, self.default_domain)
            .map_err(|e| Outcome::Failed(AuthError::rejected(format!("bad user name: {e}"))))
    }
}

/// What to do after the client's last message.
#[derive(Debug)]
pub enum Step {
    /// Send this challenge (`+ ` and its base64) and wait for the client's next line.
    Challenge(Vec<u8>),
    /// The exchange is over.
    Done(Outcome),
}

/// How an exchange ended.
#[derive(Debug)]
pub enum Outcome {
    /// The client proved who it is.
    LoggedIn(Account),
    /// Wrong credentials (or the account database failed): the failure delay and reply apply.
    Failed(AuthError),
    /// The client's message does not follow the mechanism: a protocol error.
    Malformed(&'static str),
}

/// One run of a mechanism, from AUTH to its end.
pub struct Exchange {
    state: State,
}

enum State {
    Plain,
    LoginUser,
    LoginPassword(String),
    CramMd5(cram_md5::Challenge),
    Scram(scram::Server),
}

impl Exchange {
    /// Starts `mechanism`, with the client's initial response if it sent one (RFC 4959 style,
    /// already base64-decoded).
    pub fn start(
        mechanism: Mechanism,
        initial: Option<&[u8]>,
        ctx: &Context<'_>,
    ) -> (Exchange, Step) {
        let (state, first) = match mechanism {
            Mechanism::Plain => (State::Plain, None),
            Mechanism::Login => (State::LoginUser, Some(b"Username:".to_vec())),
            Mechanism::CramMd5 => {
                let challenge = cram_md5::Challenge::new(ctx.host);
                let text = challenge.text().as_bytes().to_vec();
                if initial.is_some() {
                    let done = Step::Done(Outcome::Malformed("CRAM-MD5 takes no initial response"));
                    return (
                        Exchange {
                            state: State::CramMd5(challenge),
                        },
                        done,
                    );
                }
                (State::CramMd5(challenge), Some(text))
            }
            Mechanism::ScramSha256 => (State::Scram(scram::Server::new()), Some(Vec::new())),
        };
        let mut exchange = Exchange { state };
        let step = match initial {
            Some(response) => exchange.step(response, ctx),
            None => Step::Challenge(first.unwrap_or_default()),
        };
        (exchange, step)
    }

    /// Feeds the client's next (decoded) response.
    pub fn step(&mut self, response: &[u8], ctx: &Context<'_>) -> Step {
        match &mut self.state {
            State::Plain => Step::Done(plain::check(response, ctx)),
            State::LoginUser => match ctx.user(response) {
                Ok(user) => {
                    self.state = State::LoginPassword(user);
                    Step::Challenge(b"Password:".to_vec())
                }
                // Ask for the password anyway: the answer must not say whether the name was bad.
                Err(Outcome::Failed(_)) => {
                    self.state = State::LoginPassword(String::new());
                    Step::Challenge(b"Password:".to_vec())
                }
                Err(other) => Step::Done(other),
            },
            State::LoginPassword(user) => Step::Done(match user.as_str() {
                "" => Outcome::Failed(AuthError::rejected("bad user name in LOGIN")),
                user => plain::login(ctx, user, response),
            }),
            State::CramMd5(challenge) => Step::Done(challenge.check(response, ctx)),
            State::Scram(server) => server.step(response, ctx),
        }
    }
}
