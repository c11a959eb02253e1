//! One session over one stream, from greeting to end, through STLS or implicit TLS.
//!
//! The standalone server and inetd mode both come here, so TLS works the same in both.

use crate::connection::Connection;
use crate::session::{End, Service, Session, Tls};
use crate::tls::TlsConfig;
use native_tls::TlsStream;
use std::io::{self, Read, Write};

/// What TLS does on a connection.
#[derive(Clone, Copy)]
pub enum TlsMode<'a> {
    /// No TLS configured.
    Off,
    /// Plaintext first, STLS offered (RFC 2595).
    Starttls(&'a TlsConfig),
    /// TLS from the first byte (RFC 8314, port 995).
    Implicit(&'a TlsConfig),
}

/// Runs a whole session on `stream` for the client `peer`.
pub fn run_session<S: Read + Write>(
    service: &Service,
    stream: S,
    peer: &str,
    loopback: bool,
    mode: TlsMode<'_>,
) -> io::Result<End> {
    let session = Session::new(service, peer).from_loopback(loopback);
    match mode {
        TlsMode::Implicit(tls) => {
            let mut conn = Connection::new(tls.accept(stream)?);
            let end = over(session.with_tls(Tls::Active), &mut conn)?;
            close_notify(conn);
            Ok(end)
        }
        TlsMode::Off => over(
            session.with_tls(Tls::Unavailable),
            &mut Connection::new(stream),
        ),
        TlsMode::Starttls(tls) => {
            let mut session = session.with_tls(Tls::Offered);
            let mut conn = Connection::new(stream);
            session.greet(&mut conn)?;
            let end = session.run(&mut conn)?;
            if end != End::StartTls {
                return Ok(end);
            }
            // into_inner sends the "+OK Begin TLS" and throws away whatever the client sent
            // after STLS: nothing said in plaintext may run inside TLS (CVE-2011-0411).
            let stream = tls.accept(conn.into_inner()?)?;
            session.tls_started();
            let mut conn = Connection::new(stream);
            let end = session.run(&mut conn)?;
            // The session (and its mailbox) goes first: the client may already be reconnecting.
            drop(session);
            close_notify(conn);
            Ok(end)
        }
    }
}

/// Greets and runs `session` to its end; the session is dropped (its mailbox released) before
/// this returns.
fn over<S: Read + Write>(mut session: Session<'_>, conn: &mut Connection<S>) -> io::Result<End> {
    session.greet(conn)?;
    session.run(conn)
}

/// Ends TLS with a close_notify alert (RFC 5246 §7.2.1, RFC 8446 §6.1), so the client can tell
/// the end of the session from a truncation; OpenSSL 3 clients report a bare TCP close as
/// "unexpected eof while reading". Best effort: the session is over whatever happens here, and
/// the socket's write timeout bounds the wait.
fn close_notify<S: Read + Write>(conn: Connection<TlsStream<S>>) {
    if let Ok(mut stream) = conn.into_inner() {
        let _ = stream.shutdown();
    }
}
