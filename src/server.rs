//! The standalone server: listeners, a bounded pool of session threads, and shutdown.
//!
//! Each listener has an acceptor thread that hands connections to a fixed set of workers. A
//! count of sessions in flight (queued or running) is kept exactly: a connection is handed over
//! only while that count is below the number of workers, so the hand-off channel never holds more
//! than a worker can take at once, and no client waits in a queue. Past that, the client is told
//! at once that the server is busy.

use crate::connection::TimeoutControl;
use crate::deadlined::Deadlined;
use crate::limits::{DEFAULT_MAX_PER_IP, DEFAULT_MAX_SESSIONS, LAST_REPLY_TIMEOUT, SESSION_STACK};
use crate::net_range::{client_key, NetRange};
use crate::serve::{proxied_client, run_session, TlsMode};
use crate::session::Service;
use crate::tls::TlsConfig;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The reply to a client that arrives while every worker is busy.
const BUSY_REPLY: &[u8] = b"-ERR [SYS/TEMP] Server busy, try again later\r\n";

/// The reply to a client address over its session limit.
const TOO_MANY_FROM_IP: &[u8] = b"-ERR [SYS/TEMP] Too many connections from your address\r\n";

/// A POP3 server on one or more TCP listeners.
///
/// ```no_run
/// use pop3d::{Server, Service};
/// use pop3d::store::memory::MemoryStore;
/// use std::sync::Arc;
/// # struct Anyone;
/// # impl pop3d::Authenticator for Anyone {
/// #     fn authenticate(&self, u: &str, _: &[u8]) -> Result<pop3d::Account, pop3d::AuthError> {
/// #         Ok(pop3d::Account::new(u))
/// #     }
/// # }
/// let service = Service::new(Arc::new(Anyone), Arc::new(MemoryStore::new()));
/// let mut server = Server::new(service).max_sessions(16);
/// server.listen("127.0.0.1:1110")?;
/// server.run()?; // until a ShutdownHandle says stop
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    service: Arc<Service>,
    listeners: Vec<(TcpListener, ListenerKind)>,
    tls: Option<Arc<TlsConfig>>,
    proxy_trusted: Vec<NetRange>,
    max_sessions: usize,
    max_per_ip: usize,
    shared: Arc<Shared>,
}

/// How the connections of a listener begin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerKind {
    /// TLS from the first byte (port 995, RFC 8314); needs [`Server::with_tls`].
    pub implicit_tls: bool,
    /// A PROXY protocol header (v1 or v2) first, from a peer in [`Server::proxy_trusted`].
    pub proxy: bool,
}

/// What every worker needs.
struct Context {
    service: Arc<Service>,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsConfig>>,
    proxy_trusted: Vec<NetRange>,
    max_per_ip: usize,
}

/// State shared by the acceptors, the workers and shutdown handles.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    addrs: Mutex<Vec<SocketAddr>>,
    /// Open sessions' sockets, so shutdown can end them.
    sessions: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
    /// Sessions per client address (the real one, behind a proxy).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Connections handed to the workers and not yet finished.
    in_flight: AtomicUsize,
}

/// Stops a running [`Server`]: no new connections, open sessions end without UPDATE.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Asks the server to stop; [`Server::run`] returns once every session has ended.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake each acceptor blocked in accept() by connecting to it.
        let addrs = self
            .shared
            .addrs
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        for addr in addrs {
            let _ = TcpStream::connect_timeout(&reachable(addr), Duration::from_secs(1));
        }
        // Reading sessions see end of input and end without UPDATE; one in UPDATE finishes it.
        if let Ok(sessions) = self.shared.sessions.lock() {
            for stream in sessions.values() {
                let _ = stream.shutdown(Shutdown::Read);
            }
        }
    }
}

impl Server {
    /// A server for `service` with no listeners yet.
    pub fn new(service: Service) -> Self {
        Server {
            service: Arc::new(service),
            listeners: Vec::new(),
            tls: None,
            proxy_trusted: Vec::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_per_ip: DEFAULT_MAX_PER_IP,
            shared: Arc::default(),
        }
    }

