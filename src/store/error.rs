use std::fmt;
use std::io;

/// What went wrong in a [`MailStore`](super::MailStore) or [`Mailbox`](super::Mailbox).
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    detail: String,
    source: Option<io::Error>,
}

/// The class of a [`StoreError`], which decides the response code a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Another session holds the mailbox: `[IN-USE]`.
    InUse,
    /// A failure that may pass (I/O error, full disk): `[SYS/TEMP]`.
    Temporary,
    /// A failure that will not pass without an administrator (bad configuration, a mailbox that
    /// is missing or may not be opened): `[SYS/PERM]`.
    Permanent,
}

impl StoreError {
    /// Creates an error of `kind`; `detail` goes to the log, never to the client.
    pub fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        StoreError {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// An I/O failure while doing `context`: the detail is `context: error`, the kind as the
    /// conversion from [`io::Error`] gives it (a missing or forbidden file is permanent).
    pub fn io(context: impl fmt::Display, source: io::Error) -> Self {
        Self::with_source(kind_of(&source), format!("{context}: {source}"), source)
    }

    /// Creates an error of `kind` caused by `source`, which [`source`](std::error::Error::source)
    /// returns. `detail` should still say what happened: the session logs the detail alone.
    pub fn with_source(kind: StoreErrorKind, detail: impl Into<String>, source: io::Error) -> Self {
        StoreError {
            kind,
            detail: detail.into(),
            source: Some(source),
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

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// A missing or forbidden file is [`Permanent`](StoreErrorKind::Permanent): retrying will not
/// create the mailbox or change its permissions. Anything else (a full disk, an I/O error, a
/// stale NFS handle) may pass, so it is [`Temporary`](StoreErrorKind::Temporary).
///
/// Where a missing file is expected and passing (a message another session deleted), the
/// store handles `NotFound` itself before it gets here.
impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        Self::with_source(kind_of(&e), e.to_string(), e)
    }
}

fn kind_of(e: &io::Error) -> StoreErrorKind {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => StoreErrorKind::Permanent,
        _ => StoreErrorKind::Temporary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn io_errors_are_classed_and_kept_as_the_source() {
        let cases = [
            (io::ErrorKind::NotFound, StoreErrorKind::Permanent),
            (io::ErrorKind::PermissionDenied, StoreErrorKind::Permanent),
            (io::ErrorKind::StorageFull, StoreErrorKind::Temporary),
            (io::ErrorKind::Interrupted, StoreErrorKind::Temporary),
        ];
        for (io_kind, want) in cases {
            let e = StoreError::from(io::Error::new(io_kind, "boom"));
            assert_eq!(e.kind(), want, "{io_kind:?}");
            assert_eq!(e.detail(), "boom");
            let source = e.source().expect("source kept");
            let io = source.downcast_ref::<io::Error>().expect("an io::Error");
            assert_eq!(io.kind(), io_kind);

            let e = StoreError::io("open /m", io::Error::new(io_kind, "boom"));
            assert_eq!((e.kind(), e.detail()), (want, "open /m: boom"));
            assert!(e.source().is_some());
        }
        assert!(StoreError::new(StoreErrorKind::InUse, "x")
            .source()
            .is_none());
    }
}
