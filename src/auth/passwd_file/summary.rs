//! What the whole file says, read once per version of it: which challenge-response mechanisms
//! every account can serve (for CAPA), the SCRAM iteration count most accounts use, and the cost
//! of the costliest password check.

use super::line::{is_skipped, read_line, Fields};
use super::login_cache::FileStamp;
use super::PasswdFile;
use crate::account::Account;
use crate::auth::{password, Secret, SecretKinds};
use crate::limits::{CHECK_COST_MARGIN_PERCENT, FAILURE_PAD_MAX, HASH_CLASSES_MEASURED};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One scan of the file.
#[derive(Debug, Clone, Default)]
pub(super) struct Summary {
    pub(super) kinds: SecretKinds,
    /// The most common iteration count of the stored SCRAM keys, if any.
    pub(super) scram_iterations: Option<u32>,
    /// One stored hash of each kind of cost found (scheme and parameters), to measure.
    samples: Vec<String>,
}

/// A password no account has: what the cost of a check is measured with.
const PROBE: &[u8] = b"pop3d: measuring the cost of a check";

impl PasswdFile {
    /// The one file, and its stamp now; `None` with `%d` in the path or when it cannot be read.
    fn the_file(&self) -> Option<(PathBuf, FileStamp)> {
        if self.per_domain {
            return None;
        }
        // Without %d nothing depends on the account: any name expands to the one path.
        let path = self.template.expand(&Account::new("scan")).ok()?;
        let meta = std::fs::metadata(&path).ok()?;
        Some((path, FileStamp::of(&meta)))
    }

    /// The file's [`Summary`], scanned anew only when the file has changed. With `%d` in the
    /// path there is no one file: an empty summary (nothing every account can serve).
    pub(super) fn summary(&self) -> Summary {
        let Some((path, stamp)) = self.the_file() else {
            return Summary::default();
        };
        let mut cache = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((cached, summary)) if *cached == stamp => summary.clone(),
            _ => {
                let summary = scan(&path).unwrap_or_default();
                *cache = Some((stamp, summary.clone()));
                summary
            }
        }
    }

    /// How long the costliest check takes, with a margin: the dummy check of an unknown user
    /// and one check of each kind of hash in the file, timed once per version of the file.
    pub(super) fn measure_costliest(&self) -> Duration {
        let stamp = self.the_file().map(|(_, stamp)| stamp);
        let mut cache = self.cost.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, cost)) = *cache {
            if cached == stamp {
                return cost;
            }
        }
        let shared = self.shared_cost.as_deref().zip(stamp.as_ref());
        if let Some(cost) = shared.and_then(|(file, stamp)| shared_cost::read(file, stamp)) {
            *cache = Some((stamp, cost));
            return cost;
        }
        let samples = match stamp {
            Some(_) => self.summary().samples,
            None => Vec::new(),
        };
        let time = |stored: &str| {
            let t = Instant::now();
            let _ = (self.verify)(stored, PROBE);
            t.elapsed()
        };
        let most = samples
            .iter()
            .map(|s| time(s))
            .fold(time(password::DUMMY_HASH), Duration::max);
        let cost = (most * (100 + CHECK_COST_MARGIN_PERCENT) / 100).min(FAILURE_PAD_MAX);
        log::debug!("costliest password check: {} ms", cost.as_millis());
        if let Some((file, stamp)) = shared {
            shared_cost::write(file, stamp, cost);
        }
        *cache = Some((stamp, cost));
        cost
    }
}

/// The measured cost in a file shared by processes: one line, the passwd file's stamp and the
/// cost in nanoseconds, read and written under `flock`.
mod shared_cost {
    use super::FileStamp;
    use std::fs::File;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// The cost kept for the passwd file as `stamp` says it is now, if there is one.
    pub(super) fn read(file: &File, stamp: &FileStamp) -> Option<Duration> {
        let _lock = Flock::take(file, libc::LOCK_SH)?;
        let mut text = String::new();
        let mut file = file;
        file.rewind().ok()?;
        file.take(512).read_to_string(&mut text).ok()?;
        let (key, nanos) = text.trim_end().rsplit_once(' ')?;
        if key != format!("{stamp:?}") {
            return None;
        }
        nanos.parse().ok().map(Duration::from_nanos)
    }

    /// Keeps `cost` for the passwd file at `stamp`; a failure only means the next process
    /// measures again.
    pub(super) fn write(file: &File, stamp: &FileStamp, cost: Duration) {
        let Some(_lock) = Flock::take(file, libc::LOCK_EX) else {
            return;
        };
        let line = format!("{stamp:?} {}\n", cost.as_nanos());
        let mut writer = file;
        let _ = file
            .set_len(0)
            .and_then(|()| writer.rewind())
            .and_then(|()| writer.write_all(line.as_bytes()));
    }

