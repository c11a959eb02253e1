use std::fmt;

/// Why a stored hash cannot be checked, or a new one cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordError {
    kind: PasswordErrorKind,
    detail: String,
}

/// The class of a [`PasswordError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordErrorKind {
    /// The `{SCHEME}` prefix, or the scheme asked of [`hash`](super::hash), is not one pop3d
    /// knows.
    UnknownScheme,
    /// The stored hash is not a valid hash of its scheme: empty, truncated, with characters or
    /// parameters the scheme does not take.
    MalformedHash,
    /// The stored hash asks for more work or memory than pop3d allows (the caps are in the
    /// manual's LIMITS section): checking it could stall or abort the server.
    TooCostly,
    /// A new hash could not be made: the password cannot go through the scheme (a NUL for
    /// crypt(3)), or the system failed (no randomness, crypt(3) refused).
    HashingFailed,
}

impl PasswordError {
    pub(super) fn new(kind: PasswordErrorKind, detail: impl Into<String>) -> Self {
        PasswordError {
            kind,
            detail: detail.into(),
        }
    }

    /// A [`PasswordErrorKind::MalformedHash`], the commonest kind.
    pub(super) fn malformed(detail: impl Into<String>) -> Self {
        Self::new(PasswordErrorKind::MalformedHash, detail)
    }

    /// The class of the error.
    pub fn kind(&self) -> PasswordErrorKind {
        self.kind
    }

    /// What is wrong, for the log or `pop3d --check`; it never contains the password.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// No [`source`](std::error::Error::source): the errors come from pop3d's own checks of the
/// hash's text, from crypt(3), which says only that it refused, and from the argon2 crate,
/// whose errors are std errors only with a feature pop3d does not need. The detail says it all.
impl std::error::Error for PasswordError {}
