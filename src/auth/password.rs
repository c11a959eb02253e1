//! Checking a password against a stored hash written in Dovecot's `{SCHEME}hash` syntax.
//!
//! The prefix is matched in any case:
//! - `{PLAIN}`, `{CLEAR}`, `{CLEARTEXT}`: the password itself, compared in constant time.
//! - `{CRYPT}`, `{SHA512-CRYPT}`, `{SHA256-CRYPT}`, `{BLF-CRYPT}`, `{MD5-CRYPT}`, or no prefix:
//!   the system's `crypt_r(3)` (libxcrypt on Debian).
//! - `{SCRAM-SHA-256}`: Dovecot's stored SCRAM keys, `iterations,salt,StoredKey,ServerKey`.
//! - `{ARGON2I}`, `{ARGON2ID}`, or no prefix before `$argon2i$`/`$argon2id$`: the `argon2`
//!   crate, with the cost the PHC string names.
//!
//! As in Dovecot's passwd-file, a hash without a prefix is a crypt(3) hash: `$y$` (yescrypt),
//! `$6$`, `$5$`, `$2b$`/`$2y$`/`$2a$`, `$1$` or traditional DES. A crypt hash that starts with
//! `!` or `*` is a locked account (the `/etc/shadow` convention): no password matches it.

use super::crypt;
use super::secret::{constant_time_eq, random_bytes, ScramKeys, Secret, SCRAM_MIN_ITERATIONS};
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params};
use std::ffi::CString;
use std::fmt;

/// A stored hash that cannot be checked: an unknown scheme or a malformed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordError(String);

