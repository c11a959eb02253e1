//! The byte streams a session runs over, and how pop3d bounds their waits.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A connection to one client: any `Read + Write` whose waits can be bounded.
///
/// pop3d keeps every time limit itself (login deadline, idle timeout, the time to finish a
/// command line) and calls [`set_timeout`](Self::set_timeout) before each read or write with
/// the time left. A stream that cannot time out (an in-memory pipe in a test, say) keeps the
/// default, which does nothing: its session then waits as long as the stream does.
pub trait Stream: Read + Write {
    /// Makes the next reads and writes fail with [`io::ErrorKind::TimedOut`] or
    /// [`io::ErrorKind::WouldBlock`] after waiting `timeout` (never zero).
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }
}

impl Stream for TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        (&*self).set_timeout(timeout)
    }
}

impl Stream for &TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Stream for UnixStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl<S: Stream + ?Sized> Stream for &mut S {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        (**self).set_timeout(timeout)
    }
}

impl<S: Stream + ?Sized> Stream for Box<S> {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        (**self).set_timeout(timeout)
    }
}
