//! TLS for STLS (RFC 2595) and implicit-TLS ports (RFC 8314), through OpenSSL.
//!
//! The server side uses the `openssl` crate directly (native-tls, which wraps the same library,
//! pins a profile without TLS 1.3 and offers no session resumption settings); native-tls stays
//! for the client side of the self-test.

use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    HandshakeError, SslAcceptor, SslMethod, SslOptions, SslSessionCacheMode, SslStream, SslVersion,
};
use openssl::x509::X509;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The oldest TLS version a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MinVersion {
    /// TLS 1.2 and 1.3: the default (RFC 8996 deprecates 1.0 and 1.1), with Mozilla's
    /// "intermediate" settings.
    Tls12,
    /// TLS 1.3 only (Mozilla's "modern" settings).
    Tls13,
    /// TLS 1.0 and later, with the older CBC suites and SHA-1 signatures that clients of that
    /// age need (Mozilla's "old" settings). Unsafe (RFC 8996): for clients that know nothing
    /// newer.
    Tls10,
}

/// A certificate and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: SslAcceptor,
    identity: Identity,
}

/// What the acceptor is built from, kept so that it can be built again with other settings.
#[derive(Clone)]
struct Identity {
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
    min: MinVersion,
}

/// A server-side TLS stream.
pub(crate) type TlsStream<S> = SslStream<S>;

/// Why a certificate or key could not be used. The text says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfigError {
    kind: TlsConfigErrorKind,
    text: String,
}

/// What kind of problem a [`TlsConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsConfigErrorKind {
    /// A file could not be read.
    Unreadable,
    /// A file does not hold what it should, in a form pop3d can load (the text says how to
    /// convert it).
    Format,
    /// The key does not belong to the certificate: a test handshake failed.
    Mismatch,
    /// The TLS library refused the certificate, the key or the settings.
    Setup,
}

impl TlsConfigError {
    fn new(kind: TlsConfigErrorKind, text: impl Into<String>) -> Self {
        TlsConfigError {
            kind,
            text: text.into(),
        }
    }

