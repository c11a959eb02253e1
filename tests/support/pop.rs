//! The one line-level POP3 client of the tests, over any byte stream: plain TCP, TLS (after
//! STLS or on an implicit-TLS port) or the pipes of a `pop3d --inetd` child.
//!
//! Each read is bounded by the stream's own timeout (sockets here get [`REPLY_TIMEOUT`]). The
//! plain methods panic on any failure; the `try_` ones return it, for the tests in which the
//! server may vanish or refuse (faults, load) and a failure is a value to count or allow. The
//! client is also a `Read` and a `BufRead`, for the tests that look at raw octets.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a client waits to connect and for any reply: long enough for an argon2 check in a
/// debug build, or a step of a 20 MB RETR, on a loaded machine.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest reply line, CRLF included (RFC 2449 §4).
const MAX_REPLY: usize = 512;

/// A POP3 client that speaks in literal lines.
pub struct Pop<S: Read + Write> {
    reader: BufReader<S>,
}

/// A [`Pop`] client over TLS.
pub type TlsPop = Pop<native_tls::TlsStream<TcpStream>>;

/// A TCP connection to `addr` with `limit` on the connect and on every read and write.
pub fn tcp_within(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    Ok(stream)
}

/// A TCP connection to `addr` with [`REPLY_TIMEOUT`] on reads and writes.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    tcp_within(addr, REPLY_TIMEOUT).expect("connect")
}

/// A TLS client that accepts the tests' self-signed certificate (the tests check what the
/// server does, not the certificate chain).
pub fn tls_connector() -> native_tls::TlsConnector {
    native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .expect("TLS connector")
}

/// Runs the client side of a TLS handshake on `stream`.
pub fn tls_handshake(stream: TcpStream) -> native_tls::TlsStream<TcpStream> {
    tls_connector()
        .connect("localhost", stream)
        .unwrap_or_else(|e| panic!("TLS handshake: {e}"))
}

impl Pop<TcpStream> {
    /// Connects in plaintext and returns the client with the greeting.
    pub fn connect(addr: SocketAddr) -> (Self, String) {
        let mut c = Pop::over(tcp(addr));
        let greeting = c.line();
        (c, greeting)
    }

