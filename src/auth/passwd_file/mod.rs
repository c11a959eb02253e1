//! Accounts from a Dovecot-style passwd-file, re-read at every login.
//!
//! One account per line, `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`; every field after
//! the password may be left out, so `bob:{PLAIN}secret` is a whole line. Blank lines and lines
//! starting with `#` are skipped. The password field takes the schemes of
//! [`password`]; uid and gid are numbers, home a directory (`%h` in the Maildir
//! template). Gecos and shell are read past; of Dovecot's extra fields (after the shell,
//! space-separated `key=value`), the quota rules are read (`userdb_quota_rule=*:storage=1G`,
//! `userdb_quota_rule2=*:messages=10000`: see [`Quota::apply_dovecot_rule`]) and the others
//! ignored, so an existing Dovecot file works unchanged.
//!
//! [`Quota::apply_dovecot_rule`]: crate::store::delivery::Quota::apply_dovecot_rule
//!
//! The file is read anew at each login and not cached: an edit takes effect at the next login,
//! with no restart, and there is no stale copy to reason about. Each lookup reads the whole file,
//! even past the line it wants, so that how long it takes does not tell where the user's line is,
//! or whether there is one. A scan of a few thousand lines costs far less than the password
//! hash that follows it (50,000 lines, about 10 ms in a debug build).
//!
//! That hash can be skipped for a client that logged in with the same password a moment ago:
//! see [`PasswdFile::with_login_cache`], off unless asked for.

mod check;
mod extra;
mod line;
mod login_cache;
mod summary;
#[cfg(test)]
mod tests;