    /// What kind of problem it is.
    pub fn kind(&self) -> TlsConfigErrorKind {
        self.kind
    }
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for TlsConfigError {}

/// Mozilla's "old" cipher list (server side TLS, version 5), for `--tls-min 1.0`. Security
/// level 0 lets OpenSSL 3 sign a TLS 1.0 handshake with MD5+SHA-1, as such clients require.
const OLD_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
    ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
    ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:\
    DHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:\
    ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:\
    ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:\
    DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:\
    AES128-SHA:AES256-SHA:DES-CBC3-SHA:@SECLEVEL=0";

/// Names the sessions of this server in OpenSSL's session cache: without one, a client
/// that offers a cached session gets a failed handshake instead of a resumed one.
const SESSION_ID_CONTEXT: &[u8] = b"pop3d";

/// Sessions kept in the server's cache for TLS 1.2 resumption by session ID (TLS 1.3 and
/// tickets keep no state on the server). About 1 KB each.
const SESSION_CACHE_SIZE: i32 = 20_000;

impl TlsConfig {
    /// Loads a PEM certificate chain (the server's certificate first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        min: MinVersion,
    ) -> Result<Self, TlsConfigError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| {
                let text = format!("cannot read {}: {e}", path.display());
                TlsConfigError::new(TlsConfigErrorKind::Unreadable, text)
            })
        };
        Self::from_pem(&read(cert)?, &read(key)?, min).map_err(|e| {
            let text = format!("{} and {}: {}", cert.display(), key.display(), e.text);
            TlsConfigError::new(e.kind, text)
        })
    }

    /// As [`from_pem_files`](Self::from_pem_files), from the PEM text itself.
    pub fn from_pem(cert: &[u8], key: &[u8], min: MinVersion) -> Result<Self, TlsConfigError> {
        check_key_format(key)?;
        if !contains(cert, b"-----BEGIN CERTIFICATE-----") {
            return Err(TlsConfigError::new(
                TlsConfigErrorKind::Format,
                "the certificate file holds no PEM certificate",
            ));
        }
        let setup = |what: &str, e: openssl::error::ErrorStack| {
            TlsConfigError::new(TlsConfigErrorKind::Setup, format!("{what}: {e}"))
        };
        let mut chain = X509::stack_from_pem(cert)
            .map_err(|e| setup("the certificate is not usable", e))?
            .into_iter();
        let leaf = chain.next().ok_or_else(|| {
            TlsConfigError::new(
                TlsConfigErrorKind::Format,
                "the certificate file holds no PEM certificate",
            )
        })?;
        let key = PKey::private_key_from_pem(key).map_err(|e| setup("the key is not usable", e))?;
        let identity = Identity {
            leaf,
            chain: chain.collect(),
            key,
            min,
        };
        Ok(TlsConfig {
            acceptor: identity.acceptor(None)?,
            identity,
        })
    }

    /// Issues session tickets that any process given the same `secret` can decrypt, so that
    /// a client resumes its TLS session with the next process: what inetd mode needs, where
    /// each connection has a process of its own. The ticket key is derived from `secret` and
    /// the day (UTC), so a ticket outlives its day in no process started after it. Without
    /// this, tickets are sealed with a key of this process alone.
    pub fn share_tickets(self, secret: &[u8; 32]) -> Result<Self, TlsConfigError> {
        let day = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        let keys = ticket_keys(secret, day);
        Ok(TlsConfig {
            acceptor: self.identity.acceptor(Some(&keys))?,
            identity: self.identity,
        })
    }

    /// Checks that the key belongs to the certificate by a handshake with ourselves over a
    /// socket pair. OpenSSL drops a key that does not match without a word, and every client
    /// handshake would then fail; this finds out at start-up (`pop3d --check` runs it too).
    pub fn self_test(&self) -> Result<(), TlsConfigError> {
        let failed = |e: String| {
            TlsConfigError::new(
                TlsConfigErrorKind::Mismatch,
                format!("a test handshake failed ({e}): does the key belong to the certificate?"),
            )
        };
        let (server_end, client_end) = UnixStream::pair().map_err(|e| failed(e.to_string()))?;
        for end in [&server_end, &client_end] {
            let limit = Some(std::time::Duration::from_secs(10));
            end.set_read_timeout(limit)
                .map_err(|e| failed(e.to_string()))?;
            end.set_write_timeout(limit)
                .map_err(|e| failed(e.to_string()))?;
        }
        let acceptor = self.acceptor.clone();
        let server = std::thread::spawn(move || acceptor.accept(server_end).map(drop));
        let client = native_tls::TlsConnector::builder()
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true)
            .build()
            .map_err(|e| failed(e.to_string()))?
            .connect("localhost", client_end)
            .map(drop)
            .map_err(|e| e.to_string());
        let server = server
            .join()
            .map_err(|_| failed("the handshake thread panicked".into()))?
            .map_err(|e| e.to_string());
        client.and(server).map_err(failed)
    }

    /// Runs the server side of a handshake on `stream`. A read timeout on the stream bounds a
    /// stalled handshake: it surfaces as [`io::ErrorKind::TimedOut`].
    pub(crate) fn accept<S: Read + Write>(&self, stream: S) -> io::Result<TlsStream<S>> {
        self.acceptor.accept(stream).map_err(|e| match e {
            HandshakeError::WouldBlock(_) => {
                io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
            }
            HandshakeError::Failure(mid) => {
                let e = mid.into_error();
                // A socket timeout during the handshake surfaces as an I/O error inside.
                match e.io_error() {
                    Some(io) if crate::timeouts::is_timeout(io) => {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    }
                    _ => io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS handshake failed: {e}"),
                    ),
                }
            }
            HandshakeError::SetupFailure(e) => {
                io::Error::other(format!("TLS handshake could not start: {e}"))
            }
        })
    }
}

