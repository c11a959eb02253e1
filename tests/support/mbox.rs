//! A generated mbox spool for end-to-end tests, and Python's poplib to fetch all of it.
//!
//! The spool holds what an MTA and mail readers leave in `/var/mail`: `From ` lines with
//! `>From ` escapes in bodies, body lines starting `From ` without a date, bookkeeping headers
//! (`Status`, `X-Status`, `X-UID`, `X-Keywords`, `Content-Length`) that are not served, an
//! `X-UIDL`, CRLF and LF, 8-bit octets and a NUL, lines starting with dots, and, when asked
//! for, the 20 MB message.

use super::maildir::{big_message, run_bounded, Corpus, PASSWORD, USER};
use super::wire::expected_wire;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One message of the spool: what is written after its `From ` line, and what is served.
pub struct Stored {
    pub raw: Vec<u8>,
    pub served: Vec<u8>,
}

impl Stored {
    /// What a client holds after RETR, dot-stuffing undone.
    pub fn wire(&self) -> Vec<u8> {
        expected_wire(&self.served)
    }
}

/// alice's account (a [`Corpus`] with an empty Maildir, for its passwd file and scratch
/// folders) and her mbox spool, `DIR/spool/alice`.
pub struct Spool {
    pub account: Corpus,
    pub path: PathBuf,
    pub messages: Vec<Stored>,
}

/// The messages: (raw, served). Hidden header lines are left out of the served form.
fn messages(big: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut same = |m: &[u8]| out.push((m.to_vec(), m.to_vec()));
    same(b"From: a@example.org\nSubject: escaped From lines\n\nHello\n>From the start of a line\n>>From twice\nFrom here on, no date: not a separator\n");
    same(b"From: dots@example.org\nSubject: dots\n\n.starts with a dot\n.\n..\nend\n");
    same(b"From: crlf@example.org\r\nSubject: CRLF\r\n\r\n.dot\r\nline\r\n");
    same(b"From: 8bit@example.org\nSubject: 8-bit\n\ncaf\xe9 \xc3\x28 \xff\xfe\nbefore\x00after\n");
    same(b"X-UIDL: 4f3c2a1b00qpopper\nFrom: q@example.org\nSubject: served by Qpopper once\n\nx\n");
    let mut long = b"From: long@example.org\nSubject: long line\n\n".to_vec();
    long.extend((0..5000).map(|i| b'a' + (i % 26) as u8));
    long.push(b'\n');
    same(&long);
    let body =
        b"From x@y Thu Nov 29 22:33:52 2001\nan unescaped From line, kept by Content-Length\n";
    let mut cl = format!(
        "From: cl@example.org\nContent-Length: {}\nSubject: cl\n\n",
        body.len()
    )
    .into_bytes();
    cl.extend_from_slice(body);
    let mut cl_served = b"From: cl@example.org\nSubject: cl\n\n".to_vec();
    cl_served.extend_from_slice(body);
    out.push((cl, cl_served));
    out.push((
        b"Status: RO\nFrom: read@example.org\nX-Status: A\nSubject: read\nX-Keywords: $Label1\n\tjunk\nX-UID: 12\n\nread it\n".to_vec(),
        b"From: read@example.org\nSubject: read\n\nread it\n".to_vec(),
    ));
    if big {
        let m = big_message();
        out.push((m.clone(), m));
    }
    out.push((
        b"From: last@example.org\nSubject: no final newline\n\nthe end".to_vec(),
        b"From: last@example.org\nSubject: no final newline\n\nthe end".to_vec(),
    ));
    out
}

/// A `From ` line as Postfix writes it.
pub fn from_line(n: usize) -> String {
    format!(
        "From sender{n}@example.org  Sat Dec  5 09:{:02}:{:02} 2026\n",
        n / 60 % 60,
        n % 60
    )
}

impl Spool {
    /// The spool of [`messages`], with the 20 MB message if `big`.
    pub fn new(tag: &str, big: bool) -> Spool {
        let account = Corpus::empty(tag);
        let dir = account.dir.path().join("spool");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(USER);
        let mut mbox = Vec::new();
        let mut stored = Vec::new();
        let all = messages(big);
        let count = all.len();
        for (n, (raw, served)) in all.into_iter().enumerate() {
            mbox.extend_from_slice(from_line(n).as_bytes());
            mbox.extend_from_slice(&raw);
            if n + 1 < count {
                mbox.push(b'\n');
            }
            stored.push(Stored { raw, served });
        }
        fs::write(&path, &mbox).unwrap();
        Spool {
            account,
            path,
            messages: stored,
        }
    }

    /// The options that point pop3d at this spool.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--passwd".into(),
            self.account.passwd.display().to_string(),
            "--mbox".into(),
            format!("{}/%u", self.path.parent().unwrap().display()),
            "--fail-delay".into(),
            "0.05".into(),
            "--state-dir".into(),
            self.account.dir.path().join("state").display().to_string(),
        ]
    }
}

/// What poplib got of one message: LIST size, UIDL, and the message with CRLF line ends.
#[derive(Debug, PartialEq, Eq)]
pub struct Fetched {
    pub size: u64,
    pub uidl: String,
    pub wire: Vec<u8>,
}

const FETCH: &str = r#"
import os, poplib, sys
host, port, user, password, out = sys.argv[1:6]
poplib._MAXLINE = 1 << 20
pop = poplib.POP3(host, int(port), timeout=20)
pop.user(user)
pop.pass_(password)
_, listing, _ = pop.list()
_, uidls, _ = pop.uidl()
with open(os.path.join(out, "index"), "w") as index:
    for entry, uentry in zip(listing, uidls):
        n, size = entry.decode().split()
        _, uidl = uentry.decode().split()
        _, lines, _ = pop.retr(int(n))
        with open(os.path.join(out, n), "wb") as f:
            f.write(b"".join(line + b"\r\n" for line in lines))
        index.write("%s %s %s\n" % (n, size, uidl))
pop.quit()
"#;

/// Fetches every message from the POP3 server on 127.0.0.1:`port` as `user`, with poplib;
/// `out` is a scratch folder.
pub fn poplib_fetch(port: u16, user: &str, password: &str, out: &Path) -> Vec<Fetched> {
    fs::create_dir_all(out).unwrap();
    let run = run_bounded(
        Command::new("python3")
            .args(["-c", FETCH, "127.0.0.1", &port.to_string(), user, password])
            .arg(out),
        Duration::from_secs(60),
    );
    assert!(
        run.status.success(),
        "poplib: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    fs::read_to_string(out.join("index"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Fetched {
                size: f[1].parse().unwrap(),
                uidl: f[2].to_owned(),
                wire: fs::read(out.join(f[0])).unwrap(),
            }
        })
        .collect()
}

/// alice's password, for the clients.
pub const ALICE: (&str, &str) = (USER, PASSWORD);
