//! The slowest password check seen lately: failed logins are padded to it, so a user whose hash
//! costs more than the failure delay does not answer later than an unknown user would.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a recorded check counts: the maximum of this period and the one before.
const PERIOD: Duration = Duration::from_secs(3600);

/// No pause however slow a check once was (a stalled disk, a swapped-out process).
const CAP: Duration = Duration::from_secs(10);

/// The slowest check of the current and the previous [`PERIOD`].
pub(crate) struct SlowestCheck {
    state: Mutex<State>,
}

struct State {
    started: Instant,
    current: Duration,
    previous: Duration,
}

impl Default for SlowestCheck {
    fn default() -> Self {
        SlowestCheck {
            state: Mutex::new(State {
                started: Instant::now(),
                current: Duration::ZERO,
                previous: Duration::ZERO,
            }),
        }
    }
}

impl SlowestCheck {
    /// Records how long one password check took.
    pub(crate) fn record(&self, took: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.rotate();
        s.current = s.current.max(took.min(CAP));
    }

    /// The slowest check lately.
    pub(crate) fn get(&self) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.rotate();
        s.current.max(s.previous)
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
        assert_eq!(s.get(), CAP);
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
