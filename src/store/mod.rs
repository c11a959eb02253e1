//! Where mail lives: the [`MailStore`] trait and the backends that ship with pop3d.
//!
//! A session asks the store to open (and lock) one account's mailbox at login. The mailbox is a
//! snapshot: its message list does not change while the session lasts, so message numbers stay
//! put and mail delivered meanwhile waits for the next session.

pub mod delivery;
mod dir;
mod error;
mod lock;
pub mod maildir;
pub mod mbox;
pub mod memory;

pub use delivery::{Deliver, DeliveryError, DeliveryErrorKind, Quota};
pub use error::{StoreError, StoreErrorKind};

use crate::account::Account;
use std::io::Read;

/// One message of a mailbox snapshot, as LIST, STAT and UIDL report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Size in octets as sent: line ends counted as CRLF, before dot-stuffing
    /// (see [`crate::protocol::message::wire_size`]). A store may take it from metadata
    /// written at delivery (Maildir's `,W=`) rather than count it.
    pub size: u64,
    /// Unique and stable identifier: 1 to 70 characters in 0x21..=0x7E (RFC 1939 §7).
    pub uidl: String,
}

/// A message as ranges of a file ([`Mailbox::file_ranges`]).
#[derive(Debug)]
pub struct MessageFile {
    /// The file, open for reading only.
    pub file: std::fs::File,
    /// The ranges of it that make the message, in order.
    pub ranges: Vec<std::ops::Range<u64>>,
}

/// A source of mailboxes: implement this to serve your own storage.
pub trait MailStore: Send + Sync {
    /// Opens and locks the mailbox of `account`.
    ///
    /// Only one session may hold a mailbox at a time: while another holds it, return an error of
    /// kind [`StoreErrorKind::InUse`]. The lock must be released when the returned mailbox is
    /// dropped, and must never outlive the process that holds it.
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError>;
}

/// One opened, locked mailbox: a fixed snapshot of messages, numbered from 1 in the session.
pub trait Mailbox: Send {
    /// The messages of the snapshot; index 0 is message number 1.
    fn messages(&self) -> &[MessageInfo];

    /// Opens message `index` (0-based) for reading its raw bytes, as stored.
    ///
    /// Line ends may be LF or CRLF; the session converts and dot-stuffs while streaming.
    fn read(&mut self, index: usize) -> Result<Box<dyn Read + '_>, StoreError>;

    /// Where message `index`'s octets are, when they are ranges of one file that can be read
    /// as they are: the file, opened for reading only, and the ranges in order. What they hold
    /// is what [`read`](Self::read) gives, after the same checks. A caller that reads files
    /// itself may use them instead of `read` (the pop3d binary does, for a mailbox that a
    /// process of the account holds: the octets then reach the session without crossing a
    /// pipe). The default is `None`: use `read`.
    fn file_ranges(&mut self, index: usize) -> Result<Option<MessageFile>, StoreError> {
        let _ = index;
        Ok(None)
    }

    /// Removes messages for good: the UPDATE state after QUIT.
    ///
    /// Must be durable before returning `Ok`. A message that is already gone counts as removed.
    /// On error, messages not yet removed must be left intact.
    fn delete(&mut self, indices: &[usize]) -> Result<(), StoreError>;

    /// Removes for good the messages that [`retrieved`](Mailbox::retrieved) recorded at least
    /// `age` ago, in earlier sessions, and drops them from the snapshot: RFC 2449 EXPIRE.
    ///
    /// Called once, right after the mailbox is opened and before the session numbers its
    /// messages, when the account's EXPIRE period is a number of days. Must never remove a
    /// message it has no record of, and must update whatever deletions update (a quota).
    /// Returns how many messages were removed, or `None` when this mailbox keeps no record of
    /// retrievals (the default): periods longer than 0 are then not enforced.
    fn expire(&mut self, age: std::time::Duration) -> Result<Option<usize>, StoreError> {
        let _ = age;
        Ok(None)
    }

    /// Records that the messages at `indices` were retrieved (`RETR`) in this session and are
    /// kept, keeping an earlier record's time where there is one, so that a later
    /// [`expire`](Mailbox::expire) can remove them.
    ///
    /// Called in the UPDATE state, after [`delete`](Mailbox::delete), when the account's
    /// EXPIRE period is more than 0 days. The default records nothing.
    fn retrieved(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        let _ = indices;
        Ok(())
    }
}

/// `template` expanded for `account`: the path of its `kind` of mailbox (`maildir`, `mbox`).
/// A template that cannot be expanded for this account is its configuration's fault, not a
/// passing one.
fn mailbox_path(
    template: &crate::template::Template,
    account: &Account,
    kind: &str,
) -> Result<std::path::PathBuf, StoreError> {
    template.expand(account).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Permanent,
            format!("{kind} of {}: {e}", account.name),
        )
    })
}
