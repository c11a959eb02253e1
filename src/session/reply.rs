//! Replies: what a handler returns, and the one place that turns it into bytes.

use super::{End, Session, State, TlsState};
use crate::connection::Connection;
use crate::limits::MESSAGE_CHUNK;
use crate::observer::Event;
use crate::protocol::MessageEncoder;
use crate::timeouts::HasTimeouts;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::fmt::Write as _;
use std::io::{self, Read, Write};

/// The outcome of one command.
pub(super) enum Reply {
    Ok(String),
    Err(String),
    /// An error in the client's use of the protocol: counts toward the bad-command limit.
    Bad(String),
    Capa,
    /// The SASL mechanisms, for a bare AUTH.
    Mechanisms,
    /// The languages, for a bare LANG: (tag, description).
    Languages(&'static [(&'static str, &'static str)]),
    /// A SASL challenge: `+ ` and the base64 of these bytes.
    Challenge(Vec<u8>),
    /// The scan listing (LIST) or the unique-id listing (UIDL) of the open mailbox.
    Listing {
        uidl: bool,
    },
    /// Message `index` of the open mailbox, whole or its top `top` lines.
    Message {
        index: usize,
        top: Option<u32>,
    },
    /// Answer, then end the session.
    Close(String, End),
}

impl Reply {
    /// The reply as a debug trace shows it: the status line, or what a multi-line reply or a
    /// challenge is (the lines themselves can be long, and a challenge is the exchange's own).
    fn trace(&self) -> String {
        match self {
            Reply::Ok(text) => format!("+OK {text}"),
            Reply::Err(text) | Reply::Bad(text) => format!("-ERR {text}"),
            Reply::Close(text, end) => format!("{text} (then {end:?})"),
            Reply::Capa => "+OK <capability list>".into(),
            Reply::Mechanisms => "+OK <mechanism list>".into(),
            Reply::Languages(_) => "+OK <language list>".into(),
            Reply::Challenge(_) => "+ <SASL challenge>".into(),
            Reply::Listing { uidl: false } => "+OK <scan listing>".into(),
            Reply::Listing { uidl: true } => "+OK <unique-id listing>".into(),
            Reply::Message { index, top: None } => format!("+OK <message {}>", index + 1),
            Reply::Message {
                index,
                top: Some(lines),
            } => format!("+OK <top {lines} lines of message {}>", index + 1),
        }
    }
}

impl Session<'_> {
    /// Sends `reply`; says whether the session ends.
    pub(super) fn answer<S: Read + Write + HasTimeouts>(
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
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("reply: peer={} {}", self.peer, reply.trace());
        }
        match reply {
            Reply::Ok(text) => status(conn, "+OK", &text)?,
            Reply::Err(text) | Reply::Bad(text) => status(conn, "-ERR", &text)?,
            Reply::Close(text, end) => {
                // STLS is no end: the session goes on over TLS, in the place it holds.
                if let (Some(s), false) = (self.supervisor, end == End::StartTls) {
                    s.finishing();
                }
                let sign = match end {
                    End::Quit | End::StartTls => "+OK",
                    _ => "-ERR",
                };
                status(conn, sign, &text)?;
                return Ok(Some(end));
            }
            Reply::Capa => self.write_capa(conn)?,
            Reply::Mechanisms => self.write_mechanisms(conn)?,
            Reply::Languages(languages) => {
                let mut out = String::from("+OK Language listing follows\r\n");
                for (tag, description) in languages {
                    let _ = write!(out, "{tag} {description}\r\n");
                }
                out.push_str(".\r\n");
                conn.send(out.as_bytes())?;
            }
            Reply::Challenge(bytes) => {
                let mut line = String::from("+ ");
                B64.encode_string(bytes, &mut line);
                line.push_str("\r\n");
                conn.send(line.as_bytes())?;
            }
            Reply::Listing { uidl } => self.write_listing(conn, uidl)?,
            Reply::Message { index, top } => return self.write_message(conn, index, top),
        }
        Ok(None)
    }

    fn write_capa<S: Read + Write + HasTimeouts>(
        &self,
        conn: &mut Connection<S>,
    ) -> io::Result<()> {
        let mut out = String::from("+OK Capability list follows\r\nTOP\r\n");
        let before_login = matches!(self.state, State::Authorization { .. });
        let user = before_login && self.plaintext_allowed();
        if user {
            out.push_str("USER\r\n");
        }
        out.push_str("UIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
        // RFC 6856: UTF-8 user names and passwords are welcome wherever USER is.
        out.push_str(if user { "UTF8 USER\r\n" } else { "UTF8\r\n" });
        out.push_str("LANG\r\n");
        // RFC 2449 §6.8: before login the service's value, which accounts may change (USER);
        // after it, the account's own.
        match &self.state {
            State::Authorization { .. } => {
                let delay = self.service.config.login_delay.as_secs();
                if delay > 0 {
                    let _ = write!(out, "LOGIN-DELAY {delay} USER\r\n");
                }
            }
            State::Transaction(t) if !t.login_delay.is_zero() => {
                let _ = write!(out, "LOGIN-DELAY {}\r\n", t.login_delay.as_secs());
            }
            State::Transaction(_) => {}
        }
        // RFC 2449 §6.7, in the same way.
        match &self.state {
            State::Authorization { .. } => {
                if let Some(expire) = self.service.config.expire {
                    let _ = write!(out, "EXPIRE {expire} USER\r\n");
                }
            }
            State::Transaction(t) => {
                if let Some(expire) = t.expire {
                    let _ = write!(out, "EXPIRE {expire}\r\n");
                }
            }
        }
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
            if self.tls == TlsState::Offered {
                out.push_str("STLS\r\n");
            }
        }
        if let Some(text) = &self.service.config.implementation {
            let _ = write!(out, "IMPLEMENTATION {}\r\n", one_line(text));
        }
        out.push_str(".\r\n");
        conn.send(out.as_bytes())
    }

    fn write_mechanisms<S: Read + Write + HasTimeouts>(
        &self,
        conn: &mut Connection<S>,
    ) -> io::Result<()> {
        let mut out = String::from("+OK Supported mechanisms follow\r\n");
        for m in self.mechanisms() {
            out.push_str(m.name());
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        conn.send(out.as_bytes())
    }

    fn write_listing<S: Read + Write + HasTimeouts>(
        &self,
        conn: &mut Connection<S>,
        uidl: bool,
    ) -> io::Result<()> {
        let State::Transaction(t) = &self.state else {
            return Err(no_mailbox());
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

    /// Streams a message through the dot-stuffer in fixed chunks, so memory stays flat
    /// whatever its size.
    fn write_message<S: Read + Write + HasTimeouts>(
        &mut self,
        conn: &mut Connection<S>,
        index: usize,
        top: Option<u32>,
    ) -> io::Result<Option<End>> {
        let State::Transaction(t) = &mut self.state else {
            return Err(no_mailbox());
        };
        let size = t.mailbox.messages()[index].size;
        let user = &t.account.name;
        let mut reader = match t.mailbox.read(index) {
            Ok(r) => r,
            Err(e) => {
                log::error!(
                    "cannot read message {}: user={user} ({})",
                    index + 1,
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
        let mut encoder = top
            .map_or_else(MessageEncoder::new, |n| MessageEncoder::top(n.into()))
            .with_workarounds(self.service.config.workarounds);
        let mut chunk = vec![0u8; MESSAGE_CHUNK];
        while !encoder.is_done() {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The +OK is out: the only honest signal left is to cut the connection, so
                    // the client never takes a truncated message for a whole one.
                    log::error!("read error in message {}: user={user} ({e})", index + 1);
                    return Ok(Some(End::Aborted));
                }
            };
            encoder.feed(&chunk[..n], conn.output());
            conn.flush_if_full()?;
        }
        encoder.finish(conn.output());
        let event = match top {
            None => {
                // For EXPIRE: sent whole, so retrieved (the session's QUIT confirms it).
                t.retrieved[index] = true;
                self.stats.retrieved += 1;
                self.stats.retrieved_bytes = self.stats.retrieved_bytes.saturating_add(size);
                Event::Retrieved { user, octets: size }
            }
            Some(lines) => Event::TopSent { user, lines },
        };
        self.service.notify(&event);
        Ok(None)
    }
}

/// A mailbox reply with no mailbox open: [`Session::dispatch`] makes that impossible, and the
/// session ends if it ever happens.
fn no_mailbox() -> io::Error {
    io::Error::other("internal error: a mailbox reply before login")
}

/// Writes a one-line reply.
pub(super) fn status<S: Read + Write + HasTimeouts>(
    conn: &mut Connection<S>,
    sign: &str,
    text: &str,
) -> io::Result<()> {
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
