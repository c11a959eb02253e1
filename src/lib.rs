//! pop3d: a small, fast POP3 server (RFC 1939, 2449, 3206) as a library and a daemon.
//!
//! A host program that does its own delivery picks a [`MailStore`] (or writes one) and an
//! [`Authenticator`], puts them in a [`Service`] with its settings, and either hands that to a
//! [`Server`], which listens and runs each session on a bounded pool of threads, or runs
//! sessions itself over any [`Stream`] with [`run_session`]. See `examples/embed.rs`.
//!
//! - Accounts: [`Authenticator`], [`Account`], [`auth::PasswdFile`] (Dovecot's passwd-file).
//! - Mail: [`MailStore`] and [`Mailbox`], [`store::maildir::MaildirStore`],
//!   [`store::memory::MemoryStore`].
//! - Delivery: [`store::Deliver`], [`store::delivery::deliver_to`], [`store::Quota`], and
//!   [`store::DeliveryError`] with the SMTP reply for each failure.
//! - Serving: [`Service`], [`Server`], [`ShutdownHandle`], [`TlsHandle`], [`run_session`],
//!   [`TlsConfig`].
//! - Watching: [`Observer`] hears of logins, retrievals and how each session [`End`]s.
//!
//! Bytes flow one way inside: the stream's time limits, a line reader, the pure command
//! parser, the session state machine, the store and authenticator, and a reply writer.
//!
//! Session threads have a fixed stack ([`Server::stack_size`], 256 KiB by default): an
//! [`Authenticator`] or [`MailStore`] that needs more (deep recursion, large arrays on the
//! stack, or an unoptimised debug build of a hashing crate) must raise it. Password hashes are
//! slow in debug builds of a host program (argon2 takes about half a second there): build the
//! dependencies with optimisation (`[profile.dev.package."*"] opt-level = 2`).

#![warn(missing_docs)]

mod account;
pub mod auth;
mod connection;
mod expire;
pub mod inetd;
mod last_login;
mod limits;
mod net_range;
mod observer;
mod penalty;
mod protocol;
mod run;
mod sasl;
mod server;
mod session;
pub mod store;
mod stream;
mod template;
#[cfg(test)]
mod test_dir;
mod timeouts;
mod tls;
pub mod user_name;

pub use account::Account;
pub use auth::{AuthError, AuthErrorKind, Authenticator};
pub use expire::{BadExpire, Expire};
pub use net_range::NetRange;
pub use observer::{Event, Observer, Refusal};
pub use protocol::{wire_size, Workarounds};
pub use run::{run_session, TlsMode};
pub use server::{ListenerKind, Server, ShutdownHandle, TlsHandle};
pub use session::{End, Service, Stats};
pub use store::{MailStore, Mailbox, MessageFile, MessageInfo, StoreError, StoreErrorKind};
pub use stream::Stream;
pub use template::TemplateError;
pub use tls::{MinVersion, TlsConfig, TlsConfigError, TlsConfigErrorKind};
