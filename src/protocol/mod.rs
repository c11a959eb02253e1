//! The pure part of POP3: bytes in, typed commands out; messages in, wire bytes out. No I/O.

pub mod command;
pub mod message;
pub mod proxy;

pub use command::{parse, Command, ParseError};
pub use message::{wire_size, MessageEncoder, WireSize};
