//! The standalone server: listeners, a bounded pool of session threads, and shutdown.
//!
//! Each listener has an acceptor thread that hands connections to a fixed set of workers. A
//! count of sessions in flight (queued or running) is kept exactly: a connection is handed over
//! only while that count is below the number of workers, so the hand-off channel never holds more
//! than a worker can take at once, and no client waits in a queue. Past that, the client is told
//! at once that the server is busy.

use crate::limits::{DEFAULT_MAX_PER_IP, DEFAULT_MAX_SESSIONS, LAST_REPLY_TIMEOUT, SESSION_STACK};
use crate::net_range::{client_key, NetRange};
use crate::observer::{Event, Refusal};
use crate::run::{Connecting, TlsMode};
use crate::session::Service;
use crate::tls::TlsConfig;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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
    stack_size: usize,
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
    max_sessions: usize,
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
        let addrs = lock(&self.shared.addrs).clone();
        for addr in addrs {
            let _ = TcpStream::connect_timeout(&reachable(addr), Duration::from_secs(1));
        }
        // Reading sessions see end of input and end without UPDATE; one in UPDATE finishes it.
        for stream in lock(&self.shared.sessions).values() {
            let _ = stream.shutdown(Shutdown::Read);
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
            stack_size: SESSION_STACK,
            shared: Arc::default(),
        }
    }

    /// Sets how many sessions may run at once (the number of worker threads). Default 64.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n.max(1);
        self
    }

    /// Sets the stack size of each session thread, in bytes. Default 256 KiB, enough for
    /// pop3d's own authenticators and stores; an [`Authenticator`](crate::Authenticator) or
    /// [`MailStore`](crate::MailStore) that needs more must raise it, or its session thread
    /// overflows its stack, which aborts the whole process.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes.max(64 * 1024);
        self
    }

    /// Sets how many sessions one client address may have at once (0: no limit; IPv6
    /// addresses count by their /64). Default 16. Loopback clients are exempt while
    /// [`Service::trust_loopback`] holds.
    pub fn max_per_ip(mut self, n: usize) -> Self {
        self.max_per_ip = if n == 0 { usize::MAX } else { n };
        self
    }

    /// Sets the peers that may send PROXY protocol headers on [`ListenerKind::proxy`]
    /// listeners. Default: none.
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
        lock(&self.shared.addrs).push(addr);
        self.listeners.push((listener, kind));
        Ok(())
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.shared.addrs).clone()
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
            max_sessions: self.max_sessions,
        });
        let mut workers = Vec::with_capacity(self.max_sessions);
        for i in 0..self.max_sessions {
            let rx = rx.clone();
            let context = context.clone();
            workers.push(
                thread::Builder::new()
                    .name(format!("pop3d-session-{i}"))
                    .stack_size(self.stack_size)
                    .spawn(move || worker(rx, &context))?,
            );
        }
        drop(rx);
        let mut acceptors = Vec::new();
        for (listener, kind) in self.listeners {
            let tx = tx.clone();
            let context = context.clone();
            acceptors.push(
                thread::Builder::new()
                    .name("pop3d-accept".into())
                    .spawn(move || accept_loop(&listener, kind, &tx, &context))?,
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
    context: &Context,
) {
    let shared = &context.shared;
    let max = context.max_sessions;
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
            context.service.notify(&Event::Refused {
                peer,
                reason: Refusal::Busy,
            });
            // On a TLS port the client expects a handshake, not a line it cannot read
            // (RFC 8314): just close.
            if !kind.implicit_tls {
                last_reply(&stream, BUSY_REPLY);
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
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.sessions).insert(id, clone);
        }
        if shared.stopping.load(Ordering::SeqCst) {
            // Handed over while shutdown was ending the registered sessions.
            let _ = stream.shutdown(Shutdown::Read);
        }
        // A bug in a session must not take a worker out of the pool.
        let served = catch_unwind(AssertUnwindSafe(|| {
            handle_connection(stream, peer, kind, context)
        }));
        if served.is_err() {
            log::error!("session panicked: peer={peer}");
        }
        lock(&shared.sessions).remove(&id);
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn handle_connection(stream: TcpStream, peer: SocketAddr, kind: ListenerKind, context: &Context) {
    let service = &context.service;
    if let Err(e) = stream.set_nodelay(true) {
        log::warn!("socket setup failed: peer={peer} ({e})");
        return;
    }
    let mut connecting = Connecting::new(service, &stream, Some(peer), Instant::now());
    if kind.proxy {
        if let Err(e) = connecting.read_proxy_header(&context.proxy_trusted) {
            log::warn!("refused: peer={peer} ({e})");
            return;
        }
    }
    let client = connecting.client().unwrap_or(peer);
    let trusted = service.config.trust_loopback && client.ip().to_canonical().is_loopback();
    let _slot = match trusted {
        true => None,
        false => match IpSlot::take(&context.shared, client.ip(), context.max_per_ip) {
            Some(slot) => Some(slot),
            None => {
                log::warn!("too many sessions: peer={client}");
                service.notify(&Event::Refused {
                    peer: client,
                    reason: Refusal::TooManyFromAddress,
                });
                if !kind.implicit_tls {
                    last_reply(connecting.stream(), TOO_MANY_FROM_IP);
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
    if let Err(e) = connecting.run(service, mode, Some(&context.shared.stopping)) {
        log::info!("connection error: peer={client} ({e})");
    }
}

/// Writes a client's one and only reply, waiting at most [`LAST_REPLY_TIMEOUT`].
fn last_reply(mut stream: &TcpStream, reply: &[u8]) {
    let _ = stream.set_write_timeout(Some(LAST_REPLY_TIMEOUT));
    let _ = stream.write_all(reply);
}

/// One of a client address's session slots; given back when dropped.
struct IpSlot<'a> {
    shared: &'a Shared,
    ip: IpAddr,
}

impl<'a> IpSlot<'a> {
    fn take(shared: &'a Shared, ip: IpAddr, max: usize) -> Option<Self> {
        let ip = client_key(ip);
        let mut counts = lock(&shared.per_ip);
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
        let mut counts = lock(&self.shared.per_ip);
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

/// Locks shared state. A thread that panicked while holding the lock (a session is run under
/// `catch_unwind`) left plain data behind, still usable: go on with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
