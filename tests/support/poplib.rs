//! Python's poplib as a real client of a corpus: it logs in, lists, retrieves every message,
//! and what it got is checked byte for byte. It reaches pop3d in plaintext, over implicit TLS
//! or after STLS, on a listening server or as inetd starts pop3d: on an accepted socket.

use super::maildir::{first_difference, run_bounded, wait_bounded, Corpus, Mail, PASSWORD, USER};
use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest a poplib run may take; the 20 MB message takes a second or two.
const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// The longest pop3d --inetd may take to exit once poplib is done.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// The client: logs in, takes STAT, LIST and UIDL, RETRs every message and writes each (lines
/// joined with CRLF again) to OUT/N, and a line `N SIZE UIDL OCTETS` per message to OUT/index.
/// Arguments: HOST PORT USER PASSWORD OUT MODE, where MODE is `plain`, `ssl` (POP3_SSL on an
/// implicit-TLS port) or `stls` (POP3, then stls()); over TLS it first prints `TLS VERSION
/// CIPHER`, and checks that CAPA offers USER only once TLS is on. Prints `COUNT TOTAL` from
/// STAT last.
const SCRIPT: &str = r#"
import os, poplib, ssl, sys
host, port, user, password, out, mode = sys.argv[1:7]
# poplib refuses lines over poplib._MAXLINE (2048) octets; RFC 1939 sets no limit and the corpus
# has 5000-octet lines, so raise it.
poplib._MAXLINE = 1 << 20
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if mode == "ssl":
    pop = poplib.POP3_SSL(host, int(port), context=ctx, timeout=20)
    caps = pop.capa()
    assert "STLS" not in caps and "USER" in caps, caps
else:
    pop = poplib.POP3(host, int(port), timeout=20)
if mode == "stls":
    caps = pop.capa()
    assert "STLS" in caps and "USER" not in caps, caps
    pop.stls(ctx)
    caps = pop.capa()
    assert "STLS" not in caps and "USER" in caps, caps
if mode != "plain":
    print("TLS", pop.sock.version(), pop.sock.cipher()[0])
pop.user(user)
pop.pass_(password)
count, total = pop.stat()
_, listing, _ = pop.list()
_, uidls, _ = pop.uidl()
with open(os.path.join(out, "index"), "w") as index:
    for entry, uentry in zip(listing, uidls):
        n, size = entry.decode().split()
        n2, uidl = uentry.decode().split()
        assert n == n2, (n, n2)
        # retr() undoes the dot-stuffing and strips each line's CRLF; octets counts the
        # unstuffed octets with their CRLFs.
        resp, lines, octets = pop.retr(int(n))
        assert resp.startswith(b"+OK"), resp
        with open(os.path.join(out, n), "wb") as f:
            f.write(b"".join(line + b"\r\n" for line in lines))
        index.write("%s %s %s %d\n" % (n, size, uidl, octets))
print(pop.quit().decode())
print(count, total)
"#;

/// A poplib run against a corpus, in plaintext or over TLS.
pub struct Poplib<'a> {
    corpus: &'a Corpus,
    mode: &'static str,
}

impl<'a> Poplib<'a> {
    /// poplib.POP3, in plaintext.
    pub fn plain(corpus: &'a Corpus) -> Self {
        Poplib {
            corpus,
            mode: "plain",
        }
    }

    /// poplib.POP3_SSL on an implicit-TLS port.
    pub fn implicit_tls(corpus: &'a Corpus) -> Self {
        Poplib {
            corpus,
            mode: "ssl",
        }
    }

    /// poplib.POP3, then stls().
    pub fn stls(corpus: &'a Corpus) -> Self {
        Poplib {
            corpus,
            mode: "stls",
        }
    }

    /// Retrieves every message from pop3d on 127.0.0.1:`port` and checks each; returns what
    /// poplib printed.
    pub fn retrieve_all(&self, port: u16) -> String {
        let (mut python, out) = self.command(port);
        let run = run_bounded(&mut python, CLIENT_LIMIT);
        self.check(run, &out)
    }

    /// The same, with `pop3d --inetd --allow-root ARGS` serving the connection as inetd starts
    /// it: the accepted socket is its descriptors 0 and 1. Returns what poplib printed, and
    /// pop3d's exit status and output.
    pub fn retrieve_all_over_inetd(&self, args: &[String]) -> (String, Output) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut python, out) = self.command(listener.local_addr().unwrap().port());
        let client = python
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let stream = accept_within(&listener);
        let server = {
            let stdout = OwnedFd::from(stream.try_clone().unwrap());
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_pop3d"));
            cmd.args(["--inetd", "--allow-root"])
                .args(args)
                .stdin(Stdio::from(OwnedFd::from(stream)))
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::piped());
            cmd.spawn().expect("start pop3d --inetd")
            // The Command, and with it this process's copies of the socket, goes here: the
            // client sees the connection end when pop3d exits.
        };
        let run = wait_bounded(client, CLIENT_LIMIT, "python3 poplib");
        let served = wait_bounded(server, EXIT_LIMIT, "pop3d --inetd");
        (self.check(run, &out), served)
    }

    /// The python3 command against `port`, and the folder it writes the messages to.
    fn command(&self, port: u16) -> (Command, PathBuf) {
        let out = self.corpus.scratch(&format!("poplib-{}", self.mode));
        let mut python = Command::new("python3");
        python
            .args(["-c", SCRIPT, "127.0.0.1", &port.to_string(), USER, PASSWORD])
            .arg(&out)
            .arg(self.mode);
        (python, out)
    }

    /// Checks that poplib succeeded and got every message right; returns its stdout.
    fn check(&self, run: Output, out: &Path) -> String {
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        assert!(
            run.status.success(),
            "poplib {}: {}",
            self.mode,
            String::from_utf8_lossy(&run.stderr)
        );
        check_output(self.corpus, out, &stdout);
        stdout
    }
}

/// Checks what [`SCRIPT`] wrote to `out` against the corpus: every message retrieved, byte for
/// byte, with LIST sizes, UIDLs and poplib's octet counts all right.
fn check_output(corpus: &Corpus, out: &Path, stdout: &str) {
    let expected = corpus.by_uidl();
    let total: usize = corpus.messages.iter().map(Mail::size).sum();
    assert!(
        stdout.ends_with(&format!("{} {total}\n", expected.len())),
        "STAT: {stdout}"
    );
    let index = fs::read_to_string(out.join("index")).unwrap();
    let mut seen = BTreeSet::new();
    for line in index.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (n, size, uidl, octets) = (f[0], f[1], f[2], f[3]);
        let mail = expected
            .get(uidl)
            .unwrap_or_else(|| panic!("unknown UIDL {uidl}"));
        let want = mail.wire();
        let got = fs::read(out.join(n)).unwrap();
        assert!(
            got == want,
            "{}: {}",
            mail.path,
            first_difference(&got, &want)
        );
        assert_eq!(size, want.len().to_string(), "LIST size of {}", mail.path);
        assert_eq!(octets, want.len().to_string(), "octets of {}", mail.path);
        assert!(seen.insert(uidl.to_owned()), "UIDL {uidl} twice");
    }
    assert_eq!(seen.len(), expected.len(), "not every message was listed");
}

/// Accepts one connection on `listener` within 10 s (poplib is connecting; if it never does,
/// the test fails here instead of hanging).
fn accept_within(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no client connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}
