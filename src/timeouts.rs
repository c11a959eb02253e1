//! The one owner of a connection's time limits: the login deadline, the idle timeout and the
//! time to finish a command line, over any [`Stream`] (TCP, stdin/stdout, a host's own), under
//! TLS or not.
//!
//! [`Timed`] sits directly on the client's stream, below TLS, so the PROXY header, the TLS
//! handshake and every command all run against the same clock. Before each wait it sets the
//! stream's timeout to whichever limit is nearest; when a wait runs out it records which one,
//! so the session can say why it is closing without decoding errors.

use crate::limits::{LAST_REPLY_TIMEOUT, LINE_DEADLINE};
use crate::stream::Stream;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Which limit ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Nothing from the client for the idle timeout.
    Idle,
    /// A command line begun but not finished within [`LINE_DEADLINE`].
    Line,
    /// Not logged in by the login deadline.
    Login,
}

/// The limits in force on one connection.
#[derive(Debug)]
pub(crate) struct Timeouts {
    /// The most any one wait may last.
    idle: Duration,
    /// Everything before login must be done by then.
    login: Option<Instant>,
    /// Set while a command line is partly read: the rest must come by then.
    line: Option<Instant>,
    /// The timeout last given to the stream, to skip system calls that change nothing.
    applied: Option<Duration>,
    /// The limit that ended the last wait that timed out.
    expired: Option<Limit>,
}

impl Timeouts {
    /// Replaces the idle timeout.
    #[cfg(test)]
    fn set_idle(&mut self, idle: Duration) {
        self.idle = idle;
    }

    /// Lifts the login deadline: the client has logged in.
    pub(crate) fn logged_in(&mut self) {
        self.login = None;
    }

    /// A command line has begun: the rest must follow within [`LINE_DEADLINE`].
    pub(crate) fn line_begun(&mut self) {
        self.line
            .get_or_insert_with(|| Instant::now() + LINE_DEADLINE);
    }

    /// The command line is complete.
    pub(crate) fn line_done(&mut self) {
        self.line = None;
    }

    /// The limit that ended the last timed-out wait, if one did.
    pub(crate) fn expired(&self) -> Option<Limit> {
        self.expired
    }

    /// For the session's last words after a limit ran out: every limit lifted, and a short
    /// timeout for the one line left to write.
    pub(crate) fn for_last_reply(&mut self) {
        self.login = None;
        self.line = None;
        self.idle = LAST_REPLY_TIMEOUT;
    }

    /// The nearest limit of a read (`reading`) or a write, and the time left to it.
    fn nearest(&self, reading: bool) -> (Duration, Limit) {
        let now = Instant::now();
        let mut nearest = (self.idle, Limit::Idle);
        let line = self.line.filter(|_| reading).map(|at| (at, Limit::Line));
        for (at, limit) in [line, self.login.map(|at| (at, Limit::Login))]
            .into_iter()
            .flatten()
        {
            let left = at.saturating_duration_since(now);
            if left <= nearest.0 {
                nearest = (left, limit);
            }
        }
        nearest
    }
}

/// `S` with every read and write bounded by its [`Timeouts`].
pub(crate) struct Timed<S> {
    inner: S,
    timeouts: Timeouts,
}

/// Reaches the [`Timeouts`] of a connection through whatever wraps its stream (TLS).
pub(crate) trait HasTimeouts {
    /// The limits in force.
    fn timeouts(&mut self) -> &mut Timeouts;
}

impl<S: Stream> Timed<S> {
    /// `inner`, each wait at most `idle`, and all of it done by `login` if that is given.
    pub(crate) fn new(inner: S, idle: Duration, login: Option<Instant>) -> Self {
        Timed {
            inner,
            timeouts: Timeouts {
                idle,
                login,
                line: None,
                applied: None,
                expired: None,
            },
        }
    }

