//! Secrets for challenge-response logins (APOP, CRAM-MD5, SCRAM-SHA-256), where the server must
//! hold more than a one-way hash of the password.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

/// Least PBKDF2 iteration count accepted in a stored SCRAM secret (RFC 7677 §4, and Dovecot).
pub const SCRAM_MIN_ITERATIONS: u32 = 4096;

/// What an account stores that a challenge-response mechanism can use.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The password itself, or an equivalent of it (`{PLAIN}`): serves APOP, CRAM-MD5 and SCRAM.
    Plain(Vec<u8>),
    /// Stored SCRAM-SHA-256 keys (`{SCRAM-SHA-256}`): serves SCRAM-SHA-256 only.
    Scram(ScramKeys),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a password, even in a debug log.
        match self {
            Secret::Plain(_) => f.write_str("Secret::Plain(..)"),
            Secret::Scram(k) => write!(f, "Secret::Scram({} iterations)", k.iterations),
        }
    }
}

/// Which challenge-response mechanisms every account can serve. CAPA offers only those: a
/// client picks the strongest mechanism offered and does not fall back to another when it
/// fails, so a mechanism that works for some accounts only would lock the others out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretKinds {
    /// Every account has a plaintext-equivalent secret: CRAM-MD5 works for all.
    pub plain: bool,
    /// Every account has SCRAM-SHA-256 keys or a plaintext-equivalent secret: SCRAM works
    /// for all.
    pub scram: bool,
}

/// The SCRAM-SHA-256 keys of one account (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// PBKDF2 salt.
    pub salt: Vec<u8>,
    /// H(ClientKey): checks the client's proof.
    pub stored_key: [u8; 32],
    /// HMAC(SaltedPassword, "Server Key"): proves the server to the client.
    pub server_key: [u8; 32],
}

impl ScramKeys {
    /// Derives the keys from a password.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramKeys {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        ScramKeys {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Parses Dovecot's stored form, `iterations,salt,StoredKey,ServerKey` (base64 fields), as
    /// found after `{SCRAM-SHA-256}`.
    pub fn parse(stored: &str) -> Result<ScramKeys, String> {
        let fields: Vec<&str> = stored.split(',').collect();
        let [iterations, salt, stored_key, server_key] = fields[..] else {
            return Err(
                "a SCRAM-SHA-256 secret has 4 fields: iterations,salt,StoredKey,ServerKey".into(),
            );
        };
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("SCRAM iteration count {iterations:?} is not a number"))?;
        if iterations < SCRAM_MIN_ITERATIONS {
            return Err(format!(
                "SCRAM iteration count {iterations} is below {SCRAM_MIN_ITERATIONS}"
            ));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| "SCRAM salt is not base64".to_string())?;
        let key = |field: &str, name: &str| -> Result<[u8; 32], String> {
            B64.decode(field)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| format!("SCRAM {name} is not 32 octets of base64"))
        };
        Ok(ScramKeys {
            iterations,
            salt,
            stored_key: key(stored_key, "StoredKey")?,
            server_key: key(server_key, "ServerKey")?,
        })
    }

    /// Dovecot's stored form (see [`parse`](Self::parse)), without the `{SCRAM-SHA-256}` prefix.
    pub fn to_stored(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// True if `password` is the one these keys were derived from.
    pub fn matches(&self, password: &[u8]) -> bool {
        let other = ScramKeys::derive(password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

/// HMAC-SHA-256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Compares two byte strings without stopping at the first difference, so the time taken says
/// nothing about where they differ (only, at most, whether their lengths do).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the loop back into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Lower-case hexadecimal, as APOP and CRAM-MD5 digests are written.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `N` random bytes from the operating system; `None` if it has none to give.
///
/// That never happens on a working Linux system. It can in a chroot without `/dev/urandom` on a
/// kernel too old for getrandom(2), or under a seccomp filter that refuses it. pop3d then keeps
/// serving instead of panicking, and each use degrades by what it needs the bytes for: a
/// secret that lasts (the login cache's key, a salt written to a passwd-file) is not made
/// (the cache stays off, `--hash-password` fails); a value for the moment (a challenge, a
/// nonce, a per-process key) comes from [`random_bytes`]'s fallback.
pub fn os_random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    match getrandom::getrandom(&mut buf) {
        Ok(()) => Some(buf),
        Err(e) => {
            static LOGGED: Once = Once::new();
            LOGGED.call_once(|| log::error!("no randomness from the operating system: {e}"));
            None
        }
    }
}

/// `N` random bytes: from the operating system, or else from a fallback that never repeats but
/// could be guessed by someone who knows when the process started and its pid (see
/// [`os_random_bytes`] for when, and why not a panic).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    os_random_bytes().unwrap_or_else(fallback_bytes)
}

/// SHA-256 of a counter, the time, the process id and where the stack lies (randomised by the
/// kernel): different at every call, and hard but not impossible to guess.
fn fallback_bytes<const N: usize>() -> [u8; N] {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut out = [0u8; N];
    for (block, chunk) in out.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(call.to_be_bytes());
        h.update((block as u64).to_be_bytes());
        h.update(now.to_be_bytes());
        h.update(std::process::id().to_be_bytes());
        h.update((&h as *const Sha256 as usize).to_be_bytes());
        chunk.copy_from_slice(&h.finalize()[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_test_vector_keys() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = ScramKeys::derive(b"pencil", &salt, 4096);
        assert!(keys.matches(b"pencil"));
        assert!(!keys.matches(b"pencil "));
        let parsed = ScramKeys::parse(&keys.to_stored()).unwrap();
        assert!(parsed == keys);
    }

    #[test]
    fn parse_refuses_bad_secrets() {
        for bad in [
            "",
            "4096,c2FsdA==,AAAA",
            "1000,c2FsdA==,AAAA,AAAA",
            "x,c2FsdA==,AAAA,AAAA",
            "4096,!!,AAAA,AAAA",
            "4096,c2FsdA==,AAAA,AAAA",
        ] {
            assert!(ScramKeys::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_a_password() {
        let s = format!("{:?}", Secret::Plain(b"hunter2".to_vec()));
        assert!(!s.contains("hunter2"));
    }

    #[test]
    fn fallback_bytes_differ_at_every_call_and_fill_the_whole_buffer() {
        let a: [u8; 48] = fallback_bytes();
        let b: [u8; 48] = fallback_bytes();
        assert_ne!(a, b);
        // The second block is hashed apart from the first, not a copy of it.
        assert_ne!(a[..16], a[32..]);
        assert!(a[32..].iter().any(|&x| x != 0));
    }
}
