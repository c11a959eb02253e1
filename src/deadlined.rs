//! A stream whose reads all end by one deadline, however slowly the bytes trickle in.
//!
//! Before the session proper (a PROXY header, a TLS handshake) there are no command lines for
//! the line deadline to cover, and a socket timeout restarts with every byte: without this, a
//! client sending a byte a minute could spend hours on a ClientHello.

use crate::connection::{is_timeout, TimeoutControl};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// `inner`, with every read ending by `deadline` while one is set.
pub struct Deadlined<S> {
    inner: S,
    deadline: Option<Instant>,
    /// The most one read may wait in any case (the idle timeout).
    per_read: Duration,
    /// Sets the inner stream's read timeout to what is left; without it the deadline is checked
    /// between reads only.
    control: Option<TimeoutControl>,
}

impl<S> Deadlined<S> {
    /// Wraps `inner`, whose reads must all be done by `deadline`, each within `per_read`.
    pub fn new(
        inner: S,
        deadline: Instant,
        per_read: Duration,
        control: Option<TimeoutControl>,
    ) -> Self {
        Deadlined {
            inner,
            deadline: Some(deadline),
            per_read,
            control,
        }
    }

    /// Lifts the deadline (the session's own timeouts take over) and gives back the control.
    pub fn lift(&mut self) -> Option<TimeoutControl> {
        self.deadline = None;
        self.control.take()
    }

    /// The inner stream and the control.
    pub fn into_parts(self) -> (S, Option<TimeoutControl>) {
        (self.inner, self.control)
    }
}

impl<S: Read> Read for Deadlined<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(deadline) = self.deadline else {
            return self.inner.read(buf);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(too_late());
        }
        if let Some(control) = self.control.as_mut() {
            control(left.min(self.per_read))?;
        }
        match self.inner.read(buf) {
            Err(e) if is_timeout(&e) && Instant::now() >= deadline => Err(too_late()),
            other => other,
        }
    }
}

impl<S: Write> Write for Deadlined<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn too_late() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "not done within the login timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per read, waiting `pause` first.
    struct Trickle {
        pause: Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.pause);
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn a_trickle_is_cut_at_the_deadline_and_lifting_it_ends_that() {
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut s = Deadlined::new(
            Trickle {
                pause: Duration::from_millis(20),
            },
            deadline,
            Duration::MAX,
            None,
        );
        let mut buf = [0u8; 4];
        let mut got = 0;
        let err = loop {
            match s.read(&mut buf) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!((3..=6).contains(&got), "{got} bytes before the deadline");
        s.lift();
        assert_eq!(s.read(&mut buf).unwrap(), 1, "no deadline once lifted");
    }

    #[test]
    fn the_control_is_told_what_is_left() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let control: TimeoutControl = Box::new(move |d| {
            record.lock().unwrap().push(d);
            Ok(())
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut s = Deadlined::new(
            Trickle {
                pause: Duration::ZERO,
            },
            deadline,
            Duration::MAX,
            Some(control),
        );
        assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 1);
        let left = seen.lock().unwrap()[0];
        assert!(
            left <= Duration::from_secs(5) && left > Duration::from_secs(4),
            "{left:?}"
        );
        assert!(s.lift().is_some());
    }
}
