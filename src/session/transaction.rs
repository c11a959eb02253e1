//! The TRANSACTION state: the messages of a locked mailbox, and the marks DELE sets on them.

use super::messages;
use super::reply::Reply;
use crate::account::Account;
use crate::protocol::command::MessageNumber;
use crate::store::Mailbox;

/// A logged-in session's mailbox and deletion marks.
pub(super) struct Transaction {
    pub(super) account: Account,
    /// How the account logged in (USER, APOP, or the SASL mechanism), for the log.
    pub(super) mechanism: &'static str,
    /// The least time between two logins of the account, for CAPA (zero: none).
    pub(super) login_delay: std::time::Duration,
    /// How long retrieved messages are kept, for CAPA and UPDATE (`None`: nothing said).
    pub(super) expire: Option<crate::Expire>,
    pub(super) mailbox: Box<dyn Mailbox>,
    /// One mark per message: true once DELE'd (RSET clears them all).
    pub(super) deleted: Vec<bool>,
    /// One mark per message: true once RETR has sent it whole (RSET leaves them).
    pub(super) retrieved: Vec<bool>,
}

impl Transaction {
    pub(super) fn stat(&self) -> Reply {
        let (count, size) = self.totals();
        Reply::Ok(format!("{count} {size}"))
    }

    pub(super) fn list(&self, n: Option<MessageNumber>) -> Reply {
        match n {
            None => Reply::Listing { uidl: false },
            Some(n) => match self.message(n) {
                Ok(i) => Reply::Ok(format!("{n} {}", self.mailbox.messages()[i].size)),
                Err(r) => r,
            },
        }
    }

    pub(super) fn uidl(&self, n: Option<MessageNumber>) -> Reply {
        match n {
            None => Reply::Listing { uidl: true },
            Some(n) => match self.message(n) {
                Ok(i) => Reply::Ok(format!("{n} {}", self.mailbox.messages()[i].uidl)),
                Err(r) => r,
            },
        }
    }

    pub(super) fn retr(&self, n: MessageNumber) -> Reply {
        match self.message(n) {
            Ok(index) => Reply::Message { index, top: None },
            Err(r) => r,
        }
    }

    pub(super) fn top(&self, n: MessageNumber, lines: u32) -> Reply {
        match self.message(n) {
            Ok(index) => Reply::Message {
                index,
                top: Some(lines),
            },
            Err(r) => r,
        }
    }

    pub(super) fn dele(&mut self, n: MessageNumber) -> Reply {
        match self.message(n) {
            Ok(i) => {
                self.deleted[i] = true;
                Reply::Ok(format!("Message {n} deleted"))
            }
            Err(r) => r,
        }
    }

    pub(super) fn rset(&mut self) -> Reply {
        self.deleted.fill(false);
        let (count, size) = self.totals();
        Reply::Ok(format!("{} ({size} octets)", messages(count)))
    }

    /// The index of message `n`, or the reply that says why there is none.
    fn message(&self, n: MessageNumber) -> Result<usize, Reply> {
        let index = n.get() as usize - 1;
        match self.deleted.get(index) {
            None => Err(Reply::Err(format!("No message {n}"))),
            Some(true) => Err(Reply::Err(format!("Message {n} is deleted"))),
            Some(false) => Ok(index),
        }
    }

    /// The count and size of the messages not marked deleted.
    pub(super) fn totals(&self) -> (usize, u64) {
        let live = self
            .mailbox
            .messages()
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| !**d);
        // Sizes may come from file names (,W=): saturate rather than overflow.
        live.fold((0, 0u64), |(c, s), (m, _)| {
            (c + 1, s.saturating_add(m.size))
        })
    }
}
