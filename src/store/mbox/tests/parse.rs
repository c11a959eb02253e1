use super::{from_line, mbox_of, message};
use crate::store::mbox::parse::{parse, served, Parser};
use crate::store::mbox::scan::scan;
use crate::store::mbox::uidl;
use crate::test_dir::TestDir;
use crate::wire_size;
use proptest::prelude::*;

fn messages(bytes: &[u8]) -> (Parser, Vec<Vec<u8>>) {
    let p = parse(bytes);
    let out = (0..p.messages.len())
        .map(|i| served(bytes, &p, i))
        .collect();
    (p, out)
}

fn uidls(p: &Parser) -> Vec<String> {
    uidl::assign(p.messages.iter().map(|m| (m.x_uidl.as_deref(), &m.digest)))
}

#[test]
fn messages_end_before_the_line_end_that_precedes_the_next_from_line() {
    let mbox = b"From a@b Thu Nov 29 22:33:52 2001\nSubject: one\n\nbody\n>From escaped\n\n\
From a@b Thu Nov 29 22:33:53 2001\nSubject: two\n\nFrom here on, no date: not a separator\n\
From a@b Thu Nov 29 22:33:54 2001\nSubject: three\n\nlast";
    let (p, got) = messages(mbox);
    assert_eq!(
        got,
        [
            &b"Subject: one\n\nbody\n>From escaped\n"[..],
            b"Subject: two\n\nFrom here on, no date: not a separator",
            b"Subject: three\n\nlast",
        ]
    );
    for (m, bytes) in p.messages.iter().zip(&got) {
        assert_eq!(m.size, wire_size(bytes));
    }
    assert_eq!(p.messages[2].next, mbox.len() as u64);
}

#[test]
fn bookkeeping_headers_are_hidden_with_their_continuation_lines() {
    let mbox = b"From a@b Thu Nov 29 22:33:52 2001\r\nStatus: RO\r\nSubject: s\r\nX-Keywords: a\r\n b\r\n\
X-UID: 7\r\nX-Status: A\r\ncontent-length: 6\r\nX-IMAPbase: 1 2\r\nX-IMAP: 1\r\nTo: t\r\n\r\nStatus: body\r\n\r\n";
    let (p, got) = messages(mbox);
    assert_eq!(got, [&b"Subject: s\r\nTo: t\r\n\r\nStatus: body\r\n"[..]]);
    assert_eq!(p.messages[0].size, wire_size(&got[0]));
}

#[test]
fn a_mail_reader_marking_messages_read_changes_no_uidl() {
    let unread = mbox_of(&[message(1), message(2)]);
    let text = String::from_utf8(unread.clone()).unwrap();
    let read = text.replace(
        "Subject: message 1\n",
        "Subject: message 1\nStatus: RO\nX-UID: 4\n",
    );
    let (a, b) = (parse(&unread), parse(read.as_bytes()));
    assert_eq!(uidls(&a), uidls(&b));
    assert_ne!(uidls(&a)[0], uidls(&a)[1]);
}

#[test]
fn uidls_stay_when_other_messages_go_and_x_uidl_is_kept() {
    let mut all: Vec<Vec<u8>> = (0..6).map(message).collect();
    all[2] = b"X-UIDL: 3f2a0b9c1d\nSubject: qpopper\n\nx\n".to_vec();
    // The same X-UIDL twice: the second is known by its digest.
    all[4] = b"X-UIDL: 3f2a0b9c1d\nSubject: twin\n\nx\n".to_vec();
    all[5] = b"X-UIDL: bad uidl with spaces\nSubject: bad\n\nx\n".to_vec();
    let before = uidls(&parse(&mbox_of(&all)));
    assert_eq!(before[2], "3f2a0b9c1d");
    assert_ne!(before[4], "3f2a0b9c1d");
    assert_eq!(before.len(), 6);
    // Removing messages 0 and 3 (From lines stay with their messages).
    let full = mbox_of(&all);
    let p = parse(&full);
    let mut rest = Vec::new();
    for (i, m) in p.messages.iter().enumerate() {
        if i != 0 && i != 3 {
            rest.extend_from_slice(&full[m.from as usize..m.next as usize]);
        }
    }
    let after = uidls(&parse(&rest));
    assert_eq!(after, [&*before[1], &*before[2], &*before[4], &*before[5]]);
    // Identical twins are told apart, the same way every time.
    let twins = [message(9), message(9)];
    let mut one = from_dup(&twins);
    let u = uidls(&parse(&one));
    assert_eq!(u[1], format!("{}-2", u[0]));
    one.extend_from_slice(b"");
    assert_eq!(uidls(&parse(&one)), u);
}

