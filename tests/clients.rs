//! Real third-party clients (Python poplib, curl, fetchmail, Perl Net::POP3) against the pop3d
//! binary serving a generated Maildir, and the Maildir behaviour a client sees over a socket.
//!
//! Each client retrieves every message and the result is compared byte for byte with what the
//! server must send ([`expected_wire`]), after undoing only what that client documents it changes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::maildir::{
    self, first_difference, run_bounded, write_passwd, Corpus, Fetchmail, Mail, PASSWORD, USER,
};
use support::pop::Pop;
use support::poplib::Poplib;
use support::temp_dir::TempDir;
use support::wire::expected_wire;
use support::BinServer;

/// The longest any client run may take; the 20 MB message takes a second or two.
const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// The longest a login waits for a session that is ending to release the mailbox.
const PATIENCE: Duration = Duration::from_secs(10);

fn start(corpus: &Corpus) -> BinServer {
    let args = corpus.server_args();
    BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// UIDL → message number, from the UIDL listing.
fn numbers(c: &mut Pop<TcpStream>) -> BTreeMap<String, usize> {
    let (status, lines) = c.multi("UIDL");
    assert!(status.starts_with("+OK"), "{status}");
    lines
        .iter()
        .map(|l| {
            let (n, id) = l.split_once(' ').expect("UIDL line");
            (id.to_owned(), n.parse().expect("message number"))
        })
        .collect()
}

/// Every CRLF turned into LF.
fn crlf_to_lf(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    for (i, &b) in wire.iter().enumerate() {
        if !(b == b'\r' && wire.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn python_poplib_retrieves_every_message_byte_exact() {
    let corpus = Corpus::with_big("poplib");
    let server = start(&corpus);
    Poplib::plain(&corpus).retrieve_all(server.port());
    assert_eq!(corpus.on_disk(), corpus.paths(), "RETR changed the Maildir");
}

/// Runs curl on `pop3://127.0.0.1:PORT/PATH` and returns what it printed.
fn curl(server: &BinServer, extra: &[&str], path: &str) -> Vec<u8> {
    let url = format!("pop3://127.0.0.1:{}/{path}", server.port());
    let run = run_bounded(
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20", "--user"])
            .arg(format!("{USER}:{PASSWORD}"))
            .args(extra)
            .arg(&url),
        CLIENT_LIMIT,
    );
    assert!(run.status.success(), "curl {url}: {}", text(&run.stderr));
    run.stdout
}

/// A listing as curl prints it: the server's lines, CRLF and all, without the terminator.
fn listing(raw: &[u8]) -> BTreeMap<usize, String> {
    let raw = String::from_utf8(raw.to_vec()).expect("listing is text");
    assert!(raw.ends_with("\r\n"), "{raw:?}");
    raw.split_terminator("\r\n")
        .map(|l| {
            let (n, v) = l.split_once(' ').expect("listing line");
            (n.parse().expect("message number"), v.to_owned())
        })
        .collect()
}

#[test]
fn curl_retrieves_every_message_byte_exact() {
    let corpus = Corpus::with_big("curl");
    let server = start(&corpus);
    let sizes = listing(&curl(&server, &[], ""));
    let uidls = listing(&curl(&server, &["--request", "UIDL"], ""));
    assert_eq!(uidls.len(), corpus.messages.len(), "{uidls:?}");
    assert_eq!(
        sizes.keys().collect::<Vec<_>>(),
        uidls.keys().collect::<Vec<_>>()
    );
    let expected = corpus.by_uidl();
    for (n, uidl) in &uidls {
        let mail = expected.get(uidl).unwrap_or_else(|| panic!("UIDL {uidl}"));
        let want = mail.wire();
        assert_eq!(
            sizes[n],
            want.len().to_string(),
            "LIST size of {}",
            mail.path
        );
        // curl writes the message as received, minus the terminator and the dot-stuffing.
        let got = curl(&server, &[], &n.to_string());
        assert!(
            got == want,
            "{}: {}",
            mail.path,
            first_difference(&got, &want)
        );
    }
    assert_eq!(corpus.on_disk(), corpus.paths());
}

impl Fetchmail {
    /// Runs fetchmail once with `extra` options; returns its exit code and what it delivered.
    fn run(&self, extra: &[&str]) -> (i32, Vec<Vec<u8>>) {
        self.poll(extra, CLIENT_LIMIT)
    }
}

/// What fetchmail hands its MDA for a message, by what it does to mail:
/// - with an MDA, `stripcr` is on by default (fetchmail(1), "stripcr"): CRLF becomes LF;
/// - it writes the header it parsed and then always the empty line that ends a header, so a
///   message that has none (the header-only one) gains one.
///
/// Nothing else changes: the NUL and the 8-bit bytes pass through as they are.
fn fetchmail_view(mail: &Mail) -> Vec<u8> {
    let wire = mail.wire();
    let mut lf = crlf_to_lf(&wire);
    let has_separator = wire.starts_with(b"\r\n") || wire.windows(4).any(|w| w == b"\r\n\r\n");
    if !has_separator {
        lf.push(b'\n');
    }
    lf
}

/// Checks that `got` holds exactly fetchmail's view of `want`, in any order.
fn assert_delivered(got: &[Vec<u8>], want: &[&Mail]) {
    let mut left: Vec<&Vec<u8>> = got.iter().collect();
    let mut missing = Vec::new();
    for mail in want {
        let view = fetchmail_view(mail);
        match left.iter().position(|g| **g == view) {
            Some(i) => {
                left.remove(i);
            }
            None => missing.push(mail.path.clone()),
        }
    }
    let extra: Vec<String> = left.iter().map(|g| text(&g[..g.len().min(200)])).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not delivered as expected: {missing:?}; delivered but unexpected: {extra:?}"
    );
}

#[test]
fn fetchmail_retrieves_every_message_and_leaves_mail_on_the_server() {
    let mut corpus = Corpus::with_big("fetchmail");
    let server = start(&corpus);
    let fetchmail = Fetchmail::new(&corpus, server.port());

    // 1: everything, even messages it has never seen (--all), kept on the server.
    let (code, got) = fetchmail.run(&["--all"]);
    assert_eq!(code, 0);
    assert_delivered(&got, &corpus.messages.iter().collect::<Vec<_>>());
    let ids = fs::read_to_string(fetchmail.home.join(".fetchids")).unwrap();
    for m in &corpus.messages {
        assert!(
            ids.contains(&m.uidl()),
            "{} not in .fetchids:\n{ids}",
            m.uidl()
        );
    }

    // 2: "leave mail on server": by UIDL, nothing is new. Exit code 1 is "no mail".
    let (code, got) = fetchmail.run(&[]);
    assert_eq!((code, got.len()), (1, 0), "second run fetched again");

    // 3: one new message, and only it is fetched.
    let fresh = corpus.deliver(
        "fresh",
        b"From: fresh@example.org\nSubject: delivered between runs\n\n.fresh\n",
    );
    let (code, got) = fetchmail.run(&[]);
    assert_eq!(code, 0);
    assert_delivered(&got, &[&fresh]);
    assert_eq!(corpus.on_disk(), corpus.paths(), "--keep removed mail");
}

/// Perl Net::POP3: logs in, takes LIST and UIDL, gets every message into OUT/N and writes
/// `N SIZE UIDL` lines to OUT/index. Arguments: PORT USER PASSWORD OUT.
const NET_POP3_SCRIPT: &str = r#"
use strict;
use warnings;
use Net::POP3;
my ($port, $user, $password, $out) = @ARGV;
my $pop = Net::POP3->new("127.0.0.1", Port => $port, Timeout => 20) or die "connect: $@";
defined(my $count = $pop->login($user, $password)) or die "login: " . $pop->message;
my $list = $pop->list or die "LIST";
my $uidl = $pop->uidl or die "UIDL";
open(my $index, ">", "$out/index") or die;
for my $n (sort { $a <=> $b } keys %$list) {
    my $lines = $pop->get($n) or die "RETR $n";
    open(my $f, ">:raw", "$out/$n") or die;
    print $f @$lines;
    close($f) or die;
    print $index "$n $list->{$n} $uidl->{$n}\n";
}
$pop->quit or die "QUIT";
print $count + 0, "\n";
"#;

#[test]
fn perl_net_pop3_retrieves_every_message() {
    let corpus = Corpus::with_big("netpop3");
    let server = start(&corpus);
    let out = corpus.scratch("netpop3-out");
    let run = run_bounded(
        Command::new("perl")
            .args([
                "-e",
                NET_POP3_SCRIPT,
                &server.port().to_string(),
                USER,
                PASSWORD,
            ])
            .arg(&out),
        CLIENT_LIMIT,
    );
    assert!(run.status.success(), "Net::POP3: {}", text(&run.stderr));
    assert_eq!(text(&run.stdout).trim(), corpus.messages.len().to_string());
    let expected = corpus.by_uidl();
    let index = fs::read_to_string(out.join("index")).unwrap();
    let mut seen = BTreeSet::new();
    for line in index.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let mail = expected
            .get(f[2])
            .unwrap_or_else(|| panic!("UIDL {}", f[2]));
        assert_eq!(f[1], mail.size().to_string(), "LIST size of {}", mail.path);
        // Net::Cmd splits what it reads at CRLF and hands back each line ending in "\n", and
        // undoes the dot-stuffing: the message with LF line ends.
        let want = crlf_to_lf(&mail.wire());
        let got = fs::read(out.join(f[0])).unwrap();
        assert!(
            got == want,
            "{}: {}",
            mail.path,
            first_difference(&got, &want)
        );
        seen.insert(f[2].to_owned());
    }
    assert_eq!(seen.len(), corpus.messages.len());
}

#[test]
fn dele_and_quit_remove_exactly_those_files() {
    let corpus = Corpus::new("dele-quit");
    let server = start(&corpus);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    let numbers = numbers(&mut c);
    let doomed: Vec<&Mail> = corpus
        .messages
        .iter()
        .filter(|m| m.path.contains(".dots") || m.path.contains(".crlf"))
        .collect();
    assert_eq!(doomed.len(), 2);
    for m in &doomed {
        let n = numbers[&m.uidl()];
        assert!(c.cmd(&format!("DELE {n}")).starts_with("+OK"));
    }
    assert_eq!(corpus.on_disk(), corpus.paths(), "removed before QUIT");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.closed());
    // The removals are done before the +OK.
    let mut want = corpus.paths();
    for m in &doomed {
        want.remove(&m.path);
    }
    assert_eq!(corpus.on_disk(), want);
    let mut c = Pop::login_when_free(server.addr, USER, PASSWORD, PATIENCE);
    let left = numbers_of(&mut c);
    assert_eq!(left.len(), corpus.messages.len() - 2);
    for m in &doomed {
        assert!(!left.contains(&m.uidl()));
    }
}

fn numbers_of(c: &mut Pop<TcpStream>) -> BTreeSet<String> {
    numbers(c).into_keys().collect()
}

#[test]
fn dele_then_dropped_connection_removes_nothing() {
    let corpus = Corpus::new("dele-drop");
    let server = start(&corpus);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    drop(c);
    // The next login waits until the server has seen the connection go and ended that session.
    let mut c = Pop::login_when_free(server.addr, USER, PASSWORD, PATIENCE);
    assert_eq!(corpus.on_disk(), corpus.paths());
    assert_eq!(numbers_of(&mut c).len(), corpus.messages.len());
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn second_login_to_a_mailbox_in_use_is_refused_until_the_first_ends() {
    let corpus = Corpus::new("in-use");
    let server = start(&corpus);
    let mut first = Pop::login(server.addr, USER, PASSWORD);
    let (mut second, _) = Pop::connect(server.addr);
    assert!(second.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let reply = second.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
    // Still in AUTHORIZATION: the first session is untouched.
    assert!(second.cmd("STAT").starts_with("-ERR"));
    assert!(first.cmd("STAT").starts_with("+OK 9 "));
    assert!(first.cmd("QUIT").starts_with("+OK"));
    assert!(first.closed());
    // Once the first session has ended (its connection is closed), the mailbox is free at once.
    assert!(second.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let reply = second.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("+OK"), "{reply}");
    assert!(second.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn a_20_mb_message_is_sent_whole_with_the_size_list_gave() {
    let corpus = Corpus::with_big("big");
    let big = corpus.messages.last().unwrap();
    assert!(big.path.contains(".big"));
    let want = big.wire();
    assert!(want.len() > 20_000_000);
    let server = start(&corpus);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    let n = numbers(&mut c)[&big.uidl()];
    assert_eq!(
        c.cmd(&format!("LIST {n}")),
        format!("+OK {n} {}", want.len())
    );
    assert_eq!(
        c.cmd(&format!("RETR {n}")),
        format!("+OK {} octets", want.len())
    );
    let got = c.body();
    assert!(got == want, "{}", first_difference(&got, &want));
    assert!(c.cmd("NOOP").starts_with("+OK"), "session still in step");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn mail_delivered_during_a_session_waits_for_the_next() {
    let mut corpus = Corpus::new("late-mail");
    let server = start(&corpus);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    let before = numbers_of(&mut c);
    let stat = c.cmd("STAT");
    let late = corpus.deliver("late", b"Subject: late\n\n.arrived during a session\n");
    assert_eq!(numbers_of(&mut c), before);
    assert_eq!(c.cmd("STAT"), stat);
    let (_, list) = c.multi("LIST");
    assert_eq!(list.len(), before.len());
    assert!(c
        .cmd(&format!("RETR {}", before.len() + 1))
        .starts_with("-ERR"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.closed());

    let mut c = Pop::login_when_free(server.addr, USER, PASSWORD, PATIENCE);
    let n = numbers(&mut c)[&late.uidl()];
    assert_eq!(
        c.cmd(&format!("LIST {n}")),
        format!("+OK {n} {}", late.size())
    );
    assert!(c.cmd(&format!("RETR {n}")).starts_with("+OK"));
    assert_eq!(c.body(), late.wire());
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// Writes a Maildir holding one message with `raw` under `dir`.
fn maildir_with(dir: &Path, name: &str, raw: &[u8]) {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::write(dir.join("new").join(name), raw).unwrap();
}

/// Logs in and returns the one message of the mailbox, or the failed PASS reply.
fn only_message(addr: SocketAddr, user: &str, password: &str) -> Result<Vec<u8>, String> {
    let (mut c, _) = Pop::connect(addr);
    assert!(c.cmd(&format!("USER {user}")).starts_with("+OK"));
    let reply = c.cmd(&format!("PASS {password}"));
    if !reply.starts_with("+OK") {
        return Err(reply);
    }
    assert_eq!(numbers_of(&mut c).len(), 1);
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    let body = c.body();
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.closed());
    Ok(body)
}

#[test]
fn virtual_domains_have_their_own_passwd_files_and_mail() {
    let dir = TempDir::new("virtual");
    let root = dir.path();
    for d in ["a.example", "b.example"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    // One file per domain, by local part; the short form (two fields) and the full one.
    fs::write(root.join("a.example/passwd"), "bob:{PLAIN}pw-a\n").unwrap();
    fs::write(
        root.join("b.example/passwd"),
        "bob:{PLAIN}pw-b::::/nonexistent::\n",
    )
    .unwrap();
    let mail_a = b"Subject: for bob at a\n\nA\n";
    let mail_b = b"Subject: for bob at b\n\nB\n";
    maildir_with(&root.join("mail/a.example/bob"), "1.M1P1.a", mail_a);
    maildir_with(&root.join("mail/b.example/bob"), "1.M1P1.b", mail_b);
    let passwd = format!("{}/%d/passwd", root.display());
    let maildirs = format!("{}/mail/%d/%n", root.display());
    let server = BinServer::start(&[
        "--passwd",
        &passwd,
        "--maildir",
        &maildirs,
        "--default-domain",
        "a.example",
        "--fail-delay",
        "0.05",
    ]);
    let a = Ok(expected_wire(mail_a));
    let b = Ok(expected_wire(mail_b));
    assert_eq!(only_message(server.addr, "bob@a.example", "pw-a"), a);
    assert_eq!(only_message(server.addr, "bob@b.example", "pw-b"), b);
    assert_eq!(only_message(server.addr, "Bob@B.Example", "pw-b"), b);
    assert_eq!(
        only_message(server.addr, "bob", "pw-a"),
        a,
        "default domain"
    );
    for (user, password) in [
        ("bob@b.example", "pw-a"),
        ("bob@a.example", "pw-b"),
        ("bob", "pw-b"),
        ("bob@c.example", "pw-a"),
    ] {
        let reply = only_message(server.addr, user, password).unwrap_err();
        assert!(reply.starts_with("-ERR [AUTH]"), "{user}: {reply}");
    }
}

#[test]
fn a_changed_password_works_at_the_next_login_without_restart() {
    let corpus = Corpus::new("passwd-edit");
    let mut server = start(&corpus);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.closed());
    // Change the password as a control panel would, to a SHA512-CRYPT hash this time.
    let field = maildir::sha512_crypt("n3w pass");
    fs::write(
        &corpus.passwd,
        format!("{USER}:{field}::::{}::\n", corpus.home.display()),
    )
    .unwrap();
    let (mut c, _) = Pop::connect(server.addr);
    assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let reply = c.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("-ERR [AUTH]"), "old password: {reply}");
    let mut c = Pop::login_when_free(server.addr, USER, "n3w pass", PATIENCE);
    assert_eq!(numbers_of(&mut c).len(), corpus.messages.len());
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "server restarted"
    );
    // And back to {PLAIN}: the old password works again.
    write_passwd(&corpus.passwd, &[(USER, PASSWORD, &corpus.home)]);
    let mut c = Pop::login_when_free(server.addr, USER, PASSWORD, PATIENCE);
    assert!(c.cmd("QUIT").starts_with("+OK"));
}
