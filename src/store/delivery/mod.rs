//! Putting new mail into a store: the [`Deliver`] trait, its typed [`DeliveryError`], and
//! [`Quota`]s.
//!
//! A host program that takes mail over its own SMTP resolves the recipient to an [`Account`]
//! (see [`deliver_to`]), hands the message to the store as a stream, and turns an error into its
//! SMTP reply with [`DeliveryError::smtp_reply`]. The `pop3d --deliver` agent does the same and
//! turns the error into an exit status instead.
//!
//! ```
//! use pop3d::store::delivery::{Deliver, DeliveryErrorKind, OverQuota};
//! use pop3d::store::{memory::MemoryStore, Quota};
//! use pop3d::Account;
//!
//! let one_message = Quota { storage: None, messages: Some(1) };
//! let store = MemoryStore::new().with_quota(one_message);
//! let store: &dyn Deliver = &store; // any store that ships: the same call
//! let bob = Account::new("bob@example.org");
//! let uidl = store.deliver(&bob, &mut &b"Subject: hi\r\n\r\nHello\r\n"[..]).unwrap();
//! # assert!(!uidl.is_empty());
//! let full = store.deliver(&bob, &mut &b"Subject: again\r\n\r\n"[..]).unwrap_err();
//! assert_eq!(full.kind(), DeliveryErrorKind::OverQuota);
//! let reply = full.smtp_reply(OverQuota::Permanent);
//! assert_eq!(reply.to_string(), "552 5.2.2 Mailbox full: quota exceeded");
//! ```
//!
//! # Why a trait of its own, and not a method of [`MailStore`](super::MailStore)
//!
//! Serving and delivering are different jobs done by different programs (the POP3 server never
//! delivers; an MTA's delivery agent never serves). A separate trait lets a store that only
//! serves (a host's read-only archive) say so in its type, rather than fail at run time with an
//! "unsupported" error, and lets a host keep its store as one concrete value that is both a
//! [`MailStore`](super::MailStore) for the [`Service`](crate::Service) and a [`Deliver`] for its
//! SMTP side. Every store that ships implements both.

mod error;
mod quota;

pub use error::{DeliveryError, DeliveryErrorKind, OverQuota, SmtpReply};
pub use quota::{Quota, QuotaError, Usage};

use crate::account::Account;
use crate::auth::{AuthErrorKind, Authenticator};
use std::io::Read;

/// A store that takes new messages.
pub trait Deliver: Send + Sync {
    /// Delivers `message`, read to its end, into the mailbox of `account`, and returns its UIDL.
    ///
    /// The message is read as a stream: a store must not hold the whole of it in memory unless
    /// it keeps mail in memory anyway. It is stored as it comes (line ends as given). The quota is
    /// `account.quota`, else the store's default. On `Ok`, the message is durable (on disk and
    /// synced, for a store on disk); on any error, nothing of it is visible to a session and the
    /// quota is as before.
    fn deliver(&self, account: &Account, message: &mut dyn Read) -> Result<String, DeliveryError>;
}

/// Looks `user` up in `accounts` (without a password: [`Authenticator::lookup`]) and delivers
/// `message` into `store` for the account found.
///
/// `user` must already be the canonical name a login would give
/// ([`normalize_with`](crate::user_name::normalize_with) with the same domain and
/// [`Case`](crate::user_name::Case) as the [`Service`](crate::Service)). An unknown account is
/// [`DeliveryErrorKind::NoSuchUser`]; an account source that cannot be read is
/// [`DeliveryErrorKind::Temporary`].
pub fn deliver_to(
    accounts: &dyn Authenticator,
    store: &dyn Deliver,
    user: &str,
    message: &mut dyn Read,
) -> Result<String, DeliveryError> {
    let account = accounts.lookup(user).map_err(|e| match e.kind() {
        AuthErrorKind::Rejected => DeliveryError::new(DeliveryErrorKind::NoSuchUser, e.detail()),
        _ => DeliveryError::new(
            DeliveryErrorKind::Temporary,
            format!("looking up {user}: {}", e.detail()),
        ),
    })?;
    store.deliver(&account, message)
}
