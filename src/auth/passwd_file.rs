//! Accounts from a Dovecot-style passwd-file, re-read at every login.
//!
//! One account per line, `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra`; every field after
//! the password may be left out, so `bob:{PLAIN}secret` is a whole line. Blank lines and lines
//! starting with `#` are skipped. The password field takes the schemes of
//! [`password`]; uid and gid are numbers, home a directory (`%h` in the Maildir
//! template). Gecos, shell and Dovecot's extra fields are read past and ignored, so an existing
//! Dovecot file works unchanged.
//!
//! The file is read anew at each login and not cached: an edit takes effect at the next login,
//! with no restart, and there is no stale copy to reason about. A linear scan of a file of a few
//! thousand lines costs far less than the password hash that follows it.
//!
//! That hash can be skipped for a client that logged in with the same password a moment ago:
//! see [`PasswdFile::with_login_cache`], off unless asked for.

mod login_cache;

use self::login_cache::{FileStamp, LoginCache};
use super::password;
use super::{AuthError, AuthErrorKind, Authenticator, Secret, SecretKinds};
use crate::account::Account;
use crate::template::{Template, TemplateError};
use crate::user_name;
use std::collections::hash_map::{Entry as MapEntry, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An [`Authenticator`] backed by a Dovecot-style passwd-file, or by one such file per domain.
///
/// With a plain path (`/etc/pop3d/passwd`) each line's user field is the full login name as
/// [`user_name::normalize`] makes it: `bob@example.org`, or `bench` for a bare name. With `%d` in
/// the path (`/etc/vmail/%d/passwd`) each domain has its own file and its lines name the local
/// part (`bob`); a line may also give the full name, as Dovecot's own default allows. Names are
/// compared without regard to case, and the first matching line wins.
#[derive(Debug, Clone)]
pub struct PasswdFile {
    template: Template,
    per_domain: bool,
    /// The kinds of secret in the file, and the file's stamp when they were read.
    kinds: Arc<Mutex<Option<(FileStamp, SecretKinds)>>>,
    cache: Option<Arc<LoginCache>>,
}

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
            kinds: Arc::default(),
            cache: None,
        })
    }

    /// Remembers successful logins for `ttl`, so that a client that logs in again with the same
    /// password within that time is not made to wait for the password hash again.
    ///
    /// No password is kept: an entry is a digest of a random per-process secret, the user, the
    /// password and the user's whole passwd line, so it matches only that password against that
    /// line. Any change to the passwd file (its inode, size or times) drops every entry, and the
    /// file is still read at every login, so a removed or locked account is refused at once.
    /// Failed logins are never cached. Clients poll every minute or few; a TTL of a few minutes
    /// covers that. The cache holds at most 10,000 logins (about 1 MB). Without a random secret from the system the cache stays off.
    pub fn with_login_cache(mut self, ttl: Duration) -> PasswdFile {
        self.cache = LoginCache::new(ttl).map(Arc::new);
        self
    }

    /// Reads the whole file and reports its first problem as `line N: what`, for
    /// `pop3d --check`: a line without `:`, an empty or unusable user name, a user given twice,
    /// or a password field [`password::scheme_ok`] refuses. Returns the number of accounts.
    ///
    /// The messages do not repeat the path: the caller, which was given it, names the file.
    ///
    /// With `%d` in the path there is no one file to read; the template was checked by
    /// [`new`](Self::new), and this returns `Ok(0)`.
    pub fn check(&self) -> Result<usize, String> {
        if self.per_domain {
            return Ok(0);
        }
        // Without %d nothing depends on the account: any name expands to the one path.
        let path = self
            .template
            .expand(&Account::new("check"))
            .map_err(|e| e.to_string())?;
        let file = File::open(&path).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        let mut first_line_of: HashMap<String, usize> = HashMap::new();
        let mut line_no = 0;
        while read_line(&mut reader, &mut buf).map_err(|e| e.to_string())? {
            line_no += 1;
            if is_skipped(&buf) {
                continue;
            }
            let at = |what: String| format!("line {line_no}: {what}");
            let line = std::str::from_utf8(&buf).map_err(|_| at("not valid UTF-8".into()))?;
            let fields = Fields::split(line);
            let Some(stored) = fields.password else {
                return Err(at("no ':' after the user name".into()));
            };
            if fields.user.is_empty() {
                return Err(at("empty user name".into()));
            }
            let name = user_name::normalize(fields.user, None)
                .map_err(|e| at(format!("user {:?}: {e}", fields.user)))?;
            password::scheme_ok(stored).map_err(|e| at(format!("user {}: {e}", fields.user)))?;
            match first_line_of.entry(name) {
                MapEntry::Occupied(first) => {
                    return Err(at(format!(
                        "user {} is already on line {}, and only the first line counts",
                        fields.user,
                        first.get()
                    )))
                }
                MapEntry::Vacant(slot) => {
                    slot.insert(line_no);
                }
            }
        }
        Ok(first_line_of.len())
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

    /// Scans the whole file for the mechanisms every account can serve (see
    /// [`Authenticator::secret_kinds`]), remembering the answer until the file changes.
    fn scan_secret_kinds(&self) -> SecretKinds {
        if self.per_domain {
            // No one file to scan: offer only what works for every account.
            return SecretKinds::default();
        }
        let Ok(path) = self.template.expand(&Account::new("scan")) else {
            return SecretKinds::default();
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            return SecretKinds::default();
        };
        let stamp = FileStamp::of(&meta);
        let mut cache = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, kinds)) = *cache {
            if cached == stamp {
                return kinds;
            }
        }
        let Ok(file) = File::open(&path) else {
            return SecretKinds::default();
        };
        let (mut accounts, mut plain, mut scram) = (0, 0, 0);
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        while let Ok(true) = read_line(&mut reader, &mut buf) {
            if is_skipped(&buf) {
                continue;
            }
            accounts += 1;
            let stored = std::str::from_utf8(&buf)
                .ok()
                .and_then(|l| Fields::split(l).password);
            match stored.and_then(password::secret_of) {
                Some(Secret::Plain(_)) => plain += 1,
                Some(Secret::Scram(_)) => scram += 1,
                None => {}
            }
        }
        let kinds = SecretKinds {
            plain: accounts > 0 && plain == accounts,
            scram: accounts > 0 && plain + scram == accounts,
        };
        *cache = Some((stamp, kinds));
        kinds
    }
}

