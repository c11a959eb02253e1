//! Logins against real files: every scheme, field layouts, per-domain files, edits, the cache.

use super::super::password::{known, PasswordError, DUMMY_HASH};
use super::*;
use crate::test_dir::TestDir;
use std::path::{Path, PathBuf};

/// Writes `contents` to `rel` inside `dir`, creating parents; returns its path.
fn write(dir: &TestDir, rel: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
    path
}

/// `rel` inside `dir`, as a template string.
fn template_in(dir: &TestDir, rel: &str) -> String {
    dir.path().join(rel).to_str().unwrap().to_string()
}

fn passwd(path: &Path) -> PasswdFile {
    PasswdFile::new(path.to_str().unwrap()).unwrap()
}

fn kind(result: Result<Account, AuthError>) -> AuthErrorKind {
    result.unwrap_err().kind()
}

thread_local! {
    /// The stored hashes this thread's [`recording`] authenticators checked passwords against.
    static CHECKED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `auth`, recording every password check it makes (see [`checked`]).
fn recording(auth: PasswdFile) -> PasswdFile {
    fn verify(stored: &str, password: &[u8]) -> Result<bool, PasswordError> {
        CHECKED.with(|c| c.borrow_mut().push(stored.to_owned()));
        password::verify(stored, password)
    }
    PasswdFile { verify, ..auth }
}

/// The hashes checked since the last call: one per password check spent.
fn checked() -> Vec<String> {
    CHECKED.with(|c| c.take())
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
    let dir = TestDir::new("passwd-schemes");
    let auth = passwd(&write(&dir, "passwd", &dovecot_file()));
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
    let dir = TestDir::new("passwd-fields");
    let auth = passwd(&write(&dir, "passwd", &dovecot_file()));
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
fn quota_rules_come_from_the_extra_fields_and_lookup_needs_no_password() {
    let dir = TestDir::new("passwd-quota");
    let auth = passwd(&write(&dir, "passwd", &dovecot_file()));
    // The rule's own colons do not shift the fields before it.
    let alice = auth.authenticate("alice", PW).unwrap();
    assert_eq!(alice.home, Some(PathBuf::from("/home/alice")));
    let one_gig = crate::store::Quota {
        storage: Some(1 << 30),
        messages: None,
    };
    assert_eq!(alice.quota, Some(one_gig));
    assert_eq!(auth.lookup("alice").unwrap(), alice);
    assert_eq!(auth.lookup("bob@example.org").unwrap().quota, None);
    // Locked or hashed, a line still names its account for delivery; no line, no account.
    let dave = auth.lookup("dave").unwrap();
    assert_eq!(dave.name, "dave");
    assert_eq!(kind(auth.lookup("nobody")), AuthErrorKind::Rejected);
    let missing = passwd(&dir.path().join("missing"));
    assert_eq!(kind(missing.lookup("alice")), AuthErrorKind::Unavailable);
}

#[test]
fn unknown_user_is_rejected_after_a_dummy_check() {
    let dir = TestDir::new("passwd-unknown");
    let auth = recording(passwd(&write(&dir, "passwd", &dovecot_file())));
    let err = auth.authenticate("mallory", PW).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::Rejected);
    assert!(err.detail().contains("unknown user"), "{}", err.detail());
    assert_eq!(checked(), [DUMMY_HASH]);
    // A wrong password for a real user costs its own check, not the dummy's.
    let err = auth.authenticate("alice", b"guess").unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::Rejected);
    assert!(err.detail().contains("wrong password"), "{}", err.detail());
    assert_eq!(checked(), [format!("{{SHA512-CRYPT}}{}", known::SHA512)]);
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let dir = TestDir::new("passwd-comments");
    let path = write(
        &dir,
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
    let dir = TestDir::new("passwd-edit");
    let path = write(&dir, "passwd", "bob:{PLAIN}old\n");
    let auth = passwd(&path);
    assert!(auth.authenticate("bob", b"old").is_ok());
    assert_eq!(
        kind(auth.authenticate("newbie", b"new")),
        AuthErrorKind::Rejected
    );
    write(&dir, "passwd", "bob:{PLAIN}changed\nnewbie:{PLAIN}new\n");
    assert_eq!(
        kind(auth.authenticate("bob", b"old")),
        AuthErrorKind::Rejected
    );
    assert!(auth.authenticate("bob", b"changed").is_ok());
    assert!(auth.authenticate("newbie", b"new").is_ok());
}

#[test]
fn login_cache_skips_the_hash_only_for_the_same_password_and_file() {
    let dir = TestDir::new("passwd-cache");
    let line = |hash: &str| format!("alice:{{SHA512-CRYPT}}{hash}::::/home/alice\n");
    let path = write(&dir, "passwd", &line(known::SHA512));
    let auth = recording(passwd(&path).with_login_cache(Duration::from_secs(60)));
    let first = auth.authenticate("alice", PW).unwrap();
    assert_eq!(checked().len(), 1);
    assert_eq!(auth.authenticate("alice", PW).unwrap(), first);
    assert_eq!(checked().len(), 0, "second login from the cache");
    // A wrong password is always checked, and still refused.
    assert_eq!(
        kind(auth.authenticate("alice", b"wrong")),
        AuthErrorKind::Rejected
    );
    assert_eq!(checked().len(), 1);
    // Any change to the file drops the entries: a locked account is refused at once.
    write(&dir, "passwd", &line(&format!("!{}", known::SHA512)));
    assert_eq!(
        kind(auth.authenticate("alice", PW)),
        AuthErrorKind::Rejected
    );
    // Back as it was: checked in full once, then cached again.
    write(
        &dir,
        "passwd",
        &format!("# edited\n{}", line(known::SHA512)),
    );
    checked();
    assert!(auth.authenticate("alice", PW).is_ok());
    assert!(auth.authenticate("alice", PW).is_ok());
    assert_eq!(checked().len(), 1);
    // A removed account is refused even with a live entry.
    write(&dir, "passwd", "# nobody\n");
    assert_eq!(
        kind(auth.authenticate("alice", PW)),
        AuthErrorKind::Rejected
    );
}

#[test]
fn without_the_cache_every_login_checks_the_hash() {
    let dir = TestDir::new("passwd-no-cache");
    let auth = recording(passwd(&write(&dir, "passwd", "bob:{PLAIN}x\n")));
    for _ in 0..3 {
        assert!(auth.authenticate("bob", b"x").is_ok());
    }
    assert_eq!(checked().len(), 3);
}

#[test]
fn one_file_per_domain() {
    let dir = TestDir::new("passwd-domains");
    write(
        &dir,
        "a.org/passwd",
        "bob:{PLAIN}alpha\ncarol@a.org:{PLAIN}full\n",
    );
    write(
        &dir,
        "b.org/passwd",
        "bob:{PLAIN}beta:500:500::/srv/b/bob\n",
    );
    let auth = recording(PasswdFile::new(&template_in(&dir, "%d/passwd")).unwrap());
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
    checked();
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
    assert_eq!(checked(), [DUMMY_HASH; 3]);
    assert_eq!(auth.check(), Ok(0));
}

#[test]
fn missing_main_file_is_unavailable() {
    let dir = TestDir::new("passwd-missing");
    let auth = PasswdFile::new(&template_in(&dir, "nope")).unwrap();
    assert_eq!(
        kind(auth.authenticate("bob", b"x")),
        AuthErrorKind::Unavailable
    );
    assert!(auth.check().is_err());
}

#[test]
fn bad_line_for_the_user_is_unavailable_and_named() {
    let dir = TestDir::new("passwd-malformed");
    let path = write(
        &dir,
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
    let dir = TestDir::new("passwd-locked");
    let path = write(&dir, "passwd", &format!("bob:!{}\n", known::SHA512));
    let auth = recording(passwd(&path));
    assert_eq!(kind(auth.authenticate("bob", PW)), AuthErrorKind::Rejected);
    // One check, as for a wrong password: verify spends it on the dummy hash (see the
    // password tests, locked_crypt_hash_is_checked_as_locked).
    assert_eq!(checked(), [format!("!{}", known::SHA512)]);
    assert_eq!(auth.check(), Ok(1));
}

#[test]
fn names_match_without_regard_to_case() {
    let dir = TestDir::new("passwd-case");
    let path = write(
        &dir,
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
    let dir = TestDir::new("passwd-first");
    let path = write(&dir, "passwd", "bob:{PLAIN}one\nBOB:{PLAIN}two\n");
    let auth = passwd(&path);
    assert!(auth.authenticate("bob", b"one").is_ok());
    assert_eq!(
        kind(auth.authenticate("bob", b"two")),
        AuthErrorKind::Rejected
    );
}

#[test]
fn check_counts_accounts() {
    let dir = TestDir::new("passwd-check-ok");
    let auth = passwd(&write(&dir, "passwd", &dovecot_file()));
    assert_eq!(auth.check(), Ok(7));
}

#[test]
fn check_reports_the_first_bad_line() {
    let dir = TestDir::new("passwd-check-bad");
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
        let path = write(
            &dir,
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
    let dir = TestDir::new("passwd-kinds");
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
    let path = dir.path().join("passwd");
    let auth = passwd(&path);
    for (text, plain, scram) in cases {
        std::fs::write(&path, text).unwrap();
        let kinds = auth.secret_kinds();
        assert_eq!((kinds.plain, kinds.scram), (plain, scram), "{text:?}");
    }
    let per_domain = PasswdFile::new(&format!("{}/%d", dir.path().display())).unwrap();
    assert_eq!(per_domain.secret_kinds(), SecretKinds::default());
}
