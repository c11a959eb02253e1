//! The TRANSACTION state: the messages of a locked mailbox, and the marks DELE sets on them.

use super::{messages, Reply};
use crate::account::Account;
use crate::protocol::command::MessageNumber;
use crate::protocol::Command;
use crate::store::Mailbox;

/// A logged-in session's mailbox and deletion marks.
pub(super) struct Transaction {
    pub(super) account: Account,
    pub(super) mailbox: Box<dyn Mailbox>,
    /// One mark per message: true once DELE'd (RSET clears them all).
    pub(super) deleted: Vec<bool>,
}

impl Transaction {
    pub(super) fn execute(&mut self, cmd: Command<'_>) -> Reply {
        match cmd {
            Command::Stat => {
                let (count, size) = self.totals();
                Reply::Ok(format!("{count} {size}"))
            }
            Command::List(Some(n)) => match self.message(n) {
                Ok(i) => Reply::Ok(format!("{n} {}", self.mailbox.messages()[i].size)),
                Err(r) => r,
            },
            Command::Uidl(Some(n)) => match self.message(n) {
                Ok(i) => Reply::Ok(format!("{n} {}", self.mailbox.messages()[i].uidl)),
                Err(r) => r,
            },
            Command::List(None) => Reply::List,
            Command::Uidl(None) => Reply::Uidl,
            Command::Retr(n) => match self.message(n) {
                Ok(index) => Reply::Message { index, top: None },
                Err(r) => r,
            },
            Command::Top(n, lines) => match self.message(n) {
                Ok(index) => Reply::Message {
                    index,
                    top: Some(lines),
                },
                Err(r) => r,
            },
            Command::Dele(n) => match self.message(n) {
                Ok(i) => {
                    self.deleted[i] = true;
                    Reply::Ok(format!("Message {n} deleted"))
                }
                Err(r) => r,
            },
            Command::Noop => Reply::Ok(String::new()),
            Command::Rset => {
                self.deleted.fill(false);
                let (count, size) = self.totals();
                Reply::Ok(format!("{} ({size} octets)", messages(count)))
            }
            // Answered by the session before it gets here.
            Command::User(_)
            | Command::Pass(_)
            | Command::Apop(..)
            | Command::Auth(_)
            | Command::Stls
            | Command::Quit
            | Command::Capa => Reply::Bad("Not allowed now".into()),
        }
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
