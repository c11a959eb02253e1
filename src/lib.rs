//! pop3d: a small, fast POP3 server (RFC 1939, 2449, 3206) as a library and a daemon.
//!
//! Bytes flow one way: a [`Connection`](connection::Connection) reads lines, the pure
//! [`protocol`] parser turns them into commands, the [`Session`] state machine runs them against
//! an [`Authenticator`] and a [`MailStore`], and replies go back through the connection.
//! [`Server`] runs sessions on a bounded pool of threads; [`inetd`] runs one on stdin/stdout.
//!
//! A host program that does its own delivery implements or reuses a [`MailStore`] and an
//! [`Authenticator`] and hands them to a [`Server`]: see `examples/embed.rs`.

#![warn(missing_docs)]

pub mod account;
pub mod auth;
pub mod connection;
pub mod deadlined;
pub mod inetd;
pub mod limits;
pub mod net_range;
pub mod penalty;
pub mod protocol;
pub mod sasl;
pub mod serve;
pub mod server;
pub mod session;
pub mod store;
pub mod template;
#[cfg(test)]
mod test_dir;
pub mod tls;
pub mod user_name;

pub use account::Account;
pub use auth::{AuthError, AuthErrorKind, Authenticator};
pub use server::{ListenerKind, Server, ShutdownHandle};
pub use session::{Service, Session, SessionConfig, Tls};
pub use store::{MailStore, Mailbox, MessageInfo, StoreError, StoreErrorKind};
pub use tls::{MinVersion, TlsConfig};
