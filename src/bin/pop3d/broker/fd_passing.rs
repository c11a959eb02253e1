//! Sending an open descriptor to another process over a Unix socket (SCM_RIGHTS), and
//! receiving data with whatever descriptors come along.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Room for the control message of one descriptor, aligned as `cmsghdr` needs (u64 is at
/// least as strict as its alignment on every Linux target).
/// Each side sends at most one; the few more that fit are taken (and so closed when dropped),
/// and the kernel closes any beyond.
const CONTROL_WORDS: usize = 4;

/// Sends `data` on `socket`, with `fd` attached when given; returns how many bytes went.
/// Never raises SIGPIPE: a peer that is gone is an `EPIPE` error.
pub fn send(socket: BorrowedFd, data: &[u8], fd: Option<BorrowedFd>) -> io::Result<usize> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all zeroes is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        let raw: RawFd = fd.as_raw_fd();
        // SAFETY: CMSG_SPACE and CMSG_LEN compute sizes; the buffer is large enough for one
        // descriptor's control message (checked below), aligned for cmsghdr, and alive until
        // sendmsg returns. CMSG_FIRSTHDR of a header with a non-empty control buffer is a valid
        // pointer into that buffer.
        unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            assert!(space <= std::mem::size_of_val(&control));
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::copy_nonoverlapping(
                (&raw as *const RawFd).cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                std::mem::size_of::<RawFd>(),
            );
        }
    }
    loop {
        // SAFETY: msg points to live buffers described by their lengths.
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives into `buf` from `socket`; returns the byte count (0 at end of stream) and the
/// descriptors that came with the data, close-on-exec.
pub fn receive(socket: BorrowedFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all zeroes is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: msg points to live buffers described by their lengths.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: recvmsg filled msg_control and msg_controllen; the CMSG macros walk only within
    // them. Each SCM_RIGHTS descriptor is new in this process and owned by no one else yet.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                let count = bytes / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let mut raw: RawFd = -1;
                    std::ptr::copy_nonoverlapping(
                        data.add(i * std::mem::size_of::<RawFd>()),
                        (&mut raw as *mut RawFd).cast::<u8>(),
                        std::mem::size_of::<RawFd>(),
                    );
                    if raw >= 0 {
                        fds.push(OwnedFd::from_raw_fd(raw));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_descriptor_crosses_and_still_works() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut pipe_r, pipe_w) = {
            let mut fds = [0; 2];
            // SAFETY: a valid array of two descriptors to fill.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: pipe2 just opened both; nothing else owns them.
            unsafe {
                (
                    std::fs::File::from_raw_fd(fds[0]),
                    OwnedFd::from_raw_fd(fds[1]),
                )
            }
        };
        assert_eq!(send(a.as_fd(), b"x", Some(pipe_w.as_fd())).unwrap(), 1);
        drop(pipe_w);
        let mut buf = [0u8; 8];
        let (n, mut fds) = receive(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, buf[0], fds.len()), (1, b'x', 1));
        let mut w = std::fs::File::from(fds.pop().unwrap());
        w.write_all(b"through").unwrap();
        drop(w);
        let mut got = String::new();
        pipe_r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
        // Plain data brings no descriptor; a closed peer is the end of the stream.
        send(a.as_fd(), b"yz", None).unwrap();
        let (n, fds) = receive(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fds.len()), (2, 0));
        drop(a);
        assert_eq!(receive(b.as_fd(), &mut buf).unwrap().0, 0);
    }

    #[test]
    fn sending_to_a_closed_peer_is_an_error_not_a_signal() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let e = send(a.as_fd(), b"x", None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }
}
