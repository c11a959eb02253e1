//! A generated Maildir and passwd file for end-to-end tests, and what a client must receive.
//!
//! The corpus holds the messages that break naive POP3 code: lines that start with `.`, a lone
//! `.` line, `..` lines, a missing final newline, 8-bit bytes (Latin-1 and invalid UTF-8), a NUL,
//! lines far over 1000 octets, CRLF, LF and mixed files, a header-only message and, when asked
//! for, a 20 MB message. Some file names carry `,S=` and `,W=` size hints, some do not; some are
//! in `new/`, some in `cur/` with flags.
//!
//! What a client must receive for each message is [`expected_wire`], the tests' one reference.
//!
//! Also here, for the tests that drive real clients: running a program with a deadline
//! ([`run_bounded`]) and fetchmail's set-up (Python's poplib has its own file, `poplib.rs`).

use super::temp_dir::TempDir;
use super::wire::expected_wire;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The account every corpus has.
pub const USER: &str = "alice";
/// Its password (with a space: PASS must keep it).
pub const PASSWORD: &str = "s3cret pw";

/// One message file in the Maildir.
#[derive(Clone, Debug)]
pub struct Mail {
    /// Path relative to the Maildir, e.g. `cur/1700000001.M1P7.corpus,S=10,W=12:2,S`.
    pub path: String,
    /// The bytes of the file.
    pub raw: Vec<u8>,
}

impl Mail {
    /// The file name, without `new/` or `cur/`.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap()
    }

    /// The UIDL a client must see: the base name up to the first `:`.
    pub fn uidl(&self) -> String {
        self.file_name().split(':').next().unwrap().to_owned()
    }

    /// What a client must receive (see [`expected_wire`]).
    pub fn wire(&self) -> Vec<u8> {
        expected_wire(&self.raw)
    }

    /// The size LIST must report.
    pub fn size(&self) -> usize {
        self.wire().len()
    }
}

/// Where a generated message goes and what its file name says.
#[derive(Clone, Copy)]
enum Place {
    /// `new/NAME`, no size hints.
    New,
    /// `new/NAME,S=..,W=..`.
    NewHinted,
    /// `cur/NAME:2,FLAGS`, no size hints.
    Cur(&'static str),
    /// `cur/NAME,S=..,W=..:2,FLAGS`.
    CurHinted(&'static str),
}

/// The small messages of every corpus: (tag, place, contents).
fn small_messages() -> Vec<(&'static str, Place, Vec<u8>)> {
    let mut long = b"From: long@example.org\nSubject: long lines\n\n".to_vec();
    long.extend((0..5000).map(|i| b'a' + (i % 26) as u8));
    long.push(b'\n');
    long.push(b'.');
    long.extend((0..2999).map(|i| b'0' + (i % 10) as u8));
    long.extend_from_slice(b"\nshort\n");
    vec![
        (
            "dots",
            Place::New,
            b"From: Dot Tester <dots@example.org>\nTo: alice@example.org\nSubject: dots\n\n\
              .starts with a dot\n.\n..\n...\n. space after\nplain\n.\n\n.\nend\n"
                .to_vec(),
        ),
        (
            "crlf",
            Place::CurHinted("S"),
            b"From: crlf@example.org\r\nSubject: CRLF file\r\n\r\n.dot in CRLF\r\n..\r\n\
              line\r\n.\r\nlast\r\n"
                .to_vec(),
        ),
        (
            "nofinal",
            Place::NewHinted,
            b"From: nofinal@example.org\nSubject: no final newline\n\n\
              the last line has no newline"
                .to_vec(),
        ),
        (
            "dotend",
            Place::Cur("S"),
            b"From: dotend@example.org\nSubject: ends in a lone dot, unterminated\n\ntext\n."
                .to_vec(),
        ),
        (
            "eightbit",
            Place::Cur("RS"),
            b"From: 8bit@example.org\nSubject: 8-bit\nContent-Type: text/plain; \
              charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n\
              Latin-1: caf\xe9 na\xefve \xa9 \xbd\n\
              invalid UTF-8: \xc3\x28 \xff\xfe \xed\xa0\x80 \xc0\xaf\n\
              \xe9.not a dot line\n"
                .to_vec(),
        ),
        (
            "nul",
            Place::NewHinted,
            b"From: nul@example.org\nSubject: a NUL byte\n\nbefore\x00after\n\x00\nend\n".to_vec(),
        ),
        ("long", Place::CurHinted("S"), long),
        (
            "headeronly",
            Place::New,
            b"From: headeronly@example.org\nSubject: header only, no blank line\n".to_vec(),
        ),
        (
            "mixed",
            Place::Cur(""),
            b"From: mixed@example.org\r\nSubject: mixed line ends\n\r\nlf line\n\
              crlf line\r\n.\r\n.\nend\r\n"
                .to_vec(),
        ),
    ]
}

/// Size of the attachment in the big message: about 20 MB.
pub const BIG_ATTACHMENT: usize = 20 * 1024 * 1024;

/// A message with a ~20 MB base64 attachment in LF-terminated lines of 76 characters.
/// Deterministic: a seeded LCG chooses the characters, four per step.
pub fn big_message() -> Vec<u8> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(BIG_ATTACHMENT + BIG_ATTACHMENT / 76 + 1024);
    out.extend_from_slice(
        b"From: big@example.org\nTo: alice@example.org\nSubject: a 20 MB attachment\n\
          MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b0undary\"\n\n\
          --b0undary\nContent-Type: text/plain\n\nSee the attachment.\n.\n\n\
          --b0undary\nContent-Type: application/octet-stream\n\
          Content-Transfer-Encoding: base64\nContent-Disposition: attachment; \
          filename=\"big.bin\"\n\n",
    );
    let mut state: u64 = 0x5eed_1234_abcd_0001;
    let lines = BIG_ATTACHMENT / 76;
    let mut line = [0u8; 77];
    line[76] = b'\n';
    for _ in 0..lines {
        for quad in line[..76].chunks_mut(4) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = state >> 40;
            for (k, c) in quad.iter_mut().enumerate() {
                *c = B64[((r >> (6 * k)) & 63) as usize];
            }
        }
        out.extend_from_slice(&line);
    }
    out.extend_from_slice(b"--b0undary--\n");
    out
}

