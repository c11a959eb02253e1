//! Accepting connections and running each one's session on the pool.

use super::per_ip::IpSlot;
use super::registry::Tracker;
use super::{Context, ListenerKind};
use crate::limits::LAST_REPLY_TIMEOUT;
use crate::observer::{Event, Refusal};
use crate::run::{Connecting, TlsMode};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The reply to a client that arrives while every session is logged in or busy.
const BUSY_REPLY: &[u8] = b"-ERR [SYS/TEMP] Server busy, try again later\r\n";

/// The reply to a client address over its session limit.
const TOO_MANY_FROM_IP: &[u8] = b"-ERR [SYS/TEMP] Too many connections from your address\r\n";

pub(super) fn accept_loop(listener: &TcpListener, kind: ListenerKind, context: &Arc<Context>) {
    let shared = &context.shared;
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
        if !take_place(context, kind, peer) {
            refuse_busy(&stream, peer, kind, context);
            continue;
        }
        // The tracker owns the socket (one descriptor per connection, none duplicated): it
        // closes when the session's thread and the registry have both let go of it.
        let tracker = shared.registry.add(stream, shared);
        let job_tracker = tracker.clone();
        let job_context = context.clone();
        let job = Box::new(move || {
            // Forgotten and its place given back however the session ends, a panic included.
            let _done = Done {
                context: &job_context,
                tracker: &job_tracker,
            };
            handle_connection(job_tracker.socket(), peer, kind, &job_context, &job_tracker);
        });
        if let Err(e) = context.pool.run(job) {
            log::warn!("cannot start a session: peer={peer} ({e})");
            shared.registry.remove(&tracker);
            tracker.release();
            refuse_busy(tracker.socket(), peer, kind, context);
        }
    }
}

/// Takes a finished connection out of the registry and gives its place back, when dropped.
struct Done<'a> {
    context: &'a Context,
    tracker: &'a Tracker,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.context.shared.registry.remove(self.tracker);
        self.tracker.release();
    }
}

/// Takes one of the `max_sessions` places for a newcomer: a free one, or when there is none
/// the place of the connection that has waited longest before login, which is cut. False if
/// neither can be had.
fn take_place(context: &Context, kind: ListenerKind, peer: SocketAddr) -> bool {
    let shared = &context.shared;
    // Twice at most: a place may come free while the registry is searched.
    for _ in 0..2 {
        if shared.in_flight.fetch_add(1, Ordering::SeqCst) < context.max_sessions {
            return true;
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let from = (!kind.proxy).then_some(peer.ip());
        if shared.registry.evict_longest_waiting(from) {
            return true;
        }
    }
    false
}

fn refuse_busy(stream: &TcpStream, peer: SocketAddr, kind: ListenerKind, context: &Context) {
    log::warn!("busy: refused peer={peer}");
    context.service.notify(&Event::Refused {
        peer,
        reason: Refusal::Busy,
    });
    // On a TLS port the client expects a handshake, not a line it cannot read (RFC 8314):
    // just close.
    if !kind.implicit_tls {
        last_reply(stream, BUSY_REPLY);
    }
}

fn handle_connection(
    stream: &TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    context: &Context,
    tracker: &Tracker,
) {
    let service = &context.service;
    if context.shared.stopping.load(Ordering::SeqCst) {
        // Accepted while shutdown was ending the open connections.
        return;
    }
    if let Err(e) = stream.set_nodelay(true) {
        log::warn!("socket setup failed: peer={peer} ({e})");
        return;
    }
    let mut connecting = Connecting::new(service, stream, Some(peer), Instant::now());
    if kind.proxy {
        if let Err(e) = connecting.read_proxy_header(&context.proxy_trusted) {
            log::warn!("refused: peer={peer} ({e})");
            return;
        }
    }
    let client = connecting.client().unwrap_or(peer);
    tracker.set_client(client.ip());
    let exempt = service.config.exempt_loopback && connecting.client_is_local();
    let _slot = match exempt {
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
    let tls = context.tls.get();
    let mode = match (&tls, kind.implicit_tls) {
        (Some(tls), true) => TlsMode::Implicit(tls),
        (Some(tls), false) => TlsMode::Starttls(tls),
        (None, _) => TlsMode::Off,
    };
    if let Err(e) = connecting.run(service, mode, Some(tracker)) {
        log::info!("connection error: peer={client} ({e})");
    }
}

/// Writes a client's one and only reply, waiting at most [`LAST_REPLY_TIMEOUT`].
fn last_reply(mut stream: &TcpStream, reply: &[u8]) {
    let _ = stream.set_write_timeout(Some(LAST_REPLY_TIMEOUT));
    let _ = stream.write_all(reply);
}
