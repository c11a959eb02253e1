//! systemd without libsystemd: listening sockets passed by socket activation (`LISTEN_FDS`,
//! sd_listen_fds(3)) and readiness messages on `NOTIFY_SOCKET` (sd_notify(3)).

use pop3d::ListenerKind;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
const FIRST_FD: RawFd = 3;

/// The listening sockets systemd passed to this process, each with the kind its name says
/// (see [`kind_of`]); empty when the process was not socket-activated. Refuses sockets pop3d
/// cannot serve: not a TCP stream socket, or not listening (an `Accept=yes` connection, which
/// is for `--inetd`).
pub fn listeners() -> Result<Vec<(TcpListener, ListenerKind, String)>, String> {
    let Some(count) = passed_count()? else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    // Not for the children pop3d may start.
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let mut all = Vec::new();
    for i in 0..count {
        let fd = FIRST_FD + i;
        let name = names.get(i as usize).cloned().unwrap_or_default();
        let what = match name.is_empty() {
            true => format!("socket {fd} from systemd"),
            false => format!("socket {fd} ({name:?}) from systemd"),
        };
        check_listening_tcp(fd).map_err(|e| format!("{what}: {e}"))?;
        // SAFETY: systemd passed this descriptor to this process (LISTEN_PID matched), and
        // nothing else in pop3d owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        set_cloexec(fd);
        let listener = TcpListener::from(owned);
        // Each acceptor blocks in accept(); systemd may have passed it non-blocking.
        listener
            .set_nonblocking(false)
            .map_err(|e| format!("{what}: {e}"))?;
        all.push((listener, kind_of(&name), name));
    }
    Ok(all)
}

/// How many descriptors systemd passed to this very process, if any.
fn passed_count() -> Result<Option<RawFd>, String> {
    let (Ok(pid), Ok(fds)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(None);
    };
    // SAFETY: getpid takes nothing and cannot fail.
    if pid.parse::<libc::pid_t>().ok() != Some(unsafe { libc::getpid() }) {
        return Ok(None); // meant for another process (a parent that exec'd us without clearing)
    }
    match fds.parse::<RawFd>() {
        Ok(0) => Ok(None),
        Ok(n) if (1..=64).contains(&n) => Ok(Some(n)),
        _ => Err(format!("LISTEN_FDS={fds:?} is not a count of sockets")),
    }
}

/// The kind of listener a socket's name (`FileDescriptorName=`, or the socket unit's name)
/// asks for: `pop3s` or `tls` among its dash- or dot-separated words means TLS from the
/// first byte, `proxy` a PROXY protocol header first. `pop3d.socket` is a plain listener,
/// `pop3s.socket` an implicit-TLS one, `pop3s-proxy` both.
pub fn kind_of(name: &str) -> ListenerKind {
    let words = || name.split(['-', '.', '_']).map(str::to_ascii_lowercase);
    ListenerKind {
        implicit_tls: words().any(|w| w == "pop3s" || w == "tls"),
        proxy: words().any(|w| w == "proxy"),
    }
}

fn check_listening_tcp(fd: RawFd) -> Result<(), String> {
    let option = |level, name| -> Result<libc::c_int, String> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int-sized out-parameter and its length, on a descriptor we were given.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(format!(
                "not a socket ({})",
                std::io::Error::last_os_error()
            ));
        }
        Ok(value)
    };
    if option(libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err("not a stream socket (ListenStream= is needed)".into());
    }
    let domain = option(libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err("not a TCP socket (ListenStream= needs an address and port)".into());
    }
    if option(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
        return Err(
            "not listening: a connection from an Accept=yes socket unit, \
                    which needs pop3d --inetd"
                .into(),
        );
    }
    Ok(())
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own, with plain integer arguments.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// The service manager's notification socket (`NOTIFY_SOCKET`, a `Type=notify` service),
/// connected at start: the path may be out of reach after `--chroot`.
pub struct Notifier(Option<UnixDatagram>);

impl Notifier {
    /// Connects to `NOTIFY_SOCKET` when it is set (and unsets it, which is for this process
    /// alone); a notifier that says nothing otherwise. A failure is logged: serving matters
    /// more than telling.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier(None);
        };
        std::env::remove_var("NOTIFY_SOCKET");
        let connected = UnixDatagram::unbound().and_then(|socket| {
            let bytes = path.as_encoded_bytes();
            if let Some(abstract_name) = bytes.strip_prefix(b"@") {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
                socket.connect_addr(&addr)?;
            } else {
                socket.connect(&path)?;
            }
            Ok(socket)
        });
        match connected {
            Ok(socket) => Notifier(Some(socket)),
            Err(e) => {
                log::warn!("cannot reach systemd's NOTIFY_SOCKET {path:?}: {e}");
                Notifier(None)
            }
        }
    }

    /// Tells the service manager `state` (`READY=1`, `STOPPING=1`, ...), if it listens.
    pub fn notify(&self, state: &str) {
        if let Some(socket) = &self.0 {
            if let Err(e) = socket.send(state.as_bytes()) {
                log::warn!("cannot notify systemd ({state:?}): {e}");
            }
        }
    }
}

/// The `MONOTONIC_USEC=` field that must go with `RELOADING=1` (Type=notify-reload).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-parameter; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_the_kind_of_listener() {
        let plain = ListenerKind::default();
        let tls = ListenerKind {
            implicit_tls: true,
            proxy: false,
        };
        let proxy = ListenerKind {
            implicit_tls: false,
            proxy: true,
        };
        let both = ListenerKind {
            implicit_tls: true,
            proxy: true,
        };
        for (name, want) in [
            ("", plain),
            ("pop3d.socket", plain),
            ("pop3", plain),
            ("pop3s.socket", tls),
            ("pop3s", tls),
            ("TLS", tls),
            ("proxy", proxy),
            ("pop3-proxy", proxy),
            ("pop3s-proxy", both),
            ("pop3spy", plain),
        ] {
            assert_eq!(kind_of(name), want, "{name:?}");
        }
    }
}