/// A test Maildir and passwd file in a temporary directory.
pub struct Corpus {
    /// Holds everything; removed on drop.
    pub dir: TempDir,
    /// The passwd file (`alice:{PLAIN}...::::HOME::`).
    pub passwd: PathBuf,
    /// alice's home directory.
    pub home: PathBuf,
    /// alice's Maildir, `HOME/Maildir`.
    pub maildir: PathBuf,
    /// The messages, in the order they were written.
    pub messages: Vec<Mail>,
    next: u32,
}

impl Corpus {
    /// The small corpus (about ten messages, a few kilobytes).
    pub fn new(tag: &str) -> Self {
        Self::build(tag, false)
    }

    /// The small corpus and the 20 MB message (`cur/`, no size hint: the server must count).
    pub fn with_big(tag: &str) -> Self {
        Self::build(tag, true)
    }

    /// An account with an empty Maildir (new/, cur/, tmp/ exist).
    pub fn empty(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let home = dir.path().join("home").join(USER);
        let maildir = home.join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let passwd = dir.path().join("passwd");
        write_passwd(&passwd, &[(USER, PASSWORD, &home)]);
        Corpus {
            dir,
            passwd,
            home,
            maildir,
            messages: Vec::new(),
            next: 1,
        }
    }

    fn build(tag: &str, big: bool) -> Self {
        let mut c = Self::empty(tag);
        for (tag, place, raw) in small_messages() {
            c.add(tag, place, raw);
        }
        if big {
            c.add("big", Place::Cur("S"), big_message());
        }
        c
    }

    fn add(&mut self, tag: &str, place: Place, raw: Vec<u8>) -> Mail {
        let n = self.next;
        self.next += 1;
        let base = format!("{}.M{n}P4242.{tag}", 1_700_000_000 + n);
        let hint = format!(",S={},W={}", raw.len(), expected_wire(&raw).len());
        let path = match place {
            Place::New => format!("new/{base}"),
            Place::NewHinted => format!("new/{base}{hint}"),
            Place::Cur(flags) => format!("cur/{base}:2,{flags}"),
            Place::CurHinted(flags) => format!("cur/{base}{hint}:2,{flags}"),
        };
        // Deliver as an MDA does: write in tmp/, then rename into place.
        let tmp = self.maildir.join("tmp").join(&base);
        fs::write(&tmp, &raw).unwrap();
        fs::rename(&tmp, self.maildir.join(&path)).unwrap();
        let mail = Mail { path, raw };
        self.messages.push(mail.clone());
        mail
    }

    /// Delivers `raw` into `new/` (through `tmp/`, as an MDA does), with no size hint.
    pub fn deliver(&mut self, tag: &str, raw: &[u8]) -> Mail {
        self.add(tag, Place::New, raw.to_vec())
    }

    /// The options that point pop3d at this corpus, with a short failure delay.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--passwd".into(),
            self.passwd.display().to_string(),
            "--maildir".into(),
            "%h/Maildir".into(),
            "--fail-delay".into(),
            "0.05".into(),
            "--state-dir".into(),
            self.dir.path().join("state").display().to_string(),
        ]
    }

    /// The messages by UIDL.
    pub fn by_uidl(&self) -> BTreeMap<String, &Mail> {
        self.messages.iter().map(|m| (m.uidl(), m)).collect()
    }

    /// The message files now in `new/` and `cur/`, as `new/NAME` and `cur/NAME`.
    pub fn on_disk(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for sub in ["new", "cur"] {
            for entry in fs::read_dir(self.maildir.join(sub)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                found.insert(format!("{sub}/{name}"));
            }
        }
        found
    }

    /// The paths of all messages of the corpus, as [`on_disk`](Self::on_disk) names them.
    pub fn paths(&self) -> BTreeSet<String> {
        self.messages.iter().map(|m| m.path.clone()).collect()
    }

    /// Path of a scratch directory inside the corpus directory (created).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

