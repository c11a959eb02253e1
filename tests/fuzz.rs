//! Property tests (proptest): whole sessions driven by random byte streams and random command
//! sequences, delivered at random split points, against the in-memory store. (The parser's own
//! properties are unit tests in src/protocol.) Each session's output is checked reply by reply against a model of RFC 1939
//! that also says what the mailbox must hold afterwards.
//!
//! CI runs the proptest default of 256 cases per property (a few seconds). A long run:
//!
//!     PROPTEST_CASES=100000 cargo test --release --test fuzz
//!
//! A failure is shrunk to a small input and printed; proptest also saves its seed in
//! `tests/fuzz.proptest-regressions`, and that file replays it first on every later run.

mod support;

use pop3d::store::memory::MemoryStore;
use pop3d::{run_session, Account, End, MailStore, Service, TlsMode};
use proptest::prelude::*;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use support::wire::{encode, expected_wire};
use support::Users;

/// Longest command line, CRLF included (RFC 2449 §4), as the model applies it.
const MAX_LINE: usize = 255;
/// Longest reply line, CRLF included (RFC 2449 §4).
const MAX_REPLY: usize = 512;
/// Bad commands in a row that end a session.
const MAX_BAD: u32 = 10;
/// Failed logins that end a session.
const MAX_FAILED: u32 = 3;

// ---------------------------------------------------------------------------------------------
// The model's own reading of the command syntax (RFC 1939 §3, RFC 2449, 2595, 5034), written
// apart from the server's parser so that each checks the other.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Command<'a> {
    User(&'a str),
    Pass(&'a [u8]),
    Quit,
    Stat,
    List(Option<NonZeroU32>),
    Retr(NonZeroU32),
    Dele(NonZeroU32),
    Noop,
    Rset,
    Top(NonZeroU32, u32),
    Uidl(Option<NonZeroU32>),
    Capa,
    Stls,
    Auth(Option<(&'a [u8], Option<&'a [u8]>)>),
    Apop(&'a str, &'a [u8]),
}

fn text(a: &[u8]) -> Result<&str, ()> {
    std::str::from_utf8(a).map_err(|_| ())
}

/// The command on `line`, or `Err` for any line the server must refuse.
fn parse(line: &[u8]) -> Result<Command<'_>, ()> {
    if line.contains(&0) {
        return Err(());
    }
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let keyword = keyword.to_ascii_uppercase();
    if keyword == b"PASS" {
        return Ok(Command::Pass(rest));
    }
    let args: Vec<&[u8]> = rest
        .split(|&b| b == b' ')
        .filter(|a| !a.is_empty())
        .collect();
    let number = |a: &[u8]| -> Result<NonZeroU32, ()> {
        let n: u32 = std::str::from_utf8(a)
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or(())?;
        NonZeroU32::new(n).ok_or(())
    };
    Ok(match (keyword.as_slice(), args.as_slice()) {
        (b"USER", [name]) => Command::User(text(name)?),
        (b"QUIT", []) => Command::Quit,
        (b"STAT", []) => Command::Stat,
        (b"LIST", []) => Command::List(None),
        (b"LIST", [n]) => Command::List(Some(number(n)?)),
        (b"RETR", [n]) => Command::Retr(number(n)?),
        (b"DELE", [n]) => Command::Dele(number(n)?),
        (b"NOOP", []) => Command::Noop,
        (b"RSET", []) => Command::Rset,
        (b"TOP", [n, lines]) => {
            let n = number(n)?;
            let lines = text(lines)?;
            if !lines.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            Command::Top(n, lines.parse().map_err(|_| ())?)
        }
        (b"UIDL", []) => Command::Uidl(None),
        (b"UIDL", [n]) => Command::Uidl(Some(number(n)?)),
        (b"CAPA", []) => Command::Capa,
        (b"STLS", []) => Command::Stls,
        (b"AUTH", []) => Command::Auth(None),
        (b"AUTH", [m]) => Command::Auth(Some((m, None))),
        (b"AUTH", [m, initial]) => Command::Auth(Some((m, Some(initial)))),
        (b"APOP", [name, digest]) => Command::Apop(text(name)?, digest),
        _ => return Err(()),
    })
}

