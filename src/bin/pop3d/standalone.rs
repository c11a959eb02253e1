//! The standalone daemon: its listeners (its own, or systemd's), giving up root once they are
//! bound, and its signals: SIGTERM and SIGINT stop it, SIGHUP rereads the certificate.

use crate::broker::Client;
use crate::pid_file::PidFile;
use crate::privileges::Target;
use crate::settings::{Settings, DEFAULT_LISTEN};
use crate::systemd::{self, Notifier};
use crate::{descriptors, privileges};
use pop3d::{ListenerKind, MinVersion, Server, Service, ShutdownHandle, TlsConfig, TlsHandle};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

/// What the daemon got while privileged.
pub struct Privileged<'a> {
    /// The certificate and key, read at start.
    pub tls: Option<TlsConfig>,
    /// The account to become once the listeners are bound.
    pub target: Option<&'a Target>,
    /// The listening sockets systemd passed.
    pub passed: Vec<(TcpListener, ListenerKind, String)>,
    /// The broker, which stays root: it reads the certificate and key again on SIGHUP.
    pub broker: Option<Arc<Client>>,
}

/// Serves `service` on the listeners of `s` and those systemd passed, until SIGTERM or
/// SIGINT; gives root up once the listeners are bound.
pub fn run(s: &Settings, service: Service, privileged: Privileged) -> Result<(), String> {
    let Privileged {
        tls,
        target,
        passed,
        broker,
    } = privileged;
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
    let default = [DEFAULT_LISTEN];
    let plain = match s.listen.is_empty() && s.listen_tls.is_empty() && passed.is_empty() {
        true => &default[..],
        false => &s.listen[..],
    };
    // Logged once the passwd file is known to be usable: "listening" means serving.
    let mut serving = Vec::new();
    for (listener, kind, name) in passed {
        let addr = listener
            .local_addr()
            .map_err(|e| format!("systemd socket {name:?}: {e}"))?;
        server
            .add_listener(listener, kind)
            .map_err(|e| match kind.implicit_tls {
                true => format!(
                    "systemd socket {name:?} ({addr}): its name asks for TLS from the first \
                 byte, which needs a certificate: give --tls-cert and --tls-key"
                ),
                false => format!("systemd socket {name:?} ({addr}): {e}"),
            })?;
        serving.push(format!(
            "systemd socket {name:?}: listening{} on {addr}",
            kind_words(kind)
        ));
    }
    let listeners = plain
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
        serving.push(format!("listening{} on {local}", kind_words(kind)));
    }
    // Written as root (its directory, /run, is root's), kept open to be emptied at exit.
    let _pid_file = s.pid_file.as_deref().map(PidFile::write).transpose()?;
    // Connected before a chroot hides its path.
    let notifier = Notifier::from_env();
    // The ports are bound (the reason to start as root): now give root up.
    if let Some(target) = target {
        privileges::drop_to(target, s.chroot.as_deref())?;
        log::info!("running as {}", s.user.as_deref().unwrap_or_default());
    }
    // As whom and where (--chroot) logins will read it.
    s.accounts.source.ready()?;
    for line in serving {
        log::info!("{line}");
    }
    let signals = Signals {
        set: signals,
        stop: server.shutdown_handle(),
        tls: server.tls_handle(),
        files: s.tls.clone().map(|(cert, key)| (cert, key, s.tls_min)),
        broker,
        notifier,
    };
    signals.notifier.notify("READY=1");
    std::thread::Builder::new()
        .name("pop3d-signals".into())
        .spawn(move || signals.serve())
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    server.run().map_err(|e| format!("server: {e}"))?;
    log::info!("stopped");
    Ok(())
}

/// What the signal thread acts on.
struct Signals {
    set: libc::sigset_t,
    stop: ShutdownHandle,
    tls: TlsHandle,
    /// `--tls-cert`, `--tls-key` and `--tls-min`, reread on SIGHUP.
    files: Option<(PathBuf, PathBuf, MinVersion)>,
    /// Reads the files as root, when there is one: after --user, the front may not.
    broker: Option<Arc<Client>>,
    notifier: Notifier,
}

impl Signals {
    /// Waits for signals: rereads the certificate on SIGHUP, stops the server on the others.
    fn serve(self) {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: a valid, initialised signal set and an out-parameter.
            if unsafe { libc::sigwait(&self.set, &mut sig) } != 0 {
                continue;
            }
            if sig != libc::SIGHUP {
                log::info!("signal {sig}: shutting down");
                self.notifier.notify("STOPPING=1");
                self.stop.shutdown();
                return;
            }
            self.notifier.notify(&format!(
                "RELOADING=1\nMONOTONIC_USEC={}",
                systemd::monotonic_usec()
            ));
            self.reload();
            self.notifier.notify("READY=1");
        }
    }

    /// Rereads the certificate and key: new connections get the new pair, open sessions
    /// keep theirs; a pair that cannot be read or does not work leaves the current one.
    fn reload(&self) {
        let Some((cert, key, min)) = &self.files else {
            log::info!("SIGHUP: no --tls-cert and --tls-key to reread; nothing to do");
            return;
        };
        let renewed = match &self.broker {
            Some(broker) => broker.read_tls().and_then(|(cert_pem, key_pem)| {
                TlsConfig::from_pem(&cert_pem, &key_pem, *min)
                    .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))
            }),
            None => TlsConfig::from_pem_files(cert, key, *min).map_err(|e| e.to_string()),
        };
        let renewed = renewed.and_then(|tls| {
            tls.self_test()
                .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
            Ok(tls)
        });
        match renewed {
            Ok(tls) => {
                self.tls.replace(tls);
                log::info!(
                    "SIGHUP: new connections get the certificate in {}",
                    cert.display()
                );
            }
            Err(e) => log::error!("SIGHUP: keeping the current certificate: {e}"),
        }
    }
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

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and so in all threads started after) and
/// returns the set, for sigwait.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before anything reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
