//! What a host program hears about sessions: an [`Observer`] it registers on the
//! [`Service`](crate::Service), called with an [`Event`] as things happen.

use crate::auth::AuthErrorKind;
use crate::session::{End, Stats};
use std::net::SocketAddr;
use std::time::Duration;

/// Hears about what happens in sessions, for metrics or audit logs.
///
/// Called on the session's own thread, in the middle of the session: keep it quick (count,
/// or hand off to a channel) and do not panic. Events carry no passwords.
pub trait Observer: Send + Sync {
    /// One thing happened.
    fn event(&self, event: &Event<'_>);
}

/// One thing that happened.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A client logged in and its mailbox is open.
    LoggedIn {
        /// The account's canonical name.
        user: &'a str,
        /// The client, as in the logs (an address, or `stdin`).
        peer: &'a str,
        /// How it logged in: `USER`, `APOP`, or a SASL mechanism's name.
        mechanism: &'a str,
        /// True if the connection is encrypted.
        tls: bool,
        /// Messages in the mailbox.
        messages: usize,
    },
    /// A login failed (after the failure delay).
    LoginFailed {
        /// The name tried, when the client gave one the session could read.
        user: Option<&'a str>,
        /// The client.
        peer: &'a str,
        /// How it tried.
        mechanism: &'a str,
        /// Wrong credentials, or the account database failed.
        kind: AuthErrorKind,
    },
    /// A message went out whole (RETR).
    Retrieved {
        /// The account.
        user: &'a str,
        /// Its size in octets as LIST gives it.
        octets: u64,
    },
    /// The top of a message went out (TOP).
    TopSent {
        /// The account.
        user: &'a str,
        /// The body lines asked for.
        lines: u32,
    },
    /// A client was turned away before its session began.
    Refused {
        /// The client (behind a proxy: the address the PROXY header named, when it was read).
        peer: SocketAddr,
        /// Why.
        reason: Refusal,
    },
    /// A session ended.
    Ended {
        /// The account, if the client had logged in.
        user: Option<&'a str>,
        /// The client.
        peer: &'a str,
        /// How it ended.
        end: End,
        /// What it retrieved and deleted.
        stats: Stats,
        /// How long it lasted, from connect.
        duration: Duration,
    },
}

/// Why a client was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Every worker was busy.
    Busy,
    /// Its address already had as many sessions as allowed.
    TooManyFromAddress,
}