// ---------------------------------------------------------------------------------------------
// Whole sessions: the stream

/// How the scripted input ends once every byte has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closes the connection.
    Eof,
    /// The read times out (the idle timeout).
    Timeout,
    /// The connection is reset.
    Reset,
}

/// How the bytes reach the session: read sizes and write sizes (both cycled), and whether
/// every other read is first interrupted (EINTR).
#[derive(Debug, Clone)]
struct Delivery {
    reads: Vec<usize>,
    writes: Vec<usize>,
    interrupts: bool,
    ending: Ending,
}

/// A client in memory: hands out `input` as `Delivery` says, records what the server writes.
struct Scripted {
    input: Vec<u8>,
    pos: usize,
    delivery: Delivery,
    read_turn: usize,
    write_turn: usize,
    output: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_turn += 1;
        if self.delivery.interrupts && self.read_turn % 2 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.pos == self.input.len() {
            return match self.delivery.ending {
                Ending::Eof => Ok(0),
                Ending::Timeout => Err(io::ErrorKind::WouldBlock.into()),
                Ending::Reset => Err(io::ErrorKind::ConnectionReset.into()),
            };
        }
        let reads = &self.delivery.reads;
        let want = reads[self.read_turn % reads.len()];
        let n = want.min(buf.len()).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl pop3d::Stream for Scripted {}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let writes = &self.delivery.writes;
        let n = writes[self.write_turn % writes.len()].min(buf.len());
        self.write_turn += 1;
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Whole sessions: the model

/// The accounts: (name, password). carol's mailbox is held by another session throughout.
const ACCOUNTS: &[(&str, &str)] = &[("bob", "pw"), ("amy", "a b "), ("carol", "c")];
const HELD: &str = "carol";

/// One message of the model's store.
#[derive(Debug, Clone)]
struct Stored {
    uidl: String,
    data: Vec<u8>,
}

/// What the model expects as the reply to one command.
#[derive(Debug)]
enum Expect {
    /// A one-line reply with this sign; when the text is given, exactly this line.
    Status { ok: bool, exact: Option<String> },
    /// A multi-line +OK whose body (terminator included) is exactly these bytes.
    Body(Vec<u8>),
    /// A multi-line +OK whose body is not predicted (CAPA), only checked for form.
    AnyBody,
}

/// A line as the server's reader sees it.
enum ModelLine {
    Complete(Vec<u8>),
    TooLong,
}

/// Splits input into lines: LF ends a line, one CR before it is dropped, a line longer than
/// 255 octets with its line end is refused whole, and a last line without LF is never seen.
fn model_lines(input: &[u8]) -> Vec<ModelLine> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..lf];
        out.push(if lf + 1 > MAX_LINE {
            ModelLine::TooLong
        } else {
            ModelLine::Complete(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
        });
        rest = &rest[lf + 1..];
    }
    out
}

enum State {
    Authorization { user: Option<String> },
    Transaction { user: String, deleted: Vec<bool> },
}

/// The model's verdict on one session.
struct Outcome {
    /// The input starts a SASL exchange (AUTH PLAIN or LOGIN), which the model does not follow.
    unmodelled: bool,
    replies: Vec<Expect>,
    /// `None` when the session ends in an I/O error.
    end: Option<End>,
    boxes: HashMap<String, Vec<Stored>>,
}

fn ok(exact: Option<String>) -> Expect {
    Expect::Status { ok: true, exact }
}

fn err() -> Expect {
    Expect::Status {
        ok: false,
        exact: None,
    }
}

