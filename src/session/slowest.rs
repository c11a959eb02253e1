//! What a failed login is padded to, beyond the failure delay: the cost of the costliest
//! password check, so that a wrong password for a user whose hash costs more than the failure
//! delay is not answered later than an unknown user.
//!
//! The authenticator reports that cost ([`Authenticator::costliest_check`]); it is asked
//! before each login's clock starts, so the answer holds from the first failure of a process
//! on, which matters under inetd, where every connection is a new process. On top of it, the
//! slowest check seen lately counts too: an authenticator that reports nothing (the default)
//! is then covered after its first costly check, and one whose check ran over its reported cost
//! (a loaded machine) does not stay distinguishable.
//!
//! [`Authenticator::costliest_check`]: crate::auth::Authenticator::costliest_check

use crate::limits::FAILURE_PAD_MAX;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a recorded check counts: the maximum of this period and the one before.
const PERIOD: Duration = Duration::from_secs(3600);

/// The costliest check: as reported, and the slowest of the current and the previous
/// [`PERIOD`].
pub(crate) struct SlowestCheck {
    state: Mutex<State>,
}

struct State {
    reported: Duration,
    started: Instant,
    current: Duration,
    previous: Duration,
}

impl Default for SlowestCheck {
    fn default() -> Self {
        SlowestCheck {
            state: Mutex::new(State {
                reported: Duration::ZERO,
                started: Instant::now(),
                current: Duration::ZERO,
                previous: Duration::ZERO,
            }),
        }
    }
}

impl SlowestCheck {
    /// Sets the cost the authenticator reports for its costliest check.
    pub(crate) fn report(&self, cost: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.reported = cost.min(FAILURE_PAD_MAX);
    }

    /// Records how long one password check took.
    pub(crate) fn record(&self, took: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.rotate();
        s.current = s.current.max(took.min(FAILURE_PAD_MAX));
    }

    /// The costliest check: the reported cost, or the slowest check lately if longer.
    pub(crate) fn get(&self) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.rotate();
        s.reported.max(s.current).max(s.previous)
    }
}

impl State {
    fn rotate(&mut self) {
        let age = self.started.elapsed();
        if age >= 2 * PERIOD {
            self.previous = Duration::ZERO;
            self.current = Duration::ZERO;
            self.started = Instant::now();
        } else if age >= PERIOD {
            self.previous = self.current;
            self.current = Duration::ZERO;
            self.started += PERIOD;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_maximum_and_caps_it() {
        let s = SlowestCheck::default();
        assert_eq!(s.get(), Duration::ZERO);
        s.record(Duration::from_millis(5));
        s.record(Duration::from_millis(600));
        s.record(Duration::from_millis(7));
        assert_eq!(s.get(), Duration::from_millis(600));
        s.record(Duration::from_secs(3600));
        assert_eq!(s.get(), FAILURE_PAD_MAX);
    }

    #[test]
    fn the_reported_cost_counts_from_the_start() {
        let s = SlowestCheck::default();
        s.report(Duration::from_millis(400));
        assert_eq!(s.get(), Duration::from_millis(400), "before any check");
        s.record(Duration::from_millis(450));
        assert_eq!(s.get(), Duration::from_millis(450));
        s.report(Duration::from_secs(60));
        assert_eq!(s.get(), FAILURE_PAD_MAX);
    }

    #[test]
    fn forgets_after_two_periods() {
        let s = SlowestCheck::default();
        s.record(Duration::from_millis(600));
        s.state.lock().unwrap().started -= PERIOD;
        assert_eq!(
            s.get(),
            Duration::from_millis(600),
            "the previous period still counts"
        );
        s.state.lock().unwrap().started -= PERIOD;
        assert_eq!(s.get(), Duration::ZERO);
    }
}
