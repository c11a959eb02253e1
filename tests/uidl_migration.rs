//! Moving a mailbox from Dovecot to pop3d without a client downloading everything again: a
//! real Dovecot (Debian's dovecot-pop3d, started by the test on loopback) serves a Maildir and
//! fetchmail (--keep, UIDL) reads it all; then pop3d serves the same Maildir with
//! `--uidl-format dovecot`, shows the very UIDLs Dovecot showed, and fetchmail downloads
//! nothing again. A message delivered after the switch is downloaded once, and only once.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::maildir::{Corpus, Fetchmail, PASSWORD, USER};
use support::pop::Pop;
use support::system_user::is_root;
use support::BinServer;

/// The longest one fetchmail run may take.
const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// The uid Dovecot serves the mailbox as: `nobody`, which every Debian has, so that the test
/// creates no account (Dovecot refuses to touch mail as root).
const NOBODY: u32 = 65534;

/// A private Dovecot: its own configuration, sockets and log under `dir`, listening on
/// 127.0.0.1:`port`; stopped (by its master's PID) on drop.
struct Dovecot {
    child: Child,
    port: u16,
}

impl Dovecot {
    /// Dovecot with its defaults but for what `settings` (configuration lines) change.
    fn start(dir: &Path, passwd: &Path, home: &Path, settings: &str) -> Dovecot {
        let port = free_port();
        let base = dir.join("base");
        fs::create_dir_all(&base).unwrap();
        let conf = dir.join("dovecot.conf");
        fs::write(
            &conf,
            format!(
                "instance_name = p3tuidl{port}\n\
                 base_dir = {base}\n\
                 state_dir = {base}/state\n\
                 protocols = pop3\n\
                 listen = 127.0.0.1\n\
                 log_path = {dir}/dovecot.log\n\
                 ssl = no\n\
                 disable_plaintext_auth = no\n\
                 first_valid_uid = {NOBODY}\n\
                 mail_location = maildir:~/Maildir\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {passwd}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid={NOBODY} gid={NOBODY} home={home}\n}}\n\
                 service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    \
                 port = {port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
                 {settings}\n",
                base = base.display(),
                dir = dir.display(),
                passwd = passwd.display(),
                home = home.display(),
            ),
        )
        .unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run dovecot");
        let mut dovecot = Dovecot { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(dovecot.addr()).is_err() {
            assert!(
                dovecot.child.try_wait().unwrap().is_none(),
                "dovecot exited: {}",
                fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "dovecot did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops the master (which stops its children) and waits for it.
    fn stop(&mut self) {
        // SAFETY: kill takes a PID of our own child and a signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago (Dovecot takes its port from its configuration).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every message's UIDL, by message number, as a server lists them.
fn uidls(addr: SocketAddr) -> BTreeMap<usize, String> {
    let mut c = Pop::login(addr, USER, PASSWORD);
    let (status, lines) = c.multi("UIDL");
    assert!(status.starts_with("+OK"), "{status}");
    c.quit();
    lines
        .iter()
        .map(|l| {
            let (n, id) = l.split_once(' ').expect("UIDL line");
            (n.parse().unwrap(), id.to_owned())
        })
        .collect()
}

/// Runs fetchmail once (--keep, UIDL); its exit code (0: mail, 1: none) and how many
/// messages it delivered.
fn fetch(fetchmail: &Fetchmail, extra: &[&str]) -> (i32, usize) {
    let (code, got) = fetchmail.poll(extra, CLIENT_LIMIT);
    (code, got.len())
}

/// Gives the whole tree under `path` to `uid`, as a Maildir Dovecot serves must be.
fn chown_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_mailbox_moved_from_dovecot_keeps_its_uidls() {
    migrate("uidl-dovecot", "");
}

/// With `pop3_save_uidl`, Dovecot stores each UIDL it shows in `dovecot-uidlist` (the `P`
/// field), and shows the stored one even after `pop3_uidl_format` changes: pop3d must too.
/// Here the format is not the default, so only the stored field can give the right UIDLs.
#[test]
fn uidls_dovecot_stored_are_kept() {
    migrate(
        "uidl-dovecot-saved",
        "pop3_uidl_format = %v.%u\npop3_save_uidl = yes",
    );
}

/// Dovecot (configured with `settings`) serves a corpus and fetchmail takes it all; then
/// pop3d serves it with `--uidl-format dovecot`, and fetchmail takes nothing again but the
/// message delivered after the switch, once.
fn migrate(tag: &str, settings: &str) {
    if !is_root() {
        println!("skipped: needs root (Dovecot serves mail as another uid)");
        return;
    }
    if Command::new("dovecot").arg("--version").output().is_err() {
        panic!("dovecot is not installed (tests/run.sh installs dovecot-pop3d)");
    }
    let mut corpus = Corpus::new(tag);
    let dir = corpus.scratch("dovecot");
    // Dovecot's unprivileged processes walk down to the passwd file and the Maildir.
    fs::set_permissions(
        corpus.passwd.parent().unwrap(),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    chown_tree(&corpus.home, NOBODY);
    let mut dovecot = Dovecot::start(&dir, &corpus.passwd, &corpus.home, settings);
    let fetchmail = Fetchmail::new(&corpus, dovecot.port);

    // Dovecot: fetchmail takes everything and leaves it on the server.
    let (code, got) = fetch(&fetchmail, &["--all"]);
    assert_eq!((code, got), (0, corpus.messages.len()));
    let (code, got) = fetch(&fetchmail, &[]);
    assert_eq!((code, got), (1, 0), "Dovecot: a second poll fetched again");
    let shown_by_dovecot = uidls(dovecot.addr());
    assert_eq!(shown_by_dovecot.len(), corpus.messages.len());
    dovecot.stop();
    let uidlist = fs::read_to_string(corpus.maildir.join("dovecot-uidlist"))
        .expect("Dovecot wrote no dovecot-uidlist");
    if !settings.is_empty() {
        // What this variant is about: the UIDLs are in the file, not made from the format.
        for uidl in shown_by_dovecot.values() {
            assert!(
                uidlist.contains(&format!(" P{uidl} ")),
                "{uidl}:\n{uidlist}"
            );
        }
    }

    // pop3d with the maildir UIDLs would make the client fetch everything again...
    let args = corpus.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plain = BinServer::start(&args);
    let basenames = uidls(plain.addr);
    assert!(
        basenames
            .values()
            .all(|u| !shown_by_dovecot.values().any(|d| d == u)),
        "maildir UIDLs should differ from Dovecot's: {basenames:?} {shown_by_dovecot:?}"
    );
    drop(plain);

    // ...and with --uidl-format dovecot it shows exactly Dovecot's.
    let mut with_preset = args.clone();
    with_preset.extend(["--uidl-format", "dovecot"]);
    let server = BinServer::start(&with_preset);
    assert_eq!(uidls(server.addr), shown_by_dovecot);
    let fetchmail = Fetchmail {
        rc: rewrite_port(&fetchmail.rc, dovecot.port, server.port()),
        ..fetchmail
    };
    let (code, got) = fetch(&fetchmail, &[]);
    assert_eq!(
        (code, got),
        (1, 0),
        "pop3d --uidl-format dovecot: fetched again"
    );

    // A message delivered after the switch (not in dovecot-uidlist): fetched once, then never.
    let fresh = corpus.deliver("after-switch", b"Subject: after the switch\n\nhello\n");
    let (code, got) = fetch(&fetchmail, &[]);
    assert_eq!((code, got), (0, 1), "the new message");
    assert!(uidls(server.addr).values().any(|u| *u == fresh.uidl()));
    let (code, got) = fetch(&fetchmail, &[]);
    assert_eq!((code, got), (1, 0), "the new message was fetched twice");
}

/// Points the fetchmail configuration at another port; the same file.
fn rewrite_port(rc: &Path, from: u16, to: u16) -> std::path::PathBuf {
    let text = fs::read_to_string(rc).unwrap();
    fs::write(
        rc,
        text.replace(&format!("port {from}"), &format!("port {to}")),
    )
    .unwrap();
    rc.to_path_buf()
}

/// Mail converted from an mbox server that added X-UIDL headers (qpopper): with
/// `--uidl-format x-uidl` the server shows them, and the maildir UIDL where there is none.
#[test]
fn x_uidl_headers_are_shown_with_the_preset() {
    let mut corpus = Corpus::empty("uidl-x-uidl");
    let with = corpus.deliver("q1", b"X-UIDL: 3c8d1f0a00000001\nSubject: one\n\nbody\n");
    let without = corpus.deliver("q2", b"Subject: two\n\nX-UIDL: in the body, not a header\n");
    let args = corpus.server_args();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--uidl-format", "x-uidl"]);
    let server = BinServer::start(&args);
    let shown: Vec<String> = uidls(server.addr).into_values().collect();
    assert_eq!(shown, ["3c8d1f0a00000001".to_owned(), without.uidl()]);
    assert_ne!(with.uidl(), "3c8d1f0a00000001");
}