/// Runs the model over `input`. `bad` tells whether the reply is a protocol error, which counts
/// toward the bad-command limit.
fn model(input: &[u8], boxes: &HashMap<String, Vec<Stored>>, ending: Ending) -> Outcome {
    let mut boxes = boxes.clone();
    let mut replies = Vec::new();
    let mut state = State::Authorization { user: None };
    let mut bad_in_a_row = 0;
    let mut failed = 0;
    let mut end = None;
    for line in model_lines(input) {
        // (reply, bad, session ends)
        let (reply, bad, close): (Expect, bool, Option<End>) = match line {
            ModelLine::TooLong => (err(), true, None),
            ModelLine::Complete(line) => match parse(&line) {
                Err(_) => (err(), true, None),
                Ok(Command::Capa) => (Expect::AnyBody, false, None),
                Ok(Command::Quit) => {
                    if let State::Transaction { user, deleted } = &state {
                        let mailbox = boxes.get_mut(user).expect("mailbox");
                        let mut i = 0;
                        mailbox.retain(|_| {
                            i += 1;
                            !deleted[i - 1]
                        });
                    }
                    (ok(None), false, Some(End::Quit))
                }
                Ok(cmd) => match &mut state {
                    State::Authorization { user } => match cmd {
                        Command::User(name) => match pop3d::user_name::normalize(name, None) {
                            Ok(name) => {
                                *user = Some(name);
                                (ok(None), false, None)
                            }
                            Err(_) => {
                                *user = None;
                                (err(), true, None)
                            }
                        },
                        Command::Pass(password) => match user.take() {
                            None => (err(), true, None),
                            Some(name) => {
                                let right = ACCOUNTS
                                    .iter()
                                    .any(|(u, p)| *u == name && p.as_bytes() == password);
                                if !right {
                                    // Only wrong credentials count, not a mailbox in use.
                                    failed += 1;
                                    let close =
                                        (failed >= MAX_FAILED).then_some(End::TooManyErrors);
                                    (err(), false, close)
                                } else if name == HELD {
                                    (err(), false, None)
                                } else {
                                    failed = 0;
                                    let count = boxes.get(&name).map_or(0, Vec::len);
                                    state = State::Transaction {
                                        user: name,
                                        deleted: vec![false; count],
                                    };
                                    (ok(None), false, None)
                                }
                            }
                        },
                        // No TLS configured here, and APOP is off.
                        Command::Stls | Command::Apop(..) => (err(), true, None),
                        Command::Auth(None) => (Expect::AnyBody, false, None),
                        Command::Auth(Some((mechanism, _))) => {
                            let known = [&b"PLAIN"[..], b"LOGIN"]
                                .iter()
                                .any(|m| m.eq_ignore_ascii_case(mechanism));
                            if known {
                                return Outcome {
                                    unmodelled: true,
                                    replies,
                                    end: None,
                                    boxes,
                                };
                            }
                            // Unknown, or not offered (no account holds a challenge secret).
                            (err(), true, None)
                        }
                        _ => (err(), true, None),
                    },
                    State::Transaction { user, deleted } => {
                        let mailbox = &boxes[user.as_str()];
                        // The message numbered n, if it exists and is not deleted.
                        let live = |n: u32| {
                            let i = n as usize - 1;
                            (i < deleted.len() && !deleted[i]).then_some(i)
                        };
                        match cmd {
                            Command::Stat => {
                                let (count, octets) = live_totals(mailbox, deleted);
                                (ok(Some(format!("+OK {count} {octets}"))), false, None)
                            }
                            Command::List(None) | Command::Uidl(None) => {
                                let uidl = matches!(cmd, Command::Uidl(_));
                                let mut body = String::new();
                                for (i, m) in mailbox.iter().enumerate() {
                                    if !deleted[i] {
                                        let value = match uidl {
                                            true => m.uidl.clone(),
                                            false => expected_wire(&m.data).len().to_string(),
                                        };
                                        body.push_str(&format!("{} {value}\r\n", i + 1));
                                    }
                                }
                                body.push_str(".\r\n");
                                (Expect::Body(body.into_bytes()), false, None)
                            }
                            Command::List(Some(n)) | Command::Uidl(Some(n)) => {
                                match live(n.get()) {
                                    None => (err(), false, None),
                                    Some(i) => {
                                        let value = match cmd {
                                            Command::Uidl(_) => mailbox[i].uidl.clone(),
                                            _ => expected_wire(&mailbox[i].data).len().to_string(),
                                        };
                                        (ok(Some(format!("+OK {n} {value}"))), false, None)
                                    }
                                }
                            }
                            Command::Retr(n) => match live(n.get()) {
                                None => (err(), false, None),
                                Some(i) => {
                                    (Expect::Body(encode(&mailbox[i].data, None)), false, None)
                                }
                            },
                            Command::Top(n, lines) => match live(n.get()) {
                                None => (err(), false, None),
                                Some(i) => (
                                    Expect::Body(encode(&mailbox[i].data, Some(u64::from(lines)))),
                                    false,
                                    None,
                                ),
                            },
                            Command::Dele(n) => match live(n.get()) {
                                None => (err(), false, None),
                                Some(i) => {
                                    deleted[i] = true;
                                    (ok(None), false, None)
                                }
                            },
                            Command::Noop => (ok(Some("+OK".into())), false, None),
                            Command::Rset => {
                                deleted.fill(false);
                                (ok(None), false, None)
                            }
                            Command::User(_)
                            | Command::Pass(_)
                            | Command::Stls
                            | Command::Auth(_)
                            | Command::Apop(..) => (err(), true, None),
                            Command::Quit | Command::Capa => unreachable!(),
                        }
                    }
                },
            },
        };
        if bad {
            bad_in_a_row += 1;
            if bad_in_a_row >= MAX_BAD {
                replies.push(err());
                end = Some(End::TooManyErrors);
                break;
            }
        } else {
            bad_in_a_row = 0;
        }
        replies.push(reply);
        if close.is_some() {
            end = close;
            break;
        }
    }
    let end = match (end, ending) {
        (Some(end), _) => Some(end),
        (None, Ending::Eof) => Some(End::Dropped),
        (None, Ending::Timeout) => {
            replies.push(err());
            Some(End::TimedOut)
        }
        (None, Ending::Reset) => None,
    };
    Outcome {
        unmodelled: false,
        replies,
        end,
        boxes,
    }
}

