//! One session over one stream, from the first byte to the end: the PROXY header, TLS (STLS
//! or implicit), the session itself. The standalone server, inetd mode and host programs all
//! come here, so every mode has the same limits and the same TLS rules.

use crate::connection::Connection;
use crate::net_range::NetRange;
use crate::protocol::proxy;
use crate::session::{End, Service, Session, Supervisor, TlsState};
use crate::stream::Stream;
use crate::timeouts::{HasTimeouts, Timed};
use crate::tls::TlsConfig;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// What TLS does on a connection.
#[derive(Clone, Copy)]
pub enum TlsMode<'a> {
    /// No TLS: STLS is not offered.
    Off,
    /// Plaintext first, STLS offered (RFC 2595); passwords wait for it.
    Starttls(&'a TlsConfig),
    /// TLS from the first byte (RFC 8314, port 995).
    Implicit(&'a TlsConfig),
}

/// Runs a whole session on `stream` for the client at `peer` (`None`: a pipe or another
/// stream without an address, which counts as local for the plaintext rule), and returns how
/// it ended. The login timeout counts from the call, TLS handshake included.
///
/// This is what [`Server`](crate::Server) runs on each connection it accepts, and what inetd
/// mode runs on stdin and stdout; a host program can run it over any [`Stream`] of its own.
pub fn run_session<S: Stream>(
    service: &Service,
    stream: S,
    peer: Option<SocketAddr>,
    tls: TlsMode<'_>,
) -> io::Result<End> {
    Connecting::new(service, stream, peer, Instant::now()).run(service, tls, None)
}

/// A connection between accept and the session: the login deadline already runs.
pub(crate) struct Connecting<S> {
    stream: Timed<S>,
    /// The client: the peer of the stream, or the one a PROXY header named.
    client: Option<SocketAddr>,
    /// The proxy the client came through, for the log.
    via: Option<SocketAddr>,
    /// The client is known to be on this host: a loopback peer, or one a PROXY header named.
    loopback: bool,
    connected: Instant,
}

impl<S: Stream> Connecting<S> {
    /// `stream` from `peer`, which connected at `connected`: the login deadline counts from
    /// then.
    pub(crate) fn new(
        service: &Service,
        stream: S,
        peer: Option<SocketAddr>,
        connected: Instant,
    ) -> Self {
        let config = &service.config;
        Connecting {
            stream: Timed::new(
                stream,
                config.idle_timeout,
                Some(connected + config.login_timeout),
            ),
            client: peer,
            via: None,
            loopback: peer.is_some_and(|a| a.ip().to_canonical().is_loopback()),
            connected,
        }
    }

    /// The client's address, if it has one.
    pub(crate) fn client(&self) -> Option<SocketAddr> {
        self.client
    }

    /// True if the client is known to be on this host (a pipe, or a PROXY header that names
    /// no address, is not).
    pub(crate) fn client_is_local(&self) -> bool {
        self.loopback
    }

    /// The stream underneath.
    pub(crate) fn stream(&self) -> &S {
        self.stream.get_ref()
    }

    /// Reads a PROXY protocol header (v1 or v2) and takes the client it names.
    ///
    /// Only a peer in `trusted` may speak for someone else: any other is refused, since a
    /// client that could send its own header could pose as any address. A header that names
    /// no address (a proxy's health check) leaves the client as it is. The header must arrive
    /// by the login deadline, however slowly it trickles in.
    pub(crate) fn read_proxy_header(&mut self, trusted: &[NetRange]) -> io::Result<SocketAddr> {
        let peer = self.client.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a PROXY header needs a socket with a peer address",
            )
        })?;
        if !trusted.iter().any(|range| range.contains(peer.ip())) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{peer} may not send a PROXY header (not in --proxy-trusted)"),
            ));
        }
        let named = proxy::read_header(&mut self.stream)?;
        // A header that names nobody (LOCAL, UNKNOWN) leaves the client unknown: it counts as
        // the proxy's address for limits, but not as a client on this host.
        self.loopback = named.is_some_and(|a| a.ip().to_canonical().is_loopback());
        let client = named.unwrap_or(peer);
        self.client = Some(client);
        self.via = Some(peer);
        Ok(client)
    }

    /// Runs the session to its end, under `supervisor` when a server runs it.
    pub(crate) fn run(
        self,
        service: &Service,
        tls: TlsMode<'_>,
        supervisor: Option<&dyn Supervisor>,
    ) -> io::Result<End> {
        let peer = self.client;
        let name = peer.map_or_else(|| "stdin".to_owned(), |a| a.to_string());
        match self.via {
            Some(via) => log::info!("connect: peer={name} via={via}"),
            None => log::info!("connect: peer={name}"),
        }
        let mut session = Session::new(service, name)
            .loopback(self.loopback)
            .connected_at(self.connected)
            .supervised_by(supervisor);
        if let Some(addr) = peer {
            session = session.with_client_ip(addr.ip().to_canonical());
        }
        match tls {
            TlsMode::Off => {
                let mut conn = Connection::new(self.stream);
                session
                    .with_tls(TlsState::Unavailable)
                    .greet_and_run(&mut conn)
            }
            TlsMode::Implicit(config) => {
                let mut conn = Connection::new(config.accept(self.stream)?);
                let end = session.with_tls(TlsState::Active).greet_and_run(&mut conn);
                close_notify(conn);
                end
            }
            TlsMode::Starttls(config) => {
                let mut session = session.with_tls(TlsState::Offered);
                let mut conn = Connection::new(self.stream);
                let end = session.greet_and_run(&mut conn)?;
                if end != End::StartTls {
                    return Ok(end);
                }
                // into_inner sends the "+OK Begin TLS" and throws away whatever the client
                // sent after STLS: nothing said in plaintext may run inside TLS (CVE-2011-0411).
                // The handshake is a wait for the client like any other before login.
                if let Some(s) = supervisor {
                    s.waiting(true);
                }
                let tls = config.accept(conn.into_inner()?);
                if let Some(s) = supervisor {
                    s.waiting(false);
                }
                let mut conn = Connection::new(tls?);
                session.tls_started();
                let end = session.run(&mut conn);
                // The session (and its mailbox) goes first: the client may be reconnecting.
                drop(session);
                close_notify(conn);
                end
            }
        }
    }
}

/// Ends TLS with a close_notify alert (RFC 5246 §7.2.1, RFC 8446 §6.1), so the client can tell
/// the end of the session from a truncation; OpenSSL 3 clients report a bare TCP close as
/// "unexpected eof while reading". Best effort: the session is over whatever happens here.
fn close_notify<S: Read + Write + HasTimeouts>(conn: Connection<crate::tls::TlsStream<S>>) {
    if let Ok(mut stream) = conn.into_inner() {
        stream.timeouts().for_last_reply();
        let _ = stream.shutdown();
    }
}
