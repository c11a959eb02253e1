use std::fmt;

/// Why a login did not succeed.
#[derive(Debug)]
pub struct AuthError {
    kind: AuthErrorKind,
    detail: String,
}

/// The class of an [`AuthError`], which decides the response code a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// Unknown user or wrong password (never say which): `[AUTH]`.
    Rejected,
    /// The account database could not be read: `[SYS/TEMP]`.
    Unavailable,
}

impl AuthError {
    /// Creates an error of `kind`; `detail` goes to the log, never to the client.
    pub fn new(kind: AuthErrorKind, detail: impl Into<String>) -> Self {
        AuthError {
            kind,
            detail: detail.into(),
        }
    }

    /// A rejected login.
    pub fn rejected(detail: impl Into<String>) -> Self {
        Self::new(AuthErrorKind::Rejected, detail)
    }

    /// The class of the error.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// A description for the log.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for AuthError {}
