//! SASL (RFC 4422) mechanisms for POP3's AUTH command (RFC 5034): PLAIN, LOGIN, CRAM-MD5 and
//! SCRAM-SHA-256, as pure state machines. The session decodes the client's base64 lines, feeds
//! the bytes to an [`Exchange`], and does what each [`Step`] says: send a challenge, check a
//! password, or look up a secret and hand it back. No mechanism does I/O.

mod cram_md5;
mod plain;
mod scram;

use crate::account::Account;
use crate::auth::{AuthError, Secret};
use crate::user_name;

/// A SASL mechanism pop3d offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
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
    pub(crate) const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha256,
    ];

    /// The registered name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// The mechanism called `name`, in any case.
    pub(crate) fn from_name(name: &[u8]) -> Option<Mechanism> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// True if the password crosses the wire as it is (only base64-encoded).
    pub(crate) fn sends_password(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

/// What an exchange needs to know of the server: nothing that does I/O.
#[derive(Clone, Copy)]
pub(crate) struct Names<'a> {
    /// Completes login names without a domain.
    pub(crate) default_domain: Option<&'a str>,
    /// Whether login names are folded to lower case.
    pub(crate) case: user_name::Case,
    /// The server's name, for challenges.
    pub(crate) host: &'a str,
    /// The server secret: SCRAM salts of accounts without stored keys derive from it.
    pub(crate) secret: &'a [u8; 32],
    /// The SCRAM iteration count of accounts without stored keys.
    pub(crate) scram_iterations: u32,
}

impl Names<'_> {
    /// A login name from the client, checked and completed as for USER.
    fn user(&self, raw: &[u8]) -> Result<String, Outcome> {
        let raw =
            std::str::from_utf8(raw).map_err(|_| Outcome::Malformed("user name is not UTF-8"))?;
        user_name::normalize_with(raw, self.default_domain, self.case)
            .map_err(|e| Outcome::Failed(AuthError::rejected(format!("bad user name: {e}"))))
    }
}

/// What to do after the client's last message. The exchange never calls the authenticator:
/// it says what it needs, and the session does it.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this challenge (`+ ` and its base64) and wait for the client's next line.
    Challenge(Vec<u8>),
    /// Check this password for this user with the authenticator: that ends the exchange.
    CheckPassword {
        /// The normalized login name.
        user: String,
        /// The password as the client sent it.
        password: Vec<u8>,
    },
    /// Look up this user's challenge-response secret and hand it to [`Exchange::secret`].
    NeedSecret(String),
    /// The exchange is over.
    Done(Outcome),
}

/// How an exchange ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The client proved who it is.
    LoggedIn(Account),
    /// Wrong credentials (or the account database failed): the failure delay and reply apply.
    Failed(AuthError),
    /// The client's message does not follow the mechanism: a protocol error.
    Malformed(&'static str),
}

/// One run of a mechanism, from AUTH to its end.
pub(crate) struct Exchange {
    state: State,
}

enum State {
    Plain,
    LoginUser,
    LoginPassword(String),
    CramMd5(cram_md5::Challenge),
    CramMd5Answer(cram_md5::Answer),
    Scram(scram::Server),
    Over,
}

impl Exchange {
    /// Starts `mechanism`, with the client's initial response if it sent one (RFC 4959 style,
    /// already base64-decoded).
    pub(crate) fn start(
        mechanism: Mechanism,
        initial: Option<&[u8]>,
        names: Names<'_>,
    ) -> (Exchange, Step) {
        let (state, first) = match mechanism {
            Mechanism::Plain => (State::Plain, Vec::new()),
            Mechanism::Login => (State::LoginUser, b"Username:".to_vec()),
            Mechanism::CramMd5 => {
                let challenge = cram_md5::Challenge::new(names.host);
                let text = challenge.text().as_bytes().to_vec();
                (State::CramMd5(challenge), text)
            }
            Mechanism::ScramSha256 => (State::Scram(scram::Server::new()), Vec::new()),
        };
        let mut exchange = Exchange { state };
        let step = match initial {
            Some(_) if mechanism == Mechanism::CramMd5 => {
                exchange.state = State::Over;
                Step::Done(Outcome::Malformed("CRAM-MD5 takes no initial response"))
            }
            Some(response) => exchange.step(response, names),
            None => Step::Challenge(first),
        };
        (exchange, step)
    }

    /// Feeds the client's next (decoded) response.
    pub(crate) fn step(&mut self, response: &[u8], names: Names<'_>) -> Step {
        match std::mem::replace(&mut self.state, State::Over) {
            State::Plain => plain::check(response, names),
            State::LoginUser => {
                // A bad name still gets the password prompt: the answer must not say which
                // part was wrong.
                let user = match names.user(response) {
                    Ok(user) => user,
                    Err(Outcome::Failed(_)) => String::new(),
                    Err(other) => return Step::Done(other),
                };
                self.state = State::LoginPassword(user);
                Step::Challenge(b"Password:".to_vec())
            }
            State::LoginPassword(user) if user.is_empty() => Step::Done(Outcome::Failed(
                AuthError::rejected("bad user name in LOGIN"),
            )),
            State::LoginPassword(user) => Step::CheckPassword {
                user,
                password: response.to_vec(),
            },
            State::CramMd5(challenge) => match challenge.answer(response, names) {
                Ok(answer) => {
                    let user = answer.user().to_owned();
                    self.state = State::CramMd5Answer(answer);
                    Step::NeedSecret(user)
                }
                Err(outcome) => Step::Done(outcome),
            },
            State::Scram(mut server) => {
                let step = server.step(response, names);
                self.state = State::Scram(server);
                step
            }
            State::CramMd5Answer(_) | State::Over => {
                Step::Done(Outcome::Malformed("the exchange is over"))
            }
        }
    }

    /// Continues after [`Step::NeedSecret`] with what the authenticator said.
    pub(crate) fn secret(
        &mut self,
        found: Result<(Account, Secret), AuthError>,
        names: Names<'_>,
    ) -> Step {
        match std::mem::replace(&mut self.state, State::Over) {
            State::CramMd5Answer(answer) => Step::Done(answer.check(found)),
            State::Scram(mut server) => {
                let step = server.secret(found, names);
                self.state = State::Scram(server);
                step
            }
            _ => Step::Done(Outcome::Malformed("no secret was asked for")),
        }
    }
}
