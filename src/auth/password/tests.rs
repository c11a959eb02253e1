//! Known answers from other tools for every scheme, and the errors for broken hashes.

use super::known::*;
use super::*;

/// Asserts that `stored` accepts `right` and refuses a few wrong passwords.
fn assert_known(stored: &str, right: &[u8]) {
    assert_eq!(
        verify(stored, right),
        Ok(true),
        "{stored} with the right password"
    );
    let mut off_by_one = right.to_vec();
    off_by_one[0] ^= 1;
    let mut longer = right.to_vec();
    longer.push(b'x');
    let wrongs: [&[u8]; 5] = [
        b"wrong",
        b"",
        &off_by_one,
        &longer,
        &right[..right.len() - 1],
    ];
    for wrong in wrongs {
        assert_eq!(verify(stored, wrong), Ok(false), "{stored} with {wrong:?}");
    }
}

#[test]
fn plain_schemes_compare_exactly() {
    for prefix in ["{PLAIN}", "{CLEAR}", "{CLEARTEXT}"] {
        assert_known(&format!("{prefix}{PASSWORD}"), PASSWORD.as_bytes());
    }
    // Everything after the prefix is the password, ':' and '{' included.
    assert_known("{PLAIN}{a}b c", b"{a}b c");
    assert_known("{PLAIN}p\u{e4}ss", "p\u{e4}ss".as_bytes());
}

#[test]
fn sha_crypt_known_answers() {
    for hash in [SHA512, SHA512_ROUNDS, SHA256] {
        assert_known(hash, PASSWORD.as_bytes());
    }
    assert_known(&format!("{{SHA512-CRYPT}}{SHA512}"), PASSWORD.as_bytes());
    assert_known(&format!("{{SHA256-CRYPT}}{SHA256}"), PASSWORD.as_bytes());
    assert_known(&format!("{{CRYPT}}{SHA512}"), PASSWORD.as_bytes());
}

#[test]
fn md5_crypt_known_answer() {
    assert_known(MD5, PASSWORD.as_bytes());
    assert_known(&format!("{{MD5-CRYPT}}{MD5}"), PASSWORD.as_bytes());
}

#[test]
fn bcrypt_known_answers() {
    for hash in [BCRYPT_2B, BCRYPT_2Y, BCRYPT_2A] {
        assert_known(hash, PASSWORD.as_bytes());
        assert_known(&format!("{{BLF-CRYPT}}{hash}"), PASSWORD.as_bytes());
    }
}

#[test]
fn yescrypt_known_answers() {
    assert_known(YESCRYPT, PASSWORD.as_bytes());
    assert_known(&format!("{{CRYPT}}{YESCRYPT}"), PASSWORD.as_bytes());
    assert_known(YESCRYPT_UMLAUT, "p\u{e4}ssw\u{f6}rd".as_bytes());
    // The same text in Latin-1 is a different password.
    assert_eq!(verify(YESCRYPT_UMLAUT, b"p\xe4ssw\xf6rd"), Ok(false));
}

#[test]
fn des_crypt_known_answer() {
    for stored in [DES.to_string(), format!("{{CRYPT}}{DES}")] {
        assert_eq!(verify(&stored, PASSWORD.as_bytes()), Ok(true));
        for wrong in [&b"wrong"[..], b"", b"Tr0ub4d", b"tr0ub4dor&3"] {
            assert_eq!(verify(&stored, wrong), Ok(false), "{wrong:?}");
        }
        // Traditional DES reads only the first 8 characters: one more reason to rehash.
        assert_eq!(verify(&stored, b"Tr0ub4do"), Ok(true));
    }
}

#[test]
fn argon2_known_answers() {
    for hash in [ARGON2ID, ARGON2I] {
        assert_known(hash, PASSWORD.as_bytes());
    }
    assert_known(&format!("{{ARGON2ID}}{ARGON2ID}"), PASSWORD.as_bytes());
    assert_known(&format!("{{ARGON2I}}{ARGON2I}"), PASSWORD.as_bytes());
    assert_known(&format!("{{CRYPT}}{ARGON2ID}"), PASSWORD.as_bytes());
}