impl Identity {
    /// An acceptor with Mozilla's settings for `min`, a session cache, and tickets sealed
    /// with `ticket_keys` when given (OpenSSL's own random key otherwise).
    fn acceptor(
        &self,
        ticket_keys: Option<&[u8; TICKET_KEYS_LEN]>,
    ) -> Result<SslAcceptor, TlsConfigError> {
        let setup = |what: &str, e: openssl::error::ErrorStack| {
            TlsConfigError::new(TlsConfigErrorKind::Setup, format!("{what}: {e}"))
        };
        let profile = match self.min {
            MinVersion::Tls13 => SslAcceptor::mozilla_modern_v5(SslMethod::tls_server()),
            MinVersion::Tls12 | MinVersion::Tls10 => {
                SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            }
        };
        let mut builder = profile.map_err(|e| setup("cannot set up TLS", e))?;
        if self.min == MinVersion::Tls10 {
            builder.clear_options(SslOptions::NO_TLSV1 | SslOptions::NO_TLSV1_1);
            builder
                .set_min_proto_version(Some(SslVersion::TLS1))
                .and_then(|()| builder.set_cipher_list(OLD_CIPHERS))
                .map_err(|e| setup("cannot allow TLS 1.0", e))?;
        }
        builder
            .set_certificate(&self.leaf)
            .and_then(|()| {
                self.chain
                    .iter()
                    .try_for_each(|c| builder.add_extra_chain_cert(c.clone()))
            })
            .and_then(|()| builder.set_private_key(&self.key))
            .map_err(|e| setup("certificate or key not usable", e))?;
        builder.check_private_key().map_err(|e| {
            TlsConfigError::new(
                TlsConfigErrorKind::Mismatch,
                format!("the key does not belong to the certificate: {e}"),
            )
        })?;
        builder
            .set_session_id_context(SESSION_ID_CONTEXT)
            .map_err(|e| setup("cannot set up session resumption", e))?;
        builder.set_session_cache_mode(SslSessionCacheMode::SERVER);
        builder.set_session_cache_size(SESSION_CACHE_SIZE);
        // The cipher preference is the server's, as Mozilla's profiles intend.
        builder.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
        if let Some(keys) = ticket_keys {
            // SAFETY: the context is the builder's own and valid; OpenSSL copies the 80 bytes
            // (key name, HMAC key, AES key) before returning and keeps no pointer to them.
            let set = unsafe {
                openssl_sys::SSL_CTX_ctrl(
                    builder.as_ptr(),
                    SSL_CTRL_SET_TLSEXT_TICKET_KEYS,
                    TICKET_KEYS_LEN as libc::c_long,
                    keys.as_ptr() as *mut libc::c_void,
                )
            };
            if set != 1 {
                return Err(TlsConfigError::new(
                    TlsConfigErrorKind::Setup,
                    "cannot set the session ticket keys",
                ));
            }
        }
        Ok(builder.build())
    }
}

/// OpenSSL's control code behind SSL_CTX_set_tlsext_ticket_keys, a macro openssl-sys does
/// not wrap (ssl.h: SSL_CTRL_SET_TLSEXT_TICKET_KEYS).
const SSL_CTRL_SET_TLSEXT_TICKET_KEYS: libc::c_int = 59;

/// The length OpenSSL 1.1 and later expect: a 16-byte key name, a 32-byte HMAC key and a
/// 32-byte AES key.
const TICKET_KEYS_LEN: usize = 80;

/// The ticket keys for `day`, derived from `secret` (HMAC-SHA-256 in counter mode), so that
/// processes sharing the secret share the keys and a day's keys say nothing of another's.
fn ticket_keys(secret: &[u8; 32], day: u64) -> [u8; TICKET_KEYS_LEN] {
    use hmac::{Hmac, Mac};
    let mut keys = [0u8; TICKET_KEYS_LEN];
    for (block, out) in keys.chunks_mut(32).enumerate() {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"pop3d TLS ticket keys");
        mac.update(&day.to_be_bytes());
        mac.update(&[block as u8]);
        let digest = mac.finalize().into_bytes();
        out.copy_from_slice(&digest[..out.len()]);
    }
    keys
}

/// Refuses key files pop3d cannot load, saying what to do.
fn check_key_format(key: &[u8]) -> Result<(), TlsConfigError> {
    if contains(key, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(key, b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(TlsConfigError::new(
            TlsConfigErrorKind::Format,
            "the key is encrypted; pop3d needs it unencrypted, readable only by root. \
             Decrypt it with: openssl pkey -in KEY -out KEY.plain",
        ));
    }
    let begins = [
        &b"-----BEGIN PRIVATE KEY-----"[..],
        b"-----BEGIN RSA PRIVATE KEY-----",
        b"-----BEGIN EC PRIVATE KEY-----",
    ];
    if !begins.iter().any(|b| contains(key, b)) {
        return Err(TlsConfigError::new(
            TlsConfigErrorKind::Format,
            "the key file holds no PEM private key (\"BEGIN PRIVATE KEY\")",
        ));
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_format_errors_say_what_to_do() {
        for (pem, says) in [
            (
                &b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n"[..],
                "openssl pkey",
            ),
            (
                b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n",
                "openssl pkey",
            ),
            (b"nothing", "no PEM private key"),
        ] {
            let e = check_key_format(pem).unwrap_err();
            assert_eq!(e.kind(), TlsConfigErrorKind::Format);
            let e = e.to_string();
            assert!(e.contains(says), "{e}");
        }
        for pem in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let text = format!("-----BEGIN {pem}-----\nx\n");
            assert!(check_key_format(text.as_bytes()).is_ok(), "{pem}");
        }
    }
}
