//! argon2 PHC strings (`$argon2id$v=19$m=…`), checked with the `argon2` crate.

use super::PasswordError;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params};
use std::fmt;

/// Parses a PHC argon2 string and checks that its algorithm and parameters are usable.
pub(super) fn parse_argon2(hash: &str) -> Result<PasswordHash<'_>, PasswordError> {
    let bad =
        |e: &dyn fmt::Display| PasswordError::malformed(format!("malformed argon2 hash: {e}"));
    let parsed = PasswordHash::new(hash).map_err(|e| bad(&e))?;
    Algorithm::try_from(parsed.algorithm).map_err(|e| bad(&e))?;
    let params = Params::try_from(&parsed).map_err(|e| bad(&e))?;
    super::cost::check_argon2(params.m_cost(), params.t_cost(), params.p_cost())?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(bad(&"it needs both a salt and a hash"));
    }
    Ok(parsed)
}

/// Checks `password` against a PHC argon2 string, with the variant, version and cost it names.
pub(super) fn verify_argon2(hash: &str, password: &[u8]) -> Result<bool, PasswordError> {
    let parsed = parse_argon2(hash)?;
    // verify_password recomputes with the hash's own algorithm and parameters, and compares in
    // constant time.
    match Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::malformed(format!(
            "argon2 hash cannot be checked: {e}"
        ))),
    }
}
