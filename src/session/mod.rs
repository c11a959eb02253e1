//! The RFC 1939 state machine: AUTHORIZATION, TRANSACTION, UPDATE, over any stream.
//!
//! Handlers never write: each returns a [`Reply`], and one place ([`Session::answer`]) turns it
//! into bytes, so "one command, one reply" holds whatever goes wrong. Which command is legal in
//! which state is decided in one place too: [`Session::dispatch`].

mod authorization;
mod config;
mod expiry;
mod i18n;
mod reply;
mod sasl;
mod slowest;
mod transaction;
mod update;

pub use config::Service;

use crate::connection::{Connection, Line};
use crate::limits::{MAX_COMMAND_LINE, MAX_SASL_LINE};
use crate::observer::Event;
use crate::protocol::{parse, Command};
use crate::sasl::{Exchange, Mechanism};
use crate::timeouts::{HasTimeouts, Limit};
use reply::Reply;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::time::Instant;
use transaction::Transaction;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// The client sent QUIT (after login: UPDATE ran).
    Quit,
    /// The client closed the connection: nothing was deleted.
    Dropped,
    /// A time limit ran out (login, idle, or a command line left unfinished): nothing was
    /// deleted.
    TimedOut,
    /// Too many bad commands in a row, or too many failed logins.
    TooManyErrors,
    /// A message could not be read after its `+OK` was sent, or UPDATE failed; the connection
    /// is closed.
    Aborted,
    /// The server is shutting down: the client was told, and nothing was deleted.
    Shutdown,
    /// The server was full and this client, waiting longest before login, made room for a
    /// newer one: it was told the server is busy.
    Evicted,
    /// The client sent STLS and was told to begin TLS (internal: the session goes on over TLS).
    StartTls,
}

impl End {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Dropped => "dropped",
            End::TimedOut => "timeout",
            End::TooManyErrors => "too-many-errors",
            End::Aborted => "aborted",
            End::Shutdown => "shutdown",
            End::Evicted => "evicted",
            End::StartTls => "starttls",
        }
    }
}

/// Whether TLS protects a session, or could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsState {
    /// No TLS configured: STLS is not offered, and the plaintext rule does not apply.
    Unavailable,
    /// TLS configured but not started: STLS is offered, and passwords wait for it.
    Offered,
    /// The connection is encrypted (after STLS, or on an implicit-TLS port).
    Active,
}

/// What a session retrieved and deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages sent whole (RETR).
    pub retrieved: u64,
    /// Octets of those messages.
    pub retrieved_bytes: u64,
    /// Messages removed in UPDATE.
    pub deleted: u64,
    /// Octets of those messages.
    pub deleted_bytes: u64,
}

/// The server a session runs under, as the session sees it: what it may be told, and what it
/// tells (crate-internal; [`run_session`](crate::run_session) runs without one).
pub(crate) trait Supervisor: Sync {
    /// Why the connection's input was shut from the server's side, if it was: the last reply
    /// and how the session ends.
    fn cut(&self) -> Option<(&'static str, End)>;
    /// The session waits for a command line before login (`true`), or no longer (`false`).
    fn waiting(&self, waiting: bool);
    /// The client has logged in: the session can no longer be cut to make room.
    fn logged_in(&self);
    /// The session's last reply is about to go out: its place may go to another client.
    fn finishing(&self);
}

/// One client's session, from greeting to end.
pub(crate) struct Session<'s> {
    service: &'s Service,
    peer: String,
    /// The client's address, when it has one (not a pipe): for the failure penalty.
    client_ip: Option<IpAddr>,
    tls: TlsState,
    loopback: bool,
    /// When the client connected, for the session's duration.
    connected: Instant,
    /// The server running the session, if any.
    supervisor: Option<&'s dyn Supervisor>,
    /// The APOP timestamp of the greeting, when APOP is on.
    apop_timestamp: Option<String>,
    state: State,
    /// A SASL exchange under way: the next line is its response, not a command.
    sasl: Option<(Mechanism, Exchange)>,
    bad_commands: u32,
    failed_logins: u32,
    stats: Stats,
    /// The user of a session that has run UPDATE, for the logout log line.
    logged_out: Option<(String, &'static str)>,
}

enum State {
    Authorization { user: Option<String> },
    Transaction(Box<Transaction>),
}

impl<'s> Session<'s> {
    /// A new session for a client known by `peer` (an address, for the log), on a connection
    /// without TLS and not from loopback.
    pub(crate) fn new(service: &'s Service, peer: impl Into<String>) -> Self {
        // As with CRAM-MD5: a client that sees the timestamp may insist on APOP, which fails
        // for an account without a plaintext secret, so it is offered only while all have one.
        let apop = service.config.apop && service.auth.secret_kinds().plain;
        let apop_timestamp = apop.then(|| authorization::apop_timestamp(&service.config.hostname));
        Session {
            service,
            peer: peer.into(),
            client_ip: None,
            tls: TlsState::Unavailable,
            loopback: false,
            connected: Instant::now(),
            supervisor: None,
            apop_timestamp,
            state: State::Authorization { user: None },
            sasl: None,
            bad_commands: 0,
            failed_logins: 0,
            stats: Stats::default(),
            logged_out: None,
        }
    }

