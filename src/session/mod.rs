//! The RFC 1939 state machine: AUTHORIZATION, TRANSACTION, UPDATE, over any `Read + Write`.
//!
//! Handlers never write: each returns a reply value, and [`Session::run`] turns it into bytes.
//! That keeps "one command, one reply" true whatever goes wrong.

mod authorization;
mod config;
mod slowest;
mod transaction;

pub use config::{Service, SessionConfig};

use crate::connection::{Connection, Limit, Line};
use crate::limits::{LAST_REPLY_TIMEOUT, MAX_COMMAND_LINE, MAX_SASL_LINE, MESSAGE_CHUNK};
use crate::protocol::{parse, Command, MessageEncoder};
use crate::sasl::{Exchange, Mechanism};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::time::Instant;
use transaction::Transaction;

/// The reply to a client that has not logged in within the login timeout.
const LOGIN_TIMED_OUT: &[u8] = b"-ERR [SYS/TEMP] Login timed out, closing\r\n";

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client sent QUIT (after login: UPDATE ran).
    Quit,
    /// The client closed the connection: nothing was deleted.
    Dropped,
    /// The client sent nothing for the idle timeout: nothing was deleted.
    TimedOut,
    /// Too many bad commands in a row, or too many failed logins.
    TooManyErrors,
    /// A message could not be read after its `+OK` was sent; the connection must close.
    Aborted,
    /// The client sent STLS and was told to begin: run the TLS handshake on the stream, call
    /// [`Session::tls_started`], then [`Session::run`] again over the TLS stream.
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
            End::StartTls => "starttls",
        }
    }
}

/// Whether TLS protects a session, or could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// No TLS configured: STLS is not offered, and the plaintext rule does not apply.
    Unavailable,
    /// TLS configured but not started: STLS is offered, and passwords wait for it.
    Offered,
    /// The connection is encrypted (after STLS, or on an implicit-TLS port).
    Active,
}

/// Counts for the logout log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// One client's session, from greeting to end.
pub struct Session<'s> {
    service: &'s Service,
    peer: String,
    /// The client's address, when it has one (not a pipe): for the failure penalty.
    client_ip: Option<IpAddr>,
    tls: Tls,
    loopback: bool,
    /// When the client connected: the login timeout counts from here.
    connected: Instant,
    /// The APOP timestamp of the greeting, when APOP is on.
    apop_timestamp: Option<String>,
    state: State,
    /// A SASL exchange under way: the next line is its response, not a command.
    sasl: Option<(Mechanism, Exchange)>,
    bad_commands: u32,
    failed_logins: u32,
    stats: Stats,
    /// The user of a session that has run UPDATE, for the logout log line.
    logged_out: Option<String>,
}

enum State {
    Authorization { user: Option<String> },
    Transaction(Box<Transaction>),
}

/// The outcome of one command, turned into bytes by [`Session::run`].
enum Reply {
    Ok(String),
    Err(String),
    /// An error in the client's use of the protocol: counts toward the bad-command limit.
    Bad(String),
    Capa,
    /// The SASL mechanisms, for a bare AUTH.
    Mechanisms,
    /// A SASL challenge: `+ ` and the base64 of these bytes.
    Challenge(Vec<u8>),
    List,
    Uidl,
    Message {
        index: usize,
        top: Option<u32>,
    },
    /// Answer, then end the session.
    Close(String, End),
}

