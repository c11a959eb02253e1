//! The standalone daemon: its listeners, giving up root once they are bound, and the signals
//! that stop it.

use crate::privileges::Target;
use crate::settings::Settings;
use crate::{descriptors, privileges};
use pop3d::{ListenerKind, Server, Service, TlsConfig};

/// Serves `service` on the listeners of `s` until SIGTERM or SIGINT; gives root up (to
/// `target`) once the listeners are bound.
pub fn run(
    s: &Settings,
    service: Service,
    tls: Option<TlsConfig>,
    target: Option<&Target>,
) -> Result<(), String> {
    descriptors::raise_for(s.max_sessions.unwrap_or(Server::DEFAULT_MAX_SESSIONS));
    // glibc gives each busy thread its own malloc arena and keeps them: after a load, RSS stayed
    // 8 MB higher with 64 session threads. Two arenas cost no measurable speed.
    // SAFETY: mallopt only changes an allocator setting, before the threads start.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    // Block the stop signals before any thread starts, so only the signal thread receives them.
    let signals = stop_signals();
    let mut server = Server::new(service).proxy_trusted(s.proxy_trusted.clone());
    if let Some(n) = s.max_sessions {
        server = server.max_sessions(n);
    }
    if let Some(n) = s.max_per_ip {
        server = server.max_per_ip(n);
    }
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let listeners = s
        .listen
        .iter()
        .map(|a| (a, false))
        .chain(s.listen_tls.iter().map(|a| (a, true)));
    for (addr, implicit_tls) in listeners {
        let kind = ListenerKind {
            implicit_tls,
            proxy: s.proxy_listeners.contains(addr),
        };
        let local = server
            .listen_as(addr, kind)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        log::info!("listening{} on {local}", kind_words(kind));
    }
    // The ports are bound (the reason to start as root): now give root up.
    if let Some(target) = target {
        privileges::drop_to(target, s.chroot.as_deref())?;
        log::info!("running as {}", s.user.as_deref().unwrap_or_default());
    }
    let handle = server.shutdown_handle();
    std::thread::Builder::new()
        .name("pop3d-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: a valid, initialised signal set and an out-parameter.
            if unsafe { libc::sigwait(&signals, &mut sig) } == 0 {
                log::info!("signal {sig}: shutting down");
                handle.shutdown();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    server.run().map_err(|e| format!("server: {e}"))?;
    log::info!("stopped");
    Ok(())
}

/// How the "listening" log line names a listener's kind.
fn kind_words(kind: ListenerKind) -> &'static str {
    match (kind.implicit_tls, kind.proxy) {
        (false, false) => "",
        (true, false) => " for TLS",
        (false, true) => " for PROXY",
        (true, true) => " for PROXY and TLS",
    }
}

/// Blocks SIGTERM and SIGINT in this thread (and so in all threads started after) and
/// returns the set, for sigwait.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before anything reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