impl Authenticator for PasswdFile {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        let entry = match self.entry(user)? {
            Found::Entry(entry) => entry,
            Found::Unknown(detail) => return Err(unknown(password, detail)),
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
        match password::verify(stored, password) {
            Ok(true) => {
                if let Some((cache, key, stamp)) = cached {
                    cache.insert(key, stamp);
                }
                Ok(fields.account(user, at))
            }
            Ok(false) => Err(AuthError::rejected(format!("wrong password for {user}"))),
            Err(e) => Err(unavailable(format!("{at}: password of {user}: {e}"))),
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
        self.scan_secret_kinds()
    }
}

/// A rejection for a user with no account, after spending the time a real check would take, so
/// that the answer does not tell whether the user exists.
fn unknown(password: &[u8], detail: String) -> AuthError {
    password::spend_time(password);
    AuthError::rejected(detail)
}

fn unavailable(detail: String) -> AuthError {
    AuthError::new(AuthErrorKind::Unavailable, detail)
}

/// The fields of one account line, borrowed from it.
struct Fields<'a> {
    user: &'a str,
    /// `None` when the line has no `:` at all.
    password: Option<&'a str>,
    uid: &'a str,
    gid: &'a str,
    home: &'a str,
}

impl<'a> Fields<'a> {
    fn split(line: &'a str) -> Fields<'a> {
        let mut fields = line.split(':');
        let user = fields.next().unwrap_or("");
        let password = fields.next();
        let uid = fields.next().unwrap_or("");
        let gid = fields.next().unwrap_or("");
        let _gecos = fields.next();
        let home = fields.next().unwrap_or("");
        Fields {
            user,
            password,
            uid,
            gid,
            home,
        }
    }

    /// The account for `user` (its canonical name, whatever case the file used).
    fn account(&self, user: &str, at: &str) -> Account {
        let mut account = Account::new(user);
        if !self.home.is_empty() {
            account = account.with_home(self.home);
        }
        account.uid = parse_id(self.uid, "uid", at);
        account.gid = parse_id(self.gid, "gid", at);
        account
    }
}

/// A uid or gid field. Anything but a number is ignored rather than refused: the login itself is
/// fine, and the mail store decides whether it needs the ids.
fn parse_id(field: &str, what: &str, at: &str) -> Option<u32> {
    if field.is_empty() {
        return None;
    }
    match field.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            log::debug!("{at}: {what} {field:?} is not a number; ignored");
            None
        }
    }
}