/// Writes a passwd file of `{PLAIN}` accounts: `user:{PLAIN}password::::home::`, that is
/// user, password, uid, gid, gecos, home, shell, extra (Dovecot's passwd-file layout).
pub fn write_passwd(path: &Path, accounts: &[(&str, &str, &Path)]) {
    let mut text = String::from("# generated by tests/support/maildir.rs\n");
    for (user, password, home) in accounts {
        text.push_str(&format!(
            "{user}:{{PLAIN}}{password}::::{}::\n",
            home.display()
        ));
    }
    fs::write(path, text).unwrap();
}

/// A `{SHA512-CRYPT}` password field for `password`, made by `openssl passwd -6`.
pub fn sha512_crypt(password: &str) -> String {
    let out = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{password}\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("openssl passwd -6");
    assert!(out.status.success(), "openssl passwd failed");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$6$"), "{hash}");
    format!("{{SHA512-CRYPT}}{hash}")
}

/// Waits for `child` at most `limit`, collecting its output; kills it and panics on overrun.
pub fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what} still running after {limit:?}, killed; stderr: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs `cmd` (stdin closed, output captured) for at most `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_bounded(child, limit, &what)
}

/// Describes where two byte strings first differ, for assertion messages.
pub fn first_difference(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let show = |b: &[u8]| {
        let end = (at + 40).min(b.len());
        format!(
            "{:?}",
            String::from_utf8_lossy(&b[at.saturating_sub(20)..end])
        )
    };
    format!(
        "got {} octets, want {}; first difference at {at}: got {} want {}",
        got.len(),
        want.len(),
        show(got),
        show(want)
    )
}

/// fetchmail set up to deliver each message to its own file, with its state in a private HOME
/// (tests/clients.rs and tests/tls.rs add the ways they run it).
pub struct Fetchmail {
    pub home: PathBuf,
    pub rc: PathBuf,
    pub mda: PathBuf,
    pub out: PathBuf,
}

impl Fetchmail {
    pub fn new(corpus: &Corpus, port: u16) -> Self {
        let home = corpus.scratch("fetchmail-home");
        let out = corpus.scratch("fetchmail-out");
        let rc = home.join("fetchmailrc");
        fs::write(
            &rc,
            format!(
                "poll 127.0.0.1 with protocol POP3 port {port}\n    \
                 user \"{USER}\" there with password \"{PASSWORD}\"\n"
            ),
        )
        .unwrap();
        // fetchmail refuses an rcfile that others can read (it holds the password).
        fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).unwrap();
        let mda = home.join("mda");
        fs::write(
            &mda,
            format!(
                "#!/bin/sh\nexec cat > \"$(mktemp '{}/msg.XXXXXX')\"\n",
                out.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&mda, fs::Permissions::from_mode(0o700)).unwrap();
        Fetchmail { home, rc, mda, out }
    }

    /// A fetchmail command with the settings every test shares: its own HOME, rcfile, UIDL
    /// file and pidfile (as root, fetchmail otherwise locks /var/run/fetchmail.pid, which a
    /// fetchmail of another test running in parallel would meet), the MDA, and no Received:
    /// header or address rewriting, so the message is left alone. Empties the delivery folder.
    pub fn command(&self) -> std::process::Command {
        for f in fs::read_dir(&self.out).unwrap() {
            fs::remove_file(f.unwrap().path()).unwrap();
        }
        let mut cmd = std::process::Command::new("fetchmail");
        cmd.env("HOME", &self.home)
            .env_remove("FETCHMAILHOME")
            .env_remove("FETCHMAILUSER")
            .arg("--fetchmailrc")
            .arg(&self.rc)
            .arg("--idfile")
            .arg(self.home.join(".fetchids"))
            .arg("--pidfile")
            .arg(self.home.join("fetchmail.pid"))
            .arg("--mda")
            .arg(&self.mda)
            .args([
                "--nodetach",
                "--nosyslog",
                "--invisible",
                "--norewrite",
                "--nosoftbounce",
                "--timeout",
                "20",
                "--keep",
            ]);
        cmd
    }

    /// Runs fetchmail once in plaintext with UIDLs (`--uidl`) and `extra` options, within
    /// `limit`; its exit code (0: mail fetched, 1: none) and what it delivered.
    pub fn poll(&self, extra: &[&str], limit: Duration) -> (i32, Vec<Vec<u8>>) {
        let run = run_bounded(
            self.command()
                // fetchmail 6.4 tries STLS unless told not to, and gives up when the server
                // does not offer it; this is loopback.
                .args(["--sslproto", "", "--uidl"])
                .args(extra),
            limit,
        );
        let code = run.status.code().expect("fetchmail exit code");
        assert!(
            code == 0 || code == 1,
            "fetchmail failed ({code}): {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        (code, self.delivered())
    }

    /// The messages the last run delivered.
    pub fn delivered(&self) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for f in fs::read_dir(&self.out).unwrap() {
            got.push(fs::read(f.unwrap().path()).unwrap());
        }
        got
    }
}