    /// Sets how many sessions may run at once (the number of worker threads).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n.max(1);
        self
    }

    /// Sets how many sessions one client address may have at once (0: no limit). Loopback
    /// clients are exempt while [`SessionConfig::trust_loopback`](crate::SessionConfig) holds.
    pub fn max_per_ip(mut self, n: usize) -> Self {
        self.max_per_ip = if n == 0 { usize::MAX } else { n };
        self
    }

    /// Sets the peers that may send PROXY protocol headers on [`ListenerKind::proxy`] listeners.
    pub fn proxy_trusted(mut self, ranges: Vec<NetRange>) -> Self {
        self.proxy_trusted = ranges;
        self
    }

    /// Sets the certificate and key: plain listeners then offer STLS, and
    /// [`listen_tls`](Self::listen_tls) becomes possible.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(Arc::new(tls));
        self
    }

    /// Binds a listener to `addr` and returns its address (useful with port 0).
    pub fn listen(&mut self, addr: impl std::net::ToSocketAddrs) -> io::Result<SocketAddr> {
        self.listen_as(addr, ListenerKind::default())
    }

    /// Binds an implicit-TLS listener (port 995, RFC 8314); needs [`with_tls`](Self::with_tls).
    pub fn listen_tls(&mut self, addr: impl std::net::ToSocketAddrs) -> io::Result<SocketAddr> {
        let kind = ListenerKind {
            implicit_tls: true,
            proxy: false,
        };
        self.listen_as(addr, kind)
    }

    /// Binds a listener of any [`ListenerKind`].
    pub fn listen_as(
        &mut self,
        addr: impl std::net::ToSocketAddrs,
        kind: ListenerKind,
    ) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        self.add_listener(listener, kind)?;
        Ok(local)
    }

    /// Serves on a listener bound elsewhere (e.g. before dropping privileges).
    pub fn add_listener(&mut self, listener: TcpListener, kind: ListenerKind) -> io::Result<()> {
        if kind.implicit_tls && self.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an implicit-TLS listener needs a certificate and key (with_tls)",
            ));
        }
        let addr = listener.local_addr()?;
        self.shared.addrs.lock().map_err(|_| poisoned())?.push(addr);
        self.listeners.push((listener, kind));
        Ok(())
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared
            .addrs
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// A handle that stops the server, from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until [`ShutdownHandle::shutdown`] is called and every session has ended.
    pub fn run(self) -> io::Result<()> {
        if self.listeners.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listener"));
        }
        let (tx, rx) = bounded::<Handoff>(self.max_sessions);
        let context = Arc::new(Context {
            service: self.service.clone(),
            shared: self.shared.clone(),
            tls: self.tls.clone(),
            proxy_trusted: self.proxy_trusted.clone(),
            max_per_ip: self.max_per_ip,
        });
        let mut workers = Vec::with_capacity(self.max_sessions);
        for i in 0..self.max_sessions {
            let rx = rx.clone();
            let context = context.clone();
            workers.push(
                thread::Builder::new()
                    .name(format!("pop3d-session-{i}"))
                    .stack_size(SESSION_STACK)
                    .spawn(move || worker(rx, &context))?,
            );
        }
        drop(rx);
        let mut acceptors = Vec::new();
        for (listener, kind) in self.listeners {
            let tx = tx.clone();
            let shared = self.shared.clone();
            let max = self.max_sessions;
            acceptors.push(
                thread::Builder::new()
                    .name("pop3d-accept".into())
                    .spawn(move || accept_loop(&listener, kind, &tx, &shared, max))?,
            );
        }
        drop(tx);
        for a in acceptors {
            let _ = a.join();
        }
        // The acceptors' senders are gone: idle workers wake up and exit.
        for w in workers {
            let _ = w.join();
        }
        Ok(())
    }
}

fn accept_loop(
    listener: &TcpListener,
    kind: ListenerKind,
    tx: &Sender<Handoff>,
    shared: &Shared,
    max: usize,
) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: pause, then go on.
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if shared.in_flight.fetch_add(1, Ordering::SeqCst) >= max {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            log::warn!("busy: refused peer={peer}");
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(LAST_REPLY_TIMEOUT));
            // On a TLS port the client expects a handshake, not a line it cannot read
            // (RFC 8314): just close.
            if !kind.implicit_tls {
                let _ = stream.write_all(BUSY_REPLY);
            }
            continue;
        }
        // Never blocks: the channel holds `max` and at most `max` connections are in flight.
        if tx.send((stream, peer, kind)).is_err() {
            return;
        }
    }
}

