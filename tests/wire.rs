//! The wire form of a stored message: the tests' one reference (`support::wire`) and the
//! server's streaming encoder and size count, each checked against the same table of inputs and
//! the bytes RETR and TOP must send, written out literally.

mod support;

use pop3d::protocol::{wire_size, MessageEncoder};
use std::fs;
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

#[test]
fn the_server_gives_the_literal_wire_form_at_every_split_point() {
    for &(input, top, sent) in SENT {
        for cut in 0..=input.len() {
            let mut encoder = match top {
                None => MessageEncoder::new(),
                Some(n) => MessageEncoder::top(n),
            };
            let mut out = Vec::new();
            encoder.feed(&input[..cut], &mut out);
            encoder.feed(&input[cut..], &mut out);
            encoder.finish(&mut out);
            assert_eq!(out, sent, "{input:?} top {top:?} cut at {cut}");
        }
    }
    for &(input, received) in RECEIVED {
        assert_eq!(wire_size(input), received.len() as u64, "{input:?}");
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