    /// The stream underneath.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gives back the stream underneath.
    #[cfg(test)]
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }

    /// Runs one wait of `io` under the nearest limit.
    fn wait<T>(
        &mut self,
        reading: bool,
        io: impl FnOnce(&mut S) -> io::Result<T>,
    ) -> io::Result<T> {
        let (left, limit) = self.timeouts.nearest(reading);
        if left.is_zero() {
            return Err(self.ran_out(limit));
        }
        if self.timeouts.applied != Some(left) {
            // The stream's own timeouts are in whole milliseconds at best; never zero, which
            // would mean "no timeout" to a socket.
            self.inner.set_timeout(left.max(Duration::from_millis(1)))?;
            self.timeouts.applied = Some(left);
        }
        match io(&mut self.inner) {
            Err(e) if is_timeout(&e) => Err(self.ran_out(limit)),
            other => other,
        }
    }

    fn ran_out(&mut self, limit: Limit) -> io::Error {
        self.timeouts.expired = Some(limit);
        let what = match limit {
            Limit::Idle => "idle timeout",
            Limit::Line => "command line not finished in time",
            Limit::Login => "not logged in in time",
        };
        io::Error::new(io::ErrorKind::TimedOut, what)
    }
}

impl<S: Stream> Read for Timed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(true, |s| s.read(buf))
    }
}

impl<S: Stream> Write for Timed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wait(false, |s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<S> HasTimeouts for Timed<S> {
    fn timeouts(&mut self) -> &mut Timeouts {
        &mut self.timeouts
    }
}

impl<S: HasTimeouts + Read + Write> HasTimeouts for crate::tls::TlsStream<S> {
    fn timeouts(&mut self) -> &mut Timeouts {
        self.get_mut().timeouts()
    }
}

/// True if `e` is a wait that ran out (a socket timeout shows as `WouldBlock`).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Hands out one byte per read after `pause`, and records the timeouts it is given; a read
    /// longer than the timeout given times out, as a socket's would.
    struct Trickle {
        pause: Duration,
        given: Arc<Mutex<Vec<Duration>>>,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let limit = *self.given.lock().unwrap().last().unwrap();
            if self.pause > limit {
                std::thread::sleep(limit);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            std::thread::sleep(self.pause);
            buf[0] = b'x';
            Ok(1)
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Stream for Trickle {
        fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
            self.given.lock().unwrap().push(timeout);
            Ok(())
        }
    }

    fn trickle(pause_ms: u64) -> (Trickle, Arc<Mutex<Vec<Duration>>>) {
        let given = Arc::new(Mutex::new(Vec::new()));
        let t = Trickle {
            pause: Duration::from_millis(pause_ms),
            given: given.clone(),
        };
        (t, given)
    }

    #[test]
    fn a_trickle_is_cut_at_the_login_deadline_and_logging_in_lifts_it() {
        let (t, _) = trickle(20);
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut s = Timed::new(t, Duration::from_secs(60), Some(deadline));
        let mut got = 0;
        let err = loop {
            match s.read(&mut [0u8; 4]) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(s.timeouts().expired(), Some(Limit::Login));
        assert!((3..=6).contains(&got), "{got} bytes before the deadline");
        s.timeouts().logged_in();
        assert_eq!(
            s.read(&mut [0u8; 4]).unwrap(),
            1,
            "no deadline once logged in"
        );
    }

    #[test]
    fn each_wait_gets_the_nearest_limit_and_a_timeout_says_which() {
        let (t, given) = trickle(50);
        let login = Instant::now() + Duration::from_secs(5);
        let mut s = Timed::new(t, Duration::from_secs(60), Some(login));
        assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 1);
        let first = given.lock().unwrap()[0];
        assert!(first <= Duration::from_secs(5) && first > Duration::from_secs(4));
        s.timeouts().logged_in();
        s.timeouts().set_idle(Duration::from_millis(10));
        assert!(s.read(&mut [0u8; 1]).is_err());
        assert_eq!(s.timeouts().expired(), Some(Limit::Idle));
        s.timeouts().set_idle(Duration::from_secs(60));
        s.timeouts().line_begun();
        assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 1);
        let last = *given.lock().unwrap().last().unwrap();
        assert!(last <= LINE_DEADLINE && last > LINE_DEADLINE - Duration::from_secs(1));
    }
}