fn from_dup(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(super::from_line(0).as_bytes());
        out.extend_from_slice(m);
        out.extend_from_slice(b"\n");
    }
    out
}

#[test]
fn a_content_length_that_ends_on_a_boundary_keeps_from_lines_in_its_body() {
    let body = b"line\n\nFrom x@y Thu Nov 29 22:33:52 2001\nstill body\n";
    let mut mbox = b"From a@b Thu Nov 29 22:33:52 2001\n".to_vec();
    mbox.extend_from_slice(format!("Content-Length: {}\n\n", body.len()).as_bytes());
    mbox.extend_from_slice(body);
    mbox.extend_from_slice(b"\nFrom a@b Thu Nov 29 22:33:53 2001\nSubject: 2\n\nx\n");
    let (_, got) = messages(&mbox);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], [&b"\n"[..], body].concat());
    // A wrong Content-Length is not trusted.
    let wrong = String::from_utf8(mbox.clone()).unwrap().replace(
        &format!("Content-Length: {}", body.len()),
        "Content-Length: 3",
    );
    assert_eq!(messages(wrong.as_bytes()).1.len(), 3);
}

#[test]
fn octets_before_the_first_from_line_are_no_message() {
    let (p, got) = messages(b"junk\nFrom a@b Thu Nov 29 22:33:52 2001\nS: 1\n\nx\n");
    assert_eq!(p.junk, 5);
    assert_eq!(got, [&b"S: 1\n\nx"[..]]);
    assert!(messages(b"").1.is_empty());
}

/// A message as a random generator makes it: header lines, maybe a blank line and body lines,
/// whose line starting "From " is escaped as an MTA does.
fn arb_message() -> impl Strategy<Value = Vec<u8>> {
    let line = proptest::collection::vec(
        prop_oneof![
            Just(b'a'),
            Just(b' '),
            Just(b'\r'),
            Just(0xe9u8),
            Just(b'F'),
            Just(b':')
        ],
        0..12,
    );
    (
        proptest::collection::vec(line.clone(), 1..4),
        proptest::collection::vec(line, 0..6),
        any::<bool>(),
    )
        .prop_map(|(header, body, crlf)| {
            let end: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut out = Vec::new();
            for h in header {
                out.extend_from_slice(b"H");
                out.extend(h.iter().filter(|&&b| b != b'\r'));
                out.extend_from_slice(end);
            }
            out.extend_from_slice(end);
            for mut l in body {
                if l.starts_with(b"From ") {
                    l.insert(0, b'>');
                }
                out.extend(l.iter().filter(|&&b| b != b'\r'));
                out.extend_from_slice(end);
            }
            out
        })
}

proptest! {
    #[test]
    fn what_an_mta_appends_is_served_back_whole(msgs in proptest::collection::vec(arb_message(), 0..8)) {
        let mbox = mbox_of(&msgs);
        let (p, got) = messages(&mbox);
        prop_assert_eq!(got.len(), msgs.len());
        for ((m, orig), info) in got.iter().zip(&msgs).zip(&p.messages) {
            // The message as sent is the message appended: the octets up to its last line end.
            prop_assert_eq!(wire_size(m), wire_size(orig));
            prop_assert_eq!(info.size, wire_size(orig));
            prop_assert!(orig.starts_with(m));
        }
    }

    #[test]
    fn the_file_scanner_finds_what_the_parser_finds(
        msgs in proptest::collection::vec(arb_message(), 0..6),
        junk in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut mbox = junk;
        mbox.extend_from_slice(&mbox_of(&msgs));
        let t = TestDir::new("mbox-scan");
        let path = t.path().join("spool");
        std::fs::write(&path, &mbox).unwrap();
        let (scanned, len) = scan(&std::fs::File::open(&path).unwrap(), 0).unwrap();
        prop_assert_eq!(len, mbox.len() as u64);
        let parsed = parse(&mbox);
        prop_assert_eq!(scanned.messages, parsed.messages);
        prop_assert_eq!(scanned.hidden, parsed.hidden);
    }
}

