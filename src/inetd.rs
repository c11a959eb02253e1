//! inetd mode: one session on stdin and stdout, as inetd, xinetd and systemd socket units start it.
//!
//! The descriptors are used directly (no std buffering on top of ours), and every read and write
//! waits in poll(2) with the idle timeout, since a pipe or inherited socket may have none.

use crate::connection::TimeoutControl;
use crate::deadlined::Deadlined;
use crate::net_range::NetRange;
use crate::serve::{proxied_client, run_session, TlsMode};
use crate::session::{End, Service};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves one session on stdin/stdout and returns how it ended. `mode` says what TLS does:
/// an inetd service on port 995 uses [`TlsMode::Implicit`]. With `proxy_trusted`, the session
/// starts with a PROXY protocol header from one of those peers.
pub fn serve(
    service: &Service,
    mode: TlsMode<'_>,
    proxy_trusted: Option<&[NetRange]>,
) -> io::Result<End> {
    let connected = Instant::now();
    let mut peer = peer_address(0);
    let config = &service.config;
    let mut stdio = Stdio::new(config.login_timeout.min(config.idle_timeout));
    let mut control = stdio.timeout_control();
    if let Some(trusted) = proxy_trusted {
        let from = peer.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a PROXY header needs a socket on stdin",
            )
        })?;
        // A header trickled in a byte at a time must still be done by the login deadline.
        let deadline = connected + config.login_timeout;
        let mut guarded = Deadlined::new(stdio, deadline, config.idle_timeout, Some(control));
        let header = proxied_client(&mut guarded, from, trusted);
        let (inner, back) = guarded.into_parts();
        stdio = inner;
        control = back.unwrap_or_else(|| stdio.timeout_control());
        peer = Some(header?);
    }
    log::info!(
        "connect: peer={}",
        peer.map_or_else(|| "stdin".to_owned(), |a| a.to_string())
    );
    run_session(service, stdio, peer, mode, Some(control), connected)
}

/// stdin and stdout as one stream, with a timeout on each wait.
pub struct Stdio {
    /// Milliseconds; shared with the [`TimeoutControl`] the connection uses to change it.
    timeout_ms: Arc<AtomicI32>,
}

impl Stdio {
    /// Descriptors 0 and 1, waiting at most `timeout` for each read or write.
    pub fn new(timeout: Duration) -> Self {
        Stdio {
            timeout_ms: Arc::new(AtomicI32::new(millis(timeout))),
        }
    }

    /// A control that changes the timeout of this stream.
    pub fn timeout_control(&self) -> TimeoutControl {
        let shared = self.timeout_ms.clone();
        Box::new(move |timeout| {
            shared.store(millis(timeout), Ordering::Relaxed);
            Ok(())
        })
    }

    fn wait(&self, fd: RawFd, events: libc::c_short) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd, and its count.
            let n = unsafe { libc::poll(&mut pfd, 1, self.timeout_ms.load(Ordering::Relaxed)) };
            match n {
                0 => return Err(io::ErrorKind::TimedOut.into()),
                n if n > 0 => return Ok(()),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
}

impl Read for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(0, libc::POLLIN)?;
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wait(1, libc::POLLOUT)?;
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn millis(timeout: Duration) -> i32 {
    timeout.as_millis().min(i32::MAX as u128) as i32
}

/// The remote address of the socket on `fd`, if it is an IP socket.
pub fn peer_address(fd: RawFd) -> Option<SocketAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage is large enough for any address and len says so.
    let rc = unsafe { libc::getpeername(fd, storage.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return None;
    }
    // SAFETY: zero-initialised, and getpeername filled in what it reported.
    let storage = unsafe { storage.assume_init() };
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => None,
    }
}