fn live_totals(mailbox: &[Stored], deleted: &[bool]) -> (usize, usize) {
    mailbox
        .iter()
        .zip(deleted)
        .filter(|(_, d)| !**d)
        .fold((0, 0), |(c, s), (m, _)| {
            (c + 1, s + expected_wire(&m.data).len())
        })
}

// ---------------------------------------------------------------------------------------------
// Whole sessions: running one and checking it

/// Reads the server's output line by line.
struct Output<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Output<'_> {
    /// The next reply line, checked for form: CRLF-terminated, no other CR or LF, at most 512
    /// octets, starting with +OK or -ERR.
    fn status(&mut self) -> Result<&[u8], TestCaseError> {
        let rest = &self.bytes[self.pos..];
        let lf = rest.iter().position(|&b| b == b'\n');
        prop_assert!(
            lf.is_some(),
            "output ends inside a line: {:?}",
            String::from_utf8_lossy(rest)
        );
        let line = &rest[..lf.unwrap() + 1];
        self.pos += line.len();
        prop_assert!(line.ends_with(b"\r\n"), "bare LF in {line:?}");
        prop_assert!(line.len() <= MAX_REPLY, "reply line over 512 octets");
        let text = &line[..line.len() - 2];
        prop_assert!(!text.contains(&b'\r'), "bare CR in {text:?}");
        prop_assert!(
            text == b"+OK"
                || text.starts_with(b"+OK ")
                || text == b"-ERR"
                || text.starts_with(b"-ERR "),
            "not a status line: {:?}",
            String::from_utf8_lossy(text)
        );
        Ok(text)
    }

    /// A multi-line body of unpredicted content: lines in CRLF, each at most 512 octets, up to
    /// the terminator.
    fn any_body(&mut self) -> Result<(), TestCaseError> {
        loop {
            let rest = &self.bytes[self.pos..];
            let lf = rest.iter().position(|&b| b == b'\n');
            prop_assert!(lf.is_some(), "output ends inside a multi-line reply");
            let line = &rest[..lf.unwrap() + 1];
            self.pos += line.len();
            prop_assert!(line.ends_with(b"\r\n") && line.len() <= MAX_REPLY);
            if line == b".\r\n" {
                return Ok(());
            }
            prop_assert!(!line.starts_with(b"."), "unstuffed dot line {line:?}");
        }
    }
}

