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

mod argon2_hash;
mod cost;
mod crypt_hash;
mod error;
#[cfg(test)]
pub(crate) mod known;
mod new_hash;
#[cfg(test)]
mod tests;

pub use self::error::{PasswordError, PasswordErrorKind};
pub use self::new_hash::{hash, HASH_SCHEMES};

use self::argon2_hash::{parse_argon2, verify_argon2};
use self::crypt_hash::{check_crypt_shape, verify_crypt};
use super::secret::{constant_time_eq, ScramKeys, Secret};

/// A real `$6$` hash of a password no client is meant to know (`openssl passwd -6 -salt
/// DummySaltPop3d 'no such user, no such password'`). Checking a password against it costs what
/// a real check costs, so an unknown user and a locked account answer as slowly as a wrong
/// password.
pub(crate) const DUMMY_HASH: &str = "$6$DummySaltPop3d$LiMtr8qDzDPZNRMg7UqmD9zjhxVFKgpvM3kL6TjE\
                                     b3cAnWXXp2XgBJ04E/0Nw4.JZ79s444rk0dCQxG.eYSl5/";

/// How a stored hash is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Plain,
    Crypt,
    /// A crypt hash starting with `!` or `*` (the `/etc/shadow` convention): no password
    /// matches, but checking one costs a real check (against [`DUMMY_HASH`]).
    Locked,
    Argon2,
    Scram,
}

/// Checks `password` (raw bytes, as the client sent them) against `stored`, a hash in Dovecot's
/// scheme syntax (see the [module documentation](self)).
///
/// `Ok(false)` for a wrong password, for a locked crypt hash, and for a password containing NUL
/// (crypt(3) cannot take one, so no scheme accepts it). `Err` when `stored` cannot be checked at
/// all: an unknown scheme, a malformed hash, or one whose cost is over a cap (checked before
/// any work is done; the manual's LIMITS section lists the caps); the message says why, never
/// the password.
pub fn verify(stored: &str, password: &[u8]) -> Result<bool, PasswordError> {
    let (scheme, hash) = parse(stored)?;
    if password.contains(&0) {
        return Ok(false);
    }
    match scheme {
        Scheme::Plain => Ok(constant_time_eq(hash.as_bytes(), password)),
        Scheme::Crypt => verify_crypt(hash, password),
        Scheme::Locked => {
            let _ = verify(DUMMY_HASH, password);
            Ok(false)
        }
        Scheme::Argon2 => verify_argon2(hash, password),
        Scheme::Scram => Ok(ScramKeys::parse(hash)
            .map_err(PasswordError::malformed)?
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
                PasswordError::malformed(
                    "the password field starts with '{' but has no closing '}'",
                )
            })?;
            (scheme_named(name, hash)?, hash)
        }
        // Dovecot's passwd-file default scheme is CRYPT; a PHC argon2 string is recognisable.
        None if stored.starts_with("$argon2") => (Scheme::Argon2, stored),
        None => (Scheme::Crypt, stored),
    };
    let scheme = match scheme {
        Scheme::Crypt if hash.starts_with(['!', '*']) => Scheme::Locked,
        scheme => scheme,
    };
    if hash.is_empty() {
        return Err(PasswordError::malformed("the password hash is empty"));
    }
    match scheme {
        Scheme::Plain | Scheme::Locked => {}
        Scheme::Crypt => check_crypt_shape(hash, stored.starts_with('{'))?,
        Scheme::Argon2 => {
            parse_argon2(hash)?;
        }
        Scheme::Scram => {
            let keys = ScramKeys::parse(hash).map_err(PasswordError::malformed)?;
            if keys.iterations > cost::SCRAM_MAX_ITERATIONS {
                let what = format!("SCRAM iteration count {}", keys.iterations);
                return Err(cost::too_costly(what, cost::SCRAM_MAX_ITERATIONS));
            }
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
        _ => Err(PasswordError::new(
            PasswordErrorKind::UnknownScheme,
            format!(
                "unknown password scheme {{{name}}} (known: PLAIN, CLEAR, CLEARTEXT, CRYPT, \
             SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, MD5-CRYPT, ARGON2I, ARGON2ID, SCRAM-SHA-256)"
            ),
        )),
    }
}