    /// Connects, logs in and checks each reply.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Self {
        let mut c = Pop::over(tcp(addr));
        c.log_in(user, password);
        c
    }

    /// Logs in, waiting (at most `patience`) while the mailbox is still `[IN-USE]` by a session
    /// that is ending; any other refusal fails.
    pub fn login_when_free(
        addr: SocketAddr,
        user: &str,
        password: &str,
        patience: Duration,
    ) -> Self {
        let deadline = Instant::now() + patience;
        loop {
            let (mut c, greeting) = Pop::connect(addr);
            assert!(greeting.starts_with("+OK"), "{greeting}");
            assert!(c.cmd(&format!("USER {user}")).starts_with("+OK"));
            let reply = c.cmd(&format!("PASS {password}"));
            if reply.starts_with("+OK") {
                return c;
            }
            assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
            assert!(
                Instant::now() < deadline,
                "mailbox still in use after {patience:?}"
            );
            c.cmd("QUIT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends STLS, checks the answer and runs the handshake on the same connection.
    pub fn stls(mut self) -> TlsPop {
        let reply = self.cmd("STLS");
        assert_eq!(reply, "+OK Begin TLS negotiation");
        Pop::over(tls_handshake(self.into_stream()))
    }
}

impl TlsPop {
    /// Connects to an implicit-TLS port and returns the client with the greeting.
    pub fn implicit(addr: SocketAddr) -> (Self, String) {
        let mut c = Pop::over(tls_handshake(tcp(addr)));
        let greeting = c.line();
        (c, greeting)
    }

    /// Connects in plaintext, checks the greeting and upgrades with STLS.
    pub fn starttls(addr: SocketAddr) -> Self {
        let (c, greeting) = Pop::connect(addr);
        assert!(greeting.starts_with("+OK"), "{greeting}");
        c.stls()
    }
}

impl<S: Read + Write> Pop<S> {
    /// A client on a stream whose greeting has not been read.
    pub fn over(stream: S) -> Self {
        Pop {
            reader: BufReader::new(stream),
        }
    }

    /// The stream, to read its addresses or change its timeouts.
    pub fn stream(&self) -> &S {
        self.reader.get_ref()
    }

    /// The stream, to write to it or close a part of it.
    pub fn stream_mut(&mut self) -> &mut S {
        self.reader.get_mut()
    }

    /// The stream, for a test that goes on below POP3 (a TLS handshake, raw bytes); fails if
    /// the client has read ahead, since those bytes would be lost.
    pub fn into_stream(self) -> S {
        assert!(
            self.reader.buffer().is_empty(),
            "bytes after the last reply: {:?}",
            self.reader.buffer()
        );
        self.reader.into_inner()
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).expect("send");
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// One reply line, without its CRLF; fails on anything else (no CRLF, not UTF-8, the end
    /// of the connection).
    pub fn line(&mut self) -> String {
        self.try_line().expect("read a reply line")
    }

    /// One reply line, without its CRLF. The end of the connection before any octet is
    /// `UnexpectedEof`; octets without a CRLF, or not UTF-8, are `InvalidData`.
    pub fn try_line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        let read = self.reader.read_until(b'\n', &mut buf);
        if let Err(e) = read {
            return match buf.is_empty() {
                true => Err(e),
                false => Err(invalid(format!("{buf:?}, then {e}"))),
            };
        }
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let Some(line) = buf.strip_suffix(b"\r\n") else {
            return Err(invalid(format!("line without CRLF: {buf:?}")));
        };
        String::from_utf8(line.to_vec()).map_err(|e| invalid(e.to_string()))
    }

    /// Sends a command line and returns the reply line, which must be a status (`+OK`, `-ERR`)
    /// or a SASL challenge (`+ `), at most 512 octets with its CRLF.
    pub fn cmd(&mut self, line: &str) -> String {
        self.try_cmd(line).expect("command")
    }

    pub fn try_cmd(&mut self, line: &str) -> io::Result<String> {
        self.try_send(format!("{line}\r\n").as_bytes())?;
        let reply = self.try_line()?;
        if reply.len() + 2 > MAX_REPLY {
            return Err(invalid(format!("reply over 512 octets: {reply:?}")));
        }
        match ["+OK", "-ERR", "+ "].iter().any(|s| reply.starts_with(s)) {
            true => Ok(reply),
            false => Err(invalid(format!("not a reply: {reply:?}"))),
        }
    }

    /// Reads the greeting, sends USER and PASS, checks that each is answered `+OK`, and
    /// returns the reply to PASS.
    pub fn log_in(&mut self, user: &str, password: &str) -> String {
        let greeting = self.line();
        assert!(greeting.starts_with("+OK"), "{greeting}");
        let reply = self.cmd(&format!("USER {user}"));
        assert!(reply.starts_with("+OK"), "{reply}");
        let reply = self.cmd(&format!("PASS {password}"));
        assert!(reply.starts_with("+OK"), "login failed: {reply}");
        reply
    }

    /// Reads a multi-line body up to its `.` line and returns it with the dot-stuffing undone;
    /// every line must end in CRLF, and keeps it.
    pub fn body(&mut self) -> Vec<u8> {
        self.try_body().expect("read a multi-line body")
    }

    pub fn try_body(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            if self.reader.read_until(b'\n', &mut buf)? == 0 {
                return Err(invalid(
                    "connection closed inside a multi-line reply".into(),
                ));
            }
            if !buf.ends_with(b"\r\n") {
                return Err(invalid(format!("body line without CRLF: {buf:?}")));
            }
            if buf == b".\r\n" {
                return Ok(out);
            }
            out.extend_from_slice(buf.strip_prefix(b".").unwrap_or(&buf));
        }
    }

    /// Sends a command and returns the status line and, after `+OK`, the body's lines as text.
    pub fn multi(&mut self, line: &str) -> (String, Vec<String>) {
        let status = self.cmd(line);
        if !status.starts_with("+OK") {
            return (status, Vec::new());
        }
        let body = String::from_utf8(self.body()).expect("UTF-8 listing");
        (status, body.lines().map(str::to_owned).collect())
    }

    /// Everything the server sends until it closes the connection, which must come within the
    /// stream's timeout and be a clean end (over TLS: with a close_notify alert).
    pub fn rest(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.read_to_end(&mut rest).map(|_| rest)
    }

    /// True if the server closes the connection within the stream's timeout. A reset counts:
    /// a server that closes with a command of ours still unread makes its kernel send one.
    pub fn closed(&mut self) -> bool {
        match self.rest() {
            Ok(_) => true,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    /// Sends QUIT, checks the reply, and waits for the server to close the connection with
    /// nothing more: the session, and its hold on the mailbox, is then over, so the next login
    /// cannot meet `[IN-USE]`.
    pub fn quit(&mut self) {
        let reply = self.cmd("QUIT");
        assert!(reply.starts_with("+OK"), "{reply}");
        let rest = self.rest().expect("clean end after QUIT");
        assert!(rest.is_empty(), "after QUIT: {rest:?}");
    }
}

/// Raw octets, through the client's buffer (a test that reads below the line level).
impl<S: Read + Write> Read for Pop<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<S: Read + Write> BufRead for Pop<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.reader.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.reader.consume(amount)
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}