#[test]
fn prefix_is_case_insensitive() {
    let pw = PASSWORD.as_bytes();
    assert_eq!(verify(&format!("{{sha512-crypt}}{SHA512}"), pw), Ok(true));
    assert_eq!(verify(&format!("{{Blf-Crypt}}{BCRYPT_2Y}"), pw), Ok(true));
    assert_eq!(verify(&format!("{{argon2id}}{ARGON2ID}"), pw), Ok(true));
    assert_eq!(verify(&format!("{{plain}}{PASSWORD}"), pw), Ok(true));
    assert_eq!(verify(&format!("{{ClearText}}{PASSWORD}"), pw), Ok(true));
    assert_eq!(verify(&format!("{{crypt}}{YESCRYPT}"), pw), Ok(true));
}

#[test]
fn nul_in_password_never_matches() {
    let mut with_nul = PASSWORD.as_bytes().to_vec();
    with_nul.push(0);
    for stored in [SHA512, YESCRYPT, BCRYPT_2B, ARGON2ID, DES] {
        assert_eq!(verify(stored, &with_nul), Ok(false), "{stored}");
    }
    assert_eq!(verify("{PLAIN}a\0b", b"a\0b"), Ok(false));
}

#[test]
fn overlong_password_does_not_match() {
    let long = vec![b'a'; 4096];
    assert_eq!(verify(SHA512, &long), Ok(false));
    assert_eq!(verify(ARGON2ID, &long), Ok(false));
}

#[test]
fn locked_crypt_hash_never_matches() {
    for stored in [format!("!{SHA512}"), "*".to_string(), "!".to_string()] {
        assert_eq!(scheme_ok(&stored), Ok(()), "{stored}");
        assert_eq!(verify(&stored, PASSWORD.as_bytes()), Ok(false), "{stored}");
    }
}

#[test]
fn locked_crypt_hash_is_checked_as_locked() {
    // Scheme::Locked is what makes verify spend a check against DUMMY_HASH, so that a locked
    // account answers as slowly as a wrong password.
    let scheme = |stored: &str| parse(stored).map(|(scheme, _)| scheme);
    for stored in [format!("!{SHA512}"), format!("{{CRYPT}}*{DES}"), "*".into()] {
        assert_eq!(scheme(&stored), Ok(Scheme::Locked), "{stored}");
    }
    // Only under crypt: '!' is a character like any other in a plain password.
    assert_eq!(scheme("{PLAIN}!x"), Ok(Scheme::Plain));
    assert_eq!(scheme(SHA512), Ok(Scheme::Crypt));
}

#[test]
fn malformed_hashes_are_errors() {
    let truncated = &SHA512[..SHA512.len() - 1];
    let cases = [
        "".to_string(),
        "{PLAIN}".to_string(),
        "{SHA512-CRYPT}".to_string(),
        "{PLAIN secret".to_string(),
        // Unknown schemes, including real Dovecot ones pop3d does not take.
        "{NOPE}x".to_string(),
        "{SSHA512}abcd".to_string(),
        "{}x".to_string(),
        // Plaintext without a prefix is not a crypt hash.
        "secret".to_string(),
        "correct horse".to_string(),
        truncated.to_string(),
        "$6$abc".to_string(),
        "$6$salt$short".to_string(),
        "$argon2id$v=19$m=1024,t=2,p=1$cG9wM2RLbm93blNhbHQxNg".to_string(),
        "{ARGON2ID}garbage".to_string(),
        "{ARGON2ID}$argon2id$v=19$m=1024,t=0,p=1$cG9wM2RLbm93blNhbHQxNg$AAAA".to_string(),
        "$argon2x$v=19$m=1024,t=2,p=1$cG9wM2RLbm93blNhbHQxNg$AAAAAAAAAAAAAAAAAAAAAA".to_string(),
        // Plausible shapes that only libcrypt can refuse: an unknown id, bcrypt cost 99, a
        // yescrypt salt of a length it does not take.
        "$9$salt$0123456789012345678901234567890123456789012".to_string(),
        "$2b$99$Xk3pQ9vR2mT7wL5nB8cZ4eZmL59IrKx2.IclQjlTzIvHru/OR4Fyu".to_string(),
        "$y$j9T$abcdefghijklmnopqrstuv$kG1Uuiqsi/ejhLN7y6J4PM.zRLuOlFclxKVjgo5vuj0".to_string(),
    ];
    for stored in &cases {
        assert!(
            verify(stored, PASSWORD.as_bytes()).is_err(),
            "verify {stored:?}"
        );
        assert!(verify(stored, b"wrong").is_err(), "verify {stored:?}");
    }
    // What scheme_ok refuses, verify refuses; these two only show up when libcrypt runs.
    for stored in &cases[..cases.len() - 3] {
        assert!(scheme_ok(stored).is_err(), "scheme_ok {stored:?}");
    }
}