    /// Sets what TLS does for this connection.
    pub(crate) fn with_tls(mut self, tls: TlsState) -> Self {
        self.tls = tls;
        self
    }

    /// Marks the client as connected over loopback (see [`Service::trust_loopback`]).
    pub(crate) fn loopback(mut self, loopback: bool) -> Self {
        self.loopback = loopback;
        self
    }

    /// Sets when the client connected (default: when the session was made).
    pub(crate) fn connected_at(mut self, connected: Instant) -> Self {
        self.connected = connected;
        self
    }

    /// Sets the client's address, which the failure penalty is kept for.
    pub(crate) fn with_client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Sets the server that runs the session.
    pub(crate) fn supervised_by(mut self, supervisor: Option<&'s dyn Supervisor>) -> Self {
        self.supervisor = supervisor;
        self
    }

    /// Records that the TLS handshake after STLS succeeded. Anything the client said before it
    /// (a USER) is forgotten, as RFC 2595 §4 requires.
    pub(crate) fn tls_started(&mut self) {
        self.tls = TlsState::Active;
        self.state = State::Authorization { user: None };
    }

    /// The logged-in user, if any (after QUIT: the user who was logged in).
    pub(crate) fn user(&self) -> Option<&str> {
        match &self.state {
            State::Transaction(t) => Some(&t.account.name),
            State::Authorization { .. } => self.logged_out.as_ref().map(|(name, _)| &name[..]),
        }
    }

    /// How the logged-in user logged in, if someone did.
    fn mechanism(&self) -> Option<&'static str> {
        match &self.state {
            State::Transaction(t) => Some(t.mechanism),
            State::Authorization { .. } => self.logged_out.as_ref().map(|(_, mech)| *mech),
        }
    }

    /// Sends the greeting (with the APOP timestamp when APOP is on), then runs the session.
    pub(crate) fn greet_and_run<S: Read + Write + HasTimeouts>(
        &mut self,
        conn: &mut Connection<S>,
    ) -> io::Result<End> {
        let greeting = match &self.apop_timestamp {
            Some(stamp) => format!("+OK POP3 server ready {stamp}\r\n"),
            None => "+OK POP3 server ready\r\n".to_owned(),
        };
        conn.send(greeting.as_bytes())?;
        self.run(conn)
    }

    /// Runs commands until the session ends. I/O errors other than a timeout are returned; the
    /// mailbox is then left as it was (no UPDATE).
    pub(crate) fn run<S: Read + Write + HasTimeouts>(
        &mut self,
        conn: &mut Connection<S>,
    ) -> io::Result<End> {
        let end = match self.command_loop(conn) {
            Err(e) => match conn.timeouts().expired() {
                Some(limit) => {
                    // The limit that ran out no longer bounds this one last line.
                    conn.timeouts().for_last_reply();
                    let _ = conn.send(match limit {
                        Limit::Idle => b"-ERR [SYS/TEMP] Idle timeout, closing\r\n",
                        Limit::Line => {
                            b"-ERR [SYS/TEMP] Command line not finished in time, closing\r\n"
                        }
                        Limit::Login => b"-ERR [SYS/TEMP] Login timed out, closing\r\n",
                    });
                    let _ = conn.flush();
                    Ok(End::TimedOut)
                }
                None => Err(e),
            },
            ok => ok,
        };
        match &end {
            Ok(End::StartTls) => {}
            Ok(e) => self.ended(e.as_str(), Some(*e)),
            Err(_) => self.ended("connection-error", None),
        }
        end
    }