impl PasswordError {
    fn new(message: impl Into<String>) -> Self {
        PasswordError(message.into())
    }
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PasswordError {}

/// A real `$6$` hash of a password no client is meant to know (`openssl passwd -6 -salt
/// DummySaltPop3d 'no such user, no such password'`). Checking a password against it costs what
/// a real check costs, so an unknown user and a locked account answer as slowly as a wrong
/// password.
pub(crate) const DUMMY_HASH: &str = "$6$DummySaltPop3d$LiMtr8qDzDPZNRMg7UqmD9zjhxVFKgpvM3kL6TjE\
                                     b3cAnWXXp2XgBJ04E/0Nw4.JZ79s444rk0dCQxG.eYSl5/";

#[cfg(test)]
thread_local! {
    /// How many times this thread called [`spend_time`]: lets tests see that the paths that must
    /// cost a real check do.
    pub(crate) static DUMMY_CHECKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// How many times this thread called [`verify`]: lets tests see when a check was skipped.
    pub(crate) static VERIFY_CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Spends the time of a real password check (against [`DUMMY_HASH`]) and ignores the answer.
pub(crate) fn spend_time(password: &[u8]) {
    #[cfg(test)]
    DUMMY_CHECKS.with(|n| n.set(n.get() + 1));
    let _ = verify(DUMMY_HASH, password);
}

/// How a stored hash is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Plain,
    Crypt,
    Argon2,
    Scram,
}

/// Checks `password` (raw bytes, as the client sent them) against `stored`, a hash in Dovecot's
/// scheme syntax (see the [module documentation](self)).
///
/// `Ok(false)` for a wrong password, for a locked crypt hash, and for a password containing NUL
/// (crypt(3) cannot take one, so no scheme accepts it). `Err` when `stored` cannot be checked at
/// all: an unknown scheme or a malformed hash; the message says why, never the password.
pub fn verify(stored: &str, password: &[u8]) -> Result<bool, PasswordError> {
    #[cfg(test)]
    VERIFY_CALLS.with(|n| n.set(n.get() + 1));
    let (scheme, hash) = parse(stored)?;
    if password.contains(&0) {
        return Ok(false);
    }
    match scheme {
        Scheme::Plain => Ok(constant_time_eq(hash.as_bytes(), password)),
        Scheme::Crypt => verify_crypt(hash, password),
        Scheme::Argon2 => verify_argon2(hash, password),
        Scheme::Scram => Ok(ScramKeys::parse(hash)
            .map_err(PasswordError::new)?
            .matches(password)),
    }
}

/// The challenge-response secret in `stored`, if its scheme keeps one: the password of
/// `{PLAIN}`, or the keys of `{SCRAM-SHA-256}`. `None` for one-way hashes.
pub fn secret_of(stored: &str) -> Option<Secret> {
    match parse(stored).ok()? {
        (Scheme::Plain, hash) => Some(Secret::Plain(hash.as_bytes().to_vec())),
        (Scheme::Scram, hash) => ScramKeys::parse(hash).ok().map(Secret::Scram),
        _ => None,
    }
}

/// Checks that `stored` names a known scheme and has a plausible shape for it, without a
/// password: for `pop3d --check`. A hash that passes may still fail in [`verify`] (a crypt hash
/// with a salt libcrypt refuses, say), but one that fails here fails there too.
pub fn scheme_ok(stored: &str) -> Result<(), PasswordError> {
    parse(stored).map(|_| ())
}

/// Splits off the scheme and checks the shape of the hash.
fn parse(stored: &str) -> Result<(Scheme, &str), PasswordError> {
    let (scheme, hash) = match stored.strip_prefix('{') {
        Some(rest) => {
            let (name, hash) = rest.split_once('}').ok_or_else(|| {
                PasswordError::new("the password field starts with '{' but has no closing '}'")
            })?;
            (scheme_named(name, hash)?, hash)
        }
        // Dovecot's passwd-file default scheme is CRYPT; a PHC argon2 string is recognisable.
        None if stored.starts_with("$argon2") => (Scheme::Argon2, stored),
        None => (Scheme::Crypt, stored),
    };
    if hash.is_empty() {
        return Err(PasswordError::new("the password hash is empty"));
    }
    match scheme {
        Scheme::Plain => {}
        Scheme::Crypt => check_crypt_shape(hash, stored.starts_with('{'))?,
        Scheme::Argon2 => {
            parse_argon2(hash)?;
        }
        Scheme::Scram => {
            ScramKeys::parse(hash).map_err(PasswordError::new)?;
        }
    }
    Ok((scheme, hash))
}

/// The scheme for a `{NAME}` prefix. `hash` decides between crypt and argon2 under `{CRYPT}`,
/// as Dovecot's CRYPT would hand an `$argon2…$` string to a libcrypt that knew it.
fn scheme_named(name: &str, hash: &str) -> Result<Scheme, PasswordError> {
    match name.to_ascii_uppercase().as_str() {
        "PLAIN" | "CLEAR" | "CLEARTEXT" => Ok(Scheme::Plain),
        "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT" | "MD5-CRYPT" => {
            if hash.starts_with("$argon2") {
                Ok(Scheme::Argon2)
            } else {
                Ok(Scheme::Crypt)
            }
        }
        "ARGON2I" | "ARGON2ID" => Ok(Scheme::Argon2),
        "SCRAM-SHA-256" => Ok(Scheme::Scram),
        _ => Err(PasswordError::new(format!(
            "unknown password scheme {{{name}}} (known: PLAIN, CLEAR, CLEARTEXT, CRYPT, \
             SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, MD5-CRYPT, ARGON2I, ARGON2ID, SCRAM-SHA-256)"
        ))),
    }
}

/// Length of the last `$`-separated field of a hash made by a well-known crypt(3) scheme: a
/// truncated copy-and-paste is the commonest way to break one.
fn crypt_hash_len(id: &str) -> Option<usize> {
    match id {
        "1" => Some(22),
        "5" | "y" => Some(43),
        "6" => Some(86),
        // bcrypt: 22 characters of salt, then 31 of hash, after the cost.
        "2a" | "2b" | "2y" => Some(53),
        _ => None,
    }
}

/// Checks that `hash` looks like something crypt(3) produced.
fn check_crypt_shape(hash: &str, prefixed: bool) -> Result<(), PasswordError> {
    if hash.starts_with('!') || hash.starts_with('*') {
        return Ok(()); // A locked account: valid, and never matches.
    }
    let bad = |why: &str| {
        let hint = if prefixed {
            ""
        } else {
            " (a plaintext password needs the {PLAIN} prefix)"
        };
        Err(PasswordError::new(format!(
            "not a crypt(3) hash: {why}{hint}"
        )))
    };
    // crypt(3) writes only its base-64 alphabet, '$' between fields and "rounds=N," parameters.
    if let Some(c) = hash
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '$' | '=' | ',')))
    {
        return bad(&format!("{c:?} is not a crypt character"));
    }
    if let Some(rest) = hash.strip_prefix('$') {
        let fields: Vec<&str> = rest.split('$').collect();
        let id = fields[0];
        let last = fields[fields.len() - 1];
        if id.is_empty() || fields.len() < 3 || last.is_empty() {
            return bad("expected $id$salt$hash");
        }
        if let Some(want) = crypt_hash_len(id) {
            if last.len() != want {
                return bad(&format!(
                    "a ${id}$ hash ends with {want} characters, this one with {}",
                    last.len()
                ));
            }
        }
        Ok(())
    } else if hash.len() == 13 || (hash.len() == 20 && hash.starts_with('_')) {
        Ok(()) // Traditional DES, or BSDi extended DES.
    } else {
        bad("expected $id$salt$hash or a 13-character DES hash")
    }
}

