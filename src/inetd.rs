//! inetd mode: one session on stdin and stdout, as inetd, xinetd and systemd socket units start it.
//!
//! The descriptors are used directly (no std buffering on top of ours), and every read and write
//! waits in poll(2) with the idle timeout, since a pipe or inherited socket may have none.

use crate::net_range::NetRange;
use crate::run::{Connecting, TlsMode};
use crate::session::{End, Service};
use crate::stream::Stream;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Runs one session on stdin/stdout and returns how it ended. `tls` says what TLS does: an
/// inetd service on port 995 uses [`TlsMode::Implicit`]. With `proxy_trusted`, the session
/// starts with a PROXY protocol header from one of those peers.
pub fn run(
    service: &Service,
    tls: TlsMode<'_>,
    proxy_trusted: Option<&[NetRange]>,
) -> io::Result<End> {
    let connected = Instant::now();
    let mut connecting = Connecting::new(service, Stdio::new(), peer_address(0), connected);
    if let Some(trusted) = proxy_trusted {
        connecting.read_proxy_header(trusted)?;
    }
    connecting.run(service, tls, None)
}

/// Turns Nagle's algorithm off on a TCP socket, as the standalone server does for each
/// connection: a reply written in parts (a status line, then its lines) would otherwise wait
/// for the client's delayed ACK, 40 ms on Linux. Not a TCP socket (a pipe, a Unix socket): no
/// change.
fn set_nodelay(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a descriptor number with a valid int option; on anything but a TCP
    // socket it only fails.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// stdin and stdout as one stream, with a timeout on each wait: a pipe or an inherited socket
/// may have none of its own, so every read and write waits in poll(2). Both descriptors are
/// made non-blocking: poll's "ready to write" only promises some room, and a blocking write of
/// a whole reply to a client that reads nothing would wait for ever, past every time limit.
struct Stdio {
    timeout_ms: i32,
}

impl Stdio {
    fn new() -> Self {
        for fd in [0, 1] {
            // SAFETY: fcntl on a descriptor number; a bad one only returns an error.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                }
            }
        }
        set_nodelay(1);
        Stdio { timeout_ms: -1 }
    }

    /// Waits until `fd` is ready for `events`, then runs `io`, again while it finds nothing to
    /// do (a non-blocking descriptor that another reader or writer got to first).
    fn ready(&self, fd: RawFd, events: libc::c_short, io: impl Fn() -> isize) -> io::Result<usize> {
        loop {
            self.wait(fd, events)?;
            let n = io();
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                return Err(e);
            }
        }
    }

    fn wait(&self, fd: RawFd, events: libc::c_short) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd, and its count.
            let n = unsafe { libc::poll(&mut pfd, 1, self.timeout_ms) };
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
        let (ptr, len) = (buf.as_mut_ptr(), buf.len());
        // SAFETY: buf is valid for len bytes.
        self.ready(0, libc::POLLIN, || unsafe {
            libc::read(0, ptr.cast(), len)
        })
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        self.ready(1, libc::POLLOUT, || unsafe {
            libc::write(1, buf.as_ptr().cast(), buf.len())
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Stdio {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        Ok(())
    }
}

/// The remote address of the socket on `fd`, if it is an IP socket.
fn peer_address(fd: RawFd) -> Option<SocketAddr> {
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