    fn command_loop<S: Read + Write + HasTimeouts>(
        &mut self,
        conn: &mut Connection<S>,
    ) -> io::Result<End> {
        loop {
            if let State::Transaction(_) = self.state {
                conn.timeouts().logged_in();
            }
            let max = match self.sasl {
                Some(_) => MAX_SASL_LINE,
                None => MAX_COMMAND_LINE,
            };
            let supervisor = self.supervisor;
            let before_login = matches!(self.state, State::Authorization { .. });
            if let (Some(s), true) = (supervisor, before_login) {
                s.waiting(true);
            }
            let line = conn.read_line(max)?;
            if let (Some(s), true) = (supervisor, before_login) {
                s.waiting(false);
            }
            let reply = match line {
                None => match supervisor.and_then(|s| s.cut()) {
                    Some((text, end)) => {
                        conn.timeouts().for_last_reply();
                        Reply::Close(text.into(), end)
                    }
                    None => return Ok(End::Dropped),
                },
                Some(Line::TooLong) => {
                    if let Some((mechanism, _)) = self.sasl.take() {
                        // An exchange cut short costs what any abandoned one does.
                        let text = format!("{} response too long", mechanism.name());
                        self.abandoned(text, Instant::now())
                    } else {
                        Reply::Bad("Line too long".into())
                    }
                }
                Some(Line::Complete(line)) if self.sasl.is_some() => {
                    log::debug!("command: peer={} <SASL response hidden>", self.peer);
                    self.sasl_response(line)
                }
                Some(Line::Complete(line)) => match parse(line) {
                    Ok(cmd) => {
                        log::debug!("command: peer={} {}", self.peer, cmd.trace());
                        self.dispatch(cmd)
                    }
                    Err(e) => {
                        log::debug!("command: peer={} unparsed ({})", self.peer, e.message());
                        Reply::Bad(e.message().into())
                    }
                },
            };
            if let Some(end) = self.answer(conn, reply)? {
                conn.flush()?;
                return Ok(end);
            }
        }
    }

    /// Which command is legal in which state: the one table. Each handler is reached only
    /// from here, in its own state, so none has to check again.
    fn dispatch(&mut self, cmd: Command<'_>) -> Reply {
        use Command::*;
        match &mut self.state {
            State::Authorization { user } => match cmd {
                Capa => Reply::Capa,
                Quit => self.quit(),
                User(name) => self.user_command(name),
                Pass(password) => {
                    let user = user.take();
                    self.pass(user, password)
                }
                Apop(name, digest) => self.apop(name, digest),
                Auth(None) => Reply::Mechanisms,
                Auth(Some((name, initial))) => self.auth(name, initial),
                Stls => self.stls(),
                Utf8 => self.utf8(),
                Lang(range) => i18n::lang(range),
                Stat | List(_) | Uidl(_) | Retr(_) | Top(..) | Dele(_) | Noop | Rset => {
                    Reply::Bad("Not allowed before login".into())
                }
            },
            State::Transaction(t) => match cmd {
                Capa => Reply::Capa,
                Quit => self.quit(),
                Stat => t.stat(),
                List(n) => t.list(n),
                Uidl(n) => t.uidl(n),
                Retr(n) => t.retr(n),
                Top(n, lines) => t.top(n, lines),
                Dele(n) => t.dele(n),
                Noop => Reply::Ok(String::new()),
                Rset => t.rset(),
                User(_) | Pass(_) | Apop(..) | Auth(_) => Reply::Bad("Already logged in".into()),
                Stls => Reply::Bad("STLS is only allowed before login".into()),
                Utf8 => Reply::Bad("UTF8 is only allowed before login".into()),
                Lang(range) => i18n::lang(range),
            },
        }
    }

    /// Logs and reports the end of the session.
    fn ended(&self, how: &str, end: Option<End>) {
        let s = &self.stats;
        let user = self.user();
        let secs = self.connected.elapsed().as_secs_f64();
        match user {
            Some(user) => log::info!(
                "logout: user={user} peer={} mech={} end={how} duration={secs:.3}s \
                 retrieved={}/{} deleted={}/{}",
                self.peer,
                self.mechanism().unwrap_or("-"),
                s.retrieved,
                s.retrieved_bytes,
                s.deleted,
                s.deleted_bytes
            ),
            None => log::info!(
                "disconnect: peer={} end={how} duration={secs:.3}s",
                self.peer
            ),
        }
        self.service.notify(&Event::Ended {
            user,
            peer: &self.peer,
            end: end.unwrap_or(End::Dropped),
            stats: self.stats,
            duration: self.connected.elapsed(),
        });
    }
}

/// "1 message", "2 messages".
fn messages(n: usize) -> String {
    match n {
        1 => "1 message".into(),
        n => format!("{n} messages"),
    }
}

#[cfg(test)]
mod tests;