use self::line::{find, Fields};
use self::login_cache::{FileStamp, LoginCache};
use self::summary::Summary;
use super::password::{self, PasswordErrorKind};
use super::{AuthError, AuthErrorKind, Authenticator, Secret, SecretKinds};
use crate::account::Account;
use crate::template::{Template, TemplateError};
use std::fs::File;
use std::io::{self, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An [`Authenticator`] backed by a Dovecot-style passwd-file, or by one such file per domain.
///
/// With a plain path (`/etc/pop3d/passwd`) each line's user field is the full login name as
/// [`normalize`](crate::user_name::normalize) makes it: `bob@example.org`, or `bench` for a bare
/// name. With `%d` in the path (`/etc/vmail/%d/passwd`) each domain has its own file and its
/// lines name the local part (`bob`); a line may also give the full name, as Dovecot's own
/// default allows. Names are compared without regard to case, and the first matching line wins.
#[derive(Debug, Clone)]
pub struct PasswdFile {
    template: Template,
    per_domain: bool,
    /// What the file says as a whole, and the file's stamp when it was read.
    summary: Arc<Mutex<Option<(FileStamp, Summary)>>>,
    /// The cost of the costliest check, and the file's stamp (none with `%d`) when measured.
    cost: Arc<Mutex<Option<MeasuredCost>>>,
    /// Where the measured cost is kept for other processes, if anywhere.
    shared_cost: Option<Arc<std::fs::File>>,
    cache: Option<Arc<LoginCache>>,
    /// Checks a password against a stored hash: [`password::verify`], but for the tests, which
    /// record the checks made to see which were spent and which were skipped.
    verify: Verify,
}

/// A measured cost, and the stamp of the file it was measured for (none with `%d`).
type MeasuredCost = (Option<FileStamp>, Duration);

type Verify = fn(&str, &[u8]) -> Result<bool, password::PasswordError>;

impl PasswdFile {
    /// A passwd-file at `path_template`, which may contain `%d` (the login's domain) and `%%`.
    ///
    /// Nothing is read yet: a missing file shows up at the first login (as
    /// [`AuthErrorKind::Unavailable`]) or in [`check`](Self::check).
    pub fn new(path_template: &str) -> Result<PasswdFile, TemplateError> {
        let template = Template::parse(path_template, "d")?;
        Ok(PasswdFile {
            per_domain: template.uses_domain(),
            template,
            summary: Arc::default(),
            cost: Arc::default(),
            shared_cost: None,
            cache: None,
            verify: password::verify,
        })
    }

    /// Remembers successful logins for `ttl`, so that a client that logs in again with the same
    /// password within that time is not made to wait for the password hash again.
    ///
    /// No password is kept: an entry is a digest of a random per-process secret, the user, the
    /// password and the user's whole passwd line, so it matches only that password against that
    /// line. Any change to the passwd file (its inode, size or times) drops every entry, and the
    /// file is still read at every login, so a removed or locked account is refused at once.
    /// Keeps the measured cost of the costliest check (see
    /// [`Authenticator::costliest_check`]) in `file`, for the other processes that read the
    /// same passwd file: under inetd each connection is a new process, and measuring in each
    /// would double the cost of every login. The file must be writable and trusted (a state
    /// directory only the server can write): a smaller cost in it would shorten the padding.
    pub fn with_shared_cost(mut self, file: std::fs::File) -> PasswdFile {
        self.shared_cost = Some(Arc::new(file));
        self
    }

    /// Failed logins are never cached. Clients poll every minute or few; a TTL of a few minutes
    /// covers that. The cache holds at most 10,000 logins (about 1 MB). Without a random secret from the system the cache stays off.
    pub fn with_login_cache(mut self, ttl: Duration) -> PasswdFile {
        self.cache = LoginCache::new(ttl).map(Arc::new);
        self
    }
}

/// A user's account line, found.
struct Entry {
    /// `path:line`, for the log.
    at: String,
    line: String,
    /// The file's stamp when read, when the login cache needs it.
    stamp: Option<FileStamp>,
}

/// The result of looking a user up.
enum Found {
    Entry(Entry),
    /// No such user; the detail says why, for the log.
    Unknown(String),
}

impl PasswdFile {
    /// Finds `user`'s line. Errors are for a file that cannot be read or a line that cannot be
    /// used, never for an unknown user.
    fn entry(&self, user: &str) -> Result<Found, AuthError> {
        let account = Account::new(user);
        let path = match self.template.expand(&account) {
            Ok(path) => path,
            // Only %d can fail to expand: a name without a domain has no file to be in.
            Err(e) => return Ok(Found::Unknown(format!("unknown user {user}: {e}"))),
        };
        // In a per-domain file the line names the local part (or, Dovecot-style, the full name).
        let names = [user, account.local_part()];
        let keys = if self.per_domain {
            &names[..]
        } else {
            &names[..1]
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if self.per_domain && e.kind() == io::ErrorKind::NotFound => {
                let detail = format!("unknown user {user}: no {} for its domain", path.display());
                return Ok(Found::Unknown(detail));
            }
            Err(e) => return Err(unavailable(format!("cannot open {}: {e}", path.display()))),
        };
        let stamp = match &self.cache {
            Some(_) => file.metadata().ok().map(|m| FileStamp::of(&m)),
            None => None,
        };
        let found = find(BufReader::new(file), keys)
            .map_err(|e| unavailable(format!("cannot read {}: {e}", path.display())))?;
        let Some((line_no, line)) = found else {
            return Ok(Found::Unknown(format!("unknown user {user}")));
        };
        let at = format!("{}:{line_no}", path.display());
        let line = String::from_utf8(line)
            .map_err(|_| unavailable(format!("{at}: the line for {user} is not valid UTF-8")))?;
        Ok(Found::Entry(Entry { at, line, stamp }))
    }

    /// A rejection for a user with no account, after spending the time a real check would
    /// take, so that the answer does not tell whether the user exists.
    fn unknown(&self, password: &[u8], detail: String) -> AuthError {
        let _ = (self.verify)(password::DUMMY_HASH, password);
        AuthError::rejected(detail)
    }
}

impl Authenticator for PasswdFile {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        let entry = match self.entry(user)? {
            Found::Entry(entry) => entry,
            Found::Unknown(detail) => return Err(self.unknown(password, detail)),
        };
        let fields = Fields::split(&entry.line);
        let at = entry.at.as_str();
        let stored = fields
            .password
            .ok_or_else(|| unavailable(format!("{at}: no password field for {user}")))?;
        let cached = match (&self.cache, entry.stamp) {
            (Some(cache), Some(stamp)) => {
                Some((cache, cache.key(user, password, &entry.line), stamp))
            }
            _ => None,
        };
        if let Some((cache, key, stamp)) = &cached {
            if cache.hit(key, *stamp) {
                return Ok(fields.account(user, at));
            }
        }
        match (self.verify)(stored, password) {
            Ok(true) => {
                if let Some((cache, key, stamp)) = cached {
                    cache.insert(key, stamp);
                }
                Ok(fields.account(user, at))
            }
            Ok(false) => Err(AuthError::rejected(format!("wrong password for {user}"))),
            // Refused before any work: fails as a wrong password would, after as long, and
            // the log says why. The file needs fixing, not the server waiting for it.
            Err(e) if e.kind() == PasswordErrorKind::TooCostly => {
                Err(self.unknown(password, format!("{at}: password of {user} refused: {e}")))
            }
            Err(e) => Err(unavailable(format!("{at}: password of {user}: {e}"))),
        }
    }

    /// The account of `user`'s line, whatever its password field says: a delivery agent
    /// needs the home, ids and quota, not the password.
    fn lookup(&self, user: &str) -> Result<Account, AuthError> {
        match self.entry(user)? {
            Found::Entry(entry) => Ok(Fields::split(&entry.line).account(user, &entry.at)),
            Found::Unknown(detail) => Err(AuthError::rejected(detail)),
        }
    }

    fn secret(&self, user: &str) -> Result<(Account, Secret), AuthError> {
        let entry = match self.entry(user)? {
            Found::Entry(entry) => entry,
            Found::Unknown(detail) => return Err(AuthError::rejected(detail)),
        };
        let fields = Fields::split(&entry.line);
        match fields.password.and_then(password::secret_of) {
            Some(secret) => Ok((fields.account(user, &entry.at), secret)),
            None => Err(AuthError::rejected(format!(
                "{}: {user} has no challenge-response secret (needs {{PLAIN}} or {{SCRAM-SHA-256}})",
                entry.at
            ))),
        }
    }

    fn secret_kinds(&self) -> SecretKinds {
        self.summary().kinds
    }

    /// The count most `{SCRAM-SHA-256}` lines of the file use (of counts as common, the
    /// highest), or 4096 when there are none.
    fn scram_iterations(&self) -> u32 {
        self.summary()
            .scram_iterations
            .unwrap_or(super::secret::SCRAM_MIN_ITERATIONS)
    }

    /// Measured, once per version of the file: one check against the dummy hash of unknown
    /// users and one of each kind of hash in the file (scheme and cost parameters), the
    /// longest plus a quarter, at most 10 seconds. With `%d` in the path, only the dummy check.
    fn costliest_check(&self) -> Duration {
        self.measure_costliest()
    }
}

fn unavailable(detail: String) -> AuthError {
    AuthError::new(AuthErrorKind::Unavailable, detail)
}