impl<'s> Session<'s> {
    /// A new session for a client known by `peer` (an address, for the log), on a connection
    /// without TLS and not from loopback; see [`with_tls`](Self::with_tls) and
    /// [`from_loopback`](Self::from_loopback).
    pub fn new(service: &'s Service, peer: impl Into<String>) -> Self {
        // As with CRAM-MD5: a client that sees the timestamp may insist on APOP, which fails
        // for an account without a plaintext secret, so it is offered only while all have one.
        let apop = service.config.apop && service.auth.secret_kinds().plain;
        let apop_timestamp = apop.then(|| authorization::apop_timestamp(&service.config.hostname));
        Session {
            service,
            peer: peer.into(),
            client_ip: None,
            tls: Tls::Unavailable,
            loopback: false,
            connected: Instant::now(),
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
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Marks the client as connected over loopback (see [`SessionConfig::trust_loopback`]).
    pub fn from_loopback(mut self, loopback: bool) -> Self {
        self.loopback = loopback;
        self
    }

    /// Sets when the client connected (default: when the session was made); the login timeout
    /// counts from then.
    pub fn connected_at(mut self, connected: Instant) -> Self {
        self.connected = connected;
        self
    }

    /// Sets the client's address, which the failure penalty is kept for.
    pub fn with_client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Records that the TLS handshake after STLS succeeded. Anything the client said before it
    /// (a USER) is forgotten, as RFC 2595 §4 requires.
    pub fn tls_started(&mut self) {
        self.tls = Tls::Active;
        self.state = State::Authorization { user: None };
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The logged-in user, if any (after QUIT: the user who was logged in).
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Transaction(t) => Some(&t.account.name),
            State::Authorization { .. } => self.logged_out.as_deref(),
        }
    }

    /// Sends the greeting (with the APOP timestamp when APOP is on).
    pub fn greet<S: Read + Write>(&self, conn: &mut Connection<S>) -> io::Result<()> {
        match &self.apop_timestamp {
            Some(stamp) => conn.send(format!("+OK POP3 server ready {stamp}\r\n").as_bytes()),
            None => conn.send(b"+OK POP3 server ready\r\n"),
        }
    }

    /// Runs commands until the session ends. I/O errors other than a timeout are returned; the
    /// mailbox is then left as it was (no UPDATE).
    pub fn run<S: Read + Write>(&mut self, conn: &mut Connection<S>) -> io::Result<End> {
        let end = self.command_loop(conn);
        let end = match end {
            Err(e) => match Limit::of(&e) {
                Some(limit) => {
                    // The limits that ran out no longer bound this one last line.
                    conn.set_deadline(None);
                    let _ = conn.set_timeout(LAST_REPLY_TIMEOUT);
                    let _ = conn.send(match limit {
                        Limit::Idle => b"-ERR [SYS/TEMP] Idle timeout, closing\r\n",
                        Limit::Line => {
                            b"-ERR [SYS/TEMP] Command line not finished in time, closing\r\n"
                        }
                        Limit::Login => LOGIN_TIMED_OUT,
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
            Ok(e) => self.log_end(e.as_str()),
            Err(_) => self.log_end("connection-error"),
        }
        end
    }

    fn command_loop<S: Read + Write>(&mut self, conn: &mut Connection<S>) -> io::Result<End> {
        loop {
            let config = &self.service.config;
            let timeout = match self.state {
                State::Transaction(_) => {
                    conn.set_deadline(None);
                    config.idle_timeout
                }
                State::Authorization { .. } => {
                    let left = config
                        .login_timeout
                        .saturating_sub(self.connected.elapsed());
                    if left.is_zero() {
                        conn.send(LOGIN_TIMED_OUT)?;
                        conn.flush()?;
                        return Ok(End::TimedOut);
                    }
                    // A line trickled in byte by byte must still end by the login deadline.
                    conn.set_deadline(Some(self.connected + config.login_timeout));
                    left.min(config.idle_timeout)
                }
            };
            conn.set_timeout(timeout)?;
            let max = match self.sasl {
                Some(_) => MAX_SASL_LINE,
                None => MAX_COMMAND_LINE,
            };
            let reply = match conn.read_line(max)? {
                None => return Ok(End::Dropped),
                Some(Line::TooLong) => {
                    self.sasl = None;
                    Reply::Bad("Line too long".into())
                }
                Some(Line::Complete(line)) if self.sasl.is_some() => self.sasl_response(line),
                Some(Line::Complete(line)) => match parse(line) {
                    Ok(cmd) => self.execute(cmd),
                    Err(e) => Reply::Bad(e.message().into()),
                },
            };
            if let Some(end) = self.answer(conn, reply)? {
                conn.flush()?;
                return Ok(end);
            }
        }
    }

    fn answer<S: Read + Write>(
        &mut self,
        conn: &mut Connection<S>,
        reply: Reply,
    ) -> io::Result<Option<End>> {
        if matches!(reply, Reply::Bad(_)) {
            self.bad_commands += 1;
            if self.bad_commands >= self.service.config.max_bad_commands {
                conn.send(b"-ERR Too many bad commands, closing\r\n")?;
                return Ok(Some(End::TooManyErrors));
            }
        } else {
            self.bad_commands = 0;
        }
        match reply {
            Reply::Ok(text) => status(conn, "+OK", &text)?,
            Reply::Err(text) | Reply::Bad(text) => status(conn, "-ERR", &text)?,
            Reply::Close(text, end) => {
                let sign = match end {
                    End::Quit | End::StartTls => "+OK",
                    _ => "-ERR",
                };
                status(conn, sign, &text)?;
                return Ok(Some(end));
            }
            Reply::Capa => self.write_capa(conn)?,
            Reply::Mechanisms => self.write_mechanisms(conn)?,
            Reply::Challenge(bytes) => {
                let mut line = String::from("+ ");
                B64.encode_string(bytes, &mut line);
                line.push_str("\r\n");
                conn.send(line.as_bytes())?;
            }
            Reply::List | Reply::Uidl => self.write_listing(conn, matches!(reply, Reply::Uidl))?,
            Reply::Message { index, top } => return self.write_message(conn, index, top),
        }
        Ok(None)
    }

    fn execute(&mut self, cmd: Command<'_>) -> Reply {
        match cmd {
            Command::Capa => return Reply::Capa,
            Command::Quit => return self.quit(),
            _ => {}
        }
        match &mut self.state {
            State::Authorization { .. } => self.authorization(cmd),
            State::Transaction(t) => match cmd {
                Command::User(_) | Command::Pass(_) | Command::Apop(..) | Command::Auth(_) => {
                    Reply::Bad("Already logged in".into())
                }
                Command::Stls => Reply::Bad("STLS is only allowed before login".into()),
                cmd => t.execute(cmd),
            },
        }
    }

    fn quit(&mut self) -> Reply {
        let State::Transaction(mut t) =
            std::mem::replace(&mut self.state, State::Authorization { user: None })
        else {
            return Reply::Close("Bye".into(), End::Quit);
        };
        // The mailbox (and its lock) goes when `t` does, at the end of this function: before
        // the reply is sent, so a client that reconnects at once finds it free.
        self.logged_out = Some(t.account.name.clone());
        let doomed: Vec<usize> = (0..t.deleted.len()).filter(|&i| t.deleted[i]).collect();
        if doomed.is_empty() {
            return Reply::Close("Bye".into(), End::Quit);
        }
        // UPDATE: the deletions are committed before the +OK goes out.
        match t.mailbox.delete(&doomed) {
            Ok(()) => {
                self.stats.deleted = doomed.len() as u64;
                self.stats.deleted_bytes = doomed.iter().fold(0u64, |sum, &i| {
                    sum.saturating_add(t.mailbox.messages()[i].size)
                });
                Reply::Close(
                    format!("Bye, {} deleted", messages(doomed.len())),
                    End::Quit,
                )
            }
            Err(e) => {
                log::error!("update failed: user={} ({})", t.account.name, e.detail());
                Reply::Close(
                    "[SYS/TEMP] Some deleted messages were not removed".into(),
                    End::Aborted,
                )
            }
        }
    }

    fn write_capa<S: Read + Write>(&self, conn: &mut Connection<S>) -> io::Result<()> {
        let mut out = String::from("+OK Capability list follows\r\nTOP\r\n");
        let before_login = matches!(self.state, State::Authorization { .. });
        if before_login && self.plaintext_allowed() {
            out.push_str("USER\r\n");
        }
        out.push_str("UIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
        if before_login {
            let mechanisms = self.mechanisms();
            if !mechanisms.is_empty() {
                out.push_str("SASL");
                for m in mechanisms {
                    out.push(' ');
                    out.push_str(m.name());
                }
                out.push_str("\r\n");
            }
            if self.tls == Tls::Offered {
                out.push_str("STLS\r\n");
            }
        }
        if let Some(text) = &self.service.config.implementation {
            let _ = write!(out, "IMPLEMENTATION {}\r\n", one_line(text));
        }
        out.push_str(".\r\n");
        conn.send(out.as_bytes())
    }

    fn write_mechanisms<S: Read + Write>(&self, conn: &mut Connection<S>) -> io::Result<()> {
        let mut out = String::from("+OK Supported mechanisms follow\r\n");
        for m in self.mechanisms() {
            out.push_str(m.name());
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        conn.send(out.as_bytes())
    }

    fn write_listing<S: Read + Write>(
        &self,
        conn: &mut Connection<S>,
        uidl: bool,
    ) -> io::Result<()> {
        let State::Transaction(t) = &self.state else {
            return Ok(());
        };
        conn.send(if uidl {
            b"+OK Unique-ID listing follows\r\n"
        } else {
            b"+OK Scan listing follows\r\n"
        })?;
        let mut line = String::with_capacity(96);
        for (i, m) in t.mailbox.messages().iter().enumerate() {
            if t.deleted[i] {
                continue;
            }
            line.clear();
            if uidl {
                let _ = write!(line, "{} {}\r\n", i + 1, m.uidl);
            } else {
                let _ = write!(line, "{} {}\r\n", i + 1, m.size);
            }
            conn.send(line.as_bytes())?;
        }
        conn.send(b".\r\n")
    }

    fn write_message<S: Read + Write>(
        &mut self,
        conn: &mut Connection<S>,
        index: usize,
        top: Option<u32>,
    ) -> io::Result<Option<End>> {
        let State::Transaction(t) = &mut self.state else {
            return Ok(None);
        };
        let size = t.mailbox.messages()[index].size;
        let mut reader = match t.mailbox.read(index) {
            Ok(r) => r,
            Err(e) => {
                log::error!(
                    "cannot read message {}: user={} ({})",
                    index + 1,
                    t.account.name,
                    e.detail()
                );
                status(
                    conn,
                    "-ERR",
                    "[SYS/TEMP] Message cannot be read, try again later",
                )?;
                return Ok(None);
            }
        };
        match top {
            None => status(conn, "+OK", &format!("{size} octets"))?,
            Some(_) => status(conn, "+OK", "Top of message follows")?,
        }
        let mut encoder = top.map_or_else(MessageEncoder::new, |n| MessageEncoder::top(n.into()));
        let mut chunk = vec![0u8; MESSAGE_CHUNK];
        while !encoder.is_done() {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The +OK is out: the only honest signal left is to cut the connection, so
                    // the client never takes a truncated message for a whole one.
                    log::error!(
                        "read error in message {}: user={} ({e})",
                        index + 1,
                        t.account.name
                    );
                    return Ok(Some(End::Aborted));
                }
            };
            encoder.feed(&chunk[..n], conn.output());
            conn.flush_if_full()?;
        }
        encoder.finish(conn.output());
        if top.is_none() {
            self.stats.retrieved += 1;
            self.stats.retrieved_bytes = self.stats.retrieved_bytes.saturating_add(size);
        }
        Ok(None)
    }

    fn log_end(&self, end: &str) {
        let s = &self.stats;
        match self.user() {
            Some(user) => log::info!(
                "logout: user={user} peer={} end={end} retrieved={}/{} deleted={}/{}",
                self.peer,
                s.retrieved,
                s.retrieved_bytes,
                s.deleted,
                s.deleted_bytes
            ),
            None => log::info!("disconnect: peer={} end={end}", self.peer),
        }
    }
}

/// "1 message", "2 messages".
fn messages(n: usize) -> String {
    match n {
        1 => "1 message".into(),
        n => format!("{n} messages"),
    }
}

/// Writes a one-line reply.
fn status<S: Read + Write>(conn: &mut Connection<S>, sign: &str, text: &str) -> io::Result<()> {
    let out = conn.output();
    out.extend_from_slice(sign.as_bytes());
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    conn.flush_if_full()
}

/// `text` with anything that could end or forge a reply line removed.
fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Account;
    use crate::store::memory::MemoryStore;
    use crate::{AuthError, Authenticator};
    use std::sync::Arc;
    use std::time::Duration;

    struct OneUser;

    impl Authenticator for OneUser {
        fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
            match (user, password) {
                ("bob", b"p w") => Ok(Account::new("bob")),
                _ => Err(AuthError::rejected("no")),
            }
        }
    }

    /// Input handed out in pieces of the given sizes (cycled), output recorded.
    struct Scripted<'a> {
        input: &'a [u8],
        pieces: &'a [usize],
        turn: usize,
        output: Vec<u8>,
    }

    impl Read for Scripted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let want = self.pieces[self.turn % self.pieces.len()];
            self.turn += 1;
            let n = want.min(buf.len()).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    impl Write for Scripted<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run(input: &[u8], pieces: &[usize]) -> (Vec<u8>, End, MemoryStore) {
        let store = MemoryStore::new();
        store.deliver("bob", b"Subject: a\n\n.dot\nbody\n");
        store.deliver("bob", b"Subject: b\r\n\r\nno newline");
        let config = SessionConfig {
            auth_failure_delay: Duration::ZERO,
            ..SessionConfig::default()
        };
        let service = Service::new(Arc::new(OneUser), Arc::new(store.clone())).with_config(config);
        let mut conn = Connection::new(Scripted {
            input,
            pieces,
            turn: 0,
            output: Vec::new(),
        });
        let mut session = Session::new(&service, "test");
        session.greet(&mut conn).unwrap();
        let end = session.run(&mut conn).unwrap();
        let out = conn.into_inner().unwrap().output;
        (out, end, store)
    }

    const SCRIPT: &[u8] = b"CAPA\r\nUSER bob\r\nPASS x\r\nUSER bob\nPASS p w\r\nSTAT\r\n\
        LIST\r\nUIDL 2\r\nRETR 1\r\nTOP 2 0\r\nbogus\r\nLIST 0\r\nDELE 1\r\nRETR 1\r\n\
        RSET\r\nDELE 2\r\nQUIT\r\n";

    const WANT: &[u8] = b"+OK POP3 server ready\r\n\
        +OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
        PIPELINING\r\nSASL PLAIN LOGIN\r\n.\r\n\
        +OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n\
        +OK Send your password\r\n+OK Logged in, 2 messages (52 octets)\r\n+OK 2 52\r\n\
        +OK Scan listing follows\r\n1 26\r\n2 26\r\n.\r\n+OK 2 m0000000002\r\n\
        +OK 26 octets\r\nSubject: a\r\n\r\n..dot\r\nbody\r\n.\r\n\
        +OK Top of message follows\r\nSubject: b\r\n\r\n.\r\n\
        -ERR Unknown command\r\n-ERR Message number out of range\r\n\
        +OK Message 1 deleted\r\n-ERR Message 1 is deleted\r\n+OK 2 messages (52 octets)\r\n\
        +OK Message 2 deleted\r\n+OK Bye, 1 message deleted\r\n";

    #[test]
    fn whole_session_in_literal_bytes() {
        let (out, end, store) = run(SCRIPT, &[4096]);
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(WANT));
        assert_eq!(end, End::Quit);
        assert_eq!(
            store.messages("bob"),
            vec![b"Subject: a\n\n.dot\nbody\n".to_vec()]
        );
    }

    #[test]
    fn same_bytes_whatever_the_input_split() {
        for pieces in [&[1][..], &[2], &[3, 1], &[7, 13, 1]] {
            assert_eq!(run(SCRIPT, pieces).0, WANT, "pieces {pieces:?}");
        }
        for cut in 1..SCRIPT.len() {
            assert_eq!(run(SCRIPT, &[cut, SCRIPT.len()]).0, WANT, "cut at {cut}");
        }
    }

    #[test]
    fn end_of_input_before_quit_deletes_nothing() {
        let (_, end, store) = run(b"USER bob\r\nPASS p w\r\nDELE 1\r\nDELE 2\r\n", &[4096]);
        assert_eq!(end, End::Dropped);
        assert_eq!(store.count("bob"), 2);
    }
}