#[test]
fn error_messages_name_the_problem_not_the_password() {
    let e = verify("{SSHA}abc", b"hunter2").unwrap_err().to_string();
    assert!(e.contains("unknown password scheme {SSHA}"), "{e}");
    let e = verify("hunter2", b"hunter2").unwrap_err().to_string();
    assert!(e.contains("{PLAIN}") && !e.contains("hunter2"), "{e}");
}

#[test]
fn error_kinds_say_what_is_wrong() {
    let kind = |r: Result<bool, PasswordError>| r.unwrap_err().kind();
    for stored in ["{SSHA}abc", "{NOPE}x", "{}x"] {
        assert_eq!(
            kind(verify(stored, b"pw")),
            PasswordErrorKind::UnknownScheme
        );
    }
    let libcrypt_refuses = "$2b$99$Xk3pQ9vR2mT7wL5nB8cZ4eZmL59IrKx2.IclQjlTzIvHru/OR4Fyu";
    for stored in [
        "",
        "{PLAIN}",
        "{PLAIN x",
        "$6$salt$short",
        "secret",
        "{ARGON2ID}garbage",
    ]
    .into_iter()
    .chain([libcrypt_refuses, "{SCRAM-SHA-256}1,2,3"])
    {
        assert_eq!(
            kind(verify(stored, b"pw")),
            PasswordErrorKind::MalformedHash,
            "{stored}"
        );
    }
    let hash_kind = |scheme: &str, pw: &[u8]| hash(scheme, pw).unwrap_err().kind();
    assert_eq!(hash_kind("MD5", b"pw"), PasswordErrorKind::UnknownScheme);
    assert_eq!(
        hash_kind("SHA512-CRYPT", b"a\0b"),
        PasswordErrorKind::HashingFailed
    );
    let e = verify("{SSHA}abc", b"pw").unwrap_err();
    assert_eq!(e.detail(), e.to_string());
}

#[test]
fn scheme_ok_accepts_every_known_shape() {
    let prefixed = [
        format!("{{PLAIN}}{PASSWORD}"),
        format!("{{clear}}{PASSWORD}"),
        format!("{{SHA512-CRYPT}}{SHA512}"),
        format!("{{SHA256-CRYPT}}{SHA256}"),
        format!("{{MD5-CRYPT}}{MD5}"),
        format!("{{BLF-CRYPT}}{BCRYPT_2Y}"),
        format!("{{ARGON2ID}}{ARGON2ID}"),
        format!("{{ARGON2I}}{ARGON2I}"),
        format!("{{CRYPT}}{DES}"),
    ];
    let bare = [
        SHA512,
        SHA512_ROUNDS,
        SHA256,
        MD5,
        BCRYPT_2A,
        BCRYPT_2B,
        YESCRYPT,
        DES,
        ARGON2ID,
        ARGON2I,
    ];
    for stored in prefixed.iter().map(String::as_str).chain(bare) {
        assert_eq!(scheme_ok(stored), Ok(()), "{stored}");
    }
}

#[test]
fn dummy_hash_is_a_real_hash() {
    // If the dummy were malformed, verify would fail fast and unknown users would answer fast.
    assert_eq!(
        verify(DUMMY_HASH, b"no such user, no such password"),
        Ok(true)
    );
    assert_eq!(verify(DUMMY_HASH, PASSWORD.as_bytes()), Ok(false));
}

#[test]
fn constant_time_eq_compares_whole_slices() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"xbc"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}

#[test]
fn hash_round_trips_through_verify() {
    for scheme in HASH_SCHEMES {
        let stored = hash(scheme, b"c0rrect horse").unwrap();
        assert!(stored.starts_with(&format!("{{{scheme}}}")), "{stored}");
        assert_eq!(verify(&stored, b"c0rrect horse"), Ok(true), "{scheme}");
        assert_eq!(verify(&stored, b"c0rrect hors"), Ok(false), "{scheme}");
        assert_ne!(
            stored,
            hash(scheme, b"c0rrect horse").unwrap(),
            "salt must be fresh"
        );
    }
    assert!(hash("MD5", b"x").is_err());
}
