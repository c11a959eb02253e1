//! One tenant cannot reach another's mail, nor anything else, whatever they plant in their own
//! Maildir; one passwd entry cannot take the server down; a log line cannot show a name other
//! than the one given. Each test drives the real `pop3d` binary over a real socket.
//!
//! The accounts have their own uids (2001, 2002), as on a shared Unix host where alice can
//! write in her own home directory; the tests run as root and chown what they make.

mod support;

use std::fs;
use std::os::unix::fs::{chown, symlink};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::pop::Pop;
use support::temp_dir::TempDir;
use support::BinServer;

const ALICE_UID: u32 = 2001;
const BOB_UID: u32 = 2002;

/// Two tenants, alice and bob, each with a home and a Maildir of their own, and a passwd file
/// giving their uids.
struct Host {
    dir: TempDir,
    passwd: PathBuf,
}

impl Host {
    fn new(tag: &str) -> Host {
        let dir = TempDir::new(tag);
        let host = Host {
            passwd: dir.path().join("passwd"),
            dir,
        };
        for (user, uid) in [("alice", ALICE_UID), ("bob", BOB_UID)] {
            let home = host.home(user);
            fs::create_dir_all(&home).unwrap();
            chown(&home, Some(uid), Some(uid)).unwrap();
            host.make_maildir(&home.join("Maildir"), uid);
        }
        host.write_passwd(&[]);
        host
    }

    fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.home(user).join("Maildir")
    }

    fn make_maildir(&self, root: &Path, uid: u32) {
        for sub in ["", "cur", "new", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).unwrap();
            chown(&dir, Some(uid), Some(uid)).unwrap();
        }
    }

    /// alice and bob with `{PLAIN}` passwords `alicepw` and `bobpw`, then `extra` lines.
    fn write_passwd(&self, extra: &[String]) {
        let mut text = String::new();
        for (user, uid) in [("alice", ALICE_UID), ("bob", BOB_UID)] {
            let home = self.home(user);
            text.push_str(&format!(
                "{user}:{{PLAIN}}{user}pw:{uid}:{uid}::{}::\n",
                home.display()
            ));
        }
        for line in extra {
            text.push_str(line);
            text.push('\n');
        }
        fs::write(&self.passwd, text).unwrap();
    }

    /// Writes a message into `<user>/Maildir/<sub>/<name>`, owned by the user.
    fn deliver(&self, user: &str, sub: &str, name: &str, content: &[u8]) -> PathBuf {
        let path = self.maildir(user).join(sub).join(name);
        fs::write(&path, content).unwrap();
        let uid = if user == "alice" { ALICE_UID } else { BOB_UID };
        chown(&path, Some(uid), Some(uid)).unwrap();
        path
    }

    /// The passwd file, Maildirs at `%h/Maildir`, and a short failure delay.
    fn args(&self) -> Vec<String> {
        let passwd = self.passwd.display().to_string();
        let pairs = [("--passwd", passwd.as_str()), ("--maildir", "%h/Maildir")];
        let mut args: Vec<String> = pairs
            .iter()
            .flat_map(|(option, value)| [option.to_string(), value.to_string()])
            .collect();
        args.extend(["--fail-delay".to_string(), "0.05".to_string()]);
        let state = self.dir.path().join("state").display().to_string();
        args.extend(["--state-dir".to_string(), state]);
        args
    }

    fn start(&self) -> BinServer {
        let args = self.args();
        BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// USER and PASS; returns the reply to PASS.
fn try_login(server: &BinServer, user: &str, pass: &str) -> (Pop<std::net::TcpStream>, String) {
    let (mut c, greeting) = Pop::connect(server.addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    let r = c.cmd(&format!("USER {user}"));
    assert!(r.starts_with("+OK"), "{r}");
    let r = c.cmd(&format!("PASS {pass}"));
    (c, r)
}

/// Waits a moment for `text` in the server's log; the log, and whether it came.
fn log_shows(server: &BinServer, text: &str) -> (bool, String) {
    for _ in 0..100 {
        let log = server.log();
        if log.contains(text) {
            return (true, log);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (false, server.log())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- 1. A tenant cannot leave their mailbox ----

#[test]
fn a_cur_symlinked_to_another_mailbox_is_refused_and_touches_nothing() {
    let host = Host::new("iso-cur");
    host.deliver(
        "bob",
        "cur",
        "1000.M1.host:2,S",
        b"Subject: bob's secret\n\nfor bob\n",
    );
    let alice_cur = host.maildir("alice").join("cur");
    fs::remove_dir(&alice_cur).unwrap();
    symlink(host.maildir("bob").join("cur"), &alice_cur).unwrap();
    let server = host.start();

    let (mut c, r) = try_login(&server, "alice", "alicepw");
    if r.starts_with("+OK") {
        let (_, uidls) = c.multi("UIDL");
        let dele = c.cmd("DELE 1");
        c.cmd("QUIT");
        panic!("alice logged in through a symlinked cur/: UIDL {uidls:?}, DELE 1: {dele}");
    }
    assert!(r.starts_with("-ERR [SYS/PERM]"), "{r}");
    let (logged, log) = log_shows(&server, "is a symlink");
    assert!(logged, "no log line names the symlink:\n{log}");
    assert!(log.contains(&alice_cur.display().to_string()), "{log}");
    assert_eq!(
        names_in(&host.maildir("bob").join("cur")),
        ["1000.M1.host:2,S"]
    );
}

#[test]
fn a_new_symlinked_elsewhere_is_refused() {
    let host = Host::new("iso-new");
    let elsewhere = host.dir.path().join("etc");
    fs::create_dir(&elsewhere).unwrap();
    fs::copy(&host.passwd, elsewhere.join("1000.passwd")).unwrap();
    let alice_new = host.maildir("alice").join("new");
    fs::remove_dir(&alice_new).unwrap();
    symlink(&elsewhere, &alice_new).unwrap();
    let server = host.start();

    let (mut c, r) = try_login(&server, "alice", "alicepw");
    if r.starts_with("+OK") {
        c.cmd("RETR 1");
        let body = String::from_utf8_lossy(&c.body()).into_owned();
        panic!("alice logged in through a symlinked new/; RETR 1 gave:\n{body}");
    }
    assert!(r.starts_with("-ERR [SYS/PERM]"), "{r}");
}

#[test]
fn a_maildir_that_is_a_symlink_to_another_is_refused() {
    let host = Host::new("iso-root");
    host.deliver("bob", "new", "1000.M1.host", b"Subject: bob's\n\nfor bob\n");
    let alice = host.maildir("alice");
    fs::remove_dir_all(&alice).unwrap();
    symlink(host.maildir("bob"), &alice).unwrap();
    let server = host.start();

    let (mut c, r) = try_login(&server, "alice", "alicepw");
    if r.starts_with("+OK") {
        let (_, uidls) = c.multi("UIDL");
        panic!("alice was served bob's Maildir: {uidls:?}");
    }
    assert!(r.starts_with("-ERR [SYS/PERM]"), "{r}");
    let (logged, log) = log_shows(&server, "is a symlink");
    assert!(logged, "{log}");
    // Nothing was made in bob's Maildir: no lock file, no size cache.
    assert_eq!(names_in(&host.maildir("bob")), ["cur", "new", "tmp"]);
}

#[test]
fn a_message_that_is_a_symlink_is_skipped_and_logged() {
    let host = Host::new("iso-msg");
    host.deliver("alice", "new", "1000.M1.host", b"Subject: mine\n\nmine\n");
    let link = host.maildir("alice").join("cur").join("999.M1.host:2,S");
    symlink(&host.passwd, &link).unwrap();
    let server = host.start();

    let mut c = Pop::login(server.addr, "alice", "alicepw");
    let (_, uidls) = c.multi("UIDL");
    assert_eq!(uidls, ["1 1000.M1.host"]);
    c.cmd("QUIT");
    let (logged, log) = log_shows(&server, "999.M1.host:2,S");
    assert!(logged, "the skipped symlink is not logged:\n{log}");
    assert!(log.contains("symlink"), "{log}");
}

#[test]
fn a_maildir_owned_by_another_uid_is_refused_with_a_clear_log_line() {
    let host = Host::new("iso-owner");
    let alice = host.maildir("alice");
    chown(&alice, Some(BOB_UID), None).unwrap();
    let server = host.start();
    let (_, r) = try_login(&server, "alice", "alicepw");
    assert!(r.starts_with("-ERR [SYS/PERM]"), "{r}");
    let (logged, log) = log_shows(&server, "owned by uid 2002");
    assert!(logged, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("owned by uid 2002"))
        .unwrap();
    assert!(line.contains(&alice.display().to_string()), "{line}");
    assert!(line.contains("2001"), "{line}");

    // The same for cur/ alone; bob, whose Maildir is his, is served meanwhile.
    chown(&alice, Some(ALICE_UID), None).unwrap();
    chown(alice.join("cur"), Some(0), None).unwrap();
    let (_, r) = try_login(&server, "alice", "alicepw");
    assert!(r.starts_with("-ERR [SYS/PERM]"), "{r}");
    let (logged, log) = log_shows(&server, "owned by uid 0");
    assert!(logged, "{log}");
    let mut bob = Pop::login(server.addr, "bob", "bobpw");
    assert!(bob.cmd("STAT").starts_with("+OK 0 0"));
}

#[test]
fn symlinks_above_the_mailbox_root_keep_working() {
    let host = Host::new("iso-above");
    // /home/alice -> /disk2/alice, made by the administrator.
    let disk2 = host.dir.path().join("disk2");
    fs::create_dir(&disk2).unwrap();
    fs::rename(host.home("alice"), disk2.join("alice")).unwrap();
    symlink(disk2.join("alice"), host.home("alice")).unwrap();
    host.deliver("alice", "new", "1000.M1.host", b"Subject: hi\n\nhi\n");
    let server = host.start();
    let mut c = Pop::login(server.addr, "alice", "alicepw");
    assert_eq!(c.cmd("STAT"), "+OK 1 19");
    c.cmd("QUIT");
    drop(server);

    // The whole mail root a symlink: --maildir <link>/%n.
    let real = host.dir.path().join("srv-mail");
    let link = host.dir.path().join("mail-link");
    host.make_maildir(&real.join("bob"), BOB_UID);
    symlink(&real, &link).unwrap();
    fs::write(real.join("bob/new/1000.M1.host"), b"x\n").unwrap();
    let mut args = host.args();
    args[3] = format!("{}/%n", link.display());
    let server = BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut c = Pop::login(server.addr, "bob", "bobpw");
    assert_eq!(c.cmd("STAT"), "+OK 1 3");
}

/// Logs alice in, lets `meddle` loose on her lock file, and checks that a second login for
/// her is told [IN-USE] all the same.
fn second_session_after(tag: &str, meddle: impl Fn(&Path)) {
    let host = Host::new(tag);
    let server = host.start();
    let mut first = Pop::login(server.addr, "alice", "alicepw");
    meddle(&host.maildir("alice").join("pop3d.lock"));
    let (mut second, r) = try_login(&server, "alice", "alicepw");
    if r.starts_with("+OK") {
        second.cmd("QUIT");
    }
    assert!(r.starts_with("-ERR [IN-USE]"), "second session: {r}");
    assert!(first.cmd("STAT").starts_with("+OK"));
}

#[test]
fn a_deleted_lock_file_lets_no_second_session_in() {
    second_session_after("iso-lock-del", |lock| fs::remove_file(lock).unwrap());
}

#[test]
fn a_replaced_lock_file_lets_no_second_session_in() {
    second_session_after("iso-lock-new", |lock| {
        let fresh = lock.with_extension("fresh");
        fs::write(&fresh, b"").unwrap();
        fs::rename(&fresh, lock).unwrap();
    });
}

/// `pop3d --inetd` on one end of a socket pair: a session in a process of its own.
struct Inetd {
    child: Child,
    pop: Pop<UnixStream>,
}

impl Inetd {
    fn start(host: &Host) -> Inetd {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(["--inetd", "--allow-root"])
            .args(host.args())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(
                theirs.try_clone().unwrap(),
            )))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pop = Pop::over(ours);
        assert!(pop.line().starts_with("+OK"));
        Inetd { child, pop }
    }
}

impl Drop for Inetd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_deleted_lock_file_lets_no_second_process_in() {
    let host = Host::new("iso-lock-proc");
    let mut first = Inetd::start(&host);
    first.pop.cmd("USER alice");
    assert!(first.pop.cmd("PASS alicepw").starts_with("+OK"));
    fs::remove_file(host.maildir("alice").join("pop3d.lock")).unwrap();
    let mut second = Inetd::start(&host);
    second.pop.cmd("USER alice");
    let r = second.pop.cmd("PASS alicepw");
    assert!(r.starts_with("-ERR [IN-USE]"), "second process: {r}");
    assert!(first.pop.cmd("STAT").starts_with("+OK"));
}

#[test]
fn a_size_in_the_name_far_from_the_file_is_not_believed() {
    let host = Host::new("iso-wsize");
    // "hello\n" is 7 octets as sent; the name claims much more, and a planted size cache lies
    // about the other message.
    host.deliver("alice", "new", "1000.M1.host,S=6,W=999999", b"hello\n");
    host.deliver("alice", "new", "1001.M1.host,S=6,W=7", b"hello\n");
    host.deliver("alice", "new", "1002.M1.host,S=9,W=7", b"hello\n");
    host.deliver("alice", "new", "1003.M1.host", b"hi\n");
    let cache = host.maildir("alice").join("pop3d.sizes");
    fs::write(&cache, "pop3d sizes 1\n888888 1003.M1.host\n").unwrap();
    let server = host.start();
    let mut c = Pop::login(server.addr, "alice", "alicepw");
    let (_, list) = c.multi("LIST");
    assert_eq!(list, ["1 7", "2 7", "3 7", "4 4"]);
}

// ---- 2. Costs an entry can impose ----

const SALT_AND_HASH: &str = "cG9wM2RLbm93blNhbHQxNg$4AaNRCwLFMrvC7Qjo/HtipVXAG4qTeNgdpQSUolfL3o";

#[test]
fn a_costly_argon2_entry_fails_its_login_and_the_server_goes_on() {
    let host = Host::new("iso-argon2");
    // Written once pop3d runs: a passwd file with such an entry refuses the start, but the
    // file is read at every login, and an entry broken meanwhile fails its own login only.
    let server = host.start();
    host.write_passwd(&[format!(
        "carol:$argon2id$v=19$m=4294967295,t=1,p=1${SALT_AND_HASH}:2003:2003::{}::",
        host.home("carol").display()
    )]);
    let mut bob = Pop::login(server.addr, "bob", "bobpw");
    let (mut carol, r) = try_login(&server, "carol", "anything");
    assert_eq!(r, "-ERR [AUTH] Authentication failed");
    assert!(
        carol.cmd("USER carol").starts_with("+OK"),
        "connection lost"
    );
    assert!(bob.cmd("STAT").starts_with("+OK"), "bob's session ended");
    let (logged, log) = log_shows(&server, "memory cost");
    assert!(logged, "no log line names the problem:\n{log}");
    Pop::login(server.addr, "alice", "alicepw").cmd("QUIT");
}

#[test]
fn check_names_the_file_and_line_of_a_costly_entry() {
    let host = Host::new("iso-check");
    let scram_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let cases = [
        format!("$argon2id$v=19$m=4294967295,t=1,p=1${SALT_AND_HASH}"),
        format!("$argon2id$v=19$m=1024,t=1000,p=1${SALT_AND_HASH}"),
        format!("$argon2id$v=19$m=4096,t=1,p=255${SALT_AND_HASH}"),
        "$2b$31$Xk3pQ9vR2mT7wL5nB8cZ4eZmL59IrKx2.IclQjlTzIvHru/OR4Fyu".into(),
        "{SHA512-CRYPT}$6$rounds=999999999$Rn8sQ2wEy5Ua$BZ9LocVlbBbpi8Xh37M4cFskxctaR38dFgsK\
         zws.ron89yejWYI92ofRfLceK4yTf0KTW2Sx0TjwV7nKW.XEg/"
            .into(),
        format!("{{SCRAM-SHA-256}}4000000000,c2FsdA==,{scram_key},{scram_key}"),
    ];
    for hash in cases {
        host.write_passwd(&[format!("carol:{hash}")]);
        let out = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(["--check", "--passwd"])
            .arg(&host.passwd)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--check passed {hash}");
        let want = format!("{}: line 3:", host.passwd.display());
        assert!(stderr.contains(&want), "{hash}: {stderr}");
        assert!(stderr.contains("limit"), "{hash}: {stderr}");
    }
}

// ---- 3. Log lines cannot lie ----

#[test]
fn a_user_name_with_a_bidi_override_is_refused() {
    let host = Host::new("iso-bidi");
    let server = host.start();
    let (mut c, greeting) = Pop::connect(server.addr);
    assert!(greeting.starts_with("+OK"));
    let r = c.cmd("USER alice\u{202e}bob");
    assert!(r.starts_with("-ERR [AUTH] Invalid user name"), "{r}");
    assert!(r.contains("U+202E"), "{r}");
    let r = c.cmd("USER \u{200b}alice");
    assert!(r.starts_with("-ERR [AUTH] Invalid user name"), "{r}");
}