/// Reads the next line into `buf`, without its `\n` or `\r\n`. `Ok(false)` at end of file.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    if reader.read_until(b'\n', buf)? == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

/// Blank lines and comments.
fn is_skipped(line: &[u8]) -> bool {
    line.first() == Some(&b'#') || line.iter().all(u8::is_ascii_whitespace)
}

/// The first line (number and bytes) whose user field is one of `keys`, ignoring case. Streams
/// the file and stops there, so only one line is ever held.
fn find(mut reader: impl BufRead, keys: &[&str]) -> io::Result<Option<(usize, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut line_no = 0;
    while read_line(&mut reader, &mut buf)? {
        line_no += 1;
        if is_skipped(&buf) {
            continue;
        }
        let user = buf.split(|&b| b == b':').next().unwrap_or(&[]);
        if keys.iter().any(|key| same_name(user, key)) {
            return Ok(Some((line_no, buf)));
        }
    }
    Ok(None)
}

/// True if the file's user field names `wanted`, which is already lower case.
fn same_name(field: &[u8], wanted: &str) -> bool {
    match std::str::from_utf8(field) {
        Ok(name) if name.is_ascii() => name.eq_ignore_ascii_case(wanted),
        // The same lowering user_name::normalize applies to the login.
        Ok(name) => name.to_lowercase() == wanted,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::password::{known, DUMMY_CHECKS, VERIFY_CALLS};
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("pop3d-passwd-{}-{name}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes `contents` to `rel` inside the directory, creating parents; returns its path.
        fn write(&self, rel: &str, contents: &str) -> PathBuf {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
            path
        }

        fn path(&self, rel: &str) -> String {
            self.0.join(rel).to_str().unwrap().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn passwd(path: &Path) -> PasswdFile {
        PasswdFile::new(path.to_str().unwrap()).unwrap()
    }

    fn kind(result: Result<Account, AuthError>) -> AuthErrorKind {
        result.unwrap_err().kind()
    }

    fn dummy_checks() -> usize {
        DUMMY_CHECKS.with(|n| n.get())
    }

    const PW: &[u8] = known::PASSWORD.as_bytes();

    /// A file as Dovecot's documentation writes them, with every scheme family and field layout.
    fn dovecot_file() -> String {
        format!(
            "# pop3d test accounts\n\
             \n\
             alice:{{SHA512-CRYPT}}{sha512}:1001:1002:Alice A:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G\n\
             bob@example.org:{{PLAIN}}bob's secret:::Bob::\n\
             carol:{yescrypt}::::/var/vmail/carol\n\
             dave:{{BLF-CRYPT}}{bcrypt}\n\
             erin:{{ARGON2ID}}{argon2}:2000:staff\n\
             frank:{{plain}}frank\n\
             grace:{{MD5-CRYPT}}{md5}:1003\n\
             \x20\t\n\
             # bob:{{PLAIN}}commented out\n",
            sha512 = known::SHA512,
            yescrypt = known::YESCRYPT,
            bcrypt = known::BCRYPT_2Y,
            argon2 = known::ARGON2ID,
            md5 = known::MD5,
        )
    }

    #[test]
    fn dovecot_file_with_several_schemes() {
        let dir = TempDir::new("schemes");
        let auth = passwd(&dir.write("passwd", &dovecot_file()));
        for user in ["alice", "carol", "dave", "erin", "grace"] {
            assert_eq!(auth.authenticate(user, PW).unwrap().name, user);
            assert_eq!(
                kind(auth.authenticate(user, b"wrong")),
                AuthErrorKind::Rejected
            );
        }
        assert!(auth
            .authenticate("bob@example.org", b"bob's secret")
            .is_ok());
        assert!(auth.authenticate("frank", b"frank").is_ok());
        for (user, wrong) in [("bob@example.org", &b"bob"[..]), ("frank", b"Frank")] {
            assert_eq!(
                kind(auth.authenticate(user, wrong)),
                AuthErrorKind::Rejected
            );
        }
    }

    #[test]
    fn home_uid_and_gid_come_from_their_fields() {
        let dir = TempDir::new("fields");
        let auth = passwd(&dir.write("passwd", &dovecot_file()));
        let alice = auth.authenticate("alice", PW).unwrap();
        assert_eq!(alice.home, Some(PathBuf::from("/home/alice")));
        assert_eq!((alice.uid, alice.gid), (Some(1001), Some(1002)));
        // Empty fields and missing ones are None.
        let bob = auth
            .authenticate("bob@example.org", b"bob's secret")
            .unwrap();
        assert_eq!(bob, Account::new("bob@example.org"));
        let frank = auth.authenticate("frank", b"frank").unwrap();
        assert_eq!(frank, Account::new("frank"));
        let carol = auth.authenticate("carol", PW).unwrap();
        assert_eq!(carol, Account::new("carol").with_home("/var/vmail/carol"));
        // A gid that is not a number is ignored; the login still succeeds.
        let erin = auth.authenticate("erin", PW).unwrap();
        assert_eq!((erin.uid, erin.gid, erin.home), (Some(2000), None, None));
        let grace = auth.authenticate("grace", PW).unwrap();
        assert_eq!((grace.uid, grace.gid), (Some(1003), None));
    }

    #[test]
    fn unknown_user_is_rejected_after_a_dummy_check() {
        let dir = TempDir::new("unknown");
        let auth = passwd(&dir.write("passwd", &dovecot_file()));
        let before = dummy_checks();
        let err = auth.authenticate("mallory", PW).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::Rejected);
        assert!(err.detail().contains("unknown user"), "{}", err.detail());
        assert_eq!(dummy_checks(), before + 1);
        // A wrong password for a real user costs its own check, not the dummy's.
        let err = auth.authenticate("alice", b"guess").unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::Rejected);
        assert!(err.detail().contains("wrong password"), "{}", err.detail());
        assert_eq!(dummy_checks(), before + 1);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let dir = TempDir::new("comments");
        let path = dir.write(
            "passwd",
            "#zoe:{PLAIN}x\r\n\r\n   \r\nzoe:{PLAIN}z\r\n# trailing comment",
        );
        let auth = passwd(&path);
        assert_eq!(
            kind(auth.authenticate("zoe", b"x")),
            AuthErrorKind::Rejected
        );
        assert_eq!(
            kind(auth.authenticate("#zoe", b"x")),
            AuthErrorKind::Rejected
        );
        // CRLF line ends are not part of the password.
        assert!(auth.authenticate("zoe", b"z").is_ok());
        assert_eq!(auth.check(), Ok(1));
    }

    #[test]
    fn edits_take_effect_at_the_next_login() {
        let dir = TempDir::new("edit");
        let path = dir.write("passwd", "bob:{PLAIN}old\n");
        let auth = passwd(&path);
        assert!(auth.authenticate("bob", b"old").is_ok());
        assert_eq!(
            kind(auth.authenticate("newbie", b"new")),
            AuthErrorKind::Rejected
        );
        dir.write("passwd", "bob:{PLAIN}changed\nnewbie:{PLAIN}new\n");
        assert_eq!(
            kind(auth.authenticate("bob", b"old")),
            AuthErrorKind::Rejected
        );
        assert!(auth.authenticate("bob", b"changed").is_ok());
        assert!(auth.authenticate("newbie", b"new").is_ok());
    }

    fn verify_calls() -> usize {
        VERIFY_CALLS.with(|n| n.get())
    }

    #[test]
    fn login_cache_skips_the_hash_only_for_the_same_password_and_file() {
        let dir = TempDir::new("cache");
        let line = |hash: &str| format!("alice:{{SHA512-CRYPT}}{hash}::::/home/alice\n");
        let path = dir.write("passwd", &line(known::SHA512));
        let auth = passwd(&path).with_login_cache(Duration::from_secs(60));
        let before = verify_calls();
        let first = auth.authenticate("alice", PW).unwrap();
        assert_eq!(verify_calls(), before + 1);
        assert_eq!(auth.authenticate("alice", PW).unwrap(), first);
        assert_eq!(verify_calls(), before + 1, "second login from the cache");
        // A wrong password is always checked, and still refused.
        assert_eq!(
            kind(auth.authenticate("alice", b"wrong")),
            AuthErrorKind::Rejected
        );
        assert_eq!(verify_calls(), before + 2);
        // Any change to the file drops the entries: a locked account is refused at once.
        dir.write("passwd", &line(&format!("!{}", known::SHA512)));
        assert_eq!(
            kind(auth.authenticate("alice", PW)),
            AuthErrorKind::Rejected
        );
        // Back as it was: checked in full once, then cached again.
        dir.write("passwd", &format!("# edited\n{}", line(known::SHA512)));
        let n = verify_calls();
        assert!(auth.authenticate("alice", PW).is_ok());
        assert!(auth.authenticate("alice", PW).is_ok());
        assert_eq!(verify_calls(), n + 1);
        // A removed account is refused even with a live entry.
        dir.write("passwd", "# nobody\n");
        assert_eq!(
            kind(auth.authenticate("alice", PW)),
            AuthErrorKind::Rejected
        );
    }

    #[test]
    fn without_the_cache_every_login_checks_the_hash() {
        let dir = TempDir::new("no-cache");
        let auth = passwd(&dir.write("passwd", "bob:{PLAIN}x\n"));
        let before = verify_calls();
        for _ in 0..3 {
            assert!(auth.authenticate("bob", b"x").is_ok());
        }
        assert_eq!(verify_calls(), before + 3);
    }

    #[test]
    fn one_file_per_domain() {
        let dir = TempDir::new("domains");
        dir.write(
            "a.org/passwd",
            "bob:{PLAIN}alpha\ncarol@a.org:{PLAIN}full\n",
        );
        dir.write("b.org/passwd", "bob:{PLAIN}beta:500:500::/srv/b/bob\n");
        let auth = PasswdFile::new(&dir.path("%d/passwd")).unwrap();
        assert_eq!(
            auth.authenticate("bob@a.org", b"alpha").unwrap().name,
            "bob@a.org"
        );
        assert_eq!(
            kind(auth.authenticate("bob@a.org", b"beta")),
            AuthErrorKind::Rejected
        );
        let bob = auth.authenticate("bob@b.org", b"beta").unwrap();
        assert_eq!(bob.name, "bob@b.org");
        assert_eq!(
            (bob.uid, bob.home),
            (Some(500), Some(PathBuf::from("/srv/b/bob")))
        );
        assert_eq!(
            kind(auth.authenticate("bob@b.org", b"alpha")),
            AuthErrorKind::Rejected
        );
        // A line may give the full name, as in a Dovecot file with the default username_format.
        assert!(auth.authenticate("carol@a.org", b"full").is_ok());

        // No file for the domain, or no domain at all: unknown user, at the cost of a check.
        let before = dummy_checks();
        let err = auth.authenticate("bob@c.org", b"alpha").unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::Rejected);
        assert!(err.detail().contains("unknown user"), "{}", err.detail());
        assert_eq!(
            kind(auth.authenticate("bob", b"alpha")),
            AuthErrorKind::Rejected
        );
        assert_eq!(
            kind(auth.authenticate("zed@a.org", b"alpha")),
            AuthErrorKind::Rejected
        );
        assert_eq!(dummy_checks(), before + 3);
        assert_eq!(auth.check(), Ok(0));
    }

    #[test]
    fn missing_main_file_is_unavailable() {
        let dir = TempDir::new("missing");
        let auth = PasswdFile::new(&dir.path("nope")).unwrap();
        assert_eq!(
            kind(auth.authenticate("bob", b"x")),
            AuthErrorKind::Unavailable
        );
        assert!(auth.check().is_err());
    }

    #[test]
    fn bad_line_for_the_user_is_unavailable_and_named() {
        let dir = TempDir::new("malformed");
        let path = dir.write(
            "passwd",
            "ok:{PLAIN}x\n# note\nbob:{SHA512-CRYPT}$6$truncated\nsam:{SSHA}abc\nnopass\n",
        );
        let auth = passwd(&path);
        for (user, line) in [("bob", 3), ("sam", 4), ("nopass", 5)] {
            let err = auth.authenticate(user, b"hunter2").unwrap_err();
            assert_eq!(err.kind(), AuthErrorKind::Unavailable, "{user}");
            assert!(
                err.detail().contains(&format!("passwd:{line}:")),
                "{}",
                err.detail()
            );
            assert!(!err.detail().contains("hunter2"), "{}", err.detail());
        }
        // The other accounts still work.
        assert!(auth.authenticate("ok", b"x").is_ok());
    }

    #[test]
    fn locked_account_is_rejected_like_a_wrong_password() {
        let dir = TempDir::new("locked");
        let path = dir.write("passwd", &format!("bob:!{}\n", known::SHA512));
        let auth = passwd(&path);
        let before = dummy_checks();
        assert_eq!(kind(auth.authenticate("bob", PW)), AuthErrorKind::Rejected);
        assert_eq!(dummy_checks(), before + 1);
        assert_eq!(auth.check(), Ok(1));
    }

    #[test]
    fn names_match_without_regard_to_case() {
        let dir = TempDir::new("case");
        let path = dir.write(
            "passwd",
            "Bob:{PLAIN}x\nALICE@Example.ORG:{PLAIN}y\n\u{c9}mile:{PLAIN}z\n",
        );
        let auth = passwd(&path);
        // Account names are the canonical login, not the file's spelling.
        assert_eq!(auth.authenticate("bob", b"x").unwrap().name, "bob");
        assert!(auth.authenticate("alice@example.org", b"y").is_ok());
        assert!(auth.authenticate("\u{e9}mile", b"z").is_ok());
        // Passwords do keep their case.
        assert_eq!(
            kind(auth.authenticate("bob", b"X")),
            AuthErrorKind::Rejected
        );
    }

    #[test]
    fn first_matching_line_wins() {
        let dir = TempDir::new("first");
        let path = dir.write("passwd", "bob:{PLAIN}one\nBOB:{PLAIN}two\n");
        let auth = passwd(&path);
        assert!(auth.authenticate("bob", b"one").is_ok());
        assert_eq!(
            kind(auth.authenticate("bob", b"two")),
            AuthErrorKind::Rejected
        );
    }

    #[test]
    fn check_counts_accounts() {
        let dir = TempDir::new("check-ok");
        let auth = passwd(&dir.write("passwd", &dovecot_file()));
        assert_eq!(auth.check(), Ok(7));
    }

    #[test]
    fn check_reports_the_first_bad_line() {
        let dir = TempDir::new("check-bad");
        let good = "# header\nok:{PLAIN}x\n\n";
        let cases = [
            ("no-colon\n", "no ':'"),
            (":{PLAIN}x\n", "empty user name"),
            ("bob:{SSHA}abc\n", "unknown password scheme"),
            ("bob:secret\n", "not a crypt(3) hash"),
            ("bob:{SHA512-CRYPT}$6$salt$short\n", "not a crypt(3) hash"),
            ("../etc:{PLAIN}x\n", "user \"../etc\""),
            ("a b:{PLAIN}x\n", "user \"a b\""),
            ("OK:{PLAIN}y\n", "already on line 2"),
        ];
        for (bad, want) in cases {
            let path = dir.write(
                "passwd",
                &format!("{good}{bad}later:{{PLAIN}}x\nlater2:bad\n"),
            );
            let e = passwd(&path).check().unwrap_err();
            assert!(
                e.starts_with("line 4: ") && e.contains(want),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn challenge_mechanisms_need_every_account_to_support_them() {
        let dir = TempDir::new("kinds");
        let scram = password::hash("SCRAM-SHA-256", b"pw").unwrap();
        let sha = password::hash("SHA512-CRYPT", b"pw").unwrap();
        let cases = [
            ("a:{PLAIN}x\n# comment\n\nb:{CLEAR}y::::::\n", true, true),
            (&*format!("a:{{PLAIN}}x\nb:{scram}\n"), false, true),
            (
                &*format!("a:{{PLAIN}}x\nb:{scram}\nc:{sha}\n"),
                false,
                false,
            ),
            ("", false, false),
        ];
        let path = dir.0.join("passwd");
        let auth = passwd(&path);
        for (text, plain, scram) in cases {
            std::fs::write(&path, text).unwrap();
            let kinds = auth.secret_kinds();
            assert_eq!((kinds.plain, kinds.scram), (plain, scram), "{text:?}");
        }
        let per_domain = PasswdFile::new(&format!("{}/%d", dir.0.display())).unwrap();
        assert_eq!(per_domain.secret_kinds(), SecretKinds::default());
    }
}
