//! Tests of the mbox backend: the parser against the rules and against [`crate::wire_size`],
//! the file scanner against the parser, UIDL stability, the store over real files, and
//! crashes at each step of UPDATE.

mod crash;
mod deliver;
mod parse;
mod store;

use crate::account::Account;
use crate::store::mbox::MboxStore;
use crate::store::{MailStore, Mailbox};
use std::io::Read;
use std::path::Path;

/// A `From ` line as Postfix writes it.
pub(super) fn from_line(n: usize) -> String {
    format!(
        "From sender{n}@example.org  Sat Dec  5 09:{:02}:{:02} 2026\n",
        n / 60 % 60,
        n % 60
    )
}

/// An mbox of `bodies`, each with a From line and a blank line after, as an MTA appends them.
pub(super) fn mbox_of(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, m) in messages.iter().enumerate() {
        out.extend_from_slice(from_line(n).as_bytes());
        out.extend_from_slice(m);
        out.extend_from_slice(b"\n");
    }
    out
}

/// A simple message, numbered.
pub(super) fn message(n: usize) -> Vec<u8> {
    format!(
        "Received: by mx; {n}\nMessage-ID: <{n}@example.org>\nSubject: message {n}\n\nbody {n}\n>From the body\n"
    )
    .into_bytes()
}

pub(super) fn store_at(path: &Path) -> MboxStore {
    MboxStore::new(path.to_str().unwrap()).unwrap()
}

pub(super) fn open(path: &Path) -> Box<dyn Mailbox> {
    store_at(path).open(&Account::new("p3t-mbox")).unwrap()
}

pub(super) fn read_all(mailbox: &mut dyn Mailbox) -> Vec<Vec<u8>> {
    (0..mailbox.messages().len())
        .map(|i| read_one(mailbox, i))
        .collect()
}

/// Message `i` of `mailbox`, as served.
pub(super) fn read_one(mailbox: &mut dyn Mailbox, i: usize) -> Vec<u8> {
    let mut out = Vec::new();
    mailbox.read(i).unwrap().read_to_end(&mut out).unwrap();
    out
}
