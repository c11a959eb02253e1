//! The open connections of a server: so that shutdown can end them, and a full pool can make
//! room by cutting the connection that has waited longest before login.

use super::{lock, Shared};
use crate::limits::{EVICTION_COOLDOWN, EVICTION_TABLE_MAX};
use crate::net_range::client_key;
use crate::session::{End, Supervisor};
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The last reply to a connection cut to make room.
const EVICTED: &str = "[SYS/TEMP] Server busy, try again later";
/// The last reply to a connection cut by a shutdown.
const SHUTTING_DOWN: &str = "[SYS/TEMP] Server shutting down";

/// One connection, from accept to its end, as the server watches it.
pub(super) struct Tracker {
    id: u64,
    socket: TcpStream,
    /// The client's address, once a PROXY header has named it (else the socket's peer).
    client: OnceLock<IpAddr>,
    /// When the connection began to wait for the client without having logged in, in
    /// nanoseconds since the registry began (shifted by one so that 0 means "not waiting").
    waiting_since: AtomicU64,
    /// The client has sent a whole command line: it is talking, not just holding a place.
    spoke: AtomicBool,
    logged_in: AtomicBool,
    evicted: AtomicBool,
    /// The session's place in the pool was given up (it is finishing, or was given to another
    /// connection): [`Tracker::release`] does it once.
    released: AtomicBool,
    shared: Arc<Shared>,
}

/// Every open connection.
pub(super) struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
    /// Addresses whose connection was cut to make room, and until when they may not cut one.
    cooling: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::default(),
            cooling: Mutex::default(),
        }
    }
}

impl Registry {
    /// Registers a connection just accepted; it counts as waiting from now.
    pub(super) fn add(&self, socket: TcpStream, shared: &Arc<Shared>) -> Arc<Tracker> {
        let tracker = Arc::new(Tracker {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            socket,
            client: OnceLock::new(),
            waiting_since: AtomicU64::new(self.now()),
            spoke: AtomicBool::new(false),
            logged_in: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            released: AtomicBool::new(false),
            shared: shared.clone(),
        });
        lock(&self.open).insert(tracker.id, tracker.clone());
        tracker
    }

    /// Forgets a connection that has ended.
    pub(super) fn remove(&self, tracker: &Tracker) {
        lock(&self.open).remove(&tracker.id);
    }

    /// Cuts the connection that has waited longest for its client before login, and gives its
    /// place in the pool to a newcomer; false if every connection is logged in or busy.
    ///
    /// A client that has not sent a single command line goes before one that has: a real
    /// client speaks within a round trip of the greeting, and a flood of connections that
    /// say nothing must not cut a real client in the middle of its login.
    ///
    /// A newcomer from an address whose own connection was cut lately (`from`; `None` when
    /// the address is not known yet, behind a proxy) cuts nobody: see [`EVICTION_COOLDOWN`].
    pub(super) fn evict_longest_waiting(&self, from: Option<IpAddr>) -> bool {
        let now = Instant::now();
        if let Some(ip) = from {
            let cooling = lock(&self.cooling);
            if cooling
                .get(&client_key(ip))
                .is_some_and(|until| *until > now)
            {
                return false;
            }
        }
        let open = lock(&self.open);
        let victim = open
            .values()
            .filter(|t| {
                !t.logged_in.load(Ordering::SeqCst)
                    && !t.evicted.load(Ordering::SeqCst)
                    && !t.released.load(Ordering::SeqCst)
            })
            .filter_map(|t| match t.waiting_since.load(Ordering::SeqCst) {
                0 => None,
                since => Some(((t.spoke.load(Ordering::SeqCst), since), t)),
            })
            .min_by_key(|(key, _)| *key);
        let Some((_, victim)) = victim else {
            return false;
        };
        // Its place passes to the newcomer, unless it has just given it up itself (it is
        // finishing): then there is room already, and nobody is cut.
        if victim.released.swap(true, Ordering::SeqCst) {
            return false;
        }
        victim.evicted.store(true, Ordering::SeqCst);
        let peer = victim.socket.peer_addr().ok();
        log::info!(
            "evicted: peer={} (waited longest before login, to make room)",
            peer.map_or_else(|| "-".into(), |a| a.to_string())
        );
        if let Some(ip) = victim.client.get().copied().or(peer.map(|a| a.ip())) {
            let mut cooling = lock(&self.cooling);
            if cooling.len() >= EVICTION_TABLE_MAX {
                cooling.retain(|_, until| *until > now);
            }
            if cooling.len() < EVICTION_TABLE_MAX {
                cooling.insert(client_key(ip), now + EVICTION_COOLDOWN);
            }
        }
        // The session sees the end of input, and answers the client before it closes.
        let _ = victim.socket.shutdown(Shutdown::Read);
        true
    }

    /// Ends every connection's input (for shutdown): each session ends without UPDATE, or
    /// finishes the UPDATE it is in.
    pub(super) fn end_all(&self) {
        for tracker in lock(&self.open).values() {
            let _ = tracker.socket.shutdown(Shutdown::Read);
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }
}

impl Tracker {
    /// The socket.
    pub(super) fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Records the client's own address, which a PROXY header named.
    pub(super) fn set_client(&self, ip: IpAddr) {
        let _ = self.client.set(ip);
    }

    /// Gives up the connection's place in the pool, once.
    pub(super) fn release(&self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Supervisor for Tracker {
    fn cut(&self) -> Option<(&'static str, End)> {
        if self.evicted.load(Ordering::SeqCst) {
            Some((EVICTED, End::Evicted))
        } else if self.shared.stopping.load(Ordering::SeqCst) {
            Some((SHUTTING_DOWN, End::Shutdown))
        } else {
            None
        }
    }

    fn waiting(&self, waiting: bool) {
        if waiting {
            let now = self.shared.registry.now();
            // Keep the earlier start: a connection still waits since it connected until its
            // first line comes.
            let _ = self
                .waiting_since
                .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        } else {
            self.waiting_since.store(0, Ordering::SeqCst);
            self.spoke.store(true, Ordering::SeqCst);
        }
    }

    fn logged_in(&self) {
        self.logged_in.store(true, Ordering::SeqCst);
        self.waiting_since.store(0, Ordering::SeqCst);
    }

    fn finishing(&self) {
        self.release();
    }
}
