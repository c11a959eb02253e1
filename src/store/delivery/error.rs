//! Why a delivery failed, and what an SMTP server answers for it.

use crate::store::{StoreError, StoreErrorKind};
use std::fmt;
use std::io;

/// Why a message was not delivered.
#[derive(Debug)]
pub struct DeliveryError {
    kind: DeliveryErrorKind,
    detail: String,
}

/// The class of a [`DeliveryError`]: what the sender is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryErrorKind {
    /// No account by that name: 550 5.1.1.
    NoSuchUser,
    /// The mailbox is full (bytes or messages): 552 5.2.2, or 452 4.2.2 when over-quota is
    /// configured as temporary ([`OverQuota::Temporary`]).
    OverQuota,
    /// The message alone is larger than the mailbox may ever hold: 552 5.2.3.
    TooBig,
    /// Anything that may pass or that an administrator must fix (an I/O error, a full disk, an
    /// account source that cannot be read, a mailbox that may not be opened): 451 4.3.0. The
    /// mail waits in the sender's queue rather than bounce for a fault of ours.
    Temporary,
}

/// Whether a full mailbox bounces the mail or makes the sender try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverQuota {
    /// 552 5.2.2: the sender gets a bounce at once (the default, as in Dovecot).
    #[default]
    Permanent,
    /// 452 4.2.2: the mail stays queued, and is delivered if the user makes room before the
    /// queue gives up.
    Temporary,
}

/// An SMTP reply: code, enhanced status code (RFC 3463) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// The three-digit reply code (RFC 5321).
    pub code: u16,
    /// The enhanced status code, such as `5.2.2`.
    pub status: &'static str,
    /// Human-readable text; never contains the message or the log detail.
    pub text: &'static str,
}

impl SmtpReply {
    /// True for a 4xx reply: the sender should try again later.
    pub fn is_temporary(&self) -> bool {
        self.code / 100 == 4
    }
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

impl DeliveryError {
    /// Creates an error of `kind`; `detail` is for the log, never for the sender.
    pub fn new(kind: DeliveryErrorKind, detail: impl Into<String>) -> Self {
        DeliveryError {
            kind,
            detail: detail.into(),
        }
    }

    /// A temporary failure while doing `context`.
    pub fn io(context: impl fmt::Display, e: io::Error) -> Self {
        Self::new(DeliveryErrorKind::Temporary, format!("{context}: {e}"))
    }

    /// The class of the error.
    pub fn kind(&self) -> DeliveryErrorKind {
        self.kind
    }

    /// A description for the log.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The reply an SMTP server gives for this error, over quota being `over_quota`.
    pub fn smtp_reply(&self, over_quota: OverQuota) -> SmtpReply {
        let (code, status, text) = match (self.kind, over_quota) {
            (DeliveryErrorKind::NoSuchUser, _) => (550, "5.1.1", "No such user here"),
            (DeliveryErrorKind::OverQuota, OverQuota::Permanent) => {
                (552, "5.2.2", "Mailbox full: quota exceeded")
            }
            (DeliveryErrorKind::OverQuota, OverQuota::Temporary) => {
                (452, "4.2.2", "Mailbox full: quota exceeded")
            }
            (DeliveryErrorKind::TooBig, _) => {
                (552, "5.2.3", "Message larger than the mailbox may hold")
            }
            (DeliveryErrorKind::Temporary, _) => {
                (451, "4.3.0", "Temporary local failure; try again later")
            }
        };
        SmtpReply { code, status, text }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for DeliveryError {}

/// Any I/O failure may pass: [`Temporary`](DeliveryErrorKind::Temporary).
impl From<io::Error> for DeliveryError {
    fn from(e: io::Error) -> Self {
        DeliveryError::new(DeliveryErrorKind::Temporary, e.to_string())
    }
}

/// A store that cannot be opened or written is a fault of ours, never the sender's: the mail
/// waits ([`Temporary`](DeliveryErrorKind::Temporary)) whatever the store's class of error.
impl From<StoreError> for DeliveryError {
    fn from(e: StoreError) -> Self {
        let detail = match e.kind() {
            StoreErrorKind::Permanent => format!("{} (needs an administrator)", e.detail()),
            _ => e.detail().to_owned(),
        };
        DeliveryError::new(DeliveryErrorKind::Temporary, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_reply() {
        let reply = |kind, policy| DeliveryError::new(kind, "x").smtp_reply(policy).to_string();
        let p = super::OverQuota::Permanent;
        use DeliveryErrorKind::*;
        assert_eq!(reply(NoSuchUser, p), "550 5.1.1 No such user here");
        assert_eq!(
            reply(OverQuota, p),
            "552 5.2.2 Mailbox full: quota exceeded"
        );
        assert_eq!(
            reply(OverQuota, super::OverQuota::Temporary),
            "452 4.2.2 Mailbox full: quota exceeded"
        );
        assert!(reply(TooBig, p).starts_with("552 5.2.3 "));
        assert!(reply(Temporary, p).starts_with("451 4.3.0 "));
        let e = DeliveryError::from(StoreError::new(StoreErrorKind::Permanent, "bad owner"));
        assert_eq!(e.kind(), Temporary);
        assert!(e.smtp_reply(p).is_temporary());
    }
}
