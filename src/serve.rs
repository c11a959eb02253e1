//! One session over one stream, from greeting to end, through STLS or implicit TLS.
//!
//! The standalone server and inetd mode both come here, so TLS, the PROXY protocol and the
//! timeouts work the same in both.

use crate::connection::{Connection, TimeoutControl};
use crate::deadlined::Deadlined;
use crate::net_range::NetRange;
use crate::protocol::proxy;
use crate::session::{End, Service, Session, Tls};
use crate::tls::TlsConfig;
use native_tls::TlsStream;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

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

/// Runs a whole session on `stream` for the client at `peer` (`None`: a pipe, which counts as
/// local), which connected at `connected`: the login timeout, TLS handshakes included, counts
/// from then. `control`, when given, sets the stream's read timeout (see
/// [`Connection::with_timeout_control`]); it survives an STLS upgrade.
pub fn run_session<S: Read + Write>(
    service: &Service,
    stream: S,
    peer: Option<SocketAddr>,
    mode: TlsMode<'_>,
    control: Option<TimeoutControl>,
    connected: Instant,
) -> io::Result<End> {
    let name = peer.map_or_else(|| "stdin".to_owned(), |a| a.to_string());
    let loopback = peer.is_none_or(|a| a.ip().to_canonical().is_loopback());
    let deadline = connected + service.config.login_timeout;
    let idle = service.config.idle_timeout;
    let mut session = Session::new(service, name)
        .from_loopback(loopback)
        .connected_at(connected);
    if let Some(addr) = peer {
        session = session.with_client_ip(addr.ip().to_canonical());
    }
    match mode {
        TlsMode::Implicit(tls) => {
            let mut stream = tls.accept(Deadlined::new(stream, deadline, idle, control))?;
            let control = stream.get_mut().lift();
            let mut conn = connection(stream, control);
            let end = over(session.with_tls(Tls::Active), &mut conn)?;
            close_notify(conn);
            Ok(end)
        }
        TlsMode::Off => over(
            session.with_tls(Tls::Unavailable),
            &mut connection(stream, control),
        ),
        TlsMode::Starttls(tls) => {
            let mut session = session.with_tls(Tls::Offered);
            let mut conn = connection(stream, control);
            session.greet(&mut conn)?;
            let end = session.run(&mut conn)?;
            if end != End::StartTls {
                return Ok(end);
            }
            let control = conn.take_timeout_control();
            // into_inner sends the "+OK Begin TLS" and throws away whatever the client sent
            // after STLS: nothing said in plaintext may run inside TLS (CVE-2011-0411).
            let mut stream =
                tls.accept(Deadlined::new(conn.into_inner()?, deadline, idle, control))?;
            let control = stream.get_mut().lift();
            session.tls_started();
            let mut conn = connection(stream, control);
            let end = session.run(&mut conn)?;
            // The session (and its mailbox) goes first: the client may already be reconnecting.
            drop(session);
            close_notify(conn);
            Ok(end)
        }
    }
}

fn connection<S: Read + Write>(stream: S, control: Option<TimeoutControl>) -> Connection<S> {
    let conn = Connection::new(stream);
    match control {
        Some(control) => conn.with_timeout_control(control),
        None => conn,
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

/// The real client behind a PROXY protocol header on `stream`, which came from `peer`.
///
/// Only a peer in `trusted` may speak for someone else: any other peer is refused, since a
/// client that could send its own header could pose as any address. A header that names no
/// address (a proxy's health check) leaves `peer` as it is.
pub fn proxied_client<R: Read>(
    stream: &mut R,
    peer: SocketAddr,
    trusted: &[NetRange],
) -> io::Result<SocketAddr> {
    if !trusted.iter().any(|range| range.contains(peer.ip())) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{peer} may not send a PROXY header (not in --proxy-trusted)"),
        ));
    }
    Ok(proxy::read_header(stream)?.unwrap_or(peer))
}
