//! One session over one stream, from greeting to end, through STLS or implicit TLS.
//!
//! The standalone server and inetd mode both come here, so TLS works the same in both.

use crate::connection::Connection;
use crate::session::{End, Service, Session, Tls};
use crate::tls::TlsConfig;
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
            let stream = tls.accept(stream)?;
            over(session.with_tls(Tls::Active), stream)
        }
        TlsMode::Off => over(session.with_tls(Tls::Unavailable), stream),
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
            session.run(&mut conn)
        }
    }
}

fn over<S: Read + Write>(mut session: Session<'_>, stream: S) -> io::Result<End> {
    let mut conn = Connection::new(stream);
    session.greet(&mut conn)?;
    session.run(&mut conn)
}
