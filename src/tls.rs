//! TLS for STLS (RFC 2595) and implicit-TLS ports (RFC 8314), through native-tls.

use native_tls::{Identity, Protocol, TlsAcceptor, TlsStream};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The oldest TLS version a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and later: the default (RFC 8996 deprecates 1.0 and 1.1).
    Tls12,
    /// TLS 1.0 and later, for clients that know nothing newer. Unsafe (RFC 8996). With
    /// native-tls on OpenSSL it changes nothing yet: only TLS 1.2 suites are offered, so
    /// older clients still fail the handshake.
    Tls10,
}

/// A certificate and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

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

impl TlsConfig {
    /// Loads a PEM certificate chain (the server's certificate first) and a PEM PKCS#8 key.
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
        let identity = Identity::from_pkcs8(cert, key).map_err(|e| {
            let text = format!("certificate or key not usable: {e}");
            TlsConfigError::new(TlsConfigErrorKind::Setup, text)
        })?;
        let acceptor = TlsAcceptor::builder(identity)
            .min_protocol_version(Some(match min {
                MinVersion::Tls12 => Protocol::Tlsv12,
                MinVersion::Tls10 => Protocol::Tlsv10,
            }))
            .build()
            .map_err(|e| {
                TlsConfigError::new(TlsConfigErrorKind::Setup, format!("cannot set up TLS: {e}"))
            })?;
        Ok(TlsConfig { acceptor })
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
            native_tls::HandshakeError::WouldBlock(_) => {
                io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
            }
            native_tls::HandshakeError::Failure(e) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS handshake failed: {e}"),
            ),
        })
    }
}

/// Refuses key formats native-tls cannot load, saying how to convert them.
fn check_key_format(key: &[u8]) -> Result<(), TlsConfigError> {
    let convert = |what: &str| {
        TlsConfigError::new(
            TlsConfigErrorKind::Format,
            format!(
                "the key is {what}; pop3d needs PKCS#8 (\"BEGIN PRIVATE KEY\"). Convert it \
                 with: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8"
            ),
        )
    };
    if contains(key, b"-----BEGIN RSA PRIVATE KEY-----") {
        return Err(convert("PKCS#1 (\"BEGIN RSA PRIVATE KEY\")"));
    }
    if contains(key, b"-----BEGIN EC PRIVATE KEY-----") {
        return Err(convert("SEC1 (\"BEGIN EC PRIVATE KEY\")"));
    }
    if contains(key, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(TlsConfigError::new(
            TlsConfigErrorKind::Format,
            "the key is encrypted; pop3d needs it unencrypted, readable only by root. \
             Decrypt it with: openssl pkcs8 -in KEY -out KEY.plain",
        ));
    }
    if !contains(key, b"-----BEGIN PRIVATE KEY-----") {
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
    fn key_format_errors_say_how_to_convert() {
        for (pem, says) in [
            (&b"-----BEGIN RSA PRIVATE KEY-----\nx\n"[..], "PKCS#1"),
            (b"-----BEGIN EC PRIVATE KEY-----\nx\n", "SEC1"),
            (b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n", "encrypted"),
            (b"nothing", "no PEM private key"),
        ] {
            let e = check_key_format(pem).unwrap_err();
            assert_eq!(e.kind(), TlsConfigErrorKind::Format);
            let e = e.to_string();
            assert!(e.contains(says), "{e}");
            assert!(e.contains("openssl") || says == "no PEM private key", "{e}");
        }
        assert!(check_key_format(b"-----BEGIN PRIVATE KEY-----\nx\n").is_ok());
    }
}
