use std::fmt;
use std::io;

/// What went wrong in a [`MailStore`](super::MailStore) or [`Mailbox`](super::Mailbox).
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    detail: String,
}

/// The class of a [`StoreError`], which decides the response code a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Another session holds the mailbox: `[IN-USE]`.
    InUse,
    /// A failure that may pass (I/O error, full disk): `[SYS/TEMP]`.
    Temporary,
    /// A failure that will not pass without an administrator (bad configuration): `[SYS/PERM]`.
    Permanent,
}

impl StoreError {
    /// Creates an error of `kind`; `detail` goes to the log, never to the client.
    pub fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        StoreError {
            kind,
            detail: detail.into(),
        }
    }

    /// The class of the error.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// A description for the log.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for StoreError {}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::new(StoreErrorKind::Temporary, e.to_string())
    }
}