/// Checks `password` with the system's crypt(3).
fn verify_crypt(hash: &str, password: &[u8]) -> Result<bool, PasswordError> {
    if hash.starts_with('!') || hash.starts_with('*') {
        spend_time(password);
        return Ok(false);
    }
    // libcrypt refuses longer passphrases; no stored hash can match one.
    if password.len() >= crypt::MAX_PASSPHRASE {
        return Ok(false);
    }
    let setting = CString::new(hash)
        .map_err(|_| PasswordError::new("the password hash contains a NUL byte"))?;
    // No NUL: checked by the caller.
    let phrase = CString::new(password).map_err(|_| PasswordError::new("NUL in password"))?;
    let computed = crypt::crypt(&phrase, &setting).ok_or_else(|| {
        PasswordError::new("the system crypt(3) does not accept this hash (unknown or malformed)")
    })?;
    // For a given setting the output length is fixed; if it differs, no password can ever match.
    if computed.len() != hash.len() {
        return Err(PasswordError::new(format!(
            "malformed crypt(3) hash: its scheme makes {} characters, the hash has {}",
            computed.len(),
            hash.len()
        )));
    }
    Ok(constant_time_eq(&computed, hash.as_bytes()))
}

/// Parses a PHC argon2 string and checks that its algorithm and parameters are usable.
fn parse_argon2(hash: &str) -> Result<PasswordHash<'_>, PasswordError> {
    let bad = |e: &dyn fmt::Display| PasswordError::new(format!("malformed argon2 hash: {e}"));
    let parsed = PasswordHash::new(hash).map_err(|e| bad(&e))?;
    Algorithm::try_from(parsed.algorithm).map_err(|e| bad(&e))?;
    Params::try_from(&parsed).map_err(|e| bad(&e))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(bad(&"it needs both a salt and a hash"));
    }
    Ok(parsed)
}

/// Checks `password` against a PHC argon2 string, with the variant, version and cost it names.
fn verify_argon2(hash: &str, password: &[u8]) -> Result<bool, PasswordError> {
    let parsed = parse_argon2(hash)?;
    // verify_password recomputes with the hash's own algorithm and parameters, and compares in
    // constant time.
    match Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::new(format!(
            "argon2 hash cannot be checked: {e}"
        ))),
    }
}

/// The schemes [`hash`] can write, by their Dovecot names.
pub const HASH_SCHEMES: [&str; 3] = ["ARGON2ID", "SCRAM-SHA-256", "SHA512-CRYPT"];

/// Hashes `password` with a fresh random salt into a passwd-file password field (`{SCHEME}…`).
///
/// `ARGON2ID` (the default of `pop3d --hash-password`) uses the argon2 crate's default cost;
/// `SCRAM-SHA-256` stores keys that also serve AUTH SCRAM-SHA-256; `SHA512-CRYPT` goes through
/// the system libcrypt, for files other tools read too.
pub fn hash(scheme: &str, password: &[u8]) -> Result<String, PasswordError> {
    match scheme.to_ascii_uppercase().as_str() {
        "ARGON2ID" => {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(&random_bytes::<16>())
                .map_err(|e| PasswordError::new(format!("argon2 salt: {e}")))?;
            let phc = Argon2::default()
                .hash_password(password, &salt)
                .map_err(|e| PasswordError::new(format!("argon2: {e}")))?;
            Ok(format!("{{ARGON2ID}}{phc}"))
        }
        "SCRAM-SHA-256" => {
            let keys = ScramKeys::derive(password, &random_bytes::<16>(), SCRAM_MIN_ITERATIONS);
            Ok(format!("{{SCRAM-SHA-256}}{}", keys.to_stored()))
        }
        "SHA512-CRYPT" => {
            const SALT_CHARS: &[u8] =
                b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            let salt: String = random_bytes::<16>()
                .iter()
                .map(|b| SALT_CHARS[usize::from(b % 64)] as char)
                .collect();
            let phrase = CString::new(password)
                .map_err(|_| PasswordError::new("a password cannot contain NUL"))?;
            let setting = CString::new(format!("$6${salt}$")).expect("salt has no NUL");
            let hashed = crypt::crypt(&phrase, &setting)
                .ok_or_else(|| PasswordError::new("crypt(3) refused the password"))?;
            let hashed = String::from_utf8(hashed)
                .map_err(|_| PasswordError::new("crypt(3) returned non-UTF-8"))?;
            Ok(format!("{{SHA512-CRYPT}}{hashed}"))
        }
        _ => Err(PasswordError::new(format!(
            "cannot hash with {scheme:?}; choose one of {}",
            HASH_SCHEMES.join(", ")
        ))),
    }
}

