//! The pure part of POP3: bytes in, typed commands out; messages in, wire bytes out. No I/O.

pub mod command;
#[cfg(test)]
mod command_props;
pub mod message;
pub mod proxy;

pub use command::{parse, Command};
pub use message::{wire_size, MessageEncoder, Workarounds};
