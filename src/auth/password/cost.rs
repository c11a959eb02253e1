//! Caps on the work a stored hash may ask for.
//!
//! A hash names its own cost: argon2's memory, passes and lanes, bcrypt's cost, sha-crypt's
//! rounds, yescrypt's N and r, SCRAM's iteration count. Left unchecked, one passwd line could ask
//! for 4 TiB of memory (and abort the process when the allocation fails) or for hours of work
//! per login, on every login, for every client that knows the user name. Each cap below is
//! far above what a sane installation uses (several times the strongest default of any tool
//! we know) and below what makes one check hurt a small two-core server: at most a few seconds
//! of one core, at most 256 MiB of memory. A hash over a cap is refused by `pop3d --check` and
//! fails its login like a wrong password, with a log line naming the cap.

use super::{PasswordError, PasswordErrorKind};

/// Most memory an argon2 check may use, in KiB: 256 MiB. RFC 9106's second recommended
/// setting uses 64 MiB; the argon2 crate's default, which `--hash-password` writes, 19 MiB.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;

/// Most argon2 passes: 16. RFC 9106 recommends 1 to 3; more passes with less memory trade the
/// one for the other, and 16 passes over 256 MiB already take seconds.
pub const ARGON2_MAX_PASSES: u32 = 16;

/// Most argon2 lanes: 16. Lanes are meant to be computed in parallel; the argon2 crate computes
/// them one after the other, so they add time, and no server needs more than its cores.
pub const ARGON2_MAX_LANES: u32 = 16;

/// Highest bcrypt cost: 16, that is 2^16 rounds of the key schedule, a few seconds. Dovecot and
/// PHP default to 10 or 12; every step up doubles the time.
pub const BCRYPT_MAX_COST: u32 = 16;

/// Most sha-crypt (`$5$`, `$6$`) rounds: 10,000,000, a few seconds. The default is 5,000;
/// glibc and libxcrypt accept up to 999,999,999, which would take many minutes.
pub const SHA_CRYPT_MAX_ROUNDS: u64 = 10_000_000;

/// Most memory a yescrypt check may use, in bytes (128 × r × N): 256 MiB, as for argon2. The
/// default (`$y$j9T$`) uses 16 MiB.
pub const YESCRYPT_MAX_MEMORY: u64 = 256 * 1024 * 1024;

/// Most PBKDF2 iterations in a stored SCRAM-SHA-256 secret checked for USER/PASS: 1,000,000,
/// about a second of one core. RFC 7677 asks for at least 4096 (Dovecot's default); OWASP's
/// 2023 advice for PBKDF2-SHA256 is 600,000.
pub const SCRAM_MAX_ITERATIONS: u32 = 1_000_000;

/// The error for a cost over its cap: `what` says which parameter and its value, `cap` the
/// limit.
pub(super) fn too_costly(what: String, cap: impl std::fmt::Display) -> PasswordError {
    PasswordError::new(
        PasswordErrorKind::TooCostly,
        format!("{what} is over the limit of {cap} (see LIMITS in pop3d(8))"),
    )
}

/// Checks an argon2 hash's memory (KiB), passes and lanes.
pub(super) fn check_argon2(memory_kib: u32, passes: u32, lanes: u32) -> Result<(), PasswordError> {
    if memory_kib > ARGON2_MAX_MEMORY_KIB {
        return Err(too_costly(
            format!("argon2 memory cost m={memory_kib} KiB"),
            format_args!("{ARGON2_MAX_MEMORY_KIB} KiB"),
        ));
    }
    if passes > ARGON2_MAX_PASSES {
        return Err(too_costly(
            format!("argon2 time cost t={passes}"),
            ARGON2_MAX_PASSES,
        ));
    }
    if lanes > ARGON2_MAX_LANES {
        return Err(too_costly(
            format!("argon2 parallelism p={lanes}"),
            ARGON2_MAX_LANES,
        ));
    }
    Ok(())
}

