//! Making a new password field, for `pop3d --hash-password`.

use super::{PasswordError, PasswordErrorKind};
use crate::auth::crypt;
use crate::auth::secret::{os_random_bytes, ScramKeys, SCRAM_MIN_ITERATIONS};
use argon2::Argon2;
use std::ffi::CString;

/// The schemes [`hash`] can write, by their Dovecot names.
pub const HASH_SCHEMES: [&str; 3] = ["ARGON2ID", "SCRAM-SHA-256", "SHA512-CRYPT"];

/// Hashes `password` with a fresh random salt into a passwd-file password field (`{SCHEME}…`).
///
/// `ARGON2ID` (the default of `pop3d --hash-password`) uses the argon2 crate's default cost;
/// `SCRAM-SHA-256` stores keys that also serve AUTH SCRAM-SHA-256; `SHA512-CRYPT` goes through
/// the system libcrypt, for files other tools read too.
pub fn hash(scheme: &str, password: &[u8]) -> Result<String, PasswordError> {
    // A salt only from the operating system: a hash outlives this process, and a guessable salt
    // would let one precomputation serve many files.
    let salt = || {
        os_random_bytes::<16>().ok_or_else(|| {
            PasswordError::new(
                PasswordErrorKind::HashingFailed,
                "no randomness from the operating system for a salt",
            )
        })
    };
    match scheme.to_ascii_uppercase().as_str() {
        "ARGON2ID" => {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(&salt()?).map_err(|e| {
                PasswordError::new(
                    PasswordErrorKind::HashingFailed,
                    format!("argon2 salt: {e}"),
                )
            })?;
            let phc = Argon2::default()
                .hash_password(password, &salt)
                .map_err(|e| {
                    PasswordError::new(PasswordErrorKind::HashingFailed, format!("argon2: {e}"))
                })?;
            Ok(format!("{{ARGON2ID}}{phc}"))
        }
        "SCRAM-SHA-256" => {
            let keys = ScramKeys::derive(password, &salt()?, SCRAM_MIN_ITERATIONS);
            Ok(format!("{{SCRAM-SHA-256}}{}", keys.to_stored()))
        }
        "SHA512-CRYPT" => {
            const SALT_CHARS: &[u8] =
                b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            let salt: String = salt()?
                .iter()
                .map(|b| SALT_CHARS[usize::from(b % 64)] as char)
                .collect();
            let phrase = CString::new(password).map_err(|_| {
                PasswordError::new(
                    PasswordErrorKind::HashingFailed,
                    "a password cannot contain NUL",
                )
            })?;
            let setting = CString::new(format!("$6${salt}$")).expect("salt has no NUL");
            let hashed = crypt::crypt(&phrase, &setting).ok_or_else(|| {
                PasswordError::new(
                    PasswordErrorKind::HashingFailed,
                    "crypt(3) refused the password",
                )
            })?;
            let hashed = String::from_utf8(hashed).map_err(|_| {
                PasswordError::new(
                    PasswordErrorKind::HashingFailed,
                    "crypt(3) returned non-UTF-8",
                )
            })?;
            Ok(format!("{{SHA512-CRYPT}}{hashed}"))
        }
        _ => Err(PasswordError::new(
            PasswordErrorKind::UnknownScheme,
            format!(
                "cannot hash with {scheme:?}; choose one of {}",
                HASH_SCHEMES.join(", ")
            ),
        )),
    }
}
