//! The cost of the costliest password check of a system account source, measured by the first
//! `--inetd` process and kept in `--state-dir` for the next ones: each would otherwise hash a
//! dummy password at its first login (about 10 ms), and under inetd every process is a first.

use pop3d::auth::{Secret, SecretKinds};
use pop3d::{Account, AuthError, Authenticator};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A kept cost is measured again after a day: a new hash scheme in /etc/shadow, or another
/// machine under the same state directory, is seen by the next day.
const KEPT: Duration = Duration::from_secs(24 * 3600);

/// A kept cost above this is not believed (whoever wrote it, failures would wait that long).
const MOST: Duration = Duration::from_secs(5);

/// `inner`, with its costliest check kept in `file` (16 octets: the cost in nanoseconds and
/// when it was measured, in seconds since the epoch).
pub struct SharedCost {
    inner: Arc<dyn Authenticator>,
    file: File,
    cost: OnceLock<Duration>,
}

impl SharedCost {
    pub fn new(inner: Arc<dyn Authenticator>, file: File) -> SharedCost {
        SharedCost {
            inner,
            file,
            cost: OnceLock::new(),
        }
    }

    /// The kept cost, if the file holds one that is recent and plausible.
    fn kept(&self) -> Option<Duration> {
        let mut record = [0u8; 16];
        self.file.read_exact_at(&mut record, 0).ok()?;
        let nanos = u64::from_le_bytes(record[..8].try_into().expect("8 octets"));
        let at = u64::from_le_bytes(record[8..].try_into().expect("8 octets"));
        let age = now().checked_sub(at)?;
        let cost = Duration::from_nanos(nanos);
        (age < KEPT.as_secs() && !cost.is_zero() && cost <= MOST).then_some(cost)
    }

    fn keep(&self, cost: Duration) {
        let mut record = [0u8; 16];
        record[..8].copy_from_slice(&(cost.as_nanos() as u64).to_le_bytes());
        record[8..].copy_from_slice(&now().to_le_bytes());
        if let Err(e) = self.file.write_all_at(&record, 0) {
            log::warn!("cannot keep the cost of a password check: {e}");
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authenticator for SharedCost {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        self.inner.authenticate(user, password)
    }

    fn lookup(&self, user: &str) -> Result<Account, AuthError> {
        self.inner.lookup(user)
    }

    fn secret(&self, user: &str) -> Result<(Account, Secret), AuthError> {
        self.inner.secret(user)
    }

    fn secret_kinds(&self) -> SecretKinds {
        self.inner.secret_kinds()
    }

    fn scram_iterations(&self) -> u32 {
        self.inner.scram_iterations()
    }

    fn costliest_check(&self) -> Duration {
        *self.cost.get_or_init(|| {
            self.kept().unwrap_or_else(|| {
                let cost = self.inner.costliest_check();
                self.keep(cost);
                cost
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Costly;

    impl Authenticator for Costly {
        fn authenticate(&self, _: &str, _: &[u8]) -> Result<Account, AuthError> {
            Err(AuthError::rejected("no"))
        }

        fn costliest_check(&self) -> Duration {
            Duration::from_millis(12)
        }
    }

    #[test]
    fn the_first_process_measures_and_the_next_read() {
        let path = std::env::temp_dir().join(format!("pop3d-test-cost-{}", std::process::id()));
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let first = SharedCost::new(Arc::new(Costly), open());
        assert_eq!(first.kept(), None);
        assert_eq!(first.costliest_check(), Duration::from_millis(12));
        let next = SharedCost::new(Arc::new(Costly), open());
        assert_eq!(next.kept(), Some(Duration::from_millis(12)));
        // An implausible value is measured again, not believed.
        next.keep(Duration::from_secs(60));
        assert_eq!(next.kept(), None);
        let _ = std::fs::remove_file(&path);
    }
}