/// A connection on its way to a worker, with the kind of listener it came in on.
type Handoff = (TcpStream, SocketAddr, ListenerKind);

fn worker(rx: Receiver<Handoff>, context: &Context) {
    let shared = &context.shared;
    for (stream, peer, kind) in rx.iter() {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let (Ok(mut sessions), Ok(clone)) = (shared.sessions.lock(), stream.try_clone()) {
            sessions.insert(id, clone);
        }
        if shared.stopping.load(Ordering::SeqCst) {
            // Handed over while shutdown was ending the registered sessions.
            let _ = stream.shutdown(Shutdown::Read);
        }
        // A bug in a session must not take a worker out of the pool.
        let served = catch_unwind(AssertUnwindSafe(|| serve(stream, peer, kind, context)));
        if served.is_err() {
            log::error!("session panicked: peer={peer}");
        }
        if let Ok(mut sessions) = shared.sessions.lock() {
            sessions.remove(&id);
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn serve(stream: TcpStream, peer: SocketAddr, kind: ListenerKind, context: &Context) {
    let connected = Instant::now();
    let config = &context.service.config;
    // Until login, reads wait at most the login timeout: a PROXY header or a TLS handshake
    // that never comes cannot hold the worker longer.
    if let Err(e) = stream
        .set_read_timeout(Some(config.login_timeout.min(config.idle_timeout)))
        .and_then(|()| stream.set_write_timeout(Some(config.idle_timeout)))
        .and_then(|()| stream.set_nodelay(true))
    {
        log::warn!("socket setup failed: peer={peer} ({e})");
        return;
    }
    // The socket's timeouts, changed through a second handle on the same socket (which also
    // serves under TLS). Reads and writes share them: before login both are bounded by what is
    // left of the login deadline.
    let mut control: Option<TimeoutControl> = stream.try_clone().ok().map(|socket| {
        Box::new(move |timeout| {
            socket.set_read_timeout(Some(timeout))?;
            socket.set_write_timeout(Some(timeout))
        }) as TimeoutControl
    });
    let client = if kind.proxy {
        // A header trickled in a byte at a time must still be done by the login deadline.
        let deadline = connected + config.login_timeout;
        let mut guarded = Deadlined::new(&stream, deadline, config.idle_timeout, control);
        let header = proxied_client(&mut guarded, peer, &context.proxy_trusted);
        control = guarded.into_parts().1;
        match header {
            Ok(client) => {
                log::info!("connect: peer={client} via={peer}");
                client
            }
            Err(e) => {
                log::warn!("refused: peer={peer} ({e})");
                return;
            }
        }
    } else {
        log::info!("connect: peer={peer}");
        peer
    };
    let trusted = config.trust_loopback && client.ip().to_canonical().is_loopback();
    let _slot = match trusted {
        true => None,
        false => match IpSlot::take(&context.shared, client.ip(), context.max_per_ip) {
            Some(slot) => Some(slot),
            None => {
                log::warn!("too many sessions: peer={client}");
                if !kind.implicit_tls {
                    let _ = (&stream).write_all(TOO_MANY_FROM_IP);
                }
                return;
            }
        },
    };
    let mode = match (&context.tls, kind.implicit_tls) {
        (Some(tls), true) => TlsMode::Implicit(tls),
        (Some(tls), false) => TlsMode::Starttls(tls),
        (None, _) => TlsMode::Off,
    };
    if let Err(e) = run_session(
        &context.service,
        &stream,
        Some(client),
        mode,
        control,
        connected,
    ) {
        log::info!("connection error: peer={client} ({e})");
    }
}

/// One of a client address's session slots; given back when dropped.
struct IpSlot<'a> {
    shared: &'a Shared,
    ip: IpAddr,
}

impl<'a> IpSlot<'a> {
    fn take(shared: &'a Shared, ip: IpAddr, max: usize) -> Option<Self> {
        let ip = client_key(ip);
        let mut counts = shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot { shared, ip })
    }
}

impl Drop for IpSlot<'_> {
    fn drop(&mut self) {
        let mut counts = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// An address that reaches a listener bound to `addr` (the loopback for a wildcard).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

fn poisoned() -> io::Error {
    io::Error::other("server state lock poisoned")
}
