//! Hashes made by tools other than pop3d, shared with the passwd-file tests.

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
pub const YESCRYPT: &str = "$y$j9T$Pq7Ld2Xs9Kf4Wm1Z$kG1Uuiqsi/ejhLN7y6J4PM.zRLuOlFclxKVjgo5vuj0";
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