/// One fuzzed session: the mailboxes, the bytes the client sends, and how they arrive.
#[derive(Debug, Clone)]
struct Case {
    bob: Vec<Vec<u8>>,
    amy: Vec<Vec<u8>>,
    input: Vec<u8>,
    delivery: Delivery,
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let store = MemoryStore::new();
    let mut boxes: HashMap<String, Vec<Stored>> = HashMap::new();
    let held_mail = vec![b"Subject: held\n\nkept\n".to_vec()];
    for (user, messages) in [("bob", &case.bob), ("amy", &case.amy), (HELD, &held_mail)] {
        let list = boxes.entry(user.to_string()).or_default();
        for m in messages {
            list.push(Stored {
                uidl: store.deliver(user, m),
                data: m.clone(),
            });
        }
    }
    let held = store
        .open(&Account::new(HELD))
        .expect("hold carol's mailbox");

    let service = Service::new(Users::of(ACCOUNTS), Arc::new(store.clone()))
        .auth_failure_delay(Duration::ZERO);
    let mut client = Scripted {
        input: case.input.clone(),
        pos: 0,
        delivery: case.delivery.clone(),
        read_turn: 0,
        write_turn: 0,
        output: Vec::new(),
    };
    let result = run_session(&service, &mut client, None, TlsMode::Off);
    let output = client.output;
    drop(held);

    let want = model(&case.input, &boxes, case.delivery.ending);
    prop_assume!(
        !want.unmodelled,
        "a SASL exchange, which the model does not follow"
    );
    match (&result, want.end) {
        (Ok(got), Some(end)) => prop_assert_eq!(*got, end),
        (Err(_), None) => {}
        (got, end) => prop_assert!(false, "session ended {got:?}, model says {end:?}"),
    }

    let mut out = Output {
        bytes: &output,
        pos: 0,
    };
    let greeting = out.status()?;
    prop_assert!(greeting.starts_with(b"+OK"));
    for (i, expect) in want.replies.iter().enumerate() {
        let context = || format!("reply {i} ({expect:?})");
        match expect {
            Expect::Status { ok, exact } => {
                let line = out.status()?.to_vec();
                prop_assert_eq!(
                    line.starts_with(b"+OK"),
                    *ok,
                    "{}: got {:?}",
                    context(),
                    String::from_utf8_lossy(&line)
                );
                if let Some(exact) = exact {
                    prop_assert_eq!(
                        String::from_utf8_lossy(&line),
                        exact.as_str(),
                        "{}",
                        context()
                    );
                }
            }
            Expect::Body(body) => {
                let line = out.status()?.to_vec();
                prop_assert!(
                    line.starts_with(b"+OK"),
                    "{}: got {:?}",
                    context(),
                    String::from_utf8_lossy(&line)
                );
                let got = &output[out.pos..(out.pos + body.len()).min(output.len())];
                prop_assert_eq!(
                    String::from_utf8_lossy(got),
                    String::from_utf8_lossy(body),
                    "{}",
                    context()
                );
                out.pos += body.len();
            }
            Expect::AnyBody => {
                let line = out.status()?.to_vec();
                prop_assert!(line.starts_with(b"+OK"), "{}", context());
                out.any_body()?;
            }
        }
    }
    prop_assert_eq!(
        String::from_utf8_lossy(&output[out.pos..]),
        "",
        "output after the last expected reply"
    );

