//! The wire form of a stored message: the tests' one reference (`support::wire`) and the
//! server (a whole session, and the size count a store uses), each checked against the same
//! table of inputs and the bytes RETR and TOP must send, written out literally. (The streaming
//! encoder is checked at every split point by its unit tests.)

mod support;

use pop3d::store::memory::MemoryStore;
use pop3d::{run_session, wire_size, Service, TlsMode};
use std::fs;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;
use support::maildir::Corpus;
use support::wire::{encode, expected_wire};

/// (stored message, TOP's line count or `None` for RETR, the reply body as sent, terminator
/// included).
const SENT: &[(&[u8], Option<u64>, &[u8])] = &[
    // Empty: no line at all.
    (b"", None, b".\r\n"),
    (b"", Some(0), b".\r\n"),
    // No final line end: CRLF is added.
    (b"a", None, b"a\r\n.\r\n"),
    (b"a\nb\r\nc", None, b"a\r\nb\r\nc\r\n.\r\n"),
    // A bare CR is content, also at the very end: the line is `x\r`, then CRLF.
    (b"x\r", None, b"x\r\r\n.\r\n"),
    (b"\r", None, b"\r\r\n.\r\n"),
    (b"x\r", Some(0), b"x\r\r\n.\r\n"),
    (b"a\rb\n", None, b"a\rb\r\n.\r\n"),
    // A CR before the LF is the line end, and only one CR.
    (b"x\r\n", None, b"x\r\n.\r\n"),
    (b"x\r\r\n", None, b"x\r\r\n.\r\n"),
    // Dot-stuffing, also of a last line without a line end.
    (b".", None, b"..\r\n.\r\n"),
    (b".\n\n", None, b"..\r\n\r\n.\r\n"),
    (b"x\n.\n", None, b"x\r\n..\r\n.\r\n"),
    (b"H: 1\r\n\r\n.x\r", Some(1), b"H: 1\r\n\r\n..x\r\r\n.\r\n"),
    // Header only: TOP sends all of it.
    (b"H: 1\nH: 2\n", None, b"H: 1\r\nH: 2\r\n.\r\n"),
    (b"H: 1\nH: 2\n", Some(0), b"H: 1\r\nH: 2\r\n.\r\n"),
    (b"\r\n", Some(0), b"\r\n.\r\n"),
    // TOP: the header, the blank line (LF or CRLF) and n body lines.
    (b"H: 1\n\nl1\nl2\n", Some(0), b"H: 1\r\n\r\n.\r\n"),
    (b"H: 1\r\n\r\nl1\nl2", Some(1), b"H: 1\r\n\r\nl1\r\n.\r\n"),
    (b"H: 1\n\nl1\nl2", Some(5), b"H: 1\r\n\r\nl1\r\nl2\r\n.\r\n"),
    (b"H: 1\n\r\n\nl1\n", Some(1), b"H: 1\r\n\r\n\r\n.\r\n"),
];

/// (stored message, what a client holds once the stuffing is undone: its length is the size
/// LIST reports).
const RECEIVED: &[(&[u8], &[u8])] = &[
    (b"", b""),
    (b"a", b"a\r\n"),
    (b"x\r", b"x\r\r\n"),
    (b"x\r\r\n", b"x\r\r\n"),
    (b"a\nb\r\nc", b"a\r\nb\r\nc\r\n"),
    (b".\n\n", b".\r\n\r\n"),
    (b"..\r\n.", b"..\r\n.\r\n"),
];

#[test]
fn the_reference_gives_the_literal_wire_form() {
    for &(input, top, sent) in SENT {
        assert_eq!(encode(input, top), sent, "{input:?} top {top:?}");
    }
    for &(input, received) in RECEIVED {
        assert_eq!(expected_wire(input), received, "{input:?}");
    }
}

/// A client that sends its whole script at once and keeps what the server sends.
struct Script {
    input: io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl pop3d::Stream for Script {}

/// What a whole session sends after `command`'s status line, for a mailbox holding `message`.
fn served(message: &[u8], command: &str) -> Vec<u8> {
    let store = MemoryStore::new();
    store.deliver("bob", message);
    let users = support::Users::of(&[("bob", "pw")]);
    let service = Service::new(users, Arc::new(store)).auth_failure_delay(Duration::ZERO);
    let script = format!("USER bob\r\nPASS pw\r\n{command}\r\nQUIT\r\n");
    let mut client = Script {
        input: io::Cursor::new(script.into_bytes()),
        output: Vec::new(),
    };
    run_session(&service, &mut client, None, TlsMode::Off).expect("session");
    // Greeting, USER, PASS and the command's status line come first; "+OK Bye" last.
    let mut lines = client.output.split_inclusive(|&b| b == b'\n');
    for _ in 0..4 {
        lines.next().expect("a status line");
    }
    let mut rest: Vec<u8> = lines.flatten().copied().collect();
    assert!(rest.ends_with(b"+OK Bye\r\n"), "{rest:?}");
    rest.truncate(rest.len() - b"+OK Bye\r\n".len());
    rest
}

#[test]
fn the_server_sends_the_literal_wire_form() {
    for &(input, top, sent) in SENT {
        let command = match top {
            None => "RETR 1".to_owned(),
            Some(n) => format!("TOP 1 {n}"),
        };
        assert_eq!(served(input, &command), sent, "{input:?} {command}");
    }
    for &(input, received) in RECEIVED {
        assert_eq!(wire_size(input), received.len() as u64, "{input:?}");
        let scan = served(input, "LIST");
        let want = format!("1 {}\r\n.\r\n", received.len());
        assert_eq!(String::from_utf8_lossy(&scan), want, "{input:?}");
    }
}

#[test]
fn the_corpus_is_stored_as_written_and_every_message_is_sent_with_crlf() {
    let corpus = Corpus::new("reference");
    for m in &corpus.messages {
        assert!(m.wire().ends_with(b"\r\n"), "{}", m.path);
        assert_eq!(fs::read(corpus.maildir.join(&m.path)).unwrap(), m.raw);
    }
}
