//! The standalone server: listeners, a bounded pool of session threads, and shutdown.
//!
//! Each listener has an acceptor thread that hands connections to a fixed set of workers. A
//! count of sessions in flight (queued or running) is kept exactly: a connection is handed over
//! only while that count is below the number of workers, so the hand-off channel never holds more
//! than a worker can take at once, and no client waits in a queue. Past that, the client is told
//! at once that the server is busy.

use crate::limits::{BUSY_REPLY_TIMEOUT, DEFAULT_MAX_SESSIONS, SESSION_STACK};
use crate::serve::{run_session, TlsMode};
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
use std::time::Duration;

/// The reply to a client that arrives while every worker is busy.
const BUSY_REPLY: &[u8] = b"-ERR [SYS/TEMP] Server busy, try again later\r\n";

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
    /// Each listener, and whether it speaks TLS from the first byte.
    listeners: Vec<(TcpListener, bool)>,
    tls: Option<Arc<TlsConfig>>,
    max_sessions: usize,
    shared: Arc<Shared>,
}

/// State shared by the acceptors, the workers and shutdown handles.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    addrs: Mutex<Vec<SocketAddr>>,
    /// Open sessions' sockets, so shutdown can end them.
    sessions: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
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
            max_sessions: DEFAULT_MAX_SESSIONS,
            shared: Arc::default(),
        }
    }

    /// Sets how many sessions may run at once (the number of worker threads).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n.max(1);
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
        self.bind(addr, false)
    }

    /// Binds an implicit-TLS listener (port 995, RFC 8314); needs [`with_tls`](Self::with_tls).
    pub fn listen_tls(&mut self, addr: impl std::net::ToSocketAddrs) -> io::Result<SocketAddr> {
        if self.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an implicit-TLS listener needs a certificate and key (with_tls)",
            ));
        }
        self.bind(addr, true)
    }

    fn bind(
        &mut self,
        addr: impl std::net::ToSocketAddrs,
        implicit_tls: bool,
    ) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        self.add_listener(listener, implicit_tls)?;
        Ok(local)
    }

    /// Serves on a listener bound elsewhere (e.g. before dropping privileges); `implicit_tls`
    /// as for [`listen_tls`](Self::listen_tls).
    pub fn add_listener(&mut self, listener: TcpListener, implicit_tls: bool) -> io::Result<()> {
        let addr = listener.local_addr()?;
        self.shared.addrs.lock().map_err(|_| poisoned())?.push(addr);
        self.listeners.push((listener, implicit_tls));
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
        let mut workers = Vec::with_capacity(self.max_sessions);
        for i in 0..self.max_sessions {
            let rx = rx.clone();
            let service = self.service.clone();
            let shared = self.shared.clone();
            let tls = self.tls.clone();
            workers.push(
                thread::Builder::new()
                    .name(format!("pop3d-session-{i}"))
                    .stack_size(SESSION_STACK)
                    .spawn(move || worker(rx, &service, &shared, tls.as_deref()))?,
            );
        }
        drop(rx);
        let mut acceptors = Vec::new();
        for (listener, implicit_tls) in self.listeners {
            let tx = tx.clone();
            let shared = self.shared.clone();
            let max = self.max_sessions;
            acceptors.push(
                thread::Builder::new()
                    .name("pop3d-accept".into())
                    .spawn(move || accept_loop(&listener, implicit_tls, &tx, &shared, max))?,
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
    implicit_tls: bool,
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
            let _ = stream.set_write_timeout(Some(BUSY_REPLY_TIMEOUT));
            let _ = stream.write_all(BUSY_REPLY);
            continue;
        }
        // Never blocks: the channel holds `max` and at most `max` connections are in flight.
        if tx.send((stream, peer, implicit_tls)).is_err() {
            return;
        }
    }
}

/// A connection on its way to a worker, and whether it came in on an implicit-TLS listener.
type Handoff = (TcpStream, SocketAddr, bool);

fn worker(rx: Receiver<Handoff>, service: &Service, shared: &Shared, tls: Option<&TlsConfig>) {
    for (stream, peer, implicit_tls) in rx.iter() {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let (Ok(mut sessions), Ok(clone)) = (shared.sessions.lock(), stream.try_clone()) {
            sessions.insert(id, clone);
        }
        if shared.stopping.load(Ordering::SeqCst) {
            // Handed over while shutdown was ending the registered sessions.
            let _ = stream.shutdown(Shutdown::Read);
        }
        // A bug in a session must not take a worker out of the pool.
        let mode = match (tls, implicit_tls) {
            (Some(tls), true) => TlsMode::Implicit(tls),
            (Some(tls), false) => TlsMode::Starttls(tls),
            (None, _) => TlsMode::Off,
        };
        let served = catch_unwind(AssertUnwindSafe(|| serve(stream, peer, service, mode)));
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

fn serve(stream: TcpStream, peer: SocketAddr, service: &Service, mode: TlsMode<'_>) {
    log::info!("connect: peer={peer}");
    let timeout = Some(service.config.idle_timeout);
    if let Err(e) = stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .and_then(|()| stream.set_nodelay(true))
    {
        log::warn!("socket setup failed: peer={peer} ({e})");
        return;
    }
    let loopback = peer.ip().to_canonical().is_loopback();
    if let Err(e) = run_session(service, &stream, &peer.to_string(), loopback, mode) {
        log::info!("connection error: peer={peer} ({e})");
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