#[test]
fn lines_longer_than_the_read_buffer_are_scanned_as_the_parser_sees_them() {
    let mut big = b"Subject: big\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 3 << 20));
    big.extend_from_slice(b"\r\nshort\n");
    big.extend(std::iter::repeat_n(b'y', 1 << 20));
    let mbox = mbox_of(&[message(1), big.clone(), message(2)]);
    let t = TestDir::new("mbox-long");
    let path = t.path().join("spool");
    std::fs::write(&path, &mbox).unwrap();
    let (scanned, _) = scan(&std::fs::File::open(&path).unwrap(), 0).unwrap();
    let parsed = parse(&mbox);
    assert_eq!(scanned.messages, parsed.messages);
    assert_eq!(parsed.messages.len(), 3);
    assert!(served(&mbox, &parsed, 1) == big);
}

/// A spool of about `size` octets with every kind of line the scanner's shortcuts must get
/// right: body lines that start with `From ` and are or are not separators, CRLF and bare CR
/// line ends, empty lines, lines longer than [`super::super::parse::LINE_HEAD`], hidden
/// headers and Content-Length headers, true and false. Pseudo-random from `seed`.
fn every_kind_of_line(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut out = Vec::new();
    let mut n = 0;
    while out.len() < size {
        out.extend_from_slice(from_line(n).as_bytes());
        n += 1;
        let end: &[u8] = if next(4) == 0 { b"\r\n" } else { b"\n" };
        let body_lines = next(40) as usize;
        for h in 0..next(6) {
            let header = match next(5) {
                0 => "Status: RO".to_string(),
                1 => format!("Content-Length: {}", next(3) * 30),
                2 => " folded".to_string(),
                _ => format!("X-Header-{h}: value {}", next(1000)),
            };
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(end);
        }
        out.extend_from_slice(end);
        for _ in 0..body_lines {
            let line: Vec<u8> = match next(12) {
                0 => b"From here on, a line an MTA did not escape".to_vec(),
                1 => from_line(1000 + n).trim_end().as_bytes().to_vec(),
                2 => b">From an escaped line".to_vec(),
                3 => Vec::new(),
                4 => b"a bare CR\rinside".to_vec(),
                5 if next(20) == 0 => vec![b'x'; 70 * 1024],
                6 => b"From".to_vec(),
                _ => b"an ordinary line of text, as most body lines are".to_vec(),
            };
            out.extend_from_slice(&line);
            out.extend_from_slice(if next(3) == 0 { b"\r\n" } else { end });
        }
        out.extend_from_slice(b"\n");
    }
    out
}

#[test]
fn spools_larger_than_the_read_buffer_with_every_kind_of_line_are_scanned_as_parsed() {
    let t = TestDir::new("mbox-every-line");
    for seed in 1..=3 {
        let mbox = every_kind_of_line(seed, 3 << 20);
        let path = t.path().join(format!("spool{seed}"));
        std::fs::write(&path, &mbox).unwrap();
        let (scanned, len) = scan(&std::fs::File::open(&path).unwrap(), 0).unwrap();
        let parsed = parse(&mbox);
        assert_eq!(len, mbox.len() as u64);
        assert!(parsed.messages.len() > 1000, "{}", parsed.messages.len());
        assert!(
            scanned.messages == parsed.messages,
            "seed {seed}: messages differ"
        );
        assert!(
            scanned.hidden == parsed.hidden,
            "seed {seed}: hidden lines differ"
        );
    }
}
