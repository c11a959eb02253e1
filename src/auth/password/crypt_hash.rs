//! crypt(3) hashes: a check of their shape that needs no password, and the check itself through
//! the system's libcrypt.

use super::PasswordError;
use crate::auth::crypt;
use crate::auth::secret::constant_time_eq;
use std::ffi::CString;

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
pub(super) fn check_crypt_shape(hash: &str, prefixed: bool) -> Result<(), PasswordError> {
    let bad = |why: &str| {
        let hint = if prefixed {
            ""
        } else {
            " (a plaintext password needs the {PLAIN} prefix)"
        };
        Err(PasswordError::malformed(format!(
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
        super::cost::check_crypt(&fields)
    } else if hash.len() == 13 || (hash.len() == 20 && hash.starts_with('_')) {
        Ok(()) // Traditional DES, or BSDi extended DES.
    } else {
        bad("expected $id$salt$hash or a 13-character DES hash")
    }
}

/// Checks `password` with the system's crypt(3).
pub(super) fn verify_crypt(hash: &str, password: &[u8]) -> Result<bool, PasswordError> {
    // libcrypt refuses longer passphrases; no stored hash can match one.
    if password.len() >= crypt::MAX_PASSPHRASE {
        return Ok(false);
    }
    let setting = CString::new(hash)
        .map_err(|_| PasswordError::malformed("the password hash contains a NUL byte"))?;
    // As verify says: no password with a NUL matches (the caller has already answered so).
    let Ok(phrase) = CString::new(password) else {
        return Ok(false);
    };
    let computed = crypt::crypt(&phrase, &setting).ok_or_else(|| {
        PasswordError::malformed(
            "the system crypt(3) does not accept this hash (unknown or malformed)",
        )
    })?;
    // For a given setting the output length is fixed; if it differs, no password can ever match.
    if computed.len() != hash.len() {
        return Err(PasswordError::malformed(format!(
            "malformed crypt(3) hash: its scheme makes {} characters, the hash has {}",
            computed.len(),
            hash.len()
        )));
    }
    Ok(constant_time_eq(&computed, hash.as_bytes()))
}
