//! The certificate a server offers, replaceable while it runs (a renewed certificate, on
//! SIGHUP in the daemon): new connections get the new one, open sessions keep theirs.

use crate::tls::TlsConfig;
use std::sync::{Arc, RwLock};

/// The TLS configuration of a [`Server`](super::Server), shared by its acceptors and its
/// handles.
#[derive(Clone, Default)]
pub(super) struct Current(Arc<RwLock<Option<Arc<TlsConfig>>>>);

impl Current {
    /// The configuration for a new connection: kept by it to its end, whatever replaces it.
    pub(super) fn get(&self) -> Option<Arc<TlsConfig>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set(&self, tls: TlsConfig) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(tls));
    }
}

/// Replaces the certificate and key of a running [`Server`](super::Server).
///
/// ```no_run
/// # use pop3d::{Server, TlsConfig, MinVersion};
/// # fn reload(server: &Server) -> Result<(), pop3d::TlsConfigError> {
/// let handle = server.tls_handle();
/// // Later, when the certificate has been renewed:
/// let renewed = TlsConfig::from_pem_files(
///     "/etc/ssl/pop3d.pem".as_ref(),
///     "/etc/ssl/private/pop3d.key".as_ref(),
///     MinVersion::Tls12,
/// )?;
/// renewed.self_test()?;
/// handle.replace(renewed);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsHandle {
    pub(super) current: Current,
}

impl TlsHandle {
    /// From now on, connections are offered `tls`; sessions already under way keep the
    /// configuration they started with. Check the new pair first
    /// ([`TlsConfig::self_test`]): a broken one would fail every handshake.
    pub fn replace(&self, tls: TlsConfig) {
        self.current.set(tls);
    }
}
