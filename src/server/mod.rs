//! The standalone server: listeners, a bounded pool of session threads, and shutdown.
//!
//! Each listener has an acceptor thread. A count of sessions in flight is kept exactly: a
//! connection is handed to a thread only while that count is below the limit. When it is not,
//! the connection that has waited longest for its client before login is cut (told the server
//! is busy) and its place goes to the newcomer, as Dovecot's login processes do; only when
//! every session is logged in or busy is the newcomer told at once that the server is busy.
//! So clients that connect and say nothing cannot keep others out. No client waits in a queue.

mod accept;
mod certificate;
mod per_ip;
mod pool;
mod registry;

use crate::limits::{DEFAULT_MAX_PER_IP, DEFAULT_MAX_SESSIONS, LISTEN_BACKLOG, SESSION_STACK};
use crate::net_range::NetRange;
use crate::session::Service;
use crate::tls::TlsConfig;
use certificate::Current;
pub use certificate::TlsHandle;
use pool::Pool;
use registry::Registry;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

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
    tls: Current,
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
    tls: Current,
    proxy_trusted: Vec<NetRange>,
    max_per_ip: usize,
    max_sessions: usize,
    pool: Pool,
}

/// State shared by the acceptors, the session threads and shutdown handles.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    addrs: Mutex<Vec<SocketAddr>>,
    /// Open connections.
    registry: Registry,
    /// Sessions per client address (the real one, behind a proxy).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Connections holding a place among the `max_sessions`.
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
        self.shared.registry.end_all();
    }
}

impl Server {
    /// How many sessions may run at once unless [`max_sessions`](Self::max_sessions) says
    /// otherwise.
    pub const DEFAULT_MAX_SESSIONS: usize = DEFAULT_MAX_SESSIONS;

    /// A server for `service` with no listeners yet.
    pub fn new(service: Service) -> Self {
        Server {
            service: Arc::new(service),
            listeners: Vec::new(),
            tls: Current::default(),
            proxy_trusted: Vec::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_per_ip: DEFAULT_MAX_PER_IP,
            stack_size: SESSION_STACK,
            shared: Arc::default(),
        }
    }

    /// Sets how many sessions may run at once. Default 1,024 (an idle session costs about
    /// 17 KiB and two file descriptors). A thread runs each; threads start as
    /// connections come and end after a minute idle. A connection that takes the place of one
    /// cut for waiting too long may briefly run beside it, so up to twice this many threads
    /// can exist for a moment.
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
    /// addresses count by their /64). Default 16. Loopback clients are exempt only with
    /// [`Service::exempt_loopback`].
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
    pub fn with_tls(self, tls: TlsConfig) -> Self {
        self.tls.set(tls);
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
        // The standard library listens with a backlog of 128: a burst of connections beyond
        // that waits for SYN retries. Listening again only raises the backlog.
        // SAFETY: a valid listening socket's descriptor, and a plain integer.
        unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
        let local = listener.local_addr()?;
        self.add_listener(listener, kind)?;
        Ok(local)
    }

    /// Serves on a listener bound elsewhere (e.g. before dropping privileges).
    pub fn add_listener(&mut self, listener: TcpListener, kind: ListenerKind) -> io::Result<()> {
        if kind.implicit_tls && self.tls.get().is_none() {
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

    /// A handle that replaces the certificate and key while the server runs.
    pub fn tls_handle(&self) -> TlsHandle {
        TlsHandle {
            current: self.tls.clone(),
        }
    }

    /// Serves until [`ShutdownHandle::shutdown`] is called and every session has ended.
    pub fn run(self) -> io::Result<()> {
        if self.listeners.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listener"));
        }
        let context = Arc::new(Context {
            service: self.service.clone(),
            shared: self.shared.clone(),
            tls: self.tls.clone(),
            proxy_trusted: self.proxy_trusted.clone(),
            max_per_ip: self.max_per_ip,
            max_sessions: self.max_sessions,
            pool: Pool::new(2 * self.max_sessions, self.stack_size),
        });
        let mut acceptors = Vec::new();
        for (listener, kind) in self.listeners {
            let context = context.clone();
            acceptors.push(
                thread::Builder::new()
                    .name("pop3d-accept".into())
                    .spawn(move || accept::accept_loop(&listener, kind, &context))?,
            );
        }
        for a in acceptors {
            let _ = a.join();
        }
        // The acceptors are gone: let the sessions end, then the threads.
        context.pool.close();
        Ok(())
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