    for (user, want) in &want.boxes {
        let got = store.messages(user);
        let want: Vec<Vec<u8>> = want.iter().map(|m| m.data.clone()).collect();
        prop_assert_eq!(got, want, "mailbox of {} after the session", user);
    }
    prop_assert_eq!(store.count(HELD), 1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Whole sessions: generators

/// Small messages rich in what trips encoders: dots, CR, LF, blank lines, NUL, 8-bit bytes.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => Just(b'a'),
        3 => Just(b'\n'),
        2 => Just(b'.'),
        1 => Just(b'\r'),
        1 => Just(b' '),
        1 => Just(b':'),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..200)
}

fn mailbox() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(message(), 0..6)
}

fn delivery() -> impl Strategy<Value = Delivery> {
    let read = prop_oneof![3 => 1usize..16, 2 => 16usize..300, 1 => Just(4096usize)];
    let write = prop_oneof![1 => 1usize..8, 1 => 8usize..600, 2 => Just(1usize << 20)];
    let ending = prop_oneof![
        4 => Just(Ending::Eof),
        1 => Just(Ending::Timeout),
        1 => Just(Ending::Reset),
    ];
    (
        prop::collection::vec(read, 1..8),
        prop::collection::vec(write, 1..4),
        any::<bool>(),
        ending,
    )
        .prop_map(|(reads, writes, interrupts, ending)| Delivery {
            reads,
            writes,
            interrupts,
            ending,
        })
}

/// Mixes the case of ASCII letters, as a sloppy client might.
fn mixed_case(word: &str, mask: u32) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 32) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect()
}

/// One command line, without its line end: valid-ish commands, garbage, long lines, NUL.
fn command() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        24 => (1u32..8).prop_map(|n| n.to_string()),
        1 => Just("0".to_string()),
        1 => Just("007".to_string()),
        1 => Just("4294967295".to_string()),
        1 => Just("4294967296".to_string()),
        1 => Just("-1".to_string()),
        1 => Just("x".to_string()),
    ];
    let name = prop::sample::select(vec![
        "bob", "BOB", "amy", "carol", "nobody", "../x", "a@b@c", ".x", "bob@", "%2f",
    ]);
    let password = prop::sample::select(vec!["pw", "a b ", "c", "wrong", "", " pw"]);
    // Each keyword with the number of arguments it takes (LIST and UIDL: 0 or 1).
    let keyword = prop::sample::select(vec![
        ("STAT", 0),
        ("LIST", 0),
        ("LIST", 1),
        ("RETR", 1),
        ("RETR", 1),
        ("DELE", 1),
        ("DELE", 1),
        ("DELE", 1),
        ("RSET", 0),
        ("TOP", 2),
        ("UIDL", 0),
        ("UIDL", 1),
        ("NOOP", 0),
        ("QUIT", 0),
        ("CAPA", 0),
        ("STLS", 0),
        ("AUTH", 0),
        ("AUTH", 1),
        ("APOP", 2),
    ]);
    // Mostly the right number of arguments, sometimes one too few or too many.
    let arity = prop_oneof![8 => Just(0i32), 1 => Just(-1), 1 => Just(1)];
    let line = prop_oneof![
        3 => (name, any::<u32>()).prop_map(|(n, mask)| format!("{} {n}", mixed_case("USER", mask)).into_bytes()),
        3 => password.prop_map(|p| format!("PASS {p}").into_bytes()),
        2 => Just(b"USER bob\r\nPASS pw".to_vec()),
        12 => (keyword, arity, prop::collection::vec(number, 3), any::<u32>(), 0usize..2).prop_map(
            |((kw, takes), extra, args, mask, trailing)| {
                let mut l = mixed_case(kw, mask);
                let n = (takes + extra).max(0) as usize;
                for a in &args[..n] {
                    l.push(' ');
                    l.push_str(a);
                }
                l.push_str(&" ".repeat(trailing));
                l.into_bytes()
            }
        ),
        1 => prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40),
        1 => (250usize..600).prop_map(|n| vec![b'A'; n]),
        1 => Just(b"NOOP\0".to_vec()),
        1 => Just(b"DE\0LE 1".to_vec()),
        1 => Just(Vec::new()),
    ];
    line
}