/// Hashes made by tools other than pop3d, shared with the passwd-file tests.
#[cfg(test)]
pub(crate) mod known {
    /// The password behind every hash below except [`YESCRYPT_UMLAUT`].
    pub const PASSWORD: &str = "Tr0ub4dor&3";
    /// `openssl passwd -6 -salt 'kQ3zR8pLmN2w' 'Tr0ub4dor&3'`
    pub const SHA512: &str = "$6$kQ3zR8pLmN2w$68yT0CW4kWjuqyuLZo2Ox69nM84E0YuEd7/csY5NBQ4qQ4ZOv\
                              YVFEJoMHGW2popoYzvA36YLadfWtuexs36vZ1";
    /// passlib 1.7's pure-Python backend, with a cost other than the default:
    /// `sha512_crypt.using(salt='Rn8sQ2wEy5Ua', rounds=10000).hash('Tr0ub4dor&3')`
    pub const SHA512_ROUNDS: &str = "$6$rounds=10000$Rn8sQ2wEy5Ua$BZ9LocVlbBbpi8Xh37M4cFskxctaR38d\
                                     FgsKzws.ron89yejWYI92ofRfLceK4yTf0KTW2Sx0TjwV7nKW.XEg/";
    /// `openssl passwd -5 -salt 'Vb7xT1qYs9' 'Tr0ub4dor&3'`
    pub const SHA256: &str = "$5$Vb7xT1qYs9$HEUPawxg7.SN.UyPMZ9P0pJlPN.LycFzOxuOYGw60l9";
    /// `openssl passwd -1 -salt 'Hn4cW2ej' 'Tr0ub4dor&3'`
    pub const MD5: &str = "$1$Hn4cW2ej$8O/DtiSNQtbb/kNHvS/t2/";
    /// Python `bcrypt` 5.0 (its own implementation):
    /// `bcrypt.hashpw(b'Tr0ub4dor&3', b'$2b$05$Xk3pQ9vR2mT7wL5nB8cZ4e')`
    pub const BCRYPT_2B: &str = "$2b$05$Xk3pQ9vR2mT7wL5nB8cZ4eZmL59IrKx2.IclQjlTzIvHru/OR4Fyu";
    /// The same with the `$2y$` prefix (what Dovecot's BLF-CRYPT writes).
    pub const BCRYPT_2Y: &str = "$2y$05$Xk3pQ9vR2mT7wL5nB8cZ4eZmL59IrKx2.IclQjlTzIvHru/OR4Fyu";
    /// The same with the `$2a$` prefix.
    pub const BCRYPT_2A: &str = "$2a$05$Xk3pQ9vR2mT7wL5nB8cZ4eZmL59IrKx2.IclQjlTzIvHru/OR4Fyu";
    /// Python 3.11 `crypt.crypt('Tr0ub4dor&3', '$y$j9T$Pq7Ld2Xs9Kf4Wm1Z$')`
    pub const YESCRYPT: &str =
        "$y$j9T$Pq7Ld2Xs9Kf4Wm1Z$kG1Uuiqsi/ejhLN7y6J4PM.zRLuOlFclxKVjgo5vuj0";
    /// Python 3.11 `crypt.crypt('pässwörd', '$y$j9T$Rt5Gh8Jk2Lm6Nb3V$')` (UTF-8 password).
    pub const YESCRYPT_UMLAUT: &str =
        "$y$j9T$Rt5Gh8Jk2Lm6Nb3V$zD7JbG9VT5CAe9jTATfLWdGVrir8Qay6AfmhwSFnc42";
    /// passlib's pure-Python backend: `des_crypt.using(salt='xy').hash('Tr0ub4dor&3')`
    pub const DES: &str = "xyTnCgV/5Pn2k";
    /// argon2-cffi 25.1: `hash_secret(b'Tr0ub4dor&3', b'pop3dKnownSalt16', time_cost=2,
    /// memory_cost=1024, parallelism=1, hash_len=32, type=Type.ID)`
    pub const ARGON2ID: &str = "$argon2id$v=19$m=1024,t=2,p=1$cG9wM2RLbm93blNhbHQxNg$4AaNRCwLFMr\
                                vC7Qjo/HtipVXAG4qTeNgdpQSUolfL3o";
    /// The same with `type=Type.I`.
    pub const ARGON2I: &str = "$argon2i$v=19$m=1024,t=2,p=1$cG9wM2RLbm93blNhbHQxNg$sGiNHUODtK0+w\
                               YC9kRWUbBIbtJfMPPXEaUmLsrq4XOw";
}

#[cfg(test)]
mod tests {
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
            "$argon2x$v=19$m=1024,t=2,p=1$cG9wM2RLbm93blNhbHQxNg$AAAAAAAAAAAAAAAAAAAAAA"
                .to_string(),
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
}