    /// An flock held until dropped.
    struct Flock<'a>(&'a File);

    impl<'a> Flock<'a> {
        fn take(file: &'a File, how: libc::c_int) -> Option<Self> {
            // SAFETY: a valid descriptor, held open by `file` for the lock's lifetime.
            (unsafe { libc::flock(file.as_raw_fd(), how) } == 0).then_some(Flock(file))
        }
    }

    impl Drop for Flock<'_> {
        fn drop(&mut self) {
            // SAFETY: as in take.
            unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

fn scan(path: &std::path::Path) -> Option<Summary> {
    let file = File::open(path).ok()?;
    let (mut accounts, mut plain, mut scram) = (0, 0, 0);
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let mut samples: HashMap<String, String> = HashMap::new();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    while let Ok(true) = read_line(&mut reader, &mut buf) {
        if is_skipped(&buf) {
            continue;
        }
        accounts += 1;
        let Some(stored) = std::str::from_utf8(&buf)
            .ok()
            .and_then(|l| Fields::split(l).password)
        else {
            continue;
        };
        match password::secret_of(stored) {
            Some(Secret::Plain(_)) => plain += 1,
            Some(Secret::Scram(keys)) => {
                scram += 1;
                *counts.entry(keys.iterations).or_default() += 1;
            }
            None => {}
        }
        if samples.len() < HASH_CLASSES_MEASURED {
            samples
                .entry(cost_class(stored))
                .or_insert_with(|| stored.to_owned());
        }
    }
    // The most common count; of counts as common, the highest.
    let scram_iterations = counts
        .into_iter()
        .max_by_key(|&(i, n)| (n, i))
        .map(|(i, _)| i);
    Some(Summary {
        kinds: SecretKinds {
            plain: accounts > 0 && plain == accounts,
            scram: accounts > 0 && plain + scram == accounts,
        },
        scram_iterations,
        samples: samples.into_values().collect(),
    })
}

/// What decides how long a check of `stored` takes: its scheme and the cost parameters that
/// precede its salt (`$6$rounds=N`, `$2b$12`, `$y$j9T`, `$argon2id$v=19$m=…,t=…,p=…`, a SCRAM
/// iteration count). Hashes of one class cost the same to check.
fn cost_class(stored: &str) -> String {
    let (scheme, hash) = match stored.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((name, hash)) => (name.to_ascii_uppercase(), hash),
        None => (String::new(), stored),
    };
    if scheme == "SCRAM-SHA-256" {
        return format!("scram:{}", hash.split(',').next().unwrap_or(""));
    }
    if matches!(scheme.as_str(), "PLAIN" | "CLEAR" | "CLEARTEXT") {
        return "plain".into();
    }
    let fields: Vec<&str> = hash.split('$').collect();
    let parameters = match fields.get(1).copied() {
        Some(id) if id.starts_with("argon2") => 4,
        Some("5" | "6") if fields.get(2).is_some_and(|f| f.starts_with("rounds=")) => 3,
        Some("2a" | "2b" | "2y" | "y" | "7" | "gy") => 3,
        Some(_) => 2,
        // Traditional DES, or a locked account (checked against the dummy hash).
        None => 1,
    };
    let kind = fields[..parameters.min(fields.len())].join("$");
    format!("{scheme}:{}", if parameters == 1 { "" } else { &kind })
}

#[cfg(test)]
mod tests {
    use super::{cost_class, shared_cost, FileStamp};
    use std::time::Duration;

    #[test]
    fn a_shared_cost_is_read_back_only_for_the_same_version_of_the_file() {
        let dir = crate::test_dir::TestDir::new("shared-cost");
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "a:{PLAIN}x\n").unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&passwd).unwrap());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join("cost"))
            .unwrap();
        assert_eq!(shared_cost::read(&file, &stamp), None, "nothing kept yet");
        shared_cost::write(&file, &stamp, Duration::from_millis(250));
        assert_eq!(
            shared_cost::read(&file, &stamp),
            Some(Duration::from_millis(250))
        );
        std::fs::write(&passwd, "a:{PLAIN}x\nb:{PLAIN}y\n").unwrap();
        let changed = FileStamp::of(&std::fs::metadata(&passwd).unwrap());
        assert_eq!(shared_cost::read(&file, &changed), None, "the file changed");
    }

    #[test]
    fn cost_classes() {
        let class = |s| cost_class(s);
        assert_eq!(class("{PLAIN}a"), class("{plain}b"));
        assert_eq!(class("$6$salt1$h"), class("$6$salt2$h"));
        assert_ne!(class("$6$salt1$h"), class("$6$rounds=9000$salt1$h"));
        assert_ne!(class("$6$rounds=9000$s$h"), class("$6$rounds=9001$s$h"));
        assert_eq!(class("$2b$12$abc"), class("$2b$12$def"));
        assert_ne!(class("$2b$12$abc"), class("$2b$10$abc"));
        assert_eq!(
            class("$argon2id$v=19$m=19456,t=2,p=1$s$h"),
            class("$argon2id$v=19$m=19456,t=2,p=1$t$i")
        );
        assert_ne!(
            class("$argon2id$v=19$m=19456,t=2,p=1$s$h"),
            class("$argon2id$v=19$m=65536,t=2,p=1$s$h")
        );
        assert_eq!(class("{SCRAM-SHA-256}4096,a,b,c"), "scram:4096");
    }
}