/// Checks the cost a crypt(3) hash names, from its `$`-separated fields after the leading `$`
/// (`["6", "rounds=5000", salt, hash]`). Schemes without a cost pass.
pub(super) fn check_crypt(fields: &[&str]) -> Result<(), PasswordError> {
    let (id, params) = (fields[0], fields.get(1).copied().unwrap_or(""));
    match id {
        "5" | "6" => {
            if let Some(rounds) = params.strip_prefix("rounds=") {
                // A count too long to be a number is over any cap; libcrypt judges the rest.
                let digits = !rounds.is_empty() && rounds.bytes().all(|b| b.is_ascii_digit());
                if digits && rounds.parse().unwrap_or(u64::MAX) > SHA_CRYPT_MAX_ROUNDS {
                    return Err(too_costly(
                        format!("sha-crypt rounds={rounds}"),
                        SHA_CRYPT_MAX_ROUNDS,
                    ));
                }
            }
        }
        "2a" | "2b" | "2y" => {
            // Above 31 is no bcrypt cost at all: libcrypt refuses it as malformed.
            if let Ok(cost) = params.parse::<u32>() {
                if (BCRYPT_MAX_COST + 1..=31).contains(&cost) {
                    return Err(too_costly(format!("bcrypt cost {cost}"), BCRYPT_MAX_COST));
                }
            }
        }
        "y" => check_yescrypt(params)?,
        _ => {}
    }
    Ok(())
}

/// The value of one character of crypt's base-64 alphabet (`./0-9A-Za-z`).
fn crypt64(c: u8) -> Option<u64> {
    let alphabet = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    alphabet.iter().position(|&a| a == c).map(|v| v as u64)
}

/// yescrypt parameters as libxcrypt writes them: a flavour character, then log2(N) − 1 and
/// r − 1, each one character while below 47 (`$y$j9T$` is N = 4096, r = 32: 16 MiB). Only the
/// flavour libxcrypt writes (`j`) is read; a longer number there means an N of 2^48 or more,
/// over any cap, or an r of 48 or more, which is checked by libcrypt alone.
fn check_yescrypt(params: &str) -> Result<(), PasswordError> {
    let p = params.as_bytes();
    if p.len() < 3 || p[0] != b'j' {
        return Ok(());
    }
    let (Some(n), Some(r)) = (crypt64(p[1]), crypt64(p[2])) else {
        return Ok(());
    };
    let n_log2 = n + 1;
    if n >= 47 || (r < 47 && (128 * (r + 1)) << n_log2.min(40) > YESCRYPT_MAX_MEMORY) {
        let what = format!("yescrypt memory 128·r·N (N=2^{n_log2})");
        return Err(too_costly(what, "256 MiB"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(r: Result<(), PasswordError>) -> Option<PasswordErrorKind> {
        r.err().map(|e| e.kind())
    }

    #[test]
    fn argon2_caps() {
        assert_eq!(check_argon2(ARGON2_MAX_MEMORY_KIB, 16, 16), Ok(()));
        for (m, t, p) in [
            (u32::MAX, 1, 1),
            (262_145, 1, 1),
            (1024, 17, 1),
            (1024, 1, 17),
        ] {
            assert_eq!(
                kind(check_argon2(m, t, p)),
                Some(PasswordErrorKind::TooCostly)
            );
        }
    }

    #[test]
    fn crypt_caps() {
        let costly =
            |fields: &[&str]| kind(check_crypt(fields)) == Some(PasswordErrorKind::TooCostly);
        assert!(!costly(&["6", "rounds=10000000", "s", "h"]));
        assert!(costly(&["6", "rounds=10000001", "s", "h"]));
        assert!(costly(&["5", "rounds=99999999999999999999999", "s", "h"]));
        assert!(!costly(&["6", "salt", "h"]));
        assert!(!costly(&["2b", "16", "h"]));
        assert!(costly(&["2y", "17", "h"]));
        assert!(costly(&["2b", "31", "h"]));
        assert!(!costly(&["2b", "99", "h"]));
        assert!(!costly(&["y", "j9T", "s", "h"]));
        // N = 2^16, r = 32: 256 MiB, the cap; one step more is over.
        assert!(!costly(&["y", "jDT", "s", "h"]));
        assert!(costly(&["y", "jET", "s", "h"]));
        assert!(costly(&["y", "jDU", "s", "h"]));
        assert!(costly(&["y", "jzT", "s", "h"]));
        assert!(!costly(&["1", "salt", "h"]));
    }
}