/// A client's whole input: maybe a login, commands with assorted line ends, maybe QUIT, maybe
/// a last line cut short.
fn command_stream() -> impl Strategy<Value = Vec<u8>> {
    let login = prop_oneof![
        1 => Just(""),
        4 => Just("USER bob\r\nPASS pw\r\n"),
        1 => Just("USER amy\r\nPASS a b \r\n"),
    ];
    let end = prop::sample::select(vec![&b"\r\n"[..], b"\r\n", b"\r\n", b"\n", b"\r\r\n"]);
    let tail = prop::sample::select(vec![
        "",
        "QUIT\r\n",
        "QUIT\r\n",
        "QUI",
        "DELE 1\r\nQUIT\r\n",
    ]);
    (login, prop::collection::vec((command(), end), 0..40), tail).prop_map(
        |(login, lines, tail)| {
            let mut input = login.as_bytes().to_vec();
            for (line, end) in lines {
                input.extend_from_slice(&line);
                input.extend_from_slice(end);
            }
            input.extend_from_slice(tail.as_bytes());
            input
        },
    )
}

/// Bytes from a small alphabet, so that random streams still form commands now and then.
fn byte_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        &b"\r\n"[..],
        b"\n",
        b"\r",
        b" ",
        b"1",
        b"2",
        b"0",
        b"USER bob",
        b"PASS pw",
        b"DELE ",
        b"RETR ",
        b"TOP ",
        b"LIST",
        b"UIDL",
        b"RSET",
        b"QUIT",
        b"\0",
        b".",
        b"\xff",
    ]);
    let login = prop::sample::select(vec![&b""[..], b"USER bob\r\nPASS pw\r\n"]);
    (login, prop::collection::vec(token, 0..120))
        .prop_map(|(login, t)| [login, &t.concat()].concat())
}

fn case(input: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Case> {
    (mailbox(), mailbox(), input, delivery()).prop_map(|(bob, amy, input, delivery)| Case {
        bob,
        amy,
        input,
        delivery,
    })
}

proptest! {
    #[test]
    fn sessions_from_random_bytes(case in case(prop::collection::vec(any::<u8>(), 0..2000))) {
        run_case(&case)?;
    }

    #[test]
    fn sessions_from_byte_soup(case in case(byte_soup())) {
        run_case(&case)?;
    }

    #[test]
    fn sessions_from_command_sequences(case in case(command_stream())) {
        run_case(&case)?;
    }
}

/// The model itself, on a session whose replies are known by heart.
#[test]
fn model_agrees_with_a_literal_session() {
    let case = Case {
        bob: vec![b"Subject: a\n\n.dot\nbody\n".to_vec(), b"x".to_vec()],
        amy: vec![],
        input: b"USER bob\r\nPASS pw\r\nSTAT\r\nLIST\r\nDELE 1\r\nRETR 2\r\nTOP 2 0\r\nQUIT\r\n"
            .to_vec(),
        delivery: Delivery {
            reads: vec![1],
            writes: vec![3],
            interrupts: true,
            ending: Ending::Eof,
        },
    };
    run_case(&case).unwrap();
    let boxes = HashMap::from([(
        "bob".to_string(),
        vec![
            Stored {
                uidl: "u1".into(),
                data: b"one\n".to_vec(),
            },
            Stored {
                uidl: "u2".into(),
                data: b"two".to_vec(),
            },
        ],
    )]);
    let want = model(&case.input, &boxes, Ending::Eof);
    assert_eq!(want.end, Some(End::Quit));
    assert_eq!(want.boxes["bob"].len(), 1);
    assert_eq!(want.replies.len(), 8);
}
